//! The control plane: the admin API (`admin`), revocation persistence (`revocation`) and the
//! Postgres schema (`store`, the only module with SQL). The `intentgate` binary
//! (src/bin/intentgate) wires it to the data plane. Policies, approvals, the audit chain
//! writer and replica propagation arrive with their issues.

pub mod admin;
pub mod revocation;
pub mod store;
