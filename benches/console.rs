//! Console case pages benchmark: a SQLite file with `--cases` cases and
//! `--alerts-per-case` alerts each (1,000,000 and 5 by default: 5,000,000 alerts), then the
//! server time of the queue page for each filter combination its form offers, and of a
//! case's page, in one markdown table for the README.
//!
//! ```text
//! cargo bench --bench console                                  # 1M cases, 5M alerts
//! cargo bench --bench console -- --cases 100000 --repeat 3     # a quick run
//! cargo bench --bench console -- --db /tmp/cases.db --reuse    # measure an existing file
//! cargo bench --bench console -- --plans                       # print EXPLAIN QUERY PLAN
//! ```
//!
//! Generation runs in SQLite itself (one `INSERT ... SELECT` over a recursive counter per
//! chunk), with a realistic shape: a year of cases, 95% of them resolved or closed, the
//! newest 5% open; severities, sources, assignees and tags spread over the rows; an
//! observable per alert, a comment on every tenth case, a `case.created` audit event per
//! case, and a two-step enrichment run on every twentieth case.
//!
//! Each measurement is what the handler does on its blocking thread: the queue is
//! `QueueParams::filter` + `query::list` (50 rows) + the filter choices + rendering
//! `cases.html`; a case's page is `detail::read` (case, newest 100 alerts, comments, runs,
//! approvals, audit entries, observables with verdicts, users) + rendering `case.html`.
//! HTTP parsing and the session lookup are not included.

use anyhow::{Context, Result};
use clap::Parser;
use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
use diesel::prelude::*;
use diesel::sql_types::Text;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tocsin::cases::{choices, query};
use tocsin::db::DbConn;
use tocsin::web::console::cases::detail;
use tocsin::web::console::cases::queue::{QueueParams, PAGE_SIZE};
use tocsin::web::console::Pages;

