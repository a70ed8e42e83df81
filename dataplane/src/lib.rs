//! The data plane: one monoio worker per core that parses MCP JSON-RPC, runs the four checks
//! (capability, intent, policy, budget) against immutable snapshots, forwards allowed calls
//! and pushes one audit record per decision into its ring.
//!
//! Module map: `http` (sans-IO framing), `jsonrpc` (borrowed envelopes), `pipeline` (the
//! checks), `budget` (cross-core counters), `audit_ring` (the handoff to the chain writer),
//! `upstream` (the per-core keep-alive client), `socket_peek` (its one `unsafe` call),
//! `metrics` (per-core single-writer counters) and `stages` (check timing and sampled spans).
//! It depends on nothing async besides monoio (checked by `tests/tests/architecture.rs`).

pub mod approvals;
pub mod audit_ring;
pub mod budget;
pub mod demo_upstream;
pub mod http;
pub mod intent;
pub mod jsonrpc;
pub mod mcp_transport;
pub mod metrics;
pub mod origin;
pub mod pipeline;
pub mod resource_metadata;
pub mod scrape;
pub mod server;
pub mod socket_peek;
pub mod sse;
pub mod stages;
pub mod upstream;
