//! Helpers for the workspace-level tests: the dependency-graph rules that keep the planes
//! apart, evaluated over `cargo metadata` output, and the generated configuration table
//! ([`configuration_table`]).

pub mod configuration_table;
pub mod layout;

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

/// Crates the data plane must never reach: a second async runtime, Postgres, or an HTTP stack
/// built for tokio.
pub const DATAPLANE_FORBIDDEN: &[&str] = &[
    "tokio",
    "sqlx",
    "sqlx-core",
    "sqlx-postgres",
    "axum",
    "axum-core",
    "hyper",
    "reqwest",
];

/// Async runtimes `shared` must never reach: it is called from both planes.
pub const SHARED_FORBIDDEN: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "monoio",
    "glommio",
    "tokio-uring",
    "futures-executor",
];

/// Names of every package reachable from `root` through normal and build dependencies (dev
/// dependencies do not ship and are not followed).
pub fn reachable(metadata: &Value, root: &str) -> Result<BTreeSet<String>, String> {
    let packages = metadata["packages"]
        .as_array()
        .ok_or("metadata has no packages")?;
    let names: HashMap<&str, &str> = packages
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let root_id = packages
        .iter()
        .find(|p| p["name"] == root)
        .and_then(|p| p["id"].as_str())
        .ok_or_else(|| format!("package {root} not in metadata"))?;
    let nodes = metadata["resolve"]["nodes"]
        .as_array()
        .ok_or("metadata has no resolve graph")?;
    let edges: HashMap<&str, Vec<&str>> = nodes
        .iter()
        .filter_map(|n| {
            let deps = n["deps"].as_array()?.iter().filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k["kind"] != "dev"))
            });
            Some((
                n["id"].as_str()?,
                deps.filter_map(|d| d["pkg"].as_str()).collect(),
            ))
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root_id];
    let mut out = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if id != root_id {
            out.insert(names.get(id).copied().unwrap_or(id).to_owned());
        }
        stack.extend(edges.get(id).into_iter().flatten().copied());
    }
    Ok(out)
}

/// The forbidden crates `root` reaches, sorted.
pub fn violations(metadata: &Value, root: &str, forbidden: &[&str]) -> Result<Vec<String>, String> {
    Ok(reachable(metadata, root)?
        .into_iter()
        .filter(|n| forbidden.contains(&n.as_str()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn graph() -> Value {
        let dep = |pkg: &str, kind: Value| json!({"pkg": pkg, "dep_kinds": [{"kind": kind}]});
        json!({
            "packages": [
                {"id": "dp", "name": "intentgate-dataplane"},
                {"id": "sh", "name": "intentgate-shared"},
                {"id": "mid", "name": "middle"},
                {"id": "tk", "name": "tokio"},
                {"id": "px", "name": "proptest"},
            ],
            "resolve": {"nodes": [
                {"id": "dp", "deps": [dep("sh", Value::Null), dep("px", json!("dev"))]},
                {"id": "sh", "deps": [dep("mid", json!("build"))]},
                {"id": "mid", "deps": [dep("tk", Value::Null)]},
                {"id": "tk", "deps": []},
                {"id": "px", "deps": [dep("tk", Value::Null)]},
            ]}
        })
    }

    #[test]
    fn finds_forbidden_crates_through_transitive_normal_and_build_edges() {
        let v = violations(&graph(), "intentgate-dataplane", DATAPLANE_FORBIDDEN).unwrap();
        assert_eq!(v, ["tokio"]);
    }

    #[test]
    fn ignores_dev_dependencies() {
        let mut g = graph();
        g["resolve"]["nodes"][2]["deps"] = json!([]);
        assert!(
            violations(&g, "intentgate-dataplane", DATAPLANE_FORBIDDEN)
                .unwrap()
                .is_empty()
        );
        assert!(
            reachable(&g, "intentgate-dataplane")
                .unwrap()
                .contains("middle")
        );
        assert!(
            !reachable(&g, "intentgate-dataplane")
                .unwrap()
                .contains("proptest")
        );
    }

    #[test]
    fn unknown_root_is_an_error() {
        assert!(reachable(&graph(), "nope").is_err());
    }
}
