//! Suite `loghub`: our log-template miner beside Python `drain3` on labelled Loghub data.
//!
//! `--data DIR` (default `../shared/bench/loghub`): every sub-folder holding a
//! `*_structured_corrected.csv` (or `*_structured.csv`) is a dataset; the `Content` column is
//! what both miners parse, as in the literature. Both write `LineId,EventTemplate` predictions
//! that `--scorer FILE` (default `../shared/bench/loghub_score.py`) scores: grouping accuracy
//! (GA) and parsing accuracy (PA). Speed is lines per CPU-second of the mining loop alone, each
//! dataset mined repeatedly by fresh miners (ours 50 times, drain3 5 times). `--keep DIR` keeps
//! the predictions.
//!
//! Ours runs one configuration everywhere ([`MinerConfig::default`]). drain3 0.9.11 runs in a
//! virtualenv under `~/.cache/aiops-core/bench/drain3`, created on first use, with the settings
//! of the Loghub benchmark for the datasets it names (masking regexes, similarity, depth) and
//! drain3's defaults elsewhere: the peer gets its per-dataset tuning, we do not.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use aiops_patterns::{LogTemplateMiner, MinerConfig};
use anyhow::{bail, Context};
use serde_json::{json, Value};

const OUR_REPEATS: usize = 50;
const PEER_REPEATS: usize = 5;

fn say(line: impl AsRef<str>) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", line.as_ref());
}

const PEER_SCRIPT: &str = r#"
import csv, json, os, sys, time
from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig
from drain3.masking import MaskingInstruction

# The Loghub benchmark's Drain settings (logparser, benchmark/Drain_benchmark.py).
SETTINGS = {
    "HDFS": ([r"blk_-?\d+", r"(\d+\.){3}\d+(:\d+)?"], 0.5, 4),
    "Hadoop": ([r"(\d+\.){3}\d+"], 0.5, 4),
    "Spark": ([r"(\d+\.){3}\d+", r"\b[KGTM]?B\b", r"([\w-]+\.){2,}[\w-]+"], 0.5, 4),
    "Zookeeper": ([r"(/|)(\d+\.){3}\d+(:\d+)?"], 0.5, 4),
    "BGL": ([r"core\.\d+"], 0.5, 4),
    "HPC": ([r"=\d+"], 0.5, 4),
    "Thunderbird": ([r"(\d+\.){3}\d+"], 0.5, 4),
    "Windows": ([r"0x.*?\s"], 0.7, 5),
    "Linux": ([r"(\d+\.){3}\d+", r"\d{2}:\d{2}:\d{2}"], 0.39, 6),
    "Android": ([r"(/[\w-]+)+", r"([\w-]+\.){2,}[\w-]+", r"\b(\-?\+?\d+)\b|\b0[Xx][a-fA-F\d]+\b|\b[a-fA-F\d]{4,}\b"], 0.2, 6),
    "HealthApp": ([], 0.2, 4),
    "Apache": ([r"(\d+\.){3}\d+"], 0.5, 4),
    "Proxifier": ([r"<\d+\ssec", r"([\w-]+\.)+[\w-]+(:\d+)?", r"\d{2}:\d{2}(:\d{2})*", r"[KGTM]B"], 0.6, 3),
    "OpenSSH": ([r"(\d+\.){3}\d+", r"([\w-]+\.){2,}[\w-]+"], 0.6, 5),
    "OpenStack": ([r"((\d+\.){3}\d+,?)+", r"/.+?\s", r"\d+"], 0.5, 5),
    "Mac": ([r"([\w-]+\.){2,}[\w-]+"], 0.7, 6),
}

def miner(name):
    regexes, sim, depth = SETTINGS.get(name, ([], 0.4, 4))
    config = TemplateMinerConfig()
    config.drain_sim_th = sim
    config.drain_depth = depth
    config.masking_instructions = [MaskingInstruction(r, "*") for r in regexes]
    config.mask_prefix, config.mask_suffix = "<", ">"
    config.profiling_enabled = False
    return TemplateMiner(config=config)

