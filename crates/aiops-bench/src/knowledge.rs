//! Suite `knowledge`: the knowledge graph on both engines, on the same synthetic data.
//!
//! Data: `--nodes N` (default 100,000) problem nodes with 384-dimension embeddings drawn
//! around 1,000 cluster centres (real problem embeddings cluster by fault), and 10 `causes`
//! edges per node to random nodes (1,000,000 edges by default). Measured per engine: bulk
//! insert throughput; top-10 recall against exact search and queries per second (one client)
//! with p99 latency for 200 queries near stored nodes; a 3-hop traversal from 20 start nodes
//! (median, after one warm-up round over the same starts); for the embedded engine, the time
//! to open the store again (its vector index is rebuilt from the file). The embedded index
//! partitions its vectors (inverted file, about √n lists); pgvector uses HNSW (m 16,
//! ef_construction 64, ef_search 40, its defaults). PostgreSQL runs with `shared_buffers = 1GB`
//! (its default of 128 MB is meant to be raised; the nodes take about 230 MB).

use std::io::Write;
use std::time::Instant;

use aiops_knowledge::{
    Direction, Edge, KnowledgeStore, Node, NodeKind, PgKnowledgeStore, Relation, SimilarityQuery, SqliteKnowledgeStore,
};
use aiops_testkit::PostgresServer;
use anyhow::Context;
use serde_json::{json, Value};

const DIMENSIONS: usize = 384;
const CLUSTERS: usize = 1000;
const EDGES_PER_NODE: usize = 10;
const QUERIES: usize = 200;
const K: usize = 10;
const TRAVERSALS: usize = 20;

fn say(line: impl AsRef<str>) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", line.as_ref());
}

/// A small deterministic generator (SplitMix64), so every run uses the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn around(rng: &mut Rng, centre: &[f32], spread: f32) -> Vec<f32> {
    normalize(centre.iter().map(|c| c + spread * rng.unit()).collect())
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

struct Data {
    vectors: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
    truth: Vec<Vec<usize>>,
    edges: Vec<(usize, usize)>,
}

fn generate(nodes: usize) -> Data {
    let mut rng = Rng(42);
    let centres: Vec<Vec<f32>> =
        (0..CLUSTERS).map(|_| normalize((0..DIMENSIONS).map(|_| rng.unit()).collect())).collect();
    let vectors: Vec<Vec<f32>> = (0..nodes)
        .map(|_| {
            let centre = rng.below(CLUSTERS);
            around(&mut rng, &centres[centre], 0.08)
        })
        .collect();
    let queries: Vec<Vec<f32>> = (0..QUERIES)
        .map(|_| {
            let near = rng.below(nodes);
            around(&mut rng, &vectors[near], 0.02)
        })
        .collect();
    let truth = queries
        .iter()
        .map(|q| {
            let mut scored: Vec<(usize, f32)> = vectors.iter().enumerate().map(|(i, v)| (i, cosine(q, v))).collect();
            scored.sort_by(|a, b| b.1.total_cmp(&a.1));
            scored.into_iter().take(K).map(|(i, _)| i).collect()
        })
        .collect();
    let edges = (0..nodes * EDGES_PER_NODE).map(|e| (e / EDGES_PER_NODE, rng.below(nodes))).collect();
    Data { vectors, queries, truth, edges }
}

fn id(n: usize) -> String {
    format!("p{n}")
}

struct Figures {
    insert_nodes_per_s: f64,
    insert_edges_per_s: f64,
    recall: f64,
    qps: f64,
    p99_ms: f64,
    traversal_ms: f64,
    reached: usize,
}

