//! Dashboard benchmark: how long the dashboard's queries take on large tables. Fills a
//! fresh database with `--cases` cases spread over a year (80% acknowledged, half
//! resolved, five sources), a fifth as many finished playbook runs with one step each,
//! and 200 pending approvals, then times `dashboard::compute` for each window (24h, 7d,
//! 30d), `--repeat` times each, and prints the median and the slowest.
//!
//! ```text
//! cargo bench --bench dashboard                                  # SQLite, 1,000,000 cases
//! cargo bench --bench dashboard -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! ```

use anyhow::{Context, Result};
use clap::Parser;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use std::process::ExitCode;
use std::time::Instant;
use tocsin::dashboard::{self, Range};

#[path = "support/mod.rs"]
mod support;
use support::BenchDb;

#[derive(Parser, Debug)]
#[command(about = "Dashboard query benchmark")]
struct Args {
    /// Cases to create (spread evenly over the last 365 days).
    #[arg(long, default_value_t = 1_000_000)]
    cases: u64,
    /// Timed computations per window.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Run on PostgreSQL: an admin URL; a database is created beside it and dropped.
    #[arg(long)]
    postgres: Option<String>,
}

/// The seeding SQL: every row generated inside the database, in one transaction.
fn seed_sql(postgres: bool, cases: u64) -> String {
    let runs = (cases / 5).max(1);
    let year = 365 * 86_400u64;
    // `ago(expr)`: the timestamp `expr` seconds before now; `after(ts, expr)`: `expr`
    // seconds after `ts`.
    let (series_cases, series_runs, series_gates) = if postgres {
        (
            format!("FROM generate_series(1::bigint, {cases}) AS n(i)"),
            format!("FROM generate_series(1::bigint, {runs}) AS n(i)"),
            "FROM generate_series(1::bigint, 200) AS n(i)".to_string(),
        )
    } else {
        let cte = |limit: u64| {
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {limit})"
            )
        };
        (cte(cases), cte(runs), cte(200))
    };
    let ago = |e: &str| {
        if postgres {
            format!("((now() AT TIME ZONE 'UTC') - ({e}) * interval '1 second')")
        } else {
            format!("strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ({e}) || ' seconds')")
        }
    };
    let after = |ts: &str, e: &str| {
        if postgres {
            format!("({ts} + ({e}) * interval '1 second')")
        } else {
            format!("strftime('%Y-%m-%d %H:%M:%f', {ts}, '+' || ({e}) || ' seconds')")
        }
    };
    let created = ago(&format!("i * {year} / {cases}"));
    let (cases_prefix, cases_from) = if postgres {
        (String::new(), series_cases)
    } else {
        (series_cases, "FROM n".to_string())
    };
    let (runs_prefix, runs_from) = if postgres {
        (String::new(), series_runs)
    } else {
        (series_runs, "FROM n".to_string())
    };
    let (gates_prefix, gates_from) = if postgres {
        (String::new(), series_gates)
    } else {
        (series_gates, "FROM n".to_string())
    };
    let run_start = ago(&format!("i * {year} / {runs}"));
    let mut sql = String::from("BEGIN;");
    for s in 1..=5 {
        sql += &format!(
            "INSERT INTO sources (name, kind, token_hash, config, created_at, updated_at) \
             VALUES ('src{s}', 'thehive', 'h{s}', '{{}}', {now}, {now});",
            now = ago("0")
        );
    }
    sql += &format!(
        "{cases_prefix} INSERT INTO cases (title, status, severity, correlation_key, source_id, \
         alert_count, first_seen_at, last_seen_at, created_at, updated_at, acknowledged_at, resolved_at) \
         SELECT 'case ' || i, \
           CASE WHEN i % 2 = 0 THEN 'resolved' WHEN i % 5 = 0 THEN 'new' ELSE 'triage' END, \
           1 + i % 5, 'k' || i, 1 + i % 5, 1, {created}, {created}, {created}, {created}, \
           CASE WHEN i % 5 = 0 THEN NULL ELSE {ack} END, \
           CASE WHEN i % 2 = 0 THEN {res} ELSE NULL END {cases_from};",
        ack = after(&created, "i % 7200"),
        res = after(&created, "7200 + i % 86400"),
    );
    sql += &format!(
        "INSERT INTO playbook_definitions (hash, playbook_id, version, definition, created_at) \
         VALUES ('bench', 'bench', 1, '{{}}', {now});",
        now = ago("0")
    );
    sql += &format!(
        "{runs_prefix} INSERT INTO playbook_runs (playbook_id, playbook_version, definition_hash, \
         trigger_kind, trigger_data, inputs, requested_by, status, created_at, started_at, \
         finished_at, updated_at) \
         SELECT 'pb' || (i % 8), 1, 'bench', 'manual', '{{}}', '{{}}', 'bench', \
           CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'succeeded' END, \
           {run_start}, {run_start}, {fin}, {fin} {runs_from};",
        fin = after(&run_start, "1 + i % 60"),
    );
    sql += "INSERT INTO step_runs (run_id, step_id, item_index, status, created_at, started_at, finished_at) \
         SELECT id, 's' || (id % 5), 0, status, started_at, started_at, finished_at FROM playbook_runs;";
    sql += &format!(
        "{gates_prefix} INSERT INTO approval_gates (run_id, step_id, action, status, message, approvers, \
         required, requested_by, created_at, deadline_at) \
         SELECT i, 'gate', 'firewall.block_ip', 'pending', 'bench', '{{}}', 1, 'bench', {at}, {deadline} {gates_from};",
        at = ago("i * 600"),
        deadline = after(&ago("0"), "86400"),
    );
    if !postgres {
        // New cases enter SQLite's title index from the code that inserts them.
        sql += "INSERT INTO cases_title_fts (cases_title_fts) VALUES ('rebuild');";
    }
    sql += "COMMIT;";
    sql
}

