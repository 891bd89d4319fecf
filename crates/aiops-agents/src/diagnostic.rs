//! The Diagnostic agent: explains a problem and ranks the fixes to try.
//!
//! For each `problem.detected` it gathers three kinds of evidence:
//! 1. **Patterns**: shipped and user failure patterns that fit the symptom and its evidence.
//! 2. **Knowledge**: past problems whose signature embeds close to this one, and how each
//!    solution tried on them fared (the `solves` edges carry attempts and successes).
//! 3. **Registry**: the service's capabilities (which fixes it supports), and its dependency
//!    graph: a failing dependency, direct or further down, explains the service's errors, so
//!    it becomes a hypothesis and evidence the patterns match on (`dependency-down`). The
//!    dependency's own failure is matched against the patterns too, and their fixes become
//!    candidates that act on the dependency (`target_service`): fix the dependency, not the
//!    dependent.
//!
//! Each hypothesis gets a confidence and its evidence. Candidate fixes are ordered by the
//! safety ladder:
//! - **proven** fixes first (past problems say they work), ordered by Thompson sampling: a draw
//!   from each fix's Beta posterior, so that the best record usually leads but a fix with a
//!   thinner record still gets tried now and then;
//! - then **untried** fixes of plausible hypotheses, fixes of a failing dependency first (it is
//!   a known fact, not a guess), then least invasive first, because without history the
//!   cheapest fix to try is the one that can do the least harm;
//! - fixes that **failed** on similar problems last.
//!
//! A fix's record is its outcomes on past problems with the same fingerprint
//! ([`aiops_model::Problem::fingerprint`]) when there are any, else its similarity-weighted
//! record on similar problems; its expected success is the mean of a Beta(1, 1) prior updated
//! with that record.
//!
//! With a language model configured, it is consulted last (`consult.rs`): an accepted answer
//! adds an LLM hypothesis, and the fix it chose moves to the front of the untried fixes. It never
//! overtakes a proven fix, and a fix that failed on similar problems stays last. Every candidate
//! records which sources proposed it (rules, knowledge, LLM), so the Learning agent can record
//! which source was right.

use std::collections::HashMap;

use aiops_knowledge::{Direction, NodeKind, Relation, SimilarityQuery};
use aiops_model::{
    event_type, CandidateAction, Diagnosis, DiagnosisSource, Envelope, HealthStatus, Hypothesis, HypothesisSource,
    LlmReview, Problem, ProblemKind, RiskLevel,
};
use aiops_patterns::{Pattern, Remediation};
use aiops_registry::{DependencyGraph, ServiceInstance, ServiceQuery};
use async_trait::async_trait;
use chrono::Utc;

use crate::agent::payload;
use crate::{sampling, solution_id_on, Agent, AgentContext, AgentResult, DiagnosticConfig};

const NAME: &str = "diagnostic";
/// A hypothesis is plausible when its confidence is at least this share of the best one's.
const PLAUSIBLE_SHARE: f64 = 0.5;
/// Similarity-weighted attempts needed before a record counts as evidence.
const MIN_EVIDENCE: f64 = 0.5;
const PROVEN: f64 = 0.6;
const FAILING: f64 = 0.4;
/// Verification used for a fix known only from history, with no pattern saying otherwise.
const DEFAULT_VERIFY_MS: u64 = 5000;
const DEFAULT_VERIFY_OK: u32 = 3;

/// The Diagnostic agent.
#[derive(Debug)]
pub struct Diagnostic {
    config: DiagnosticConfig,
}

impl Diagnostic {
    /// A Diagnostic agent.
    pub fn new(config: DiagnosticConfig) -> Self {
        Self { config }
    }

