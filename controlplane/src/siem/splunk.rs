//! Splunk HEC: `Authorization: Splunk <token>`, one JSON envelope per line.

use std::sync::Arc;

use intentgate_shared::config;

use super::{Item, SendError};

#[derive(Debug)]
pub(super) struct Splunk {
    url: String,
    authorization: String,
    index: Option<String>,
}

impl Splunk {
    pub(super) fn new(c: &config::Splunk) -> Self {
        Self {
            url: c.url.clone(),
            authorization: format!("Splunk {}", c.token.expose()),
            index: c.index.clone(),
        }
    }

    /// `{time, source, sourcetype, index?, event}` per record; `time` is Unix seconds with
    /// the record's microseconds.
    pub(super) fn body(&self, items: &[Arc<Item>]) -> Vec<u8> {
        let mut out = Vec::with_capacity(items.iter().map(|i| i.json.len() + 128).sum());
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                out.push(b'\n');
            }
            let micros = item.ts.unix_micros();
            out.extend_from_slice(
                format!(
                    "{{\"time\":{}.{:06},\"source\":\"intentgate\",\"sourcetype\":\"_json\",",
                    micros.div_euclid(1_000_000),
                    micros.rem_euclid(1_000_000)
                )
                .as_bytes(),
            );
            if let Some(index) = &self.index {
                out.extend_from_slice(b"\"index\":");
                out.extend_from_slice(
                    serde_json::Value::from(index.as_str())
                        .to_string()
                        .as_bytes(),
                );
                out.push(b',');
            }
            out.extend_from_slice(b"\"event\":");
            out.extend_from_slice(&item.json);
            out.push(b'}');
        }
        out
    }

    pub(super) async fn send(
        &mut self,
        client: &reqwest::Client,
        items: &[Arc<Item>],
    ) -> Result<(), SendError> {
        let headers = [("Authorization", self.authorization.as_str())];
        super::post_json(client, &self.url, &headers, self.body(items), "splunk").await?;
        Ok(())
    }
}
