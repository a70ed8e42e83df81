//! SQL of the audit chain (COMPATIBILITY.md §8.3, §8.4, §10): the batched chained insert, queries and
//! the streaming verifier (`walk`).
//!
//! One transaction per batch: lock every chain head the batch touches (`FOR UPDATE`, in
//! chain-key order so replicas never deadlock), give each event the next gapless `seq` and
//! `SHA-256(prev_hash || canonical)`, insert all rows with one `INSERT … SELECT FROM UNNEST`,
//! move each head once, commit. Writers on other replicas wait on the head lock, so a chain
//! stays one unbroken sequence whoever writes it.

use std::collections::BTreeMap;

use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;

use intentgate_shared::audit::{self, AuditEvent};
use intentgate_shared::timestamp::Timestamp;

pub use crate::chain_anchor::REBASELINE_TOOL;
use crate::chain_anchor::{self, Signer};

/// The head of one chain as locked for a batch.
struct Head {
    hash: String,
    seq: i64,
}

/// Column arrays for one `UNNEST` insert.
#[derive(Default)]
struct Columns {
    ts: Vec<OffsetDateTime>,
    event: Vec<String>,
    schema_version: Vec<String>,
    decision: Vec<String>,
    check: Vec<String>,
    reason: Vec<String>,
    tenant: Vec<Option<String>>,
    agent_id: Vec<String>,
    session_id: Vec<String>,
    tool: Vec<String>,
    arg_keys: Vec<Option<String>>,
    arg_values: Vec<Option<String>>,
    jti: Vec<String>,
    root_jti: Vec<Option<String>>,
    caveat_count: Vec<i32>,
    pending_id: Vec<String>,
    decided_by: Vec<String>,
    intent_summary: Vec<String>,
    latency_ms: Vec<i64>,
    remote_ip: Vec<String>,
    upstream_status: Vec<i32>,
    requires_step_up: Vec<bool>,
    elevation_id: Vec<Option<String>>,
    prev_hash: Vec<Option<String>>,
    hash: Vec<String>,
    seq: Vec<i64>,
}

