//! S3-compatible object storage: one gzip NDJSON object per batch under Hive-style
//! partitions (`<prefix>/year=YYYY/month=MM/day=DD/hour=HH/<gateway>-<time>-<8 hex>.ndjson.gz`),
//! signed with Signature Version 4, SSE-KMS when a key is set.

use std::io::Write as _;
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;
use intentgate_shared::config;
use intentgate_shared::timestamp::Timestamp;

use super::sigv4::{self, Credentials};
use super::{Item, SendError};

#[derive(Debug)]
pub(super) struct S3 {
    c: config::S3,
    /// `scheme://host[:port]` and the path before the key.
    base: String,
    host: String,
    path_prefix: String,
}

impl S3 {
    pub(super) fn new(c: &config::S3) -> Self {
        let (scheme, host) = match &c.endpoint {
            Some(e) => {
                let (scheme, rest) = e.split_once("://").unwrap_or(("https", e.as_str()));
                (
                    scheme.to_owned(),
                    rest.split('/').next().unwrap_or(rest).to_owned(),
                )
            }
            None => ("https".to_owned(), format!("s3.{}.amazonaws.com", c.region)),
        };
        let (host, path_prefix) = if c.force_path_style {
            (host, format!("/{}", c.bucket))
        } else {
            (format!("{}.{host}", c.bucket), String::new())
        };
        Self {
            base: format!("{scheme}://{host}"),
            host,
            path_prefix,
            c: c.clone(),
        }
    }

    /// `s3://bucket/prefix` (and the endpoint when not AWS).
    pub(super) fn display(&self) -> String {
        let mut s = format!("s3://{}/{}", self.c.bucket, self.c.prefix);
        if self.c.endpoint.is_some() {
            s.push_str(&format!(" via {}", self.base));
        }
        s
    }

    /// The object key for a batch signed at `amz_date` (`YYYYMMDDTHHMMSSZ`, the same
    /// instant names the object and dates its signature) with random `suffix`.
    pub(super) fn key(&self, amz_date: &str, suffix: u32) -> String {
        let (y, mo, d, h) = (
            &amz_date[0..4],
            &amz_date[4..6],
            &amz_date[6..8],
            &amz_date[9..11],
        );
        let mut key = String::new();
        if !self.c.prefix.is_empty() {
            key.push_str(&self.c.prefix);
            key.push('/');
        }
        key.push_str(&format!(
            "year={y}/month={mo}/day={d}/hour={h}/{}-{amz_date}-{suffix:08x}.ndjson.gz",
            self.c.gateway_id
        ));
        key
    }

    pub(super) fn body(items: &[Arc<Item>]) -> std::io::Result<Vec<u8>> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        for item in items {
            gz.write_all(&item.json)?;
            gz.write_all(b"\n")?;
        }
        gz.finish()
    }

    pub(super) async fn send(
        &mut self,
        client: &reqwest::Client,
        items: &[Arc<Item>],
    ) -> Result<(), SendError> {
        let body = Self::body(items)
            .map_err(|e| SendError::Permanent(format!("s3: cannot compress the batch: {e}")))?;
        let mut suffix = [0u8; 4];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix)
            .map_err(|_| SendError::Transient("s3: the system RNG failed".into()))?;
        let amz_date = amz_date(Timestamp::now());
        let key = self.key(&amz_date, u32::from_be_bytes(suffix));
        let uri = format!(
            "{}/{}",
            self.path_prefix,
            key.split('/')
                .map(sigv4::encode_segment)
                .collect::<Vec<_>>()
                .join("/")
        );
        let payload = sigv4::sha256_hex(&body);
        let mut headers: Vec<(&str, String)> = vec![
            ("host", self.host.clone()),
            ("x-amz-content-sha256", payload.clone()),
            ("x-amz-date", amz_date.clone()),
        ];
        if let Some(token) = &self.c.session_token {
            headers.push(("x-amz-security-token", token.expose().to_owned()));
        }
        if let Some(kms) = &self.c.kms_key_id {
            headers.push(("x-amz-server-side-encryption", "aws:kms".into()));
            headers.push(("x-amz-server-side-encryption-aws-kms-key-id", kms.clone()));
        }
        let authorization = sigv4::authorization(
            &sigv4::Request {
                method: "PUT",
                canonical_uri: &uri,
                canonical_query: "",
                headers: &headers,
                payload_sha256: &payload,
                amz_date: &amz_date,
                region: &self.c.region,
                service: "s3",
            },
            &Credentials {
                access_key_id: &self.c.access_key_id,
                secret_access_key: self.c.secret_access_key.expose(),
            },
        );
        let mut req = client
            .put(format!("{}{uri}", self.base))
            .header("Authorization", authorization)
            .header("Content-Type", "application/x-ndjson")
            .header("Content-Encoding", "gzip");
        for (name, value) in headers.iter().filter(|(n, _)| *n != "host") {
            req = req.header(*name, value);
        }
        let r = req
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::transport(&e, "s3"))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(SendError::from_status(r.status(), "s3"))
        }
    }
}

/// `YYYYMMDDTHHMMSSZ` in UTC (SigV4's `x-amz-date`).
fn amz_date(now: Timestamp) -> String {
    let t = now.to_offset_datetime();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use intentgate_shared::config::Secret;

    fn cfg(endpoint: Option<&str>, path_style: bool) -> config::S3 {
        config::S3 {
            bucket: "audit-bucket".into(),
            prefix: "audit".into(),
            region: "eu-west-1".into(),
            kms_key_id: None,
            gateway_id: "gw-1".into(),
            endpoint: endpoint.map(str::to_owned),
            force_path_style: path_style,
            access_key_id: "AKID".into(),
            secret_access_key: Secret::new("secret"),
            session_token: None,
        }
    }

    #[test]
    fn keys_are_hive_partitioned_by_the_batch_hour() {
        let s = S3::new(&cfg(None, false));
        // 2026-11-22T14:05:09Z
        let key = s.key(
            &amz_date(Timestamp::from_unix_micros(1_795_356_309_000_000)),
            0xab,
        );
        assert_eq!(
            key,
            "audit/year=2026/month=11/day=22/hour=14/gw-1-20261122T140509Z-000000ab.ndjson.gz"
        );
        assert_eq!(s.base, "https://audit-bucket.s3.eu-west-1.amazonaws.com");
        let p = S3::new(&cfg(Some("http://127.0.0.1:9000"), true));
        assert_eq!(p.base, "http://127.0.0.1:9000");
        assert_eq!(p.host, "127.0.0.1:9000");
        assert_eq!(p.path_prefix, "/audit-bucket");
    }
}
