//! Declarative failure patterns: loading, validation and matching against problems.
//!
//! A pattern file is TOML (see `patterns/*.toml` for the shipped ones). Matching is by symptom
//! kind, then by evidence keywords: a pattern whose `evidence_any` keywords appear in the
//! problem's summary or evidence is far more likely than one that only shares the symptom.

use std::collections::BTreeMap;
use std::path::Path;

use aiops_model::{Problem, ProblemKind, RiskLevel};
use serde::{Deserialize, Serialize};

use crate::{PatternError, PatternResult};

/// Confidence of a pattern that matches the symptom kind but none of its evidence keywords.
const SYMPTOM_ONLY_CONFIDENCE: f64 = 0.35;
/// Confidence with one evidence keyword found; each further keyword adds `PER_EXTRA_KEYWORD`.
const EVIDENCE_CONFIDENCE: f64 = 0.6;
const PER_EXTRA_KEYWORD: f64 = 0.1;
const MAX_CONFIDENCE: f64 = 0.9;

const SHIPPED: &[(&str, &str)] = &[
    ("backend-down-from-browser.toml", include_str!("../patterns/backend-down-from-browser.toml")),
    ("bad-config.toml", include_str!("../patterns/bad-config.toml")),
    ("bad-deploy.toml", include_str!("../patterns/bad-deploy.toml")),
    ("browser-timeout.toml", include_str!("../patterns/browser-timeout.toml")),
    ("cache-stampede.toml", include_str!("../patterns/cache-stampede.toml")),
    ("certificate-expiry.toml", include_str!("../patterns/certificate-expiry.toml")),
    ("contract-drift.toml", include_str!("../patterns/contract-drift.toml")),
    ("cors-blocked.toml", include_str!("../patterns/cors-blocked.toml")),
    ("crash-loop.toml", include_str!("../patterns/crash-loop.toml")),
    ("db-pool-exhaustion.toml", include_str!("../patterns/db-pool-exhaustion.toml")),
    ("dependency-down.toml", include_str!("../patterns/dependency-down.toml")),
    ("disk-full.toml", include_str!("../patterns/disk-full.toml")),
    ("frontend-auth.toml", include_str!("../patterns/frontend-auth.toml")),
    ("health-check-failing.toml", include_str!("../patterns/health-check-failing.toml")),
    ("memory-leak.toml", include_str!("../patterns/memory-leak.toml")),
    ("payload-too-large.toml", include_str!("../patterns/payload-too-large.toml")),
    ("queue-backlog.toml", include_str!("../patterns/queue-backlog.toml")),
    ("service-down.toml", include_str!("../patterns/service-down.toml")),
    ("slow-dependency.toml", include_str!("../patterns/slow-dependency.toml")),
    ("slow-queries.toml", include_str!("../patterns/slow-queries.toml")),
    ("stale-cache.toml", include_str!("../patterns/stale-cache.toml")),
    ("upstream-rate-limited.toml", include_str!("../patterns/upstream-rate-limited.toml")),
];

/// A failure pattern: how to recognise it, what causes it, how to fix and verify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pattern {
    /// Stable id, `[a-z0-9-]`.
    pub id: String,
    /// Version, from 1; a changed pattern gets a higher one.
    pub version: u32,
    /// Short title.
    pub title: String,
    /// What happens, for humans.
    pub description: String,
    /// The root cause it stands for.
    pub root_cause: String,
    /// When it applies.
    pub signature: Signature,
    /// What to look at to confirm it.
    #[serde(default)]
    pub diagnosis: DiagnosisHints,
    /// Fixes, in the order the pattern author prefers.
    #[serde(default)]
    pub remediation: Vec<Remediation>,
    /// How to tell the fix worked.
    pub verification: Verification,
}

