//! Webhooks (COMPATIBILITY.md §9.1): denials, escalations, step-up requests and approval timeouts are
//! POSTed as JSON to `INTENTGATE_WEBHOOK_URL`, signed like the Go gateway
//! (`X-IntentGate-Signature: sha256=<hex HMAC(secret, body)>`) so existing receivers work,
//! plus `X-IntentGate-Timestamp` and `X-IntentGate-Signature-Timestamped` over
//! `"<timestamp>.<body>"` so receivers can refuse replays.
//!
//! The audit drain thread hands projected events over a bounded channel ([`WebhookTap`]); it
//! never waits. Deliveries run concurrently (not one serial worker), each retried with backoff
//! on transport errors, 429 and 5xx. An event that finds the buffer full is dropped, counted
//! and logged (once a second, not once per event).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use intentgate_shared::audit::{AuditEvent, Check, Decision};
use intentgate_shared::audit_sink::{AuditSink, Observer, Tap};
use intentgate_shared::config::Webhook;
use ring::hmac;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

/// Events waiting for delivery before new ones are dropped.
pub const BUFFER: usize = 1024;
/// Deliveries in flight at once.
pub const CONCURRENCY: usize = 16;
/// Attempts per event (the first and three retries).
pub const ATTEMPTS: u32 = 4;
/// Time allowed per attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Delivery counters (exported as metrics).
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Events delivered (2xx).
    pub delivered: AtomicU64,
    /// Retries made.
    pub retried: AtomicU64,
    /// Events dropped: buffer full, a permanent refusal, or attempts exhausted.
    pub dropped: AtomicU64,
}

/// The webhook projection of an audit record: `(event type, severity)`, or `None` when the
/// record is not sent.
pub fn project(e: &AuditEvent) -> Option<(&'static str, &'static str)> {
    if e.tool == "admin/mint" || e.tool == "admin/revoke" {
        return None;
    }
    match e.decision.known() {
        Some(Decision::Block) if e.reason.starts_with("approval window expired") => {
            Some(("intentgate.approval_timeout", "warning"))
        }
        Some(Decision::Block) => Some((
            "intentgate.deny",
            if matches!(
                e.check.known(),
                Some(Check::Capability | Check::Budget | Check::Upstream)
            ) {
                "critical"
            } else {
                "warning"
            },
        )),
        Some(Decision::Escalate) => Some(("intentgate.escalate", "warning")),
        Some(Decision::Allow) if e.requires_step_up => {
            Some(("intentgate.step_up_required", "info"))
        }
        _ => None,
    }
}

/// The compat payload.
pub fn payload(e: &AuditEvent, event: &str, severity: &str) -> Value {
    let mut v = json!({
        "event": event,
        "schema_version": "1",
        "timestamp": e.ts.to_rfc3339_nano(),
        "severity": severity,
        "decision": e.decision,
        "tool": e.tool,
    });
    for (key, value) in [
        ("tenant", e.tenant.as_str()),
        ("check", e.check.as_str()),
        ("agent_id", &e.agent_id),
        ("reason", &e.reason),
        ("capability_token_id", &e.capability_token_id),
        ("pending_id", &e.pending_id),
    ] {
        if !value.is_empty() {
            v[key] = Value::from(value);
        }
    }
    if e.requires_step_up {
        v["requires_step_up"] = Value::Bool(true);
    }
    v
}

/// Whether `event` passes `INTENTGATE_WEBHOOK_EVENTS` (empty: all). Accepts the full names
/// (`intentgate.deny`) and the runbook's short ones (`deny`, `requires_step_up`).
pub fn wanted(filter: &[String], event: &str) -> bool {
    let short = event.trim_start_matches("intentgate.");
    filter.is_empty()
        || filter.iter().any(|f| {
            let f = f.trim();
            f == event || f == short || (f == "requires_step_up" && short == "step_up_required")
        })
}

/// The HMAC key from `INTENTGATE_WEBHOOK_SECRET`: 64 hex characters are 32 bytes, anything
/// else is used as raw bytes.
pub fn signing_key(secret: &str) -> hmac::Key {
    let hex = secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit());
    let bytes: Vec<u8> = if hex {
        (0..32)
            .filter_map(|i| u8::from_str_radix(&secret[2 * i..2 * i + 2], 16).ok())
            .collect()
    } else {
        secret.as_bytes().to_vec()
    };
    hmac::Key::new(hmac::HMAC_SHA256, &bytes)
}

