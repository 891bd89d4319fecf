//! `aiops demo`: the whole loop on a real bookmark manager, each fault twice.
//!
//! Starts the core in this process on embedded defaults (in a temporary directory), and the
//! bookmark manager and the title service it depends on as separate processes (this same
//! binary, `aiops bookmarks serve` / `titles`) under a supervisor (`supervisor.rs`) that
//! restarts the bookmark manager when it fails, as systemd's `Restart=on-failure` does; drives
//! steady traffic at it, then injects real faults (by default its database pool leaks every
//! connection; `--fault all` runs every scenario) and prints the loop as it happens on the
//! control stream: detected, diagnosed, each action and its verification, healed, learned.
//! Each fault is injected again to show the second heal chosen from knowledge. The demo plays
//! the operator too: it approves every fix the safety ladder asks a human about. Everything
//! is cleaned up at the end, also on Ctrl-C.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiops_app::{App, Config};
use aiops_events::{ReadQuery, StoredEvent};
use aiops_model::{event_type, ActionOutcome, Diagnosis, HealthStatus, Problem};
use aiops_registry::ServiceQuery;
use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use super::supervisor::{Supervisor, Unit};

const SERVICE: &str = "bookmarks";
/// The faults `--fault all` runs, with what each does.
pub(crate) const FAULTS: [(&str, &str); 9] = [
    ("db_pool_exhausted", "the database pool leaks every connection"),
    ("bad_release", "release 1.1.0 goes out with a broken search query"),
    ("disk_full", "the data directory fills up"),
    ("memory_leak", "every request leaks memory until the heap is full"),
    ("bad_config", "configuration v2 refuses every tagged write"),
    ("slow_queries", "the search index is dropped, every search scans the table"),
    ("crash_loop", "configuration v3 makes the process panic 500 ms after every start"),
    ("dependency_down", "the title service it depends on is killed (SIGKILL, as by the OOM killer)"),
    ("frontend_skew", "front end 2.0.0, built against another API version, goes out; a user saves in a real browser"),
];
/// Faults played by a user in a real browser: they need Chromium.
const BROWSER_FAULTS: [&str; 1] = ["frontend_skew"];
/// The services the demo runs.
const SERVICES: [&str; 2] = [SERVICE, bookmarks::TITLES_SERVICE];

const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);
const TRAFFIC_INTERVAL: Duration = Duration::from_millis(20);
/// Good traffic before each fault, so the detectors' windows hold a healthy baseline.
const BASELINE: Duration = Duration::from_millis(2500);

/// What one injected fault led to.
#[derive(Debug, Clone, Serialize)]
struct Scenario {
    fault: String,
    occurrence: u32,
    detected_ms: Option<i64>,
    diagnosed_ms: Option<i64>,
    healed_ms: Option<i64>,
    action: Option<String>,
    verified: bool,
    attempts: Vec<Value>,
    hypothesis: Option<String>,
    confidence: Option<f64>,
    escalated: Option<String>,
}

pub(crate) async fn run(json: bool, occurrences: u32, faults: Vec<String>) -> anyhow::Result<bool> {
    if occurrences == 0 {
        bail!("--occurrences must be at least 1");
    }
    let mut chosen: Vec<(&'static str, &'static str)> = Vec::new();
    for name in &faults {
        if name == "all" {
            chosen.extend(FAULTS);
            continue;
        }
        let known = FAULTS.iter().find(|(fault, _)| fault == name).ok_or_else(|| {
            let names: Vec<&str> = FAULTS.iter().map(|(f, _)| *f).collect();
            anyhow!("unknown fault {name:?}: one of {}, or all", names.join(", "))
        })?;
        chosen.push(*known);
    }
    if chosen.is_empty() {
        chosen.push(FAULTS[0]);
    }
    let workdir = tempfile::Builder::new().prefix("aiops-demo-").tempdir().context("creating a temporary directory")?;
    // Dropping the demo future on Ctrl-C kills the bookmark manager (kill_on_drop) and the
    // temporary directory is removed below either way.
    let result = tokio::select! {
        result = run_in(workdir.path(), json, occurrences, &chosen) => result,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: stopping the bookmark manager and removing {}", workdir.path().display());
            Ok(false)
        }
    };
    if !matches!(result, Ok(true)) {
        show_service_logs(workdir.path());
    }
    drop(workdir);
    result
}

