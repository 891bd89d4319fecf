//! Diagnosis reads the registry's dependency graph: a failing dependency, even two hops away,
//! explains a service's errors, and its fix acts on the dependency.

use std::time::Duration;

use aiops_agents::{Diagnostic, DiagnosticConfig};
use aiops_model::{HealthStatus, HypothesisSource};
use aiops_registry::{CheckRecord, ServiceRegistration};

use crate::support::{context, pool_problem};

#[tokio::test]
async fn a_failing_dependency_two_hops_away_explains_the_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let mut bookmarks = ServiceRegistration::new("bookmarks", "bookmarks-1", "http://127.0.0.1:1");
    bookmarks.dependencies = vec!["search".into()];
    let mut search = ServiceRegistration::new("search", "search-1", "http://127.0.0.1:2");
    search.dependencies = vec!["index-db".into()];
    let mut db = ServiceRegistration::new("index-db", "index-db-1", "http://127.0.0.1:3");
    db.ttl_secs = Some(5);
    for registration in [bookmarks, search, db] {
        ctx.registry.register(registration).await.unwrap();
    }
    let mut problem = pool_problem();
    problem.evidence = vec!["GET /api/bookmarks/search returned 502 (seen 30 times)".into()];

    // Nothing failing yet: no registry hypothesis, and the dependency pattern does not fit.
    let diagnostic = Diagnostic::new(DiagnosticConfig::default());
    let healthy = diagnostic.diagnose(&ctx, &problem).await.unwrap();
    assert!(healthy.hypotheses.iter().all(|h| !matches!(h.source, HypothesisSource::Registry { .. })));

    let due = ctx.registry.claim_due_checks("test", Duration::from_secs(10), 10).await.unwrap();
    let ttl = due.iter().find(|d| d.instance.registration.name == "index-db").unwrap();
    let record = CheckRecord {
        instance_id: "index-db-1".into(),
        check_id: ttl.state.id.clone(),
        status: HealthStatus::Critical,
        output: "no heartbeat for 9.0s (ttl 5s)".into(),
        failures: 1,
        successes: 0,
        next_due: chrono::Utc::now() + chrono::Duration::hours(1),
        heartbeat_lost: true,
    };
    ctx.registry.record_check("test", record).await.unwrap();

    let diagnosis = diagnostic.diagnose(&ctx, &problem).await.unwrap();
    let registry = diagnosis
        .hypotheses
        .iter()
        .find(|h| matches!(h.source, HypothesisSource::Registry { .. }))
        .expect("a registry hypothesis");
    let HypothesisSource::Registry { dependency, status, path } = &registry.source else { unreachable!() };
    assert_eq!((dependency.as_str(), *status), ("index-db", HealthStatus::Critical));
    assert_eq!(path, &["bookmarks", "search", "index-db"]);
    assert!(registry.evidence[0].contains("no heartbeat"), "{:?}", registry.evidence);
    assert!(
        diagnosis.hypotheses.iter().any(
            |h| matches!(&h.source, HypothesisSource::Pattern { pattern_id, .. } if pattern_id == "dependency-down")
        ),
        "the dependency evidence lets the dependency-down pattern match: {:?}",
        diagnosis.hypotheses
    );
    // The dependency's own failure (its process is gone) has a fix, tried first, on it.
    let first = &diagnosis.candidates[0];
    assert_eq!(
        (first.tool.as_str(), first.target_service.as_deref(), first.solution_id.as_str()),
        ("start_service", Some("index-db"), "solution:start_service@index-db"),
        "{:?}",
        diagnosis.candidates
    );
    assert!(diagnosis.candidates[1..].iter().all(|c| c.target_service.is_none()), "{:?}", diagnosis.candidates);
}

