//! `swap`: policy promotion under load. Client threads call one gateway back to back on
//! keep-alive connections (spread over its cores by SO_REUSEPORT) while the probe promotes
//! two denying policies alternately; every answer must carry one of the two reasons (a
//! failed request or any other answer would be a half-swapped decision). Reports the time
//! from sending the promote to the first decision under the new policy on every connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;

use crate::conn::Conn;
use crate::options::{loopback, positive};

/// Command-line options.
#[derive(Debug, Clone)]
pub struct Options {
    addr: SocketAddr,
    admin_token: String,
    agent_token: String,
    connections: usize,
    swaps: u32,
}

impl Options {
    /// Parses `--addr`, `--admin-token`, `--agent-token`, `--connections`, `--swaps`.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let (mut addr, mut admin, mut agent) = (None, None, None);
        let (mut connections, mut swaps) = (8usize, 100u32);
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--addr" => addr = Some(loopback(flag, value)?),
                "--admin-token" => admin = Some(value.clone()),
                "--agent-token" => agent = Some(value.clone()),
                "--connections" => connections = positive(flag, value)?,
                "--swaps" => swaps = positive(flag, value)?,
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(Self {
            addr: addr.ok_or("--addr is required")?,
            admin_token: admin.ok_or("--admin-token is required")?,
            agent_token: agent.ok_or("--agent-token is required")?,
            connections,
            swaps,
        })
    }
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","arguments":{"id":"s"}}}"#;

fn policy(label: &str) -> String {
    format!(
        "package intentgate.policy\nimport rego.v1\ndefault decision := {{\"allow\": false, \"reason\": \"{label}\"}}\n"
    )
}

/// What each client thread last saw: the policy label (0 or 1) and when.
struct Seen {
    label: Mutex<Vec<(u8, Instant)>>,
}

/// One client connection: calls until stopped, noting which policy decided each call.
fn client(
    addr: std::net::SocketAddr,
    token: &str,
    slot: usize,
    seen: &Seen,
    stop: &AtomicBool,
    calls: &AtomicU64,
    bad: &Mutex<Vec<String>>,
) {
    let Ok(mut c) = Conn::open(addr) else { return };
    while !stop.load(Ordering::Relaxed) {
        let label = match c.post("/v1/mcp", token, CALL) {
            Ok((200, v)) => match v["error"]["data"].as_str() {
                Some("policy-a") => Some(0),
                Some("policy-b") => Some(1),
                _ => None,
            }
            .ok_or_else(|| v.to_string()),
            Ok((status, v)) => Err(format!("HTTP {status}: {v}")),
            Err(e) => Err(e.to_string()),
        };
        calls.fetch_add(1, Ordering::Relaxed);
        match label {
            Ok(l) => {
                seen.label.lock().unwrap_or_else(PoisonError::into_inner)[slot] =
                    (l, Instant::now());
            }
            Err(e) => {
                bad.lock().unwrap_or_else(PoisonError::into_inner).push(e);
                return;
            }
        }
    }
}

/// Runs the probe and prints the distribution.
pub fn run(o: &Options) -> Result<(), String> {
    let mut admin = Conn::open(o.addr).map_err(|e| format!("connect: {e}"))?;
    let mut ids = Vec::new();
    for label in ["policy-a", "policy-b"] {
        let body = json!({"name": label, "rego_source": policy(label)}).to_string();
        let (status, v) = admin
            .post("/v1/admin/policies/drafts", &o.admin_token, &body)
            .map_err(|e| format!("create draft: {e}"))?;
        let id = v["id"]
            .as_str()
            .ok_or(format!("create draft answered {status}: {v}"))?;
        ids.push(id.to_owned());
    }
    let promote = |admin: &mut Conn, i: usize| -> Result<(), String> {
        let body = json!({"draft_id": ids[i], "promoted_by": "swap-probe"}).to_string();
        let (status, v) = admin
            .post("/v1/admin/policies/active", &o.admin_token, &body)
            .map_err(|e| format!("promote: {e}"))?;
        if status == 200 {
            Ok(())
        } else {
            Err(format!("promote answered {status}: {v}"))
        }
    };
    promote(&mut admin, 0)?;
    let seen = Arc::new(Seen {
        label: Mutex::new(vec![(0, Instant::now()); o.connections]),
    });
    let (stop, calls, bad) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(Mutex::new(Vec::<String>::new())),
    );
    let mut clients = Vec::new();
    for slot in 0..o.connections {
        let (seen, stop, calls, bad) = (seen.clone(), stop.clone(), calls.clone(), bad.clone());
        let (addr, token) = (o.addr, o.agent_token.clone());
        clients.push(std::thread::spawn(move || {
            client(addr, &token, slot, &seen, &stop, &calls, &bad);
        }));
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    for i in 0..o.swaps {
        let target = ((i + 1) % 2) as u8;
        let started = Instant::now();
        promote(&mut admin, usize::from(target))?;
        // Every connection must answer under the new policy.
        loop {
            let all = seen
                .label
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .all(|(l, at)| *l == target && *at > started);
            if all {
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                stop.store(true, Ordering::Relaxed);
                return Err(format!(
                    "swap {i}: some connection kept the old policy for 10 s"
                ));
            }
            std::thread::yield_now();
        }
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        hist.record(us.max(1)).map_err(|e| e.to_string())?;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let bad = bad.lock().unwrap_or_else(PoisonError::into_inner);
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "policy swap under load: {} swaps, {} calls on {} connections, {} answers that were neither policy: \
         promote → every connection decided by the new policy: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms \
         (includes the promote request itself)",
        o.swaps,
        calls.load(Ordering::Relaxed),
        o.connections,
        bad.len(),
        ms(0.5),
        ms(0.99),
        hist.max() as f64 / 1000.0
    );
    if let Some(first) = bad.first() {
        return Err(format!("{} bad answers, first: {first}", bad.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Options, String> {
        Options::parse(&crate::options::args(words))
    }

    #[test]
    fn options_need_a_loopback_gateway_and_both_tokens() {
        let o = parse(&[
            "--addr",
            "127.0.0.1:1",
            "--admin-token",
            "a",
            "--agent-token",
            "b",
        ])
        .unwrap();
        assert_eq!((o.connections, o.swaps), (8, 100));
        assert_eq!(
            parse(&["--addr", "192.0.2.1:1"]).unwrap_err(),
            "--addr must be a loopback address"
        );
        assert_eq!(
            parse(&["--addr", "127.0.0.1:1", "--admin-token", "a"]).unwrap_err(),
            "--agent-token is required"
        );
        assert_eq!(
            parse(&["--connections", "0"]).unwrap_err(),
            "--connections: a positive integer"
        );
    }
}