/// Where the demo's services write their standard error: the faults make them fail loudly,
/// which is the point, not something to flood the terminal with.
fn stderr_log(workdir: &Path, service: &str) -> PathBuf {
    workdir.join(format!("{service}.stderr.log"))
}

/// After a failed demo, the end of each service's standard error, before the directory goes.
fn show_service_logs(workdir: &Path) {
    for service in [SERVICE, bookmarks::TITLES_SERVICE] {
        let Ok(log) = std::fs::read_to_string(stderr_log(workdir, service)) else { continue };
        let lines: Vec<&str> = log.lines().collect();
        if lines.is_empty() {
            continue;
        }
        eprintln!("--- last lines {service} wrote to stderr ---");
        for line in &lines[lines.len().saturating_sub(20)..] {
            eprintln!("{line}");
        }
    }
}

pub(crate) fn say(line: impl AsRef<str>) {
    use std::io::Write;
    let mut stdout = crate::commands::stdout();
    let _ = writeln!(stdout, "{}", line.as_ref());
    let _ = stdout.flush();
}

async fn run_in(
    workdir: &Path,
    json: bool,
    occurrences: u32,
    faults: &[(&'static str, &'static str)],
) -> anyhow::Result<bool> {
    let mut config = Config { data_dir: workdir.join("core"), ..Config::default() };
    config.server.listen = "127.0.0.1:0".into();
    config.registry.interval_ms = 500;
    config.agents.monitor.window.window_ms = 5000;
    // Every fault twice on one service within minutes: more than a production budget allows.
    config.agents.healing.max_actions_per_service = 50;
    config.agents.healing.max_actions_total = 100;
    // The supervisor restarts within 100 ms, so crashes come fast: two are a loop here.
    config.agents.monitor.crash_loop_restarts = 2;
    // The page's reports come from the bookmark manager's origin, whose port is picked later;
    // the core listens on loopback only.
    config.server.browser.allowed_origins = vec!["*".into()];
    let exe = std::env::current_exe().context("finding this executable")?;
    let db = workdir.join("bookmarks.db");
    let (supervisor, mut inboxes) = Supervisor::new(&SERVICES).await?;
    config.tools.dir = Some(write_operator_tools(workdir, &exe, &db, supervisor.url())?);
    let app = App::start(config).await.context("starting the core")?;
    say(format!("AI-Ops core      {}  (data in {})", app.url(), workdir.display()));

    let mut inbox = |name: &str| inboxes.remove(name).ok_or_else(|| anyhow!("no unit {name}"));
    // The title service runs without automatic restarts: once dead, it stays down until
    // something starts it.
    let titles = Unit {
        name: bookmarks::TITLES_SERVICE,
        args: ["bookmarks", "titles", "--aiops-url", &app.url()].map(str::to_owned).to_vec(),
        restart_on_failure: false,
        stderr_log: Some(stderr_log(workdir, bookmarks::TITLES_SERVICE)),
    };
    let titles_url = supervisor.start(exe.clone(), titles, inbox(bookmarks::TITLES_SERVICE)?).await?;
    let mut args: Vec<String> =
        ["bookmarks", "serve", "--aiops-url", &app.url(), "--titles-url", &titles_url].map(str::to_owned).to_vec();
    args.extend(["--db".to_owned(), db.to_string_lossy().into_owned()]);
    let unit = Unit { name: SERVICE, args, restart_on_failure: true, stderr_log: Some(stderr_log(workdir, SERVICE)) };
    let base = supervisor.start(exe.clone(), unit, inbox(SERVICE)?).await?;

    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build()?;
    wait_until_passing(&app, Duration::from_secs(20)).await?;
    say("bookmark manager and title service registered and healthy; driving ~50 requests/s");

    let running = Arc::new(AtomicBool::new(true));
    let stats = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let traffic = tokio::spawn(drive_traffic(http.clone(), base.clone(), running.clone(), stats.clone()));

    let faults: Vec<(&str, &str)> = faults
        .iter()
        .copied()
        .filter(|(fault, _)| {
            let playable = !BROWSER_FAULTS.contains(fault) || aiops_cli::browser::available();
            if !playable {
                say(format!(
                    "{fault}: skipped, it needs a browser ({} and chromedriver)",
                    aiops_cli::browser::CHROMIUM_BINARY
                ));
            }
            playable
        })
        .collect();
    let mut user: Option<(aiops_cli::browser::ChromeDriver, Arc<aiops_cli::browser::Session>)> = None;
    let mut scenarios = Vec::new();
    'faults: for &(fault, what) in &faults {
        for occurrence in 1..=occurrences {
            tokio::time::sleep(BASELINE).await;
            wait_until_passing(&app, Duration::from_secs(30)).await?;
            let mark = app.bus().last_offset(&app.streams().control).await?;
            let fault_at = Utc::now();
            say(format!(
                "\n── {fault}, occurrence {occurrence}: {what}; injected at {}",
                fault_at.format("%H:%M:%S%.3f")
            ));
            if fault == "dependency_down" {
                if !supervisor.kill(bookmarks::TITLES_SERVICE).await? {
                    bail!("injecting the fault failed: the title service was not running");
                }
            } else {
                let response =
                    http.post(format!("{base}/admin/faults")).json(&json!({ "fault": fault })).send().await?;
                if !response.status().is_success() {
                    bail!("injecting the fault failed: {}", response.status());
                }
            }
            let playing = if BROWSER_FAULTS.contains(&fault) {
                if user.is_none() {
                    let driver = tokio::task::spawn_blocking(aiops_cli::browser::ChromeDriver::start).await??;
                    let session = aiops_cli::browser::Session::start(&driver).await?;
                    user = Some((driver, Arc::new(session)));
                }
                let session = user.as_ref().map(|(_, session)| session.clone()).expect("started above");
                Some(tokio::spawn(save_in_the_page(session, base.clone())))
            } else {
                None
            };
            let scenario = watch(&app, &http, mark, fault_at, fault, occurrence).await?;
            if let Some(playing) = playing {
                match playing.await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => say(format!("  the browser user stumbled: {err:#}")),
                    Err(err) => say(format!("  the browser user stopped: {err}")),
                }
            }
            let healed = scenario.verified;
            scenarios.push(scenario);
            if !healed {
                break 'faults;
            }
        }
    }
    running.store(false, Ordering::SeqCst);
    let _ = traffic.await;
    if let Some((driver, session)) = user {
        if let Ok(session) = Arc::try_unwrap(session) {
            session.quit().await;
        }
        drop(driver);
    }

    say("\n── summary");
    say(format!(
        "{:<18} {:<11} {:>9} {:>10} {:>8}  {:<18} {}",
        "fault", "occurrence", "detected", "diagnosed", "healed", "fixed by", "tries"
    ));
    for s in &scenarios {
        let ms = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v} ms"));
        say(format!(
            "{:<18} {:<11} {:>9} {:>10} {:>8}  {:<18} {}",
            s.fault,
            s.occurrence,
            ms(s.detected_ms),
            ms(s.diagnosed_ms),
            ms(s.healed_ms),
            s.action.as_deref().unwrap_or("-"),
            s.attempts.len()
        ));
    }
    let (ok, failed) = (stats.0.load(Ordering::Relaxed), stats.1.load(Ordering::Relaxed));
    say(format!("traffic: {ok} requests answered, {failed} failed during the faults"));
    let all_healed = scenarios.len() == occurrences as usize * faults.len() && scenarios.iter().all(|s| s.verified);
    // Per fault: was a later occurrence healed with fewer tries than the first?
    let mut faster = None;
    for &(fault, _) in &faults {
        let runs: Vec<&Scenario> = scenarios.iter().filter(|s| s.fault == fault).collect();
        if let (Some(first), Some(second)) =
            (runs.first().and_then(|s| s.healed_ms), runs.get(1).and_then(|s| s.healed_ms))
        {
            let quicker = second < first;
            say(format!("{fault}: second heal faster than the first: {}", if quicker { "yes" } else { "no" }));
            faster = Some(faster.unwrap_or(true) && quicker);
        }
    }

    supervisor.stop_all().await;
    app.shutdown().await?;
    if json {
        say(serde_json::to_string(
            &json!({ "scenarios": scenarios, "second_faster": faster, "healed_all": all_healed }),
        )?);
    }
    Ok(all_healed)
}