#[derive(Parser, Debug)]
#[command(about = "Console case pages: queue and case page server time on a large SQLite file")]
struct Args {
    /// Cases to generate.
    #[arg(long, default_value_t = 1_000_000)]
    cases: i64,
    /// Alerts per case (5 gives 5,000,000 alerts for 1,000,000 cases).
    #[arg(long, default_value_t = 5)]
    alerts_per_case: i64,
    /// The SQLite file (default: in cargo's target tmp dir, named by size).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Measure an existing file instead of generating it again.
    #[arg(long)]
    reuse: bool,
    /// Timed runs of each queue combination (after one warm-up run).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Case pages to time (spread over the id range).
    #[arg(long, default_value_t = 200)]
    details: usize,
    /// Print SQLite's plan for each queue combination's main query.
    #[arg(long)]
    plans: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Cases are generated per chunk so progress shows.
const CHUNK: i64 = 100_000;

/// Seconds the generated history spans.
const SPAN: i64 = 365 * 86_400;

/// A timestamp `secs` after the start of the history, as diesel writes them on SQLite,
/// with an odd microsecond so no two formats of the same instant are compared.
fn ts(base: i64, secs: &str, salt: &str) -> String {
    format!(
        "(strftime('%Y-%m-%d %H:%M:%S', {base} + ({secs}), 'unixepoch') || '.' || printf('%06d', (({salt}) * 7919 % 500000) * 2 + 1))"
    )
}

fn generate(conn: &mut SqliteConnection, n_cases: i64, per_case: i64) -> Result<()> {
    let base = chrono::Utc::now().timestamp() - SPAN;
    conn.batch_execute(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000;",
    )?;
    let now = ts(base, &SPAN.to_string(), "1");
    let mut setup = String::from("BEGIN;");
    for u in 1..=8 {
        setup.push_str(&format!(
            "INSERT INTO users (id, username, role, password_hash, created_at, updated_at) \
             VALUES ({u}, 'analyst{u}', 'analyst', 'x', {now}, {now});"
        ));
    }
    for (i, name) in ["splunk", "sentinel", "wazuh", "proofpoint"]
        .iter()
        .enumerate()
    {
        let id = i + 1;
        setup.push_str(&format!(
            "INSERT INTO sources (id, name, kind, token_hash, config, created_at, updated_at) \
             VALUES ({id}, '{name}', 'thehive', 'hash{id}', '{{}}', {now}, {now});"
        ));
    }
    setup.push_str(&format!(
        "INSERT INTO playbook_definitions (hash, playbook_id, version, definition, created_at) \
         VALUES ('bench', 'triage', 1, '{{\"id\":\"triage\",\"version\":1,\"trigger\":{{\"on\":\"case.created\"}},\"steps\":[{{\"id\":\"reputation\",\"uses\":\"virustotal.file_report\"}},{{\"id\":\"comment\",\"uses\":\"case.comment\"}}]}}', {now});\
         COMMIT;"
    ));
    conn.batch_execute(&setup)?;

    let started = Instant::now();
    let mut lo = 1;
    while lo <= n_cases {
        let hi = (lo + CHUNK - 1).min(n_cases);
        let counter = format!(
            "WITH RECURSIVE s(n) AS (SELECT {lo} UNION ALL SELECT n + 1 FROM s WHERE n < {hi})"
        );
        let created = format!("(n * {SPAN} / {n_cases})");
        let t0 = ts(base, &created, "n");
        let t1 = ts(base, &format!("{created} + (n * 7 % 7200)"), "n + 1");
        let open_from = n_cases * 95 / 100;
        let sql = format!(
            "BEGIN;
            {counter}
            INSERT INTO cases (id, title, status, disposition, severity, assignee_id, correlation_key,
                source_id, alert_count, first_seen_at, last_seen_at, created_at, updated_at,
                acknowledged_at, resolved_at, closed_at, ack_due_at, resolve_due_at, merged_into_id)
            SELECT n, title, st,
                CASE WHEN st = 'closed' THEN (CASE n % 4 WHEN 0 THEN 'true_positive' WHEN 1 THEN 'false_positive' ELSE 'benign' END) END,
                sev,
                CASE WHEN st = 'new' OR n % 5 = 0 THEN NULL ELSE 1 + n % 8 END,
                'rule-' || (n % 200) || '|ip:10.' || (n % 250) || '.' || (n / 250 % 250) || '.1',
                1 + n % 4, {per_case}, t0, t1, t0, t1,
                CASE WHEN st <> 'new' THEN t1 END,
                CASE WHEN st IN ('resolved', 'closed') THEN t1 END,
                CASE WHEN st = 'closed' THEN t1 END,
                t0, t1, NULL
            FROM (SELECT n,
                (CASE n % 10 WHEN 0 THEN 'Beaconing to rare domain' WHEN 1 THEN 'Password spray against VPN'
                  WHEN 2 THEN 'Malware quarantined' WHEN 3 THEN 'Phishing reported by user'
                  WHEN 4 THEN 'Impossible travel sign-in' WHEN 5 THEN 'Service down: checkout-api'
                  WHEN 6 THEN 'Suspicious PowerShell' WHEN 7 THEN 'Brute force on SSH'
                  WHEN 8 THEN 'Data exfiltration over DNS' ELSE 'Privilege escalation attempt' END)
                  || ' on host-' || (n % 5000) AS title,
                CASE WHEN n > {open_from} THEN (CASE n % 4 WHEN 0 THEN 'new' WHEN 1 THEN 'triage' WHEN 2 THEN 'in_progress' ELSE 'contained' END)
                     WHEN n % 97 = 0 THEN 'triage' WHEN n % 3 = 0 THEN 'resolved' ELSE 'closed' END AS st,
                CASE WHEN n * 31 % 100 < 30 THEN 2 WHEN n * 31 % 100 < 60 THEN 3 WHEN n * 31 % 100 < 85 THEN 4
                     WHEN n * 31 % 100 < 97 THEN 5 ELSE 1 END AS sev,
                {t0} AS t0, {t1} AS t1
              FROM s);
            INSERT INTO cases_title_fts (rowid, title) SELECT id, title FROM cases WHERE id BETWEEN {lo} AND {hi};
            {counter}
            INSERT INTO case_tags (case_id, tag)
            SELECT n, CASE n / 5 % 10 WHEN 0 THEN 'phishing' WHEN 1 THEN 'malware' WHEN 2 THEN 'c2' WHEN 3 THEN 'vip'
                WHEN 4 THEN 'brute-force' WHEN 5 THEN 'outage' WHEN 6 THEN 'insider' WHEN 7 THEN 'exfil'
                WHEN 8 THEN 'cloud' ELSE 'test' END FROM s WHERE n % 5 = 0;
            {counter}
            INSERT INTO case_tags (case_id, tag) SELECT n, 'escalated' FROM s WHERE n % 50 = 0;
            {counter}
            INSERT INTO case_comments (case_id, author, body, created_at)
            SELECT n, 'user:analyst1', 'Looked into it; see the proxy logs.', {t1} FROM s WHERE n % 10 = 0;
            {counter}
            INSERT INTO audit_events (seq, occurred_at, actor_kind, actor_id, action, target, details, prev_hash, hash)
            SELECT n, {t0}, 'system', 'ingest', 'case.created', 'case:' || n, '{{}}', '0', '0' FROM s;
            {counter}
            INSERT INTO playbook_runs (playbook_id, playbook_version, definition_hash, case_id, trigger_kind,
                trigger_data, inputs, requested_by, status, created_at, started_at, finished_at, updated_at)
            SELECT 'triage', 1, 'bench', n, 'case.created', '{{}}', '{{}}', 'trigger:case.created', 'succeeded',
                {t0}, {t0}, {t1}, {t1} FROM s WHERE n % 20 = 0;
            COMMIT;"
        );
        conn.batch_execute(&sql)
            .with_context(|| format!("generating cases {lo}..={hi}"))?;
        // Alerts of these cases, `per_case` each, with one observable each.
        let a_lo = (lo - 1) * per_case + 1;
        let a_hi = hi * per_case;
        let counter = format!(
            "WITH RECURSIVE s(m) AS (SELECT {a_lo} UNION ALL SELECT m + 1 FROM s WHERE m < {a_hi})"
        );
        let c = format!("((m - 1) / {per_case} + 1)");
        let k = format!("((m - 1) % {per_case})");
        let at = ts(base, &format!("({c} * {SPAN} / {n_cases}) + {k} * 60"), "m");
        let ip = format!("'10.' || ({c} % 250) || '.' || ({c} / 250 % 250) || '.' || ({k} + 1)");
        let sql = format!(
            "BEGIN;
            {counter}
            INSERT INTO alerts (id, case_id, source_id, fingerprint, class, severity, state, title, description,
                vendor, product, rule_id, rule_name, external_id, event_time, received_at, last_seen_at,
                occurrences, tags, raw)
            SELECT m, {c}, 1 + {c} % 4, 'fp-' || m, 'detection_finding', 3, 'active',
                'Alert ' || m || ' of case ' || {c}, NULL, 'Bench', 'SIEM', 'rule-' || ({c} % 200),
                'Rule ' || ({c} % 200), 'ext-' || m, t, t, t, 1, '[]',
                '{{\"sourceRef\":\"ext-' || m || '\",\"title\":\"Alert ' || m || '\",\"severity\":2,\"observables\":[{{\"dataType\":\"ip\",\"data\":\"' || ip || '\"}}]}}'
            FROM (SELECT m, {at} AS t, {ip} AS ip FROM s);
            {counter}
            INSERT INTO alert_observables (alert_id, kind, value, role) SELECT m, 'ip', {ip}, 'src' FROM s;
            COMMIT;"
        );
        conn.batch_execute(&sql)
            .with_context(|| format!("generating alerts {a_lo}..={a_hi}"))?;
        eprintln!(
            "  {hi} cases, {a_hi} alerts ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
        lo = hi + 1;
    }
    conn.batch_execute(&format!(
        "BEGIN;
        INSERT INTO step_runs (run_id, step_id, item_index, status, attempts, input, output, created_at, started_at, finished_at)
        SELECT id, 'reputation', -1, 'succeeded', 1,
            '{{\"hash\":\"10.' || (case_id % 250) || '.' || (case_id / 250 % 250) || '.1\"}}',
            '{{\"malicious\":' || (case_id % 7) || ',\"suspicious\":1,\"harmless\":50}}',
            created_at, created_at, finished_at FROM playbook_runs;
        INSERT INTO step_runs (run_id, step_id, item_index, status, attempts, output, created_at, started_at, finished_at)
        SELECT id, 'comment', -1, 'succeeded', 1, '{{}}', created_at, created_at, finished_at FROM playbook_runs;
        UPDATE audit_head SET seq = {n_cases};
        COMMIT;"
    ))?;
    eprintln!("  generated in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The queue's filter combinations: every choice of each filter alone, pairs an analyst
/// commonly sets together, and all at once; each under every sort.
fn combinations() -> Vec<Vec<(&'static str, &'static str)>> {
    let mut filters: Vec<Vec<(&str, &str)>> = vec![vec![]];
    for s in [
        "any",
        "new",
        "triage",
        "in_progress",
        "contained",
        "resolved",
        "closed",
    ] {
        filters.push(vec![("status", s)]);
    }
    for s in [
        "informational",
        "low",
        "medium",
        "high",
        "critical",
        "fatal",
    ] {
        filters.push(vec![("severity", s)]);
    }
    filters.push(vec![("source", "wazuh")]);
    filters.push(vec![("assignee", "me")]);
    filters.push(vec![("assignee", "none")]);
    filters.push(vec![("tag", "vip")]);
    filters.push(vec![("tag", "escalated")]);
    filters.push(vec![("q", "beaconing")]);
    filters.push(vec![("q", "host-4242")]);
    filters.push(vec![("status", "any"), ("severity", "critical")]);
    filters.push(vec![("status", "any"), ("source", "wazuh")]);
    filters.push(vec![("status", "any"), ("assignee", "analyst3")]);
    filters.push(vec![("status", "any"), ("tag", "vip")]);
    filters.push(vec![("status", "any"), ("q", "beaconing")]);
    filters.push(vec![("status", "closed"), ("q", "host-4242")]);
    filters.push(vec![
        ("severity", "high"),
        ("source", "splunk"),
        ("assignee", "none"),
    ]);
    filters.push(vec![("tag", "phishing"), ("q", "phishing")]);
    filters.push(vec![
        ("status", "triage"),
        ("severity", "high"),
        ("source", "sentinel"),
        ("assignee", "analyst2"),
        ("tag", "escalated"),
        ("q", "travel"),
    ]);
    let mut out = Vec::new();
    for sort in [
        "-last_seen",
        "last_seen",
        "-created",
        "created",
        "-severity",
    ] {
        for f in &filters {
            let mut c = f.clone();
            c.push(("sort", sort));
            out.push(c);
        }
    }
    out
}

fn params(combo: &[(&str, &str)]) -> QueueParams {
    let get = |k: &str| {
        combo
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.to_string())
    };
    QueueParams {
        status: get("status"),
        severity: get("severity"),
        source: get("source"),
        assignee: get("assignee"),
        tag: get("tag"),
        q: get("q"),
        sort: get("sort"),
        limit: None,
        cursor: None,
    }
}

/// One queue page as the handler builds it; returns the next cursor and the rows shown.
fn queue_page(
    conn: &mut DbConn,
    pages: &Pages,
    p: &QueueParams,
) -> Result<(Option<String>, usize)> {
    let (filter, sort) = p
        .filter("analyst1")
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let page = query::list(conn, &filter, sort, PAGE_SIZE, p.cursor.as_deref())?;
    let (sources, users) = choices::filter_choices(conn)?;
    let rows = page.cases.len();
    let next = page.next_cursor.clone();
    let res = pages.render(
        actix_web::http::StatusCode::OK,
        "cases.html",
        minijinja::context! {
            cases => page.cases, next_href => next.as_ref().map(|c| p.href(Some(c))),
            params => p, status => p.status.clone().unwrap_or_else(|| "open".into()),
            sources => sources, users => users, back => p.href(None),
            can => minijinja::context! { work => true },
        },
    );
    anyhow::ensure!(res.status().is_success(), "cases.html did not render");
    Ok((next, rows))
}

fn case_page(conn: &mut DbConn, pages: &Pages, id: i64) -> Result<usize> {
    let data = detail::read(conn, id)?;
    let n = data.alerts.len();
    let res = pages.render(
        actix_web::http::StatusCode::OK,
        "case.html",
        minijinja::context! {
            case => data.case, alerts => data.alerts, comments => data.comments,
            runs => data.activity.runs, gates => data.activity.gates,
            observables => data.activity.observables, timeline => data.activity.timeline,
            users => data.users, can => minijinja::context! { work => true },
        },
    );
    anyhow::ensure!(res.status().is_success(), "case.html did not render");
    Ok(n)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(QueryableByName)]
struct PlanRow {
    #[diesel(sql_type = Text)]
    detail: String,
}

/// Collects the SQL of every statement run while it is set.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Instrumentation for Recorder {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            if let Ok(mut v) = self.0.lock() {
                v.push(query.to_string());
            }
        }
    }
}

