//! The audit export: CSV and NDJSON that round-trip, and the row cap.

use super::*;

fn chained(i: i64, tenant: &str) -> AuditEvent {
    let mut e = AuditEvent::new(
        Timestamp::from_unix_micros(1_790_000_000_000_000 + i),
        Decision::Allow,
        "read_invoice",
    );
    e.tenant = tenant.into();
    e.reason = format!("a \"quoted\", comma reason\nwith a newline {i}");
    e.arg_keys = vec!["id".into(), "note".into()];
    e
}

#[sqlx::test(migrator = "crate::store::MIGRATOR")]
async fn audit_export_streams_csv_and_ndjson_that_round_trip(pool: sqlx::PgPool) {
    let h = Harness::with_store(Some(pool.clone()));
    let events: Vec<AuditEvent> = (0..30)
        .map(|i| chained(i, if i % 3 == 0 { "globex" } else { "acme" }))
        .collect();
    crate::store::audit::append(&pool, &events).await.unwrap();

    let (status, headers, body) = h
        .fetch("/v1/admin/audit/export?tenant=acme", "acme-token")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"intentgate-audit-acme-2"),
        "{disposition}"
    );
    assert!(disposition.ends_with("Z.csv\""), "{disposition}");
    let text = String::from_utf8(body).unwrap();
    // A minimal RFC 4180 reader: every record has the 22 columns, quotes and newlines intact.
    let records = parse_csv(&text);
    assert_eq!(records[0].len(), 22);
    assert_eq!(records[0][0], "ts");
    assert_eq!(records.len(), 1 + 20);
    assert!(records[1..].iter().all(|r| r.len() == 22 && r[6] == "acme"));
    assert_eq!(
        records[1][5],
        "a \"quoted\", comma reason\nwith a newline 29"
    );
    assert_eq!(records[1][10], "id;note");
    assert_eq!(records[1][20], "false");

    // NDJSON carries the chain columns: the export re-verifies without the database.
    let (_, headers, body) = h
        .fetch(
            "/v1/admin/audit/export?format=json&tenant=acme",
            "root-token",
        )
        .await;
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 20);
    let mut prev = String::new();
    for (line, e) in lines
        .iter()
        .rev()
        .zip(events.iter().filter(|e| e.tenant == "acme"))
    {
        assert_eq!(line["reason"], e.reason.as_str());
        assert_eq!(line["prev_hash"], prev.as_str());
        let hash = e.chain_hash(&prev);
        assert_eq!(line["hash"], hash.as_str());
        prev = hash;
    }

    // Tenant scope, bad format, and the foreign tenant.
    let (status, _, _) = h
        .fetch("/v1/admin/audit/export?format=xml", "root-token")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = h
        .fetch("/v1/admin/audit/export?tenant=globex", "acme-token")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = h.fetch("/v1/admin/audit/export", "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "crate::store::MIGRATOR")]
async fn audit_export_stops_at_the_row_cap_and_says_so(pool: sqlx::PgPool) {
    // 250,000 rows, written directly (the cap is about paging, not chaining).
    sqlx::query(
        "INSERT INTO audit_events (ts, decision, tool, reason) \
         SELECT now(), 'allow', 'read_invoice', 'r' || g FROM generate_series(1, 250000) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    let h = Harness::with_store(Some(pool));
    let (status, headers, body) = h
        .fetch("/v1/admin/audit/export?format=json", "root-token")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-intentgate-row-cap"], "200000");
    let text = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 200_001);
    let trailer: Value = serde_json::from_str(lines[200_000]).unwrap();
    assert_eq!(trailer["truncated"], true);
    assert_eq!(trailer["row_cap"], 200_000);
    let next = trailer["next_before_id"].as_i64().unwrap();
    assert_eq!(next, 50_001);
    let (_, _, csv) = h.fetch("/v1/admin/audit/export", "root-token").await;
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(csv.lines().count(), 1 + 200_000 + 1);
    assert!(
        csv.lines()
            .last()
            .unwrap()
            .starts_with("# truncated: row cap 200000 reached; continue with before_id=50001")
    );
    // The next page continues where the trailer says.
    let (_, _, rest) = h
        .fetch(
            &format!("/v1/admin/audit/export?format=json&before_id={next}"),
            "root-token",
        )
        .await;
    assert_eq!(String::from_utf8(rest).unwrap().lines().count(), 50_000);
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    records
}