out_dir, repeats = sys.argv[1], int(sys.argv[2])
result = {}
for name, path in json.loads(sys.stdin.read()).items():
    rows = list(csv.DictReader(open(path, newline="", encoding="utf-8")))
    lines = [r["Content"] for r in rows]
    cpu = 0.0
    for _ in range(repeats):
        m = miner(name)
        started = time.process_time()
        ids = [m.add_log_message(line)["cluster_id"] for line in lines]
        cpu += time.process_time() - started
    templates = {c.cluster_id: c.get_template() for c in m.drain.clusters}
    with open(os.path.join(out_dir, name + ".csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["LineId", "EventTemplate"])
        for row, cid in zip(rows, ids):
            w.writerow([row["LineId"], templates[cid]])
    result[name] = {"lines": len(lines) * repeats, "cpu_s": cpu}
print(json.dumps(result))
"#;

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// Datasets of `dir`: name → structured CSV (corrected labels preferred).
fn datasets(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let folder = entry?.path();
        if !folder.is_dir() {
            continue;
        }
        let files: Vec<PathBuf> = std::fs::read_dir(&folder)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        let pick = |suffix: &str| files.iter().find(|f| f.to_string_lossy().ends_with(suffix)).cloned();
        if let Some(file) = pick("_structured_corrected.csv").or_else(|| pick("_structured.csv")) {
            let name = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            found.push((name, file));
        }
    }
    found.sort();
    if found.is_empty() {
        bail!("no dataset (a folder with *_structured.csv) in {}", dir.display());
    }
    Ok(found)
}

fn read_content(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).with_context(|| format!("{} has no {name} column", path.display()))
    };
    let (line_id, content) = (column("LineId")?, column("Content")?);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record?;
        rows.push((record[line_id].to_owned(), record[content].to_owned()));
    }
    Ok(rows)
}

fn ensure_peer(venv: &Path) -> anyhow::Result<PathBuf> {
    let python = venv.join("bin/python");
    if Command::new(&python).args(["-c", "import drain3"]).output().is_ok_and(|o| o.status.success()) {
        return Ok(python);
    }
    say(format!("creating the peer's virtualenv in {} (first run only)", venv.display()));
    if !Command::new("python3").arg("-m").arg("venv").arg(venv).status()?.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "drain3==0.9.11"])
        .status()?;
    if !pip.success() {
        bail!("pip could not install drain3 into {}", venv.display());
    }
    Ok(python)
}

fn score(scorer: &Path, data: &Path, predictions: &Path) -> anyhow::Result<Value> {
    let output = Command::new("python3").arg(scorer).arg("--json").arg("--dir").arg(data).arg(predictions).output()?;
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("reading the scorer's JSON: {}", String::from_utf8_lossy(&output.stderr)))
}

/// The GA and PA of `name` in a scorer report.
fn metrics(report: &Value, name: &str) -> (f64, f64) {
    let entry = report["datasets"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["dataset"] == name))
        .or_else(|| report["datasets"].get(name));
    let get = |key: &str| entry.and_then(|e| e[key].as_f64()).unwrap_or(0.0);
    (get("GA"), get("PA"))
}

