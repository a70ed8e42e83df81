//! SIEM forwarder settings (COMPATIBILITY.md §9.2): Splunk HEC, Datadog Logs, Microsoft Sentinel and
//! S3-compatible object storage, plus the batching and spool sizes they share.

use super::{Reader, Secret};

/// Splunk HEC settings.
#[derive(Debug, Clone)]
pub struct Splunk {
    /// HEC URL, used as given.
    pub url: String,
    /// HEC token.
    pub token: Secret,
    /// Index.
    pub index: Option<String>,
}

/// Datadog Logs settings.
#[derive(Debug, Clone)]
pub struct Datadog {
    /// API key.
    pub api_key: Secret,
    /// Site.
    pub site: String,
    /// Service name.
    pub service: String,
    /// Intake URL (`https://http-intake.logs.<site>/api/v2/logs` unless overridden).
    pub url: String,
}

/// Microsoft Sentinel (Logs Ingestion API) settings.
#[derive(Debug, Clone)]
pub struct Sentinel {
    /// Data collection endpoint URL.
    pub dce_url: String,
    /// Data collection rule id.
    pub dcr_id: String,
    /// Stream name.
    pub stream: String,
    /// Entra tenant id.
    pub tenant_id: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: Secret,
    /// OAuth authority (`https://login.microsoftonline.com` unless overridden).
    pub authority_url: String,
}

/// S3-compatible object storage settings.
#[derive(Debug, Clone)]
pub struct S3 {
    /// Bucket.
    pub bucket: String,
    /// Key prefix, without a trailing slash ("" for none).
    pub prefix: String,
    /// Region (signing scope).
    pub region: String,
    /// KMS key for SSE-KMS.
    pub kms_key_id: Option<String>,
    /// This gateway's name in object keys.
    pub gateway_id: String,
    /// S3-compatible endpoint (None: AWS).
    pub endpoint: Option<String>,
    /// Bucket in the path rather than the host name.
    pub force_path_style: bool,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Secret,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: Option<Secret>,
}

/// Batching shared by every forwarder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiemOptions {
    /// Events per request.
    pub batch_size: usize,
    /// Longest wait before a partial batch is sent.
    pub flush_interval_ms: u64,
    /// Events each forwarder holds while its receiver is down.
    pub spool_events: usize,
}

impl Default for SiemOptions {
    fn default() -> Self {
        Self {
            batch_size: 100,
            flush_interval_ms: 5000,
            spool_events: 100_000,
        }
    }
}

pub(super) fn read_splunk<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> Option<Splunk> {
    let url = r.url("INTENTGATE_SIEM_SPLUNK_URL");
    let token = r.secret("INTENTGATE_SIEM_SPLUNK_TOKEN");
    let index = r.raw("INTENTGATE_SIEM_SPLUNK_INDEX");
    match (url, token) {
        (Some(url), Some(token)) => Some(Splunk { url, token, index }),
        (None, None) => None,
        (Some(_), None) => {
            r.fail(
                "INTENTGATE_SIEM_SPLUNK_TOKEN",
                "required when INTENTGATE_SIEM_SPLUNK_URL is set".into(),
            );
            None
        }
        (None, Some(_)) => {
            if r.raw("INTENTGATE_SIEM_SPLUNK_URL").is_none() {
                r.fail(
                    "INTENTGATE_SIEM_SPLUNK_URL",
                    "required when INTENTGATE_SIEM_SPLUNK_TOKEN is set".into(),
                );
            }
            None
        }
    }
}

pub(super) fn read_datadog<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> Option<Datadog> {
    let api_key = r.secret("INTENTGATE_SIEM_DATADOG_API_KEY");
    let site = r
        .raw("INTENTGATE_SIEM_DATADOG_SITE")
        .unwrap_or_else(|| "datadoghq.com".into());
    let service = r
        .raw("INTENTGATE_SIEM_DATADOG_SERVICE")
        .unwrap_or_else(|| "intentgate-gateway".into());
    let url = r.url("INTENTGATE_SIEM_DATADOG_URL");
    let api_key = api_key?;
    if !site
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        r.fail(
            "INTENTGATE_SIEM_DATADOG_SITE",
            format!(
                "invalid value {} (accepted: a host name such as datadoghq.eu)",
                Reader::<F>::shown(&site)
            ),
        );
        return None;
    }
    let url = url.unwrap_or_else(|| format!("https://http-intake.logs.{site}/api/v2/logs"));
    Some(Datadog {
        api_key,
        site,
        service,
        url,
    })
}

