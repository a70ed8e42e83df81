//! `cargo xtask fuzz [SECONDS]`: every fuzz target of `fuzz/` for a bounded time each, with
//! libFuzzer (cargo-fuzz, nightly, AddressSanitizer). New inputs go to a scratch corpus in
//! the target directory, seeded from the committed one (`fuzz/corpus/<target>`), so a run
//! never dirties the checkout; a crash fails the run and leaves its input under
//! `$CARGO_TARGET_DIR/fuzz-artifacts/<target>/` (commit it to `fuzz/regressions/<target>/`
//! with a unit test). Ends with a table: runs, coverage and corpus size per target.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::{root, run, target_dir};

/// Every target of `fuzz/Cargo.toml`, in its order.
pub(crate) fn targets() -> Result<Vec<String>, String> {
    let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml"))
        .map_err(|e| format!("fuzz/Cargo.toml: {e}"))?;
    Ok(manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|bin| {
            let line = bin.lines().find(|l| l.trim_start().starts_with("name"))?;
            Some(line.split('"').nth(1)?.to_owned())
        })
        .collect())
}

/// cargo-fuzz on PATH, installed from crates.io when missing.
fn ensure_cargo_fuzz() -> Result<(), String> {
    let present = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    run(
        "cargo install cargo-fuzz",
        Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]),
    )
}

fn fuzz_cmd() -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(root())
        .args(["+nightly", "fuzz"])
        // cargo-fuzz reads the toolchain from the `+nightly` of its own cargo call.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO");
    c
}

/// What one target's run reported.
struct Outcome {
    target: String,
    runs: String,
    cov: String,
    corpus: usize,
}

/// Runs every target for `seconds`; Err on the first crash or failed build.
pub(crate) fn fuzz(seconds: u64) -> Result<(), String> {
    ensure_cargo_fuzz()?;
    let base = ["--fuzz-dir", "fuzz", "--features", "libfuzzer", "-O"];
    run(
        "cargo +nightly fuzz build",
        fuzz_cmd().arg("build").args(base),
    )?;
    let mut outcomes = Vec::new();
    for target in targets()? {
        let scratch = target_dir().join("fuzz-corpus").join(&target);
        let artifacts = target_dir().join("fuzz-artifacts").join(&target);
        for dir in [&scratch, &artifacts] {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        eprintln!("xtask: fuzz {target} for {seconds} s");
        let out = fuzz_cmd()
            .args(["run", &target])
            .args(base)
            .arg(&scratch)
            .arg(root().join("fuzz/corpus").join(&target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cargo fuzz run {target}: {e}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "fuzz target {target} failed (inputs under {}):\n{}",
                artifacts.display(),
                tail.join("\n")
            ));
        }
        outcomes.push(outcome(&target, &log, &scratch));
    }
    eprintln!("xtask: fuzz summary ({seconds} s per target)");
    eprintln!(
        "{:<18} {:>12} {:>8} {:>8}",
        "target", "runs", "cov", "corpus"
    );
    for o in &outcomes {
        eprintln!(
            "{:<18} {:>12} {:>8} {:>8}",
            o.target, o.runs, o.cov, o.corpus
        );
    }
    Ok(())
}

/// The final stats libFuzzer printed: executions and edge coverage.
fn outcome(target: &str, log: &str, scratch: &PathBuf) -> Outcome {
    let stat = |key: &str| {
        log.lines()
            .rev()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    let cov = log
        .lines()
        .rev()
        .find_map(|l| l.split(" cov: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("?")
        .to_owned();
    Outcome {
        target: target.to_owned(),
        runs: stat("stat::number_of_executed_units:"),
        cov,
        corpus: std::fs::read_dir(scratch).map_or(0, Iterator::count),
    }
}
