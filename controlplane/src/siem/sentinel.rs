//! Microsoft Sentinel through the Logs Ingestion API: an OAuth client-credentials token
//! (cached, renewed five minutes before it expires, dropped on 401/403), then a JSON array of
//! audit records posted to the data collection rule's stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use intentgate_shared::config;
use serde::Deserialize;

use super::sigv4::encode_segment as form_escape;
use super::{Item, SendError};

/// Renew this long before the token expires.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub(super) struct Sentinel {
    token_url: String,
    form: String,
    ingest_url: String,
    token: Option<(String, Instant)>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

impl Sentinel {
    pub(super) fn new(c: &config::Sentinel) -> Self {
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
            form_escape(&c.client_id),
            form_escape(c.client_secret.expose()),
            form_escape("https://monitor.azure.com//.default"),
        );
        Self {
            token_url: format!(
                "{}/{}/oauth2/v2.0/token",
                c.authority_url.trim_end_matches('/'),
                c.tenant_id
            ),
            form,
            ingest_url: format!(
                "{}/dataCollectionRules/{}/streams/{}?api-version=2023-01-01",
                c.dce_url.trim_end_matches('/'),
                c.dcr_id,
                c.stream
            ),
            token: None,
        }
    }

    async fn token(&mut self, client: &reqwest::Client) -> Result<String, SendError> {
        if let Some((t, renew_at)) = &self.token
            && Instant::now() < *renew_at
        {
            return Ok(t.clone());
        }
        let r = client
            .post(&self.token_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(self.form.clone())
            .send()
            .await
            .map_err(|e| SendError::transport(&e, "sentinel token endpoint"))?;
        if !r.status().is_success() {
            // Credentials do not fix themselves, but the directory may be down: keep the
            // records and say why in last_error.
            return Err(SendError::Transient(format!(
                "sentinel token endpoint answered {}",
                r.status().as_u16()
            )));
        }
        let answer: TokenAnswer = r.json().await.map_err(|_| {
            SendError::Transient("sentinel token endpoint: answer has no access_token".into())
        })?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        let renew_at = Instant::now() + lifetime.saturating_sub(RENEW_BEFORE);
        self.token = Some((answer.access_token.clone(), renew_at));
        Ok(answer.access_token)
    }

    pub(super) fn body(items: &[Arc<Item>]) -> Vec<u8> {
        let mut out = Vec::with_capacity(items.iter().map(|i| i.json.len() + 1).sum::<usize>() + 2);
        out.push(b'[');
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&item.json);
        }
        out.push(b']');
        out
    }

    pub(super) async fn send(
        &mut self,
        client: &reqwest::Client,
        items: &[Arc<Item>],
    ) -> Result<(), SendError> {
        let token = format!("Bearer {}", self.token(client).await?);
        let headers = [("Authorization", token.as_str())];
        match super::post_json(
            client,
            &self.ingest_url,
            &headers,
            Self::body(items),
            "sentinel",
        )
        .await
        {
            Err(SendError::Permanent(e)) if e.ends_with(" 401") || e.ends_with(" 403") => {
                // Revoked or rotated: fetch a new token on the retry.
                self.token = None;
                Err(SendError::Transient(format!("{e}; token dropped")))
            }
            other => other.map(drop),
        }
    }
}
