//! Problems no pattern explains are grouped into candidate patterns, offered for review with
//! a draft pattern file once enough of them came.

use aiops_agents::{Agent, Diagnostic, DiagnosticConfig, Learning, CLUSTER_READY_AT};
use aiops_model::{event_type, Envelope, HypothesisSource, ProblemKind};
use aiops_patterns::Pattern;

use crate::support::{context, control_events, pool_problem};

fn unknown(n: u32, evidence: &str) -> aiops_model::Problem {
    let mut problem = pool_problem();
    problem.id = format!("unknown-{n}");
    problem.kind = ProblemKind::LogErrorSpike;
    problem.summary = "billing: a new error appeared 12 times in 10 s".into();
    problem.evidence = vec![evidence.replace("{n}", &n.to_string())];
    problem
}

#[tokio::test]
async fn repeated_unexplained_problems_become_a_candidate_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let diagnostic = Diagnostic::new(DiagnosticConfig::default());
    let learning = Learning::new();
    let evidence = "invoice export {n} failed: ledger snapshot locked by reconciliation job {n}";
    for n in 0..CLUSTER_READY_AT as u32 {
        let diagnosis = diagnostic.diagnose(&ctx, &unknown(n, evidence)).await.unwrap();
        assert!(diagnosis.hypotheses.iter().all(|h| !matches!(h.source, HypothesisSource::Pattern { .. })));
        let event = Envelope::new("test", event_type::DIAGNOSIS_COMPLETED, serde_json::to_value(&diagnosis).unwrap());
        learning.handle(&ctx, &event).await.unwrap();
        learning.handle(&ctx, &event).await.unwrap();
    }
    let other = diagnostic.diagnose(&ctx, &unknown(9, "thumbnail renderer returned an empty frame")).await.unwrap();
    let event = Envelope::new("test", event_type::DIAGNOSIS_COMPLETED, serde_json::to_value(&other).unwrap());
    learning.handle(&ctx, &event).await.unwrap();

    let ready = aiops_agents::candidate_patterns(ctx.knowledge.as_ref()).await.unwrap();
    assert_eq!(ready.len(), 1, "only the repeated problem is ready");
    let candidate = &ready[0];
    assert_eq!(candidate.data["count"], CLUSTER_READY_AT, "a redelivered diagnosis counts once");
    let draft = candidate.data["draft_pattern"].as_str().expect("a draft pattern");
    let pattern = Pattern::parse(draft, "draft.toml").expect("the draft is a valid pattern file");
    assert_eq!(pattern.signature.kinds, [ProblemKind::LogErrorSpike]);
    for word in ["invoice", "ledger", "reconciliation"] {
        assert!(
            pattern.signature.evidence_any.iter().any(|k| k == word) || pattern.signature.evidence_any.len() == 4,
            "{draft}"
        );
    }
    let updates = control_events(&ctx, event_type::KNOWLEDGE_UPDATED).await;
    assert_eq!(updates.iter().filter(|e| e.event.data["candidate_pattern"].is_string()).count(), 1, "announced once");

    // A problem a pattern explains is not clustered.
    let explained = diagnostic.diagnose(&ctx, &pool_problem()).await.unwrap();
    let event = Envelope::new("test", event_type::DIAGNOSIS_COMPLETED, serde_json::to_value(&explained).unwrap());
    learning.handle(&ctx, &event).await.unwrap();
    let all = ctx.knowledge.nodes(aiops_knowledge::NodeKind::Insight, 1000).await.unwrap();
    let candidates = all.iter().filter(|n| n.id.starts_with(aiops_agents::CANDIDATE_PREFIX)).count();
    assert_eq!(candidates, 2);
}
