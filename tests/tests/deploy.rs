//! The deployment artefacts stay true to the code: the systemd unit keeps its hardening and
//! passes `systemd-analyze verify`, and its environment file example names only variables the
//! gateway reads, with values the configuration accepts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use intentgate_shared::config::{Config, VARIABLES};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `key=value` lines of the unit's `[Service]` section.
fn service_settings(unit: &str) -> HashMap<String, String> {
    let mut section = "";
    let mut out = HashMap::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]"
            && !line.starts_with('#')
            && let Some((k, v)) = line.split_once('=')
        {
            out.insert(k.to_owned(), v.to_owned());
        }
    }
    out
}

#[test]
fn the_systemd_unit_keeps_its_hardening_and_reads_secrets_from_a_file() {
    let unit = read("deploy/systemd/intentgate.service");
    let s = service_settings(&unit);
    for (key, want) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("DynamicUser", "yes"),
        ("CapabilityBoundingSet", ""),
        ("MemoryDenyWriteExecute", "yes"),
        ("ExecStart", "/usr/local/bin/intentgate serve"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(s.get(key).map(String::as_str), Some(want), "{key}");
    }
    assert!(s["EnvironmentFile"].starts_with("/etc/intentgate/"));
    // The data plane's io_uring driver survives the syscall filter.
    for call in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(s["SystemCallFilter"].contains(call), "{call}");
    }
    // No secret on the command line or inline in the unit.
    assert!(!unit.contains("INTENTGATE_MASTER_KEY="));
    assert!(!unit.contains("INTENTGATE_ADMIN_TOKEN="));
}

#[test]
fn systemd_analyze_accepts_the_unit() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        panic!("systemd-analyze is missing: apt-get install systemd (it checks deploy/systemd)");
    };
    assert!(out.status.success());
    // Verify a copy whose binary and environment file exist on this machine.
    let dir = std::env::temp_dir().join(format!("ig-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let env = dir.join("intentgate.env");
    std::fs::write(&env, "").unwrap();
    let unit = read("deploy/systemd/intentgate.service")
        .replace("/usr/local/bin/intentgate", "/bin/true")
        .replace("/etc/intentgate/intentgate.env", env.to_str().unwrap());
    let path = dir.join("intentgate.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}

#[test]
fn the_environment_example_names_only_real_variables_with_accepted_values() {
    let text = read("deploy/systemd/intentgate.env.example");
    let mut vars: HashMap<String, String> = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not k=v: {line}"));
        assert!(
            k == "LOG_LEVEL" || VARIABLES.iter().any(|d| d.name == k),
            "{k} is not a variable the gateway reads"
        );
        vars.insert(k.to_owned(), v.to_owned());
    }
    // The two secrets are left for the operator; filled in, the rest must be accepted.
    assert_eq!(vars["INTENTGATE_MASTER_KEY"], "");
    assert_eq!(vars["INTENTGATE_ADMIN_TOKEN"], "");
    vars.insert(
        "INTENTGATE_MASTER_KEY".into(),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8".into(),
    );
    vars.insert(
        "INTENTGATE_ADMIN_TOKEN".into(),
        "a-long-random-admin-token".into(),
    );
    let cfg = Config::from_source(|name| vars.get(name).cloned());
    assert!(cfg.is_ok(), "{:?}", cfg.err());
}
