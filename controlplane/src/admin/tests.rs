use std::collections::HashMap;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request;
use http_body_util::BodyExt as _;
use intentgate_dataplane::approvals::{ApprovalQueue, PendingRequest};
use intentgate_dataplane::audit_ring::{self, AuditCounters, AuditDrain, MemorySink};
use intentgate_shared::config::Secret;
use intentgate_shared::key_ring::MasterKey;
use intentgate_shared::policy::Policy;
use intentgate_shared::snapshot::{RevocationSet, Snapshot};
use tower::ServiceExt as _;

use super::*;

struct Harness {
    app: Router,
    state: Arc<AdminState>,
    sink: MemorySink,
    drain: Option<AuditDrain>,
    /// The data plane's approvals queue the admin API decides on.
    queue: Arc<ApprovalQueue>,
}

impl Harness {
    fn new() -> Self {
        Self::with_store(None)
    }

    fn with_store(audit_store: Option<sqlx::PgPool>) -> Self {
        Self::build(audit_store, None)
    }

    /// With the policy lifecycle on `store` (its snapshot is the harness's own).
    fn with_policies(store: crate::policies::PolicyStore) -> Self {
        Self::build(None, Some(store))
    }

    fn build(
        audit_store: Option<sqlx::PgPool>,
        policy_store: Option<crate::policies::PolicyStore>,
    ) -> Self {
        let snapshot = Snapshot {
            version: 0,
            built_at: Timestamp::now(),
            keys: KeyRing::single(MasterKey::from_bytes(&[5; 32])),
            revoked: Arc::new(RevocationSet::default()),
            default_policy: Policy::default_policy().unwrap(),
            tenant_policies: Arc::new(HashMap::new()),
        };
        let sink = MemorySink::new(100, false);
        let (mut producers, drain) =
            audit_ring::start(1, sink.clone(), Arc::new(AuditCounters::default()));
        let snapshot = Arc::new(SnapshotCell::new(snapshot));
        let queue = Arc::new(ApprovalQueue::default());
        let policies = policy_store.map(|store| {
            Arc::new(crate::policies::PolicyManager::new(
                store,
                Arc::clone(&snapshot),
                intentgate_shared::policy::Syntax::V1,
                (Policy::default_policy().unwrap(), "embedded default".into()),
            ))
        });
        let state = Arc::new(AdminState {
            auth: AdminAuth::new(
                Some(&Secret::new("root-token")),
                &[
                    ("acme".into(), Secret::new("acme-token")),
                    ("globex".into(), Secret::new("globex-token")),
                ],
            ),
            keys: KeyRing::single(MasterKey::from_bytes(&[5; 32])),
            snapshot,
            revocations: RevocationStore::memory(),
            audit: Mutex::new(Box::new(producers.remove(0))),
            approvals: Some(Approvals::Memory(
                Arc::clone(&queue) as Arc<dyn intentgate_shared::approval::PendingApprovals>
            )),
            audit_store,
            audit_public_key: None,
            policies,
            policy_syntax: intentgate_shared::policy::Syntax::V1,
            relay_secret: Some(relay_secret_digest("relay-s3cret")),
            integrations: Default::default(),
        });
        let app = router(Arc::clone(&state))
            .unwrap()
            .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
        Self {
            app,
            state,
            sink,
            drain: Some(drain),
            queue,
        }
    }

    /// Status, headers and the raw body.
    async fn fetch(&self, uri: &str, token: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let req = Request::builder()
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        self.send_with(method, uri, token, body, &[]).await
    }

    async fn send_with(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: &str,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn events(&mut self) -> Vec<AuditEvent> {
        if let Some(d) = self.drain.take() {
            d.stop();
        }
        self.sink.recent()
    }
}

mod access;
mod approvals;
mod audit;
mod dry_run;
mod policies;
mod tokens;
