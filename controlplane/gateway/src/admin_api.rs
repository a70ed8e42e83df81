//! A small blocking client for the admin API, shared by the operator subcommands. It reads
//! the gateway URL and admin token from the igctl variables (`INTENTGATE_GATEWAY_URL`,
//! `INTENTGATE_ADMIN_TOKEN`); the token goes in the `Authorization` header only and is never
//! part of an error or of anything printed.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use serde_json::Value;

/// Where the admin API is and how to authenticate, plus the output switch every operator
/// command shares.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Gateway base URL (the data port relays /v1/admin/*, or point at the admin listener).
    #[arg(
        long = "gateway",
        env = "INTENTGATE_GATEWAY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    gateway_url: String,
    /// Admin token (superadmin or a tenant's); prefer the environment variable, which stays
    /// out of shell history and process listings.
    #[arg(long, env = "INTENTGATE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// Print the API's JSON answer instead of a human summary.
    #[arg(long)]
    pub json: bool,
}

/// A connection to one gateway's admin API.
#[derive(Debug)]
pub struct AdminApi {
    base: String,
    token: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

/// One answer: status and body (JSON when the API sent JSON).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The decoded body (`Value::Null` when empty).
    pub body: Value,
}

impl AdminApi {
    /// Checks the URL and token (without contacting the gateway).
    pub fn new(args: &ApiArgs) -> Result<Self> {
        let base = args.gateway_url.trim().trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base)
            .with_context(|| format!("INTENTGATE_GATEWAY_URL {base:?} is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("INTENTGATE_GATEWAY_URL must be http:// or https://, not {base:?}");
        }
        let token = args.admin_token.trim().to_owned();
        if token.is_empty() {
            bail!("INTENTGATE_ADMIN_TOKEN is empty");
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start runtime")?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(600))
            .user_agent(concat!("intentgate-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            base,
            token,
            http,
            rt,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        // `send` arms its timeout when called: call it inside the runtime.
        self.rt
            .block_on(async move { req.send().await })
            .map_err(|e| anyhow!("cannot reach the admin API at {}: {}", self.base, cause(&e)))
    }

    fn answer(&self, req: reqwest::RequestBuilder) -> Result<Answer> {
        let resp = self.send(req)?;
        let status = resp.status().as_u16();
        let bytes = self
            .rt
            .block_on(resp.bytes())
            .map_err(|e| anyhow!("the admin API's answer was cut off: {}", cause(&e)))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&bytes).trim().to_owned())
            })
        };
        Ok(Answer { status, body })
    }

    /// `GET path?query`; any status, for callers that handle some failures themselves.
    pub fn get_any(&self, path: &str, query: &[(&str, String)]) -> Result<Answer> {
        self.answer(self.request(reqwest::Method::GET, path).query(query))
    }

    /// `GET path?query`, failing on a non-2xx answer.
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        success(self.get_any(path, query)?)
    }

    /// `POST path` with a JSON body; any status.
    pub fn post_any(&self, path: &str, body: &Value) -> Result<Answer> {
        self.answer(self.request(reqwest::Method::POST, path).json(body))
    }

    /// `POST path` with a JSON body, failing on a non-2xx answer.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        success(self.post_any(path, body)?)
    }

    /// `GET path?query`, streaming the body into `out`; returns the `X-IntentGate-Row-Cap`
    /// header when the export was cut at the row cap.
    pub fn download(
        &self,
        path: &str,
        query: &[(&str, String)],
        out: &mut dyn Write,
    ) -> Result<Option<String>> {
        let mut resp = self.send(self.request(reqwest::Method::GET, path).query(query))?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let text = self.rt.block_on(resp.text()).unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            return success(Answer { status, body }).map(|_| None);
        }
        let cap = resp
            .headers()
            .get("x-intentgate-row-cap")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        while let Some(chunk) = self
            .rt
            .block_on(resp.chunk())
            .map_err(|e| anyhow!("the download was cut off: {}", cause(&e)))?
        {
            out.write_all(&chunk).context("cannot write the output")?;
        }
        out.flush().context("cannot write the output")?;
        Ok(cap)
    }
}

/// The body of a 2xx answer; otherwise an error naming the status and the API's message.
pub fn success(a: Answer) -> Result<Value> {
    if (200..300).contains(&a.status) {
        return Ok(a.body);
    }
    let message = match &a.body {
        Value::Object(o) => o
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| a.body.to_string(), str::to_owned),
        Value::String(s) if !s.is_empty() => s.clone(),
        _ => "(no message)".to_owned(),
    };
    let hint = match a.status {
        401 => " (check INTENTGATE_ADMIN_TOKEN)",
        404 if message.contains("no such admin route") || message.contains("not enabled") => {
            " (is the feature enabled on this gateway? see docs/CONFIGURATION.md)"
        }
        _ => "",
    };
    bail!("admin API answered {}: {message}{hint}", a.status)
}

/// A transport error's innermost cause (reqwest's own message is "error sending request").
fn cause(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg = s.to_string();
        source = s.source();
    }
    msg
}

/// Prints `v` as indented JSON.
pub fn print_json(v: &Value) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).context("cannot print JSON")?
    );
    Ok(())
}

/// A field of `v` as display text ("" when absent).
pub fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}
