//! The per-core context every phase of a request reads: the worker's configuration, its
//! caches, upstream pools and audit producer. One `Worker` per monoio thread, never shared
//! between threads; each phase adds its methods in its own module (`connection`, `routing`,
//! `mcp`, `tool_call`, `decision`, `forward`, `relay`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use regorus::Value;

use intentgate_shared::timestamp::Timestamp;
use intentgate_shared::trace::IdGen;

use crate::audit_ring::AuditProducer;
use intentgate_shared::token::Target;

use crate::decision::{Call, Core, TOOLS_CALL};
use crate::http::Head;
use crate::intent::IntentCache;
use crate::jsonrpc;
use crate::runtime::{ServerConfig, Shared};
use crate::session_seal::SessionSeal;
use crate::stages::Stages;
use crate::upstream::Upstream;

/// One core's worker.
pub(crate) struct Worker {
    pub(crate) config: ServerConfig,
    pub(crate) shared: Arc<Shared>,
    /// Verified-token cache and policy evaluators.
    pub(crate) core: RefCell<Core>,
    pub(crate) audit: RefCell<AuditProducer>,
    pub(crate) upstream: Option<Upstream>,
    pub(crate) extractor: Option<Upstream>,
    pub(crate) admin: Option<Upstream>,
    pub(crate) intents: RefCell<IntentCache>,
    pub(crate) scratch: jsonrpc::ScratchPool,
    /// Open connections on this core.
    pub(crate) open: Cell<usize>,
    /// This worker's index into `shared.metrics`.
    pub(crate) index: usize,
    /// Trace and span ids for sampled calls.
    pub(crate) ids: RefCell<IdGen>,
    /// Seals and opens the session ids clients see.
    pub(crate) sessions: Arc<SessionSeal>,
}

impl Worker {
    pub(crate) fn new(
        config: ServerConfig,
        shared: Arc<Shared>,
        audit: AuditProducer,
        index: usize,
        sessions: Arc<SessionSeal>,
    ) -> Rc<Self> {
        let upstream = config.upstream.clone().map(Upstream::new);
        let extractor = config.extractor.clone().map(Upstream::new);
        let admin = config.admin_relay.clone().map(Upstream::new);
        Rc::new(Self {
            config,
            shared,
            core: RefCell::new(Core::new()),
            audit: RefCell::new(audit),
            upstream,
            extractor,
            admin,
            intents: RefCell::new(IntentCache::default()),
            scratch: jsonrpc::ScratchPool::default(),
            open: Cell::new(0),
            index,
            ids: RefCell::new(IdGen::seeded({
                use std::hash::{BuildHasher as _, Hasher as _};
                std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish()
            })),
            sessions,
        })
    }

    /// This core's counters and histograms.
    pub(crate) fn metrics(&self) -> &crate::metrics::CoreMetrics {
        self.shared.metrics.core(self.index)
    }

    /// What the checks read of a tool call: its headers, the tool and its arguments.
    pub(crate) fn call<'a>(
        &self,
        buf: &'a [u8],
        head: &Head,
        tool: &'a str,
        arguments: Option<&'a Value>,
        remote: &'a str,
    ) -> Call<'a> {
        Call {
            authorization: head.authorization.clone().map(|r| &buf[r]),
            intent_prompt: head.intent_prompt.clone().map(|r| &buf[r]),
            tool,
            method: TOOLS_CALL,
            target: Target::Tool(tool),
            arguments,
            params: None,
            remote_ip: remote,
            now: Timestamp::now(),
        }
    }

    /// What the checks read of any other request: its headers, the method, what it names
    /// and its params.
    pub(crate) fn method_call<'a>(
        &self,
        buf: &'a [u8],
        head: &Head,
        method: &'a str,
        target: Target<'a>,
        params: Option<&'a Value>,
        remote: &'a str,
    ) -> Call<'a> {
        Call {
            authorization: head.authorization.clone().map(|r| &buf[r]),
            intent_prompt: None,
            tool: method,
            method,
            target,
            arguments: None,
            params,
            remote_ip: remote,
            now: Timestamp::now(),
        }
    }

    /// A call's stage clock, sampled for tracing as the configured sampler decides.
    pub(crate) fn stages(&self, buf: &[u8], head: &Head, started: Instant) -> Stages {
        Stages::begin(
            started,
            self.config.trace_sampler.as_ref(),
            head.traceparent.clone().map(|r| &buf[r]),
            &mut self.ids.borrow_mut(),
        )
    }

    /// An untraced stage clock (session methods and streams).
    pub(crate) fn untraced(&self, started: Instant) -> Stages {
        Stages::begin(started, None, None, &mut self.ids.borrow_mut())
    }
}

/// Milliseconds since `started`, as the audit record and `_intentgate` report them.
pub(crate) fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}
