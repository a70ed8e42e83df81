//! Call budgets, shared by all cores and exact across them.
//!
//! `max_calls` is a lifetime count keyed by the token's **root** jti, so attenuated children
//! share their root's budget and cannot fork it. Optional per-agent and per-tenant hourly
//! ceilings apply on top. A call is counted only when it passes every limit, and all limits
//! are checked and charged under the same locks, so two cores never both take the last call.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

const SHARDS: usize = 16;

/// Why a call is over budget (the text is the JSON-RPC `data`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetDenial {
    /// The token's `max_calls`.
    #[error("max_calls exceeded ({count} > {limit})")]
    MaxCalls {
        /// Count including this call.
        count: u64,
        /// The limit.
        limit: u64,
    },
    /// The agent's hourly ceiling.
    #[error("agent hourly budget exceeded ({count} > {limit})")]
    AgentHour {
        /// Count including this call.
        count: u64,
        /// The limit.
        limit: u64,
    },
    /// The tenant's hourly ceiling.
    #[error("tenant hourly budget exceeded ({count} > {limit})")]
    TenantHour {
        /// Count including this call.
        count: u64,
        /// The limit.
        limit: u64,
    },
}

impl BudgetDenial {
    /// The JSON-RPC `data` of the refusal: the reason text, which limit, its value, what was
    /// used, and for an hourly ceiling the seconds until the next hour, when a retry may
    /// succeed (a token's `max_calls` is for its lifetime: no retry ever will).
    pub fn data(&self, now_s: i64) -> Vec<u8> {
        let (scope, count, limit) = match *self {
            Self::MaxCalls { count, limit } => ("max_calls", count, limit),
            Self::AgentHour { count, limit } => ("agent_hour", count, limit),
            Self::TenantHour { count, limit } => ("tenant_hour", count, limit),
        };
        let mut v = serde_json::json!({
            "reason": self.to_string(),
            "scope": scope,
            "limit": limit,
            "used": count.saturating_sub(1),
        });
        if let Some(s) = self.retry_after_s(now_s) {
            v["retry_after_s"] = serde_json::json!(s);
        }
        v.to_string().into_bytes()
    }

    /// Seconds until a retry may succeed, if one ever may.
    pub fn retry_after_s(&self, now_s: i64) -> Option<i64> {
        match self {
            Self::MaxCalls { .. } => None,
            Self::AgentHour { .. } | Self::TenantHour { .. } => {
                Some(3_600 - now_s.rem_euclid(3_600))
            }
        }
    }
}

/// Recent usage of one agent, for `input.agent` in policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Calls today (UTC).
    pub calls_today: u64,
    /// Calls of this tool today.
    pub calls_today_for_tool: u64,
    /// Calls this hour.
    pub calls_this_hour: u64,
}

#[derive(Debug, Default)]
struct Usage {
    day: i64,
    today: u64,
    hour: i64,
    this_hour: u64,
    tools_today: HashMap<Box<str>, u64>,
}

impl Usage {
    fn roll(&mut self, now_s: i64) {
        let (day, hour) = (now_s.div_euclid(86_400), now_s.div_euclid(3_600));
        if self.day != day {
            self.day = day;
            self.today = 0;
            self.tools_today.clear();
        }
        if self.hour != hour {
            self.hour = hour;
            self.this_hour = 0;
        }
    }
}

struct Sharded<V> {
    shards: Vec<Mutex<HashMap<Box<str>, V>>>,
    hasher: RandomState,
}

impl<V: Default> Sharded<V> {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<Box<str>, V>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        // A panic while holding a budget lock leaves plain counters behind: still usable.
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// All budget counters of the process.
pub struct Budget {
    calls: Sharded<u64>,
    agents: Sharded<Usage>,
    tenants: Sharded<Usage>,
    agent_per_hour: Option<u64>,
    tenant_per_hour: Option<u64>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("agent_per_hour", &self.agent_per_hour)
            .field("tenant_per_hour", &self.tenant_per_hour)
            .finish_non_exhaustive()
    }
}

fn agent_key(tenant: &str, agent: &str) -> String {
    format!("{tenant}\u{1e}{agent}")
}

impl Budget {
    /// Counters with optional hourly ceilings.
    pub fn new(agent_per_hour: Option<u64>, tenant_per_hour: Option<u64>) -> Self {
        Self {
            calls: Sharded::new(),
            agents: Sharded::new(),
            tenants: Sharded::new(),
            agent_per_hour,
            tenant_per_hour,
        }
    }

    /// The agent's recent usage (before this call).
    pub fn stats(&self, tenant: &str, agent: &str, tool: &str, now_s: i64) -> AgentStats {
        let key = agent_key(tenant, agent);
        let mut shard = self.agents.shard(&key);
        let Some(u) = shard.get_mut(key.as_str()) else {
            return AgentStats::default();
        };
        u.roll(now_s);
        AgentStats {
            calls_today: u.today,
            calls_today_for_tool: u.tools_today.get(tool).copied().unwrap_or(0),
            calls_this_hour: u.this_hour,
        }
    }

