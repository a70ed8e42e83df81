//! SIEM forwarders (COMPATIBILITY.md §9.2): every audit record goes to Splunk HEC, Datadog Logs,
//! Microsoft Sentinel and S3-compatible storage, whichever are configured.
//!
//! The audit drain thread offers each record to every forwarder's bounded spool
//! ([`SiemTap`]); it never waits. One task per forwarder sends the spool in batches (a full
//! batch at once, a partial one after the flush interval). Unlike the Go gateway, a batch the
//! receiver could not take for a transient reason (transport error, 408, 429, 5xx) stays in
//! the spool and is retried with backoff, so an outage loses nothing until the spool is full;
//! from then on new records are dropped, counted and logged. A permanent refusal (other 4xx)
//! drops that batch, counted, since sending it again cannot succeed.

mod datadog;
mod s3;
mod sentinel;
pub mod sigv4;
mod splunk;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use intentgate_shared::audit::{AuditEvent, Check, Decision, Recorded};
use intentgate_shared::audit_sink::{AuditSink, Observer, Tap};
use intentgate_shared::config::{Config, SiemOptions};
use intentgate_shared::timestamp::Timestamp;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// Time allowed per request (as the Go batcher's flush timeout).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait after a transient failure; doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between retries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One audit record as the forwarders need it, built once and shared by all of them.
#[derive(Debug)]
pub struct Item {
    /// Event time.
    pub ts: Timestamp,
    /// The full event JSON (as on stdout and in exports).
    pub json: Vec<u8>,
    /// `allow`, `block` or `escalate`.
    pub decision: Recorded<Decision>,
    /// The stage that decided.
    pub check: Recorded<Check>,
    /// Tool.
    pub tool: String,
    /// Agent.
    pub agent_id: String,
    /// Reason.
    pub reason: String,
}

impl Item {
    fn of(e: &AuditEvent) -> Self {
        Self {
            ts: e.ts,
            json: e.to_json(),
            decision: e.decision.clone(),
            check: e.check.clone(),
            tool: e.tool.clone(),
            agent_id: e.agent_id.clone(),
            reason: e.reason.clone(),
        }
    }
}

/// A forwarder's bounded queue of records not yet accepted by its receiver.
#[derive(Debug)]
pub struct Spool {
    items: Mutex<VecDeque<Arc<Item>>>,
    capacity: usize,
    batch: usize,
    wake: Notify,
}

