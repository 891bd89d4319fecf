//! `aiops approvals`, `aiops healing` and `aiops audit`: the humans in the healing loop, over
//! a running core's API.

use std::io::Write;

use anyhow::Context;
use serde_json::{json, Value};

use super::remote::{answer, client, with_token};

async fn get(url: &str, path: &str) -> anyhow::Result<Value> {
    answer(
        with_token(client()?.get(format!("{url}{path}")))
            .send()
            .await
            .with_context(|| format!("reaching the core at {url}"))?,
    )
    .await
}

async fn post(url: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
    answer(
        with_token(client()?.post(format!("{url}{path}")))
            .json(body)
            .send()
            .await
            .with_context(|| format!("reaching the core at {url}"))?,
    )
    .await
}

/// Lists approval requests (pending ones, or all with their outcome).
pub(crate) async fn approvals(url: &str, all: bool) -> anyhow::Result<bool> {
    let body = get(url, if all { "/v1/approvals?status=all" } else { "/v1/approvals" }).await?;
    let mut out = crate::commands::stdout();
    let items = body["approvals"].as_array().map(Vec::as_slice).unwrap_or_default();
    crate::commands::remote::nothing_if_empty(items, "no approval requests");
    for approval in items {
        writeln!(
            out,
            "{}  {:<8}  {:<18}  {:<16}  {}  (expires {})",
            approval["approval_id"].as_str().unwrap_or("?"),
            approval["status"].as_str().unwrap_or("?"),
            approval["candidate"]["tool"].as_str().unwrap_or("?"),
            approval["problem"]["service"].as_str().unwrap_or("?"),
            approval["reason"].as_str().unwrap_or(""),
            approval["expires_at"].as_str().unwrap_or("?"),
        )?;
        if let Some(decision) = approval["decision"].as_object() {
            let by = decision.get("by").and_then(Value::as_str).unwrap_or("?");
            let why = decision.get("reason").and_then(Value::as_str).unwrap_or("");
            writeln!(out, "    decided by {by}: {why}")?;
        }
    }
    Ok(true)
}

/// Approves or denies one request.
pub(crate) async fn decide(url: &str, id: &str, approve: bool, reason: &str) -> anyhow::Result<bool> {
    let verb = if approve { "approve" } else { "deny" };
    let body = post(url, &format!("/v1/approvals/{id}/{verb}"), &json!({ "reason": reason })).await?;
    writeln!(
        crate::commands::stdout(),
        "{id} {} by {}",
        body["status"].as_str().unwrap_or("?"),
        body["by"].as_str().unwrap_or("?")
    )?;
    Ok(true)
}

/// Prints the kill switch's state.
pub(crate) async fn status(url: &str) -> anyhow::Result<bool> {
    let body = get(url, "/v1/healing").await?;
    let switch = &body["kill_switch"];
    let mut out = crate::commands::stdout();
    if switch["engaged"] == true {
        let change = &switch["last_change"];
        writeln!(
            out,
            "kill switch ENGAGED by {} at {}: {}",
            change["by"].as_str().unwrap_or("?"),
            change["at"].as_str().unwrap_or("?"),
            change["reason"].as_str().unwrap_or("")
        )?;
    } else {
        writeln!(out, "kill switch released: healing runs")?;
    }
    Ok(true)
}

/// Engages (stop) or releases (resume) the kill switch.
pub(crate) async fn kill_switch(url: &str, engaged: bool, reason: &str) -> anyhow::Result<bool> {
    post(url, "/v1/healing/kill-switch", &json!({ "engaged": engaged, "reason": reason })).await?;
    status(url).await
}

/// Prints the audit log, newest first.
pub(crate) async fn audit(url: &str, limit: usize) -> anyhow::Result<bool> {
    let body = get(url, &format!("/v1/audit?limit={limit}")).await?;
    let mut out = crate::commands::stdout();
    let items = body["entries"].as_array().map(Vec::as_slice).unwrap_or_default();
    crate::commands::remote::nothing_if_empty(items, "no audit entries");
    for entry in items {
        writeln!(
            out,
            "{:>6}  {}  {:<12}  {:<22}  {:<16}  {}",
            entry["seq"],
            entry["at"].as_str().unwrap_or("?"),
            entry["actor"].as_str().unwrap_or("?"),
            entry["action"].as_str().unwrap_or("?"),
            entry["subject"].as_str().unwrap_or("?"),
            entry["detail"]
        )?;
    }
    Ok(true)
}
