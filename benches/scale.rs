//! Scale-out benchmark: the same load on 1, 2 and 3 `tocsin serve` processes sharing one
//! PostgreSQL database, and on SQLite (one process), in one markdown table for the README.
//!
//! ```text
//! cargo bench --bench scale -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! cargo bench --bench scale -- --postgres URL --processes 1,3 --runs 500 --seconds 5
//! ```
//!
//! For each configuration, on a fresh database with every process started (role `all`):
//! 1. **Engine**: `--runs` runs of `--steps` built-in `noop` steps are queued in one
//!    transaction (and the processes woken by NOTIFY); steps per second from the engine's
//!    own timestamps, first run started → last run finished.
//! 2. **Ingestion**: `--connections` clients in a closed loop post TheHive alerts in
//!    requests of `--batch` (unique alerts, so every one opens a case and is audited),
//!    round-robin over the processes, for `--seconds`; alerts/s and request latency.
//!
//! Every figure is for committed, audited work. CPU is read from `/proc`: the Tocsin
//! processes together, and the whole machine (PostgreSQL, the load generator and any
//! other work on it); the 1-minute load average is taken before each configuration.

use anyhow::{bail, Context, Result};
use chrono::NaiveDateTime;
use clap::Parser;
use diesel::prelude::*;
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tocsin::db::schema::playbook_runs;

#[path = "support/mod.rs"]
mod support;
use support::{load_average, ms, percentile, BenchDb, CpuSnapshot, Server};

#[derive(Parser, Debug)]
#[command(about = "Scale-out benchmark: 1..N processes on PostgreSQL, and SQLite")]
struct Args {
    /// PostgreSQL admin URL; a database is created beside it for each configuration.
    #[arg(long, env = "TOCSIN_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// Process counts to measure on PostgreSQL.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    processes: Vec<usize>,
    /// Skip the SQLite row.
    #[arg(long)]
    no_sqlite: bool,
    /// Runs queued for the engine phase.
    #[arg(long, default_value_t = 2_000)]
    runs: usize,
    /// `noop` steps per run.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Seconds of ingestion load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent ingestion clients.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Alerts per ingestion request.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Accepted for `cargo bench` compatibility.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> ExitCode {
    support::exit_code("scale", run(&Args::parse()))
}

/// One configuration's figures.
struct Row {
    backend: String,
    processes: usize,
    load_before: f64,
    steps_per_s: f64,
    engine_cpu: f64,
    engine_machine: f64,
    alerts_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    refused: usize,
    ingest_cpu: f64,
    ingest_machine: f64,
}

fn run(args: &Args) -> Result<()> {
    if args.runs == 0 || args.steps == 0 || args.batch == 0 || args.connections == 0 {
        bail!("--runs, --steps, --batch and --connections must be at least 1");
    }
    let mut rows = Vec::new();
    if !args.no_sqlite {
        rows.push(measure(args, None, 1)?);
    }
    if let Some(url) = &args.postgres {
        for &n in &args.processes {
            rows.push(measure(args, Some(url), n)?);
        }
    } else {
        eprintln!("no --postgres URL: PostgreSQL rows skipped");
    }
    println!(
        "| backend | processes | load avg before | engine steps/s | engine: Tocsin CPU / machine busy | \
         ingest alerts/s | ingest p50 / p99 ms | 503s | ingest: Tocsin CPU / machine busy |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.2} cores / {:.0}% | {:.0} | {:.1} / {:.1} | {} | {:.2} cores / {:.0}% |",
            r.backend,
            r.processes,
            r.load_before,
            r.steps_per_s,
            r.engine_cpu,
            r.engine_machine * 100.0,
            r.alerts_per_s,
            r.p50_ms,
            r.p99_ms,
            r.refused,
            r.ingest_cpu,
            r.ingest_machine * 100.0,
        );
    }
    Ok(())
}

/// CPU of several processes since their snapshots: (their cores together, machine busy).
fn cpu_since(before: &[CpuSnapshot], pids: &[u32]) -> (f64, f64) {
    let mut cores = 0.0;
    let mut machine = 0.0;
    for (b, pid) in before.iter().zip(pids) {
        let (server, _, busy) = CpuSnapshot::take(*pid).since(b);
        cores += server;
        machine = busy;
    }
    (cores, machine)
}

