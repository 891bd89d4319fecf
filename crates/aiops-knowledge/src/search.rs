//! What both engines share for search: query terms for full text, and rank fusion.

use std::collections::HashMap;

/// Candidates each ranking contributes to a hybrid search.
pub(crate) const CANDIDATES: usize = 50;
/// The constant of reciprocal rank fusion (60, as in Cormack et al., SIGIR 2009).
const RRF_K: f32 = 60.0;
/// Most terms taken from a text query.
const MAX_TERMS: usize = 16;

/// Lowercased words of a text query (letters, digits, `_`), at most `MAX_TERMS`; anything
/// else is dropped, so no user text reaches a full-text query language unquoted.
pub(crate) fn terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    terms.dedup();
    terms.truncate(MAX_TERMS);
    terms
}

/// Reciprocal rank fusion of two rankings (best first); returns ids with fused scores, best
/// first, at most `k`.
pub(crate) fn fuse(vector: &[String], text: &[String], k: usize) -> Vec<(String, f32)> {
    let mut scores: HashMap<&str, f32> = HashMap::new();
    for ranking in [vector, text] {
        for (idx, id) in ranking.iter().enumerate() {
            *scores.entry(id.as_str()).or_default() += 1.0 / (RRF_K + idx as f32 + 1.0);
        }
    }
    let mut fused: Vec<(String, f32)> = scores.into_iter().map(|(id, score)| (id.to_owned(), score)).collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    fused.truncate(k);
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_rewards_agreement_and_terms_are_plain_words() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let fused = fuse(&ids(&["a", "b", "c"]), &ids(&["b", "d", "e"]), 3);
        let order: Vec<&str> = fused.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(order, vec!["b", "a", "d"], "found by both first, then by rank");
        assert_eq!(terms("Pool \"timed\" OUT; DROP -- x*"), vec!["pool", "timed", "out", "drop", "x"]);
    }
}
