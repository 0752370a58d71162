//! The playbook engine through the real server: manual and triggered runs, branches and
//! joins, foreach, retries, timeouts, on_failure paths, approval gates (decisions,
//! four-eyes, deadlines, escalation, concurrency), cancellation, child runs, schedules,
//! and a server killed with SIGKILL mid-run that resumes without repeating steps.

mod common;

use common::stub::{Behavior, Stub};
use common::{browser, Server, TestClock, TestDb};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";

struct Env {
    db: TestDb,
    server: Server,
    stub: Stub,
    /// Tokens of ann (analyst), rex and rae (responders), ada (admin), vic (viewer).
    ann: String,
    rex: String,
    rae: String,
    ada: String,
    vic: String,
    /// The server's scheduler clock, which tests move forward.
    clock: TestClock,
}

/// A configured integration secret, whose value must never be stored or audited.
const SECRET: &str = "s3cr3t-demo-value-42";

const SERVER_ENV: [(&str, &str); 2] = [
    ("TOCSIN_ENGINE_LEASE_SECONDS", "2"),
    ("TOCSIN_SECRET_DEMO_TOKEN", SECRET),
];

/// The server on `db`, its scheduler on `clock`.
fn start(db: &TestDb, clock: &TestClock) -> Server {
    let (k, v) = clock.env();
    let mut env: Vec<(&str, &str)> = SERVER_ENV.to_vec();
    env.push((k.as_str(), v.as_str()));
    Server::start_with(db, &env)
}

impl Env {
    /// Writes `playbooks` (id → YAML, where `STUB` stands for the stub's base URL) and
    /// starts the server.
    fn new(db: TestDb, playbooks: &[(&str, &str)]) -> Env {
        let stub = Stub::start();
        common::write_playbooks(&db, &stub.base, playbooks);
        for (name, role) in [
            ("ann", "analyst"),
            ("rex", "responder"),
            ("rae", "responder"),
            ("ada", "admin"),
            ("vic", "viewer"),
        ] {
            db.add_user(name, role, PW);
        }
        let (ann, rex, rae, ada, vic) = (
            db.token("ann"),
            db.token("rex"),
            db.token("rae"),
            db.token("ada"),
            db.token("vic"),
        );
        let clock = TestClock::new(&db);
        let server = start(&db, &clock);
        Env {
            db,
            server,
            stub,
            clock,
            ann,
            rex,
            rae,
            ada,
            vic,
        }
    }

    fn restart(&mut self) {
        self.server.kill();
        self.server = start(&self.db, &self.clock);
    }

    fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.server.post_json(token, path, &body)
    }

    fn get(&self, token: &str, path: &str) -> Value {
        self.server.get_json(token, path)
    }

    /// Starts `playbook` manually as ann; returns the run id.
    fn start(&self, playbook: &str, body: Value) -> i64 {
        let (status, run) = self.post(
            &self.ann,
            &format!("/api/v1/playbooks/{playbook}/runs"),
            body,
        );
        assert_eq!(status, 201, "{run}");
        run["id"].as_i64().unwrap()
    }

    fn run(&self, id: i64) -> Value {
        self.get(&self.vic, &format!("/api/v1/runs/{id}"))
    }

    /// Polls run `id` until `done` holds (at most 30 s).
    fn wait_for(&self, id: i64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.server.poll(&format!("run {id}: {what}"), || {
            Some(self.run(id)).filter(|r| done(r))
        })
    }

    fn finished(&self, id: i64) -> Value {
        self.wait_for(id, "the end", |r| {
            matches!(
                r["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
        })
    }

    fn wait_hits(&self, path: &str, n: u32) {
        self.server.poll(&format!("{n} call(s) of {path}"), || {
            (self.stub.hits(path) >= n).then_some(())
        });
    }
}

fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {run:#}"))
}

const LINEAR: &str = r#"
id: linear
version: 3
trigger: { on: manual }
inputs:
  - { name: who, type: string, required: true }
  - { name: times, type: number, default: 2 }
steps:
  - id: hello
    uses: noop
    with: { value: "hello ${{ $.inputs.who }}" }
  - id: echo
    uses: notify.webhook
    with:
      url: STUB/echo
      body: { greeting: "${{ $.steps.hello.output }}", times: "${{ $.inputs.times }}" }
    outputs:
      seen: "${{ $.output.body.body.greeting }}"
  - id: done
    uses: noop
    with: { value: "${{ $.steps.echo.output.seen | upper }}" }
"#;

fn a_linear_run_records_every_step_and_is_audited(db: TestDb) {
    let env = Env::new(db, &[("linear", LINEAR)]);
    let id = env.start("linear", json!({ "inputs": { "who": "world" } }));
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["playbook"], "linear");
    assert_eq!(run["version"], 3);
    assert_eq!(run["requested_by"], "user:ann");
    assert_eq!(run["inputs"], json!({ "who": "world", "times": 2 }));
    assert_eq!(step(&run, "hello")["output"], "hello world");
    assert_eq!(
        step(&run, "echo")["output"],
        json!({ "seen": "hello world" })
    );
    assert_eq!(step(&run, "echo")["input"]["body"]["times"], 2);
    assert_eq!(step(&run, "done")["output"], "HELLO WORLD");
    assert_eq!(env.stub.hits("/echo"), 1);
    let sent: Value = serde_json::from_str(&env.stub.bodies("/echo")[0]).unwrap();
    assert_eq!(sent, json!({ "greeting": "hello world", "times": 2 }));

    let events = env.db.audit_events();
    let of_run: Vec<&Value> = events
        .iter()
        .filter(|e| e["target"] == format!("run:{id}"))
        .collect();
    let actions: Vec<&str> = of_run
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "playbook.run_created",
            "playbook.run_started",
            "playbook.step_finished",
            "playbook.step_finished",
            "playbook.step_finished",
            "playbook.run_finished"
        ]
    );
    assert!(
        of_run[0]["actor_id"].as_str().unwrap().starts_with("ann/"),
        "an API token of ann"
    );
    assert_eq!(of_run[3]["details"]["input"]["url"], env.stub.url("/echo"));
    let verify = env.db.run_ok(&["audit", "verify"]);
    assert!(verify.contains("intact"), "{verify}");
    let metrics = browser()
        .get(env.server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("tocsin_playbook_runs_finished_total{outcome=\"succeeded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tocsin_playbook_steps_finished_total{outcome=\"succeeded\"} 3"),
        "{metrics}"
    );
}

