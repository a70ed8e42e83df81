//! The control plane: the admin API (`admin`), revocation persistence (`revocation`),
//! approvals for the admin API and across replicas (`approvals`), propagation over
//! LISTEN/NOTIFY (`notify`), fan-out to webhooks (`webhook`), SIEMs (`siem`) and trace collectors (`otlp`), and Postgres (`store`, the only module with SQL). The
//! `intentgate` binary (the `intentgate` package in controlplane/gateway) wires it to the data plane.

pub mod admin;
pub mod approvals;
pub mod chain_anchor;
pub mod chain_writer;
pub mod checkpoint;
pub mod dry_run;
pub mod metrics;
pub mod notify;
pub mod otlp;
pub mod policies;
pub mod policy_model;
pub mod revocation;
pub mod siem;
pub mod store;
pub mod webhook;
