//! Several processes, failures and load (issue 7): three `tocsin serve` processes on one
//! PostgreSQL database sharing ingestion and 1,000 playbook runs while one is killed and
//! restarted; PostgreSQL connections cut under load; the database going away and coming
//! back (through a proxy the test controls); SIGTERM during runs; roles; schedules and
//! gate deadlines firing once per cluster; a second server refused on one SQLite file;
//! retention; `tocsin backup` while the server writes, restored and verified.
//!
//! Side effects are counted by a stub vendor on loopback: a step's call goes to
//! `/effect/<run id>`, so a call made twice shows as two hits on one path.

mod common;

use common::proxy::Proxy;
use common::stub::{Behavior, Stub};
use common::{browser, Backend, Server, TestDb};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";

/// Three steps: a built-in, a call with a side effect (a POST, so never repeated after a
/// crash: failed as interrupted, and the run goes on), and a built-in.
const EFFECT: &str = r#"
id: effect
version: 1
trigger: { on: manual }
steps:
  - id: first
    uses: noop
  - id: effect
    uses: notify.webhook
    with: { url: "STUB/effect/${{ $.run.id }}" }
    on_failure: continue
  - id: last
    uses: noop
"#;

const GATED: &str = r#"
id: gated
version: 1
trigger: { on: manual }
steps:
  - id: act
    uses: http.request
    with: { method: POST, url: "STUB/gated/${{ $.run.id }}" }
    approval: { roles: [responder], timeout: 1s, on_timeout: reject, message: "act?" }
"#;

const NIGHTLY: &str = r#"
id: nightly
version: 1
trigger: { on: schedule, schedule: "0 3 * * *" }
steps:
  - id: a
    uses: noop
"#;

/// A database with playbooks, users and a TheHive source; servers are started by the test.
struct Setup {
    db: TestDb,
    stub: Stub,
    /// Analyst token.
    ann: String,
    /// Ingestion token of source `hive`.
    hive: String,
}

impl Setup {
    fn new(db: TestDb, playbooks: &[(&str, &str)]) -> Setup {
        let stub = Stub::start();
        common::write_playbooks(&db, &stub.base, playbooks);
        db.run_ok(&["migrate"]);
        db.add_user("ann", "analyst", PW);
        let ann = db.token("ann");
        let out = db.run_ok(&["source", "add", "hive", "--kind", "thehive"]);
        let hive = out
            .lines()
            .find_map(|l| l.strip_prefix("token="))
            .expect("token")
            .to_string();
        Setup {
            db,
            stub,
            ann,
            hive,
        }
    }

    /// Makes every `/effect/...` call take `ms` milliseconds.
    fn slow_effects(&self, ms: u64) {
        self.stub.behave(
            "/effect/",
            Behavior {
                delay: Duration::from_millis(ms),
                ..Default::default()
            },
        );
    }

    /// Starts a server with `role` and a short lease, plus `extra` variables.
    fn server(&self, role: &str, extra: &[(&str, &str)]) -> Server {
        let mut env = vec![("TOCSIN_ROLE", role), ("TOCSIN_ENGINE_LEASE_SECONDS", "2")];
        env.extend_from_slice(extra);
        Server::start_with(&self.db, &env)
    }

    fn count(&self, sql: &str) -> i64 {
        self.db.query_i64(sql)
    }

    /// Starts `n` runs of `playbook` through `server`; returns their ids.
    fn start_runs(&self, server: &Server, playbook: &str, n: usize) -> Vec<i64> {
        (0..n)
            .map(|_| {
                let (status, run) = server.post_json(
                    &self.ann,
                    &format!("/api/v1/playbooks/{playbook}/runs"),
                    &json!({}),
                );
                assert_eq!(status, 201, "{run}");
                run["id"].as_i64().unwrap()
            })
            .collect()
    }

