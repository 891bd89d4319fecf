//! A streaming log-template miner: learns templates online from raw messages and gives each
//! message a template id and the values of its variables.
//!
//! The approach is Drain's fixed-depth parse tree (He et al., ICWS 2017), with generic masking:
//! 1. **Tokens.** A message is split on whitespace. A token holding a digit (numbers, ids, IP
//!    addresses, durations, sizes, block ids, timestamps) is a variable from the start; so is a
//!    token that looks like hex (`0x` followed by hex digits). No rule knows any log format.
//! 2. **Candidates.** Templates are grouped by token count, then by their first `depth` tokens,
//!    where a variable token, or a token past `max_children` siblings, walks the `<*>` branch.
//! 3. **Match.** In the leaf, the template agreeing with the message at the most positions (the
//!    same constant, or a variable where the message has a value) wins if that share of the
//!    message's tokens reaches `similarity`; tokens where it differs from the message become
//!    `<*>`. Otherwise the message starts a new template.
//!
//! The defaults (similarity 0.7, depth 2) are one setting for every log; they were chosen on the
//! four Loghub datasets in `../shared/bench/loghub` (any similarity from 0.65 to 0.75 scores the
//! same there), so other logs are the real test.
//!
//! Memory is bounded: at most `max_templates` templates; beyond that the least recently matched
//! one is evicted (its id is never reused). Messages longer than `max_message_bytes` are cut.
//! Templates can be exported and restored, so they survive a restart.

use rustc_hash::FxHashMap as HashMap;

use serde::{Deserialize, Serialize};

/// The variable marker in templates.
pub const WILDCARD: &str = "<*>";

/// Settings of the miner; the defaults are the one configuration used for every log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinerConfig {
    /// Share of a message's tokens where a template agrees with it, position by position, for
    /// the message to join it. Default: 0.7.
    pub similarity: f64,
    /// Leading tokens that route a message in the tree. Default: 2 (Drain's default depth 4
    /// counts the root and the length layer).
    pub depth: usize,
    /// Children of a tree node before further tokens share the `<*>` branch. Default: 100.
    pub max_children: usize,
    /// Templates kept; the least recently matched is evicted beyond it. Default: 10,000.
    pub max_templates: usize,
    /// Bytes of a message that are parsed. Default: 4,096.
    pub max_message_bytes: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        Self { similarity: 0.7, depth: 2, max_children: 100, max_templates: 10_000, max_message_bytes: 4096 }
    }
}

/// A learned template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogTemplate {
    /// Stable id, never reused.
    pub id: u64,
    /// Tokens, with [`WILDCARD`] for variables.
    pub tokens: Vec<String>,
    /// Messages matched so far.
    pub count: u64,
    /// Sequence number of the last message matched (for eviction).
    pub last_seen: u64,
}

impl LogTemplate {
    /// The template as text, tokens joined by one space.
    pub fn text(&self) -> String {
        self.tokens.join(" ")
    }
}

/// What the miner made of one message (borrowing its variables from the message).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParsedMessage<'a> {
    /// The template it belongs to ([`LogTemplateMiner::template`] has its text).
    pub template_id: u64,
    /// The message's values at the template's variable positions.
    pub params: Vec<&'a str>,
    /// The message started a new template.
    pub is_new: bool,
}

#[derive(Debug, Default)]
struct TreeNode {
    children: HashMap<String, TreeNode>,
    templates: Vec<u64>,
}

/// The miner. Not thread-safe by itself: one per stream of messages, or behind a lock.
#[derive(Debug)]
pub struct LogTemplateMiner {
    config: MinerConfig,
    roots: HashMap<usize, TreeNode>,
    templates: HashMap<u64, LogTemplate>,
    next_id: u64,
    seq: u64,
}

impl LogTemplateMiner {
    /// An empty miner.
    pub fn new(mut config: MinerConfig) -> Self {
        config.max_templates = config.max_templates.max(1);
        config.max_children = config.max_children.max(1);
        Self { config, roots: HashMap::default(), templates: HashMap::default(), next_id: 1, seq: 0 }
    }

    /// A miner that starts from exported templates.
    pub fn restore(config: MinerConfig, templates: Vec<LogTemplate>) -> Self {
        let mut miner = Self::new(config);
        for template in templates {
            miner.next_id = miner.next_id.max(template.id + 1);
            miner.seq = miner.seq.max(template.last_seen);
            miner.insert(template);
        }
        miner
    }

    /// Every template, by id.
    pub fn templates(&self) -> Vec<LogTemplate> {
        let mut templates: Vec<LogTemplate> = self.templates.values().cloned().collect();
        templates.sort_by_key(|t| t.id);
        templates
    }

