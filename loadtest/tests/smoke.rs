//! A short run of the bundled load test against a spawned gateway: every scenario gets the
//! answer it must, both baselines run, and the report carries the ratios. The figures
//! themselves are not asserted (a debug build on a shared CI machine measures nothing): the
//! published ones come from `bench/loadtest.sh`, see docs/BENCHMARKS.md.

#![expect(
    clippy::expect_used,
    reason = "a harness: a failed set-up should stop it loudly"
)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn loadtest() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_intentgate-loadtest"))
}

/// `intentgate` is built beside this binary by `cargo test --workspace` (the `intentgate` package's
/// integration tests need it); alone, this test says how to get it.
fn gateway() -> PathBuf {
    let p = loadtest().with_file_name("intentgate");
    assert!(
        p.is_file(),
        "{} is missing: run the workspace tests (cargo xtask test) or cargo build -p intentgate",
        p.display()
    );
    p
}

/// Runs one at a time: two spawned runs pinned to the same cores would measure each other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(args: &[&str]) -> (bool, String, String) {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = Command::new(loadtest())
        .args(args)
        .output()
        .expect("run intentgate-loadtest");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_short_spawned_run_answers_every_scenario_correctly_and_reports_both_ratios() {
    let gw = gateway();
    let (ok, stdout, stderr) = run(&[
        "--spawn",
        "--gateway-bin",
        gw.to_str().unwrap(),
        "--baseline",
        "direct",
        "--baseline",
        "hello",
        "--mix",
        "all",
        "--duration",
        "1500ms",
        "--warmup",
        "300ms",
        "--connections",
        "4",
        "--tokens",
        "3",
        "--json",
    ]);
    assert!(ok, "load test failed:\n{stderr}\n{stdout}");
    let doc: Value = serde_json::from_str(&stdout).expect("--json prints one JSON document");
    for key in ["ratio_to_hello", "ratio_to_direct"] {
        assert!(doc[key].as_f64().is_some_and(|r| r > 0.0), "{key}: {doc:#}");
    }
    let runs = doc["runs"].as_array().unwrap();
    let targets: Vec<&str> = runs.iter().map(|r| r["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["gateway", "direct", "hello"]);
    let gw = &runs[0];
    assert!(gw["requests"].as_u64().unwrap() > 0);
    assert_eq!(gw["unexpected"], 0, "{gw:#}");
    assert!(gw["latency_us"]["p99"].as_f64().unwrap() > 0.0);
    assert!(gw["server_cpu_us_per_request"].as_f64().is_some());
    // Every scenario ran and got exactly its expected outcome, counted by JSON-RPC code.
    let outcomes = gw["outcomes"].as_object().unwrap();
    assert_eq!(outcomes.len(), 8, "{outcomes:#?}");
    for (name, o) in outcomes {
        let counts = o["counts"].as_object().unwrap();
        let expected = o["expected"].as_str().unwrap();
        assert_eq!(counts.len(), 1, "{name}: {counts:?}");
        assert!(counts[expected].as_u64().unwrap() > 0, "{name}: {counts:?}");
    }
    assert_eq!(outcomes["budget"]["expected"], "error -32013");
    assert_eq!(outcomes["bad_token"]["expected"], "error -32010");
    assert_eq!(outcomes["revoked"]["expected"], "error -32010");
    assert_eq!(outcomes["policy_deny"]["expected"], "error -32012");
}

#[test]
fn an_open_loop_step_reports_corrected_latency_and_client_lateness() {
    let gw = gateway();
    let (ok, stdout, stderr) = run(&[
        "--spawn",
        "--gateway-bin",
        gw.to_str().unwrap(),
        "--rate",
        "500",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--connections",
        "4",
        "--json",
    ]);
    assert!(ok, "load test failed:\n{stderr}\n{stdout}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let run = &doc["runs"][0];
    assert_eq!(run["load"], "500/s");
    // 500/s for 1 s: about 500 answers (the schedule, not the server, sets the count).
    let n = run["requests"].as_u64().unwrap();
    assert!((450..=550).contains(&n), "{n} answers");
    assert!(run["client_lateness_us"]["p50"].as_f64().is_some());
    assert!(doc["ratio_to_hello"].is_null());
}

#[test]
fn a_target_that_is_down_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let (ok, _, stderr) = run(&["--target", &url, "--admin-token", "x", "--duration", "1s"]);
    assert!(!ok);
    assert!(stderr.contains("admin API"), "{stderr}");
    let (ok, _, stderr) = run(&["--target", "http://192.0.2.1:80", "--admin-token", "x"]);
    assert!(!ok);
    assert!(stderr.contains("loopback"), "{stderr}");
}

#[test]
fn a_gateway_that_answers_wrongly_is_refused_before_measuring() {
    // The hello baseline answers {"ok":true} to everything: not a JSON-RPC answer.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut hello = Command::new(loadtest())
        .args(["hello", "--addr", &addr, "--duration-s", "20"])
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let (ok, _, stderr) = run(&[
        "--target",
        &format!("http://{addr}"),
        "--master-key",
        key,
        "--duration",
        "1s",
    ]);
    let _ = hello.kill();
    let _ = hello.wait();
    assert!(!ok);
    assert!(
        stderr.contains("answers the allow scenario with invalid body"),
        "{stderr}"
    );
}