pub(super) fn read_sentinel<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> Option<Sentinel> {
    const VARS: [&str; 6] = [
        "INTENTGATE_SIEM_SENTINEL_DCE_URL",
        "INTENTGATE_SIEM_SENTINEL_DCR_ID",
        "INTENTGATE_SIEM_SENTINEL_STREAM",
        "INTENTGATE_SIEM_SENTINEL_TENANT_ID",
        "INTENTGATE_SIEM_SENTINEL_CLIENT_ID",
        "INTENTGATE_SIEM_SENTINEL_CLIENT_SECRET",
    ];
    let values: Vec<Option<String>> = VARS.iter().map(|v| r.raw(v)).collect();
    if values.iter().all(Option::is_none) {
        return None;
    }
    let mut ok = true;
    for (var, value) in VARS.iter().zip(&values) {
        if value.is_none() {
            r.fail(
                var,
                "required when any INTENTGATE_SIEM_SENTINEL_* variable is set".into(),
            );
            ok = false;
        }
    }
    let dce_url = r.url("INTENTGATE_SIEM_SENTINEL_DCE_URL");
    let authority_url = r
        .url("INTENTGATE_SIEM_SENTINEL_AUTHORITY_URL")
        .unwrap_or_else(|| "https://login.microsoftonline.com".into());
    let [_, dcr_id, stream, tenant_id, client_id, secret] =
        <[Option<String>; 6]>::try_from(values).ok()?;
    // These go into URL paths: refuse anything that could change the path.
    for (var, value) in [
        ("INTENTGATE_SIEM_SENTINEL_DCR_ID", &dcr_id),
        ("INTENTGATE_SIEM_SENTINEL_STREAM", &stream),
        ("INTENTGATE_SIEM_SENTINEL_TENANT_ID", &tenant_id),
    ] {
        if let Some(v) = value
            && !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            r.fail(
                var,
                format!(
                    "invalid value {} (accepted: letters, digits, - _ .)",
                    Reader::<F>::shown(v)
                ),
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    Some(Sentinel {
        dce_url: dce_url?,
        dcr_id: dcr_id?,
        stream: stream?,
        tenant_id: tenant_id?,
        client_id: client_id?,
        client_secret: Secret(secret?),
        authority_url,
    })
}

/// S3 bucket names: 3-63 of lowercase letters, digits, `.` and `-`, starting and ending with
/// a letter or digit.
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
}

pub(super) fn read_s3<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> Option<S3> {
    let bucket = r.raw("INTENTGATE_SIEM_S3_BUCKET");
    let prefix = r
        .raw("INTENTGATE_SIEM_S3_PREFIX")
        .unwrap_or_else(|| "audit/".into());
    let region = r
        .raw("INTENTGATE_SIEM_S3_REGION")
        .or_else(|| r.raw("AWS_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    let kms_key_id = r.raw("INTENTGATE_SIEM_S3_KMS_KEY_ID");
    let gateway_id = r
        .raw("INTENTGATE_SIEM_S3_GATEWAY_ID")
        .unwrap_or_else(|| "gateway".into());
    let endpoint = r.url("INTENTGATE_SIEM_S3_ENDPOINT");
    let force_path_style = r.bool("INTENTGATE_SIEM_S3_FORCE_PATH_STYLE", false);
    let access_key_id = r.raw("AWS_ACCESS_KEY_ID");
    let secret_access_key = r.secret("AWS_SECRET_ACCESS_KEY");
    let session_token = r.secret("AWS_SESSION_TOKEN");
    let bucket = bucket?;
    let mut ok = true;
    if !valid_bucket(&bucket) {
        r.fail(
            "INTENTGATE_SIEM_S3_BUCKET",
            format!(
                "invalid value {} (accepted: an S3 bucket name, 3-63 of a-z 0-9 . -)",
                Reader::<F>::shown(&bucket)
            ),
        );
        ok = false;
    }
    let key_safe = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '='))
    };
    if !key_safe(&prefix) || prefix.contains("..") {
        r.fail(
            "INTENTGATE_SIEM_S3_PREFIX",
            format!(
                "invalid value {} (accepted: letters, digits, - _ . / =)",
                Reader::<F>::shown(&prefix)
            ),
        );
        ok = false;
    }
    if gateway_id.contains('/') || !key_safe(&gateway_id) {
        r.fail(
            "INTENTGATE_SIEM_S3_GATEWAY_ID",
            format!(
                "invalid value {} (accepted: letters, digits, - _ .)",
                Reader::<F>::shown(&gateway_id)
            ),
        );
        ok = false;
    }
    if !region
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        r.fail(
            "INTENTGATE_SIEM_S3_REGION",
            format!(
                "invalid value {} (accepted: a region such as eu-west-1)",
                Reader::<F>::shown(&region)
            ),
        );
        ok = false;
    }
    for (var, missing) in [
        ("AWS_ACCESS_KEY_ID", access_key_id.is_none()),
        ("AWS_SECRET_ACCESS_KEY", secret_access_key.is_none()),
    ] {
        if missing {
            r.fail(
                var,
                "required when INTENTGATE_SIEM_S3_BUCKET is set (this build signs with static \
                 credentials; instance roles are not read)"
                    .into(),
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    Some(S3 {
        bucket,
        prefix: prefix.trim_matches('/').to_owned(),
        region,
        kms_key_id,
        gateway_id,
        endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
        force_path_style,
        access_key_id: access_key_id?,
        secret_access_key: secret_access_key?,
        session_token,
    })
}

pub(super) fn read_siem_options<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> SiemOptions {
    let d = SiemOptions::default();
    let batch_size = r.u64("INTENTGATE_SIEM_BATCH_SIZE", d.batch_size as u64, 1);
    if batch_size > 10_000 {
        r.fail(
            "INTENTGATE_SIEM_BATCH_SIZE",
            format!("invalid value {batch_size} (accepted: 1-10000)"),
        );
    }
    SiemOptions {
        batch_size: usize::try_from(batch_size.min(10_000)).unwrap_or(d.batch_size),
        flush_interval_ms: r.u64("INTENTGATE_SIEM_FLUSH_INTERVAL_MS", d.flush_interval_ms, 10),
        spool_events: usize::try_from(r.u64(
            "INTENTGATE_SIEM_SPOOL_EVENTS",
            d.spool_events as u64,
            1,
        ))
        .unwrap_or(d.spool_events),
    }
}