fn nullable(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl Columns {
    fn push(&mut self, e: &AuditEvent, prev_hash: &str, hash: String, seq: i64) {
        self.ts.push(e.ts.to_offset_datetime());
        self.event.push(e.event.clone());
        self.schema_version.push(e.schema_version.clone());
        self.decision.push(e.decision.as_str().to_owned());
        self.check.push(e.check.as_str().to_owned());
        self.reason.push(e.reason.clone());
        self.tenant.push(nullable(&e.tenant));
        self.agent_id.push(e.agent_id.clone());
        self.session_id.push(e.session_id.clone());
        self.tool.push(e.tool.clone());
        self.arg_keys.push(
            (!e.arg_keys.is_empty())
                .then(|| serde_json::to_string(&e.arg_keys).unwrap_or_default()),
        );
        self.arg_values.push(
            e.arg_values
                .as_ref()
                .filter(|v| !v.is_empty())
                .map(|v| serde_json::Value::Object(v.clone()).to_string()),
        );
        self.jti.push(e.capability_token_id.clone());
        self.root_jti.push(nullable(&e.root_capability_token_id));
        self.caveat_count
            .push(i32::try_from(e.caveat_count).unwrap_or(i32::MAX));
        self.pending_id.push(e.pending_id.clone());
        self.decided_by.push(e.decided_by.clone());
        self.intent_summary.push(e.intent_summary.clone());
        self.latency_ms.push(e.latency_ms);
        self.remote_ip.push(e.remote_ip.clone());
        self.upstream_status
            .push(i32::try_from(e.upstream_status).unwrap_or(i32::MAX));
        self.requires_step_up.push(e.requires_step_up);
        self.elevation_id.push(nullable(&e.elevation_id));
        self.prev_hash.push(nullable(prev_hash));
        self.hash.push(hash);
        self.seq.push(seq);
    }
}

/// Appends `events` to their chains in one transaction. Events keep their order within each
/// chain. On error nothing is written (the caller retries the same batch).
pub async fn append(pool: &PgPool, events: &[AuditEvent]) -> Result<(), sqlx::Error> {
    append_signed(pool, events, None).await
}

/// [`append`], and with a `signer` a signed checkpoint of every chain head the batch moved,
/// in the same transaction.
pub async fn append_signed(
    pool: &PgPool,
    events: &[AuditEvent],
    signer: Option<&Signer>,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<String> = events.iter().map(|e| e.chain_key().to_owned()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut tx = pool.begin().await?;
    let mut heads = lock_heads(&mut tx, &keys).await?;
    let mut cols = Columns::default();
    for e in events {
        let Some(head) = heads.get_mut(e.chain_key()) else {
            continue; // every key was locked above
        };
        let hash = e.chain_hash(&head.hash);
        head.seq += 1;
        cols.push(e, &head.hash, hash.clone(), head.seq);
        head.hash = hash;
    }
    let ids = insert_rows(&mut tx, &cols).await?;
    let moved = MovedHeads::new(&ids, &heads);
    moved.write(&mut tx).await?;
    if let Some(signer) = signer {
        moved.sign(&mut tx, signer).await?;
    }
    tx.commit().await
}

/// Inserts the rows with one `UNNEST`; returns each row's (chain key, seq, id).
async fn insert_rows(
    tx: &mut Transaction<'static, Postgres>,
    cols: &Columns,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO audit_events (ts, event_name, schema_version, decision, check_stage, \
         reason, tenant, agent_id, session_id, tool, arg_keys, arg_values, capability_token_id, \
         root_capability_token_id, caveat_count, pending_id, decided_by, intent_summary, \
         latency_ms, remote_ip, upstream_status, requires_step_up, elevation_id, prev_hash, \
         hash, seq) \
         SELECT ts, ev, sv, dec, chk, rsn, ten, agent, sess, tool, ak::jsonb, av::jsonb, jti, \
                root, cav, pend, decby, intent, lat, rip, ups, stepup, elev, prev, hash, seq \
         FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], \
                     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
                     $12::text[], $13::text[], $14::text[], $15::int[], $16::text[], \
                     $17::text[], $18::text[], $19::bigint[], $20::text[], $21::int[], \
                     $22::bool[], $23::text[], $24::text[], $25::text[], $26::bigint[]) \
           AS u(ts, ev, sv, dec, chk, rsn, ten, agent, sess, tool, ak, av, jti, root, cav, \
                pend, decby, intent, lat, rip, ups, stepup, elev, prev, hash, seq) \
         RETURNING COALESCE(tenant, 'default'), seq, id",
    )
    .bind(&cols.ts)
    .bind(&cols.event)
    .bind(&cols.schema_version)
    .bind(&cols.decision)
    .bind(&cols.check)
    .bind(&cols.reason)
    .bind(&cols.tenant)
    .bind(&cols.agent_id)
    .bind(&cols.session_id)
    .bind(&cols.tool)
    .bind(&cols.arg_keys)
    .bind(&cols.arg_values)
    .bind(&cols.jti)
    .bind(&cols.root_jti)
    .bind(&cols.caveat_count)
    .bind(&cols.pending_id)
    .bind(&cols.decided_by)
    .bind(&cols.intent_summary)
    .bind(&cols.latency_ms)
    .bind(&cols.remote_ip)
    .bind(&cols.upstream_status)
    .bind(&cols.requires_step_up)
    .bind(&cols.elevation_id)
    .bind(&cols.prev_hash)
    .bind(&cols.hash)
    .bind(&cols.seq)
    .fetch_all(&mut **tx)
    .await
}

/// The heads a batch moved, as column arrays: chain key, hash, seq and row id of each.
struct MovedHeads {
    keys: Vec<String>,
    hashes: Vec<String>,
    seqs: Vec<i64>,
    ids: Vec<i64>,
}

impl MovedHeads {
    /// The head of each chain: the row of its highest seq in this batch.
    fn new(rows: &[(String, i64, i64)], heads: &BTreeMap<String, Head>) -> Self {
        let mut head_ids: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for (key, seq, id) in rows {
            let slot = head_ids.entry(key.as_str()).or_insert((*seq, *id));
            if *seq >= slot.0 {
                *slot = (*seq, *id);
            }
        }
        let mut moved = Self {
            keys: Vec::new(),
            hashes: Vec::new(),
            seqs: Vec::new(),
            ids: Vec::new(),
        };
        for (key, (seq, id)) in head_ids {
            if let Some(head) = heads.get(key) {
                moved.keys.push(key.to_owned());
                moved.hashes.push(head.hash.clone());
                moved.seqs.push(seq);
                moved.ids.push(id);
            }
        }
        moved
    }