/// Stores `attempts` outcomes of `tool` on past occurrences of `problem`, as the Learning
/// agent does.
async fn learned(
    ctx: &aiops_agents::AgentContext,
    problem: &aiops_model::Problem,
    tool: &str,
    attempts: u32,
    successes: u32,
) {
    let solution = format!("solution:{tool}");
    let data = serde_json::json!({ "tool": tool, "params": {} });
    learned_solution(ctx, problem, &solution, data, attempts, successes).await;
}

/// As [`learned`], for the solution node `solution` with its `data`.
async fn learned_solution(
    ctx: &aiops_agents::AgentContext,
    problem: &aiops_model::Problem,
    solution: &str,
    data: serde_json::Value,
    attempts: u32,
    successes: u32,
) {
    use aiops_knowledge::{Node, NodeKind, Outcome};
    let tool = data["tool"].as_str().unwrap_or_default().to_owned();
    ctx.knowledge.upsert_node(Node::new(solution, NodeKind::Solution, &tool, data)).await.unwrap();
    for n in 0..attempts {
        let past = format!("past-{solution}-{n}");
        let mut node = Node::new(
            &past,
            NodeKind::Problem,
            &problem.summary,
            serde_json::json!({
                "service": problem.service, "kind": problem.kind.as_str(),
                "signature": problem.signature(), "fingerprint": problem.fingerprint(),
            }),
        );
        node.embedding = Some(ctx.embedder.embed(&[problem.signature()]).await.unwrap().remove(0));
        ctx.knowledge.upsert_node(node).await.unwrap();
        let outcome = Outcome {
            action_id: format!("action-{past}"),
            pattern: None,
            problem_id: past,
            solution_id: solution.to_owned(),
            success: n < successes,
            recover_ms: None,
            at: chrono::Utc::now(),
        };
        ctx.knowledge.record_outcome(&outcome).await.unwrap();
    }
}

#[tokio::test]
async fn thompson_sampling_mostly_picks_the_best_record_and_still_explores() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let problem = pool_problem();
    // reset_db_pool healed this very problem 9 times of 10; clear_cache once of once.
    learned(&ctx, &problem, "reset_db_pool", 10, 9).await;
    learned(&ctx, &problem, "clear_cache", 1, 1).await;
    let config = DiagnosticConfig { similar_k: 20, ..DiagnosticConfig::default() };
    let diagnostic = Diagnostic::new(config);
    let mut firsts = std::collections::HashMap::new();
    for _ in 0..200 {
        let diagnosis = diagnostic.diagnose(&ctx, &problem).await.unwrap();
        let first = &diagnosis.candidates[0];
        assert!(first.rationale.contains("proven on this very problem"), "{}", first.rationale);
        *firsts.entry(first.tool.clone()).or_insert(0) += 1;
    }
    let best = firsts.get("reset_db_pool").copied().unwrap_or(0);
    let explored = firsts.get("clear_cache").copied().unwrap_or(0);
    // P(Beta(2, 1) > Beta(10, 2)) is about 0.27.
    assert!((110..=185).contains(&best), "{firsts:?}");
    assert!(explored >= 15, "the thinner record must still get tried sometimes: {firsts:?}");
}

/// A fix learned for a dependency (`start_service` on `titles`) is not proposed once that
/// dependency is healthy again, however well it did before: it would act on the wrong thing.
#[tokio::test]
async fn a_learned_fix_of_a_dependency_applies_only_while_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let problem = pool_problem();
    let solution = "solution:start_service@titles";
    let data = serde_json::json!({ "tool": "start_service", "params": {}, "target_service": "titles" });
    learned_solution(&ctx, &problem, solution, data, 1, 1).await;

    let diagnosis = Diagnostic::new(DiagnosticConfig::default()).diagnose(&ctx, &problem).await.unwrap();
    assert!(!diagnosis.similar_problems.is_empty(), "the past problem is found");
    assert!(
        diagnosis.candidates.iter().all(|c| c.solution_id != solution),
        "no dependency is failing: {:?}",
        diagnosis.candidates
    );
}