/// A user in a real browser: opens the bookmark manager's page and tries to save three
/// bookmarks, each refused by the API (the front end just deployed was built against another
/// version of it), as the page's instrumentation reports to the core.
async fn save_in_the_page(session: Arc<aiops_cli::browser::Session>, base: String) -> anyhow::Result<()> {
    session.goto(&format!("{base}/")).await?;
    session.wait_for("return window.__aiops && document.getElementById('status').textContent", "the page").await?;
    for n in 0..3 {
        session.type_into("#url", &format!("https://example.org/from-the-browser-{n}")).await?;
        session.click("#save").await?;
        let status = session
            .wait_for(
                "const s = document.getElementById('status'); return s.classList.contains('error') && s.textContent",
                "the save's answer",
            )
            .await?;
        say(format!("             browser: save {}: {}", n + 1, status.as_str().unwrap_or_default()));
        session.run("document.getElementById('status').className = ''; document.getElementById('add').reset(); return true;").await?;
    }
    session.run("window.__aiops.flush(false); return true;").await?;
    Ok(())
}

/// The tools of this deployment, as an operator writes them for theirs: the configuration is
/// rolled back on disk (`aiops bookmarks config rollback`), which works while the process is
/// down or crash-looping, where the shipped HTTP call to the service could not; and services
/// are started through this demo's supervisor, where the shipped tool asks systemd.
fn write_operator_tools(workdir: &Path, exe: &Path, db: &Path, supervisor: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = workdir.join("tools");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let quoted = |path: &Path| serde_json::to_string(&path.to_string_lossy());
    let spec = format!(
        r#"name = "rollback_config"
version = 2
description = "Restores the bookmark manager's previous configuration file; its next start or use reads it."
risk = "medium"
timeout_ms = 15000
capability = "config.rollback"

[kind]
type = "command"
argv = [{exe}, "bookmarks", "config", "rollback", "--db", {db}]
"#,
        exe = quoted(exe)?,
        db = quoted(db)?,
    );
    let file = dir.join("rollback_config.toml");
    std::fs::write(&file, spec).with_context(|| format!("writing {}", file.display()))?;
    let spec = format!(
        r#"name = "start_service"
version = 2
description = "Starts the service's process through the demo's supervisor; a running one is left as it is."
risk = "low"
timeout_ms = 30000

[kind]
type = "http"
method = "POST"
base_url = {supervisor}
path = "/units/{{target.service}}/start"
"#,
        supervisor = serde_json::to_string(supervisor)?,
    );
    let file = dir.join("start_service.toml");
    std::fs::write(&file, spec).with_context(|| format!("writing {}", file.display()))?;
    Ok(dir)
}

