//! The shipped pattern library against the shipped tools: each universal failure is
//! recognised from realistic evidence, and every fix a pattern proposes is a shipped tool.

use std::collections::BTreeMap;

use aiops_construction::{Secrets, ToolCatalog};
use aiops_model::{Problem, ProblemKind, Severity};
use aiops_patterns::PatternLibrary;
use chrono::Utc;

fn problem(kind: ProblemKind, evidence: &str) -> Problem {
    Problem {
        id: "p".into(),
        service: "svc".into(),
        instance_id: None,
        kind,
        severity: Severity::Error,
        summary: format!("svc: {}", kind.as_str()),
        detected_at: Utc::now(),
        first_seen: Utc::now(),
        evidence: vec![evidence.into()],
        metrics: BTreeMap::new(),
    }
}

#[test]
fn each_universal_failure_is_recognised_first_from_its_evidence() {
    use ProblemKind::*;
    let library = PatternLibrary::shipped().unwrap();
    let cases = [
        (HttpErrorRatio, "sqlx: pool timed out while waiting for an open connection", "db-pool-exhaustion"),
        (ServiceDown, "process 4711 killed by a signal: oom-kill (memory limit 512 MiB)", "memory-leak"),
        (LogErrorSpike, "write /var/lib/svc/uploads/1.bin: No space left on device (os error 28)", "disk-full"),
        (HttpLatency, "GET http://search:8080 took 4200 ms (p95 of the dependency)", "slow-dependency"),
        (HttpErrorRatio, "connection refused by dependency postgres:5432", "dependency-down"),
        (HttpErrorRatio, "errors began 40 s after deploy of release 2.4.1 (new version)", "bad-deploy"),
        (ServiceDown, "crash loop: restarted 6 times in 2 min, exited with exit code 101", "crash-loop"),
        (HealthCheckFailing, "GET https://svc/health: x509: certificate has expired", "certificate-expiry"),
        (HttpLatency, "export queue depth 12000, backlog growing, 40 jobs waiting per worker", "queue-backlog"),
        (HttpLatency, "cache miss ratio 0.97 after flush: cold cache, thundering herd on the db", "cache-stampede"),
        (
            HttpErrorRatio,
            "upstream maps.example.com answered 429 Too Many Requests (rate limit)",
            "upstream-rate-limited",
        ),
        (ServiceDown, "invalid setting in configuration: unknown key `listen_adress`", "bad-config"),
        (
            HttpLatency,
            "slow query: full table scan on orders took 900 ms (index orders_customer_idx missing)",
            "slow-queries",
        ),
    ];
    let capabilities: Vec<String> =
        ["cache.clear", "cache.warm", "db.reset_pool", "db.maintenance"].iter().map(|c| (*c).to_owned()).collect();
    for (kind, evidence, expected) in cases {
        let matches = library.match_problem(&problem(kind, evidence), &capabilities);
        let ids: Vec<&str> = matches.iter().map(|m| m.pattern.id.as_str()).collect();
        assert_eq!(ids.first().copied(), Some(expected), "{evidence:?} matched {ids:?}");
    }
    assert!(library.patterns().count() >= 12);
}

#[test]
fn every_fix_a_pattern_proposes_is_a_shipped_tool_with_its_parameters() {
    let library = PatternLibrary::shipped().unwrap();
    let tools = ToolCatalog::new(reqwest::Client::new(), Secrets::new()).with_shipped_tools().unwrap();
    for pattern in library.patterns() {
        for step in &pattern.remediation {
            let tool = tools.get(&step.tool).unwrap_or_else(|| panic!("{}: no tool {}", pattern.id, step.tool));
            let params = serde_json::to_value(&step.params).unwrap();
            tool.spec()
                .check_params(&params)
                .unwrap_or_else(|err| panic!("{}: {} rejects {params}: {err}", pattern.id, step.tool));
            assert!(tools.get(step.rollback_tool.as_deref().unwrap_or(&step.tool)).is_some());
        }
    }
}

#[tokio::test]
async fn a_changed_pattern_is_a_new_version_linked_by_evolves_into() {
    use aiops_knowledge::{Direction, KnowledgeStore, Relation, SqliteKnowledgeStore};

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteKnowledgeStore::open(&dir.path().join("kb.db"), 8).await.unwrap();
    let shipped = PatternLibrary::shipped().unwrap();
    let count = shipped.patterns().count();
    assert_eq!(aiops_agents::record_pattern_versions(&store, &shipped).await.unwrap(), count);
    assert_eq!(aiops_agents::record_pattern_versions(&store, &shipped).await.unwrap(), 0, "recorded once");

    let user = dir.path().join("patterns");
    std::fs::create_dir(&user).unwrap();
    let mut evolved = shipped.get("stale-cache").unwrap().clone();
    evolved.version = 2;
    evolved.verification.within_ms = 8000;
    std::fs::write(user.join("stale-cache.toml"), toml::to_string(&evolved).unwrap()).unwrap();
    let mut library = PatternLibrary::shipped().unwrap();
    library.load_dir(&user).unwrap();
    assert_eq!(aiops_agents::record_pattern_versions(&store, &library).await.unwrap(), 1);
    let next = store
        .neighbors(&aiops_agents::pattern_node_id("stale-cache", 1), Some(Relation::EvolvesInto), Direction::Outgoing)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].1.id, "pattern:stale-cache@2");
    assert_eq!(next[0].1.data["definition"]["verification"]["within_ms"], 8000);

    // Editing a recorded version in place would mix two patterns' statistics: refused.
    evolved.verification.within_ms = 9000;
    std::fs::write(user.join("stale-cache.toml"), toml::to_string(&evolved).unwrap()).unwrap();
    let mut library = PatternLibrary::shipped().unwrap();
    library.load_dir(&user).unwrap();
    let err = aiops_agents::record_pattern_versions(&store, &library).await.unwrap_err().to_string();
    assert!(err.contains("stale-cache version 2 differs") && err.contains("needs version 3"), "{err}");
}