    /// A template by id.
    pub fn template(&self, id: u64) -> Option<&LogTemplate> {
        self.templates.get(&id)
    }

    /// Number of templates held.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// True before the first message.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// Learns from one message and says which template it belongs to.
    pub fn add<'a>(&mut self, message: &'a str) -> ParsedMessage<'a> {
        self.seq += 1;
        let message = cut(message, self.config.max_message_bytes);
        let tokens: Vec<&str> = message.split_whitespace().collect();
        let best = self.best_match(&tokens);
        let (id, is_new) = match best {
            Some(id) => {
                let seq = self.seq;
                let template = self.templates.get_mut(&id).unwrap_or_else(|| unreachable!("leaves hold live ids"));
                for (slot, token) in template.tokens.iter_mut().zip(&tokens) {
                    if slot != token && slot != WILDCARD {
                        *slot = WILDCARD.to_owned();
                    }
                }
                template.count += 1;
                template.last_seen = seq;
                (id, false)
            }
            None => {
                let id = self.next_id;
                self.next_id += 1;
                let tokens =
                    tokens.iter().map(|t| if is_variable(t) { WILDCARD.to_owned() } else { (*t).to_owned() }).collect();
                self.insert(LogTemplate { id, tokens, count: 1, last_seen: self.seq });
                self.evict();
                (id, true)
            }
        };
        let template = &self.templates[&id];
        let params = template
            .tokens
            .iter()
            .zip(&tokens)
            .filter(|(slot, _)| *slot == WILDCARD)
            .map(|(_, token)| *token)
            .collect();
        ParsedMessage { template_id: id, params, is_new }
    }

    fn best_match(&self, tokens: &[&str]) -> Option<u64> {
        let mut node = self.roots.get(&tokens.len())?;
        for token in tokens.iter().take(self.config.depth) {
            let key = if is_variable(token) { WILDCARD } else { token };
            node = node.children.get(key).or_else(|| node.children.get(WILDCARD))?;
        }
        let mut best: Option<(f64, usize, u64)> = None;
        for id in &node.templates {
            let Some(template) = self.templates.get(id) else { continue };
            let (shared, constants) = overlap(&template.tokens, tokens);
            let score = if tokens.is_empty() { 1.0 } else { shared as f64 / tokens.len() as f64 };
            if best.is_none_or(|(s, c, _)| score > s || (score == s && constants > c)) {
                best = Some((score, constants, *id));
            }
        }
        best.filter(|(score, _, _)| *score >= self.config.similarity).map(|(_, _, id)| id)
    }

    fn insert(&mut self, template: LogTemplate) {
        let depth = self.config.depth;
        let max_children = self.config.max_children;
        let mut node = self.roots.entry(template.tokens.len()).or_default();
        for token in template.tokens.iter().take(depth) {
            let key = if token == WILDCARD || is_variable(token) {
                WILDCARD
            } else if node.children.contains_key(token.as_str()) || node.children.len() + 1 < max_children {
                token.as_str()
            } else {
                WILDCARD
            };
            node = node.children.entry(key.to_owned()).or_default();
        }
        node.templates.push(template.id);
        self.templates.insert(template.id, template);
    }

    fn evict(&mut self) {
        while self.templates.len() > self.config.max_templates {
            let Some(oldest) = self.templates.values().min_by_key(|t| t.last_seen).map(|t| t.id) else { return };
            let template = self.templates.remove(&oldest).unwrap_or_else(|| unreachable!("just found"));
            let length = template.tokens.len();
            if let Some(root) = self.roots.get_mut(&length) {
                remove_from(root, &template.tokens, self.config.depth, oldest);
                if root.templates.is_empty() && root.children.is_empty() {
                    self.roots.remove(&length);
                }
            }
        }
    }
}

/// Removes `id` from the leaf its tokens lead to (trying the `<*>` branch where a constant
/// token found no child, as insertion may have put it there).
fn remove_from(node: &mut TreeNode, tokens: &[String], depth: usize, id: u64) -> bool {
    if depth == 0 || tokens.is_empty() {
        let before = node.templates.len();
        node.templates.retain(|t| *t != id);
        return node.templates.len() != before;
    }
    let rest = &tokens[1..];
    for key in [tokens[0].as_str(), WILDCARD] {
        if let Some(child) = node.children.get_mut(key) {
            if remove_from(child, rest, depth - 1, id) {
                // An emptied branch goes too, so the tree is bounded by the templates it holds.
                if child.templates.is_empty() && child.children.is_empty() {
                    node.children.remove(key);
                }
                return true;
            }
        }
    }
    false
}