/// When a pattern applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Symptom kinds it explains.
    pub kinds: Vec<ProblemKind>,
    /// Keywords (case-insensitive) of which any found in the evidence supports it.
    #[serde(default)]
    pub evidence_any: Vec<String>,
    /// Whether at least one keyword must be found for the pattern to match at all.
    #[serde(default)]
    pub evidence_required: bool,
    /// A capability the service must have (e.g. `cache.clear` for cache patterns).
    #[serde(default)]
    pub requires_capability: Option<String>,
}

/// Evidence a human or agent should collect to confirm the pattern.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosisHints {
    /// What to look at.
    #[serde(default)]
    pub evidence_to_collect: Vec<String>,
}

/// One fix: a tool with parameters, and how to undo it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remediation {
    /// Tool name in the tool catalog.
    pub tool: String,
    /// Tool parameters.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// How invasive it is.
    pub risk: RiskLevel,
    /// Tool that undoes it, if any.
    #[serde(default)]
    pub rollback_tool: Option<String>,
    /// Parameters of the rollback tool.
    #[serde(default)]
    pub rollback_params: BTreeMap<String, String>,
}

/// What must hold after a fix, and by when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    /// Deadline for the service to be healthy again, in milliseconds.
    pub within_ms: u64,
    /// Health probes in a row that must pass.
    pub consecutive_ok: u32,
}

/// A pattern that fits a problem, with how well.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternMatch {
    /// The pattern.
    pub pattern: Pattern,
    /// 0..1.
    pub confidence: f64,
    /// The evidence lines that contained a keyword, each with the keyword.
    pub evidence: Vec<String>,
}

impl Pattern {
    /// Parses and validates one pattern file.
    ///
    /// # Errors
    /// [`PatternError::Invalid`] with the file, the line and the reason.
    pub fn parse(text: &str, origin: &str) -> PatternResult<Self> {
        let pattern: Pattern = toml::from_str(text).map_err(|err| PatternError::Invalid {
            origin: origin.to_owned(),
            line: err.span().map_or(0, |span| line_of_offset(text, span.start)),
            reason: err.message().to_owned(),
        })?;
        pattern.validate().map_err(|(key, reason)| PatternError::Invalid {
            origin: origin.to_owned(),
            line: line_of_key(text, key),
            reason,
        })?;
        Ok(pattern)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(("id", format!("id {:?} must be 1-64 characters of [a-z0-9-]", self.id)));
        }
        if self.version == 0 {
            return Err(("version", "version must be at least 1".into()));
        }
        if self.signature.kinds.is_empty() {
            return Err(("kinds", "signature.kinds must name at least one symptom kind".into()));
        }
        if self.signature.evidence_required && self.signature.evidence_any.is_empty() {
            return Err(("evidence_required", "evidence_required needs at least one evidence_any keyword".into()));
        }
        if self.signature.evidence_any.iter().any(|k| k.trim().is_empty()) {
            return Err(("evidence_any", "evidence_any keywords must not be empty".into()));
        }
        if !(100..=600_000).contains(&self.verification.within_ms) {
            return Err(("within_ms", "verification.within_ms must be within 100..=600000".into()));
        }
        if !(1..=20).contains(&self.verification.consecutive_ok) {
            return Err(("consecutive_ok", "verification.consecutive_ok must be within 1..=20".into()));
        }
        if self.remediation.iter().any(|r| r.tool.trim().is_empty()) {
            return Err(("tool", "remediation.tool must not be empty".into()));
        }
        Ok(())
    }

    /// How well this pattern explains `problem` on a service with `capabilities`; `None` when
    /// it does not apply.
    pub fn score(&self, problem: &Problem, capabilities: &[String]) -> Option<PatternMatch> {
        if !self.signature.kinds.contains(&problem.kind) {
            return None;
        }
        if let Some(capability) = &self.signature.requires_capability {
            if !capabilities.contains(capability) {
                return None;
            }
        }
        let mut evidence = Vec::new();
        let mut keywords_found = 0usize;
        let haystack: Vec<(String, &str)> = std::iter::once(problem.summary.as_str())
            .chain(problem.evidence.iter().map(String::as_str))
            .map(|line| (line.to_lowercase(), line))
            .collect();
        for keyword in &self.signature.evidence_any {
            let needle = keyword.to_lowercase();
            if let Some((_, line)) = haystack.iter().find(|(lower, _)| lower.contains(&needle)) {
                keywords_found += 1;
                evidence.push(format!("{line:?} mentions {keyword:?}"));
            }
        }
        if keywords_found == 0 && self.signature.evidence_required {
            return None;
        }
        let confidence = if keywords_found == 0 {
            SYMPTOM_ONLY_CONFIDENCE
        } else {
            (EVIDENCE_CONFIDENCE + PER_EXTRA_KEYWORD * (keywords_found - 1) as f64).min(MAX_CONFIDENCE)
        };
        if keywords_found == 0 {
            evidence.push(format!("symptom {} fits; no specific evidence found", problem.kind.as_str()));
        }
        Some(PatternMatch { pattern: self.clone(), confidence, evidence })
    }
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn line_of_key(text: &str, key: &str) -> usize {
    text.lines()
        .position(|line| {
            line.trim_start().starts_with(key)
                && line[line.find(key).unwrap_or(0) + key.len()..].trim_start().starts_with('=')
        })
        .map_or(0, |idx| idx + 1)
}

