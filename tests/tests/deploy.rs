//! The deployment artefacts stay true to the code: the systemd unit keeps its hardening and
//! passes `systemd-analyze verify`; its environment file example, the compose file and the
//! Helm chart name only variables the gateway reads, with values the configuration accepts;
//! the chart's templates parse as YAML once their actions are stubbed and reference only
//! values that exist; `docs/CONFIGURATION.md` is exactly what the code renders.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use intentgate_shared::config::{Config, VARIABLES};
use intentgate_tests::configuration_table::{
    self as table, COMPOSE, DEPLOYMENT_TEMPLATE, DOCUMENT, HelmSource, VALUES,
};
use yaml_rust2::Yaml;

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

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

fn known(name: &str) -> bool {
    VARIABLES.iter().any(|d| d.name == name)
}

#[test]
fn the_dockerfile_builds_locked_and_runs_distroless_as_non_root() {
    let text = read("deploy/Dockerfile");
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "multi-stage: {froms:?}");
    assert!(
        froms[1].contains("distroless") && froms[1].contains(":nonroot"),
        "{froms:?}"
    );
    assert!(text.contains("cargo build --release --locked --bin intentgate"));
    let user = text.lines().find_map(|l| l.strip_prefix("USER ")).unwrap();
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "{user}"
    );
    // Only the binary reaches the runtime stage.
    let runtime = &text[text.rfind("FROM ").unwrap()..];
    let copies: Vec<&str> = runtime.lines().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(
        copies,
        ["COPY --from=build /out/intentgate /usr/local/bin/intentgate"]
    );
    for word in ["io_uring_setup", "epoll", "seccomp"] {
        assert!(text.contains(word), "the io_uring note mentions {word}");
    }
    assert!(read(".dockerignore").lines().any(|l| l.trim() == "target/"));
}

#[test]
fn compose_runs_postgres_and_a_gateway_the_configuration_accepts() {
    let doc = table::parse_yaml(&read(COMPOSE), COMPOSE).unwrap();
    let image = table::lookup(&doc, "services.postgres.image").and_then(Yaml::as_str);
    assert_eq!(image, Some("postgres:16"));
    assert!(
        table::lookup(&doc, "services.postgres.ports").is_none(),
        "Postgres stays private"
    );
    assert_eq!(
        table::lookup(&doc, "services.gateway.depends_on.postgres.condition")
            .and_then(Yaml::as_str),
        Some("service_healthy")
    );
    let ports: Vec<String> = table::lookup(&doc, "services.gateway.ports")
        .and_then(Yaml::as_vec)
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ports, ["127.0.0.1:8080:8080", "127.0.0.1:9090:9090"]);
    let env = table::compose_environment(&doc).unwrap();
    for (k, v) in &env {
        assert!(known(k), "{k} is not a variable the gateway reads");
        if k.contains("TOKEN") || k.contains("KEY") {
            assert!(
                v.starts_with("${") && v.contains(":?"),
                "{k} must come from the shell: {v}"
            );
        }
    }
    for (k, v) in [
        ("INTENTGATE_AUDIT_PERSIST", "true"),
        ("INTENTGATE_APPROVALS_BACKEND", "postgres"),
        ("INTENTGATE_POLICY_STORE", "postgres"),
        ("INTENTGATE_METRICS_ENABLED", "true"),
        ("INTENTGATE_ADDR", ":8080"),
        ("INTENTGATE_METRICS_ADDR", ":9090"),
    ] {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
    }
    // With the two secrets supplied, as `docker compose` would interpolate them.
    let cfg = Config::from_source(|name| match name {
        "INTENTGATE_MASTER_KEY" => Some(KEY.into()),
        "INTENTGATE_ADMIN_TOKEN" => Some("a-long-random-admin-token".into()),
        _ => env.get(name).cloned(),
    });
    assert!(cfg.is_ok(), "{:?}", cfg.err());
}

/// A template with its actions stubbed: lines that are only actions go, each remaining
/// `{{ … }}` becomes the scalar `x`.
fn stub(template: &str) -> String {
    let mut out = String::new();
    for line in template.lines() {
        let mut rest = String::new();
        let mut text = line;
        while let Some(i) = text.find("{{") {
            rest.push_str(&text[..i]);
            let j = text[i..].find("}}").map_or(text.len(), |j| i + j + 2);
            rest.push('\u{1}');
            text = &text[j..];
        }
        rest.push_str(text);
        if rest.replace('\u{1}', "").trim().is_empty() && rest.contains('\u{1}') {
            continue;
        }
        out.push_str(&rest.replace('\u{1}', "x"));
        out.push('\n');
    }
    out
}