    /// Checks every limit and, only when all pass, counts the call.
    pub fn charge(
        &self,
        root_jti: Option<&str>,
        max_calls: Option<u64>,
        tenant: &str,
        agent: &str,
        tool: &str,
        now_s: i64,
    ) -> Result<(), BudgetDenial> {
        // Lock order is fixed (calls, agents, tenants) so concurrent charges never deadlock.
        let mut calls = match (root_jti, max_calls) {
            (Some(jti), Some(_)) => Some((self.calls.shard(jti), jti)),
            _ => None,
        };
        if let (Some((shard, jti)), Some(limit)) = (&calls, max_calls) {
            let count = shard.get(*jti).copied().unwrap_or(0) + 1;
            if count > limit {
                return Err(BudgetDenial::MaxCalls { count, limit });
            }
        }
        let akey = agent_key(tenant, agent);
        let mut agents = self.agents.shard(&akey);
        let usage = agents.entry(akey.into_boxed_str()).or_default();
        usage.roll(now_s);
        if let Some(limit) = self.agent_per_hour.filter(|&l| usage.this_hour + 1 > l) {
            return Err(BudgetDenial::AgentHour {
                count: usage.this_hour + 1,
                limit,
            });
        }
        let mut tenants = self.tenants.shard(tenant);
        let tusage = tenants.entry(tenant.into()).or_default();
        tusage.roll(now_s);
        if let Some(limit) = self.tenant_per_hour.filter(|&l| tusage.this_hour + 1 > l) {
            return Err(BudgetDenial::TenantHour {
                count: tusage.this_hour + 1,
                limit,
            });
        }
        if let Some((shard, jti)) = &mut calls {
            *shard.entry((*jti).into()).or_default() += 1;
        }
        usage.today += 1;
        usage.this_hour += 1;
        *usage.tools_today.entry(tool.into()).or_default() += 1;
        tusage.today += 1;
        tusage.this_hour += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const NOW: i64 = 1_790_000_000;

    #[test]
    fn max_calls_is_a_lifetime_count_per_root() {
        let b = Budget::new(None, None);
        for _ in 0..3 {
            b.charge(Some("root"), Some(3), "t", "a", "x", NOW).unwrap();
        }
        let err = b
            .charge(Some("root"), Some(3), "t", "a", "x", NOW + 86_400 * 10)
            .unwrap_err();
        assert_eq!(err.to_string(), "max_calls exceeded (4 > 3)");
        let data: serde_json::Value = serde_json::from_slice(&err.data(7_200)).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"reason": "max_calls exceeded (4 > 3)", "scope": "max_calls", "limit": 3, "used": 3})
        );
        // A different root has its own budget; a token without max_calls is not counted.
        b.charge(Some("other"), Some(1), "t", "a", "x", NOW)
            .unwrap();
        b.charge(Some("root"), None, "t", "a", "x", NOW).unwrap();
    }

    #[test]
    fn denied_calls_are_not_counted() {
        let b = Budget::new(Some(1), None);
        b.charge(None, None, "t", "a", "x", NOW).unwrap();
        assert!(b.charge(Some("r"), Some(5), "t", "a", "x", NOW).is_err());
        // The agent ceiling refused it, so the root budget was not charged.
        let b2 = Budget::new(None, None);
        assert!(b2.charge(Some("r"), Some(1), "t", "a", "x", NOW).is_ok());
        assert_eq!(b.stats("t", "a", "x", NOW).calls_this_hour, 1);
    }

    #[test]
    fn hourly_ceilings_reset_each_hour() {
        let b = Budget::new(Some(2), Some(3));
        b.charge(None, None, "t", "a", "x", NOW).unwrap();
        b.charge(None, None, "t", "a", "y", NOW).unwrap();
        assert_eq!(
            b.charge(None, None, "t", "a", "x", NOW)
                .unwrap_err()
                .to_string(),
            "agent hourly budget exceeded (3 > 2)"
        );
        b.charge(None, None, "t", "b", "x", NOW).unwrap();
        assert_eq!(
            b.charge(None, None, "t", "c", "x", NOW)
                .unwrap_err()
                .to_string(),
            "tenant hourly budget exceeded (4 > 3)"
        );
        // An hourly refusal says when the next hour starts (NOW is 800 s into its hour).
        let err = b.charge(None, None, "t", "d", "x", NOW).unwrap_err();
        let data: serde_json::Value = serde_json::from_slice(&err.data(NOW)).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"reason": "tenant hourly budget exceeded (4 > 3)", "scope": "tenant_hour", "limit": 3, "used": 3, "retry_after_s": 2_800})
        );
        b.charge(None, None, "t", "a", "x", NOW + 3_600).unwrap();
        let s = b.stats("t", "a", "x", NOW + 3_600);
        assert_eq!(
            s,
            AgentStats {
                calls_today: 3,
                calls_today_for_tool: 2,
                calls_this_hour: 1
            }
        );
    }

    #[test]
    fn exact_across_threads() {
        let b = Arc::new(Budget::new(None, None));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| b.charge(Some("r"), Some(150), "t", "a", "x", NOW).is_ok())
                        .count()
                })
            })
            .collect();
        let allowed: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(allowed, 150);
    }
}