async fn measure(store: &dyn KnowledgeStore, data: &Data) -> anyhow::Result<Figures> {
    let started = Instant::now();
    for chunk in data.vectors.chunks(10_000).enumerate() {
        let (offset, vectors) = chunk;
        let nodes: Vec<Node> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let n = offset * 10_000 + i;
                let mut node = Node::new(
                    id(n),
                    NodeKind::Problem,
                    format!("problem {n}"),
                    json!({"service": "bench", "kind": "x"}),
                );
                node.embedding = Some(v.clone());
                node
            })
            .collect();
        store.upsert_nodes(nodes).await?;
    }
    let insert_nodes_per_s = data.vectors.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for chunk in data.edges.chunks(50_000) {
        let edges: Vec<Edge> = chunk
            .iter()
            .map(|(from, to)| Edge {
                from: id(*from),
                to: id(*to),
                relation: Relation::Causes,
                weight: 0.5,
                data: json!({}),
            })
            .collect();
        store.link_many(edges).await?;
    }
    let insert_edges_per_s = data.edges.len() as f64 / started.elapsed().as_secs_f64();

    let mut latencies = Vec::with_capacity(QUERIES);
    let mut found = 0usize;
    let started = Instant::now();
    for (query, truth) in data.queries.iter().zip(&data.truth) {
        let one = Instant::now();
        let hits = store
            .similar(&SimilarityQuery {
                embedding: query.clone(),
                kind: Some(NodeKind::Problem),
                k: K,
                ..Default::default()
            })
            .await?;
        latencies.push(one.elapsed().as_secs_f64() * 1000.0);
        let want: Vec<String> = truth.iter().map(|n| id(*n)).collect();
        found += hits.iter().filter(|h| want.contains(&h.node.id)).count();
    }
    let qps = QUERIES as f64 / started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let p99_ms = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];

    for start in 0..TRAVERSALS {
        store.traverse(&id(start * 7), Relation::Causes, Direction::Outgoing, 3).await?;
    }
    let mut traversal = Vec::with_capacity(TRAVERSALS);
    let mut reached = 0;
    for start in 0..TRAVERSALS {
        let one = Instant::now();
        reached = store.traverse(&id(start * 7), Relation::Causes, Direction::Outgoing, 3).await?.len();
        traversal.push(one.elapsed().as_secs_f64() * 1000.0);
    }
    traversal.sort_by(f64::total_cmp);
    Ok(Figures {
        insert_nodes_per_s,
        insert_edges_per_s,
        recall: found as f64 / (QUERIES * K) as f64,
        qps,
        p99_ms,
        traversal_ms: traversal[traversal.len() / 2],
        reached,
    })
}

pub(crate) async fn run(args: &[String]) -> anyhow::Result<Value> {
    let nodes = args
        .windows(2)
        .find(|w| w[0] == "--nodes")
        .map(|w| w[1].parse::<usize>())
        .transpose()
        .context("--nodes takes a number")?
        .unwrap_or(100_000);
    say(format!(
        "knowledge suite: {nodes} nodes × {DIMENSIONS} dimensions, {} edges; generating data",
        nodes * EDGES_PER_NODE
    ));
    let data = generate(nodes);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let sqlite = SqliteKnowledgeStore::open(&path, DIMENSIONS).await?;
    let embedded = measure(&sqlite, &data).await?;
    drop(sqlite);
    let started = Instant::now();
    let sqlite = SqliteKnowledgeStore::open(&path, DIMENSIONS).await?;
    let reopen_ms = started.elapsed().as_secs_f64() * 1000.0;
    drop(sqlite);
    let mut server = PostgresServer::start().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    server.psql("ALTER SYSTEM SET shared_buffers = '1GB'").map_err(|e| anyhow::anyhow!("{e:?}"))?;
    server.restart().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let pg = PgKnowledgeStore::connect(&server.url(), DIMENSIONS, 4).await?;
    let postgres = measure(&pg, &data).await?;

    say(format!("{:<36} {:>16} {:>16}", "measure", "embedded", "pgvector"));
    let row = |name: &str, a: f64, b: f64, precision: usize| {
        say(format!("{name:<36} {a:>16.precision$} {b:>16.precision$}"));
    };
    row("insert nodes/s", embedded.insert_nodes_per_s, postgres.insert_nodes_per_s, 0);
    row("insert edges/s", embedded.insert_edges_per_s, postgres.insert_edges_per_s, 0);
    row("recall@10", embedded.recall, postgres.recall, 3);
    row("queries/s (1 client)", embedded.qps, postgres.qps, 1);
    row("query p99 ms", embedded.p99_ms, postgres.p99_ms, 2);
    row("3-hop traversal ms (median)", embedded.traversal_ms, postgres.traversal_ms, 2);
    say(format!("3-hop traversal reaches {} / {} nodes", embedded.reached, postgres.reached));
    say(format!("embedded store opened again (vector index rebuilt) in {reopen_ms:.0} ms"));
    Ok(json!({
        "suite": "knowledge",
        "nodes": nodes,
        "edges": nodes * EDGES_PER_NODE,
        "embedded_insert_nodes_per_s": embedded.insert_nodes_per_s,
        "pgvector_insert_nodes_per_s": postgres.insert_nodes_per_s,
        "embedded_insert_edges_per_s": embedded.insert_edges_per_s,
        "pgvector_insert_edges_per_s": postgres.insert_edges_per_s,
        "embedded_recall_at_10": embedded.recall,
        "pgvector_recall_at_10": postgres.recall,
        "embedded_qps": embedded.qps,
        "pgvector_qps": postgres.qps,
        "embedded_p99_ms": embedded.p99_ms,
        "pgvector_p99_ms": postgres.p99_ms,
        "qps_ratio": embedded.qps / postgres.qps,
        "traversal_3hop_ms_embedded": embedded.traversal_ms,
        "traversal_3hop_ms_postgres": postgres.traversal_ms,
        "embedded_reopen_ms": reopen_ms,
    }))
}