fn chart_templates() -> Vec<(String, String)> {
    let dir = root().join("deploy/helm/intentgate/templates");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_helm_chart_parses_and_references_only_existing_values() {
    let chart =
        table::parse_yaml(&read("deploy/helm/intentgate/Chart.yaml"), "Chart.yaml").unwrap();
    assert_eq!(
        table::lookup(&chart, "apiVersion").and_then(Yaml::as_str),
        Some("v2")
    );
    let values = table::parse_yaml(&read(VALUES), VALUES).unwrap();
    let templates = chart_templates();
    let names: Vec<&str> = templates.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "deployment.yaml",
        "service.yaml",
        "secret.yaml",
        "pdb.yaml",
        "servicemonitor.yaml",
    ] {
        assert!(names.contains(&want), "{want} missing: {names:?}");
    }
    let helpers = read("deploy/helm/intentgate/templates/_helpers.tpl");
    for (name, text) in templates
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .chain([("_helpers.tpl", helpers.as_str())])
    {
        // Every `.Values.a.b` exists in values.yaml.
        let mut at = 0;
        while let Some(i) = text[at..].find(".Values.") {
            let start = at + i + ".Values.".len();
            let path: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            assert!(
                table::lookup(&values, path.trim_end_matches('.')).is_some(),
                "{name}: .Values.{path} is not in values.yaml"
            );
            at = start;
        }
        if name.ends_with(".yaml") {
            let stubbed = stub(text);
            let doc =
                table::parse_yaml(&stubbed, name).unwrap_or_else(|e| panic!("{e}\n{stubbed}"));
            assert!(
                table::lookup(&doc, "kind").is_some(),
                "{name} renders a resource"
            );
        }
    }
}

#[test]
fn the_helm_chart_keeps_the_runbook_values_secrets_probes_and_sizing() {
    let values = table::parse_yaml(&read(VALUES), VALUES).unwrap();
    for path in [
        "gateway.image.tag",
        "gateway.adminToken.value",
        "gateway.adminToken.existingSecret",
        "gateway.masterKey.value",
        "gateway.masterKey.existingSecret",
        "gateway.tenantAdmins.value",
        "gateway.tenantAdmins.existingSecret",
        "postgres.existingSecret",
        "audit.persist",
        "metrics.enabled",
        "metrics.serviceMonitor.enabled",
        "webhook.url",
        "webhook.events",
        "webhook.secret.existingSecret",
    ] {
        assert!(
            table::lookup(&values, path).is_some(),
            "values.yaml lacks {path}"
        );
    }
    let get = |p: &str| table::lookup(&values, p).map(table::scalar_text).unwrap();
    assert!(get("gateway.replicas").parse::<u32>().unwrap() >= 2);
    assert_eq!(get("gateway.resources.requests.cpu"), "250m");
    assert_eq!(get("gateway.resources.requests.memory"), "256Mi");
    assert_eq!(get("podDisruptionBudget.minAvailable"), "1");
    assert_eq!(get("gateway.podSecurityContext.runAsNonRoot"), "true");
    let grace: u64 = get("gateway.terminationGracePeriodSeconds")
        .parse()
        .unwrap();
    let delay: u64 = get("gateway.shutdownDelaySeconds").parse().unwrap();
    assert!(
        grace >= delay + 55,
        "grace {grace} must cover the drain delay, in-flight calls, admin requests and the audit flush"
    );

    let deployment = read(DEPLOYMENT_TEMPLATE);
    let vars = table::helm_variables(&deployment);
    assert!(vars.len() >= 15, "{vars:?}");
    for (name, source) in &vars {
        assert!(known(name), "{name} is not a variable the gateway reads");
        let secret = [
            "MASTER_KEY",
            "ADMIN_TOKEN",
            "TENANT_ADMINS",
            "POSTGRES_URL",
            "WEBHOOK_SECRET",
        ]
        .iter()
        .any(|s| name.contains(s));
        if secret {
            // From a Secret: the item carries a secretKeyRef and no plain value.
            let item = &deployment[deployment.find(&format!("- name: {name}\n")).unwrap()..];
            let item = &item[..item[1..].find("- name:").map_or(item.len(), |i| i + 1)];
            assert!(
                item.contains("secretKeyRef") && !item.contains("value:"),
                "{name}: {item}"
            );
        }
        if let HelmSource::Value(path) = source {
            assert!(table::lookup(&values, path).is_some(), "{name}: {path}");
        }
    }
    assert!(vars.iter().any(
        |(n, s)| n == "INTENTGATE_REPLICA_ID" && *s == HelmSource::Pod("metadata.name".into())
    ));
    let stubbed = table::parse_yaml(&stub(&deployment), "deployment").unwrap();
    let container = table::lookup(&stubbed, "spec.template.spec.containers")
        .and_then(|c| c.as_vec())
        .unwrap()[0]
        .clone();
    for (probe, path) in [("readinessProbe", "/healthz"), ("livenessProbe", "/livez")] {
        assert_eq!(
            table::lookup(&container, &format!("{probe}.httpGet.path")).and_then(Yaml::as_str),
            Some(path),
            "{probe}"
        );
    }
}

#[test]
fn configuration_md_is_what_the_code_renders() {
    let rendered = table::render(&root()).unwrap();
    let path = root().join(DOCUMENT);
    if std::env::var_os("INTENTGATE_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "{DOCUMENT} is out of date: run INTENTGATE_UPDATE_DOCS=1 cargo test -p intentgate-tests --test deploy and commit it"
    );
    for v in VARIABLES {
        assert!(
            committed.contains(&format!("| `{}` |", v.name)),
            "{}",
            v.name
        );
    }
}
