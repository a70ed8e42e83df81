//! Runtime-free domain code shared by the data plane and the control plane.
//!
//! Nothing here performs I/O on its own, spawns threads, or depends on an async runtime:
//! both planes (and the benches) call it directly. See `ARCHITECTURE.md` for the map.

pub mod audit;
pub mod config;
pub mod cpu_list;
pub mod gojson;
pub mod key_ring;
pub mod policy;
pub mod snapshot;
pub mod timestamp;
pub mod token;
pub mod trace;

/// Version string reported by `/healthz` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
