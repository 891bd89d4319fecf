//! `aiops kb`: the knowledge graph of the configured store, directly (no running core needed):
//! export and import as JSON Lines, show a node, search by text, re-embed after switching
//! embedder, and how often each diagnosis source was right.

use std::io::Write;
use std::path::PathBuf;

use aiops_app::{open_knowledge, Config};
use aiops_knowledge::{Direction, NodeKind, SimilarityQuery};
use anyhow::Context;

/// Which store the commands open: the config file's (or the embedded defaults'), with the
/// data directory overridden as `aiops serve --data-dir` does.
pub(crate) struct Store {
    pub(crate) config: Option<PathBuf>,
    pub(crate) data_dir: Option<PathBuf>,
}

impl Store {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref(), std::env::vars())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        Ok(config)
    }
}

/// Writes the whole graph to `out` (stdout when `None`).
pub(crate) async fn export(store: &Store, out: Option<PathBuf>) -> anyhow::Result<bool> {
    let knowledge = open_knowledge(&store.config()?).await?;
    let counts = match &out {
        Some(path) => {
            let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut writer = std::io::BufWriter::new(file);
            aiops_knowledge::export(knowledge.store.as_ref(), knowledge.audit.as_ref(), &mut writer).await?
        }
        None => {
            let mut stdout = crate::commands::stdout();
            aiops_knowledge::export(knowledge.store.as_ref(), knowledge.audit.as_ref(), &mut stdout).await?
        }
    };
    eprintln!(
        "exported {} nodes, {} outcomes, {} edges, {} audit entries",
        counts.nodes, counts.outcomes, counts.edges, counts.audit
    );
    Ok(true)
}

/// Reads an export into the configured store.
pub(crate) async fn import(store: &Store, file: PathBuf) -> anyhow::Result<bool> {
    let knowledge = open_knowledge(&store.config()?).await?;
    let input = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
    let mut reader = std::io::BufReader::new(input);
    let counts = aiops_knowledge::import(knowledge.store.as_ref(), knowledge.audit.as_ref(), &mut reader)
        .await
        .with_context(|| format!("importing {}", file.display()))?;
    println_out(&format!(
        "imported {} nodes, {} outcomes, {} edges, {} audit entries",
        counts.nodes, counts.outcomes, counts.edges, counts.audit
    ))?;
    Ok(true)
}

fn println_out(line: &str) -> anyhow::Result<()> {
    writeln!(crate::commands::stdout(), "{line}")?;
    Ok(())
}

/// Prints a node, its edges and statistics.
pub(crate) async fn show(store: &Store, id: String) -> anyhow::Result<bool> {
    let knowledge = open_knowledge(&store.config()?).await?;
    let Some(mut node) = knowledge.store.get_node(&id).await? else {
        anyhow::bail!("node {id} not found");
    };
    node.embedding = None;
    println_out(&format!("{} ({}) {}", node.id, node.kind, node.name))?;
    println_out(&serde_json::to_string_pretty(&node.data)?)?;
    if let Some(stats) = knowledge.store.solution_stats(&id).await? {
        println_out(&format!(
            "stats: {} of {} healed, mean time to recover {}",
            stats.successes,
            stats.attempts,
            stats.mean_recover_ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0} ms"))
        ))?;
    }
    for (direction, arrow) in [(Direction::Outgoing, "→"), (Direction::Incoming, "←")] {
        for (edge, other) in knowledge.store.neighbors(&id, None, direction).await? {
            println_out(&format!(
                "  {arrow} {} {} ({}) weight {:.2} {}",
                edge.relation.as_str(),
                other.id,
                other.name,
                edge.weight,
                edge.data
            ))?;
        }
    }
    Ok(true)
}