    /// Waits until no run is left unfinished (at most 180 s), naming the count left.
    fn wait_runs_finished(&self, total: usize, log: impl Fn() -> String) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let done = self.count(
                "SELECT COUNT(*) AS n FROM playbook_runs \
                 WHERE status IN ('succeeded', 'failed', 'cancelled')",
            );
            if done as usize >= total {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{done} of {total} runs finished; log:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Checks the side effects of `effect` runs: each run's call arrived at most once,
    /// exactly once where the step succeeded; returns how many steps were interrupted.
    fn check_effects(&self, runs: usize) -> i64 {
        let hits = self.stub.hits_under("/effect/");
        let twice: Vec<_> = hits.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "calls made more than once: {twice:?}");
        let succeeded = self.count(
            "SELECT COUNT(*) AS n FROM step_runs WHERE step_id = 'effect' AND status = 'succeeded'",
        );
        let failed = self.count(
            "SELECT COUNT(*) AS n FROM step_runs WHERE step_id = 'effect' AND status = 'failed'",
        );
        assert_eq!(succeeded + failed, runs as i64, "every effect step ended");
        let calls = hits.len() as i64;
        assert!(
            calls >= succeeded && calls <= succeeded + failed,
            "{calls} calls for {succeeded} succeeded and {failed} interrupted steps"
        );
        let not_succeeded =
            self.count("SELECT COUNT(*) AS n FROM playbook_runs WHERE status <> 'succeeded'");
        assert_eq!(not_succeeded, 0, "every run succeeded");
        failed
    }