/// The patterns in force: shipped ones plus user files.
#[derive(Debug, Clone, Default)]
pub struct PatternLibrary {
    patterns: BTreeMap<String, Pattern>,
}

impl PatternLibrary {
    /// The patterns shipped with the binary.
    ///
    /// # Errors
    /// Only if a shipped file is invalid, which a test rules out.
    pub fn shipped() -> PatternResult<Self> {
        let mut library = Self::default();
        for (name, text) in SHIPPED {
            library.add(Pattern::parse(text, &format!("shipped/{name}"))?, name)?;
        }
        Ok(library)
    }

    /// Adds every `*.toml` file of `dir`. A file whose id exists already must carry a higher
    /// version and replaces the older pattern.
    ///
    /// # Errors
    /// The first invalid file, with its line and reason; nothing is added then.
    pub fn load_dir(&mut self, dir: &Path) -> PatternResult<usize> {
        let io = |source| PatternError::Io { dir: dir.display().to_string(), source };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        files.sort();
        let mut staged = self.clone();
        for path in &files {
            let text = std::fs::read_to_string(path).map_err(io)?;
            let origin = path.display().to_string();
            staged.add(Pattern::parse(&text, &origin)?, &origin)?;
        }
        *self = staged;
        Ok(files.len())
    }

    fn add(&mut self, pattern: Pattern, origin: &str) -> PatternResult<()> {
        if let Some(existing) = self.patterns.get(&pattern.id) {
            if *existing == pattern {
                return Ok(());
            }
            if pattern.version <= existing.version {
                return Err(PatternError::Invalid {
                    origin: origin.to_owned(),
                    line: 0,
                    reason: format!(
                        "pattern {} version {} exists already; a changed pattern needs a version above {}",
                        pattern.id, pattern.version, existing.version
                    ),
                });
            }
        }
        self.patterns.insert(pattern.id.clone(), pattern);
        Ok(())
    }

    /// All patterns, by id.
    pub fn patterns(&self) -> impl Iterator<Item = &Pattern> {
        self.patterns.values()
    }

    /// A pattern by id.
    pub fn get(&self, id: &str) -> Option<&Pattern> {
        self.patterns.get(id)
    }

    /// Patterns that explain `problem`, most confident first.
    pub fn match_problem(&self, problem: &Problem, capabilities: &[String]) -> Vec<PatternMatch> {
        let mut matches: Vec<PatternMatch> =
            self.patterns.values().filter_map(|p| p.score(problem, capabilities)).collect();
        matches.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then_with(|| a.pattern.id.cmp(&b.pattern.id)));
        matches
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use aiops_model::{Problem, ProblemKind, Severity};
    use chrono::Utc;