fn run(args: Args) -> Result<()> {
    let bench = BenchDb::create(args.postgres.as_deref())?;
    let config = tocsin::config::DatabaseConfig {
        url: bench.url.clone(),
        pool_size: 2,
        ..Default::default()
    };
    let db = tocsin::db::Db::open(&config).context("opening the database")?;
    db.migrate().context("migrating")?;
    let t = Instant::now();
    let sql = seed_sql(bench.postgres.is_some(), args.cases);
    if bench.postgres.is_some() {
        let mut c = diesel::PgConnection::establish(&bench.url)?;
        c.batch_execute(&sql)?;
        // What autovacuum does soon after a bulk load: statistics and the visibility
        // map (without it, counting from an index still reads every heap page).
        c.batch_execute("VACUUM ANALYZE")?;
    } else {
        let mut c = diesel::SqliteConnection::establish(bench.url.trim_start_matches("sqlite://"))?;
        c.batch_execute(&sql)?;
        c.batch_execute("ANALYZE")?;
    }
    println!(
        "{}: {} cases, {} runs and steps, 200 pending approvals, seeded in {:.1} s",
        bench.describe(),
        args.cases,
        (args.cases / 5).max(1),
        t.elapsed().as_secs_f64()
    );
    let mut conn = db.conn()?;
    for range in [Range::Day, Range::Week, Range::Month] {
        let mut times = Vec::new();
        let mut shown = None;
        for _ in 0..args.repeat.max(1) {
            let now = tocsin::db::now();
            let t = Instant::now();
            let d = dashboard::compute(&mut conn, range, now)?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            shown = Some(d);
        }
        times.sort_by(f64::total_cmp);
        let d = shown.context("at least one computation")?;
        println!(
            "range {:>3}: median {:>8.1} ms, slowest {:>8.1} ms  (window: {} cases created, MTTA over {}, MTTR over {}, {} playbooks)",
            range.as_str(),
            times[times.len() / 2],
            times[times.len() - 1],
            d.created,
            d.mtta.cases,
            d.mttr.cases,
            d.playbooks.len()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    support::exit_code("dashboard", run(Args::parse()))
}
