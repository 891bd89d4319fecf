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
    hash
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
