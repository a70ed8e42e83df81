//! Datadog Logs (v2 intake): `DD-API-KEY`, a JSON array of log entries carrying the audit
//! record under `audit`.

use std::sync::Arc;

use intentgate_shared::audit::Decision;
use intentgate_shared::config;
use serde_json::{Value, json};

use super::{Item, SendError};

#[derive(Debug)]
pub(super) struct Datadog {
    url: String,
    api_key: String,
    service: String,
    hostname: String,
}

impl Datadog {
    pub(super) fn new(c: &config::Datadog, hostname: &str) -> Self {
        Self {
            url: c.url.clone(),
            api_key: c.api_key.expose().to_owned(),
            service: c.service.clone(),
            hostname: hostname.to_owned(),
        }
    }

    pub(super) fn body(&self, items: &[Arc<Item>]) -> Vec<u8> {
        let entries: Vec<Value> = items
            .iter()
            .map(|i| {
                let agent = if i.agent_id.is_empty() {
                    "(unknown)"
                } else {
                    &i.agent_id
                };
                let audit: Value = serde_json::from_slice(&i.json).unwrap_or(Value::Null);
                let mut v = json!({
                    "service": self.service,
                    "ddsource": "intentgate",
                    "message": format!("{} {} tool={} agent={} reason={}", i.decision, i.check, i.tool, agent, i.reason),
                    "status": if i.decision == Decision::Block { "warn" } else { "info" },
                    "audit": audit,
                });
                if !self.hostname.is_empty() {
                    v["hostname"] = Value::String(self.hostname.clone());
                }
                v
            })
            .collect();
        Value::Array(entries).to_string().into_bytes()
    }

    pub(super) async fn send(
        &mut self,
        client: &reqwest::Client,
        items: &[Arc<Item>],
    ) -> Result<(), SendError> {
        let headers = [("DD-API-KEY", self.api_key.as_str())];
        super::post_json(client, &self.url, &headers, self.body(items), "datadog").await?;
        Ok(())
    }
}
