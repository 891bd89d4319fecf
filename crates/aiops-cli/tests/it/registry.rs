//! Two `aiops serve` processes share one registry on PostgreSQL: each check runs once, not
//! once per instance; when one instance is killed its checks move to the other. The
//! `aiops services` commands and the client library's picks work against either.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiops_client::{AiopsClient, ClientConfig, PickError, PickStrategy};
use aiops_testkit::PostgresServer;
use serde_json::Value;

use crate::support::{free_port, serve, Server};

const CHECK_INTERVAL_MS: u64 = 500;

async fn start(data_dir: &std::path::Path, pg_url: &str) -> Server {
    let interval = CHECK_INTERVAL_MS.to_string();
    let env = [
        ("AIOPS__KNOWLEDGE__BACKEND", "postgres"),
        ("AIOPS_KNOWLEDGE_URL", pg_url),
        ("AIOPS__AI__EMBEDDER__BACKEND", "hashing"),
        ("AIOPS__AI__EMBEDDER__DIMENSIONS", "384"),
        ("AIOPS__REGISTRY__INTERVAL_MS", interval.as_str()),
        ("AIOPS__REGISTRY__LEASE_MS", "1500"),
    ];
    serve(data_dir, free_port(), &env).await
}

/// A real HTTP target that counts how often its health endpoint is checked.
async fn counted_target() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, hits)
}

async fn aiops(args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_aiops")).args(args).output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Who ran the `http` check of `web-1` last, as the registry says.
async fn checked_by(http: &reqwest::Client, url: &str) -> Option<String> {
    let body: Value = http.get(format!("{url}/v1/services/web-1")).send().await.ok()?.json().await.ok()?;
    let checks = body["check_states"].as_array()?;
    checks.iter().find(|c| c["id"] == "http")?["checked_by"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn two_cores_run_each_check_once_and_a_killed_cores_checks_move() {
    let pg = PostgresServer::start().expect("start postgres with pgvector");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = start(dir_a.path(), &pg.url()).await;
    let b = start(dir_b.path(), &pg.url()).await;
    let (owner_a, owner_b) = (format!("aiops-{}-", a.child.id()), format!("aiops-{}-", b.child.id()));
    let (address, hits) = counted_target().await;
    let http = reqwest::Client::new();

    // A bad file is refused before anything is sent, naming the file and line.
    let bad = dir_a.path().join("bad.toml");
    std::fs::write(&bad, "name = \"web\"\ninstance_id = \"web-1\"\naddress = \"nowhere\"\n").unwrap();
    let (ok, _, stderr) = aiops(&["services", "register", bad.to_str().unwrap(), "--url", &a.url]).await;
    assert!(!ok);
    assert!(stderr.contains("bad.toml") && stderr.contains("address"), "{stderr}");

    let file = dir_a.path().join("web.toml");
    let registration = format!(
        "name = \"web\"\ninstance_id = \"web-1\"\naddress = \"{address}\"\ndependencies = [\"db\"]\n\n\
         [[checks]]\nid = \"http\"\nkind = \"http\"\nurl = \"{address}/health\"\nbody_contains = \"ok\"\n"
    );
    std::fs::write(&file, registration).unwrap();
    let (ok, stdout, stderr) = aiops(&["services", "register", file.to_str().unwrap(), "--url", &a.url]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("registered web-1 (web)"), "{stdout}");

    // Registered through A, seen and checked through B: one registry.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, stdout, _) = aiops(&["services", "list", "--name", "web", "--url", &b.url]).await;
        if stdout.contains("web-1") && stdout.contains("passing") {
            break;
        }
        assert!(Instant::now() < deadline, "web-1 never passed: {stdout}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Both cores tick every 250 ms; the check is due 500 ms after its last run. Run once per
    // due time, that is about 9 runs in 6 s (measured); run by each core, about 18.
    let mut owners = HashSet::new();
    let before = hits.load(Ordering::SeqCst);
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(6) {
        if let Some(owner) = checked_by(&http, &a.url).await {
            owners.insert(owner);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let runs = hits.load(Ordering::SeqCst) - before;
    assert!((6..=14).contains(&runs), "{runs} runs in 6 s at one per {CHECK_INTERVAL_MS} ms");
    assert!(owners.iter().all(|o| o.starts_with(&owner_a) || o.starts_with(&owner_b)), "{owners:?}");

    // Client library picks, through either core.
    let config = ClientConfig::new(&b.url, "caller", "http://127.0.0.1:1");
    let client = AiopsClient::start(config).unwrap();
    let picked = client.pick("web", PickStrategy::RoundRobin, None).await.unwrap();
    assert_eq!((picked.instance_id.as_str(), picked.address.as_str()), ("web-1", address.as_str()));
    assert!(matches!(client.pick("nope", PickStrategy::RoundRobin, None).await, Err(PickError::UnknownService(_))));
    let (ok, stdout, _) =
        aiops(&["services", "pick", "web", "--strategy", "consistent_hash", "--key", "u1", "--url", &a.url]).await;
    assert!(ok && stdout.starts_with("web-1 "), "{stdout}");
    let (ok, stdout, _) = aiops(&["services", "graph", "--url", &a.url]).await;
    assert!(ok && stdout.contains("web") && stdout.contains("-> db"), "{stdout}");
    client.shutdown().await;

    // Kill A without a chance to clean up; its lease (1.5 s) runs out and B runs everything.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let before = hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let runs = hits.load(Ordering::SeqCst) - before;
    assert!((3..=7).contains(&runs), "{runs} runs in 3 s after the kill");
    let owner = checked_by(&http, &b.url).await.unwrap();
    assert!(owner.starts_with(&owner_b), "{owner} should be the survivor {owner_b}");
    let (_, stdout, _) = aiops(&["services", "show", "web-1", "--url", &b.url]).await;
    assert!(stdout.contains("\"status\": \"passing\""), "{stdout}");
}

#[tokio::test]
async fn services_from_a_directory_are_registered_at_start_and_a_bad_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let services = dir.path().join("services");
    std::fs::create_dir(&services).unwrap();
    let database = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = database.local_addr().unwrap();
    std::fs::write(
        services.join("postgres.toml"),
        format!(
            "name = \"postgres\"\ninstance_id = \"pg-1\"\naddress = \"http://{target}\"\n\n\
             [[checks]]\nkind = \"tcp\"\ntarget = \"{target}\"\n\n\
             [[checks]]\nkind = \"command\"\nargv = [\"true\"]\n"
        ),
    )
    .unwrap();
    let services_dir = services.to_str().unwrap();
    let server = serve(&dir.path().join("data"), free_port(), &[("AIOPS__REGISTRY__SERVICES_DIR", services_dir)]).await;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let instance = loop {
        let body: Value =
            http.get(format!("{}/v1/services/pg-1", server.url)).send().await.unwrap().json().await.unwrap();
        if body["status"] == "passing" {
            break body;
        }
        assert!(Instant::now() < deadline, "pg-1 never passed: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ids: Vec<&str> =
        instance["check_states"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["tcp-1", "command-2"]);
    drop(server);

    std::fs::write(
        services.join("web.toml"),
        "name = \"web\"\ninstance_id = \"w\"\naddress = \"http://h:1\"\nchecks = 3\n",
    )
    .unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_aiops"))
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port()), "--data-dir"])
        .arg(dir.path().join("data"))
        .env("AIOPS__REGISTRY__SERVICES_DIR", services_dir)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("web.toml") && stderr.contains("line 4"), "{stderr}");
    drop(database);
}
