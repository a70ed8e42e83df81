//! The streaming verifier of one chain: rows a page at a time in id order through the shared
//! [`ChainWalker`], then the gap (deleted or reordered rows) and head (truncated chain, rows
//! beyond the head) checks only the database can make.

use sqlx::PgPool;
use time::OffsetDateTime;

use intentgate_shared::audit::{self, ChainBreak, ChainWalker, ChainedEvent};
use intentgate_shared::timestamp::Timestamp;

use super::{REBASELINE_TOOL, StoredRow, raw_row};

/// The result of walking a chain (COMPATIBILITY.md §8.4 plus seq and head checks).
#[derive(Debug, Clone)]
pub struct Verification {
    /// Rows verified.
    pub verified: u64,
    /// Rows without a hash.
    pub skipped: u64,
    /// The first break: row id, its ts, and the break.
    pub broken: Option<(i64, Timestamp, ChainBreak)>,
    /// The chain head's row id and update time, when the chain exists.
    pub head: Option<(Option<i64>, Timestamp)>,
    /// The re-baseline marker the walk started from, if the chain was re-baselined.
    pub baseline_id: Option<i64>,
}

/// Rows per page of the verifier (it never holds more).
const VERIFY_PAGE: i64 = 2000;

/// Walks chain `key` in id order within `[from, to]`, a page at a time. Without a `to`
/// bound the last row is compared with the chain head, which catches deleted newest rows.
pub async fn verify(
    pool: &PgPool,
    key: &str,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<Verification, sqlx::Error> {
    let baseline_id: Option<i64> = sqlx::query_scalar(
        "SELECT max(id) FROM audit_events WHERE COALESCE(tenant, 'default') = $1 \
         AND tool = $2 AND prev_hash IS NULL AND seq IS NOT NULL",
    )
    .bind(key)
    .bind(REBASELINE_TOOL)
    .fetch_one(pool)
    .await?;
    let start_after = baseline_id.map_or(0, |id| id - 1);
    let Walked {
        walker,
        last,
        broken_row,
    } = walk_rows(pool, key, start_after, from, to).await?;
    let missing_seq = walker.last_seq().map(|s| s + 1);
    let mut walk = walker.finish();
    // A gap is a deletion unless the missing row sits elsewhere in the table: then the rows
    // were reordered.
    if let (Some(b), Some(seq)) = (walk.broken.as_mut(), missing_seq)
        && b.reason == audit::DELETED_ROWS
    {
        let elsewhere: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM audit_events WHERE COALESCE(tenant, 'default') = $1 AND seq = $2",
        )
        .bind(key)
        .bind(seq)
        .fetch_optional(pool)
        .await?;
        if elsewhere.is_some() {
            b.reason = audit::REORDERED_ROWS;
        }
    }
    let head: Option<(String, i64, Option<i64>, OffsetDateTime)> = sqlx::query_as(
        "SELECT head_hash, head_seq, head_id, updated_at FROM audit_chain_heads WHERE tenant = $1",
    )
    .bind(key)
    .fetch_optional(pool)
    .await?;
    let mut out = Verification {
        verified: walk.verified,
        skipped: walk.skipped,
        broken: None,
        head: head
            .as_ref()
            .map(|(_, _, id, at)| (*id, Timestamp::from(*at))),
        baseline_id,
    };
    if let (Some(b), Some((id, ts))) = (walk.broken, broken_row) {
        out.broken = Some((id, ts, b));
        return Ok(out);
    }
    // Without an upper bound the last row must be the head: this catches deleted newest rows.
    if let (None, Some((head_hash, head_seq, _, _))) = (to, &head) {
        out.broken = head_break(head_hash, *head_seq, last.as_ref());
    }
    Ok(out)
}

/// The last hashed row a walk passed.
struct LastRow {
    id: i64,
    seq: Option<i64>,
    ts: Timestamp,
    hash: String,
}

/// What [`walk_rows`] saw.
struct Walked {
    walker: ChainWalker,
    /// The last hashed row, for the comparison with the head.
    last: Option<LastRow>,
    /// Id and time of the row the walk stopped at.
    broken_row: Option<(i64, Timestamp)>,
}

/// Walks chain `key` from the row after `after` in id order within `[from, to]`, a page at a
/// time, stopping at the first break.
async fn walk_rows(
    pool: &PgPool,
    key: &str,
    mut after: i64,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<Walked, sqlx::Error> {
    let mut walker = ChainWalker::default();
    let mut last = None;
    loop {
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM audit_events WHERE COALESCE(tenant, 'default') = $1 AND id > $2 \
             AND ($3::timestamptz IS NULL OR ts >= $3) AND ($4::timestamptz IS NULL OR ts <= $4) \
             ORDER BY id LIMIT $5"
        ))
        .bind(key)
        .bind(after)
        .bind(from.map(Timestamp::to_offset_datetime))
        .bind(to.map(Timestamp::to_offset_datetime))
        .bind(VERIFY_PAGE)
        .fetch_all(pool)
        .await?;
        let n = rows.len();
        for r in &rows {
            let StoredRow {
                id,
                event,
                prev_hash,
                hash,
                seq,
            } = StoredRow::from(raw_row(r)?);
            after = id;
            let ts = event.ts;
            let chained = ChainedEvent {
                event,
                prev_hash,
                hash,
            };
            if !walker.step(&chained, seq) {
                return Ok(Walked {
                    walker,
                    last,
                    broken_row: Some((id, ts)),
                });
            }
            if !chained.hash.is_empty() {
                last = Some(LastRow {
                    id,
                    seq,
                    ts,
                    hash: chained.hash,
                });
            }
        }
        if (n as i64) < VERIFY_PAGE {
            return Ok(Walked {
                walker,
                last,
                broken_row: None,
            });
        }
    }
}

/// The break, if the last walked row is not the recorded head (`head_hash` "" = no head yet).
fn head_break(
    head_hash: &str,
    head_seq: i64,
    last: Option<&LastRow>,
) -> Option<(i64, Timestamp, ChainBreak)> {
    let last_hash = last.map_or("", |r| r.hash.as_str()).to_owned();
    let reason = match last.map(|r| r.seq) {
        _ if head_hash.is_empty() || head_hash == last_hash => None,
        None => Some(audit::TRUNCATED),
        Some(Some(seq)) if seq < head_seq => Some(audit::TRUNCATED),
        Some(Some(seq)) if seq > head_seq => Some(audit::BEYOND_HEAD),
        Some(_) => Some(audit::HEAD_MISMATCH),
    }?;
    let (id, ts) = last.map_or((0, Timestamp::from_unix_micros(0)), |r| (r.id, r.ts));
    Some((
        id,
        ts,
        ChainBreak {
            index: 0,
            stored_hash: last_hash,
            expected_hash: head_hash.to_owned(),
            reason,
        },
    ))
}
