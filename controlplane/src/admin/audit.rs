//! `GET /v1/admin/audit` and `GET /v1/admin/audit/verify` (COMPATIBILITY.md §2.4, §8.4), present when
//! the audit chain is persisted. Tenant admins see and verify only their tenant's chain.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use intentgate_shared::timestamp::Timestamp;

use super::auth::Caller;
use super::{ApiError, page, store_error};
use crate::store::audit::{self as sql, Filter};

type Params = Query<HashMap<String, String>>;

/// The audit store (404 when persistence is off).
fn store(caller: &Caller) -> Result<&sqlx::PgPool, ApiError> {
    caller
        .state
        .audit_store
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "audit persistence is off"))
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn time_param(params: &HashMap<String, String>, name: &str) -> Result<Option<Timestamp>, ApiError> {
    param(params, name)
        .map(|v| {
            Timestamp::parse_rfc3339(v).map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
        })
        .transpose()
}

fn filter(params: &HashMap<String, String>, tenant: Option<String>) -> Result<Filter, ApiError> {
    let text = |name| param(params, name).map(str::to_owned);
    let int = |name: &str| {
        param(params, name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("{name} must be an integer")))
            })
            .transpose()
    };
    Ok(Filter {
        from: time_param(params, "from")?,
        to: time_param(params, "to")?,
        tenant,
        agent_id: text("agent_id"),
        tool: text("tool"),
        decision: text("decision"),
        check: text("check"),
        jti: text("jti"),
        elevation_id: text("elevation_id"),
        before_id: int("before_id")?,
        id: int("id")?,
    })
}

/// `GET /v1/admin/audit`: newest first; `limit`/`offset` as compat, plus the keyset cursor
/// `before_id` (pass the response's `next_before_id` to get the next page: stable while rows
/// are being added).
pub(super) async fn query(
    Query(params): Params,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    let pool = store(&caller)?;
    let (limit, offset) = page(&params)?;
    let tenant = caller.scoped_tenant(param(&params, "tenant"))?;
    let f = filter(&params, tenant)?;
    let rows = sql::query(pool, &f, limit, offset)
        .await
        .map_err(store_error)?;
    let next = rows.last().map(|r| r.id);
    let events: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::from_slice(&r.event.to_json()).unwrap_or(Value::Null))
        .collect();
    let mut out = json!({"events": events, "limit": limit, "offset": offset});
    if let Some(id) = next {
        out["next_before_id"] = id.into();
    }
    if param(&params, "count") == Some("true") {
        out["total"] = sql::count(pool, &f).await.unwrap_or(-1).into();
    }
    Ok(axum::Json(out))
}

/// `GET /v1/admin/audit/verify`: walks one chain (compat response; 200 whenever the walk ran).
pub(super) async fn verify(
    Query(params): Params,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    let pool = store(&caller)?;
    let tenant = caller
        .scoped_tenant(param(&params, "tenant"))?
        .unwrap_or_default();
    let (from, to) = (time_param(&params, "from")?, time_param(&params, "to")?);
    let key = intentgate_shared::audit::chain_key(&tenant);
    let v = sql::verify(pool, key, from, to)
        .await
        .map_err(store_error)?;
    let mut out = json!({
        "ok": v.broken.is_none(),
        "tenant": tenant,
        "verified": v.verified,
        "skipped": v.skipped,
    });
    if let Some((id, ts, b)) = &v.broken {
        out["broken_at"] = json!({
            "id": id,
            "ts": ts.to_rfc3339_nano(),
            "stored_hash": b.stored_hash,
            "expected_hash": b.expected_hash,
            "reason": b.reason,
        });
    }
    if let Some(id) = v.baseline_id {
        out["baseline_id"] = id.into();
    }
    if let Some((head_id, at)) = v.head {
        out["head_at"] = at.to_rfc3339_nano().into();
        if let Some(id) = head_id {
            out["head_id"] = id.into();
        }
    }
    Ok(axum::Json(out))
}

/// Rows an export holds at most (compat); past it the export ends with a trailer line.
pub const EXPORT_ROW_CAP: usize = 200_000;
const EXPORT_PAGE: i64 = 1000;

/// The 22 CSV columns of COMPATIBILITY.md §2.4, in order.
const CSV_HEADER: &str = "ts,event,schema_version,decision,check,reason,tenant,agent_id,session_id,tool,arg_keys,capability_token_id,root_capability_token_id,caveat_count,pending_id,decided_by,intent_summary,latency_ms,remote_ip,upstream_status,requires_step_up,elevation_id\n";

