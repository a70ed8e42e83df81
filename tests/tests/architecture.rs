//! DESIGN invariant 1: the data plane never depends on tokio, sqlx, axum, hyper or reqwest;
//! and `shared` never pulls in an async runtime. Checked on the real resolved graph.

// Test helpers fail the test by panicking; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use intentgate_tests::{DATAPLANE_FORBIDDEN, SHARED_FORBIDDEN, reachable, violations};

fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata is JSON")
}

#[test]
fn dataplane_stays_free_of_tokio_sqlx_axum_hyper_reqwest() {
    let m = metadata();
    let v = violations(&m, "intentgate-dataplane", DATAPLANE_FORBIDDEN).unwrap();
    assert!(
        v.is_empty(),
        "intentgate-dataplane reaches forbidden crates: {v:?}"
    );
    assert!(
        reachable(&m, "intentgate-dataplane")
            .unwrap()
            .contains("intentgate-shared")
    );
}

#[test]
fn shared_stays_free_of_async_runtimes() {
    let m = metadata();
    let v = violations(&m, "intentgate-shared", SHARED_FORBIDDEN).unwrap();
    assert!(
        v.is_empty(),
        "intentgate-shared reaches async runtimes: {v:?}"
    );
}

#[test]
fn controlplane_is_where_tokio_lives() {
    // Guards the check itself: if the graph walk broke, this would fail too.
    let v = violations(&metadata(), "intentgate-controlplane", DATAPLANE_FORBIDDEN).unwrap();
    assert!(
        v.contains(&"tokio".to_string()) && v.contains(&"sqlx".to_string()),
        "{v:?}"
    );
}