impl Spool {
    fn new(capacity: usize, batch: usize) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            capacity,
            batch,
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Item>>> {
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a record; false when the spool is full.
    fn offer(&self, item: Arc<Item>) -> bool {
        let len = {
            let mut q = self.lock();
            if q.len() >= self.capacity {
                return false;
            }
            q.push_back(item);
            q.len()
        };
        if len == self.batch {
            self.wake.notify_one();
        }
        true
    }

    /// The oldest records, up to one batch, still queued.
    fn peek(&self) -> Vec<Arc<Item>> {
        self.lock().iter().take(self.batch).cloned().collect()
    }

    /// Removes the `n` oldest records (a batch that was accepted or refused for good).
    fn pop(&self, n: usize) {
        let mut q = self.lock();
        let n = n.min(q.len());
        q.drain(..n);
    }

    /// Records queued.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records it can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// A forwarder's state, for `/v1/admin/integrations` and `/metrics`.
#[derive(Debug)]
pub struct Status {
    /// `splunk`, `datadog`, `sentinel` or `s3`.
    pub name: &'static str,
    /// Where it sends (no credentials, no query string).
    pub endpoint: String,
    /// Its spool.
    pub spool: Arc<Spool>,
    /// Records the receiver accepted.
    pub delivered: AtomicU64,
    /// Records dropped: spool full or refused for good.
    pub dropped: AtomicU64,
    /// Batches sent again after a transient failure.
    pub retried: AtomicU64,
    flushes: AtomicU64,
    flush_micros_total: AtomicU64,
    last_flush_micros: AtomicU64,
    /// Unix microseconds of the last accepted batch (0: never).
    last_flush_at: AtomicI64,
    last_error: Mutex<Option<String>>,
}

impl Status {
    fn new(name: &'static str, endpoint: String, spool: Arc<Spool>) -> Self {
        Self {
            name,
            endpoint,
            spool,
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            flush_micros_total: AtomicU64::new(0),
            last_flush_micros: AtomicU64::new(0),
            last_flush_at: AtomicI64::new(0),
            last_error: Mutex::new(None),
        }
    }

    fn error_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn flushed(&self, n: usize, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.delivered.fetch_add(n as u64, Ordering::Relaxed);
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.flush_micros_total.fetch_add(micros, Ordering::Relaxed);
        self.last_flush_micros.store(micros, Ordering::Relaxed);
        self.last_flush_at
            .store(Timestamp::now().unix_micros(), Ordering::Relaxed);
        *self.error_slot() = None;
    }

    /// The compat status object, plus buffer use and flush timings.
    pub fn to_json(&self) -> Value {
        let at = self.last_flush_at.load(Ordering::Relaxed);
        let flushes = self.flushes.load(Ordering::Relaxed);
        let mut v = json!({
            "name": self.name,
            "configured": true,
            "endpoint": self.endpoint,
            "last_flush_ts": last_flush_ts(at),
            "total_events": self.delivered.load(Ordering::Relaxed),
            "dropped_count": self.dropped.load(Ordering::Relaxed),
            "retried_count": self.retried.load(Ordering::Relaxed),
            "buffer_size": self.spool.capacity(),
            "buffer_used": self.spool.len(),
            "last_flush_micros": self.last_flush_micros.load(Ordering::Relaxed),
            "avg_flush_micros": self.flush_micros_total.load(Ordering::Relaxed)
                .checked_div(flushes).unwrap_or(0),
        });
        if let Some(e) = self.error_slot().clone() {
            v["last_error"] = Value::String(e);
        }
        v
    }
}

/// Go's zero time when never flushed, as the Go gateway printed it.
fn last_flush_ts(micros: i64) -> String {
    if micros == 0 {
        "0001-01-01T00:00:00Z".into()
    } else {
        Timestamp::from_unix_micros(micros).to_rfc3339_nano()
    }
}

/// The compat listing of `GET /v1/admin/integrations`: the three compat names always (the
/// unconfigured ones as such), then S3 and the webhook.
pub fn integrations_json(
    forwarders: &[Arc<Status>],
    webhook: Option<&(String, Arc<crate::webhook::WebhookStats>)>,
) -> Value {
    let mut list: Vec<Value> = ["splunk", "datadog", "sentinel", "s3"]
        .into_iter()
        .filter_map(|name| match forwarders.iter().find(|s| s.name == name) {
            Some(s) => Some(s.to_json()),
            None if name == "s3" => None,
            None => Some(json!({
                "name": name,
                "configured": false,
                "last_flush_ts": last_flush_ts(0),
                "total_events": 0,
                "dropped_count": 0,
            })),
        })
        .collect();
    if let Some((endpoint, stats)) = webhook {
        list.push(json!({
            "name": "webhook",
            "configured": true,
            "endpoint": endpoint,
            "last_flush_ts": last_flush_ts(0),
            "total_events": stats.delivered.load(Ordering::Relaxed),
            "dropped_count": stats.dropped.load(Ordering::Relaxed),
            "retried_count": stats.retried.load(Ordering::Relaxed),
            "buffer_size": crate::webhook::BUFFER,
        }));
    }
    json!({"integrations": list})
}

/// A URL as shown in status and logs: scheme, host and path only.
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            ) + u.path()
        }
        Err(_) => "<invalid url>".into(),
    }
}

/// Why a batch was not accepted.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Worth retrying: transport error, 408, 429, 5xx.
    Transient(String),
    /// Retrying cannot help: other 4xx.
    Permanent(String),
}

impl SendError {
    /// Classifies a non-2xx answer.
    pub(crate) fn from_status(status: reqwest::StatusCode, what: &str) -> Self {
        let code = status.as_u16();
        let message = format!("{what} answered {code}");
        if code == 408 || code == 429 || code >= 500 {
            Self::Transient(message)
        } else {
            Self::Permanent(message)
        }
    }

    /// A transport failure (never with the URL, which may carry a token in its query).
    pub(crate) fn transport(e: &reqwest::Error, what: &str) -> Self {
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        Self::Transient(format!("{what}: {kind}"))
    }
}

/// POSTs a JSON body with `headers`; 2xx is accepted, anything else classified.
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    what: &str,
) -> Result<reqwest::StatusCode, SendError> {
    let mut req = client.post(url).header("Content-Type", "application/json");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let r = req
        .body(body)
        .send()
        .await
        .map_err(|e| SendError::transport(&e, what))?;
    if r.status().is_success() {
        Ok(r.status())
    } else {
        Err(SendError::from_status(r.status(), what))
    }
}

