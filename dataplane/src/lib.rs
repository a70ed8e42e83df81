//! The data plane: one monoio worker per core that parses MCP JSON-RPC, runs the four checks
//! (capability, intent, policy, budget) against immutable snapshots, forwards allowed calls
//! and pushes one audit record per decision into its ring. It depends on nothing async
//! besides monoio (checked by `tests/tests/architecture.rs`).
//!
//! A request passes through the modules in this order (`ARCHITECTURE.md` walks one call):
//!
//! | phase | module | holds |
//! |---|---|---|
//! | 0 | [`runtime`] | configuration, threads, drivers, start and stop |
//! | 1 | [`connection`] | accept, framing, limits, timeouts, flush (`http`: the sans-IO parser) |
//! | 2 | [`routing`] | request → handler; every refusal → its HTTP/JSON-RPC answer |
//! | 3 | [`mcp`], [`tool_call`] | the two entry points (`jsonrpc`: the envelope; `mcp_transport`, `origin`, `resource_metadata`) |
//! | 4 | [`decision`] | token → verdict: `decision::checks`, `intent`, `budget`, `approvals`, `stages` |
//! | 5 | [`forward`] | the upstream forward (`upstream`) and the record around it (`audit_ring`) |
//! | 6 | [`relay`] | event streams (`sse`) and `/v1/admin/*`; [`list_filter`] narrows the four list answers |
//!
//! Beside the path: [`worker`] (the per-core context every phase reads), [`metrics`]
//! (per-core single-writer counters; [`scrape`] is what `/metrics` reads of them and of the
//! audit rings, through `shared::metrics::DataPlaneMetrics`), [`socket_peek`] (the crate's one `unsafe` call) and
//! [`demo_upstream`] (the canned MCP server of `intentgate dev`).

pub mod approvals;
pub mod audit_ring;
pub mod budget;
mod connection;
pub mod decision;
pub mod demo_upstream;
mod forward;
pub mod http;
pub mod intent;
pub mod jsonrpc;
pub mod list_filter;
mod mcp;
pub mod mcp_transport;
pub mod metrics;
pub mod origin;
mod relay;
pub mod resource_metadata;
mod routing;
pub mod runtime;
pub mod scrape;
pub mod server_requests;
pub mod session_seal;
pub mod socket_peek;
pub mod sse;
pub mod stages;
mod tool_call;
pub mod upstream;
mod worker;