/// Positions where template and message agree (the same constant, or a variable where the
/// message has a value), and the template's constants in all.
fn overlap(template: &[String], tokens: &[&str]) -> (usize, usize) {
    let mut shared = 0;
    let mut constants = 0;
    for (slot, token) in template.iter().zip(tokens) {
        if slot == WILDCARD {
            shared += usize::from(is_variable(token));
            continue;
        }
        constants += 1;
        if slot == token {
            shared += 1;
        }
    }
    (shared, constants)
}

/// A token that is a value, not wording: it holds a digit, or is `0x` plus hex digits.
fn is_variable(token: &str) -> bool {
    token.bytes().any(|b| b.is_ascii_digit())
        || token.strip_prefix("0x").is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn cut(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        text
    } else {
        &text[..text.floor_char_boundary(max_bytes)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_variables_and_wording_stays() {
        let mut miner = LogTemplateMiner::new(MinerConfig::default());
        let first =
            miner.add("Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106 dest: /10.250.19.102:50010");
        assert!(first.is_new);
        assert_eq!(miner.template(first.template_id).unwrap().text(), "Receiving block <*> src: <*> dest: <*>");
        let second =
            miner.add("Receiving block blk_7503483334202473044 src: /10.251.71.16:51590 dest: /10.251.71.16:50010");
        assert_eq!((second.template_id, second.is_new), (first.template_id, false));
        assert_eq!(second.params, vec!["blk_7503483334202473044", "/10.251.71.16:51590", "/10.251.71.16:50010"]);
    }

    #[test]
    fn differing_words_merge_into_a_variable_or_split_below_the_threshold() {
        let mut miner = LogTemplateMiner::new(MinerConfig::default());
        let a = miner.add("session opened for user root by (uid=0)");
        let b = miner.add("session opened for user alice by (uid=0)");
        assert_eq!(a.template_id, b.template_id);
        assert_eq!(miner.template(b.template_id).unwrap().text(), "session opened for user <*> by <*>");
        let c = miner.add("connection closed by remote host now");
        assert_ne!(c.template_id, a.template_id, "same length, different wording: a new template");
        assert_eq!(miner.len(), 2);
    }

    #[test]
    fn memory_is_bounded_and_templates_survive_a_restore() {
        let config = MinerConfig { max_templates: 3, ..MinerConfig::default() };
        let mut miner = LogTemplateMiner::new(config.clone());
        let keep = miner.add("worker started cleanly");
        for word in ["alpha", "beta", "gamma", "delta"] {
            miner.add(&format!("{word} {word} {word} {word} {word}"));
            miner.add("worker started cleanly");
        }
        assert_eq!(miner.len(), 3);
        assert!(miner.templates().iter().any(|t| t.id == keep.template_id), "recently matched templates stay");

        let restored = miner.templates();
        let mut again = LogTemplateMiner::restore(config, restored);
        let parsed = again.add("worker started cleanly");
        assert_eq!((parsed.template_id, parsed.is_new), (keep.template_id, false));
        let fresh = again.add("something else entirely here");
        assert!(fresh.template_id > restored_max(&miner), "ids are never reused");
    }

    fn restored_max(miner: &LogTemplateMiner) -> u64 {
        miner.templates().iter().map(|t| t.id).max().unwrap_or(0)
    }

    #[test]
    fn eviction_prunes_the_tree_and_a_zero_limit_is_one() {
        let mut miner = LogTemplateMiner::new(MinerConfig { max_templates: 0, ..MinerConfig::default() });
        for i in 0..200 {
            let word: String = (0..8).map(|k| char::from(b'a' + ((i * 7 + k * 3) % 26) as u8)).collect();
            miner.add(&format!("{word} happened {word} again and {word}"));
        }
        assert_eq!(miner.len(), 1);
        let nodes: usize = miner.roots.values().map(count_nodes).sum();
        assert!(nodes <= 1 + miner.config.depth, "the tree holds one template's path, not {nodes} nodes");
    }

    fn count_nodes(node: &TreeNode) -> usize {
        1 + node.children.values().map(count_nodes).sum::<usize>()
    }

    #[test]
    fn huge_and_empty_messages_are_handled() {
        let mut miner = LogTemplateMiner::new(MinerConfig { max_message_bytes: 64, ..MinerConfig::default() });
        let huge = format!("disk {} full", "é".repeat(10_000));
        let parsed = miner.add(&huge);
        assert!(miner.template(parsed.template_id).unwrap().text().len() <= 64 + 8);
        let empty = miner.add("");
        assert_eq!(miner.template(empty.template_id).unwrap().text(), "");
    }
}
