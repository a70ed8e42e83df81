//! The data plane: one monoio worker per core that parses MCP JSON-RPC, runs the four checks
//! (capability, intent, policy, budget) against immutable snapshots, forwards allowed calls
//! and pushes one audit record per decision into its ring.
//!
//! The workers arrive with the data plane issue; this crate already holds the boundary that
//! matters most: it depends on `intentgate-shared` and on nothing async besides monoio
//! (checked by `tests/tests/architecture.rs`).

pub use intentgate_shared as shared;