fn manual_runs_check_permissions_playbooks_and_inputs(db: TestDb) {
    let env = Env::new(db, &[("linear", LINEAR)]);
    let (status, body) = env.post(
        &env.vic,
        "/api/v1/playbooks/linear/runs",
        json!({ "inputs": { "who": "x" } }),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = env.post(&env.ann, "/api/v1/playbooks/nope/runs", json!({}));
    assert_eq!(status, 404, "{body}");
    let (status, body) = env.post(
        &env.ann,
        "/api/v1/playbooks/linear/runs",
        json!({ "inputs": {} }),
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("inputs.who"),
        "{body}"
    );
    let (status, body) = env.post(
        &env.ann,
        "/api/v1/playbooks/linear/runs",
        json!({ "inputs": { "who": 5 } }),
    );
    assert_eq!(status, 422, "{body}");
    let (status, body) = env.post(
        &env.ann,
        "/api/v1/playbooks/linear/runs",
        json!({ "case_id": 999, "inputs": { "who": "x" } }),
    );
    assert_eq!(status, 404, "{body}");
    let (status, body) = env.post(
        &env.ann,
        "/api/v1/playbooks/linear/runs",
        json!({ "inputs": { "who": "x" }, "extra": 1 }),
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("extra"),
        "{body}"
    );
    let listed = env.get(&env.vic, "/api/v1/runs");
    assert_eq!(listed["runs"], json!([]), "refused requests created no run");
    let playbooks = env.get(&env.vic, "/api/v1/playbooks");
    assert_eq!(playbooks["playbooks"][0]["id"], "linear");
}

const FLOW: &str = r#"
id: flow
version: 1
trigger: { on: manual }
inputs:
  - { name: hosts, type: array, default: [a, b, c] }
steps:
  - id: left
    uses: notify.webhook
    needs: []
    with: { url: STUB/left }
  - id: right
    uses: http.request
    needs: []
    with: { method: GET, url: STUB/right }
  - id: per_host
    uses: notify.webhook
    needs: []
    foreach: $.inputs.hosts[*]
    with: { url: "STUB/host-${{ $.item }}", body: { host: "${{ $.item }}" } }
    outputs:
      host: "${{ $.item }}"
      n: "${{ $.output.body.n }}"
  - id: join
    uses: noop
    needs: [left, right, per_host]
    with:
      value: "${{ $.steps.per_host.output[*].host | join('+') }} after ${{ $.steps.left.status }}/${{ $.steps.right.status }}"
  - id: never
    uses: noop
    if: $.steps.join.status == 'failed'
  - id: empty_loop
    uses: notify.webhook
    foreach: "$.inputs.hosts[?(@ == 'zzz')]"
    with: { url: STUB/never }
"#;

fn parallel_branches_join_and_foreach_collects_item_outputs(db: TestDb) {
    let env = Env::new(db, &[("flow", FLOW)]);
    let id = env.start("flow", json!({}));
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(
        step(&run, "join")["output"],
        "a+b+c after succeeded/succeeded"
    );
    let per_host = step(&run, "per_host");
    assert_eq!(
        per_host["output"],
        json!([{ "host": "a", "n": 1 }, { "host": "b", "n": 1 }, { "host": "c", "n": 1 }])
    );
    assert_eq!(per_host["items"].as_array().unwrap().len(), 3);
    assert_eq!(per_host["items"][1]["item"], "b");
    assert_eq!(step(&run, "never")["status"], "skipped");
    assert_eq!(step(&run, "empty_loop")["status"], "succeeded");
    assert_eq!(step(&run, "empty_loop")["output"], json!([]));
    for p in ["/left", "/right", "/host-a", "/host-b", "/host-c"] {
        assert_eq!(env.stub.hits(p), 1, "{p}");
    }
    assert_eq!(env.stub.hits("/never"), 0);
    // The join started only after every branch ended.
    let join_start = step(&run, "join")["started_at"]
        .as_str()
        .unwrap()
        .to_string();
    for b in ["left", "right", "per_host"] {
        assert!(
            step(&run, b)["finished_at"].as_str().unwrap() <= join_start.as_str(),
            "{b}"
        );
    }
}

const FAILURES: &str = r#"
id: failures
version: 1
trigger: { on: manual }
steps:
  - id: flaky
    uses: http.request
    with: { method: GET, url: STUB/flaky }
    retry: { attempts: 3, backoff: 100ms }
  - id: slow
    uses: http.request
    with: { method: GET, url: STUB/slow }
    timeout: 300ms
    on_failure: continue
  - id: broken
    uses: notify.webhook
    with: { url: STUB/broken }
    on_failure: goto:recover
  - id: jumped
    uses: notify.webhook
    with: { url: STUB/jumped }
  - id: also_jumped
    uses: noop
  - id: independent
    uses: notify.webhook
    needs: []
    with: { url: STUB/independent }
  - id: recover
    uses: noop
    needs: [also_jumped, independent]
    with: { value: "broken said: ${{ $.steps.broken.error }}" }
  - id: fatal
    uses: notify.webhook
    with: { url: STUB/fatal }
  - id: after_fatal
    uses: notify.webhook
    with: { url: STUB/after-fatal }
"#;

fn retries_timeouts_and_on_failure_paths(db: TestDb) {
    let env = Env::new(db, &[("failures", FAILURES)]);
    env.stub.behave(
        "/flaky",
        Behavior {
            fail_first: 2,
            ..Default::default()
        },
    );
    env.stub.behave(
        "/slow",
        Behavior {
            delay: Duration::from_secs(2),
            ..Default::default()
        },
    );
    env.stub.behave(
        "/broken",
        Behavior {
            status: 400,
            ..Default::default()
        },
    );
    env.stub.behave(
        "/fatal",
        Behavior {
            status: 500,
            ..Default::default()
        },
    );
    let id = env.start("failures", json!({}));
    let run = env.finished(id);
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(run["error"].as_str().unwrap().contains("fatal"), "{run:#}");

    let flaky = step(&run, "flaky");
    assert_eq!(flaky["status"], "succeeded");
    assert_eq!(flaky["attempts"], 3);
    assert_eq!(env.stub.hits("/flaky"), 3);
    // Two backoffs of 100 ms and 200 ms lie between the first attempt and the end.
    assert!(flaky["duration_ms"].as_i64().unwrap() >= 300, "{flaky}");

    let slow = step(&run, "slow");
    assert_eq!(slow["status"], "failed");
    assert!(
        slow["error"].as_str().unwrap().contains("timed out"),
        "{slow}"
    );

    assert_eq!(step(&run, "broken")["status"], "failed");
    assert!(step(&run, "broken")["error"]
        .as_str()
        .unwrap()
        .contains("400"));
    assert_eq!(step(&run, "jumped")["status"], "skipped");
    assert_eq!(step(&run, "also_jumped")["status"], "skipped");
    assert_eq!(env.stub.hits("/jumped"), 0);
    assert_eq!(step(&run, "independent")["status"], "succeeded");
    assert_eq!(step(&run, "recover")["status"], "succeeded");
    assert!(step(&run, "recover")["output"]
        .as_str()
        .unwrap()
        .contains("HTTP 400"));
    assert_eq!(step(&run, "fatal")["status"], "failed");
    assert_eq!(step(&run, "after_fatal")["status"], "not_started");
    assert_eq!(env.stub.hits("/after-fatal"), 0);
}

const GATED: &str = r#"
id: gated
version: 1
trigger: { on: manual }
inputs:
  - { name: ip, type: string, default: 203.0.113.7 }
steps:
  - id: block
    uses: http.request
    with: { method: POST, url: STUB/block, body: { ip: "${{ $.inputs.ip }}" } }
    approval:
      roles: [responder]
      timeout: 1h
      message: "Block ${{ $.inputs.ip }} (run ${{ $.run.id }})?"
  - id: after
    uses: noop
    with: { value: "block was ${{ $.steps.block.status }}" }
"#;

const FOUR_EYES: &str = r#"
id: four-eyes
version: 1
trigger: { on: manual }
steps:
  - id: isolate
    uses: http.request
    with: { method: POST, url: STUB/isolate }
    approval:
      roles: [responder]
      required: 2
      timeout: 1h
      message: Isolate the host?
"#;

fn gate_of(env: &Env, run: i64) -> Value {
    let r = env.wait_for(run, "a gate", |r| {
        r["approvals"].as_array().is_some_and(|a| !a.is_empty())
    });
    r["approvals"][0].clone()
}

fn containment_waits_for_approval_then_runs_once(db: TestDb) {
    let env = Env::new(db, &[("gated", GATED), ("four-eyes", FOUR_EYES)]);
    let id = env.start("gated", json!({}));
    let gate = gate_of(&env, id);
    let run = env.wait_for(id, "waiting", |r| r["status"] == "waiting");
    assert_eq!(step(&run, "block")["status"], "waiting_approval");
    assert_eq!(gate["status"], "pending");
    assert_eq!(gate["message"], format!("Block 203.0.113.7 (run {id})?"));
    assert_eq!(gate["action"], "http.request");
    assert_eq!(env.stub.hits("/block"), 0, "nothing runs before approval");
    let gid = gate["id"].as_i64().unwrap();
    let decide = format!("/api/v1/approvals/{gid}/decision");

    // In the responders' inboxes, not in the analyst's.
    assert_eq!(
        env.get(&env.rex, "/api/v1/approvals")["approvals"][0]["id"],
        gid
    );
    assert_eq!(
        env.get(&env.ann, "/api/v1/approvals")["approvals"],
        json!([])
    );
    // An analyst may not decide; a rejection needs a comment; the decision must be known.
    let (s, b) = env.post(&env.ann, &decide, json!({ "decision": "approve" }));
    assert_eq!(s, 403, "{b}");
    let (s, b) = env.post(&env.rex, &decide, json!({ "decision": "reject" }));
    assert_eq!(s, 422, "{b}");
    let (s, b) = env.post(&env.rex, &decide, json!({ "decision": "maybe" }));
    assert_eq!(s, 422, "{b}");

    let (s, b) = env.post(
        &env.rex,
        &decide,
        json!({ "decision": "approve", "comment": "ok" }),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "approved");
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(step(&run, "block")["status"], "succeeded");
    assert_eq!(step(&run, "after")["output"], "block was succeeded");
    assert_eq!(env.stub.hits("/block"), 1);
    // A second decision on a settled gate is refused and changes nothing.
    let (s, b) = env.post(
        &env.rae,
        &decide,
        json!({ "decision": "reject", "comment": "late" }),
    );
    assert_eq!(s, 409, "{b}");
    assert_eq!(env.stub.hits("/block"), 1);
    let decided = env.db.audit_with_action("approval.decided");
    assert_eq!(decided.len(), 1);
    assert!(decided[0]["actor_id"].as_str().unwrap().starts_with("rex/"));
    assert_eq!(decided[0]["details"]["channel"], "api");

    // Rejected: the step is skipped as rejected and the run goes on.
    let id = env.start("gated", json!({}));
    let gid = gate_of(&env, id)["id"].as_i64().unwrap();
    let (s, b) = env.post(
        &env.rae,
        &format!("/api/v1/approvals/{gid}/decision"),
        json!({ "decision": "reject", "comment": "false positive" }),
    );
    assert_eq!(s, 200, "{b}");
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded");
    assert_eq!(step(&run, "block")["status"], "rejected");
    assert!(step(&run, "block")["error"]
        .as_str()
        .unwrap()
        .contains("false positive"));
    assert_eq!(step(&run, "after")["output"], "block was rejected");
    assert_eq!(env.stub.hits("/block"), 1, "a rejected step does not run");

    // Four eyes: two distinct responders; the requester may not approve.
    let (s, run) = env.post(&env.rex, "/api/v1/playbooks/four-eyes/runs", json!({}));
    assert_eq!(s, 201);
    let id = run["id"].as_i64().unwrap();
    let gid = gate_of(&env, id)["id"].as_i64().unwrap();
    let decide = format!("/api/v1/approvals/{gid}/decision");
    let (s, b) = env.post(&env.rex, &decide, json!({ "decision": "approve" }));
    assert_eq!(s, 403, "the requester approved their own run: {b}");
    let (s, b) = env.post(&env.rae, &decide, json!({ "decision": "approve" }));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "pending", "one approval of two");
    let (s, b) = env.post(&env.rae, &decide, json!({ "decision": "approve" }));
    assert_eq!(s, 409, "the same person twice: {b}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(env.stub.hits("/isolate"), 0);
    let (s, b) = env.post(&env.ada, &decide, json!({ "decision": "approve" }));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "approved");
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded");
    assert_eq!(env.stub.hits("/isolate"), 1);
}