    /// Builds the diagnosis of `problem` (without publishing it).
    ///
    /// # Errors
    /// When the knowledge graph, registry or embedder fails.
    pub async fn diagnose(&self, ctx: &AgentContext, problem: &Problem) -> AgentResult<Diagnosis> {
        let mut everything = ctx.registry.instances(&ServiceQuery::default()).await?;
        probe_dependencies(ctx, &problem.service, &mut everything).await;
        let mut capabilities: Vec<String> = everything
            .iter()
            .filter(|i| i.registration.name == problem.service)
            .flat_map(|i| i.registration.capabilities.iter().cloned())
            .collect();
        capabilities.sort();
        capabilities.dedup();

        let mut hypotheses = Vec::new();
        let failing = DependencyGraph::from_instances(&everything).failing_dependencies(&problem.service);
        let mut matched_problem = problem.clone();
        for dependency in &failing {
            let reasons: Vec<&str> = everything
                .iter()
                .filter(|i| i.registration.name == dependency.service && i.status != HealthStatus::Passing)
                .map(|i| i.status_reason.as_str())
                .collect();
            let chain = dependency.path.join(" -> ");
            let evidence = format!(
                "dependency {} is {} ({chain}): {}",
                dependency.service,
                dependency.status.as_str(),
                reasons.join("; ")
            );
            // Nearer and worse failures explain more.
            let hops = dependency.path.len().saturating_sub(1) as f64;
            let severity = if dependency.status == HealthStatus::Critical { 0.9 } else { 0.6 };
            hypotheses.push(Hypothesis {
                title: format!("dependency {} is {}", dependency.service, dependency.status.as_str()),
                root_cause: format!("{} fails because {} does ({chain})", problem.service, dependency.service),
                confidence: severity * 0.85_f64.powf(hops - 1.0),
                evidence: vec![evidence.clone()],
                source: HypothesisSource::Registry {
                    dependency: dependency.service.clone(),
                    status: dependency.status,
                    path: dependency.path.clone(),
                },
            });
            matched_problem.evidence.push(evidence);
        }
        let mut candidates: HashMap<String, CandidateAction> = HashMap::new();
        let mut plausibility: HashMap<String, f64> = HashMap::new();

        for matched in ctx.patterns.match_problem(&matched_problem, &capabilities) {
            let pattern = &matched.pattern;
            hypotheses.push(Hypothesis {
                title: pattern.title.clone(),
                root_cause: pattern.root_cause.clone(),
                confidence: matched.confidence,
                evidence: matched.evidence.clone(),
                source: HypothesisSource::Pattern { pattern_id: pattern.id.clone(), version: pattern.version },
            });
            for step in &pattern.remediation {
                let candidate = pattern_candidate(pattern, step, pattern.title.clone(), None);
                let id = candidate.solution_id.clone();
                candidates.entry(id.clone()).or_insert(candidate);
                let best = plausibility.entry(id).or_insert(0.0);
                *best = best.max(matched.confidence);
            }
        }
        for dependency in &failing {
            let confidence = hypotheses
                .iter()
                .find(|h| matches!(&h.source, HypothesisSource::Registry { dependency: d, .. } if *d == dependency.service))
                .map_or(0.0, |h| h.confidence);
            for candidate in dependency_fixes(ctx, problem, &dependency.service, &everything) {
                let (candidate, matched) = candidate;
                let best = plausibility.entry(candidate.solution_id.clone()).or_insert(0.0);
                *best = best.max(confidence * matched);
                candidates.entry(candidate.solution_id.clone()).or_insert(candidate);
            }
        }

        // Similar past problems: searched before this problem is stored, so it never finds itself.
        let embedding = ctx.embedder.embed(&[problem.signature()]).await?.remove(0);
        let similar = ctx
            .knowledge
            .similar(&SimilarityQuery {
                embedding,
                kind: Some(NodeKind::Problem),
                k: self.config.similar_k,
                min_score: self.config.similar_min_score,
                ..Default::default()
            })
            .await?;
        let mut history: HashMap<String, (f64, f64)> = HashMap::new();
        // Outcomes on past problems with this very fingerprint, unweighted.
        let fingerprint = problem.fingerprint();
        let mut exact: HashMap<String, (f64, f64)> = HashMap::new();
        let mut similar_problems = Vec::new();
        for hit in &similar {
            if hit.node.id == problem.id {
                continue;
            }
            similar_problems.push((hit.node.id.clone(), hit.score));
            let weight = f64::from(hit.score);
            let same_fingerprint = hit.node.data["fingerprint"] == fingerprint.as_str();
            for (edge, solution) in
                ctx.knowledge.neighbors(&hit.node.id, Some(Relation::Solves), Direction::Incoming).await?
            {
                let attempts = edge.data["attempts"].as_f64().unwrap_or(0.0);
                let successes = edge.data["successes"].as_f64().unwrap_or(0.0);
                let record = history.entry(solution.id.clone()).or_default();
                record.0 += weight * attempts;
                record.1 += weight * successes;
                if same_fingerprint {
                    let record = exact.entry(solution.id.clone()).or_default();
                    record.0 += attempts;
                    record.1 += successes;
                }
                if successes > 0.0 {
                    hypotheses.push(Hypothesis {
                        title: format!("recurrence of {}", hit.node.name),
                        root_cause: format!("the same fault as past problem {} ({})", hit.node.id, hit.node.name),
                        confidence: (weight * successes / attempts.max(1.0)).min(0.95),
                        evidence: vec![format!(
                            "signature {:.0}% similar; {} healed it {} of {} times",
                            weight * 100.0,
                            solution.name,
                            successes,
                            attempts
                        )],
                        source: HypothesisSource::Knowledge { problem_id: hit.node.id.clone(), similarity: hit.score },
                    });
                }
                let target_service = solution.data["target_service"].as_str().map(str::to_owned);
                // A fix of a dependency applies only while that dependency fails.
                let dependency_fails =
                    |dependency: &String| failing.iter().any(|failing| failing.service == *dependency);
                if target_service.as_ref().is_some_and(|dependency| !dependency_fails(dependency)) {
                    continue;
                }
                if !candidates.contains_key(&solution.id) {
                    // A fix known only from history: take what the solution node recorded.
                    let tool = solution.data["tool"].as_str().unwrap_or_default().to_owned();
                    let Some(spec) = ctx.tools.get(&tool).map(|t| t.spec().clone()) else { continue };
                    candidates.insert(
                        solution.id.clone(),
                        CandidateAction {
                            solution_id: solution.id.clone(),
                            tool,
                            params: solution.data["params"].clone(),
                            risk: spec.risk,
                            hypothesis: format!("recurrence of {}", hit.node.name),
                            pattern_id: None,
                            pattern_version: None,
                            learned_attempts: 0,
                            learned_successes: 0,
                            expected_success: 0.5,
                            verify_within_ms: DEFAULT_VERIFY_MS,
                            verify_consecutive_ok: DEFAULT_VERIFY_OK,
                            rollback: None,
                            target_service,
                            rationale: String::new(),
                            proposed_by: vec![DiagnosisSource::Knowledge],
                        },
                    );
                    plausibility.insert(solution.id.clone(), weight);
                }
            }
        }
        hypotheses.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));

        let top = plausibility.values().copied().fold(0.0, f64::max);
        let mut rng = fastrand::Rng::new();
        let mut ranked: Vec<(u8, f64, bool, RiskLevel, f64, CandidateAction)> = candidates
            .into_values()
            .map(|mut candidate| {
                // The record on this exact fingerprint, when there is one, beats the
                // similarity-weighted record of look-alikes.
                let (attempts, successes, on) = match exact.get(&candidate.solution_id) {
                    Some(&(attempts, successes)) if attempts > 0.0 => (attempts, successes, "this very problem"),
                    _ => {
                        let (attempts, successes) = history.get(&candidate.solution_id).copied().unwrap_or_default();
                        (attempts, successes, "similar problems")
                    }
                };
                candidate.learned_attempts = attempts.round() as u32;
                candidate.learned_successes = successes.round() as u32;
                candidate.expected_success = (successes + 1.0) / (attempts + 2.0);
                // Thompson sampling: proven fixes are ordered by a draw from their Beta
                // posterior, so a fix with a thinner record still gets its chance.
                let draw = sampling::beta(1.0 + successes, 1.0 + (attempts - successes).max(0.0), &mut rng);
                let confidence = plausibility.get(&candidate.solution_id).copied().unwrap_or(0.0);
                let plausible = confidence >= top * PLAUSIBLE_SHARE;
                let (tier, rationale) = if attempts >= MIN_EVIDENCE && candidate.expected_success >= PROVEN {
                    if !candidate.proposed_by.contains(&DiagnosisSource::Knowledge) {
                        candidate.proposed_by.push(DiagnosisSource::Knowledge);
                    }
                    (
                        0,
                        format!(
                            "proven on {on}: {successes:.1} of {attempts:.1} attempts healed (Thompson draw {draw:.2})"
                        ),
                    )
                } else if attempts >= MIN_EVIDENCE && candidate.expected_success < FAILING {
                    (3, format!("failed on {on}: {successes:.1} of {attempts:.1} attempts healed"))
                } else if plausible {
                    (
                        1,
                        format!(
                            "untried here; {} risk, hypothesis confidence {confidence:.2}",
                            candidate.risk.as_str()
                        ),
                    )
                } else {
                    (2, format!("untried; weak hypothesis (confidence {confidence:.2})"))
                };
                candidate.rationale = rationale;
                let on_dependency = candidate.target_service.is_some();
                (tier, draw, on_dependency, candidate.risk, confidence, candidate)
            })
            .collect();
        ranked.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| match a.0 {
                    0 => b.1.total_cmp(&a.1),
                    _ => b.2.cmp(&a.2).then_with(|| a.3.cmp(&b.3)).then_with(|| b.4.total_cmp(&a.4)),
                })
                .then_with(|| a.5.solution_id.cmp(&b.5.solution_id))
        });

        let tiers: Vec<u8> = ranked.iter().map(|r| r.0).collect();
        let mut candidates: Vec<CandidateAction> = ranked.into_iter().map(|r| r.5).collect();
        let llm = match &ctx.ai {
            Some(provider) if self.config.llm.enabled => {
                let consultation = crate::consult::Consultation {
                    ctx,
                    provider,
                    config: &self.config.llm,
                    problem,
                    hypotheses: &hypotheses,
                    candidates: &candidates,
                };
                let review = consultation.run().await;
                apply_review(&review, &mut hypotheses, &mut candidates, &tiers);
                Some(review)
            }
            _ => None,
        };

        Ok(Diagnosis {
            id: aiops_model::new_id(),
            problem: problem.clone(),
            hypotheses,
            candidates,
            similar_problems,
            llm,
            diagnosed_at: Utc::now(),
        })
    }
}