/// One configured receiver.
#[derive(Debug)]
enum Target {
    Splunk(splunk::Splunk),
    Datadog(datadog::Datadog),
    Sentinel(sentinel::Sentinel),
    S3(s3::S3),
}

impl Target {
    async fn send(
        &mut self,
        client: &reqwest::Client,
        items: &[Arc<Item>],
    ) -> Result<(), SendError> {
        match self {
            Self::Splunk(t) => t.send(client, items).await,
            Self::Datadog(t) => t.send(client, items).await,
            Self::Sentinel(t) => t.send(client, items).await,
            Self::S3(t) => t.send(client, items).await,
        }
    }
}

/// The running forwarders.
#[derive(Debug)]
pub struct Siem {
    /// Each forwarder's status, in compat order.
    pub statuses: Vec<Arc<Status>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts every configured forwarder on the current tokio runtime; `None` when none is
/// configured.
pub fn start(cfg: &Config, hostname: &str) -> Result<Option<Siem>, reqwest::Error> {
    let mut targets: Vec<(Target, String)> = Vec::new();
    if let Some(c) = &cfg.splunk {
        targets.push((Target::Splunk(splunk::Splunk::new(c)), display_url(&c.url)));
    }
    if let Some(c) = &cfg.datadog {
        targets.push((
            Target::Datadog(datadog::Datadog::new(c, hostname)),
            display_url(&c.url),
        ));
    }
    if let Some(c) = &cfg.sentinel {
        targets.push((
            Target::Sentinel(sentinel::Sentinel::new(c)),
            display_url(&c.dce_url),
        ));
    }
    if let Some(c) = &cfg.s3 {
        let t = s3::S3::new(c);
        let shown = t.display();
        targets.push((Target::S3(t), shown));
    }
    if targets.is_empty() {
        return Ok(None);
    }
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("intentgate-gateway/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let (stop, stop_rx) = watch::channel(false);
    let mut statuses = Vec::new();
    let mut tasks = Vec::new();
    for (target, endpoint) in targets {
        let spool = Arc::new(Spool::new(cfg.siem.spool_events, cfg.siem.batch_size));
        let name = match &target {
            Target::Splunk(_) => "splunk",
            Target::Datadog(_) => "datadog",
            Target::Sentinel(_) => "sentinel",
            Target::S3(_) => "s3",
        };
        let status = Arc::new(Status::new(name, endpoint, spool));
        tracing::info!(sink = name, endpoint = %status.endpoint, "SIEM forwarder on");
        tasks.push(tokio::spawn(run(
            target,
            client.clone(),
            Arc::clone(&status),
            cfg.siem,
            stop_rx.clone(),
        )));
        statuses.push(status);
    }
    tasks.push(tokio::spawn(report_drops(statuses.clone(), stop_rx)));
    Ok(Some(Siem {
        statuses,
        stop,
        tasks,
    }))
}

impl Siem {
    /// The drain thread's side, wrapping the next audit sink.
    pub fn tap<S: AuditSink>(&self, inner: S) -> SiemTap<S> {
        Tap::new(
            inner,
            SiemOffer {
                statuses: self.statuses.clone(),
            },
        )
    }

    /// Sends what is spooled (retrying transient failures) for at most `within`, then stops.
    /// Returns the records still unsent per forwarder.
    pub async fn shutdown(self, within: Duration) -> Vec<(&'static str, usize)> {
        let _ = self.stop.send(true);
        let tasks = self.tasks;
        let _ = tokio::time::timeout(within, async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
        self.statuses
            .iter()
            .map(|s| (s.name, s.spool.len()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// Offers every record to each forwarder's spool (a full one drops and counts).
#[derive(Debug)]
pub struct SiemOffer {
    statuses: Vec<Arc<Status>>,
}

/// The audit sink with the SIEM forwarders in front of it.
pub type SiemTap<S> = Tap<S, SiemOffer>;

impl Observer for SiemOffer {
    fn observe(&mut self, batch: &[AuditEvent]) {
        for e in batch {
            let item = Arc::new(Item::of(e));
            for s in &self.statuses {
                if !s.spool.offer(Arc::clone(&item)) {
                    s.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

async fn run(
    mut target: Target,
    client: reqwest::Client,
    status: Arc<Status>,
    options: SiemOptions,
    mut stop: watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(options.flush_interval_ms);
    let spool = Arc::clone(&status.spool);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let stopping = *stop.borrow();
        if !stopping && spool.len() < options.batch_size {
            tokio::select! {
                () = spool.wake.notified() => {}
                () = tokio::time::sleep(interval) => {}
                _ = stop.changed() => {}
            }
        }
        let stopping = *stop.borrow();
        loop {
            let items = spool.peek();
            if items.is_empty() {
                break;
            }
            let started = Instant::now();
            match target.send(&client, &items).await {
                Ok(()) => {
                    spool.pop(items.len());
                    status.flushed(items.len(), started.elapsed());
                    backoff = FIRST_BACKOFF;
                }
                Err(SendError::Permanent(e)) => {
                    spool.pop(items.len());
                    status
                        .dropped
                        .fetch_add(items.len() as u64, Ordering::Relaxed);
                    tracing::warn!(sink = status.name, events = items.len(), error = %e, "siem batch refused; dropped");
                    *status.error_slot() = Some(e);
                }
                Err(SendError::Transient(e)) => {
                    status.retried.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(sink = status.name, events = items.len(), error = %e, retry_in_ms = backoff.as_millis() as u64, "siem send failed; kept for retry");
                    *status.error_slot() = Some(e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            // Between intervals only full batches go; at shutdown everything does.
            if !stopping && spool.len() < options.batch_size {
                break;
            }
        }
        if stopping && spool.is_empty() {
            return;
        }
    }
}

/// Records dropped for a full spool, logged once a second while it happens.
async fn report_drops(statuses: Vec<Arc<Status>>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut seen = vec![0u64; statuses.len()];
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        for (s, seen) in statuses.iter().zip(seen.iter_mut()) {
            let now = s.dropped.load(Ordering::Relaxed);
            if now > *seen {
                tracing::warn!(
                    sink = s.name,
                    dropped = now - *seen,
                    total = now,
                    "siem events dropped"
                );
                *seen = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use intentgate_shared::audit::Decision;

    fn item(n: i64) -> Arc<Item> {
        Arc::new(Item::of(&AuditEvent::new(
            Timestamp::from_unix_micros(n),
            Decision::Allow,
            "t",
        )))
    }

    #[test]
    fn the_spool_keeps_order_refuses_beyond_capacity_and_pops_only_what_was_taken() {
        let s = Spool::new(3, 2);
        assert!(s.offer(item(1)) && s.offer(item(2)) && s.offer(item(3)));
        assert!(!s.offer(item(4)), "full");
        let batch = s.peek();
        assert_eq!(
            batch.iter().map(|i| i.ts.unix_micros()).collect::<Vec<_>>(),
            [1, 2]
        );
        // A failed send pops nothing: the same batch comes again.
        assert_eq!(s.peek().len(), 2);
        s.pop(batch.len());
        assert_eq!(s.len(), 1);
        assert_eq!(s.peek()[0].ts.unix_micros(), 3);
        s.pop(10);
        assert!(s.is_empty());
    }

    #[test]
    fn statuses_render_the_compat_fields_and_never_flushed_as_go_zero_time() {
        let st = Status::new("splunk", "https://h/x".into(), Arc::new(Spool::new(5, 2)));
        let v = st.to_json();
        assert_eq!(v["last_flush_ts"], "0001-01-01T00:00:00Z");
        assert_eq!(v["buffer_size"], 5);
        assert!(v.get("last_error").is_none());
        st.flushed(2, Duration::from_micros(40));
        let v = st.to_json();
        assert_eq!(v["total_events"], 2);
        assert_eq!(v["avg_flush_micros"], 40);
        assert_ne!(v["last_flush_ts"], "0001-01-01T00:00:00Z");
        let all = integrations_json(&[Arc::new(st)], None);
        let names: Vec<&str> = all["integrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["splunk", "datadog", "sentinel"]);
        assert_eq!(all["integrations"][1]["configured"], false);
    }

    #[test]
    fn urls_are_shown_without_credentials_or_queries() {
        assert_eq!(
            display_url("https://user:pw@h.example:8088/services/collector?token=abc"),
            "https://h.example:8088/services/collector"
        );
        for (code, transient) in [
            (503, true),
            (429, true),
            (408, true),
            (400, false),
            (403, false),
        ] {
            let e = SendError::from_status(reqwest::StatusCode::from_u16(code).unwrap(), "x");
            assert_eq!(matches!(e, SendError::Transient(_)), transient, "{code}");
        }
    }
}