    use super::*;

    fn problem(kind: ProblemKind, evidence: &[&str]) -> Problem {
        Problem {
            id: "p".into(),
            service: "bookmarks".into(),
            instance_id: None,
            kind,
            severity: Severity::Error,
            summary: "bookmarks: 40% of 50 requests failed with 5xx".into(),
            detected_at: Utc::now(),
            first_seen: Utc::now(),
            evidence: evidence.iter().map(|s| s.to_string()).collect(),
            metrics: BTreeMap::new(),
        }
    }

    fn shipped_text(file: &str) -> &'static str {
        SHIPPED.iter().find(|(name, _)| *name == file).unwrap().1
    }

    #[test]
    fn every_shipped_pattern_is_valid() {
        let library = PatternLibrary::shipped().unwrap();
        assert_eq!(library.patterns().count(), SHIPPED.len());
    }

    #[test]
    fn evidence_ranks_the_specific_pattern_first() {
        let library = PatternLibrary::shipped().unwrap();
        let caps = vec!["cache.clear".to_owned(), "db.reset_pool".to_owned()];
        let p =
            problem(ProblemKind::HttpErrorRatio, &["database: pool timed out while waiting for an open connection"]);
        let matches = library.match_problem(&p, &caps);
        let ids: Vec<&str> = matches.iter().map(|m| m.pattern.id.as_str()).collect();
        assert_eq!(ids, vec!["db-pool-exhaustion", "stale-cache"]);
        assert!(matches[0].confidence > matches[1].confidence);
        assert!(matches[0].evidence[0].contains("pool timed out"));
        // Without the cache capability the cache pattern does not apply.
        let matches = library.match_problem(&p, &[]);
        assert_eq!(matches.len(), 1);
        // Without evidence, the pool pattern does not apply.
        let matches = library.match_problem(&problem(ProblemKind::HttpErrorRatio, &[]), &caps);
        assert_eq!(matches.iter().map(|m| m.pattern.id.as_str()).collect::<Vec<_>>(), vec!["stale-cache"]);
    }

    #[test]
    fn invalid_files_name_file_line_and_reason() {
        let err = Pattern::parse("id = \"x\"\nversion = 1\ntitel = \"typo\"\n", "mine.toml").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("mine.toml:3:"), "{text}");
        assert!(text.contains("titel"), "{text}");
        let shipped = shipped_text("db-pool-exhaustion.toml").replace("consecutive_ok = 3", "consecutive_ok = 0");
        let err = Pattern::parse(&shipped, "p.toml").unwrap_err().to_string();
        let line = shipped.lines().position(|l| l.starts_with("consecutive_ok")).unwrap() + 1;
        assert_eq!(err, format!("p.toml:{line}: verification.consecutive_ok must be within 1..=20"));
    }

    #[test]
    fn user_dir_needs_higher_versions_and_is_all_or_nothing() {
        let dir = std::env::temp_dir().join(format!("aiops-patterns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let newer = shipped_text("stale-cache.toml").replace("version = 1", "version = 2");
        std::fs::write(dir.join("a.toml"), &newer).unwrap();
        let mut library = PatternLibrary::shipped().unwrap();
        assert_eq!(library.load_dir(&dir).unwrap(), 1);
        assert_eq!(library.get("stale-cache").unwrap().version, 2);
        // A changed pattern that keeps its version is refused, and nothing of the dir is taken.
        let changed =
            shipped_text("db-pool-exhaustion.toml").replace("Database connection pool exhausted", "Pool exhausted");
        std::fs::write(dir.join("b.toml"), changed).unwrap();
        let err = library.load_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("version 1 exists already"), "{err}");
        assert_eq!(library.get("db-pool-exhaustion").unwrap().title, "Database connection pool exhausted");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