/// Runs the suite; returns the JSON report.
pub(crate) async fn run(args: &[String]) -> anyhow::Result<Value> {
    let data = PathBuf::from(arg_value(args, "--data").unwrap_or_else(|| "../shared/bench/loghub".into()));
    let scorer = PathBuf::from(arg_value(args, "--scorer").unwrap_or_else(|| "../shared/bench/loghub_score.py".into()));
    let sets = datasets(&data)?;
    let work = tempfile::tempdir()?;
    // `--keep DIR` keeps both predictions (DIR/ours, DIR/drain3) for a closer look.
    let out = arg_value(args, "--keep").map_or_else(|| work.path().to_owned(), PathBuf::from);
    let (ours_dir, peer_dir) = (out.join("ours"), out.join("drain3"));
    std::fs::create_dir_all(&ours_dir)?;
    std::fs::create_dir_all(&peer_dir)?;

    let mut our_lines = 0usize;
    let mut our_cpu = 0.0f64;
    for (name, path) in &sets {
        let rows = read_content(path)?;
        let mut assigned = Vec::new();
        let mut miner = LogTemplateMiner::new(MinerConfig::default());
        for _ in 0..OUR_REPEATS {
            miner = LogTemplateMiner::new(MinerConfig::default());
            let started = cpu_time::ProcessTime::now();
            assigned = rows.iter().map(|(_, content)| miner.add(content).template_id).collect();
            our_cpu += started.elapsed().as_secs_f64();
            our_lines += rows.len();
        }
        // A line's template is its template at the end of the stream, as drain3 reports it.
        let texts: std::collections::HashMap<u64, String> =
            miner.templates().into_iter().map(|t| (t.id, t.text())).collect();
        let mut writer = csv::Writer::from_path(ours_dir.join(format!("{name}.csv")))?;
        writer.write_record(["LineId", "EventTemplate"])?;
        for ((line_id, _), id) in rows.iter().zip(assigned) {
            writer.write_record([line_id.as_str(), texts.get(&id).map_or("", String::as_str)])?;
        }
        writer.flush()?;
    }

    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let python = ensure_peer(&home.join(".cache/aiops-core/bench/drain3"))?;
    let script = work.path().join("peer.py");
    std::fs::write(&script, PEER_SCRIPT)?;
    let inputs: serde_json::Map<String, Value> =
        sets.iter().map(|(name, path)| (name.clone(), json!(path.canonicalize().unwrap_or(path.clone())))).collect();
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(&peer_dir)
        .arg(PEER_REPEATS.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().context("peer stdin")?.write_all(Value::Object(inputs).to_string().as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("drain3 failed");
    }
    let peer: Value = serde_json::from_slice(&output.stdout).context("reading drain3's timing")?;
    let (peer_lines, peer_cpu) = peer
        .as_object()
        .map(|all| {
            all.values().fold((0.0, 0.0), |(l, c), v| {
                (l + v["lines"].as_f64().unwrap_or(0.0), c + v["cpu_s"].as_f64().unwrap_or(0.0))
            })
        })
        .unwrap_or_default();

    let ours = score(&scorer, &data, &ours_dir)?;
    let theirs = score(&scorer, &data, &peer_dir)?;
    say("\n| dataset | GA | PA | drain3 GA | drain3 PA |\n|---|---|---|---|---|");
    let mut per_dataset = Vec::new();
    let (mut sum_ga, mut sum_peer) = (0.0, 0.0);
    for (name, _) in &sets {
        let (ga, pa) = metrics(&ours, name);
        let (peer_ga, peer_pa) = metrics(&theirs, name);
        sum_ga += ga;
        sum_peer += peer_ga;
        say(format!("| {name} | {ga:.4} | {pa:.4} | {peer_ga:.4} | {peer_pa:.4} |"));
        per_dataset.push(json!({"name": name, "ga": ga, "pa": pa, "drain3_ga": peer_ga, "drain3_pa": peer_pa}));
    }
    let n = sets.len() as f64;
    let ours_speed = our_lines as f64 / our_cpu.max(1e-9);
    let peer_speed = peer_lines / peer_cpu.max(1e-9);
    say(format!("| mean | {:.4} | | {:.4} | |", sum_ga / n, sum_peer / n));
    say(format!(
        "lines per CPU-second: ours {ours_speed:.0}, drain3 {peer_speed:.0} ({:.1}x)",
        ours_speed / peer_speed
    ));
    Ok(json!({
        "suite": "loghub",
        "mean_ga": sum_ga / n,
        "drain3_mean_ga": sum_peer / n,
        "per_dataset": per_dataset,
        "lines_per_cpu_s": ours_speed,
        "drain3_lines_per_cpu_s": peer_speed,
        "speed_ratio": ours_speed / peer_speed,
    }))
}
