//! Bounded breadth-first traversal, shared by both engines.
//!
//! One indexed query per hop fetches the whole frontier's neighbours, and one query at the
//! end fetches the reached nodes (without embeddings). A recursive SQL query was measured
//! slower here: it re-expands nodes reached on several paths before discarding the repeats.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::{Direction, KnowledgeResult, Node, Reached, Relation};

/// Longest traversal, in hops.
pub(crate) const MAX_HOPS: usize = 10;
/// Most nodes one traversal returns.
pub(crate) const MAX_REACHED: usize = 10_000;

/// What an engine provides for a traversal.
#[async_trait]
pub(crate) trait Walk: Send + Sync {
    /// Distinct neighbours of `frontier` over `relation` in `direction`.
    async fn step(&self, frontier: &[String], relation: Relation, direction: Direction)
        -> KnowledgeResult<Vec<String>>;
    /// The nodes with these ids, without embeddings, in any order.
    async fn fetch(&self, ids: &[String]) -> KnowledgeResult<Vec<Node>>;
}

pub(crate) async fn traverse(
    engine: &dyn Walk,
    start: &str,
    relation: Relation,
    direction: Direction,
    max_hops: usize,
) -> KnowledgeResult<Vec<Reached>> {
    let mut depth_of: HashMap<String, usize> = HashMap::from([(start.to_owned(), 0)]);
    let mut frontier = vec![start.to_owned()];
    for depth in 1..=max_hops.min(MAX_HOPS) {
        if frontier.is_empty() || depth_of.len() > MAX_REACHED {
            break;
        }
        let mut next = Vec::new();
        for id in engine.step(&frontier, relation, direction).await? {
            if !depth_of.contains_key(&id) {
                depth_of.insert(id.clone(), depth);
                next.push(id);
            }
        }
        frontier = next;
    }
    depth_of.remove(start);
    let mut order: Vec<(usize, String)> = depth_of.into_iter().map(|(id, depth)| (depth, id)).collect();
    order.sort();
    order.truncate(MAX_REACHED);
    let ids: Vec<String> = order.iter().map(|(_, id)| id.clone()).collect();
    let mut nodes: HashMap<String, Node> = engine.fetch(&ids).await?.into_iter().map(|n| (n.id.clone(), n)).collect();
    // A node deleted during the walk is simply left out.
    Ok(order.into_iter().filter_map(|(depth, id)| nodes.remove(&id).map(|node| Reached { node, depth })).collect())
}
