//! The control plane: admin API, stores, snapshot publisher, chain writer. Today it holds the
//! Postgres schema and its migrations (`store`); the admin API arrives with the control-plane
//! issue. The `intentgate` binary (src/bin/intentgate) is a thin layer over this library and
//! `intentgate-shared`.

pub mod store;