fn run(args: Args) -> Result<()> {
    let path = args.db.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "console-bench-{}x{}.db",
            args.cases, args.alerts_per_case
        ))
    });
    let url = format!("sqlite://{}", path.display());
    if !(args.reuse && path.exists()) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        eprintln!(
            "generating {} cases, {} alerts in {}",
            args.cases,
            args.cases * args.alerts_per_case,
            path.display()
        );
        let config = tocsin::config::DatabaseConfig {
            url: url.clone(),
            pool_size: 1,
            ..Default::default()
        };
        tocsin::db::Db::open(&config)?.migrate()?;
        let mut raw = SqliteConnection::establish(&path.display().to_string())?;
        generate(&mut raw, args.cases, args.alerts_per_case)?;
    } else {
        tocsin::db::Db::open(&tocsin::config::DatabaseConfig {
            url: url.clone(),
            pool_size: 1,
            ..Default::default()
        })?
        .migrate()?;
    }
    let size_mb = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;

    // The connection the pages read through, with the pragmas Tocsin sets on its own.
    let recorder = Recorder::default();
    let mut inner = SqliteConnection::establish(&path.display().to_string())?;
    inner.batch_execute(
        "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
         PRAGMA cache_size = -32768; PRAGMA mmap_size = 268435456;",
    )?;
    inner.set_instrumentation(recorder.clone());
    let mut conn = DbConn::Sqlite(inner);
    let mut explain = SqliteConnection::establish(&path.display().to_string())?;
    let pages = Pages::new();

    println!(
        "\nConsole pages on SQLite: {} cases, {} alerts ({size_mb:.0} MB file); {} timed runs per queue combination\n",
        args.cases,
        args.cases * args.alerts_per_case,
        args.repeat
    );
    println!("| queue combination | rows | p50 ms | max ms | page 2 ms |");
    println!("|---|---:|---:|---:|---:|");
    let mut all = Vec::new();
    let mut worst: Vec<(f64, String)> = Vec::new();
    for combo in combinations() {
        let p = params(&combo);
        let label = combo
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        recorder.0.lock().map(|mut v| v.clear()).ok();
        let (next, rows) = queue_page(&mut conn, &pages, &p)?; // warm-up
        if args.plans {
            let statements = recorder.0.lock().map(|v| v.clone()).unwrap_or_default();
            if let Some(sql) = statements
                .iter()
                .find(|s| s.starts_with("SELECT `cases`.`id`"))
            {
                let sql = sql.split(" -- binds:").next().unwrap_or(sql);
                let plan: Vec<PlanRow> =
                    diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load(&mut explain)?;
                let plan: Vec<String> = plan.into_iter().map(|r| r.detail).collect();
                eprintln!("{label}: {}", plan.join(" / "));
            }
        }
        let mut times = Vec::with_capacity(args.repeat);
        for _ in 0..args.repeat {
            let t = Instant::now();
            queue_page(&mut conn, &pages, &p)?;
            times.push(ms(t.elapsed()));
        }
        let page2 = match next {
            Some(cursor) => {
                let mut p2 = p.clone();
                p2.cursor = Some(cursor);
                let t = Instant::now();
                queue_page(&mut conn, &pages, &p2)?;
                let d = ms(t.elapsed());
                all.push(d);
                format!("{d:.1}")
            }
            None => "—".into(),
        };
        times.sort_by(f64::total_cmp);
        let p50 = percentile(&times, 0.5);
        let max = times.last().copied().unwrap_or(0.0);
        println!("| {label} | {rows} | {p50:.1} | {max:.1} | {page2} |");
        worst.push((max, label));
        all.extend(times);
    }
    all.sort_by(f64::total_cmp);
    worst.sort_by(|a, b| b.0.total_cmp(&a.0));

    // Case pages spread over the ids (old closed cases and new open ones alike).
    // Each case is read twice: the first read of a case may wait for the disk (a 3 GB file
    // on a shared machine), the second is what a live refresh of an open page costs.
    let mut detail_times = Vec::with_capacity(args.details);
    let mut warm_times = Vec::with_capacity(args.details);
    let step = (args.cases / args.details.max(1) as i64).max(1);
    case_page(&mut conn, &pages, 1)?;
    let mut shown = 0;
    for i in 0..args.details as i64 {
        let id = (1 + i * step + i % 7).min(args.cases);
        let t = Instant::now();
        shown += case_page(&mut conn, &pages, id)?;
        detail_times.push(ms(t.elapsed()));
        let t = Instant::now();
        case_page(&mut conn, &pages, id)?;
        warm_times.push(ms(t.elapsed()));
    }
    detail_times.sort_by(f64::total_cmp);
    warm_times.sort_by(f64::total_cmp);
    if args.plans {
        for (what, sql) in [
            ("timeline audit", "SELECT occurred_at FROM audit_events WHERE target = 'case:5' AND action <> 'case.commented' ORDER BY seq DESC LIMIT 100"),
            ("approvals", "SELECT id FROM approval_gates WHERE case_id = 5 ORDER BY id DESC LIMIT 100"),
            ("observables", "SELECT alert_observables.alert_id FROM alert_observables INNER JOIN alerts ON alerts.id = alert_observables.alert_id WHERE alerts.case_id = 5 ORDER BY kind, value LIMIT 2000"),
        ] {
            let plan: Vec<PlanRow> =
                diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load(&mut explain)?;
            let plan: Vec<String> = plan.into_iter().map(|r| r.detail).collect();
            eprintln!("case page, {what}: {}", plan.join(" / "));
        }
    }
    println!();
    println!("| page | samples | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| queue, every combination above (incl. page 2) | {} | {:.1} | {:.1} | {:.1} |",
        all.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(0.0)
    );
    println!(
        "| case page, first read of the case ({} alerts shown in all) | {} | {:.1} | {:.1} | {:.1} |",
        shown,
        detail_times.len(),
        percentile(&detail_times, 0.5),
        percentile(&detail_times, 0.99),
        detail_times.last().copied().unwrap_or(0.0)
    );
    println!(
        "| case page, read again | {} | {:.1} | {:.1} | {:.1} |",
        warm_times.len(),
        percentile(&warm_times, 0.5),
        percentile(&warm_times, 0.99),
        warm_times.last().copied().unwrap_or(0.0)
    );
    println!("\nSlowest queue combinations (max ms):");
    for (t, label) in worst.iter().take(8) {
        println!("- {label}: {t:.1}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("console benchmark failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}