fn measure(args: &Args, postgres: Option<&String>, processes: usize) -> Result<Row> {
    let load_before = load_average();
    let db = BenchDb::create(postgres.map(String::as_str))?;
    let backend = if postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    eprintln!("{backend}, {processes} process(es): {}", db.describe());
    let dir = db.dir.path();
    db.prepare_noop(args.steps)?;
    let ingest_token = db.add_source("bench", "thehive", None)?;
    let servers: Vec<Server> = (0..processes)
        .map(|_| Server::start(&db, "warn", None, &[]))
        .collect::<Result<_>>()?;
    let pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
    let handle = tocsin::db::Db::open(&tocsin::config::DatabaseConfig {
        url: db.url.clone(),
        pool_size: 2,
        ..Default::default()
    })?;

    // Engine: queue the runs in one transaction, then wake every process.
    let before: Vec<CpuSnapshot> = pids.iter().map(|p| CpuSnapshot::take(*p)).collect();
    let runs = args.runs;
    support::queue_noop_runs(&handle, dir, runs)?;
    if postgres.is_some() {
        handle.read_sync(|conn| {
            diesel::sql_query("NOTIFY tocsin_runs, 'bench'")
                .execute(conn)
                .map_err(tocsin::db::DbError::Query)
        })?;
    }
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let done: i64 = handle.read_sync(|conn| {
            playbook_runs::table
                .filter(playbook_runs::status.eq_any(["succeeded", "failed", "cancelled"]))
                .count()
                .get_result(conn)
                .map_err(tocsin::db::DbError::Query)
        })?;
        if done as usize >= runs {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "runs did not finish: {done}/{runs}\n{}",
                servers[0].log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (engine_cpu, engine_machine) = cpu_since(&before, &pids);
    type Span = (Option<NaiveDateTime>, Option<NaiveDateTime>, String);
    let spans: Vec<Span> = handle.read_sync(|conn| {
        playbook_runs::table
            .select((
                playbook_runs::started_at,
                playbook_runs::finished_at,
                playbook_runs::status,
            ))
            .load(conn)
            .map_err(tocsin::db::DbError::Query)
    })?;
    if spans.iter().any(|s| s.2 != "succeeded") {
        bail!(
            "some benchmark runs did not succeed\n{}",
            servers[0].log_tail()
        );
    }
    let first = spans.iter().filter_map(|s| s.0).min().context("no start")?;
    let last = spans.iter().filter_map(|s| s.1).max().context("no end")?;
    let steps_per_s = (runs * args.steps) as f64 / (ms(last - first) / 1000.0);

    // Ingestion: closed loop over every process.
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(0usize));
    let before: Vec<CpuSnapshot> = pids.iter().map(|p| CpuSnapshot::take(*p)).collect();
    let started = Instant::now();
    let clients: Vec<_> = (0..args.connections)
        .map(|c| {
            let (stop, latencies, refused) = (stop.clone(), latencies.clone(), refused.clone());
            let bases = bases.clone();
            let token = ingest_token.clone();
            let batch = args.batch;
            std::thread::spawn(move || -> Result<()> {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()?;
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let body: Vec<Value> = (0..batch)
                        .map(|i| {
                            json!({
                                "type": "bench", "source": "scale",
                                "sourceRef": format!("c{c}-{n}-{i}"),
                                "title": format!("scale {c} {n} {i}"), "severity": 2,
                                "observables": [{ "dataType": "ip",
                                    "data": format!("10.{}.{}.{}", c, (n / 250) % 250, n % 250) }]
                            })
                        })
                        .collect();
                    let t = Instant::now();
                    let res = client
                        .post(format!(
                            "{}/api/v1/ingest/bench",
                            bases[(c + n) % bases.len()]
                        ))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()?;
                    let status = res.status();
                    let _ = res.bytes();
                    if status == 503 {
                        *refused.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                        std::thread::sleep(Duration::from_millis(100));
                    } else if status.is_success() {
                        latencies
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(t.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        bail!("ingestion answered {status}");
                    }
                    n += 1;
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(args.seconds));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join()
            .map_err(|_| anyhow::anyhow!("a client panicked"))??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (ingest_cpu, ingest_machine) = cpu_since(&before, &pids);
    let mut lat = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    lat.sort_by(f64::total_cmp);
    let alerts_per_s = (lat.len() * args.batch) as f64 / elapsed;
    let refused = *refused.lock().unwrap_or_else(|p| p.into_inner());
    drop(servers);
    Ok(Row {
        backend: backend.into(),
        processes,
        load_before,
        steps_per_s,
        engine_cpu,
        engine_machine,
        alerts_per_s,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        refused,
        ingest_cpu,
        ingest_machine,
    })
}
