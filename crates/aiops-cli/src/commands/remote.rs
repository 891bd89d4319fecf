//! Commands that talk to a running core over its API: `aiops tools propose`, `aiops problems`.
//!
//! The API token, when the core requires one, comes from the environment variable
//! `AIOPS_TOKEN`, never from argv (argv is visible to every user of the machine).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

pub(crate) fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build()?)
}

pub(crate) fn with_token(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match std::env::var("AIOPS_TOKEN") {
        Ok(token) if !token.is_empty() => request.bearer_auth(token),
        _ => request,
    }
}

pub(crate) async fn answer(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("no error message");
        let hint = match status {
            reqwest::StatusCode::UNAUTHORIZED if std::env::var_os("AIOPS_TOKEN").is_none() => {
                " (set AIOPS_TOKEN to a token of the core)"
            }
            reqwest::StatusCode::UNAUTHORIZED => " (AIOPS_TOKEN holds a token the core does not know)",
            reqwest::StatusCode::FORBIDDEN => " (AIOPS_TOKEN's token lacks the scope this needs)",
            _ => "",
        };
        bail!("the core answered {status}: {message}{hint}");
    }
    Ok(body)
}

/// Says on stderr that a listing is empty, so that an empty answer is not mistaken for a
/// command that printed nothing (stdout stays empty for scripts).
pub(crate) fn nothing_if_empty<T>(items: &[T], what: &str) {
    if items.is_empty() {
        eprintln!("({what})");
    }
}

/// Proposes a tool spec file; waits for the Builder agent's verdict.
pub(crate) async fn propose_tool(url: &str, file: &Path) -> anyhow::Result<bool> {
    let spec = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let http = client()?;
    let origin = file.display().to_string();
    let accepted = answer(
        with_token(http.post(format!("{url}/v1/tools")))
            .json(&json!({ "spec": spec, "origin": origin }))
            .send()
            .await
            .with_context(|| format!("reaching the core at {url}"))?,
    )
    .await?;
    let proposal = accepted["proposal"].as_str().unwrap_or_default().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::time::Instant::now() < deadline {
        let events = answer(
            with_token(http.get(format!("{url}/v1/events?type=tool.registered,tool.rejected&limit=200")))
                .send()
                .await?,
        )
        .await?;
        let verdict = events["events"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["event"]["data"]["proposal"] == proposal.as_str());
        if let Some(verdict) = verdict {
            let data = &verdict["event"]["data"];
            let mut stdout = crate::commands::stdout();
            if verdict["event"]["type"] == "tool.registered" {
                writeln!(stdout, "registered {} version {}", data["name"].as_str().unwrap_or("?"), data["version"])?;
                return Ok(true);
            }
            writeln!(stdout, "rejected: {}", data["reason"].as_str().unwrap_or("?"))?;
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no verdict on proposal {proposal} within 15s: is the core's Builder agent running?")
}

/// Lists recent problems with their status.
pub(crate) async fn problems(url: &str, limit: usize) -> anyhow::Result<bool> {
    let body = answer(
        with_token(client()?.get(format!("{url}/v1/problems?limit={limit}")))
            .send()
            .await
            .with_context(|| format!("reaching the core at {url}"))?,
    )
    .await?;
    let problems = body["problems"].as_array().map(Vec::as_slice).unwrap_or_default();
    nothing_if_empty(problems, "no problems recorded");
    let mut stdout = crate::commands::stdout();
    for item in problems {
        let problem = &item["problem"];
        writeln!(
            stdout,
            "{}  {}  {:<17}  {:<20}  {}",
            problem["detected_at"].as_str().unwrap_or("?"),
            problem["id"].as_str().unwrap_or("?"),
            item["status"].as_str().unwrap_or("?"),
            problem["kind"].as_str().unwrap_or("?"),
            problem["summary"].as_str().unwrap_or("?")
        )?;
    }
    Ok(true)
}

/// Lists the dead letters of a stream, newest first.
pub(crate) async fn dead_letters(url: &str, stream: &str, limit: usize) -> anyhow::Result<bool> {
    let body = answer(
        with_token(client()?.get(format!("{url}/v1/dead-letters?stream={stream}&limit={limit}")))
            .send()
            .await
            .with_context(|| format!("reaching the core at {url}"))?,
    )
    .await?;
    let mut stdout = crate::commands::stdout();
    let items = body["dead_letters"].as_array().map(Vec::as_slice).unwrap_or_default();
    crate::commands::remote::nothing_if_empty(items, "no dead letters");
    for letter in items {
        let data = &letter["event"]["data"];
        writeln!(
            stdout,
            "{:>8}  group {:<12} {:<24} {}  ({})",
            letter["offset"],
            data["group"].as_str().unwrap_or("?"),
            data["event"]["type"].as_str().unwrap_or("?"),
            data["event"]["id"].as_str().unwrap_or("?"),
            data["reason"].as_str().unwrap_or("?")
        )?;
    }
    Ok(true)
}

/// Publishes dead-lettered events to their stream again.
pub(crate) async fn redrive(url: &str, stream: &str, offsets: &[u64]) -> anyhow::Result<bool> {
    let body = answer(
        with_token(client()?.post(format!("{url}/v1/dead-letters/redrive")))
            .json(&json!({ "stream": stream, "offsets": offsets }))
            .send()
            .await
            .with_context(|| format!("reaching the core at {url}"))?,
    )
    .await?;
    let mut stdout = crate::commands::stdout();
    for item in body["redriven"].as_array().into_iter().flatten() {
        writeln!(stdout, "dead letter {} → {stream} offset {}", item["dead_letter_offset"], item["offset"])?;
    }
    Ok(true)
}
