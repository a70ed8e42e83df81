//! DESIGN invariant 1: the data plane never depends on tokio, sqlx, axum, hyper or reqwest;
//! and `shared` never pulls in an async runtime. Checked on the real resolved graph.
//! The control-plane library never depends on the data plane: the contracts between the
//! planes live in `shared` (issue 17), and only the binary that wires both names both.

// Test helpers fail the test by panicking; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use intentgate_tests::layout::{is_test_file, rust_files};
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

#[test]
fn controlplane_library_does_not_depend_on_the_data_plane() {
    // Normal and build edges only: a dev-dependency of a test that starts the real data plane
    // does not ship in the library.
    let reached = reachable(&metadata(), "intentgate-controlplane").unwrap();
    assert!(
        !reached.contains("intentgate-dataplane"),
        "intentgate-controlplane depends on intentgate-dataplane: the planes must meet \
         only through intentgate-shared (the gateway binary may depend on both)"
    );
}

#[test]
fn controlplane_library_sources_never_name_the_data_plane() {
    // Belt and braces for the graph check above: also catches a use behind a feature. The
    // library's own tests may drive the real data-plane queue and rings (a dev-dependency)
    // through the shared contracts; its code may not.
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../controlplane/src")
        .canonicalize()
        .unwrap();
    let files = rust_files(&src);
    assert!(files.len() > 10, "walked {}: {files:?}", src.display());
    let naming: Vec<&PathBuf> = files
        .iter()
        .filter(|f| !is_test_file(f.strip_prefix(&src).unwrap()))
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains("intentgate_dataplane")
        })
        .collect();
    assert!(
        naming.is_empty(),
        "control-plane library files name the data plane crate (use intentgate_shared's \
         contracts instead): {naming:?}"
    );
}
