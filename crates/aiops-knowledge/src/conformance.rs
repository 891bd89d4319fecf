//! The conformance suite: what every [`KnowledgeStore`] backend must do.
//!
//! Checks are async fns over a [`Harness`]; [`knowledge_store_conformance!`] stamps out one
//! `#[tokio::test]` per check. Each check uses ids unique to itself.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::json;

use crate::{Direction, Edge, KnowledgeError, KnowledgeStore, Node, NodeKind, Outcome, Relation, SimilarityQuery};

/// Embedding dimension the harness must configure.
pub const DIMENSIONS: usize = 8;

/// Opens the backend under test.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Opens a store with [`DIMENSIONS`]; opening again must see what was stored before.
    async fn open(&self) -> Arc<dyn KnowledgeStore>;
}

fn uid(prefix: &str) -> String {
    format!("{prefix}-{}", chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default())
}

fn unit(hot: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIMENSIONS];
    v[hot % DIMENSIONS] = 1.0;
    v
}

fn problem(id: &str, embedding: Option<Vec<f32>>) -> Node {
    let mut node = Node::new(id, NodeKind::Problem, id, json!({"service": "svc", "kind": "http_error_ratio"}));
    node.embedding = embedding;
    node
}

fn solution(id: &str) -> Node {
    Node::new(id, NodeKind::Solution, id, json!({"tool": "clear_cache"}))
}

/// Invalid data, or an embedding of the wrong dimension, is refused and writes nothing.
pub async fn invalid_node_writes_nothing(harness: &dyn Harness) {
    let store = harness.open().await;
    let id = uid("bad");
    let err = store.upsert_node(problem(&id, Some(vec![1.0; DIMENSIONS + 1]))).await.unwrap_err();
    assert!(
        matches!(err, KnowledgeError::DimensionMismatch { expected: DIMENSIONS, actual } if actual == DIMENSIONS + 1)
    );
    let err = store.upsert_node(Node::new(&id, NodeKind::Solution, "x", json!({"not_tool": 1}))).await.unwrap_err();
    assert!(err.to_string().contains("data.tool"), "{err}");
    assert!(store.get_node(&id).await.unwrap().is_none());
}

