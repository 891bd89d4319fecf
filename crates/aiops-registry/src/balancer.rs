//! Picks one instance of a service for a caller, always among the healthiest.
//!
//! Health first: only passing instances are candidates; when none passes, warning ones are
//! (degraded beats nothing); critical instances never are. The strategy then chooses among
//! the candidates. Round-robin positions and outstanding counts live in this process: each
//! core instance balances the callers it serves.

use std::collections::HashMap;
use std::sync::Mutex;

use aiops_model::HealthStatus;

use crate::ServiceInstance;

pub use aiops_model::PickStrategy as Strategy;

/// The balancer of one core instance.
#[derive(Debug, Default)]
pub struct Balancer {
    state: Mutex<BalancerState>,
}

#[derive(Debug, Default)]
struct BalancerState {
    next: HashMap<String, usize>,
    outstanding: HashMap<String, u32>,
}

fn hash_of(key: &str, instance_id: &str) -> u64 {
    // FNV-1a: stable across processes and releases, unlike `DefaultHasher`.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes().chain([0]).chain(instance_id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's high bits barely depend on the last bytes; rendezvous hashing compares whole
    // hashes, so mix them (MurmurHash3's finaliser) or one instance wins most keys.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

impl Balancer {
    /// A balancer with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Chooses among `instances` (all of one service); `None` when none is passing or warning.
    /// A [`Strategy::LeastOutstanding`] pick counts as outstanding until [`Balancer::release`].
    /// `key` is what [`Strategy::ConsistentHash`] hashes (without one it falls back to
    /// round-robin).
    pub fn pick(
        &self,
        instances: &[ServiceInstance],
        strategy: Strategy,
        key: Option<&str>,
    ) -> Option<ServiceInstance> {
        let healthiest = [HealthStatus::Passing, HealthStatus::Warning]
            .into_iter()
            .map(|status| instances.iter().filter(|i| i.status == status).collect::<Vec<_>>())
            .find(|candidates| !candidates.is_empty())?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let service = healthiest[0].registration.name.clone();
        let round_robin = |state: &mut BalancerState| {
            let next = state.next.entry(service.clone()).or_default();
            let chosen = *next % healthiest.len();
            *next = next.wrapping_add(1);
            chosen
        };
        let chosen = match (strategy, key) {
            (Strategy::RoundRobin, _) | (Strategy::ConsistentHash, None) => round_robin(&mut state),
            (Strategy::ConsistentHash, Some(key)) => (0..healthiest.len())
                .max_by_key(|&i| hash_of(key, &healthiest[i].registration.instance_id))
                .unwrap_or(0),
            (Strategy::WeightedRandom, _) => {
                let total: u64 = healthiest.iter().map(|i| u64::from(i.registration.weight)).sum();
                let mut ticket = fastrand::u64(0..total.max(1));
                let mut chosen = 0;
                for (index, instance) in healthiest.iter().enumerate() {
                    let weight = u64::from(instance.registration.weight);
                    if ticket < weight {
                        chosen = index;
                        break;
                    }
                    ticket -= weight;
                }
                chosen
            }
            (Strategy::LeastOutstanding, _) => {
                let fewest = healthiest
                    .iter()
                    .map(|i| state.outstanding.get(&i.registration.instance_id).copied().unwrap_or(0))
                    .min()
                    .unwrap_or(0);
                // Ties go round-robin, so that idle instances share the load.
                let tied: Vec<usize> = (0..healthiest.len())
                    .filter(|&i| {
                        state.outstanding.get(&healthiest[i].registration.instance_id).copied().unwrap_or(0) == fewest
                    })
                    .collect();
                let next = state.next.entry(service.clone()).or_default();
                let chosen = tied[*next % tied.len()];
                *next = next.wrapping_add(1);
                *state.outstanding.entry(healthiest[chosen].registration.instance_id.clone()).or_default() += 1;
                chosen
            }
        };
        Some(healthiest[chosen].clone())
    }

    /// Ends an outstanding pick of `instance_id`.
    pub fn release(&self, instance_id: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = state.outstanding.get_mut(instance_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.outstanding.remove(instance_id);
            }
        }
    }

    /// Picks not yet released, per instance id.
    pub fn outstanding(&self, instance_id: &str) -> u32 {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.outstanding.get(instance_id).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use aiops_model::HealthStatus;
    use chrono::Utc;

    use super::*;
    use crate::ServiceRegistration;

    fn instance(id: &str, status: HealthStatus, weight: u32) -> ServiceInstance {
        let mut registration = ServiceRegistration::new("api", id, "http://127.0.0.1:1");
        registration.weight = weight;
        ServiceInstance {
            registration,
            status,
            status_reason: String::new(),
            status_since: Utc::now(),
            check_states: Vec::new(),
            last_heartbeat: None,
            registered_at: Utc::now(),
            modify_index: 1,
        }
    }

    fn id(picked: Option<ServiceInstance>) -> String {
        picked.expect("a pick").registration.instance_id
    }

    #[test]
    fn warning_instances_serve_only_when_none_passes_and_critical_never() {
        let balancer = Balancer::new();
        let degraded = [instance("w", HealthStatus::Warning, 1), instance("c", HealthStatus::Critical, 1)];
        for strategy in Strategy::ALL {
            assert_eq!(id(balancer.pick(&degraded, strategy, Some("k"))), "w", "{strategy:?}");
        }
        assert!(balancer.pick(&[instance("c", HealthStatus::Critical, 1)], Strategy::RoundRobin, None).is_none());
    }

    #[test]
    fn weighted_random_follows_the_weights() {
        let balancer = Balancer::new();
        let pool = [instance("light", HealthStatus::Passing, 1), instance("heavy", HealthStatus::Passing, 9)];
        let heavy = (0..10_000).filter(|_| id(balancer.pick(&pool, Strategy::WeightedRandom, None)) == "heavy").count();
        assert!((8_600..=9_400).contains(&heavy), "{heavy} of 10000, expected about 9000");
    }

    #[test]
    fn consistent_hash_moves_only_the_keys_of_a_new_instance() {
        let balancer = Balancer::new();
        let three: Vec<_> = ["a", "b", "c"].iter().map(|i| instance(i, HealthStatus::Passing, 1)).collect();
        let mut four = three.clone();
        four.push(instance("d", HealthStatus::Passing, 1));
        let keys: Vec<String> = (0..1000).map(|n| format!("user-{n}")).collect();
        let mut moved = 0;
        for key in &keys {
            let before = id(balancer.pick(&three, Strategy::ConsistentHash, Some(key)));
            let after = id(balancer.pick(&four, Strategy::ConsistentHash, Some(key)));
            if before != after {
                assert_eq!(after, "d", "a key may only move to the new instance");
                moved += 1;
            }
        }
        assert!((150..=350).contains(&moved), "{moved} of 1000 keys moved, expected about 250");
    }

    #[test]
    fn least_outstanding_prefers_the_idle_instance_until_released() {
        let balancer = Balancer::new();
        let pool = [instance("a", HealthStatus::Passing, 1), instance("b", HealthStatus::Passing, 1)];
        let first = id(balancer.pick(&pool, Strategy::LeastOutstanding, None));
        let second = id(balancer.pick(&pool, Strategy::LeastOutstanding, None));
        assert_ne!(first, second);
        balancer.release(&second);
        assert_eq!(id(balancer.pick(&pool, Strategy::LeastOutstanding, None)), second);
        assert_eq!(balancer.outstanding(&first), 1);
    }
}
