//! `intentgate-loadtest`: the bundled load tester and its baseline servers.
//!
//! `intentgate-loadtest --spawn --baseline direct --baseline hello --duration 20s` starts the
//! gateway with a fast MCP upstream stub, measures it, then measures the same requests sent
//! straight to the stub (`direct`) and to a minimal HTTP/1.1 server on the gateway's cores
//! (`hello`), and prints requests/s, latency percentiles, CPU per request, outcomes by
//! JSON-RPC code and the ratios to each baseline (`--json` for a document). `--rate
//! 5000,10000,20000` runs open-loop steps with latency measured from the intended send time;
//! `--target URL` measures a gateway already running. See `docs/BENCHMARKS.md`.
//!
//! `hello` and `upstream` run the baseline servers alone; `propagation` and `swap` are the
//! cross-replica revocation and policy-swap probes (`bench/propagation.sh`,
//! `bench/policy_swap.sh`).

mod baseline;
mod conn;
mod cpu;
mod engine;
mod framing;
mod options;
mod outcome;
mod propagation;
mod report;
mod run;
mod scenario;
mod spawn;
mod swap;

use std::process::ExitCode;

/// Runs one subcommand: its options (usage error: exit 2), then the command (failure: 1).
fn command<O, E: std::fmt::Display>(
    name: &str,
    args: &[String],
    parse: fn(&[String]) -> Result<O, String>,
    run: fn(&O) -> Result<(), E>,
) -> ExitCode {
    match parse(args).map(|o| run(&o)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("intentgate-loadtest {name}: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("intentgate-loadtest {name}: {e}");
            ExitCode::from(2)
        }
    }
}

const USAGE: &str = "\
usage: intentgate-loadtest (--spawn [--mode proxy|decision] [--gateway-bin PATH]
                            | --target http://127.0.0.1:PORT[/v1/mcp] (--admin-token T | --master-key K)
                              [--admin-url URL] [--upstream URL] [--server-pid PID])
                           [--baseline direct] [--baseline hello] [--rate max|R1,R2,...]
                           [--duration 10s] [--warmup 2s] [--timeout 5s] [--connections 32]
                           [--threads N] [--cpus client=1,gateway=0,upstream=0] [--mix allow=1,...]
                           [--tokens 16] [--rounds 1] [--json]
       intentgate-loadtest hello|upstream [--addr 127.0.0.1:9999] [--cpus 0] [--threads N] [--duration-s S]
       intentgate-loadtest propagation --a ADDR --b ADDR --admin-token T [--iterations N]
       intentgate-loadtest swap --addr ADDR --admin-token T --agent-token T [--connections N] [--swaps N]
scenarios for --mix: allow, policy_deny, bad_token, revoked, budget, escalation, tools_list, large (or all)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some(flag) if flag.starts_with("--") && flag != "--help" => {
            command("load test", &args, run::Options::parse, run::run)
        }
        Some("hello") => command(
            "hello",
            rest,
            |a| baseline::Options::parse(baseline::Kind::Hello, a),
            baseline::run,
        ),
        Some("upstream") => command(
            "upstream",
            rest,
            |a| baseline::Options::parse(baseline::Kind::Upstream, a),
            baseline::run,
        ),
        Some("propagation") => command(
            "propagation",
            rest,
            propagation::Options::parse,
            propagation::run,
        ),
        Some("swap") => command("swap", rest, swap::Options::parse, swap::run),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
