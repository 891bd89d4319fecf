//! The dependency graph between services, built from their registrations.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use aiops_model::HealthStatus;
use serde::{Deserialize, Serialize};

use crate::model::badness;
use crate::ServiceInstance;

/// One service (or an unregistered resource something depends on, like `postgres`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceNode {
    /// Its name.
    pub name: String,
    /// Registered instances.
    pub instances: usize,
    /// Of which passing.
    pub passing: usize,
    /// The service's health: its best instance's status (one passing instance serves it);
    /// `None` while it is unknown: nothing by that name is registered, or no check of its
    /// instances has run yet.
    pub status: Option<HealthStatus>,
}

/// `from` depends on `to`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DependencyEdge {
    /// The dependent.
    pub from: String,
    /// What it depends on.
    pub to: String,
}

/// A dependency that is not healthy, reached from a service through its dependencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailingDependency {
    /// The failing service.
    pub service: String,
    /// Its status.
    pub status: HealthStatus,
    /// The chain from the asking service to it, both ends included.
    pub path: Vec<String>,
}

/// Services and who depends on whom, ordered by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DependencyGraph {
    /// Every service registered or depended on.
    pub services: Vec<ServiceNode>,
    /// Every dependency.
    pub edges: Vec<DependencyEdge>,
}

impl DependencyGraph {
    /// The graph of `instances` (all of them, healthy or not).
    pub fn from_instances(instances: &[ServiceInstance]) -> Self {
        let mut services: BTreeMap<&str, ServiceNode> = BTreeMap::new();
        let mut edges = BTreeSet::new();
        for instance in instances {
            let reg = &instance.registration;
            let node = services.entry(&reg.name).or_insert_with(|| ServiceNode {
                name: reg.name.clone(),
                instances: 0,
                passing: 0,
                status: None,
            });
            node.instances += 1;
            node.passing += usize::from(instance.status == HealthStatus::Passing);
            let checked =
                instance.check_states.is_empty() || instance.check_states.iter().any(|c| c.last_checked.is_some());
            if checked {
                node.status = Some(match node.status {
                    Some(best) if badness(best) <= badness(instance.status) => best,
                    _ => instance.status,
                });
            }
            for dependency in &reg.dependencies {
                edges.insert(DependencyEdge { from: reg.name.clone(), to: dependency.clone() });
            }
        }
        for edge in &edges {
            services.entry(&edge.to).or_insert_with(|| ServiceNode {
                name: edge.to.clone(),
                instances: 0,
                passing: 0,
                status: None,
            });
        }
        let services = services.into_values().collect();
        Self { services, edges: edges.into_iter().collect() }
    }

    /// One service.
    pub fn service(&self, name: &str) -> Option<&ServiceNode> {
        self.services.binary_search_by(|n| n.name.as_str().cmp(name)).ok().map(|i| &self.services[i])
    }

    /// The dependencies of `service`, direct and transitive, whose status is warning or
    /// critical, nearest first. A failing dependency explains its dependents' errors.
    pub fn failing_dependencies(&self, service: &str) -> Vec<FailingDependency> {
        let mut failing = Vec::new();
        let mut seen = BTreeSet::from([service.to_owned()]);
        let mut queue = VecDeque::from([vec![service.to_owned()]]);
        while let Some(path) = queue.pop_front() {
            let Some(last) = path.last() else { continue };
            for edge in self.edges.iter().filter(|e| e.from == *last) {
                if !seen.insert(edge.to.clone()) {
                    continue;
                }
                let mut next = path.clone();
                next.push(edge.to.clone());
                if let Some(status @ (HealthStatus::Warning | HealthStatus::Critical)) =
                    self.service(&edge.to).and_then(|n| n.status)
                {
                    failing.push(FailingDependency { service: edge.to.clone(), status, path: next.clone() });
                }
                queue.push_back(next);
            }
        }
        failing
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::{CheckKind, CheckState, ServiceRegistration};

    fn instance(name: &str, status: HealthStatus, dependencies: &[&str], checked: bool) -> ServiceInstance {
        let mut registration = ServiceRegistration::new(name, &format!("{name}-1"), "http://127.0.0.1:1");
        registration.dependencies = dependencies.iter().map(|d| (*d).to_owned()).collect();
        let check = CheckState {
            id: "ttl".into(),
            kind: CheckKind::Ttl,
            status,
            output: String::new(),
            failures: 0,
            successes: 0,
            last_checked: checked.then(Utc::now),
            checked_by: None,
        };
        ServiceInstance {
            registration,
            status,
            status_reason: String::new(),
            status_since: Utc::now(),
            check_states: vec![check],
            last_heartbeat: None,
            registered_at: Utc::now(),
            modify_index: 1,
        }
    }

    #[test]
    fn failing_dependencies_are_found_through_chains_and_cycles_end() {
        let graph = DependencyGraph::from_instances(&[
            instance("web", HealthStatus::Passing, &["api"], true),
            instance("api", HealthStatus::Warning, &["db", "web"], true),
            instance("db", HealthStatus::Critical, &["api"], true),
        ]);
        let failing = graph.failing_dependencies("web");
        let found: Vec<(&str, usize)> = failing.iter().map(|f| (f.service.as_str(), f.path.len())).collect();
        assert_eq!(found, [("api", 2), ("db", 3)], "nearest first, each once despite the cycle");
        assert!(graph.failing_dependencies("nowhere").is_empty());
    }

    #[test]
    fn a_service_whose_checks_never_ran_has_unknown_health() {
        let graph = DependencyGraph::from_instances(&[
            instance("web", HealthStatus::Passing, &["db"], true),
            instance("db", HealthStatus::Warning, &[], false),
        ]);
        assert_eq!(graph.service("db").unwrap().status, None);
        assert!(graph.failing_dependencies("web").is_empty(), "awaiting a first check is not failing");
    }
}
