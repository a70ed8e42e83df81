//! `/v1/admin/*` on the data-plane port, relayed to the admin listener with the caller's
//! address (believed by the admin listener only with the relay secret).

use crate::http::{self, Head};
use crate::routing::Refusal;
use crate::worker::Worker;

impl Worker {
    /// Relays an admin request to the control plane listener, passing the caller's address.
    pub(crate) async fn relay_admin(
        &self,
        buf: &[u8],
        head: &Head,
        body: &[u8],
        remote: &str,
        close: bool,
        out: &mut Vec<u8>,
    ) {
        let Some(admin) = &self.admin else { return };
        let text = |r: &Option<std::ops::Range<usize>>| r.clone().map(|r| &buf[r]);
        let mut headers: Vec<(&str, &[u8])> = vec![("X-IntentGate-Relayed-For", remote.as_bytes())];
        if let Some(secret) = &self.config.admin_relay_secret {
            headers.push(("X-IntentGate-Relay-Secret", secret.as_bytes()));
        }
        if let Some(v) = text(&head.authorization) {
            headers.push(("Authorization", v));
        }
        if let Some(v) = text(&head.elevation_id) {
            headers.push(("X-IntentGate-Elevation-Id", v));
        }
        if !body.is_empty() {
            headers.push(("Content-Type", b"application/json"));
        }
        let (Ok(method), Ok(path)) = (
            std::str::from_utf8(&buf[head.method_name.clone()]),
            std::str::from_utf8(&buf[head.target.clone()]),
        ) else {
            return Refusal::Malformed.write(out, close);
        };
        let req = crate::upstream::Outgoing {
            stream_events: false,
            method,
            path,
            headers: &headers,
            body,
            pass_errors: true,
        };
        match admin.request(&req).await {
            Ok(resp) => http::write_response(out, resp.status, &resp.body, close, &[]),
            Err(_) => Refusal::AdminUnavailable.write(out, close),
        }
    }
}