    async fn write(&self, tx: &mut Transaction<'static, Postgres>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE audit_chain_heads AS h SET head_hash = u.hash, head_seq = u.seq, \
             head_id = u.id, updated_at = now() \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u(tenant, hash, seq, id) \
             WHERE h.tenant = u.tenant",
        )
        .bind(&self.keys)
        .bind(&self.hashes)
        .bind(&self.seqs)
        .bind(&self.ids)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// A signed checkpoint of every moved head.
    async fn sign(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        signer: &Signer,
    ) -> Result<(), sqlx::Error> {
        let ts = Timestamp::now();
        let sigs: Vec<String> = self
            .keys
            .iter()
            .zip(&self.seqs)
            .zip(&self.hashes)
            .map(|((key, seq), hash)| signer.sign(&chain_anchor::message(key, *seq, hash, ts)))
            .collect();
        sqlx::query(
            "INSERT INTO audit_checkpoints (tenant, seq, head_hash, head_id, ts, key_id, signature) \
             SELECT t, s, h, i, $5, $6, sig \
             FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $7::text[]) \
               AS u(t, s, h, i, sig)",
        )
        .bind(&self.keys)
        .bind(&self.seqs)
        .bind(&self.hashes)
        .bind(&self.ids)
        .bind(ts.to_offset_datetime())
        .bind(signer.key_id())
        .bind(&sigs)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// One signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Chain key.
    pub tenant: String,
    /// Head seq.
    pub seq: i64,
    /// Head hash.
    pub head_hash: String,
    /// Head row id.
    pub head_id: Option<i64>,
    /// Signing time (part of the signed message).
    pub ts: Timestamp,
    /// Which key signed.
    pub key_id: String,
    /// Ed25519 signature, base64.
    pub signature: String,
}

impl Checkpoint {
    /// The bytes the signature covers.
    pub fn message(&self) -> Vec<u8> {
        chain_anchor::message(&self.tenant, self.seq, &self.head_hash, self.ts)
    }
}

/// Checkpoints newest first, optionally of one chain.
pub async fn checkpoints(
    pool: &PgPool,
    key: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Checkpoint>, sqlx::Error> {
    type Row = (
        String,
        i64,
        String,
        Option<i64>,
        OffsetDateTime,
        String,
        String,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT tenant, seq, head_hash, head_id, ts, key_id, signature FROM audit_checkpoints \
         WHERE ($1::text IS NULL OR tenant = $1) ORDER BY id DESC LIMIT $2 OFFSET $3",
    )
    .bind(key)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(tenant, seq, head_hash, head_id, ts, key_id, signature)| Checkpoint {
                tenant,
                seq,
                head_hash,
                head_id,
                ts: ts.into(),
                key_id,
                signature,
            },
        )
        .collect())
}

async fn lock_heads(
    tx: &mut Transaction<'static, Postgres>,
    keys: &[String],
) -> Result<BTreeMap<String, Head>, sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_chain_heads (tenant, head_hash) SELECT unnest($1::text[]), '' \
         ON CONFLICT (tenant) DO NOTHING",
    )
    .bind(keys)
    .execute(&mut **tx)
    .await?;
    // ORDER BY: every writer locks heads in the same order, so two replicas never deadlock.
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT tenant, head_hash, head_seq FROM audit_chain_heads \
         WHERE tenant = ANY($1) ORDER BY tenant FOR UPDATE",
    )
    .bind(keys)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(key, hash, seq)| (key, Head { hash, seq }))
        .collect())
}

/// The columns [`StoredRow`] reads, as a literal for `concat!`.
macro_rules! event_columns {
    () => {
        "id, ts, event_name, schema_version, decision, check_stage, reason, \
         COALESCE(tenant, ''), agent_id, session_id, tool, arg_keys, arg_values, \
         capability_token_id, COALESCE(root_capability_token_id, ''), \
         COALESCE(caveat_count, 0), pending_id, decided_by, intent_summary, latency_ms, \
         remote_ip, upstream_status, requires_step_up, COALESCE(elevation_id, ''), \
         COALESCE(prev_hash, ''), hash, seq"
    };
}

