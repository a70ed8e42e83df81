//! `cargo xtask`: the project's automation entry point.
//!
//! - `cargo xtask test`: format check, clippy, then every test against a real Postgres.
//! - `cargo xtask bench`: the criterion benches, then a summary table.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

mod fuzz;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The SDK version whose tokens we must accept; pinned, as the vectors were generated with it.
const SDK_REQUIREMENT: &str = "intentgate==0.3.0";
/// The official MCP SDK whose client and server the MCP end-to-end test runs (pinned: its
/// 2.x line changed the API).
const MCP_REQUIREMENT: &str = "mcp==1.30.0";
/// The official MCP SDK line that speaks 2026-07-28.
const MCP2_REQUIREMENT: &str = "mcp==2.3.0";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => match args.get(1).map(|s| s.parse::<u64>()) {
            None => fuzz::fuzz(60),
            Some(Ok(seconds)) if seconds > 0 => fuzz::fuzz(seconds),
            Some(_) => Err("usage: cargo xtask fuzz [SECONDS per target, > 0]".into()),
        },
        _ => {
            Err("usage: cargo xtask test [cargo test args...] | cargo xtask bench [filter] | cargo xtask fuzz [SECONDS]".into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The cargo target directory (`CARGO_TARGET_DIR`, else `target/`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(step: &str, cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: {step}");
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

/// host:port of a postgres:// URL (defaults as libpq: localhost:5432).
fn pg_host_port(url: &str) -> Option<(String, u16)> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().ok()?),
        _ => (hostport, 5432),
    };
    let host = if host.is_empty() { "localhost" } else { host };
    Some((host.trim_matches(['[', ']']).to_owned(), port))
}

fn reachable(host: &str, port: u16) -> bool {
    (host, port)
        .to_socket_addrs()
        .map(|addrs| {
            addrs
                .into_iter()
                .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
        })
        .unwrap_or(false)
}

/// Makes sure a Postgres answers at `url`; on this project's machines a stopped local
/// cluster is started with pg_ctlcluster.
fn ensure_postgres(url: &str) -> Result<(), String> {
    let (host, port) = pg_host_port(url)
        .ok_or_else(|| format!("DATABASE_URL is not a postgres:// URL: {}", redact(url)))?;
    if reachable(&host, port) {
        return Ok(());
    }
    let local = matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1");
    if local && Path::new("/etc/postgresql").is_dir() {
        eprintln!("xtask: no Postgres at {host}:{port}; trying to start the local cluster");
        if let Ok(entries) = std::fs::read_dir("/etc/postgresql") {
            for version in entries.flatten() {
                let v = version.file_name().to_string_lossy().into_owned();
                let _ = Command::new("pg_ctlcluster")
                    .args(["--skip-systemctl-redirect", &v, "main", "start"])
                    .status();
            }
        }
        for _ in 0..30 {
            if reachable(&host, port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    Err(format!(
        "no PostgreSQL server answers at {host}:{port} (from DATABASE_URL={}).\n\
         The tests need a real Postgres. Start one (e.g. `pg_ctlcluster 15 main start`, or\n\
         `docker run -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16`) or point\n\
         DATABASE_URL at a reachable server.",
        redact(url)
    ))
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// A virtualenv under the target directory with `requirements` installed; reused while
/// `check` (a Python expression exiting 0) holds. None, with a note, when Python or the
/// package index is unavailable.
fn python_env(name: &str, requirements: &[&str], check: &str, note: &str) -> Option<PathBuf> {
    let venv = target_dir().join(name);
    let python = venv.join("bin/python");
    let ready = |p: &Path| {
        Command::new(p)
            .args(["-c", check])
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.exists() && ready(&python) {
        return Some(python);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(requirements)
            .status()
            .is_ok_and(|s| s.success());
    if made && ready(&python) {
        Some(python)
    } else {
        eprintln!(
            "xtask: note: could not set up Python with {}; {note}",
            requirements.join(" ")
        );
        None
    }
}

/// The published IntentGate SDK (token vectors, SDK end-to-end) and the official MCP SDK 1.x
/// (client and server of the MCP end-to-end test).
fn sdk_python() -> Option<PathBuf> {
    python_env(
        "sdk-venv",
        &[SDK_REQUIREMENT, MCP_REQUIREMENT],
        "import importlib.metadata as m, sys; sys.exit(m.version('intentgate') != '0.3.0' or m.version('mcp') != '1.30.0')",
        "SDK vectors are checked from the committed file only and the SDK end-to-end tests are skipped",
    )
}

/// The official MCP SDK 2.x, which speaks the 2026-07-28 revision (its own virtualenv: one
/// environment holds one major version).
fn mcp2_python() -> Option<PathBuf> {
    python_env(
        "mcp2-venv",
        &[MCP2_REQUIREMENT],
        "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '2.3.0')",
        "the 2026-07-28 MCP SDK end-to-end test is skipped",
    )
}

fn test(extra: &[String]) -> Result<(), String> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    ensure_postgres(&url)?;
    run(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--check"]),
    )?;
    run(
        "cargo clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--locked"])
        .args(extra)
        .env("DATABASE_URL", &url);
    if let Some(python) = sdk_python() {
        cmd.env("INTENTGATE_SDK_PYTHON", python);
    }
    if let Some(python) = mcp2_python() {
        cmd.env("INTENTGATE_MCP2_PYTHON", python);
    }
    run_tests(&mut cmd)?;
    short_fuzz()
}

/// Seconds per fuzz target in `cargo xtask test` under CI.
const CI_FUZZ_SECONDS: u64 = 15;

/// Under CI (or with `INTENTGATE_FUZZ_SECONDS`), every fuzz target briefly: a crash fails the
/// run. Longer runs: `cargo xtask fuzz [SECONDS]`.
fn short_fuzz() -> Result<(), String> {
    let seconds = match std::env::var("INTENTGATE_FUZZ_SECONDS") {
        Ok(v) => v
            .parse::<u64>()
            .map_err(|_| format!("INTENTGATE_FUZZ_SECONDS={v:?} is not a number of seconds"))?,
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => CI_FUZZ_SECONDS,
        Err(_) => return Ok(()),
    };
    if seconds == 0 {
        return Ok(());
    }
    fuzz::fuzz(seconds)
}

/// Runs `cargo test`, passing its output through, and closes with one line summing every
/// test binary's result, so a reader (or CI) sees the totals without scrolling.
fn run_tests(cmd: &mut Command) -> Result<(), String> {
    use std::io::{BufRead as _, BufReader};
    eprintln!("xtask: cargo test");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cargo test: cannot start: {e}"))?;
    let mut totals = Totals::default();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            totals.add(&line);
        }
    }
    let status = child.wait().map_err(|e| format!("cargo test: {e}"))?;
    println!(
        "summary: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    if !status.success() {
        return Err(format!("cargo test failed ({status})"));
    }
    if totals.passed == 0 {
        return Err("cargo test ran no test".into());
    }
    Ok(())
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Totals {
    /// Adds a libtest line `test result: ok. 5 passed; 0 failed; 1 ignored; ...`.
    fn add(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split([';', '.']) {
            let mut words = part.split_whitespace();
            if let (Some(n), Some(kind)) = (
                words.next().and_then(|n| n.parse::<u64>().ok()),
                words.next(),
            ) {
                match kind {
                    "passed" => self.passed += n,
                    "failed" => self.failed += n,
                    "ignored" => self.ignored += n,
                    _ => {}
                }
            }
        }
    }
}

fn bench(extra: &[String]) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["bench", "-p", "intentgate-bench", "--"])
        .args(extra);
    run("cargo bench", &mut cmd)?;
    let summary = root().join("bench/summary.py");
    if summary.exists() {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target"));
        run(
            "summary",
            Command::new("python3")
                .arg(summary)
                .arg(target.join("criterion")),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_urls() {
        assert_eq!(
            pg_host_port("postgres://postgres@127.0.0.1:5432/postgres"),
            Some(("127.0.0.1".into(), 5432))
        );
        assert_eq!(
            pg_host_port("postgresql://u:p@db.internal/x?sslmode=disable"),
            Some(("db.internal".into(), 5432))
        );
        assert_eq!(
            pg_host_port("postgres://u@[::1]:6000/db"),
            Some(("::1".into(), 6000))
        );
        assert_eq!(pg_host_port("mysql://x"), None);
    }

    #[test]
    fn sums_libtest_result_lines() {
        let mut t = Totals::default();
        t.add("test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.60s");
        t.add("test result: FAILED. 2 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out");
        t.add("running 5 tests");
        assert_eq!(
            t,
            Totals {
                passed: 7,
                failed: 3,
                ignored: 1
            }
        );
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("postgres://u:secret@h:1/db"),
            "postgres://***@h:1/db"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
