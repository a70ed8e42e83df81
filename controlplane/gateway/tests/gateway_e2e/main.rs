//! The real binary end to end: `intentgate dev` (demo upstream, runbook policy) and
//! `intentgate serve`, driven over raw TCP so malformed input can be sent byte for byte.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking; that is their job"
)]

pub(crate) use std::io::{Read as _, Write as _};
pub(crate) use std::net::{SocketAddr, TcpListener, TcpStream};
pub(crate) use std::process::Command;
pub(crate) use std::sync::Arc;
pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};
pub(crate) use std::time::{Duration, Instant};

pub(crate) use intentgate_shared::key_ring::MasterKey;
pub(crate) use intentgate_shared::timestamp::Timestamp;
pub(crate) use intentgate_shared::token::{Caveat, MintRequest, Token};
pub(crate) use serde_json::{Value, json};

#[path = "../support/gateway.rs"]
mod support;
use support::*;

mod durability;
mod enforcement;
mod mcp;
mod methods;
mod replicas;
mod services;
