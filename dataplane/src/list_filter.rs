//! List answers narrowed to what the caller may use: `tools/list`, `prompts/list`,
//! `resources/list` and `resources/templates/list` lose every entry that the token's caveats
//! or the policy (evaluated with `input.phase = "list"`, see [`crate::decision::Core::lists`])
//! would refuse, whether the list comes back as JSON, as a buffered event stream or as a
//! relayed one (`relay::events`). Each page of a paginated list is narrowed as it passes.

use std::sync::Arc;

use intentgate_shared::audit::AuditEvent;
use intentgate_shared::snapshot::Snapshot;
use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::token::Target;

use crate::decision::{Core, VerifiedToken};
use crate::forward::Answer;
use crate::worker::Worker;

/// Which list a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// `tools/list`: entries `{name}`.
    Tools,
    /// `prompts/list`: entries `{name}`.
    Prompts,
    /// `resources/list`: entries `{uri}`.
    Resources,
    /// `resources/templates/list`: entries `{uriTemplate}`.
    Templates,
}

impl ListKind {
    /// The list a method asks for, if it is a list method.
    pub fn of(method: &str) -> Option<Self> {
        Some(match method {
            "tools/list" => Self::Tools,
            "prompts/list" => Self::Prompts,
            "resources/list" => Self::Resources,
            "resources/templates/list" => Self::Templates,
            _ => return None,
        })
    }

    /// The member of `result` holding the entries.
    pub fn member(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Resources => "resources",
            Self::Templates => "resourceTemplates",
        }
    }

    /// The member of an entry naming it.
    pub fn key(self) -> &'static str {
        match self {
            Self::Tools | Self::Prompts => "name",
            Self::Resources => "uri",
            Self::Templates => "uriTemplate",
        }
    }

    /// The method that would use an entry (`input.method` in the list phase).
    pub fn use_method(self) -> &'static str {
        match self {
            Self::Tools => "tools/call",
            Self::Prompts => "prompts/get",
            Self::Resources | Self::Templates => "resources/read",
        }
    }

    /// An entry as the caveats see it.
    pub fn target(self, name: &str) -> Target<'_> {
        match self {
            Self::Tools => Target::Tool(name),
            Self::Prompts => Target::Prompt(name),
            Self::Resources => Target::Resource(name),
            Self::Templates => Target::ResourceTemplate(name),
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Resources => "resources",
            Self::Templates => "resource templates",
        }
    }
}

/// How one list answer is narrowed: its kind and the caller's token (None: no token sent).
#[derive(Debug, Clone)]
pub(crate) struct ListFilter {
    pub(crate) kind: ListKind,
    pub(crate) token: Option<Arc<VerifiedToken>>,
}

impl Worker {
    /// The filter of a list request's answer, if `method` is a list method.
    pub(crate) fn list_filter(
        &self,
        snap: &Snapshot,
        method: &str,
        authorization: Option<&[u8]>,
    ) -> Option<ListFilter> {
        let kind = ListKind::of(method)?;
        let token = authorization.and_then(|a| self.core.borrow_mut().verify(snap, a).token.ok());
        Some(ListFilter { kind, token })
    }

    /// Narrows a whole (JSON or buffered event stream) list answer.
    pub(crate) fn filter_answer(
        &self,
        snap: &Snapshot,
        filter: &ListFilter,
        answer: &mut Answer,
        event: &mut AuditEvent,
    ) {
        if answer.sse {
            let mut parser = crate::sse::Parser::new(self.config.max_body.max(1));
            let Ok(mut events) = parser.push(&answer.body) else {
                return;
            };
            // The list is the last event carrying a result.
            let last = events.iter_mut().rev().find_map(|e| {
                serde_json::from_str::<serde_json::Value>(&e.data)
                    .ok()
                    .filter(|doc| doc.get("result").is_some())
                    .map(|doc| (e, doc))
            });
            if let Some((e, mut doc)) = last
                && self.narrow_list(snap, filter, &mut doc, event)
            {
                e.data = doc.to_string();
                let mut body = Vec::with_capacity(answer.body.len());
                for e in &events {
                    crate::sse::write_event(&mut body, e);
                }
                answer.body = body;
            }
        } else if let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&answer.body)
            && self.narrow_list(snap, filter, &mut doc, event)
            && let Ok(filtered) = serde_json::to_vec(&doc)
        {
            answer.body = filtered;
        }
    }

    /// Removes from a list result the entries the caller may not use, and notes on the
    /// call's record how many; true when the document changed. An entry without its name
    /// (or with one that is not a string) is removed too: nothing can vouch for it.
    pub(crate) fn narrow_list(
        &self,
        snap: &Snapshot,
        filter: &ListFilter,
        doc: &mut serde_json::Value,
        event: &mut AuditEvent,
    ) -> bool {
        let Some(entries) = doc
            .get_mut("result")
            .and_then(|r| r.get_mut(filter.kind.member()))
            .and_then(serde_json::Value::as_array_mut)
        else {
            return false;
        };
        let now = Timestamp::now().unix_seconds();
        let before = entries.len();
        let mut by_policy = 0usize;
        let mut core = self.core.borrow_mut();
        entries.retain(|entry| {
            let Some(name) = entry
                .get(filter.kind.key())
                .and_then(serde_json::Value::as_str)
            else {
                return false;
            };
            let token = filter.token.as_deref();
            match visible(&mut core, snap, token, filter.kind, name, now) {
                Visible::Shown => true,
                Visible::HiddenByToken => false,
                Visible::HiddenByPolicy => {
                    by_policy += 1;
                    false
                }
            }
        });
        let hidden = before - entries.len();
        if hidden == 0 {
            return false;
        }
        if !event.reason.is_empty() {
            event.reason.push_str("; ");
        }
        event.reason.push_str(&format!(
            "{hidden} of {before} {} hidden ({by_policy} by the policy, the rest by the token's caveats)",
            filter.kind.noun()
        ));
        true
    }
}

/// Whether a list entry is shown, and if not, what hides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visible {
    /// A call using it could pass the token and the policy.
    Shown,
    /// The token's caveats refuse it.
    HiddenByToken,
    /// The policy's list phase refuses it.
    HiddenByPolicy,
}

/// Whether the holder of `token` sees entry `name` of a `kind` list at `now`: the token's
/// caveats for the entry, then the policy's list phase.
pub fn visible(
    core: &mut Core,
    snap: &Snapshot,
    token: Option<&VerifiedToken>,
    kind: ListKind,
    name: &str,
    now: i64,
) -> Visible {
    if let Some(t) = token
        && t.token
            .check_target(now, &t.token.claims.sub, kind.target(name))
            .is_err()
    {
        return Visible::HiddenByToken;
    }
    if core.lists(snap, token, kind, name) {
        Visible::Shown
    } else {
        Visible::HiddenByPolicy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_kinds_name_their_members_and_the_method_that_uses_an_entry() {
        let k = ListKind::of("resources/templates/list").unwrap();
        assert_eq!(
            (k.member(), k.key(), k.use_method()),
            ("resourceTemplates", "uriTemplate", "resources/read")
        );
        assert_eq!(ListKind::of("prompts/list"), Some(ListKind::Prompts));
        assert_eq!(ListKind::of("tools/call"), None);
        assert_eq!(ListKind::Tools.target("x"), Target::Tool("x"));
    }
}