fn concurrent_decisions_settle_a_gate_once(db: TestDb) {
    let env = Env::new(db, &[("gated", GATED)]);
    let id = env.start("gated", json!({}));
    let gid = gate_of(&env, id)["id"].as_i64().unwrap();
    let path = format!("/api/v1/approvals/{gid}/decision");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let a = s.spawn(|| {
            env.post(&env.rex, &path, json!({ "decision": "approve" }))
                .0
        });
        let b = s.spawn(|| {
            env.post(
                &env.rae,
                &path,
                json!({ "decision": "reject", "comment": "no" }),
            )
            .0
        });
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, vec![200, 409], "{statuses:?}");
    let run = env.finished(id);
    let blocked = env.stub.hits("/block");
    match step(&run, "block")["status"].as_str() {
        Some("succeeded") => assert_eq!(blocked, 1),
        Some("rejected") => assert_eq!(blocked, 0),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(env.db.audit_with_action("approval.decided").len(), 1);
}

/// `n` gated steps in parallel, each calling the stub once it is approved.
fn many_gates(n: usize) -> String {
    let mut yaml = String::from("id: many-gates\nversion: 1\ntrigger: { on: manual }\nsteps:\n");
    for k in 0..n {
        yaml.push_str(&format!(
            "  - id: g{k}\n    uses: http.request\n    needs: []\n    with: {{ method: POST, url: STUB/g{k} }}\n    approval: {{ roles: [responder], timeout: 1h, message: Go {k}? }}\n"
        ));
    }
    yaml
}

