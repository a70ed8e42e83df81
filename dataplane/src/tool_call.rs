//! Phase 3, the legacy handler: `POST /v1/tool-call` `{tool, args, agent_id?, session_id?}`
//! gets the same four checks as an MCP `tools/call` ([`Worker::authorize_and_record`]) and
//! answers with the decision itself; nothing is forwarded (the Go gateway's always-allow
//! stub is not copied).

use std::time::Instant;

use crate::decision::Authorized;
use crate::http::{self, Head};
use crate::jsonrpc;
use crate::worker::{Worker, elapsed_ms};

impl Worker {
    /// `POST /v1/tool-call`.
    pub(crate) async fn tool_call(
        &self,
        buf: &[u8],
        head: &Head,
        body: &[u8],
        remote: &str,
        close: bool,
        out: &mut Vec<u8>,
    ) {
        let started = Instant::now();
        let mut scratch = self.scratch.take();
        let req = match jsonrpc::parse_tool_call_body(&mut scratch, body) {
            Ok(r) => r,
            Err(e) => {
                let b = serde_json::json!({"error": e.error, "detail": e.detail}).to_string();
                return http::write_response(out, 400, b.as_bytes(), close, &[]);
            }
        };
        let snap = self.shared.snapshot.load();
        let call = self.call(buf, head, req.tool, req.args.as_ref(), remote);
        let (status, doc) = match self
            .authorize_and_record(&snap, buf, head, &call, started)
            .await
        {
            Err(refusal) => return refusal.write(out, close),
            Ok(Authorized::Denied {
                error,
                check,
                reason,
                ..
            }) => {
                let doc = serde_json::json!({"decision": "block", "check": check.as_str(), "reason": reason, "code": error.code});
                (403, doc)
            }
            Ok(Authorized::Allowed {
                slot,
                mut event,
                stages,
            }) => {
                let doc = serde_json::json!({"decision": "allow", "reason": event.reason, "latency_ms": elapsed_ms(started)});
                event.latency_ms = elapsed_ms(started);
                stages.finish(&mut event);
                self.audit.borrow_mut().push_reserved(slot, event);
                (200, doc)
            }
        };
        http::write_response(out, status, doc.to_string().as_bytes(), close, &[]);
    }
}
