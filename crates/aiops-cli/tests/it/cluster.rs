//! Several `aiops serve` processes on one Redis: they share each agent's work, a killed
//! instance's unfinished work moves to the other, and nothing acknowledged is lost when a
//! server is killed or Redis restarts mid-stream. Duplicates are counted and reported.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aiops_testkit::{RedisOptions, RedisServer};
use serde_json::{json, Value};

use crate::support::{free_port, serve, Server};

async fn start(data_dir: &std::path::Path, redis_url: &str) -> Server {
    let env = [
        ("AIOPS__EVENTS__BACKEND", "redis"),
        ("AIOPS__EVENTS__URL", redis_url),
        ("AIOPS__EVENTS__VISIBILITY_TIMEOUT_MS", "1000"),
        ("AIOPS__EVENTS__COMMAND_TIMEOUT_MS", "1000"),
    ];
    serve(data_dir, free_port(), &env).await
}

fn spec(n: usize) -> String {
    format!("name = \"probe_{n}\"\nversion = 1\ndescription = \"probe {n}\"\nrisk = \"low\"\n\n[kind]\ntype = \"builtin\"\nname = \"noop_probe\"\n")
}

async fn propose(http: &reqwest::Client, url: &str, from: usize, to: usize) -> Vec<String> {
    let mut proposals = Vec::new();
    for n in from..to {
        let response = http.post(format!("{url}/v1/tools")).json(&json!({ "spec": spec(n) })).send().await.unwrap();
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        proposals.push(body["proposal"].as_str().unwrap().to_owned());
    }
    proposals
}

/// Verdicts per proposal id, and per instance (the event source names the instance).
async fn verdicts(http: &reqwest::Client, url: &str) -> (HashMap<String, usize>, HashMap<String, usize>) {
    let body: Value = http
        .get(format!("{url}/v1/events?type=tool.registered,tool.rejected&limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut per_proposal = HashMap::new();
    let mut per_instance = HashMap::new();
    for stored in body["events"].as_array().unwrap() {
        let event = &stored["event"];
        *per_proposal.entry(event["data"]["proposal"].as_str().unwrap().to_owned()).or_default() += 1;
        *per_instance.entry(event["source"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    (per_proposal, per_instance)
}

async fn wait_for_verdicts(http: &reqwest::Client, url: &str, proposals: &[String]) -> HashMap<String, usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (per_proposal, _) = verdicts(http, url).await;
        if proposals.iter().all(|p| per_proposal.contains_key(p)) {
            return per_proposal;
        }
        assert!(Instant::now() < deadline, "not every proposal got a verdict");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_instances_share_work_and_a_killed_one_hands_its_work_over() {
    let redis = RedisServer::start_with(RedisOptions::default().aof(true)).expect("start redis-server");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(dir_a.path(), &redis.url()).await;
    let mut b = start(dir_b.path(), &redis.url()).await;
    let http = reqwest::Client::new();

    let first = propose(&http, &a.url, 0, 200).await;
    let per_proposal = wait_for_verdicts(&http, &a.url, &first).await;
    let duplicates: usize = first.iter().map(|p| per_proposal[p] - 1).sum();
    assert_eq!(duplicates, 0, "with no consumer dying, no event may be handled twice");
    let (_, per_instance) = verdicts(&http, &a.url).await;
    eprintln!("verdicts per instance: {per_instance:?}");
    assert_eq!(per_instance.len(), 2, "both instances must take part: {per_instance:?}");

    // Kill B while proposals stream in: whatever B held unfinished is reclaimed by A.
    let second = {
        let (http, url) = (http.clone(), a.url.clone());
        tokio::spawn(async move { propose(&http, &url, 200, 400).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let second = second.await.unwrap();
    let per_proposal = wait_for_verdicts(&http, &a.url, &second).await;
    let duplicates: usize = second.iter().map(|p| per_proposal[p] - 1).sum();
    eprintln!("after killing an instance: {} proposals, {duplicates} handled twice", second.len());
    assert!(duplicates <= 128, "at most one batch may be handled twice, got {duplicates}");
}

#[tokio::test]
async fn nothing_acknowledged_is_lost_when_the_server_is_killed_or_redis_restarts() {
    let mut redis = RedisServer::start_with(RedisOptions::default().aof(true)).expect("start redis-server");
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &redis.url()).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap();
    let event =
        |n: usize| json!({ "id": format!("e-{n}"), "source": "crash/1", "type": "test.crash", "data": { "n": n } });
    let mut accepted = Vec::new();
    let mut refused = 0;
    let redis_down = 100..105;
    for n in 0..300 {
        if n == redis_down.start {
            redis.stop().unwrap();
        }
        if n == redis_down.end {
            redis.restart().unwrap();
        }
        if n == 200 {
            server.child.kill().unwrap();
            server.child.wait().unwrap();
            server = start(dir.path(), &redis.url()).await;
        }
        // A client keeps an event until it is accepted, resending the same id; while Redis is
        // down it tries once (each try waits out the server's Redis timeout).
        let max_tries = if redis_down.contains(&n) { 1 } else { 20 };
        for _ in 0..max_tries {
            match http.post(format!("{}/v1/events", server.url)).json(&event(n)).send().await {
                Ok(response) if response.status() == 202 => {
                    accepted.push(format!("e-{n}"));
                    break;
                }
                _ => refused += 1,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let body: Value = http
        .get(format!("{}/v1/events?stream=telemetry&type=test.crash&order=asc&limit=1000", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored: Vec<String> =
        body["events"].as_array().unwrap().iter().map(|e| e["event"]["id"].as_str().unwrap().to_owned()).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &stored {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let lost: Vec<&String> = accepted.iter().filter(|id| !counts.contains_key(id.as_str())).collect();
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "{} accepted, {refused} refusals while Redis was down, {} stored, {duplicates} duplicates",
        accepted.len(),
        stored.len()
    );
    assert!(lost.is_empty(), "accepted events lost: {lost:?}");
    assert_eq!(duplicates, 0);
    assert!(refused > 0, "Redis being down must show as refusals, not silent acceptance");
}