// Regression: a decision used to lock the audit chain before the run row, while the
// engine's transactions lock the run row (lease fence) before appending to the audit
// chain; on PostgreSQL, a decision landing while the engine committed a step of the same
// run could deadlock and answer 500.
fn decisions_while_the_run_moves_never_deadlock(db: TestDb) {
    const N: usize = 12;
    const ROUNDS: usize = 4;
    let yaml = many_gates(N);
    let env = Env::new(db, &[("many-gates", &yaml)]);
    for _round in 0..ROUNDS {
        let id = env.start("many-gates", json!({}));
        let run = env.wait_for(id, "every gate", |r| {
            r["approvals"].as_array().is_some_and(|a| a.len() == N)
        });
        let gates: Vec<i64> = run["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_i64().unwrap())
            .collect();
        // One after the other, so each decision meets the engine busy with the steps
        // approved just before.
        let answers: Vec<(u16, Value)> = gates
            .iter()
            .enumerate()
            .map(|(k, gid)| {
                let who = if k % 2 == 0 { &env.rex } else { &env.rae };
                env.post(
                    who,
                    &format!("/api/v1/approvals/{gid}/decision"),
                    json!({ "decision": "approve" }),
                )
            })
            .collect();
        for (status, body) in &answers {
            assert_eq!(*status, 200, "{body}\nserver log:\n{}", env.server.stderr());
        }
        let run = env.finished(id);
        assert_eq!(run["status"], "succeeded", "{run:#}");
    }
    for k in 0..N {
        assert_eq!(env.stub.hits(&format!("/g{k}")), ROUNDS as u32, "g{k}");
    }
}

const DEADLINES: &str = r#"
id: deadlines
version: 1
trigger: { on: manual }
steps:
  - id: quick
    uses: http.request
    needs: []
    with: { method: DELETE, url: STUB/quick }
    approval: { roles: [responder], timeout: 30m, message: Quick? }
  - id: escalating
    uses: http.request
    needs: []
    with: { method: DELETE, url: STUB/escalating }
    approval:
      roles: [responder]
      timeout: 1h
      on_timeout: escalate
      escalate_to: { roles: [admin], timeout: 1h }
      message: Escalating?
"#;

fn gate_deadlines_reject_or_escalate(db: TestDb) {
    let env = Env::new(db, &[("deadlines", DEADLINES)]);
    let id = env.start("deadlines", json!({}));
    // Both gates open; 31 minutes on the quick one has timed out, the other not yet.
    env.wait_for(id, "two gates", |r| {
        r["approvals"].as_array().is_some_and(|a| a.len() == 2)
    });
    env.clock.advance(Duration::from_secs(31 * 60));
    env.wait_for(id, "the quick gate rejected", |r| {
        step(r, "quick")["status"] == "rejected"
    });
    let run = env.run(id);
    assert_eq!(step(&run, "escalating")["status"], "waiting_approval");
    // Past the first hour it escalates to admins; past the second it times out.
    env.clock.advance(Duration::from_secs(30 * 60));
    env.wait_for(id, "escalation", |r| {
        r["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["escalation_level"] == 1)
    });
    env.clock.advance(Duration::from_secs(3600));
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(step(&run, "quick")["status"], "rejected");
    assert_eq!(step(&run, "escalating")["status"], "rejected");
    assert_eq!(env.stub.hits("/quick") + env.stub.hits("/escalating"), 0);
    let gates = run["approvals"].as_array().unwrap();
    assert!(
        gates.iter().all(|g| g["status"] == "timed_out"),
        "{gates:?}"
    );
    let escalated: Vec<&Value> = gates
        .iter()
        .filter(|g| g["step_id"] == "escalating")
        .collect();
    assert_eq!(escalated[0]["escalation_level"], 1);
    assert_eq!(escalated[0]["approvers"]["roles"], json!(["admin"]));
    assert_eq!(env.db.audit_with_action("approval.escalated").len(), 1);
    assert_eq!(env.db.audit_with_action("approval.timed_out").len(), 2);
}

const SLOW: &str = r#"
id: slow
version: 1
trigger: { on: manual }
steps:
  - id: nap
    uses: wait
    needs: []
    with: { duration: 1h }
  - id: gate
    uses: http.request
    needs: []
    with: { method: POST, url: STUB/gate }
    approval: { roles: [responder], timeout: 1h, message: Go? }
  - id: after
    uses: notify.webhook
    needs: [nap, gate]
    with: { url: STUB/after }
"#;

fn a_cancelled_run_stops_and_closes_its_gates(db: TestDb) {
    let env = Env::new(db, &[("slow", SLOW)]);
    let id = env.start("slow", json!({}));
    env.wait_for(id, "parked", |r| {
        r["status"] == "waiting" && !r["approvals"].as_array().unwrap().is_empty()
    });
    // Cancelling needs a responder, as in the console: viewers and analysts are refused.
    for who in [&env.vic, &env.ann] {
        let (s, b) = env.post(who, &format!("/api/v1/runs/{id}/cancel"), json!({}));
        assert_eq!(s, 403, "{b}");
    }
    let (s, b) = env.post(&env.rex, &format!("/api/v1/runs/{id}/cancel"), json!({}));
    assert_eq!(s, 202, "{b}");
    let run = env.finished(id);
    assert_eq!(run["status"], "cancelled", "{run:#}");
    assert_eq!(step(&run, "nap")["status"], "cancelled");
    assert_eq!(step(&run, "gate")["status"], "cancelled");
    assert_eq!(step(&run, "after")["status"], "not_started");
    assert_eq!(run["approvals"][0]["status"], "cancelled");
    assert_eq!(env.stub.hits("/after") + env.stub.hits("/gate"), 0);
    let (s, b) = env.post(&env.rex, &format!("/api/v1/runs/{id}/cancel"), json!({}));
    assert_eq!(s, 409, "{b}");
    let (s, _) = env.post(&env.rex, "/api/v1/runs/9999/cancel", json!({}));
    assert_eq!(s, 404);
}

const PARENT: &str = r#"
id: parent
version: 1
trigger: { on: manual }
steps:
  - id: child
    uses: playbook.run
    with: { playbook: child, inputs: { n: 7 } }
  - id: after
    uses: noop
    with: { value: "${{ $.steps.child.output.steps.double.output }}" }
"#;

const CHILD: &str = r#"
id: child
version: 1
trigger: { on: manual }
inputs: [ { name: n, type: number, required: true } ]
steps:
  - id: call
    uses: notify.webhook
    with: { url: STUB/child, body: { n: "${{ $.inputs.n }}" } }
  - id: double
    uses: noop
    with: { value: "${{ $.steps.call.output.body.body.n }}" }
"#;

fn playbook_run_starts_a_child_and_waits_for_it(db: TestDb) {
    let env = Env::new(db, &[("parent", PARENT), ("child", CHILD)]);
    let id = env.start("parent", json!({}));
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(step(&run, "after")["output"], 7);
    let child_id = step(&run, "child")["child_run_id"].as_i64().unwrap();
    let child = env.run(child_id);
    assert_eq!(child["status"], "succeeded");
    assert_eq!(child["inputs"], json!({ "n": 7 }));
    assert_eq!(child["requested_by"], "user:ann");
    assert_eq!(env.stub.hits("/child"), 1);
}

const ON_CASE: &str = r#"
id: on-case
version: 1
trigger: { on: case.created }
condition: "$.alerts[0].severity_id >= 4"
steps:
  - id: note
    uses: case.comment
    with: { body: "Automated triage of ${{ $.case.title }} from ${{ $.alerts[0].source }}" }
  - id: tag
    uses: case.tag
    with: { tags: [auto, "sev-${{ $.case.severity_id }}"] }
  - id: triage
    uses: case.set
    with: { status: triage }
  - id: check
    uses: noop
    with: { value: "${{ $.case.status }}" }
"#;

const ON_ALERT: &str = r#"
id: on-alert
version: 1
trigger: { on: alert.ingested }
steps:
  - id: seen
    uses: notify.webhook
    with: { url: STUB/alert, body: { title: "${{ $.alerts[0].title }}", case: "${{ $.case.id }}" } }
"#;

fn ingest(env: &Env, token: &str, title: &str, severity: u32) -> Value {
    let res = browser()
        .post(env.server.url("/api/v1/ingest/hive"))
        .bearer_auth(token)
        .json(&json!({
            "type": "test", "source": "unit", "sourceRef": title, "title": title,
            "description": "d", "severity": severity,
            "observables": [{ "dataType": "ip", "data": format!("198.51.100.{severity}") }]
        }))
        .send()
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().unwrap());
    res.json().unwrap()
}

fn triggers_start_runs_when_their_condition_holds(db: TestDb) {
    let env = Env::new(db, &[("on-case", ON_CASE), ("on-alert", ON_ALERT)]);
    let out = env
        .db
        .run_ok(&["source", "add", "hive", "--kind", "thehive"]);
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token="))
        .unwrap()
        .to_string();
    ingest(&env, &token, "low one", 1);
    ingest(&env, &token, "high one", 3);
    env.wait_hits("/alert", 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    let runs = loop {
        let runs = env.get(&env.vic, "/api/v1/runs?playbook=on-case")["runs"].clone();
        if runs
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == "succeeded")
        {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "no on-case run: {runs}\n{}",
            env.server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // TheHive severity 3 is high (OCSF 4): only that case passes the condition.
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    let run = env.run(runs[0]["id"].as_i64().unwrap());
    assert_eq!(run["trigger"], "case.created");
    assert_eq!(run["requested_by"], "trigger:case.created");
    assert_eq!(step(&run, "check")["output"], "triage");
    let case_id = run["case_id"].as_i64().unwrap();
    let case = env.get(&env.vic, &format!("/api/v1/cases/{case_id}"));
    assert_eq!(case["case"]["title"], "high one");
    assert_eq!(case["case"]["status"], "triage");
    assert_eq!(case["case"]["tags"], json!(["auto", "sev-4"]));
    assert_eq!(
        case["comments"][0]["body"],
        "Automated triage of high one from hive"
    );
    assert_eq!(
        case["comments"][0]["author"],
        format!("playbook:on-case#{}", run["id"])
    );
    // The playbook's own status change fired no case.updated loop, and each alert
    // started the alert playbook exactly once.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(env.stub.hits("/alert"), 2);
    let titles: Vec<String> = env
        .stub
        .bodies("/alert")
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).unwrap()["title"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(titles.contains(&"low one".to_string()) && titles.contains(&"high one".to_string()));
    let all = env.get(&env.vic, "/api/v1/runs")["runs"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(all, 3);
}

const SCHEDULED: &str = r#"
id: nightly
version: 1
trigger: { on: schedule, schedule: "0 3 * * *" }
steps:
  - id: tick
    uses: notify.webhook
    with: { url: STUB/tick }
"#;

fn a_due_schedule_fires_once(db: TestDb) {
    let env = Env::new(db, &[("nightly", SCHEDULED)]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while env
        .db
        .query_i64("SELECT COUNT(*) AS n FROM playbook_schedules")
        == 0
    {
        assert!(Instant::now() < deadline, "schedule row not written");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Pretend 03:00 has just passed.
    env.db
        .exec("UPDATE playbook_schedules SET next_fire_at = '2020-01-01 03:00:00'")
        .unwrap();
    env.wait_hits("/tick", 1);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(env.stub.hits("/tick"), 1, "fired once, not once per tick");
    let next = env.db.query_i64(
        "SELECT COUNT(*) AS n FROM playbook_schedules WHERE next_fire_at > '2026-01-01 00:00:00'",
    );
    assert_eq!(next, 1, "the next due time moved on");
    let runs = env.get(&env.vic, "/api/v1/runs")["runs"].clone();
    assert_eq!(runs[0]["trigger"], "schedule");
}

const CRASH: &str = r#"
id: crash
version: 1
trigger: { on: manual }
steps:
  - id: first
    uses: notify.webhook
    with: { url: STUB/first }
  - id: pause
    uses: wait
    with: { duration: 2s }
  - id: slow_get
    uses: http.request
    with: { method: GET, url: STUB/slow-get }
  - id: slow_post
    uses: notify.webhook
    with: { url: STUB/slow-post }
    on_failure: continue
  - id: keyed_post
    uses: notify.webhook
    idempotency_key: "run-${{ $.run.id }}-keyed"
    with: { url: STUB/keyed }
  - id: last
    uses: notify.webhook
    with: { url: STUB/last }
"#;

fn a_killed_server_resumes_runs_without_repeating_steps(db: TestDb) {
    let mut env = Env::new(db, &[("crash", CRASH)]);
    let slow = Behavior {
        delay: Duration::from_secs(3),
        ..Default::default()
    };
    for p in ["/slow-get", "/slow-post", "/keyed"] {
        env.stub.behave(p, slow.clone());
    }
    let id = env.start("crash", json!({}));
    // 1. Killed while the run waits: the finished step is not repeated.
    env.wait_hits("/first", 1);
    env.wait_for(id, "the pause", |r| step(r, "pause")["status"] == "waiting");
    env.restart();
    // 2. Killed during an idempotent GET: repeated after the restart.
    env.wait_hits("/slow-get", 1);
    env.restart();
    // 3. Killed during a POST without idempotency key: not repeated; the step fails as
    //    interrupted and the run goes on (on_failure: continue).
    env.wait_hits("/slow-post", 1);
    env.restart();
    // 4. Killed during a POST with an idempotency key: repeated with the same key.
    env.wait_hits("/keyed", 1);
    env.restart();
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(env.stub.hits("/first"), 1);
    assert_eq!(env.stub.hits("/slow-get"), 2);
    assert_eq!(env.stub.hits("/slow-post"), 1);
    assert_eq!(env.stub.hits("/keyed"), 2);
    assert_eq!(env.stub.hits("/last"), 1);
    let post = step(&run, "slow_post");
    assert_eq!(post["status"], "failed");
    assert!(
        post["error"].as_str().unwrap().contains("interrupted"),
        "{post}"
    );
    let keys: Vec<String> = env
        .stub
        .headers("/keyed")
        .iter()
        .map(|h| h.get("idempotency-key").cloned().unwrap_or_default())
        .collect();
    assert_eq!(keys, vec![format!("run-{id}-keyed"); 2]);
    assert_eq!(step(&run, "first")["attempts"], 1);
    let verify = env.db.run_ok(&["audit", "verify"]);
    assert!(verify.contains("intact"), "{verify}");
}

const ORDERLY: &str = r#"
id: orderly
version: 1
trigger: { on: manual }
steps:
  - id: slow_post
    uses: notify.webhook
    with: { url: STUB/slow-post }
  - id: after
    uses: notify.webhook
    with: { url: STUB/after }
"#;

fn sigterm_lets_a_call_in_flight_finish_and_the_run_resumes(db: TestDb) {
    let mut env = Env::new(db, &[("orderly", ORDERLY)]);
    env.stub.behave(
        "/slow-post",
        Behavior {
            delay: Duration::from_secs(2),
            ..Default::default()
        },
    );
    let id = env.start("orderly", json!({}));
    env.wait_hits("/slow-post", 1);
    let status = env.server.terminate();
    assert!(status.success(), "exit status {status}");
    // The call in flight was answered and recorded before the exit; nothing after it ran.
    assert_eq!(env.stub.hits("/after"), 0);
    env.server = Server::start_with(&env.db, &SERVER_ENV);
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(step(&run, "slow_post")["status"], "succeeded");
    assert_eq!(step(&run, "slow_post")["attempts"], 1);
    assert_eq!(
        env.stub.hits("/slow-post"),
        1,
        "not repeated, not interrupted"
    );
    assert_eq!(env.stub.hits("/after"), 1);
}

fn secret_values_are_redacted_from_stored_and_audited_steps(db: TestDb) {
    let env = Env::new(db, &[("on-alert", ON_ALERT), ("linear", LINEAR)]);
    let out = env
        .db
        .run_ok(&["source", "add", "hive", "--kind", "thehive"]);
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token="))
        .unwrap()
        .to_string();
    // An alert happens to carry the value of a configured secret.
    ingest(&env, &token, &format!("leaked {SECRET} in a log line"), 2);
    env.wait_hits("/alert", 1);
    let runs = env.get(&env.vic, "/api/v1/runs")["runs"].clone();
    let id = runs[0]["id"].as_i64().unwrap();
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    // The call itself carried the value (the vendor gets what the step was given)...
    assert!(env.stub.bodies("/alert")[0].contains(SECRET));
    // ...but the step run Tocsin keeps and its audit events do not show it.
    let shown = run.to_string();
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("leaked **** in a log line"), "{shown}");
    let of_run: Vec<Value> = env
        .db
        .audit_events()
        .into_iter()
        .filter(|e| e["target"] == format!("run:{id}"))
        .collect();
    assert!(!of_run.is_empty());
    let audited = serde_json::to_string(&of_run).unwrap();
    assert!(!audited.contains(SECRET), "{audited}");

    // A manual run given the value as an input: neither the run shown by the API nor its
    // `playbook.run_created` event shows it.
    let manual = env.start(
        "linear",
        json!({ "inputs": { "who": format!("x {SECRET} y") } }),
    );
    let run = env.finished(manual);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["inputs"]["who"], "x **** y", "{run:#}");
    assert!(!run.to_string().contains(SECRET), "{run:#}");
    let created = env.db.audit_with_action("playbook.run_created");
    let created = serde_json::to_string(&created).unwrap();
    assert!(created.contains("x **** y"), "{created}");
    assert!(!created.contains(SECRET), "{created}");
}

const SLOW_PARENT: &str = r#"
id: slow-parent
version: 1
trigger: { on: manual }
steps:
  - id: child
    uses: playbook.run
    with: { playbook: sleeper }
"#;

const SLEEPER: &str = r#"
id: sleeper
version: 1
trigger: { on: manual }
steps:
  - id: nap
    uses: wait
    with: { duration: 1h }
"#;

fn cancelling_a_run_cancels_its_child_runs(db: TestDb) {
    let env = Env::new(db, &[("slow-parent", SLOW_PARENT), ("sleeper", SLEEPER)]);
    let id = env.start("slow-parent", json!({}));
    let parent = env.wait_for(id, "a child", |r| step(r, "child")["child_run_id"].is_i64());
    let child = step(&parent, "child")["child_run_id"].as_i64().unwrap();
    env.wait_for(child, "the child waiting", |r| {
        step(r, "nap")["status"] == "waiting"
    });
    let (s, b) = env.post(&env.rex, &format!("/api/v1/runs/{id}/cancel"), json!({}));
    assert_eq!(s, 202, "{b}");
    assert_eq!(env.finished(id)["status"], "cancelled");
    let child_run = env.finished(child);
    assert_eq!(child_run["status"], "cancelled", "{child_run:#}");
    assert_eq!(step(&child_run, "nap")["status"], "cancelled");
}

const ON_UPDATE: &str = r#"
id: on-update
version: 1
trigger: { on: case.updated }
# Any status change but to triage, so the playbook's own change would match if it fired.
condition: "exists($.trigger.details.changed.status) && $.trigger.details.changed.status.to != 'triage'"
steps:
  - id: note
    uses: notify.webhook
    with: { url: STUB/updated, body: { case: "${{ $.case.id }}", by: "${{ $.trigger.details.by }}" } }
  - id: contain
    uses: case.set
    with: { status: contained }
"#;

fn case_updates_trigger_playbooks_but_not_their_own_changes(db: TestDb) {
    let env = Env::new(db, &[("on-update", ON_UPDATE)]);
    let out = env
        .db
        .run_ok(&["source", "add", "hive", "--kind", "thehive"]);
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token="))
        .unwrap()
        .to_string();
    let case_id = ingest(&env, &token, "to work on", 2)["results"][0]["case_id"]
        .as_i64()
        .unwrap();
    let patch = |body: Value| {
        let res = browser()
            .patch(env.server.url(&format!("/api/v1/cases/{case_id}")))
            .bearer_auth(&env.ann)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
    };
    // A change the condition does not match starts nothing.
    patch(json!({ "status": "triage" }));
    patch(json!({ "status": "in_progress" }));
    env.wait_hits("/updated", 1);
    let runs = env.get(&env.vic, "/api/v1/runs")["runs"].clone();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    let run = env.finished(runs[0]["id"].as_i64().unwrap());
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["trigger"], "case.updated");
    let sent: Value = serde_json::from_str(&env.stub.bodies("/updated")[0]).unwrap();
    assert_eq!(sent["case"], case_id);
    assert!(
        sent["by"].as_str().unwrap().starts_with("api_token:ann/"),
        "{sent}"
    );
    // The playbook's own status change (which its condition matches) fired no second run.
    std::thread::sleep(Duration::from_millis(1500));
    let runs = env.get(&env.vic, "/api/v1/runs")["runs"].clone();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(env.stub.hits("/updated"), 1);
    let case = env.get(&env.vic, &format!("/api/v1/cases/{case_id}"));
    assert_eq!(case["case"]["status"], "contained");
}

both_backends!(
    case_updates_trigger_playbooks_but_not_their_own_changes,
    cancelling_a_run_cancels_its_child_runs,
    secret_values_are_redacted_from_stored_and_audited_steps,
    sigterm_lets_a_call_in_flight_finish_and_the_run_resumes,
    a_linear_run_records_every_step_and_is_audited,
    manual_runs_check_permissions_playbooks_and_inputs,
    parallel_branches_join_and_foreach_collects_item_outputs,
    retries_timeouts_and_on_failure_paths,
    containment_waits_for_approval_then_runs_once,
    concurrent_decisions_settle_a_gate_once,
    decisions_while_the_run_moves_never_deadlock,
    gate_deadlines_reject_or_escalate,
    a_cancelled_run_stops_and_closes_its_gates,
    playbook_run_starts_a_child_and_waits_for_it,
    triggers_start_runs_when_their_condition_holds,
    a_due_schedule_fires_once,
    a_killed_server_resumes_runs_without_repeating_steps,
);