/// How long a live probe of a dependency may take.
const DEPENDENCY_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// Probes the health URL of each instance of the service's direct dependencies now, and marks
/// those that fail critical with what the probe found. The registry's status lags a death by
/// a check interval or two, and the dependent's errors are often the first sign of it.
async fn probe_dependencies(ctx: &AgentContext, service: &str, everything: &mut [ServiceInstance]) {
    let dependencies: Vec<String> = everything
        .iter()
        .filter(|i| i.registration.name == service)
        .flat_map(|i| i.registration.dependencies.iter().cloned())
        .collect();
    let probes = everything.iter().enumerate().filter_map(|(idx, instance)| {
        let wanted = instance.status == HealthStatus::Passing && dependencies.contains(&instance.registration.name);
        wanted.then_some(async move { (idx, ctx.probe_health(instance, DEPENDENCY_PROBE_TIMEOUT).await) })
    });
    for (idx, failure) in futures_util::future::join_all(probes).await {
        if let Some(reason) = failure {
            everything[idx].status = HealthStatus::Critical;
            everything[idx].status_reason = format!("live probe: {reason}");
        }
    }
}

/// The fixes of a failing dependency's own failure, as candidates acting on it, each with how
/// well its pattern matched. The failure is read from the registry: a refused connection or a
/// lost heartbeat is a service down, anything else a failing health check.
fn dependency_fixes(
    ctx: &AgentContext,
    problem: &Problem,
    dependency: &str,
    everything: &[ServiceInstance],
) -> Vec<(CandidateAction, f64)> {
    let instances: Vec<&ServiceInstance> = everything.iter().filter(|i| i.registration.name == dependency).collect();
    let Some(failing) = instances.iter().filter(|i| i.status != HealthStatus::Passing).max_by_key(|i| i.last_heartbeat)
    else {
        return Vec::new();
    };
    let mut capabilities: Vec<String> =
        instances.iter().flat_map(|i| i.registration.capabilities.iter().cloned()).collect();
    capabilities.sort();
    capabilities.dedup();
    let reason = &failing.status_reason;
    let gone = reason.contains("connection refused") || reason.contains("no heartbeat");
    let failure = Problem {
        service: dependency.to_owned(),
        instance_id: Some(failing.registration.instance_id.clone()),
        kind: if gone { ProblemKind::ServiceDown } else { ProblemKind::HealthCheckFailing },
        summary: format!("{dependency}, a dependency of {}, is {}", problem.service, failing.status.as_str()),
        evidence: vec![reason.clone()],
        metrics: Default::default(),
        ..problem.clone()
    };
    let mut fixes = Vec::new();
    for matched in ctx.patterns.match_problem(&failure, &capabilities) {
        let pattern = &matched.pattern;
        for step in &pattern.remediation {
            let hypothesis = format!("dependency {dependency} is {}", failing.status.as_str());
            let candidate = pattern_candidate(pattern, step, hypothesis, Some(dependency));
            fixes.push((candidate, matched.confidence));
        }
    }
    fixes
}

