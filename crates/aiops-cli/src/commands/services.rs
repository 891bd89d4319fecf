//! `aiops services`: the registry of a running core over its API.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use super::remote::{answer, client, with_token};

/// Which instances `list` and `watch` show.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    pub(crate) name: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) capability: Option<String>,
    /// Include instances that are not passing.
    pub(crate) all: bool,
}

impl Filter {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![("healthy", (!self.all).to_string())];
        for (key, value) in [("name", &self.name), ("tag", &self.tag), ("capability", &self.capability)] {
            if let Some(value) = value {
                query.push((key, value.clone()));
            }
        }
        query
    }
}

async fn get(url: &str, path: &str, query: &[(&str, String)], timeout: Option<Duration>) -> anyhow::Result<Value> {
    let mut target = reqwest::Url::parse(&format!("{url}{path}")).with_context(|| format!("{url} is not a URL"))?;
    target.query_pairs_mut().extend_pairs(query);
    let mut request = with_token(client()?.get(target));
    if let Some(timeout) = timeout {
        request = request.timeout(timeout);
    }
    answer(request.send().await.with_context(|| format!("reaching the core at {url}"))?).await
}

fn print_instances(out: &mut impl Write, body: &Value) -> std::io::Result<()> {
    let items = body["services"].as_array().map(Vec::as_slice).unwrap_or_default();
    crate::commands::remote::nothing_if_empty(items, "no instances match");
    for instance in items {
        writeln!(
            out,
            "{:<20} {:<28} {:<9} {:<28} {}",
            instance["name"].as_str().unwrap_or("?"),
            instance["instance_id"].as_str().unwrap_or("?"),
            instance["status"].as_str().unwrap_or("?"),
            instance["address"].as_str().unwrap_or("?"),
            instance["status_reason"].as_str().unwrap_or(""),
        )?;
    }
    Ok(())
}

/// Lists instances.
pub(crate) async fn list(url: &str, filter: &Filter) -> anyhow::Result<bool> {
    let body = get(url, "/v1/services", &filter.query(), None).await?;
    print_instances(&mut crate::commands::stdout(), &body)?;
    Ok(true)
}

/// Prints one instance with its checks, as JSON.
pub(crate) async fn show(url: &str, id: &str) -> anyhow::Result<bool> {
    let body = get(url, &format!("/v1/services/{id}"), &[], None).await?;
    writeln!(crate::commands::stdout(), "{}", serde_json::to_string_pretty(&body)?)?;
    Ok(true)
}

/// Registers the instance described in a TOML or JSON file (checked here first, so that
/// mistakes name the file and line).
pub(crate) async fn register(url: &str, file: &Path) -> anyhow::Result<bool> {
    let registration = aiops_registry::load_registration_file(file)?;
    let body = answer(
        with_token(client()?.post(format!("{url}/v1/services")))
            .json(&registration)
            .send()
            .await
            .with_context(|| format!("reaching the core at {url}"))?,
    )
    .await?;
    writeln!(
        crate::commands::stdout(),
        "registered {} ({}), status {}",
        body["instance_id"].as_str().unwrap_or("?"),
        body["name"].as_str().unwrap_or("?"),
        body["status"].as_str().unwrap_or("?")
    )?;
    Ok(true)
}

/// Deregisters an instance.
pub(crate) async fn deregister(url: &str, id: &str) -> anyhow::Result<bool> {
    answer(
        with_token(client()?.delete(format!("{url}/v1/services/{id}")))
            .send()
            .await
            .with_context(|| format!("reaching the core at {url}"))?,
    )
    .await?;
    writeln!(crate::commands::stdout(), "deregistered {id}")?;
    Ok(true)
}

/// Picks a healthy instance of a service and prints its address.
pub(crate) async fn pick(url: &str, name: &str, strategy: &str, key: Option<&str>) -> anyhow::Result<bool> {
    let mut query = vec![("strategy", strategy.to_owned())];
    if let Some(key) = key {
        query.push(("key", key.to_owned()));
    }
    let body = get(url, &format!("/v1/services/{name}/pick"), &query, None).await?;
    let instance = &body["instance"];
    writeln!(
        crate::commands::stdout(),
        "{} {}",
        instance["instance_id"].as_str().unwrap_or("?"),
        instance["address"].as_str().unwrap_or("?")
    )?;
    Ok(true)
}

/// Prints the dependency graph and what failing dependencies impact.
pub(crate) async fn graph(url: &str) -> anyhow::Result<bool> {
    let body = get(url, "/v1/registry/graph", &[], None).await?;
    let mut out = crate::commands::stdout();
    for service in body["services"].as_array().into_iter().flatten() {
        let name = service["name"].as_str().unwrap_or("?");
        let status = service["status"].as_str().unwrap_or("unregistered");
        let depends: Vec<&str> = body["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["from"] == name)
            .filter_map(|e| e["to"].as_str())
            .collect();
        let passing = format!("{}/{} passing", service["passing"], service["instances"]);
        writeln!(out, "{name:<20} {status:<12} {passing:<12} -> {}", depends.join(", "))?;
    }
    for impact in body["impacted"].as_array().into_iter().flatten() {
        for failing in impact["failing_dependencies"].as_array().into_iter().flatten() {
            let path: Vec<&str> = failing["path"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            writeln!(
                out,
                "impact: {} is {} via {}",
                failing["service"].as_str().unwrap_or("?"),
                failing["status"].as_str().unwrap_or("?"),
                path.join(" -> ")
            )?;
        }
    }
    Ok(true)
}

/// Prints the matching instances, then again after every change, until interrupted.
pub(crate) async fn watch(url: &str, filter: &Filter) -> anyhow::Result<bool> {
    let mut index = 0_u64;
    loop {
        let mut query = filter.query();
        query.push(("index", index.to_string()));
        query.push(("wait_ms", "60000".to_owned()));
        let body = get(url, "/v1/services", &query, Some(Duration::from_secs(90))).await?;
        let next = body["index"].as_u64().unwrap_or(index);
        if next != index {
            let mut out = crate::commands::stdout();
            writeln!(out, "# index {next}")?;
            print_instances(&mut out, &body)?;
            out.flush()?;
            index = next;
        }
    }
}