/// Nodes, edges and the similarity index survive reopening.
pub async fn nodes_and_index_survive_reopen(harness: &dyn Harness) {
    let store = harness.open().await;
    let id = uid("persist");
    store.upsert_node(problem(&id, Some(unit(3)))).await.unwrap();
    drop(store);
    let store = harness.open().await;
    let node = store.get_node(&id).await.unwrap().expect("node lost on reopen");
    assert_eq!(node.embedding, Some(unit(3)));
    let problems = store.nodes(NodeKind::Problem, 10_000).await.unwrap();
    assert!(problems.iter().any(|n| n.id == id), "nodes() misses a stored node");
    assert!(problems.iter().all(|n| n.kind == NodeKind::Problem));
    let hits = store
        .similar(&SimilarityQuery {
            embedding: unit(3),
            kind: Some(NodeKind::Problem),
            k: 50,
            min_score: 0.99,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(hits.iter().any(|h| h.node.id == id), "index not rebuilt on reopen");
}

/// Linking needs both nodes; linking again updates the edge; deleting a node drops its edges.
pub async fn link_requires_both_nodes_and_upserts(harness: &dyn Harness) {
    let store = harness.open().await;
    let (p, s) = (uid("p"), uid("s"));
    store.upsert_node(problem(&p, None)).await.unwrap();
    let edge = |weight| Edge { from: s.clone(), to: p.clone(), relation: Relation::Solves, weight, data: json!({}) };
    assert!(matches!(store.link(edge(0.5)).await, Err(KnowledgeError::NotFound { id }) if id == s));
    store.upsert_node(solution(&s)).await.unwrap();
    store.link(edge(0.5)).await.unwrap();
    store.link(edge(0.75)).await.unwrap();
    let incoming = store.neighbors(&p, Some(Relation::Solves), Direction::Incoming).await.unwrap();
    assert_eq!(incoming.len(), 1);
    assert_eq!(incoming[0].0.weight, 0.75);
    assert_eq!(incoming[0].1.id, s);
    assert!(store.neighbors(&p, Some(Relation::Causes), Direction::Incoming).await.unwrap().is_empty());
    assert!(store.delete_node(&s).await.unwrap());
    assert!(store.neighbors(&p, None, Direction::Incoming).await.unwrap().is_empty());
    assert!(!store.unlink(&s, &p, Relation::Solves).await.unwrap());
}

/// Similarity returns at most k nodes of the kind asked, best first, none under min_score.
pub async fn similarity_is_ranked_filtered_and_bounded(harness: &dyn Harness) {
    let store = harness.open().await;
    let tag = uid("sim");
    let mut near = unit(5);
    near[6] = 0.3;
    store.upsert_node(problem(&format!("{tag}-exact"), Some(unit(5)))).await.unwrap();
    store.upsert_node(problem(&format!("{tag}-near"), Some(near))).await.unwrap();
    store.upsert_node(problem(&format!("{tag}-far"), Some(unit(1)))).await.unwrap();
    let mut sol = solution(&format!("{tag}-sol"));
    sol.embedding = Some(unit(5));
    store.upsert_node(sol).await.unwrap();
    let hits = store
        .similar(&SimilarityQuery {
            embedding: unit(5),
            kind: Some(NodeKind::Problem),
            k: 10,
            min_score: 0.5,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.node.id.as_str()).filter(|id| id.starts_with(&tag)).collect();
    assert_eq!(ids, vec![format!("{tag}-exact"), format!("{tag}-near")]);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    let one = store
        .similar(&SimilarityQuery { embedding: unit(5), kind: None, k: 1, min_score: 0.0, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let err = store
        .similar(&SimilarityQuery { embedding: vec![1.0; 3], kind: None, k: 1, min_score: 0.0, ..Default::default() })
        .await
        .unwrap_err();
    assert!(matches!(err, KnowledgeError::DimensionMismatch { .. }));
}

/// Concurrent outcome writers lose no update; the solves edge carries the per-problem record.
pub async fn concurrent_outcomes_are_all_counted(harness: &dyn Harness) {
    let store = harness.open().await;
    let (p, s) = (uid("cp"), uid("cs"));
    store.upsert_node(problem(&p, None)).await.unwrap();
    store.upsert_node(solution(&s)).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..20u64 {
        let store = store.clone();
        let (p, s) = (p.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            store
                .record_outcome(&Outcome {
                    action_id: format!("action-{n}"),
                    pattern: None,
                    problem_id: p,
                    solution_id: s,
                    success: n % 4 != 0,
                    recover_ms: Some(100),
                    at: Utc::now(),
                })
                .await
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stats = store.solution_stats(&s).await.unwrap().unwrap();
    assert_eq!((stats.attempts, stats.successes, stats.failures), (20, 15, 5));
    assert_eq!(stats.mean_recover_ms, Some(100.0));
    let edges = store.neighbors(&p, Some(Relation::Solves), Direction::Incoming).await.unwrap();
    assert_eq!(edges[0].0.data["attempts"], 20);
    assert_eq!(edges[0].0.data["successes"], 15);
    assert!((edges[0].0.weight - 0.75).abs() < 1e-9);
}

/// Recording the same action's outcome again changes nothing.
pub async fn an_outcome_is_counted_once_per_action(harness: &dyn Harness) {
    let store = harness.open().await;
    let (p, s) = (uid("op"), uid("os"));
    store.upsert_node(problem(&p, None)).await.unwrap();
    store.upsert_node(solution(&s)).await.unwrap();
    let pattern = uid("pattern") + "@2";
    let outcome = Outcome {
        action_id: uid("a"),
        pattern: Some(pattern.clone()),
        problem_id: p.clone(),
        solution_id: s.clone(),
        success: true,
        recover_ms: Some(50),
        at: Utc::now(),
    };
    let first = store.record_outcome(&outcome).await.unwrap();
    let again = store.record_outcome(&outcome).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(again.attempts, 1);
    let edges = store.neighbors(&p, Some(Relation::Solves), Direction::Incoming).await.unwrap();
    assert_eq!(edges[0].0.data["attempts"], 1);
    let per_pattern = store.pattern_stats(&pattern).await.unwrap().expect("pattern version statistics");
    assert_eq!((per_pattern.attempts, per_pattern.successes), (1, 1));
    assert!(store.pattern_stats(&pattern.replace("@2", "@1")).await.unwrap().is_none(), "versions are counted apart");
}

/// Traversal follows one relation in one direction, bounded in hops, each node once at its
/// shortest depth, safe on cycles.
pub async fn traversal_is_bounded_and_cycle_safe(harness: &dyn Harness) {
    let store = harness.open().await;
    let tag = uid("walk");
    let id = |n: u32| format!("{tag}-{n}");
    for n in 1..=5 {
        store.upsert_node(problem(&id(n), None)).await.unwrap();
    }
    let causes =
        |a: u32, b: u32| Edge { from: id(a), to: id(b), relation: Relation::Causes, weight: 1.0, data: json!({}) };
    for (a, b) in [(1, 2), (2, 3), (3, 1), (3, 4), (1, 4)] {
        store.link(causes(a, b)).await.unwrap();
    }
    store
        .link(Edge { from: id(4), to: id(5), relation: Relation::Triggers, weight: 1.0, data: json!({}) })
        .await
        .unwrap();
    let reached = store.traverse(&id(1), Relation::Causes, Direction::Outgoing, 3).await.unwrap();
    let got: Vec<(String, usize)> = reached.iter().map(|r| (r.node.id.clone(), r.depth)).collect();
    assert_eq!(got, vec![(id(2), 1), (id(4), 1), (id(3), 2)]);
    let one = store.traverse(&id(1), Relation::Causes, Direction::Outgoing, 1).await.unwrap();
    assert_eq!(one.len(), 2);
    let back = store.traverse(&id(4), Relation::Causes, Direction::Incoming, 10).await.unwrap();
    let mut back: Vec<String> = back.into_iter().map(|r| r.node.id).collect();
    back.sort();
    assert_eq!(back, vec![id(1), id(2), id(3)]);
}

/// Similarity filters on service and time; hybrid search fuses the vector and text rankings.
pub async fn filters_and_hybrid_search(harness: &dyn Harness) {
    let store = harness.open().await;
    let tag = uid("hyb");
    let mut a = problem(&format!("{tag}-a"), Some(unit(2)));
    a.name = "database pool exhausted on checkout".into();
    a.data = json!({"service": format!("{tag}-svc"), "kind": "http_error_ratio"});
    let mut b = problem(&format!("{tag}-b"), Some(unit(2)));
    b.name = "disk full on the reporting host".into();
    b.data = json!({"service": "other", "kind": "http_error_ratio"});
    store.upsert_node(a).await.unwrap();
    store.upsert_node(b).await.unwrap();
    let only_svc = store
        .similar(&SimilarityQuery {
            embedding: unit(2),
            k: 10,
            service: Some(format!("{tag}-svc")),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only_svc.iter().map(|h| h.node.id.clone()).collect::<Vec<_>>(), vec![format!("{tag}-a")]);
    let future = Utc::now() + chrono::Duration::hours(1);
    let none = store
        .similar(&SimilarityQuery { embedding: unit(2), k: 10, since: Some(future), ..Default::default() })
        .await
        .unwrap();
    assert!(none.is_empty());
    // Both nodes are equally close by vector; the text breaks the tie.
    let query = SimilarityQuery { embedding: unit(2), kind: Some(NodeKind::Problem), k: 2, ..Default::default() };
    let hits = store.hybrid_search("pool exhausted", &query).await.unwrap();
    let first = hits.iter().find(|h| h.node.id.starts_with(&tag)).expect("no hit");
    assert_eq!(first.node.id, format!("{tag}-a"));
    assert!(store.hybrid_search("\"unbalanced (quote AND", &query).await.is_ok(), "user text must not break the query");
}

/// Bulk writes are all or nothing.
pub async fn bulk_writes_are_all_or_nothing(harness: &dyn Harness) {
    let store = harness.open().await;
    let tag = uid("bulk");
    let nodes: Vec<Node> = (0..50).map(|n| problem(&format!("{tag}-{n}"), Some(unit(n)))).collect();
    store.upsert_nodes(nodes).await.unwrap();
    let edges: Vec<Edge> = (1..50)
        .map(|n| Edge {
            from: format!("{tag}-0"),
            to: format!("{tag}-{n}"),
            relation: Relation::Causes,
            weight: 0.5,
            data: json!({}),
        })
        .collect();
    store.link_many(edges).await.unwrap();
    assert_eq!(
        store.neighbors(&format!("{tag}-0"), Some(Relation::Causes), Direction::Outgoing).await.unwrap().len(),
        49
    );
    let mut bad: Vec<Node> = (50..60).map(|n| problem(&format!("{tag}-{n}"), Some(unit(n)))).collect();
    bad[5].embedding = Some(vec![1.0; DIMENSIONS + 2]);
    assert!(store.upsert_nodes(bad).await.is_err());
    assert!(store.get_node(&format!("{tag}-50")).await.unwrap().is_none(), "a refused batch must write nothing");
    let dangling = vec![
        Edge {
            from: format!("{tag}-1"),
            to: format!("{tag}-2"),
            relation: Relation::Triggers,
            weight: 0.5,
            data: json!({}),
        },
        Edge {
            from: format!("{tag}-1"),
            to: format!("{tag}-missing"),
            relation: Relation::Triggers,
            weight: 0.5,
            data: json!({}),
        },
    ];
    assert!(matches!(store.link_many(dangling).await, Err(KnowledgeError::NotFound { .. })));
    assert!(store
        .neighbors(&format!("{tag}-1"), Some(Relation::Triggers), Direction::Outgoing)
        .await
        .unwrap()
        .is_empty());
}

/// Recall@5 of `store`'s similarity search over the nodes of service `tag`, against an exact
/// search over `live` (id, vector), for 20 queries near stored vectors; also checks that no
/// hit is outside `live`.
async fn recall_at_5(store: &dyn KnowledgeStore, tag: &str, live: &[(String, Vec<f32>)]) -> f64 {
    let cosine = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
    };
    let (mut found, mut wanted) = (0, 0);
    for q in 0..20 {
        let query: Vec<f32> = live[q * 7 % live.len()].1.iter().enumerate().map(|(i, x)| x + 0.01 * i as f32).collect();
        let mut exact: Vec<(f32, &str)> = live.iter().map(|(id, v)| (cosine(&query, v), id.as_str())).collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        let truth: Vec<&str> = exact.iter().take(5).map(|(_, id)| *id).collect();
        let hits = store
            .similar(&SimilarityQuery {
                embedding: query,
                k: 5,
                min_score: -1.0,
                service: Some(tag.to_owned()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score), "ranked best first");
        for hit in &hits {
            assert!(live.iter().any(|(id, _)| *id == hit.node.id), "{} is not a live node", hit.node.id);
        }
        found += hits.iter().filter(|h| truth.contains(&h.node.id.as_str())).count();
        wanted += truth.len();
    }
    found as f64 / wanted as f64
}

/// Similarity search stays right while four writers insert at once and a reader searches,
/// after deletes, and after reopening: recall@5 at least 0.9 against an exact search, and
/// never a deleted node.
pub async fn search_under_concurrent_writes_deletes_and_reopen(harness: &dyn Harness) {
    let store = harness.open().await;
    let tag = uid("many");
    // 600 vectors around 12 centres, from a fixed linear congruential generator.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let centres: Vec<Vec<f32>> = (0..12).map(|_| (0..DIMENSIONS).map(|_| next()).collect()).collect();
    let mut live: Vec<(String, Vec<f32>)> =
        (0..600).map(|i| (format!("{tag}-{i}"), centres[i % 12].iter().map(|c| c + 0.2 * next()).collect())).collect();
    let node = |(id, vector): &(String, Vec<f32>)| {
        let mut node = Node::new(id, NodeKind::Problem, id, json!({"service": tag, "kind": "x"}));
        node.embedding = Some(vector.clone());
        node
    };
    let writers: Vec<_> = live
        .chunks(150)
        .map(|mine| {
            let (store, batches) =
                (store.clone(), mine.chunks(25).map(|b| b.iter().map(node).collect()).collect::<Vec<Vec<Node>>>());
            tokio::spawn(async move {
                for batch in batches {
                    store.upsert_nodes(batch).await.unwrap();
                }
            })
        })
        .collect();
    while !writers.iter().all(|w| w.is_finished()) {
        let hits = store
            .similar(&SimilarityQuery { embedding: live[0].1.clone(), k: 5, min_score: -1.0, ..Default::default() })
            .await
            .unwrap();
        assert!(hits.len() <= 5 && hits.windows(2).all(|w| w[0].score >= w[1].score));
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let recall = recall_at_5(store.as_ref(), &tag, &live).await;
    assert!(recall >= 0.9, "recall@5 after concurrent writes: {recall}");

    for (id, _) in live.iter().step_by(3) {
        assert!(store.delete_node(id).await.unwrap());
    }
    let mut n = 0;
    live.retain(|_| {
        n += 1;
        (n - 1) % 3 != 0
    });
    let recall = recall_at_5(store.as_ref(), &tag, &live).await;
    assert!(recall >= 0.9, "recall@5 after deletes: {recall}");

    drop(store);
    let store = harness.open().await;
    let recall = recall_at_5(store.as_ref(), &tag, &live).await;
    assert!(recall >= 0.9, "recall@5 after reopening: {recall}");
}

/// Runs the whole suite against a backend.
#[macro_export]
macro_rules! knowledge_store_conformance {
    ($harness:expr) => {
        $crate::knowledge_store_conformance!(@each $harness;
            invalid_node_writes_nothing, nodes_and_index_survive_reopen,
            link_requires_both_nodes_and_upserts, similarity_is_ranked_filtered_and_bounded,
            concurrent_outcomes_are_all_counted, an_outcome_is_counted_once_per_action,
            traversal_is_bounded_and_cycle_safe, filters_and_hybrid_search, bulk_writes_are_all_or_nothing,
            search_under_concurrent_writes_deletes_and_reopen);
    };
    (@each $harness:expr; $($check:ident),+) => {$(
        #[tokio::test]
        async fn $check() {
            let harness = $harness;
            $crate::conformance::$check(&harness).await;
        }
    )+};
}