/// `sha256=<hex HMAC(key, message)>`.
pub fn sign(key: &hmac::Key, message: &[u8]) -> String {
    let tag = hmac::sign(key, message);
    let mut out = String::from("sha256=");
    for b in tag.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The drain thread's side: projects each record and queues what the webhook wants (a
/// full buffer drops and counts); [`WebhookTap`] then hands the batch on to the real sink.
#[derive(Debug)]
pub struct WebhookQueue {
    tx: mpsc::Sender<Vec<u8>>,
    events: Vec<String>,
    stats: Arc<WebhookStats>,
}

/// The audit sink with webhooks in front of it.
pub type WebhookTap<S> = Tap<S, WebhookQueue>;

impl Observer for WebhookQueue {
    fn observe(&mut self, batch: &[AuditEvent]) {
        for e in batch {
            let Some((event, severity)) = project(e) else {
                continue;
            };
            if !wanted(&self.events, event) {
                continue;
            }
            let body = payload(e, event, severity).to_string().into_bytes();
            if self.tx.try_send(body).is_err() {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Starts delivery on the current tokio runtime and returns the tap to wrap the audit sink
/// with.
pub fn start<S: AuditSink>(
    inner: S,
    cfg: &Webhook,
    stats: Arc<WebhookStats>,
) -> Result<WebhookTap<S>, reqwest::Error> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let client = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .user_agent("intentgate-gateway/webhook")
        .build()?;
    let key = cfg.secret.as_ref().map(|s| signing_key(s.expose()));
    if key.is_none() {
        tracing::warn!("INTENTGATE_WEBHOOK_SECRET is unset: webhooks are sent unsigned");
    }
    tokio::spawn(deliver_all(
        rx,
        client,
        cfg.url.clone(),
        key.map(Arc::new),
        Arc::clone(&stats),
    ));
    tokio::spawn(report_drops(Arc::clone(&stats)));
    Ok(Tap::new(
        inner,
        WebhookQueue {
            tx,
            events: cfg.events.clone(),
            stats,
        },
    ))
}

async fn deliver_all(
    mut rx: mpsc::Receiver<Vec<u8>>,
    client: reqwest::Client,
    url: String,
    key: Option<Arc<hmac::Key>>,
    stats: Arc<WebhookStats>,
) {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    while let Some(body) = rx.recv().await {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (client, url, key, stats) =
            (client.clone(), url.clone(), key.clone(), Arc::clone(&stats));
        tokio::spawn(async move {
            deliver(&client, &url, key.as_deref(), body, &stats).await;
            drop(permit);
        });
    }
}

/// One event: up to [`ATTEMPTS`] tries, 500 ms backoff doubling to at most 5 s.
async fn deliver(
    client: &reqwest::Client,
    url: &str,
    key: Option<&hmac::Key>,
    body: Vec<u8>,
    stats: &WebhookStats,
) {
    let mut backoff = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let ts = intentgate_shared::timestamp::Timestamp::now()
            .unix_seconds()
            .to_string();
        let mut req = client
            .post(url)
            .header("Content-Type", "application/json")
            .header("X-IntentGate-Timestamp", &ts);
        if let Some(key) = key {
            let mut stamped = Vec::with_capacity(ts.len() + 1 + body.len());
            stamped.extend_from_slice(ts.as_bytes());
            stamped.push(b'.');
            stamped.extend_from_slice(&body);
            req = req
                .header("X-IntentGate-Signature", sign(key, &body))
                .header("X-IntentGate-Signature-Timestamped", sign(key, &stamped));
        }
        let outcome = req.body(body.clone()).send().await;
        let retry = match outcome {
            Ok(r) if r.status().is_success() => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let transient = status == 429 || status >= 500;
                tracing::warn!(status, attempt, transient, "webhook send failed");
                transient
            }
            Err(e) => {
                tracing::warn!(error = %e.without_url(), attempt, "webhook send failed");
                true
            }
        };
        if !retry || attempt == ATTEMPTS {
            break;
        }
        stats.retried.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    stats.dropped.fetch_add(1, Ordering::Relaxed);
}

/// Dropped webhook events, logged once a second while it happens.
async fn report_drops(stats: Arc<WebhookStats>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut seen = 0;
    loop {
        tick.tick().await;
        let now = stats.dropped.load(Ordering::Relaxed);
        if now > seen {
            tracing::warn!(dropped = now - seen, total = now, "webhook events dropped");
            seen = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use intentgate_shared::audit::Decision;
    use intentgate_shared::timestamp::Timestamp;

    fn ev(decision: Decision, check: &str, reason: &str) -> AuditEvent {
        let mut e = AuditEvent::new(Timestamp::from_unix_micros(1), decision, "send_money");
        e.check = check.into();
        e.reason = reason.into();
        e
    }

    #[test]
    fn the_projection_matches_the_go_gateway_and_adds_approval_timeouts() {
        assert_eq!(
            project(&ev(Decision::Block, "capability", "token revoked")),
            Some(("intentgate.deny", "critical"))
        );
        assert_eq!(
            project(&ev(Decision::Block, "policy", "no")),
            Some(("intentgate.deny", "warning"))
        );
        assert_eq!(
            project(&ev(
                Decision::Block,
                "policy",
                "approval window expired (300s)"
            )),
            Some(("intentgate.approval_timeout", "warning"))
        );
        assert_eq!(project(&ev(Decision::Allow, "policy", "ok")), None);
        let mut step = ev(Decision::Allow, "policy", "ok");
        step.requires_step_up = true;
        assert_eq!(
            project(&step),
            Some(("intentgate.step_up_required", "info"))
        );
        let mut mint = ev(Decision::Block, "capability", "x");
        mint.tool = "admin/revoke".into();
        assert_eq!(project(&mint), None);
        assert!(wanted(&[], "intentgate.deny"));
        assert!(wanted(&["deny".into()], "intentgate.deny"));
        assert!(wanted(
            &["requires_step_up".into()],
            "intentgate.step_up_required"
        ));
        assert!(!wanted(&["escalate".into()], "intentgate.deny"));
    }

    #[test]
    fn signatures_use_the_hex_decoded_secret() {
        let hex = "00".repeat(32);
        let a = sign(&signing_key(&hex), b"body");
        let b = sign(&hmac::Key::new(hmac::HMAC_SHA256, &[0u8; 32]), b"body");
        assert_eq!(a, b);
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(sign(&signing_key("raw secret"), b"body"), a);
    }
}
