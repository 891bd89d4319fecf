//! Suite `nab`: the streaming metric anomaly detector on the Numenta Anomaly Benchmark.
//!
//! `--data DIR` (default `../shared/bench/nab`, NAB's layout: `data/<category>/<file>.csv` and
//! `labels.json`): every series is scored point by point by a fresh [`AnomalyDetector`] with the
//! one default configuration; the scores go to `<out>/<category>/aiops_<file>.csv`, which
//! `--scorer FILE` (default `../shared/bench/nab_score.py`, NAB's rules) scores for the three
//! profiles with NAB's corpus-wide threshold optimisation. Speed is points per CPU-second of
//! the scoring loop alone (each series scored 20 times). `--keep DIR` keeps the score files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use aiops_patterns::{AnomalyConfig, AnomalyDetector};
use anyhow::{bail, Context};
use serde_json::{json, Value};

const REPEATS: usize = 20;

fn say(line: impl AsRef<str>) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", line.as_ref());
}

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn series(data: &Path) -> anyhow::Result<Vec<(String, String, PathBuf)>> {
    let root = data.join("data");
    let mut found = Vec::new();
    for category in std::fs::read_dir(&root).with_context(|| format!("reading {}", root.display()))? {
        let category = category?.path();
        if !category.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&category)? {
            let file = file?.path();
            if file.extension().is_some_and(|e| e == "csv") {
                let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                found.push((name(&category), name(&file), file));
            }
        }
    }
    found.sort();
    if found.is_empty() {
        bail!("no series in {}", root.display());
    }
    Ok(found)
}

/// Runs the suite; returns the JSON report.
pub(crate) async fn run(args: &[String]) -> anyhow::Result<Value> {
    let data = PathBuf::from(arg_value(args, "--data").unwrap_or_else(|| "../shared/bench/nab".into()));
    let scorer = PathBuf::from(arg_value(args, "--scorer").unwrap_or_else(|| "../shared/bench/nab_score.py".into()));
    let work = tempfile::tempdir()?;
    let out = arg_value(args, "--keep").map_or_else(|| work.path().join("aiops"), PathBuf::from);
    let mut points = 0usize;
    let mut cpu = 0.0f64;
    let all = series(&data)?;
    for (category, file, path) in &all {
        let mut reader = csv::Reader::from_path(path)?;
        let mut rows: Vec<(String, i64, f64)> = Vec::new();
        for record in reader.records() {
            let record = record?;
            let at = chrono::NaiveDateTime::parse_from_str(record[0].trim(), "%Y-%m-%d %H:%M:%S")
                .with_context(|| format!("{}: timestamp {:?} is not YYYY-MM-DD HH:MM:SS", path.display(), &record[0]))?
                .and_utc()
                .timestamp();
            rows.push((record[0].to_owned(), at, record[1].trim().parse().unwrap_or(f64::NAN)));
        }
        let mut scores = Vec::new();
        for _ in 0..REPEATS {
            let mut detector = AnomalyDetector::new(AnomalyConfig::default());
            let started = cpu_time::ProcessTime::now();
            scores = rows.iter().map(|(_, at, value)| detector.score_at(*at, *value)).collect();
            cpu += started.elapsed().as_secs_f64();
            points += rows.len();
        }
        std::fs::create_dir_all(out.join(category))?;
        let mut writer = csv::Writer::from_path(out.join(category).join(format!("aiops_{file}")))?;
        writer.write_record(["timestamp", "anomaly_score"])?;
        for ((timestamp, _, _), score) in rows.iter().zip(scores) {
            writer.write_record([timestamp.as_str(), &format!("{score:.6}")])?;
        }
        writer.flush()?;
    }
    let summary = work.path().join("summary.json");
    let status = Command::new("python3")
        .arg(&scorer)
        .arg(&out)
        .arg("--corpus")
        .arg(&data)
        .arg("--optimize")
        .arg("--json")
        .arg(&summary)
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        bail!("the NAB scorer failed ({status})");
    }
    let report: Value = serde_json::from_slice(&std::fs::read(&summary)?)?;
    let profile = |name: &str| report["profiles"][name]["normalised"].as_f64().unwrap_or(f64::NAN);
    let points_per_s = points as f64 / cpu.max(1e-9);
    say(format!("\nNAB, {} series, {} windows, thresholds optimised per profile", all.len(), report["windows"]));
    say("| profile | score |\n|---|---|");
    for name in ["standard", "reward_low_FP_rate", "reward_low_FN_rate"] {
        say(format!("| {name} | {:.1} |", profile(name)));
    }
    say(format!("points per CPU-second: {points_per_s:.0}"));
    Ok(json!({
        "suite": "nab",
        "standard": profile("standard"),
        "reward_low_fp_rate": profile("reward_low_FP_rate"),
        "reward_low_fn_rate": profile("reward_low_FN_rate"),
        "points_per_s": points_per_s,
        "series": all.len(),
    }))
}