    fn audit_verifies(&self) {
        let out = self.db.tocsin().args(["audit", "verify"]).output().unwrap();
        assert!(
            out.status.success(),
            "audit verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Ingestion load: `threads` clients each send `batches` requests of 10 alerts with
/// unique ids, round-robin over `bases`, retrying a refused or failed request (another
/// server, after a pause) until it is acknowledged or `stop` is set. Returns the ids
/// acknowledged.
struct Load {
    acked: Arc<Mutex<Vec<String>>>,
    refused: Arc<Mutex<Vec<u16>>>,
    stop: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(bases: Vec<String>, token: &str, threads: usize, batches: usize) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..threads)
            .map(|t| {
                let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
                let bases = bases.clone();
                let token = token.to_string();
                std::thread::spawn(move || {
                    let client = browser();
                    let mut turn = t;
                    for b in 0..batches {
                        let ids: Vec<String> = (0..10).map(|i| format!("t{t}-b{b}-{i}")).collect();
                        let body: Vec<Value> = ids
                            .iter()
                            .map(|id| {
                                json!({
                                    "type": "load", "source": "scale", "sourceRef": id,
                                    "title": format!("load {id}"), "severity": 2,
                                    "observables": [{ "dataType": "ip", "data": format!("198.51.100.{}", b % 200) }]
                                })
                            })
                            .collect();
                        loop {
                            if stop.load(Ordering::SeqCst) {
                                return;
                            }
                            turn += 1;
                            let base = &bases[turn % bases.len()];
                            let res = client
                                .post(format!("{base}/api/v1/ingest/hive"))
                                .bearer_auth(&token)
                                .json(&body)
                                .send();
                            match res {
                                Ok(r) if r.status() == 200 => {
                                    acked.lock().unwrap().extend(ids.iter().cloned());
                                    break;
                                }
                                Ok(r) => {
                                    let status = r.status().as_u16();
                                    if status == 503 {
                                        assert!(
                                            r.headers().contains_key("retry-after"),
                                            "503 without Retry-After"
                                        );
                                    }
                                    refused.lock().unwrap().push(status);
                                }
                                Err(_) => refused.lock().unwrap().push(0),
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                })
            })
            .collect();
        Load {
            acked,
            refused,
            stop,
            handles,
        }
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits for the clients (at most 180 s, then stops them); returns the acked ids.
    fn finish(self) -> (Vec<String>, Vec<u16>) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while self.handles.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles {
            h.join().expect("load thread");
        }
        let acked = self.acked.lock().unwrap().clone();
        let refused = self.refused.lock().unwrap().clone();
        (acked, refused)
    }
}

/// Every acknowledged alert is in the database exactly once.
fn check_acked_stored_once(db: &TestDb, acked: &[String]) {
    assert!(!acked.is_empty());
    let list = acked
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    let stored = db.query_i64(&format!(
        "SELECT COUNT(*) AS n FROM alerts WHERE external_id IN ({list})"
    ));
    let dupes = db.query_i64(
        "SELECT COUNT(*) AS n FROM (SELECT external_id FROM alerts GROUP BY source_id, external_id \
         HAVING COUNT(*) > 1) d",
    );
    assert_eq!(dupes, 0, "alerts stored twice");
    assert_eq!(stored as usize, acked.len(), "acknowledged alerts missing");
}

/// Runs a process finished, from its metrics.
fn runs_finished(server: &Server) -> f64 {
    let text = browser()
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("tocsin_playbook_runs_finished_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn postgres() -> Option<TestDb> {
    TestDb::new(Backend::Postgres)
}

/// Three processes (two `all`, one `worker`) share ingestion and 1,000 runs; one `all`
/// process is killed with SIGKILL mid-way and restarted.
#[test]
fn three_processes_share_the_work_and_survive_a_kill() {
    let Some(db) = postgres() else { return };
    let s = Setup::new(db, &[("effect", EFFECT)]);
    s.slow_effects(5);
    let p1 = s.server("all", &[]);
    let mut p2 = s.server("all", &[]);
    let p3 = s.server("worker", &[]);
    // Sized to outlast the runs; stopped after the restart.
    let load = Load::start(vec![p1.base.clone(), p2.base.clone()], &s.hive, 2, 1000);
    const RUNS: usize = 1000;
    let runs = s.start_runs(&p1, "effect", RUNS);
    assert_eq!(runs.len(), RUNS);
    // Mid-way: some runs done, many left.
    let deadline = Instant::now() + Duration::from_secs(120);
    while s.count("SELECT COUNT(*) AS n FROM playbook_runs WHERE status = 'succeeded'") < 200 {
        assert!(
            Instant::now() < deadline,
            "runs do not progress:\n{}",
            p1.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let acked_before = load.acked_count();
    p2.kill();
    std::thread::sleep(Duration::from_millis(500));
    let p2 = s.server("all", &[]);
    s.wait_runs_finished(RUNS, || p1.stderr());
    let after_restart = load.acked_count();
    std::thread::sleep(Duration::from_secs(1));
    load.stop.store(true, Ordering::SeqCst);
    let (acked, _) = load.finish();
    assert!(
        acked.len() > after_restart,
        "ingestion went on after the restart"
    );
    assert!(
        acked.len() > acked_before,
        "ingestion went on after the kill"
    );
    check_acked_stored_once(&s.db, &acked);
    let interrupted = s.check_effects(RUNS);
    eprintln!("{interrupted} calls interrupted by the kill");
    // The work was shared: the surviving `all` process and the worker both finished runs.
    assert!(runs_finished(&p1) > 0.0, "p1 finished no run");
    assert!(runs_finished(&p3) > 0.0, "the worker finished no run");
    s.audit_verifies();
    drop((p1, p2, p3));
}

/// An `http` process records runs; a `worker` process, woken through LISTEN/NOTIFY,
/// drives them. The worker serves health endpoints only; the http one runs nothing.
#[test]
fn roles_split_http_and_workers() {
    let Some(db) = postgres() else { return };
    let s = Setup::new(db, &[("effect", EFFECT)]);
    let http = s.server("http", &[]);
    let runs = s.start_runs(&http, "effect", 5);
    // Nothing drives them yet.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        s.count("SELECT COUNT(*) AS n FROM playbook_runs WHERE status = 'pending'"),
        5
    );
    let worker = s.server("worker", &[]);
    s.wait_runs_finished(5, || worker.stderr());
    // The http process announces new runs on `tocsin_runs` (what wakes the workers).
    use diesel::{Connection, RunQueryDsl};
    let mut listener = diesel::PgConnection::establish(&s.db.url).unwrap();
    diesel::sql_query("LISTEN tocsin_runs")
        .execute(&mut listener)
        .unwrap();
    let more = s.start_runs(&http, "effect", 5);
    http.poll("a NOTIFY on tocsin_runs", || {
        listener
            .notifications_iter()
            .filter_map(Result::ok)
            .find(|n| n.channel == "tocsin_runs")
    });
    s.wait_runs_finished(10, || worker.stderr());
    s.check_effects(runs.len() + more.len());
    let res = browser().get(worker.url("/api/v1/me")).send().unwrap();
    assert_eq!(res.status(), 404, "a worker serves no API");
    let res = browser().get(worker.url("/readyz")).send().unwrap();
    assert_eq!(res.status(), 200);
}

/// Cutting every PostgreSQL connection of the database under load (twice) loses no
/// acknowledged alert and no run, and the processes recover without a restart.
#[test]
fn connections_cut_under_load() {
    let Some(db) = postgres() else { return };
    let s = Setup::new(db, &[("effect", EFFECT)]);
    let p1 = s.server("all", &[]);
    let p2 = s.server("all", &[]);
    let load = Load::start(vec![p1.base.clone(), p2.base.clone()], &s.hive, 3, 40);
    let runs = s.start_runs(&p1, "effect", 200);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(700));
        s.db.exec(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .expect("terminate backends");
    }
    s.wait_runs_finished(runs.len(), || p1.stderr() + &p2.stderr());
    let (acked, _) = load.finish();
    check_acked_stored_once(&s.db, &acked);
    s.check_effects(runs.len());
    // Recovered by itself: both answer and take alerts again.
    for p in [&p1, &p2] {
        let ready = browser().get(p.url("/readyz")).send().unwrap();
        assert_eq!(ready.status(), 200, "{}", p.stderr());
    }
    let after = Load::start(vec![p1.base.clone(), p2.base.clone()], &s.hive, 1, 1);
    let (acked, refused) = after.finish();
    assert_eq!(acked.len(), 10, "refused after recovery: {refused:?}");
    s.audit_verifies();
}

/// The database goes away (a proxy cuts and refuses connections) and comes back: while
/// it is away, ingestion answers 503 with Retry-After at once and /readyz says not ready;
/// afterwards everything works again without a restart, and nothing acknowledged is lost.
#[test]
fn database_outage_gives_503_and_recovers() {
    let Some(db) = postgres() else { return };
    let s = Setup::new(db, &[]);
    let mut url = url::Url::parse(&s.db.url).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = Proxy::start(&target);
    let (host, port) = proxy.addr.split_once(':').unwrap();
    url.set_host(Some(host)).unwrap();
    url.set_port(Some(port.parse().unwrap())).unwrap();
    let p = s.server("all", &[("TOCSIN_DATABASE_URL", url.as_str())]);
    let load = Load::start(vec![p.base.clone()], &s.hive, 2, 30);
    std::thread::sleep(Duration::from_millis(500));
    proxy.down();
    // Refused quickly once the process has noticed.
    let client = browser();
    let quick = p.poll("a quick 503 while the database is away", || {
        let t = Instant::now();
        let r = client
            .post(p.url("/api/v1/ingest/hive"))
            .bearer_auth(&s.hive)
            .json(&json!({"type": "x", "source": "y", "sourceRef": "during", "title": "t"}))
            .send()
            .ok()?;
        (r.status() == 503 && t.elapsed() < Duration::from_secs(2)).then_some(r)
    });
    assert!(quick.headers().contains_key("retry-after"));
    let ready = client.get(p.url("/readyz")).send().unwrap();
    assert_eq!(ready.status(), 503);
    std::thread::sleep(Duration::from_secs(1));
    proxy.up();
    p.poll("readiness after the outage", || {
        (client.get(p.url("/readyz")).send().ok()?.status() == 200).then_some(())
    });
    let (acked, refused) = load.finish();
    assert!(refused.contains(&503), "{refused:?}");
    assert!(
        refused.iter().all(|s| *s == 503),
        "only 503 during the outage: {refused:?}"
    );
    check_acked_stored_once(&s.db, &acked);
    assert_eq!(
        acked.len(),
        2 * 30 * 10,
        "every request acknowledged in the end"
    );
}

/// SIGTERM on SQLite (one process): calls in flight finish, the process exits, and
/// after a restart every run finishes with each call made exactly once.
fn sigterm_during_runs(db: TestDb) {
    let s = Setup::new(db, &[("effect", EFFECT)]);
    s.slow_effects(300);
    let mut p = s.server("all", &[]);
    let runs = s.start_runs(&p, "effect", 30);
    p.poll("calls in flight", || {
        (!s.stub.hits_under("/effect/").is_empty()).then_some(())
    });
    let status = p.terminate();
    assert!(status.success(), "exit status {status}");
    let p = s.server("all", &[]);
    s.wait_runs_finished(runs.len(), || p.stderr());
    let interrupted = s.check_effects(runs.len());
    assert_eq!(interrupted, 0, "an orderly stop interrupts no call");
    assert_eq!(s.stub.hits_under("/effect/").len(), runs.len());
}

/// SIGTERM to one of two processes: its runs are handed back and the other process
/// finishes them at once, without a restart; each call made exactly once.
#[test]
fn sigterm_hands_runs_to_another_process() {
    let Some(db) = postgres() else { return };
    let s = Setup::new(db, &[("effect", EFFECT)]);
    s.slow_effects(300);
    let mut p1 = s.server("all", &[]);
    let p2 = s.server("worker", &[]);
    let runs = s.start_runs(&p1, "effect", 40);
    p1.poll("calls in flight", || {
        (s.stub.hits_under("/effect/").len() >= 5).then_some(())
    });
    let status = p1.terminate();
    assert!(status.success(), "exit status {status}");
    s.wait_runs_finished(runs.len(), || p2.stderr());
    assert_eq!(s.check_effects(runs.len()), 0);
    assert_eq!(s.stub.hits_under("/effect/").len(), runs.len());
}

/// Gate deadlines and schedules fire once per cluster, not once per process.
#[test]
fn deadlines_and_schedules_fire_once_per_cluster() {
    let Some(db) = postgres() else { return };
    let s = Setup::new(db, &[("gated", GATED), ("nightly", NIGHTLY)]);
    let servers: Vec<Server> = (0..3).map(|_| s.server("all", &[])).collect();
    let runs = s.start_runs(&servers[0], "gated", 20);
    s.wait_runs_finished(runs.len(), || servers[0].stderr());
    assert_eq!(
        s.count("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'approval.timed_out'"),
        20
    );
    assert_eq!(
        s.count(
            "SELECT COUNT(*) AS n FROM step_runs WHERE step_id = 'act' AND status = 'rejected'"
        ),
        20
    );
    assert!(s.stub.hits_under("/gated/").is_empty());
    servers[0].poll("the schedule row", || {
        (s.count("SELECT COUNT(*) AS n FROM playbook_schedules") == 1).then_some(())
    });
    s.db.exec("UPDATE playbook_schedules SET next_fire_at = '2020-01-01 03:00:00'")
        .unwrap();
    servers[0].poll("the scheduled run", || {
        (s.count("SELECT COUNT(*) AS n FROM playbook_runs WHERE trigger_kind = 'schedule'") >= 1)
            .then_some(())
    });
    // Every process looks at least every 5 s: give them all time to (not) fire again.
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(
        s.count("SELECT COUNT(*) AS n FROM playbook_runs WHERE trigger_kind = 'schedule'"),
        1
    );
}

/// SQLite serves one process: a second server on the same file refuses to start.
#[test]
fn a_second_server_on_one_sqlite_file_is_refused() {
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    let _first = Server::start(&db);
    let out = db
        .tocsin()
        .args(["serve"])
        .env("TOCSIN_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another tocsin serve"), "{err}");
}

/// Retention removes old raw payloads and old closed cases (with alerts and runs), keeps
/// everything else, never touches audit events, and records what it removed.
fn retention_keeps_the_audit_chain(db: TestDb) {
    let s = Setup::new(db, &[("effect", EFFECT)]);
    let p = s.server("all", &[]);
    let ingest = |title: &str, ip: &str| -> i64 {
        let (status, r) = p.post_json(
            &s.hive,
            "/api/v1/ingest/hive",
            &json!({"type": "t", "source": "s", "sourceRef": title, "title": title,
                    "observables": [{ "dataType": "ip", "data": ip }]}),
        );
        assert_eq!(status, 200, "{r}");
        r["results"][0]["case_id"].as_i64().unwrap()
    };
    let old = ingest("old", "198.51.100.1");
    let kept = ingest("kept", "198.51.100.2");
    let (status, run) = p.post_json(
        &s.ann,
        "/api/v1/playbooks/effect/runs",
        &json!({ "case_id": old }),
    );
    assert_eq!(status, 201, "{run}");
    s.wait_runs_finished(1, || p.stderr());
    let res = browser()
        .patch(p.url(&format!("/api/v1/cases/{old}")))
        .bearer_auth(&s.ann)
        .json(&json!({"status": "closed", "disposition": "benign"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    s.db.exec(&format!(
        "UPDATE cases SET closed_at = '2020-01-01 00:00:00' WHERE id = {old}; \
         UPDATE alerts SET last_seen_at = '2020-01-01 00:00:00'"
    ))
    .unwrap();
    let events_before = s.count("SELECT COUNT(*) AS n FROM audit_events");
    let out =
        s.db.tocsin()
            .args(["retention", "run"])
            .env("TOCSIN_RETENTION_CLOSED_CASE_DAYS", "30")
            .env("TOCSIN_RETENTION_RAW_PAYLOAD_DAYS", "7")
            .output()
            .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let purged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(purged["cases"], 1, "{purged}");
    assert_eq!(purged["runs"], 1, "{purged}");
    assert_eq!(purged["raw_payloads"], 2, "{purged}");
    let gone = browser()
        .get(p.url(&format!("/api/v1/cases/{old}")))
        .bearer_auth(&s.ann)
        .send()
        .unwrap();
    assert_eq!(gone.status(), 404);
    let case = p.get_json(&s.ann, &format!("/api/v1/cases/{kept}"));
    let alert_id = case["alerts"][0]["id"].as_i64().unwrap();
    let alert = p.get_json(&s.ann, &format!("/api/v1/alerts/{alert_id}"));
    assert_eq!(alert["raw"], Value::Null, "raw payload removed: {alert}");
    assert_eq!(alert["title"], "kept");
    // Audit events only grew: the old case's history is still there, and the purge is
    // recorded.
    let events_after = s.count("SELECT COUNT(*) AS n FROM audit_events");
    assert!(events_after > events_before);
    let created = s.db.audit_with_action("case.created");
    assert!(created.iter().any(|e| e["target"] == format!("case:{old}")));
    let purges = s.db.audit_with_action("retention.purged");
    assert!(purges
        .iter()
        .any(|e| e["details"]["case_ids"] == json!([old])));
    s.audit_verifies();
}

/// `tocsin backup` while the server ingests: the copy holds every alert acknowledged
/// before the backup started, verifies, and serves after a restore.
#[test]
fn sqlite_backup_while_writing_restores() {
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    let s = Setup::new(db, &[]);
    let p = s.server("all", &[]);
    let load = Load::start(vec![p.base.clone()], &s.hive, 2, 40);
    p.poll("some alerts", || (load.acked_count() >= 100).then_some(()));
    let before: Vec<String> = load.acked.lock().unwrap().clone();
    let file = s.db.dir.path().join("backup.db");
    let out = s.db.tocsin().args(["backup"]).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (acked, _) = load.finish();
    assert!(acked.len() > before.len());
    drop(p);
    // Restore: the copy becomes the database of a fresh directory.
    let restored = TestDb::new(Backend::Sqlite).unwrap();
    std::fs::copy(&file, restored.url.trim_start_matches("sqlite://")).unwrap();
    let verify = restored
        .tocsin()
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    check_acked_stored_once(&restored, &before);
    let total = restored.query_i64("SELECT COUNT(*) AS n FROM alerts");
    assert!(total as usize <= acked.len());
    let server = Server::start(&restored);
    let ready = browser().get(server.url("/readyz")).send().unwrap();
    assert_eq!(ready.status(), 200);
    // A second backup to the same file is refused rather than overwriting it.
    let again = s.db.tocsin().args(["backup"]).arg(&file).output().unwrap();
    assert!(!again.status.success());
}

/// On PostgreSQL the command says which tools to use instead.
#[test]
fn backup_on_postgres_points_at_pg_dump() {
    let Some(db) = postgres() else { return };
    db.run_ok(&["migrate"]);
    let out = db
        .tocsin()
        .args(["backup"])
        .arg(db.dir.path().join("x.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
}

/// When the writer cannot keep up (the SQLite write lock held by someone else), requests
/// beyond the queue get 503 with Retry-After and /readyz says not ready; when the lock
/// goes, ingestion recovers by itself.
#[test]
fn a_stalled_writer_answers_503_and_recovers() {
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    let s = Setup::new(db, &[]);
    let p = s.server("all", &[("TOCSIN_INGEST_QUEUE_CAPACITY", "2")]);
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut blocker =
        diesel::SqliteConnection::establish(s.db.url.trim_start_matches("sqlite://")).unwrap();
    blocker.batch_execute("BEGIN IMMEDIATE").unwrap();
    let load = Load::start(vec![p.base.clone()], &s.hive, 6, 2);
    let client = browser();
    p.poll("readiness to drop", || {
        let r = client.get(p.url("/readyz")).send().ok()?;
        (r.status() == 503).then_some(())
    });
    p.poll("a 503 from ingestion", || {
        load.refused.lock().unwrap().contains(&503).then_some(())
    });
    blocker.batch_execute("ROLLBACK").unwrap();
    let (acked, _) = load.finish();
    assert_eq!(acked.len(), 6 * 2 * 10);
    check_acked_stored_once(&s.db, &acked);
    let ready = client.get(p.url("/readyz")).send().unwrap();
    assert_eq!(ready.status(), 200);
}

both_backends!(sigterm_during_runs, retention_keeps_the_audit_chain);
