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
//! measures revoke-on-A to denial-on-B (see `bench/propagation.sh`).

mod framing;
mod hello;
mod propagation;
mod swap;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("hello") => match hello::Options::parse(&args[1..]) {
            Ok(opts) => match hello::run(&opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("intentgate-loadtest hello: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("intentgate-loadtest hello: {e}");
                ExitCode::from(2)
            }
        },
        Some("propagation") => match propagation::Options::parse(&args[1..]) {
            Ok(opts) => match propagation::run(&opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("intentgate-loadtest propagation: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("intentgate-loadtest propagation: {e}");
                ExitCode::from(2)
            }
        },
        Some("swap") => match swap::Options::parse(&args[1..]) {
            Ok(opts) => match swap::run(&opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("intentgate-loadtest swap: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("intentgate-loadtest swap: {e}");
                ExitCode::from(2)
            }
        },
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
