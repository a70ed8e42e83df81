//! The list phase: whether the policy lets the caller see one entry of a list answer,
//! evaluated with `input.phase = "list"` and cached per core until the snapshot changes, so
//! a list of a hundred tools costs a hundred map lookups, not a hundred evaluations.

use intentgate_shared::policy::Input;
use intentgate_shared::snapshot::Snapshot;
use regorus::Value;

use super::{Core, VerifiedToken};
use crate::list_filter::ListKind;

/// List-phase decisions kept per core before the cache is cleared.
pub const LIST_CACHE_ENTRIES: usize = 16_384;

/// One cached list-phase decision: the token (by its id), the list and the entry.
pub(super) type ListKey = (Box<str>, ListKind, Box<str>);

impl Core {
    /// Whether the policy lets the holder of `token` see entry `name` of a `kind` list. A
    /// policy that does not govern methods (written for `tools/call` alone) hides nothing:
    /// evaluated without arguments, its argument rules would hide tools that calls may use.
    /// An escalating answer shows the entry (a reviewer may allow the call).
    pub fn lists(
        &mut self,
        snap: &Snapshot,
        token: Option<&VerifiedToken>,
        kind: ListKind,
        name: &str,
    ) -> bool {
        self.sync(snap);
        let claims = token.map(|t| &t.token.claims);
        let tenant = claims.map_or("", |c| c.tenant.as_str());
        let policy = snap.policy_for(tenant);
        if !policy.governs_methods() {
            return true;
        }
        let jti = claims.map_or("", |c| c.jti.as_str());
        let key: ListKey = (jti.into(), kind, name.into());
        if let Some(&seen) = self.lists.get(&key) {
            return seen;
        }
        let mut params = std::collections::BTreeMap::new();
        params.insert(Value::from(kind.key()), Value::from(name));
        let input = Input {
            tool: if kind == ListKind::Tools { name } else { "" },
            method: kind.use_method(),
            params: Some(Value::from(params)),
            phase: "list",
            agent_id: claims.map_or("", |c| c.sub.as_str()),
            capability: token.map(|t| t.capability.clone()),
            ..Input::default()
        }
        .to_value();
        let decision = self
            .evaluators
            .entry(policy.id())
            .or_insert_with(|| policy.evaluator())
            .evaluate(input);
        let shown = decision.allow || decision.escalate;
        if self.lists.len() >= LIST_CACHE_ENTRIES {
            self.lists.clear();
        }
        self.lists.insert(key, shown);
        shown
    }
}
