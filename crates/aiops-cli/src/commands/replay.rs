//! `aiops replay`: what a (changed) policy would have detected and done on the recorded
//! history, side by side with what happened.

use std::io::Write;
use std::path::PathBuf;

use aiops_app::{Config, ReplayWindow};
use anyhow::Context;
use chrono::{DateTime, Utc};

fn parse_time(text: Option<String>, flag: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(&t)
            .map(|t| t.with_timezone(&Utc))
            .with_context(|| format!("{flag} {t:?} is not an RFC 3339 time like 2026-11-25T10:00:00Z"))
    })
    .transpose()
}

/// Runs the replay and prints the report (and its JSON as the last line with `json`).
pub(crate) async fn run(
    config: Option<PathBuf>,
    policy: Option<PathBuf>,
    since: Option<String>,
    until: Option<String>,
    json: bool,
) -> anyhow::Result<bool> {
    let history = Config::load(config.as_deref(), std::env::vars())?;
    let policy = match &policy {
        // The policy's agents and patterns; where the history lives stays the history's.
        Some(path) => Config::load(Some(path), std::env::vars())?,
        None => history.clone(),
    };
    let window = ReplayWindow { since: parse_time(since, "--since")?, until: parse_time(until, "--until")? };
    let report = aiops_app::replay(&history, &policy, &window).await?;
    let mut out = crate::commands::stdout();
    let c = &report.counts;
    writeln!(
        out,
        "replayed {} events: the policy detects {} problems, {} were recorded; {} matched, {} new, {} missed",
        c.events, c.detected, c.recorded, c.matched, c.new, c.missed
    )?;
    for problem in &report.problems {
        let would = if !problem.would_run.is_empty() {
            format!("run {}", problem.would_run.join(", then "))
        } else if !problem.would_ask.is_empty() {
            format!("ask approval for {}", problem.would_ask.join(", "))
        } else {
            "escalate".to_owned()
        };
        let recorded = match &problem.recorded {
            Some(r) => match (&r.healed_by, r.escalated) {
                (Some(tool), _) => format!("recorded: healed by {tool}"),
                (None, true) => "recorded: escalated".to_owned(),
                (None, false) => "recorded: open".to_owned(),
            },
            None => "new: not detected in the recorded history".to_owned(),
        };
        writeln!(
            out,
            "{}  {:<16} {:<20} would {would}; {recorded}\n    {}{}",
            problem.detected_at.format("%Y-%m-%d %H:%M:%S"),
            problem.service,
            problem.kind,
            problem.summary,
            problem.hypothesis.as_ref().map(|h| format!(" (likely: {h})")).unwrap_or_default()
        )?;
    }
    for missed in &report.missed {
        writeln!(
            out,
            "{}  {:<16} {:<20} MISSED by the policy: {}",
            missed.detected_at.format("%Y-%m-%d %H:%M:%S"),
            missed.service,
            missed.kind,
            missed.summary
        )?;
    }
    if json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    }
    Ok(true)
}
