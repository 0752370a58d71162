//! Approval benchmark: decision → next step started. Starts the real `tocsin serve` on a
//! fresh database, then `--gates` times: starts a run of a playbook whose first step is a
//! gated `http.request` (to a local endpoint in this process) followed by a `noop`, waits
//! for the gate, approves it through `POST /api/v1/approvals/{id}/decision`, and measures
//! from the moment the decision's answer arrives to
//!
//! 1. the gated call reaching the local endpoint (the approved step started its action),
//! 2. the next step's `started_at` as recorded by the server.
//!
//! Client and server share the machine's clock.
//!
//! ```text
//! cargo bench --bench approvals                        # SQLite, 200 gates
//! cargo bench --bench approvals -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! ```

use anyhow::{bail, Context, Result};
use chrono::NaiveDateTime;
use clap::Parser;
use diesel::prelude::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tocsin::db::schema::{approval_gates, step_runs};

#[path = "support/mod.rs"]
mod support;
use support::{ms, percentile, BenchDb, Server};

#[derive(Parser, Debug)]
#[command(about = "Approval decision → next step benchmark")]
struct Args {
    /// Gates decided, one after another.
    #[arg(long, default_value_t = 200)]
    gates: usize,
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
    support::exit_code("approval", run(&Args::parse()))
}

/// A local HTTP endpoint that answers `{}` and records when each request arrived.
fn endpoint() -> Result<(String, Arc<Mutex<Vec<NaiveDateTime>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    let hits: Arc<Mutex<Vec<NaiveDateTime>>> = Arc::default();
    let h = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let h = h.clone();
            std::thread::spawn(move || {
                let Ok(mut out) = conn.try_clone() else {
                    return;
                };
                let mut input = BufReader::new(conn);
                loop {
                    let mut length = 0usize;
                    let mut first = true;
                    loop {
                        let mut line = String::new();
                        match input.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if first {
                            h.lock().unwrap().push(chrono::Utc::now().naive_utc());
                            first = false;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; length];
                    if input.read_exact(&mut body).is_err() {
                        return;
                    }
                    let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
                    if out.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok((base, hits))
}

fn run(args: &Args) -> Result<()> {
    if args.gates == 0 {
        bail!("--gates must be at least 1");
    }
    let db = BenchDb::create(args.postgres.as_deref())?;
    eprintln!("database: {}", db.describe());
    let (target, hits) = endpoint()?;
    let dir = db.dir.path();
    std::fs::create_dir_all(dir.join("playbooks"))?;
    std::fs::create_dir_all(dir.join("integrations"))?;
    std::fs::write(
        dir.join("playbooks/bench-gate.yaml"),
        format!(
            "id: bench-gate\nversion: 1\ndescription: Benchmark, one gate.\ntrigger: {{ on: manual }}\nsteps:\n\
             \x20 - id: block\n    uses: http.request\n    with: {{ method: POST, url: \"{target}/block\", body: {{ ip: 192.0.2.1 }} }}\n\
             \x20   approval: {{ roles: [responder], timeout: 1h, message: Block 192.0.2.1? }}\n\
             \x20 - {{ id: after, uses: noop, with: {{ value: done }} }}\n"
        ),
    )?;
    let out = db.tocsin().arg("migrate").output()?;
    if !out.status.success() {
        bail!("migrate failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let starter = db.add_user_with_token("starter", "analyst", None)?;
    // With an address, so each gate also queues an e-mail in its transaction.
    let approver = db.add_user_with_token("approver", "responder", Some("approver@example.org"))?;
    let handle = tocsin::db::Db::open(&tocsin::config::DatabaseConfig {
        url: db.url.clone(),
        pool_size: 2,
        ..Default::default()
    })?;
    let server = Server::start(&db, &args.server_log_level, None, &[])?;
    eprintln!("server: pid {} at {}", server.pid, server.base);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    let mut to_action = Vec::with_capacity(args.gates);
    let mut to_next = Vec::with_capacity(args.gates);
    let mut decision_rtt = Vec::with_capacity(args.gates);
    for _ in 0..args.gates {
        let res = client
            .post(format!("{}/api/v1/playbooks/bench-gate/runs", server.base))
            .bearer_auth(&starter)
            .json(&json!({}))
            .send()?;
        if res.status() != 201 {
            bail!("starting a run: {} {}", res.status(), res.text()?);
        }
        let run = res.json::<Value>()?["id"].as_i64().context("run id")?;
        let gate = wait_gate(&handle, run)?;
        let calls_before = hits.lock().unwrap().len();
        let sent = Instant::now();
        let res = client
            .post(format!("{}/api/v1/approvals/{gate}/decision", server.base))
            .bearer_auth(&approver)
            .json(&json!({ "decision": "approve" }))
            .send()?;
        let decided = chrono::Utc::now().naive_utc();
        decision_rtt.push(sent.elapsed().as_secs_f64() * 1000.0);
        if res.status() != 200 {
            bail!("deciding: {} {}", res.status(), res.text()?);
        }
        let next = wait_step(&handle, run, "after")?;
        let called = {
            let h = hits.lock().unwrap();
            if h.len() <= calls_before {
                bail!("the approved call did not arrive");
            }
            h[calls_before]
        };
        to_action.push(ms(called - decided));
        to_next.push(ms(next - decided));
    }
    drop(server);
    for v in [&mut to_action, &mut to_next, &mut decision_rtt] {
        v.sort_by(f64::total_cmp);
    }
    let backend = if args.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let row = |name: &str, v: &[f64]| {
        println!(
            "| {name} ({} gates) | p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms |",
            args.gates,
            percentile(v, 0.5),
            percentile(v, 0.9),
            percentile(v, 0.99)
        );
    };
    println!("| approvals ({backend}) | figure |");
    println!("|---|---|");
    row("decision POST round trip", &decision_rtt);
    row("decision answered -> approved call arrives", &to_action);
    row("decision answered -> next step started", &to_next);
    Ok(())
}

/// Polls until run `run` has a pending gate; returns its id.
fn wait_gate(db: &tocsin::db::Db, run: i64) -> Result<i64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let id: Option<i64> = db.read_sync(|conn| {
            approval_gates::table
                .filter(approval_gates::run_id.eq(run))
                .filter(approval_gates::status.eq("pending"))
                .select(approval_gates::id)
                .first(conn)
                .optional()
                .map_err(tocsin::db::DbError::Query)
        })?;
        if let Some(id) = id {
            return Ok(id);
        }
        if Instant::now() > deadline {
            bail!("run {run} opened no gate");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Polls until step `step` of run `run` has started; returns when.
fn wait_step(db: &tocsin::db::Db, run: i64, step: &str) -> Result<NaiveDateTime> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started: Option<Option<NaiveDateTime>> = db.read_sync(|conn| {
            step_runs::table
                .filter(step_runs::run_id.eq(run))
                .filter(step_runs::step_id.eq(step))
                .select(step_runs::started_at)
                .first(conn)
                .optional()
                .map_err(tocsin::db::DbError::Query)
        })?;
        if let Some(Some(t)) = started {
            return Ok(t);
        }
        if Instant::now() > deadline {
            bail!("step {step} of run {run} did not start");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