async fn wait_until_passing(app: &App, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let instances = app.registry().instances(&ServiceQuery::default()).await?;
        let passing = |service: &str| {
            instances.iter().any(|i| i.registration.name == service && i.status == HealthStatus::Passing)
        };
        if SERVICES.iter().all(|service| passing(service)) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the bookmark manager and its title service did not become healthy within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Requests in flight at most; during a fault each one waits for the pool's timeout, so
/// they must overlap to keep the rate steady.
const MAX_IN_FLIGHT: u32 = 64;

async fn drive_traffic(
    http: reqwest::Client,
    base: String,
    running: Arc<AtomicBool>,
    stats: Arc<(AtomicU64, AtomicU64)>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT as usize));
    let mut n: u64 = 0;
    let mut ticker = tokio::time::interval(TRAFFIC_INTERVAL);
    while running.load(Ordering::SeqCst) {
        ticker.tick().await;
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        n += 1;
        // Mostly searches with fresh terms (so the cache cannot answer them), some tagged writes,
        // and some writes without a title, which the title service supplies.
        let request = if n % 10 == 3 {
            http.post(format!("{base}/api/bookmarks")).json(&json!({ "url": format!("https://example.org/page-{n}") }))
        } else if n.is_multiple_of(5) {
            http.post(format!("{base}/api/bookmarks")).json(
                &json!({ "url": format!("https://example.org/{n}"), "title": format!("page {n}"), "tags": ["demo"] }),
            )
        } else {
            http.get(format!("{base}/api/bookmarks?q=page%20{}", n % 97))
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let ok = matches!(request.send().await, Ok(r) if r.status().is_success());
            if ok { &stats.0 } else { &stats.1 }.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    // Wait for the requests still in flight.
    let _ = permits.acquire_many(MAX_IN_FLIGHT).await;
}

fn since(fault_at: DateTime<Utc>, event: &StoredEvent) -> i64 {
    (event.event.time - fault_at).num_milliseconds()
}

/// Follows the control stream from `mark` until the problem caused by the fault is healed,
/// escalated, or the timeout passes; prints each step.
async fn watch(
    app: &App,
    http: &reqwest::Client,
    mark: u64,
    fault_at: DateTime<Utc>,
    fault: &str,
    occurrence: u32,
) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario {
        fault: fault.to_owned(),
        occurrence,
        detected_ms: None,
        diagnosed_ms: None,
        healed_ms: None,
        action: None,
        verified: false,
        attempts: Vec::new(),
        hypothesis: None,
        confidence: None,
        escalated: None,
    };
    let mut cursor = mark;
    let mut problem_id: Option<String> = None;
    let mut learned_pending = false;
    // Fixes approved for this problem: an escalation that waits for them is not the end.
    let mut approved = 0_u32;
    let deadline = tokio::time::Instant::now() + SCENARIO_TIMEOUT;
    let bus = app.bus();
    loop {
        if tokio::time::Instant::now() >= deadline {
            say(format!("  gave up after {}s without an outcome", SCENARIO_TIMEOUT.as_secs()));
            return Ok(scenario);
        }
        let events =
            bus.read(&app.streams().control, &ReadQuery { after: cursor, limit: 500, ..ReadQuery::default() }).await?;
        if events.is_empty() {
            tokio::time::sleep(Duration::from_millis(25)).await;
            continue;
        }
        for stored in &events {
            cursor = stored.offset;
            let data = &stored.event.data;
            let t = since(fault_at, stored);
            match stored.event.event_type.as_str() {
                event_type::PROBLEM_DETECTED
                    if problem_id.is_none()
                        && stored.event.subject.as_deref().is_some_and(|s| SERVICES.contains(&s)) =>
                {
                    let problem: Problem = stored.event.payload()?;
                    say(format!("  {t:>6} ms  detected   {}", problem.summary));
                    for line in &problem.evidence {
                        say(format!("                         evidence: {line}"));
                    }
                    problem_id = Some(problem.id);
                    scenario.detected_ms = Some(t);
                }
                event_type::DIAGNOSIS_COMPLETED if data["problem"]["id"].as_str() == problem_id.as_deref() => {
                    let diagnosis: Diagnosis = stored.event.payload()?;
                    scenario.diagnosed_ms = Some(t);
                    if let Some(top) = diagnosis.hypotheses.first() {
                        say(format!(
                            "  {t:>6} ms  diagnosed  {} (confidence {:.2}): {}",
                            top.title, top.confidence, top.root_cause
                        ));
                        scenario.hypothesis = Some(top.title.clone());
                        scenario.confidence = Some(top.confidence);
                    }
                    for other in diagnosis.hypotheses.iter().skip(1) {
                        say(format!(
                            "                         also: {} (confidence {:.2})",
                            other.title, other.confidence
                        ));
                    }
                    if !diagnosis.similar_problems.is_empty() {
                        let similar: Vec<String> = diagnosis
                            .similar_problems
                            .iter()
                            .map(|(id, score)| format!("{id} ({:.0}% similar)", score * 100.0))
                            .collect();
                        say(format!(
                            "                         knowledge: similar past problems {}",
                            similar.join(", ")
                        ));
                    }
                    for (idx, candidate) in diagnosis.candidates.iter().enumerate() {
                        say(format!(
                            "                         plan {}: {} ({} risk) — {}",
                            idx + 1,
                            candidate.tool,
                            candidate.risk.as_str(),
                            candidate.rationale
                        ));
                    }
                }
                event_type::APPROVAL_REQUESTED if data["problem"]["id"].as_str() == problem_id.as_deref() => {
                    let id = data["approval_id"].as_str().unwrap_or_default();
                    let tool = data["candidate"]["tool"].as_str().unwrap_or("?");
                    say(format!(
                        "  {t:>6} ms  approval   {tool} asks a human: {}",
                        data["reason"].as_str().unwrap_or("")
                    ));
                    let body = json!({ "reason": "approved by the demo operator" });
                    let answer =
                        http.post(format!("{}/v1/approvals/{id}/approve", app.url())).json(&body).send().await?;
                    approved += 1;
                    say(format!(
                        "  {:>6} ms  approved   {tool} ({})",
                        Utc::now().signed_duration_since(fault_at).num_milliseconds(),
                        answer.status()
                    ));
                }
                event_type::ACTION_STARTED if data["problem_id"].as_str() == problem_id.as_deref() => {
                    say(format!(
                        "  {t:>6} ms  action {}   run {}",
                        data["attempt"],
                        data["tool"].as_str().unwrap_or("?")
                    ));
                }
                event_type::ACTION_COMPLETED if data["problem"]["id"].as_str() == problem_id.as_deref() => {
                    let outcome: ActionOutcome = stored.event.payload()?;
                    let verdict = if outcome.verified { "verified" } else { "NOT verified" };
                    say(format!(
                        "  {t:>6} ms  action {}   {} {verdict}: {}",
                        outcome.attempt, outcome.tool, outcome.message
                    ));
                    scenario.attempts.push(json!({
                        "tool": outcome.tool, "verified": outcome.verified, "duration_ms": outcome.duration_ms,
                    }));
                    if outcome.verified {
                        scenario.action = Some(outcome.tool.clone());
                    }
                }
                event_type::PROBLEM_RESOLVED if data["problem_id"].as_str() == problem_id.as_deref() => {
                    if data["cleared_by_itself"].as_bool() == Some(true) {
                        // An injected fault lasts until it is repaired, so this is a detector
                        // that lost sight of it, not a heal.
                        say(format!("  {t:>6} ms  CLEARED    by itself, with no fix: the fault is still there"));
                        scenario.escalated = Some("the symptom cleared by itself before any fix".to_owned());
                        return Ok(scenario);
                    }
                    say(format!(
                        "  {t:>6} ms  healed     by {}; time to recover {} ms",
                        data["tool"].as_str().unwrap_or("?"),
                        data["time_to_recover_ms"]
                    ));
                    scenario.healed_ms = Some(t);
                    scenario.verified = true;
                    learned_pending = true;
                }
                event_type::PROBLEM_ESCALATED if data["problem_id"].as_str() == problem_id.as_deref() => {
                    let reason = data["reason"].as_str().unwrap_or("?").to_owned();
                    if approved > 0 && reason.contains("awaiting approval") {
                        say(format!("  {t:>6} ms  waiting    for the approved fix: {reason}"));
                        continue;
                    }
                    say(format!("  {t:>6} ms  ESCALATED  {reason}"));
                    scenario.escalated = Some(reason);
                    return Ok(scenario);
                }
                event_type::KNOWLEDGE_UPDATED if data["problem_id"].as_str() == problem_id.as_deref() => {
                    let stats = &data["stats"];
                    say(format!(
                        "  {t:>6} ms  learned    {}: healed {} of {} tries",
                        data["solution_id"].as_str().unwrap_or("?"),
                        stats["successes"],
                        stats["attempts"]
                    ));
                    if learned_pending && data["verified"] == true {
                        return Ok(scenario);
                    }
                }
                _ => {}
            }
        }
    }
}
