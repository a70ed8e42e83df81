//! `intentgate-loadtest`: the bundled load tester. Today it provides the baseline server that
//! gateway figures are compared with and the cross-replica propagation probe; the open-loop
//! generator arrives with the load-test issue.
//!
//! `intentgate-loadtest hello --addr 127.0.0.1:9999 --threads 1` serves a minimal HTTP/1.1
//! answer (`{"ok":true}`) with keep-alive and pipelining on monoio, one thread per core,
//! the same runtime and socket options the gateway uses — the ceiling a gateway on the same
//! cores can approach.
//!
//! `intentgate-loadtest propagation --a ADDR --b ADDR --admin-token T [--iterations N]`
//! measures revoke-on-A to denial-on-B (see `bench/propagation.sh`); `intentgate-loadtest
//! swap` promotes policies under load (see `bench/policy_swap.sh`).

mod framing;
mod hello;
mod options;
mod propagation;
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("hello") => command("hello", rest, hello::Options::parse, hello::run),
        Some("propagation") => command(
            "propagation",
            rest,
            propagation::Options::parse,
            propagation::run,
        ),
        Some("swap") => command("swap", rest, swap::Options::parse, swap::run),
        _ => {
            eprintln!(
                "usage: intentgate-loadtest hello [--addr 127.0.0.1:9999] [--threads N] [--duration-s S]\n\
                        intentgate-loadtest propagation --a ADDR --b ADDR --admin-token T [--iterations N]\n\
                        intentgate-loadtest swap --addr ADDR --admin-token T --agent-token T [--connections N] [--swaps N]\n\
                 (the load generator itself arrives with the load-test issue; see docs/BENCHMARKS.md)"
            );
            ExitCode::from(2)
        }
    }
}