/// One stored row: id, event, chain columns.
#[derive(Debug, Clone)]
pub struct StoredRow {
    /// Row id.
    pub id: i64,
    /// The event as its columns give it back.
    pub event: AuditEvent,
    /// `prev_hash` ("" for NULL).
    pub prev_hash: String,
    /// `hash`.
    pub hash: String,
    /// `seq` (None on rows the Go gateway wrote).
    pub seq: Option<i64>,
}

type Json = sqlx::types::Json<serde_json::Value>;

#[derive(sqlx::FromRow)]
struct RawRow {
    id: i64,
    ts: OffsetDateTime,
    event_name: String,
    schema_version: String,
    decision: String,
    check_stage: String,
    reason: String,
    tenant: String,
    agent_id: String,
    session_id: String,
    tool: String,
    arg_keys: Option<Json>,
    arg_values: Option<Json>,
    capability_token_id: String,
    root: String,
    caveat_count: i32,
    pending_id: String,
    decided_by: String,
    intent_summary: String,
    latency_ms: i64,
    remote_ip: String,
    upstream_status: i32,
    requires_step_up: bool,
    elevation_id: String,
    prev_hash: String,
    hash: String,
    seq: Option<i64>,
}

impl From<RawRow> for StoredRow {
    fn from(r: RawRow) -> Self {
        let arg_keys = match r.arg_keys {
            Some(sqlx::types::Json(serde_json::Value::Array(a))) => a
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let arg_values = match r.arg_values {
            Some(sqlx::types::Json(serde_json::Value::Object(m))) => Some(m),
            _ => None,
        };
        Self {
            id: r.id,
            event: AuditEvent {
                ts: Timestamp::from(r.ts),
                event: r.event_name,
                schema_version: r.schema_version,
                decision: r.decision.into(),
                check: r.check_stage.into(),
                reason: r.reason,
                tenant: r.tenant,
                agent_id: r.agent_id,
                session_id: r.session_id,
                tool: r.tool,
                arg_keys,
                arg_values,
                capability_token_id: r.capability_token_id,
                root_capability_token_id: r.root,
                caveat_count: i64::from(r.caveat_count),
                pending_id: r.pending_id,
                decided_by: r.decided_by,
                intent_summary: r.intent_summary,
                latency_ms: r.latency_ms,
                remote_ip: r.remote_ip,
                upstream_status: i64::from(r.upstream_status),
                requires_step_up: r.requires_step_up,
                elevation_id: r.elevation_id,
                trace: None,
            },
            prev_hash: r.prev_hash,
            hash: r.hash,
            seq: r.seq,
        }
    }
}

fn raw_row(row: &sqlx::postgres::PgRow) -> Result<RawRow, sqlx::Error> {
    use sqlx::Row as _;
    Ok(RawRow {
        id: row.try_get(0)?,
        ts: row.try_get(1)?,
        event_name: row.try_get(2)?,
        schema_version: row.try_get(3)?,
        decision: row.try_get(4)?,
        check_stage: row.try_get(5)?,
        reason: row.try_get(6)?,
        tenant: row.try_get(7)?,
        agent_id: row.try_get(8)?,
        session_id: row.try_get(9)?,
        tool: row.try_get(10)?,
        arg_keys: row.try_get(11)?,
        arg_values: row.try_get(12)?,
        capability_token_id: row.try_get(13)?,
        root: row.try_get(14)?,
        caveat_count: row.try_get(15)?,
        pending_id: row.try_get(16)?,
        decided_by: row.try_get(17)?,
        intent_summary: row.try_get(18)?,
        latency_ms: row.try_get(19)?,
        remote_ip: row.try_get(20)?,
        upstream_status: row.try_get(21)?,
        requires_step_up: row.try_get(22)?,
        elevation_id: row.try_get(23)?,
        prev_hash: row.try_get(24)?,
        hash: row.try_get(25)?,
        seq: row.try_get(26)?,
    })
}

/// Filters of `GET /v1/admin/audit` (COMPATIBILITY.md §2.4), all optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `ts >= from`.
    pub from: Option<Timestamp>,
    /// `ts <= to`.
    pub to: Option<Timestamp>,
    /// Chain key scope (`tenant`, "" tenant as `default`).
    pub tenant: Option<String>,
    /// Agent.
    pub agent_id: Option<String>,
    /// Tool.
    pub tool: Option<String>,
    /// Decision.
    pub decision: Option<String>,
    /// Check stage.
    pub check: Option<String>,
    /// Token id.
    pub jti: Option<String>,
    /// Elevation id.
    pub elevation_id: Option<String>,
    /// Keyset cursor: only rows with `id < before_id`.
    pub before_id: Option<i64>,
    /// One row by id (the runbook's `?id=<broken_id>`).
    pub id: Option<i64>,
}

