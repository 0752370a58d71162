//! Playbook engine benchmark: starts the real `tocsin serve` on a fresh database and
//! measures three things, printed as a markdown table for the README.
//!
//! ```text
//! cargo bench --bench engine                               # SQLite, 10,000 runs x 10 steps
//! cargo bench --bench engine -- --runs 2000 --postgres postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! 1. **Throughput**: `--runs` runs of a playbook of `--steps` built-in `noop` steps are
//!    queued in the database before the server starts; the server drives them all. Steps
//!    per second = steps / (first run started → last run finished), from the engine's own
//!    timestamps. Every step is a committed, audited transition.
//! 2. **Per-step overhead on an idle engine**: `--serial` runs started one after another
//!    through the API; a run's (finished − started) / steps is the engine's cost per step
//!    (the `noop` action itself does nothing).
//! 3. **Alert → first step**: `--alerts` alerts ingested one at a time through the
//!    ingestion API; the time from the moment the ingestion answer arrives (the alert is
//!    committed) to the moment the triggered run's first step starts, as recorded by the
//!    server. Client and server share the machine's clock.

use anyhow::{bail, Context, Result};
use chrono::NaiveDateTime;
use clap::Parser;
use diesel::prelude::*;
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tocsin::db::schema::{playbook_runs, step_runs};

#[path = "support/mod.rs"]
mod support;
use support::{ms, percentile, rss_kib, BenchDb, CpuSnapshot, Server};

#[derive(Parser, Debug)]
#[command(about = "Playbook engine benchmark")]
struct Args {
    /// Runs queued for the throughput phase.
    #[arg(long, default_value_t = 10_000)]
    runs: usize,
    /// `noop` steps per run.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Runs started one at a time for the per-step overhead.
    #[arg(long, default_value_t = 200)]
    serial: usize,
    /// Alerts ingested one at a time for alert → first step latency.
    #[arg(long, default_value_t = 200)]
    alerts: usize,
    /// Run on PostgreSQL: an admin URL; a database is created beside it and dropped.
    #[arg(long)]
    postgres: Option<String>,
    /// The server's log level.
    #[arg(long, default_value = "warn")]
    server_log_level: String,
    /// Accepted for `cargo bench` compatibility.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> ExitCode {
    support::exit_code("engine", run(&Args::parse()))
}

const ALERT_PLAYBOOK: &str = "id: bench-alert\nversion: 1\ndescription: Benchmark, one step per alert.\n\
trigger: { on: alert.ingested }\nsteps:\n  - { id: first, uses: noop, with: { value: \"${{ $.alerts[0].title }}\" } }\n";