/// Prints the nodes that best match `text`, by meaning and by wording (hybrid search).
pub(crate) async fn search(store: &Store, text: String, kind: Option<String>, k: usize) -> anyhow::Result<bool> {
    let config = store.config()?;
    let knowledge = open_knowledge(&config).await?;
    let embedder = config.ai.embedder.build()?;
    let embedding = embedder.embed(&[text]).await?.remove(0);
    let kind = kind.map(|k| k.parse::<NodeKind>()).transpose()?;
    let hits =
        knowledge.store.similar(&SimilarityQuery { embedding, kind, k, min_score: 0.0, ..Default::default() }).await?;
    if hits.is_empty() {
        // Only nodes stored with an embedding are searched: the problems the Learning agent
        // recorded. Patterns, solutions and tools are found by id (`aiops kb show`).
        eprintln!("(nothing found: the search covers recorded problems, the nodes stored with an embedding)");
    }
    for hit in hits {
        println_out(&format!("{:.3}  {:<9} {}  {}", hit.score, hit.node.kind.as_str(), hit.node.id, hit.node.name))?;
    }
    Ok(true)
}

/// Nodes embedded per batch by `reembed`.
const REEMBED_BATCH: usize = 64;

/// Embeds every node that has an embedding again, with the configured embedder: problems from
/// their signature (what the Learning agent embeds), other nodes from their name.
pub(crate) async fn reembed(store: &Store) -> anyhow::Result<bool> {
    let config = store.config()?;
    let knowledge = open_knowledge(&config).await?;
    let embedder = config.ai.embedder.build()?;
    let mut done = 0usize;
    for kind in NodeKind::ALL {
        let mut pending = Vec::new();
        for listed in knowledge.store.nodes(kind, usize::MAX).await? {
            let Some(node) = knowledge.store.get_node(&listed.id).await? else { continue };
            if node.embedding.is_some() {
                pending.push(node);
            }
        }
        for mut batch in pending.chunks(REEMBED_BATCH).map(<[_]>::to_vec) {
            let texts: Vec<String> = batch
                .iter()
                .map(|node| node.data["signature"].as_str().map_or_else(|| node.name.clone(), str::to_owned))
                .collect();
            let vectors = embedder.embed(&texts).await?;
            for (node, vector) in batch.iter_mut().zip(vectors) {
                node.embedding = Some(vector);
            }
            done += batch.len();
            knowledge.store.upsert_nodes(batch).await?;
        }
    }
    aiops_app::check_embedder(knowledge.store.as_ref(), embedder.as_ref(), true).await?;
    println_out(&format!("re-embedded {done} nodes with {}", embedder.model()))?;
    Ok(true)
}

/// Prints, per diagnosis source, how often the fixes it proposed healed the problem.
pub(crate) async fn sources(store: &Store) -> anyhow::Result<bool> {
    let knowledge = open_knowledge(&store.config()?).await?;
    let accuracy = aiops_agents::source_accuracy(knowledge.store.as_ref()).await?;
    println_out("source     right  wrong  accuracy")?;
    for (source, (right, wrong)) in accuracy {
        let share = if right + wrong == 0 {
            "-".to_owned()
        } else {
            format!("{:.0}%", 100.0 * right as f64 / (right + wrong) as f64)
        };
        println_out(&format!("{:<10} {right:>5}  {wrong:>5}  {share:>8}", source.as_str()))?;
    }
    Ok(true)
}

/// Prints the candidate patterns ready for review, each with its draft pattern file.
pub(crate) async fn candidates(store: &Store) -> anyhow::Result<bool> {
    let knowledge = open_knowledge(&store.config()?).await?;
    let candidates = aiops_agents::candidate_patterns(knowledge.store.as_ref()).await?;
    if candidates.is_empty() {
        println_out("no candidate patterns: every repeated problem matched a pattern")?;
    }
    for node in candidates {
        println_out(&format!("# {} ({})", node.id, node.data["text"].as_str().unwrap_or_default()))?;
        match node.data["draft_pattern"].as_str() {
            Some(draft) => println_out(draft)?,
            None => println_out("# no draft: the problems share no distinctive words\n")?,
        }
    }
    Ok(true)
}