/// The untried candidate a pattern's remediation step makes, for the hypothesis it addresses;
/// acting on `target_service` when that is a dependency rather than the problem's service.
fn pattern_candidate(
    pattern: &Pattern,
    step: &Remediation,
    hypothesis: String,
    target_service: Option<&str>,
) -> CandidateAction {
    let params = serde_json::to_value(&step.params).unwrap_or_default();
    let rollback = step
        .rollback_tool
        .as_ref()
        .map(|tool| (tool.clone(), serde_json::to_value(&step.rollback_params).unwrap_or_default()));
    CandidateAction {
        solution_id: solution_id_on(&step.tool, &params, target_service),
        tool: step.tool.clone(),
        params,
        risk: step.risk,
        hypothesis,
        pattern_id: Some(pattern.id.clone()),
        pattern_version: Some(pattern.version),
        learned_attempts: 0,
        learned_successes: 0,
        expected_success: 0.5,
        verify_within_ms: pattern.verification.within_ms,
        verify_consecutive_ok: pattern.verification.consecutive_ok,
        rollback,
        target_service: target_service.map(str::to_owned),
        rationale: String::new(),
        proposed_by: vec![DiagnosisSource::Rules],
    }
}

/// Folds an accepted LLM answer into the rule-based diagnosis (see the module doc).
fn apply_review(
    review: &LlmReview,
    hypotheses: &mut Vec<Hypothesis>,
    candidates: &mut Vec<CandidateAction>,
    tiers: &[u8],
) {
    if !review.accepted {
        return;
    }
    let (Some(root_cause), Some(confidence)) = (&review.root_cause, review.confidence) else { return };
    let title: String = root_cause.chars().take(80).collect();
    hypotheses.push(Hypothesis {
        title: format!("LLM: {title}"),
        root_cause: root_cause.clone(),
        confidence,
        evidence: review.evidence.clone(),
        source: HypothesisSource::Llm { provider: review.provider.clone(), model: review.model.clone() },
    });
    hypotheses.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let Some(chosen) = review.solution_id.as_ref().and_then(|id| candidates.iter().position(|c| &c.solution_id == id))
    else {
        return;
    };
    candidates[chosen].proposed_by.push(DiagnosisSource::Llm);
    candidates[chosen].rationale.push_str(&format!("; recommended by {} ({confidence:.2})", review.model));
    // Tiers: 0 proven, 1 and 2 untried, 3 failed. Only an untried fix moves, to the front of
    // the untried ones.
    if matches!(tiers[chosen], 1 | 2) {
        let front = tiers.iter().position(|tier| matches!(tier, 1 | 2)).unwrap_or(chosen);
        let candidate = candidates.remove(chosen);
        candidates.insert(front, candidate);
    }
}

#[async_trait]
impl Agent for Diagnostic {
    fn name(&self) -> &'static str {
        NAME
    }

    fn control_types(&self) -> Vec<String> {
        vec![event_type::PROBLEM_DETECTED.into()]
    }

    async fn handle(&self, ctx: &AgentContext, event: &Envelope) -> AgentResult<()> {
        let problem: Problem = payload(event)?;
        let diagnosis = self.diagnose(ctx, &problem).await?;
        let top = diagnosis.hypotheses.first();
        tracing::info!(
            problem = %problem.id,
            service = %problem.service,
            hypothesis = top.map_or("none", |h| h.title.as_str()),
            confidence = top.map_or(0.0, |h| h.confidence),
            candidates = diagnosis.candidates.len(),
            "Problem diagnosed."
        );
        ctx.emit(NAME, event_type::DIAGNOSIS_COMPLETED, &problem.service, problem.severity.into(), &diagnosis).await?;
        Ok(())
    }
}