/// Export encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Ndjson,
}

/// Appends one CSV field the way Go's `encoding/csv` writes it.
fn csv_field(out: &mut String, field: &str) {
    let quote =
        field.contains([',', '"', '\r', '\n']) || field.starts_with([' ', '\t']) || field == "\\.";
    if quote {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

fn csv_row(out: &mut String, e: &intentgate_shared::audit::AuditEvent) {
    let ints = [e.caveat_count, e.latency_ms, e.upstream_status];
    let fields: [&str; 10] = [
        &e.event,
        &e.schema_version,
        e.decision.as_str(),
        e.check.as_str(),
        &e.reason,
        &e.tenant,
        &e.agent_id,
        &e.session_id,
        &e.tool,
        &e.arg_keys.join(";"),
    ];
    csv_field(out, &e.ts.to_rfc3339_nano());
    for f in fields {
        out.push(',');
        csv_field(out, f);
    }
    for f in [&e.capability_token_id, &e.root_capability_token_id] {
        out.push(',');
        csv_field(out, f);
    }
    out.push(',');
    out.push_str(&ints[0].to_string());
    for f in [&e.pending_id, &e.decided_by, &e.intent_summary] {
        out.push(',');
        csv_field(out, f);
    }
    out.push(',');
    out.push_str(&ints[1].to_string());
    out.push(',');
    csv_field(out, &e.remote_ip);
    out.push(',');
    out.push_str(&ints[2].to_string());
    out.push(',');
    out.push_str(if e.requires_step_up { "true" } else { "false" });
    out.push(',');
    csv_field(out, &e.elevation_id);
    out.push('\n');
}

/// One NDJSON line: the full event JSON (compat) plus the chain columns (`id`, `seq`,
/// `prev_hash`, `hash`) that offline verification needs.
fn ndjson_row(out: &mut Vec<u8>, r: &sql::StoredRow) {
    let mut json = r.event.to_json();
    json.pop(); // the closing brace
    out.extend_from_slice(&json);
    out.extend_from_slice(
        format!(
            ",\"id\":{},\"seq\":{},\"prev_hash\":\"{}\",\"hash\":\"{}\"}}\n",
            r.id,
            r.seq.map_or("null".to_owned(), |s| s.to_string()),
            r.prev_hash,
            r.hash
        )
        .as_bytes(),
    );
}

fn encode(format: Format, rows: &[sql::StoredRow]) -> Vec<u8> {
    match format {
        Format::Csv => {
            let mut s = String::with_capacity(rows.len() * 256);
            for r in rows {
                csv_row(&mut s, &r.event);
            }
            s.into_bytes()
        }
        Format::Ndjson => {
            let mut out = Vec::with_capacity(rows.len() * 512);
            for r in rows {
                ndjson_row(&mut out, r);
            }
            out
        }
    }
}

fn trailer(format: Format, next_before_id: i64) -> Vec<u8> {
    match format {
        Format::Csv => format!(
            "# truncated: row cap {EXPORT_ROW_CAP} reached; continue with before_id={next_before_id}\n"
        )
        .into_bytes(),
        Format::Ndjson => format!(
            "{{\"truncated\":true,\"row_cap\":{EXPORT_ROW_CAP},\"next_before_id\":{next_before_id}}}\n"
        )
        .into_bytes(),
    }
}

/// Streaming state of one export: keyset pages, newest first.
struct Export {
    pool: sqlx::PgPool,
    filter: Filter,
    format: Format,
    page: Vec<sql::StoredRow>,
    sent: usize,
    done: bool,
}

impl Export {
    /// The next chunk of the body; `None` when the export is complete.
    async fn next(mut self) -> Option<(Result<Vec<u8>, std::io::Error>, Self)> {
        if self.done {
            return None;
        }
        if self.page.is_empty() {
            self.done = true;
            return None;
        }
        let room = EXPORT_ROW_CAP - self.sent;
        let take = self.page.len().min(room);
        let chunk = encode(self.format, &self.page[..take]);
        self.sent += take;
        let last_id = self.page[take - 1].id;
        if self.sent >= EXPORT_ROW_CAP {
            self.done = true;
            // Rows remain only if this page had more, or another page exists.
            let more = take < self.page.len()
                || !sql::query(
                    &self.pool,
                    &Filter {
                        before_id: Some(last_id),
                        ..self.filter.clone()
                    },
                    1,
                    0,
                )
                .await
                .map(|r| r.is_empty())
                .unwrap_or(false);
            let mut chunk = chunk;
            if more {
                tracing::warn!(row_cap = EXPORT_ROW_CAP, "audit export hit row cap");
                chunk.extend(trailer(self.format, last_id));
            }
            return Some((Ok(chunk), self));
        }
        self.filter.before_id = Some(last_id);
        match sql::query(&self.pool, &self.filter, EXPORT_PAGE, 0).await {
            Ok(next) => self.page = next,
            Err(e) => {
                // Headers are gone: end the body early and say why in the log; the client
                // sees a short export without the trailer or the end of the last page.
                tracing::error!(error = %e, "audit export aborted: store error");
                self.done = true;
                return Some((Err(std::io::Error::other("store error")), self));
            }
        }
        Some((Ok(chunk), self))
    }
}

/// `GET /v1/admin/audit/export`: CSV (default) or NDJSON (`format=json` or `ndjson`),
/// streamed page by page; at most [`EXPORT_ROW_CAP`] rows, and a trailer line when the cap cut
/// the export short. The first page is read before the headers are sent, so a store error is
/// a clean 503.
pub(super) async fn export(
    Query(params): Params,
    caller: Caller,
) -> Result<axum::response::Response, ApiError> {
    let pool = store(&caller)?;
    let format = match param(&params, "format") {
        None | Some("csv") => Format::Csv,
        Some("json" | "ndjson") => Format::Ndjson,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format must be csv or json (NDJSON), not {other:?}"
            )));
        }
    };
    let tenant = caller.scoped_tenant(param(&params, "tenant"))?;
    let label = tenant.clone().unwrap_or_else(|| "all".into());
    let filter = filter(&params, tenant)?;
    let page = sql::query(pool, &filter, EXPORT_PAGE, 0)
        .await
        .map_err(store_error)?;
    let state = Export {
        pool: pool.clone(),
        filter,
        format,
        page,
        sent: 0,
        done: false,
    };
    let head = match format {
        Format::Csv => CSV_HEADER.as_bytes().to_vec(),
        Format::Ndjson => Vec::new(),
    };
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) })
        .chain(futures_util::stream::unfold(state, Export::next));
    let (content_type, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let stamp = time::OffsetDateTime::now_utc();
    let filename = format!(
        "intentgate-audit-{}-{:04}{:02}{:02}T{:02}{:02}{:02}Z.{ext}",
        label.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
            "_"
        ),
        stamp.year(),
        u8::from(stamp.month()),
        stamp.day(),
        stamp.hour(),
        stamp.minute(),
        stamp.second()
    );
    let mut resp = axum::response::Response::new(axum::body::Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        content_type.parse().map_err(|_| internal())?,
    );
    h.insert(
        axum::http::header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{filename}\"")
            .parse()
            .map_err(|_| internal())?,
    );
    h.insert("x-intentgate-row-cap", EXPORT_ROW_CAP.into());
    Ok(resp)
}

fn internal() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "cannot build the response headers",
    )
}

/// `GET /v1/admin/audit/checkpoints`: signed chain heads, newest first (`tenant`, `limit`,
/// `offset`), with the public key that verifies them when signing is configured.
pub(super) async fn checkpoints(
    Query(params): Params,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    let pool = store(&caller)?;
    let (limit, offset) = page(&params)?;
    let tenant = caller.scoped_tenant(param(&params, "tenant"))?;
    let key = tenant.as_deref().map(intentgate_shared::audit::chain_key);
    let rows = sql::checkpoints(pool, key, limit, offset)
        .await
        .map_err(store_error)?;
    let list: Vec<Value> = rows
        .iter()
        .map(|c| {
            json!({
                "tenant": c.tenant,
                "seq": c.seq,
                "head_hash": c.head_hash,
                "head_id": c.head_id,
                "ts": c.ts.to_rfc3339_nano(),
                "key_id": c.key_id,
                "signature": c.signature,
            })
        })
        .collect();
    let mut out = json!({"checkpoints": list, "limit": limit, "offset": offset});
    if let Some(k) = &caller.state.audit_public_key {
        out["public_key"] = k.clone().into();
    }
    Ok(axum::Json(out))
}
