//! Runtime-free domain code shared by the data plane and the control plane.
//!
//! Nothing here performs I/O on its own, spawns threads, or depends on an async runtime:
//! both planes (and the benches) call it directly. It also holds the contracts between the
//! planes (`approval`, `audit_sink`, `metrics`): the control plane reaches the data plane only
//! through these traits and types. See `ARCHITECTURE.md` for the map.

pub mod approval;
pub mod audit;
pub mod audit_sink;
pub mod config;
pub mod cpu_list;
pub mod gojson;
pub mod key_ring;
pub mod metrics;
pub mod policy;
pub mod snapshot;
pub mod timestamp;
pub mod token;
pub mod trace;

/// Version string reported by `/healthz` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