const FILTER: &str = "($1::timestamptz IS NULL OR ts >= $1) AND ($2::timestamptz IS NULL OR ts <= $2) \
     AND ($3::text IS NULL OR COALESCE(tenant, 'default') = $3) \
     AND ($4::text IS NULL OR agent_id = $4) AND ($5::text IS NULL OR tool = $5) \
     AND ($6::text IS NULL OR decision = $6) AND ($7::text IS NULL OR check_stage = $7) \
     AND ($8::text IS NULL OR capability_token_id = $8) \
     AND ($9::text IS NULL OR elevation_id = $9) AND ($10::bigint IS NULL OR id < $10) \
     AND ($11::bigint IS NULL OR id = $11)";

fn bind_filter<'q>(
    q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    f: &'q Filter,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    q.bind(f.from.map(Timestamp::to_offset_datetime))
        .bind(f.to.map(Timestamp::to_offset_datetime))
        .bind(f.tenant.as_deref().map(audit::chain_key))
        .bind(f.agent_id.as_deref())
        .bind(f.tool.as_deref())
        .bind(f.decision.as_deref())
        .bind(f.check.as_deref())
        .bind(f.jti.as_deref())
        .bind(f.elevation_id.as_deref())
        .bind(f.before_id)
        .bind(f.id)
}

/// Rows matching `f`, newest first (by id: the order rows were chained in).
pub async fn query(
    pool: &PgPool,
    f: &Filter,
    limit: i64,
    offset: i64,
) -> Result<Vec<StoredRow>, sqlx::Error> {
    let sql = sqlx::AssertSqlSafe(format!(
        concat!(
            "SELECT ",
            event_columns!(),
            " FROM audit_events WHERE {} ORDER BY id DESC LIMIT $12 OFFSET $13"
        ),
        FILTER
    ));
    let rows = bind_filter(sqlx::query(sql), f)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| raw_row(r).map(StoredRow::from))
        .collect()
}

/// How many rows match `f`.
pub async fn count(pool: &PgPool, f: &Filter) -> Result<i64, sqlx::Error> {
    use sqlx::Row as _;
    let sql = sqlx::AssertSqlSafe(format!("SELECT count(*) FROM audit_events WHERE {FILTER}"));
    bind_filter(sqlx::query(sql), f)
        .fetch_one(pool)
        .await?
        .try_get(0)
}

/// Starts a new chain segment for `key` after an investigated break (runbook, "Re-baseline"):
/// appends a marker event (reason = `note`) whose `prev_hash` is empty, so verification
/// starts from it; the rows before it stay queryable for forensics. Returns the marker id.
pub async fn rebaseline(pool: &PgPool, key: &str, note: &str) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let heads = lock_heads(&mut tx, &[key.to_owned()]).await?;
    let seq = heads.get(key).map_or(0, |h| h.seq) + 1;
    let mut e = AuditEvent::new(Timestamp::now(), audit::Decision::Allow, REBASELINE_TOOL);
    e.tenant = if key == audit::DEFAULT_CHAIN {
        String::new()
    } else {
        key.to_owned()
    };
    e.reason = note.to_owned();
    let hash = e.chain_hash("");
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_events (ts, event_name, schema_version, decision, tool, reason, \
         tenant, prev_hash, hash, seq) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9) \
         RETURNING id",
    )
    .bind(e.ts.to_offset_datetime())
    .bind(&e.event)
    .bind(&e.schema_version)
    .bind(e.decision.as_str())
    .bind(&e.tool)
    .bind(&e.reason)
    .bind(nullable(&e.tenant))
    .bind(&hash)
    .bind(seq)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE audit_chain_heads SET head_hash = $2, head_seq = $3, head_id = $4, \
         updated_at = now() WHERE tenant = $1",
    )
    .bind(key)
    .bind(&hash)
    .bind(seq)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

mod walk;

pub use walk::{Verification, verify};
