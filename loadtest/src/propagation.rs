//! `propagation`: how long a revocation takes to reach another replica. Mints a token through
//! replica A's admin API, warms it on replica B, revokes it on A and calls B back to back
//! until B denies it; repeats and reports the distribution. Both replicas must share one
//! Postgres and relay admin routes on their data ports (the default).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::conn::Conn;
use crate::options::{loopback, positive};
use serde_json::{Value, json};

/// Command-line options.
#[derive(Debug, Clone)]
pub struct Options {
    a: SocketAddr,
    b: SocketAddr,
    admin_token: String,
    iterations: u32,
}

impl Options {
    /// Parses `--a`, `--b`, `--admin-token`, `--iterations`.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let (mut a, mut b, mut admin_token, mut iterations) = (None, None, None, 200u32);
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--a" => a = Some(loopback(flag, value)?),
                "--b" => b = Some(loopback(flag, value)?),
                "--admin-token" => admin_token = Some(value.clone()),
                "--iterations" => iterations = positive(flag, value)?,
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(Self {
            a: a.ok_or("--a (replica A's data port) is required")?,
            b: b.ok_or("--b (replica B's data port) is required")?,
            admin_token: admin_token.ok_or("--admin-token is required")?,
            iterations,
        })
    }
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","arguments":{"id":"p"}}}"#;

fn denied_as_revoked(v: &Value) -> bool {
    v["error"]["data"] == "token revoked"
}

/// Runs the measurement and prints the distribution.
pub fn run(o: &Options) -> Result<(), String> {
    fn e(what: &'static str) -> impl Fn(io::Error) -> String {
        move |err| format!("{what}: {err}")
    }
    let mut a = Conn::open(o.a).map_err(e("connect to A"))?;
    let mut b = Conn::open(o.b).map_err(e("connect to B"))?;
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|err| err.to_string())?;
    for i in 0..o.iterations {
        let mint =
            json!({"subject": "propagation-agent", "tools": ["read_invoice"], "ttl_seconds": 600});
        let (status, minted) = a
            .post("/v1/admin/mint", &o.admin_token, &mint.to_string())
            .map_err(e("mint"))?;
        let (Some(token), Some(jti)) = (minted["token"].as_str(), minted["jti"].as_str()) else {
            return Err(format!("mint on A answered {status}: {minted}"));
        };
        let (_, warm) = b.post("/v1/mcp", token, CALL).map_err(e("call B"))?;
        if warm["result"].is_null() {
            return Err(format!("B did not allow the fresh token: {warm}"));
        }
        let started = Instant::now();
        let (status, _) = a
            .post(
                "/v1/admin/revoke",
                &o.admin_token,
                &json!({"jti": jti, "reason": "propagation"}).to_string(),
            )
            .map_err(e("revoke on A"))?;
        if status != 200 {
            return Err(format!("revoke on A answered {status}"));
        }
        loop {
            let (_, v) = b.post("/v1/mcp", token, CALL).map_err(e("call B"))?;
            if denied_as_revoked(&v) {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!(
                    "iteration {i}: B still allowed the token after 30 s"
                ));
            }
        }
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        hist.record(us.max(1)).map_err(|err| err.to_string())?;
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "revocation A→B over {} revocations: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms \
         (from sending POST /v1/admin/revoke on A to the first denial on B, including the revoke's own round trip)",
        hist.len(),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        hist.max() as f64 / 1000.0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Options, String> {
        Options::parse(&crate::options::args(words))
    }

    #[test]
    fn options_require_both_replicas_on_loopback() {
        let o = parse(&["--a", "127.0.0.1:1", "--b", "[::1]:2", "--admin-token", "t"]).unwrap();
        assert_eq!(o.iterations, 200);
        assert_eq!(
            parse(&["--a", "10.0.0.1:1"]).unwrap_err(),
            "--a must be a loopback address"
        );
        assert_eq!(
            parse(&["--a", "127.0.0.1:1", "--admin-token", "t"]).unwrap_err(),
            "--b (replica B's data port) is required"
        );
        assert_eq!(
            parse(&["--iterations", "0"]).unwrap_err(),
            "--iterations: a positive integer"
        );
        assert_eq!(parse(&["--a"]).unwrap_err(), "--a needs a value");
    }
}
