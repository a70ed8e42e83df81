//! `docs/CONFIGURATION.md`: one table of every variable the gateway reads, with its default,
//! the Helm value that sets it and its `compose.yml` entry. Rendered from the sources of truth
//! (`intentgate_shared::config::VARIABLES`, the chart's deployment template and values, the
//! compose file), so a test can compare the committed file with a fresh rendering and the
//! document cannot drift from the code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use intentgate_shared::config::VARIABLES;
use yaml_rust2::{Yaml, YamlLoader};

/// Where the chart and the compose file live, relative to the repository root.
pub const DEPLOYMENT_TEMPLATE: &str = "deploy/helm/intentgate/templates/deployment.yaml";
/// The chart's values.
pub const VALUES: &str = "deploy/helm/intentgate/values.yaml";
/// The proof-of-concept compose file.
pub const COMPOSE: &str = "deploy/compose.yml";
/// The generated document.
pub const DOCUMENT: &str = "docs/CONFIGURATION.md";

/// How the chart sets one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelmSource {
    /// From a values key (dotted path).
    Value(String),
    /// From the pod itself (`fieldRef`), e.g. the pod name.
    Pod(String),
    /// A constant written in the template.
    Fixed(String),
}

fn read(root: &Path, rel: &str) -> Result<String, String> {
    std::fs::read_to_string(root.join(rel)).map_err(|e| format!("{rel}: {e}"))
}

/// Parses one YAML document.
pub fn parse_yaml(text: &str, what: &str) -> Result<Yaml, String> {
    let mut docs = YamlLoader::load_from_str(text).map_err(|e| format!("{what}: {e}"))?;
    if docs.len() != 1 {
        return Err(format!(
            "{what}: expected one YAML document, found {}",
            docs.len()
        ));
    }
    Ok(docs.remove(0))
}

/// The environment variables of the chart's deployment template, in order, each with the
/// way it is set: the first `.Values.<path>` of its list item, else its `fieldRef`, else its
/// literal `value:`.
pub fn helm_variables(template: &str) -> Vec<(String, HelmSource)> {
    let mut items: Vec<(String, Vec<&str>)> = Vec::new();
    for line in template.lines() {
        let t = line.trim_start();
        if let Some(name) = t.strip_prefix("- name: ") {
            let name = name.trim();
            if name.starts_with("INTENTGATE_") || name.starts_with("OTEL_") || name == "LOG_LEVEL" {
                items.push((name.to_owned(), Vec::new()));
                continue;
            }
            // Another list item (a port, a volume): the variable's item ended.
            items.push((String::new(), Vec::new()));
            continue;
        }
        if t.starts_with("- ") || t.starts_with("{{- end") || t.starts_with("{{- if") {
            items.push((String::new(), Vec::new()));
            continue;
        }
        if let Some((_, lines)) = items.last_mut() {
            lines.push(t);
        }
    }
    items
        .into_iter()
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, lines)| {
            let text = lines.join("\n");
            let source = if let Some(i) = text.find(".Values.") {
                let path: String = text[i + ".Values.".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                    .collect();
                HelmSource::Value(path.trim_end_matches('.').to_owned())
            } else if let Some(i) = text.find("fieldPath:") {
                HelmSource::Pod(
                    text[i + "fieldPath:".len()..]
                        .lines()
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_owned(),
                )
            } else {
                let v = lines
                    .iter()
                    .find_map(|l| l.strip_prefix("value:"))
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"')
                    .to_owned();
                HelmSource::Fixed(v)
            };
            (name, source)
        })
        .collect()
}

/// The value at a dotted path of a YAML mapping.
pub fn lookup<'a>(doc: &'a Yaml, path: &str) -> Option<&'a Yaml> {
    path.split('.').try_fold(doc, |node, key| match node {
        Yaml::Hash(h) => h.get(&Yaml::String(key.to_owned())),
        _ => None,
    })
}

/// A YAML scalar as the chart would render it.
pub fn scalar_text(y: &Yaml) -> String {
    match y {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Null => String::new(),
        Yaml::Array(a) if a.is_empty() => "[]".into(),
        Yaml::Hash(h) if h.is_empty() => "{}".into(),
        _ => "…".into(),
    }
}

/// The gateway service's environment in the compose file.
pub fn compose_environment(compose: &Yaml) -> Result<BTreeMap<String, String>, String> {
    let env = lookup(compose, "services.gateway.environment")
        .ok_or("compose.yml: services.gateway.environment is missing")?;
    let Yaml::Hash(h) = env else {
        return Err("compose.yml: services.gateway.environment must be a map".into());
    };
    h.iter()
        .map(|(k, v)| {
            let k = k
                .as_str()
                .ok_or("compose.yml: a non-string variable name")?;
            Ok((k.to_owned(), scalar_text(v)))
        })
        .collect()
}

fn cell(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!("`{}`", text.replace('|', "\\|"))
    }
}

/// The document, rendered from the repository at `root`.
pub fn render(root: &Path) -> Result<String, String> {
    let template = read(root, DEPLOYMENT_TEMPLATE)?;
    let values = parse_yaml(&read(root, VALUES)?, VALUES)?;
    let compose = compose_environment(&parse_yaml(&read(root, COMPOSE)?, COMPOSE)?)?;
    let helm: BTreeMap<String, HelmSource> = helm_variables(&template).into_iter().collect();

    let mut out = String::new();
    out.push_str(
        "# Configuration\n\n\
         <!-- Generated from shared/src/config.rs (VARIABLES), deploy/helm/intentgate and \
         deploy/compose.yml by tests/src/configuration_table.rs. Do not edit by hand: run\n\
         INTENTGATE_UPDATE_DOCS=1 cargo test -p intentgate-tests --test deploy\n\
         and commit the result; the test fails while this file differs from the code. -->\n\n\
         Every variable `intentgate serve` reads. Secrets (the master key, admin tokens, the \
         Postgres URL, webhook and SIEM credentials) are never logged; in Helm they come only \
         from Kubernetes Secrets, in compose from the operator's shell or an `.env` file. A \
         variable set to a value it does not accept stops startup with one line naming it.\n\n\
         Helm column: the values key that sets the variable (chart default in parentheses). \
         Compose column: the value `deploy/compose.yml` gives it (empty: the gateway's default).\n\n\
         | Variable | Default | Helm value | compose.yml | Meaning |\n\
         |---|---|---|---|---|\n",
    );
    for v in VARIABLES {
        let helm_cell = match helm.get(v.name) {
            Some(HelmSource::Value(path))
                if matches!(lookup(&values, path), Some(Yaml::Hash(_))) =>
            {
                format!("Secret: `{path}.existingSecret` or `{path}.value`")
            }
            Some(HelmSource::Value(path)) => {
                let default = lookup(&values, path).map(scalar_text).unwrap_or_default();
                if default.is_empty() {
                    format!("`{path}`")
                } else {
                    format!("`{path}` ({})", cell(&default))
                }
            }
            Some(HelmSource::Pod(field)) => format!("pod `{field}`"),
            Some(HelmSource::Fixed(v)) => format!("fixed {}", cell(v)),
            None => "`gateway.extraEnv`".into(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            v.name,
            cell(v.default),
            helm_cell,
            compose.get(v.name).map(|c| cell(c)).unwrap_or_default(),
            v.help.replace('|', "\\|")
        );
    }
    Ok(out)
}
