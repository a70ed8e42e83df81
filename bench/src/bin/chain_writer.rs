//! Chained audit rows persisted per second through the real writer, and the commit latency
//! of one full batch over TCP and over the Unix socket (sqlx does not set TCP_NODELAY: this
//! shows whether large batches stall on Nagle's algorithm).
//!
//! `cargo run --release -p intentgate-bench --bin chain_writer -- [rows] [socket-dir]`
//! (`DATABASE_URL`: the server; a throwaway database is created and dropped).

#![expect(
    clippy::unwrap_used,
    reason = "a harness: a failed set-up should stop it loudly"
)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use intentgate_controlplane::chain_writer::{self, MAX_BATCH, WriterStats};
use intentgate_controlplane::store::{self, audit};
use intentgate_shared::audit::{AuditEvent, Decision};
use intentgate_shared::audit_sink::AuditSink as _;
use intentgate_shared::timestamp::Timestamp;
use sqlx::Connection as _;

fn event(i: u64) -> AuditEvent {
    let mut e = AuditEvent::new(Timestamp::now(), Decision::Allow, "read_invoice");
    e.tenant = ["acme", "globex", "initech", ""][(i % 4) as usize].into();
    e.agent_id = format!("agent-{}", i % 64);
    e.reason = "allowed by policy".into();
    e.arg_keys = vec!["id".into()];
    e.capability_token_id = format!("jti-{}", i % 1000);
    e.caveat_count = 4;
    e.latency_ms = 1;
    e.remote_ip = "127.0.0.1:50000".into();
    e
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: u64 = args.first().map_or(200_000, |v| v.parse().unwrap());
    let socket_dir = args.get(1).cloned();
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("ig_bench_writer_{}", std::process::id());
    let (base, _) = server.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let pool = store::connect(&url, 5).await.unwrap();
        store::migrate(&pool).await.unwrap();

        // 1. The writer, fed the way the drain thread feeds it (batches of 512 from a thread).
        let stats = Arc::new(WriterStats::default());
        let (mut sink, task) = chain_writer::start(pool.clone(), Arc::clone(&stats), Default::default());
        let writer = tokio::spawn(task);
        let started = Instant::now();
        let feeder = std::thread::spawn(move || {
            let mut i = 0;
            while i < rows {
                let mut batch: Vec<AuditEvent> = (i..(i + 512).min(rows)).map(event).collect();
                i += batch.len() as u64;
                sink.write_batch(&mut batch);
            }
        });
        while stats.persisted.load(Ordering::Relaxed) < rows {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        feeder.join().unwrap();
        writer.await.unwrap();
        println!(
            "writer: {rows} chained rows in {secs:.2} s = {:.0} rows/s, {} transactions, {} failures",
            rows as f64 / secs,
            stats.batches.load(Ordering::Relaxed),
            stats.failures.load(Ordering::Relaxed)
        );
        let v = audit::verify(&pool, "acme", None, None).await.unwrap();
        assert!(v.broken.is_none(), "{:?}", v.broken);
        println!("verify acme: ok, {} rows", v.verified);

        // 2. Commit latency of full batches, TCP then the Unix socket.
        let mut transports = vec![("tcp", pool.clone())];
        if let Some(dir) = &socket_dir {
            let opts = store::connect_options(&url).unwrap().socket(dir);
            let unix = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await
                .unwrap();
            transports.push(("unix", unix));
        }
        for (label, pool) in transports {
            let mut hist = Histogram::<u64>::new(3).unwrap();
            for b in 0..100u64 {
                let batch: Vec<AuditEvent> = (0..MAX_BATCH as u64).map(|i| event(b * 10_000 + i)).collect();
                let t = Instant::now();
                audit::append(&pool, &batch).await.unwrap();
                hist.record(t.elapsed().as_micros() as u64).unwrap();
            }
            let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "append of {MAX_BATCH} rows over {label}: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                ms(0.5),
                ms(0.9),
                ms(0.99),
                hist.max() as f64 / 1000.0
            );
        }
        pool.close().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
            .execute(&mut admin)
            .await
            .unwrap();
    });
}