fn run(args: &Args) -> Result<()> {
    if args.steps == 0 || args.runs == 0 {
        bail!("--runs and --steps must be at least 1");
    }
    let db = BenchDb::create(args.postgres.as_deref())?;
    eprintln!("database: {}", db.describe());
    let dir = db.dir.path();
    db.prepare_noop(args.steps)?;
    std::fs::write(dir.join("playbooks/bench-alert.yaml"), ALERT_PLAYBOOK)?;
    let ingest_token = db.add_source("bench", "thehive", None)?;
    let api_token = db.add_user_with_token("bench", "admin", None)?;

    // The backlog, written before the server starts.
    let handle = tocsin::db::Db::open(&tocsin::config::DatabaseConfig {
        url: db.url.clone(),
        pool_size: 2,
        ..Default::default()
    })?;
    let queued = Instant::now();
    let runs = args.runs;
    support::queue_noop_runs(&handle, dir, runs)?;
    eprintln!(
        "queued {runs} runs in {:.1} s",
        queued.elapsed().as_secs_f64()
    );

    let server = Server::start(&db, &args.server_log_level, None, &[])?;
    eprintln!("server: pid {} at {}", server.pid, server.base);
    let before = CpuSnapshot::take(server.pid);
    let mut peak_rss = 0u64;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let done: i64 = handle.read_sync(|conn| {
            playbook_runs::table
                .filter(playbook_runs::playbook_id.eq("bench-noop"))
                .filter(playbook_runs::status.eq_any(["succeeded", "failed", "cancelled"]))
                .count()
                .get_result(conn)
                .map_err(tocsin::db::DbError::Query)
        })?;
        peak_rss = peak_rss.max(rss_kib(server.pid).unwrap_or(0));
        if done as usize >= runs {
            break;
        }
        if Instant::now() > deadline {
            bail!("runs did not finish: {done}/{runs}\n{}", server.log_tail());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let cpu = CpuSnapshot::take(server.pid).since(&before);
    type Span = (Option<NaiveDateTime>, Option<NaiveDateTime>, String);
    let spans: Vec<Span> = handle.read_sync(|conn| {
        playbook_runs::table
            .filter(playbook_runs::playbook_id.eq("bench-noop"))
            .select((
                playbook_runs::started_at,
                playbook_runs::finished_at,
                playbook_runs::status,
            ))
            .load(conn)
            .map_err(tocsin::db::DbError::Query)
    })?;
    let failed = spans.iter().filter(|s| s.2 != "succeeded").count();
    if failed > 0 {
        bail!(
            "{failed} benchmark runs did not succeed\n{}",
            server.log_tail()
        );
    }
    let first = spans.iter().filter_map(|s| s.0).min().context("no start")?;
    let last = spans.iter().filter_map(|s| s.1).max().context("no end")?;
    let elapsed = ms(last - first) / 1000.0;
    let steps_total = (runs * args.steps) as f64;
    let steps_per_s = steps_total / elapsed;
    let stored_steps: i64 = handle.read_sync(|conn| {
        step_runs::table
            .count()
            .get_result(conn)
            .map_err(tocsin::db::DbError::Query)
    })?;
    if stored_steps as f64 != steps_total {
        bail!("expected {steps_total} step runs, found {stored_steps}");
    }

    // Per-step overhead on an idle engine.
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut per_step = Vec::with_capacity(args.serial);
    for _ in 0..args.serial {
        let res = client
            .post(format!("{}/api/v1/playbooks/bench-noop/runs", server.base))
            .bearer_auth(&api_token)
            .json(&json!({}))
            .send()?;
        if res.status() != 201 {
            bail!("starting a run: {} {}", res.status(), res.text()?);
        }
        let id = res.json::<Value>()?["id"].as_i64().context("run id")?;
        let (started, finished) = wait_run(&handle, id)?;
        per_step.push(ms(finished - started) / args.steps as f64);
    }
    per_step.sort_by(f64::total_cmp);

    // Alert accepted → first step started.
    let mut latency = Vec::with_capacity(args.alerts);
    for i in 0..args.alerts {
        let body = json!({
            "type": "bench", "source": "bench", "sourceRef": format!("bench-{i}-{}", std::process::id()),
            "title": format!("bench alert {i}"), "description": "benchmark", "severity": 2,
            "observables": [{ "dataType": "ip", "data": format!("10.9.{}.{}", i / 250, i % 250) }]
        });
        let res = client
            .post(format!("{}/api/v1/ingest/bench", server.base))
            .bearer_auth(&ingest_token)
            .json(&body)
            .send()?;
        let acked = chrono::Utc::now().naive_utc();
        if !res.status().is_success() {
            bail!("ingesting: {} {}", res.status(), res.text()?);
        }
        let answer: Value = res.json()?;
        let alert_id = answer["results"][0]["alert_id"]
            .as_i64()
            .context("alert id")?;
        let started = wait_first_step(&handle, alert_id)?;
        latency.push(ms(started - acked));
    }
    latency.sort_by(f64::total_cmp);
    drop(server);

    let backend = if args.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("| engine ({backend}) | figure |");
    println!("|---|---|");
    println!(
        "| {runs} runs x {} noop steps (backlog) | {:.0} steps/s, {:.0} runs/s, {:.1} s |",
        args.steps,
        steps_per_s,
        runs as f64 / elapsed,
        elapsed
    );
    println!(
        "| engine time per step at that rate | {:.3} ms (server CPU {:.2} cores, machine {:.0}% busy) |",
        1000.0 / steps_per_s,
        cpu.0,
        cpu.2 * 100.0
    );
    println!(
        "| server peak RSS during the backlog | {:.0} MiB |",
        peak_rss as f64 / 1024.0
    );
    println!(
        "| per-step overhead, idle engine ({} runs) | p50 {:.2} ms, p90 {:.2} ms |",
        args.serial,
        percentile(&per_step, 0.5),
        percentile(&per_step, 0.9)
    );
    println!(
        "| alert accepted -> first step started ({} alerts) | p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms |",
        args.alerts,
        percentile(&latency, 0.5),
        percentile(&latency, 0.9),
        percentile(&latency, 0.99)
    );
    Ok(())
}

/// Polls until run `id` ends; returns its start and end.
fn wait_run(db: &tocsin::db::Db, id: i64) -> Result<(NaiveDateTime, NaiveDateTime)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, started, finished): (String, Option<NaiveDateTime>, Option<NaiveDateTime>) =
            db.read_sync(|conn| {
                playbook_runs::table
                    .find(id)
                    .select((
                        playbook_runs::status,
                        playbook_runs::started_at,
                        playbook_runs::finished_at,
                    ))
                    .first(conn)
                    .map_err(tocsin::db::DbError::Query)
            })?;
        if let (Some(s), Some(f)) = (started, finished) {
            if status != "succeeded" {
                bail!("run {id} ended {status}");
            }
            return Ok((s, f));
        }
        if Instant::now() > deadline {
            bail!("run {id} did not finish");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Polls until the run triggered by `alert_id` has started its first step.
fn wait_first_step(db: &tocsin::db::Db, alert_id: i64) -> Result<NaiveDateTime> {
    let needle = format!("\"alert_id\":{alert_id},");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started: Option<Option<NaiveDateTime>> = db.read_sync(|conn| {
            step_runs::table
                .inner_join(playbook_runs::table)
                .filter(playbook_runs::playbook_id.eq("bench-alert"))
                .filter(playbook_runs::trigger_data.like(format!("%{needle}%")))
                .select(step_runs::started_at)
                .first(conn)
                .optional()
                .map_err(tocsin::db::DbError::Query)
        })?;
        if let Some(Some(t)) = started {
            return Ok(t);
        }
        if Instant::now() > deadline {
            bail!("no run started for alert {alert_id}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
