//! `tools/list` narrowed to the caller's token: an agent sees only the tools its
//! `tool_allow` / `tool_deny` caveats let it call, whether the list comes back as JSON, as a
//! buffered event stream or as a relayed one (`relay::events`).

use intentgate_shared::audit::AuditEvent;
use intentgate_shared::snapshot::Snapshot;
use intentgate_shared::timestamp::Timestamp;

use crate::decision::VerifiedToken;
use crate::forward::Answer;
use crate::http::Head;
use crate::worker::Worker;

impl Worker {
    pub(crate) fn filter_tools(
        &self,
        snap: &Snapshot,
        buf: &[u8],
        head: &Head,
        answer: &mut Answer,
        event: &mut AuditEvent,
    ) {
        let Some(auth) = head.authorization.clone() else {
            return;
        };
        let Ok(token) = self.core.borrow_mut().verify(snap, &buf[auth]).token else {
            return;
        };
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
                && narrow_tools(&mut doc, &token, event)
            {
                e.data = doc.to_string();
                let mut body = Vec::with_capacity(answer.body.len());
                for e in &events {
                    crate::sse::write_event(&mut body, e);
                }
                answer.body = body;
            }
        } else if let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&answer.body)
            && narrow_tools(&mut doc, &token, event)
            && let Ok(filtered) = serde_json::to_vec(&doc)
        {
            answer.body = filtered;
        }
    }
}

/// Removes from a `tools/list` result the tools `token` may not call, and notes on the
/// call's record how many; true when the document changed.
pub(crate) fn narrow_tools(
    doc: &mut serde_json::Value,
    token: &VerifiedToken,
    event: &mut AuditEvent,
) -> bool {
    let Some(tools) = doc
        .get_mut("result")
        .and_then(|r| r.get_mut("tools"))
        .and_then(serde_json::Value::as_array_mut)
    else {
        return false;
    };
    let now = Timestamp::now().unix_seconds();
    let sub = &token.token.claims.sub;
    let before = tools.len();
    tools.retain(|t| {
        t.get("name")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|name| token.token.check(now, sub, name).is_ok())
    });
    let hidden = before - tools.len();
    if hidden == 0 {
        return false;
    }
    if !event.reason.is_empty() {
        event.reason.push_str("; ");
    }
    event.reason.push_str(&format!(
        "{hidden} of {before} tools hidden by the token's caveats"
    ));
    true
}
