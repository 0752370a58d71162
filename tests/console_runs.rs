//! The console's run, playbook and integration pages through the real server: a run step
//! by step with secrets redacted and its step graph marking the path taken, cancelling
//! (roles, CSRF, audit), enabling and disabling playbooks (API, console, CLI) obeyed by
//! every way a run starts, and in headless Chromium a run page following its gate live.

mod common;

use common::browser::Browser;
use common::stub::Stub;
use common::{browser, form_value, login, Server, TestDb};
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";

/// A configured integration secret; its value must never reach a page.
const SECRET: &str = "s3cr3t-console-value-77";

const GATED: &str = r#"
id: gated
version: 1
description: Block an address after approval.
trigger: { on: manual }
inputs:
  - { name: note, type: string, default: nothing }
steps:
  - id: first
    uses: noop
    with: { value: "${{ $.inputs.note }}" }
  - id: never
    uses: noop
    needs: [first]
    if: "$.inputs.note == 'impossible'"
  - id: block
    uses: http.request
    needs: [first]
    with: { method: POST, url: STUB/block, body: { note: "${{ $.inputs.note }}" } }
    approval:
      roles: [responder]
      timeout: 1h
      message: "Block it?"
  - id: after
    uses: noop
    needs: [block, never]
    with: { value: "block was ${{ $.steps.block.status }}" }
"#;

const ON_ALERT: &str = r#"
id: on-alert
version: 1
trigger: { on: alert.ingested }
steps:
  - id: seen
    uses: notify.webhook
    with: { url: STUB/alert, body: { title: "${{ $.alerts[0].title }}" } }
"#;

const HELLO: &str = r#"
id: hello
version: 1
trigger: { on: manual }
steps:
  - { id: say, uses: noop, with: { value: hi } }
"#;

const PARENT: &str = r#"
id: parent
version: 1
trigger: { on: manual }
steps:
  - id: child
    uses: playbook.run
    with: { playbook: hello }
"#;

const TICK: &str = r#"
id: tick
version: 1
trigger: { on: schedule, schedule: "0 3 * * *" }
steps:
  - { id: beat, uses: noop, with: { value: tick } }
"#;

const EACH: &str = r#"
id: each
version: 1
trigger: { on: manual }
inputs:
  - { name: hosts, type: array, default: [alpha, beta] }
steps:
  - id: per_host
    uses: noop
    foreach: $.inputs.hosts[*]
    with: { value: "checked ${{ $.item }}" }
"#;

/// An integration with basic auth: one secret set, one not.
const DEMO_INTEGRATION: &str = r#"
id: demo
name: Demo Vendor
base_url: https://demo.example.com/api
auth: { type: basic, username_secret: DEMO_TOKEN, password_secret: DEMO_MISSING }
actions:
  lookup:
    kind: enrichment
    method: GET
    path: /lookup
    inputs: []
"#;

struct Env {
    db: TestDb,
    server: Server,
    stub: Stub,
    /// API tokens: ann (analyst), rex (responder), ada (admin), vic (viewer).
    ann: String,
    rex: String,
    ada: String,
    vic: String,
}

impl Env {
    fn new(db: TestDb, playbooks: &[(&str, &str)]) -> Env {
        let stub = Stub::start();
        common::write_playbooks(&db, &stub.base, playbooks);
        std::fs::write(
            db.dir.path().join("integrations").join("demo.yaml"),
            DEMO_INTEGRATION,
        )
        .unwrap();
        for (name, role) in [
            ("ann", "analyst"),
            ("rex", "responder"),
            ("ada", "admin"),
            ("vic", "viewer"),
        ] {
            db.add_user(name, role, PW);
        }
        let (ann, rex, ada, vic) = (
            db.token("ann"),
            db.token("rex"),
            db.token("ada"),
            db.token("vic"),
        );
        let server = Server::start_with(
            &db,
            &[
                ("TOCSIN_SECRET_DEMO_TOKEN", SECRET),
                ("TOCSIN_ENGINE_LEASE_SECONDS", "2"),
            ],
        );
        Env {
            db,
            server,
            stub,
            ann,
            rex,
            ada,
            vic,
        }
    }

    fn run(&self, id: i64) -> Value {
        self.server
            .get_json(&self.vic, &format!("/api/v1/runs/{id}"))
    }

    fn wait_run(&self, id: i64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let run = self.run(id);
            if done(&run) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for run {id}: {what}; it is {run:#}\n{}",
                self.server.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts `playbook` through the API as ann.
    fn start(&self, playbook: &str, inputs: Value) -> (u16, Value) {
        self.server.post_json(
            &self.ann,
            &format!("/api/v1/playbooks/{playbook}/runs"),
            &json!({ "inputs": inputs }),
        )
    }

    fn page(&self, client: &Client, path: &str) -> (u16, String) {
        let res = client.get(self.server.url(path)).send().unwrap();
        (res.status().as_u16(), res.text().unwrap())
    }

    /// POSTs a console form; returns the status, the redirect target and the body.
    fn form(&self, client: &Client, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
        let res = client
            .post(self.server.url(path))
            .form(fields)
            .send()
            .unwrap();
        let status = res.status().as_u16();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, location, res.text().unwrap())
    }

    fn runs_of(&self, playbook: &str) -> Vec<Value> {
        self.server
            .get_json(&self.vic, &format!("/api/v1/runs?playbook={playbook}"))["runs"]
            .as_array()
            .unwrap()
            .clone()
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

/// Starts `gated` with the secret in its inputs and waits until its gate is open.
fn gated_run_waiting(env: &Env) -> i64 {
    let (status, run) = env.start("gated", json!({ "note": format!("carry {SECRET} here") }));
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_i64().unwrap();
    env.wait_run(id, "the gate", |r| {
        step(r, "block")["status"] == "waiting_approval" && step(r, "never")["status"] == "skipped"
    });
    id
}

fn run_page_shows_steps_redacts_secrets_and_marks_the_path(db: TestDb) {
    let env = Env::new(db, &[("gated", GATED)]);
    let id = gated_run_waiting(&env);
    let viewer = login(&env.server, "vic", PW);

    let (status, html) = env.page(&viewer, &format!("/runs/{id}"));
    assert_eq!(status, 200, "{html}");
    // Steps with their status, action and inputs.
    for needle in [
        r#"id="step-first" data-status="succeeded""#,
        r#"id="step-block" data-status="waiting_approval""#,
        r#"id="step-never" data-status="skipped""#,
        r#"id="step-after" data-status="not_started""#,
        "<code>http.request</code>",
    ] {
        assert!(html.contains(needle), "{needle} missing:\n{html}");
    }
    // The secret given as an input is redacted everywhere on the page.
    assert!(!html.contains(SECRET), "the secret value is on the page");
    assert!(html.contains("carry **** here"), "{html}");
    // The step graph: reached steps and the edges between them are the taken path.
    assert!(html.contains(r#"<svg class="step-graph""#), "{html}");
    assert!(html.contains(r#"<g class="node taken" data-step="first" data-status="succeeded">"#));
    assert!(
        html.contains(r#"<g class="node taken" data-step="block" data-status="waiting_approval">"#)
    );
    assert!(html.contains(r#"<g class="node" data-step="never" data-status="skipped">"#));
    assert!(html.contains(r#"<g class="node" data-step="after" data-status="not_started">"#));
    assert!(html.contains(r#"class="edge taken" data-from="first" data-to="block""#));
    assert!(html.contains(r#"class="edge" data-from="first" data-to="never""#));
    assert!(html.contains(r#"class="edge" data-from="block" data-to="after""#));
    assert!(html.contains("Steps the run reached: first, block."));
    // A viewer is offered no cancel button.
    assert!(!html.contains(&format!(r#"action="/runs/{id}/cancel""#)));

    // The list, its filters and a page of one.
    let (status, list) = env.page(&viewer, "/runs");
    assert_eq!(status, 200);
    assert!(list.contains(&format!(r#"href="/runs/{id}""#)), "{list}");
    let (_, list) = env.page(&viewer, "/runs?playbook=gated&status=waiting");
    assert!(list.contains(&format!(r#"href="/runs/{id}""#)), "{list}");
    let (_, list) = env.page(&viewer, "/runs?status=succeeded");
    assert!(!list.contains(&format!(r#"href="/runs/{id}""#)), "{list}");
    let (status, _) = env.page(&viewer, "/runs?status=bogus");
    assert_eq!(status, 400);
    let (status, _) = env.page(&viewer, "/runs/999999");
    assert_eq!(status, 404);
    let (second, _) = env.start("gated", json!({}));
    assert_eq!(second, 201);
    let paging = env.page(&viewer, &format!("/runs?before={}", id + 1)).1;
    assert!(paging.contains(&format!(r#"href="/runs/{id}""#)));
    assert!(!paging.contains(&format!(r#"href="/runs/{}""#, id + 1)));
}

fn cancel_needs_a_responder_and_the_csrf_token_and_is_audited(db: TestDb) {
    let env = Env::new(db, &[("gated", GATED)]);
    let id = gated_run_waiting(&env);
    let cancel = format!("/runs/{id}/cancel");
    let cancelled = || {
        env.db
            .audit_with_action("playbook.run_cancel_requested")
            .len()
    };

    // A viewer and an analyst, with valid tokens: 403, nothing changes.
    for who in ["vic", "ann"] {
        let client = login(&env.server, who, PW);
        let (_, page) = env.page(&client, &format!("/runs/{id}"));
        let csrf = form_value(&page, "csrf_token");
        let (status, _, body) = env.form(&client, &cancel, &[("csrf_token", &csrf)]);
        assert_eq!(status, 403, "{who}: {body}");
        assert!(body.contains("cancel playbook runs"), "{body}");
    }
    // A responder without the right token: 403, nothing changes.
    let rex = login(&env.server, "rex", PW);
    let (_, page) = env.page(&rex, &format!("/runs/{id}"));
    assert!(
        page.contains(&format!(r#"action="/runs/{id}/cancel""#)),
        "{page}"
    );
    let (status, _, _) = env.form(&rex, &cancel, &[("csrf_token", "not-the-token")]);
    assert_eq!(status, 403);
    let (status, _, _) = env.form(&rex, &cancel, &[]);
    assert!(status == 400 || status == 403, "{status}");
    assert_eq!(cancelled(), 0);
    let run = env.run(id);
    assert_eq!(run["status"], "waiting");
    assert!(run["cancel_requested_at"].is_null());
    assert_eq!(step(&run, "block")["status"], "waiting_approval");

    // The responder with the token cancels.
    let csrf = form_value(&page, "csrf_token");
    let (status, location, _) = env.form(&rex, &cancel, &[("csrf_token", &csrf)]);
    assert_eq!(status, 303);
    assert_eq!(location, format!("/runs/{id}?cancelled=1"));
    let run = env.wait_run(id, "cancelled", |r| r["status"] == "cancelled");
    assert_eq!(step(&run, "block")["status"], "cancelled");
    assert_eq!(run["approvals"][0]["status"], "cancelled");
    assert_eq!(env.stub.hits("/block"), 0);
    let events = env.db.audit_with_action("playbook.run_cancel_requested");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor_kind"], "user");
    assert_eq!(events[0]["actor_id"], "rex");
    assert_eq!(events[0]["target"], format!("run:{id}"));
    let (_, page) = env.page(&rex, &format!("/runs/{id}?cancelled=1"));
    assert!(page.contains("Cancellation requested"), "{page}");
    assert!(!page.contains(&format!(r#"action="/runs/{id}/cancel""#)));
    // Cancelling an ended run is refused clearly.
    let (status, _, body) = env.form(&rex, &cancel, &[("csrf_token", &csrf)]);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already cancelled"), "{body}");
    assert_eq!(cancelled(), 1);
}

/// Waits until the dispatcher has taken every trigger event (so "no run" means none).
fn events_dispatched(env: &Env) {
    env.server.poll("the trigger events dispatched", || {
        (env.db.query_i64("SELECT COUNT(*) AS n FROM engine_events") == 0).then_some(())
    });
}

fn ingest(env: &Env, token: &str, title: &str) {
    let (status, body) = env.server.post_json(
        token,
        "/api/v1/ingest/hive",
        &common::hive_alert(title, title, "198.51.100.4"),
    );
    assert_eq!(status, 200, "{body}");
}

fn disabled_playbooks_start_no_runs_anywhere(db: TestDb) {
    let env = Env::new(
        db,
        &[
            ("on-alert", ON_ALERT),
            ("hello", HELLO),
            ("parent", PARENT),
            ("tick", TICK),
        ],
    );
    let (hive, _) = env.db.add_source("hive", "thehive", &[]);

    // Only admins switch playbooks; an unknown one is a 404.
    let (status, body) =
        env.server
            .post_json(&env.rex, "/api/v1/playbooks/on-alert/disable", &json!({}));
    assert_eq!(status, 403, "{body}");
    let (status, _) = env
        .server
        .post_json(&env.ada, "/api/v1/playbooks/nope/disable", &json!({}));
    assert_eq!(status, 404);
    for id in ["on-alert", "hello", "tick"] {
        let (status, body) = env.server.post_json(
            &env.ada,
            &format!("/api/v1/playbooks/{id}/disable"),
            &json!({}),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["changed"], true);
        assert_eq!(body["enabled"], false);
    }
    // Disabling twice changes nothing and records nothing more.
    let (status, body) =
        env.server
            .post_json(&env.ada, "/api/v1/playbooks/hello/disable", &json!({}));
    assert_eq!(status, 200);
    assert_eq!(body["changed"], false);
    let disabled = env.db.audit_with_action("playbook.disabled");
    assert_eq!(disabled.len(), 3, "{disabled:?}");
    assert_eq!(disabled[0]["target"], "playbook:on-alert");
    assert_eq!(disabled[0]["actor_kind"], "api_token");
    let listed = env.server.get_json(&env.vic, "/api/v1/playbooks")["playbooks"].clone();
    let hello = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "hello")
        .unwrap();
    assert_eq!(hello["enabled"], false);

    // A matching alert starts nothing.
    ingest(&env, &hive, "first alert");
    events_dispatched(&env);
    assert!(env.runs_of("on-alert").is_empty());
    assert_eq!(env.stub.hits("/alert"), 0);

    // A manual run is refused with a clear 409, by the API and the console.
    let (status, body) = env.start("hello", json!({}));
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "playbook_disabled");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("\"hello\" is disabled"));
    let ann = login(&env.server, "ann", PW);
    let (_, page) = env.page(&ann, "/playbooks/hello");
    assert!(page.contains("disabled"), "{page}");
    let csrf = form_value(&page, "csrf_token");
    let (status, _, body) = env.form(
        &ann,
        "/playbooks/hello/run",
        &[("csrf_token", &csrf), ("case_id", ""), ("inputs", "{}")],
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("is disabled; an admin can enable it"),
        "{body}"
    );
    assert!(env.runs_of("hello").is_empty());

    // A child run of a disabled playbook is refused: the parent's step fails saying why.
    let (status, body) = env.start("parent", json!({}));
    assert_eq!(status, 201, "{body}");
    let parent = body["id"].as_i64().unwrap();
    let run = env.wait_run(parent, "the end", |r| r["status"] == "failed");
    let child = step(&run, "child");
    assert_eq!(child["status"], "failed");
    assert!(
        child["error"]
            .as_str()
            .unwrap()
            .contains("\"hello\" is disabled"),
        "{child}"
    );
    assert!(env.runs_of("hello").is_empty());

    // A due schedule passes without a run.
    env.server.poll("the schedule row", || {
        (env.db
            .query_i64("SELECT COUNT(*) AS n FROM playbook_schedules")
            == 1)
            .then_some(())
    });
    env.db
        .exec("UPDATE playbook_schedules SET next_fire_at = '2001-01-01 00:00:00'")
        .unwrap();
    env.server.poll("the schedule to come round", || {
        (env.db.query_i64(
            "SELECT COUNT(*) AS n FROM playbook_schedules WHERE next_fire_at > '2002-01-01 00:00:00'",
        ) == 1)
            .then_some(())
    });
    assert!(env.runs_of("tick").is_empty());

    // Console: a viewer, an analyst, and an admin without the token are refused.
    for who in ["vic", "ann"] {
        let client = login(&env.server, who, PW);
        let (_, page) = env.page(&client, "/playbooks/hello");
        assert!(!page.contains(r#"action="/playbooks/hello/enable""#));
        let csrf = form_value(&page, "csrf_token");
        let (status, _, _) = env.form(&client, "/playbooks/hello/enable", &[("csrf_token", &csrf)]);
        assert_eq!(status, 403, "{who}");
    }
    let ada = login(&env.server, "ada", PW);
    let (status, _, _) = env.form(&ada, "/playbooks/hello/enable", &[("csrf_token", "forged")]);
    assert_eq!(status, 403);
    assert!(env.db.audit_with_action("playbook.enabled").is_empty());

    // The admin enables hello in the console and on-alert, tick with the CLI.
    let (_, page) = env.page(&ada, "/playbooks/hello");
    assert!(
        page.contains(r#"action="/playbooks/hello/enable""#),
        "{page}"
    );
    let csrf = form_value(&page, "csrf_token");
    let (status, location, _) = env.form(&ada, "/playbooks/hello/enable", &[("csrf_token", &csrf)]);
    assert_eq!(status, 303);
    assert_eq!(location, "/playbooks/hello?switched=enabled");
    let out = env.db.run_ok(&["playbook", "enable", "on-alert"]);
    assert!(out.contains("playbook on-alert enabled"), "{out}");
    env.db.run_ok(&["playbook", "enable", "tick"]);
    let refused = env
        .db
        .tocsin()
        .args(["playbook", "disable", "nope"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let enabled = env.db.audit_with_action("playbook.enabled");
    assert_eq!(enabled.len(), 3, "{enabled:?}");
    assert_eq!(enabled[0]["target"], "playbook:hello");
    assert_eq!(enabled[0]["actor_kind"], "user");
    assert_eq!(enabled[0]["actor_id"], "ada");
    assert_eq!(enabled[1]["actor_kind"], "system");
    assert_eq!(enabled[1]["actor_id"], "cli");

    // Enabled again, each way starts runs.
    ingest(&env, &hive, "second alert");
    env.server.poll("the on-alert run", || {
        (env.stub.hits("/alert") == 1).then_some(())
    });
    assert_eq!(env.runs_of("on-alert").len(), 1);
    let (status, _, _) = env.form(
        &ann,
        "/playbooks/hello/run",
        &[
            (
                "csrf_token",
                &form_value(&env.page(&ann, "/playbooks/hello").1, "csrf_token"),
            ),
            ("case_id", ""),
            ("inputs", ""),
        ],
    );
    assert_eq!(status, 303);
    let (status, body) = env.start("parent", json!({}));
    assert_eq!(status, 201, "{body}");
    let parent = body["id"].as_i64().unwrap();
    let run = env.wait_run(parent, "the end", |r| r["status"] == "succeeded");
    assert_eq!(step(&run, "child")["status"], "succeeded");
    assert_eq!(env.runs_of("hello").len(), 2);
    env.db
        .exec("UPDATE playbook_schedules SET next_fire_at = '2001-01-01 00:00:00'")
        .unwrap();
    env.server.poll("the scheduled run", || {
        (env.runs_of("tick").len() == 1).then_some(())
    });
}

fn playbook_and_integration_pages_show_definitions_and_secret_names_only(db: TestDb) {
    let env = Env::new(db, &[("gated", GATED), ("hello", HELLO), ("each", EACH)]);
    let vic = login(&env.server, "vic", PW);

    // A foreach step shows each item with its own inputs and output.
    let (status, body) = env.start("each", json!({}));
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    env.wait_run(id, "the end", |r| r["status"] == "succeeded");
    let (_, page) = env.page(&vic, &format!("/runs/{id}"));
    for (k, host) in ["alpha", "beta"].iter().enumerate() {
        let at = page
            .find(&format!(
                r#"id="step-per_host-{k}" data-status="succeeded""#
            ))
            .unwrap_or_else(|| panic!("item {k} missing:\n{page}"));
        assert!(page[at..].contains(&format!("checked {host}")), "{page}");
    }
    let (status, page) = env.page(&vic, "/playbooks");
    assert_eq!(status, 200);
    assert!(page.contains(r#"href="/playbooks/gated""#), "{page}");
    assert!(page.contains("enabled"));
    assert!(page.contains("valid"));
    let (status, page) = env.page(&vic, "/playbooks/gated");
    assert_eq!(status, 200);
    assert!(page.contains("Block an address after approval."));
    assert!(page.contains("uses: http.request"), "the YAML file: {page}");
    assert!(page.contains(r#"<svg class="step-graph""#));
    assert!(
        !page.contains("Start a run"),
        "a viewer cannot run playbooks"
    );
    let (status, _) = env.page(&vic, "/playbooks/nope");
    assert_eq!(status, 404);

    // A file broken after the start: the loaded playbook still shows, marked invalid.
    std::fs::write(
        env.db.dir.path().join("playbooks").join("hello.yaml"),
        HELLO.replace("uses: noop", "uses: nothing.here"),
    )
    .unwrap();
    let (_, page) = env.page(&vic, "/playbooks/hello");
    assert!(page.contains("invalid"), "{page}");
    assert!(page.contains("nothing.here"), "{page}");

    let (status, page) = env.page(&vic, "/integrations");
    assert_eq!(status, 200);
    assert!(page.contains(r#"href="/integrations/demo""#), "{page}");
    assert!(page.contains("1 of 2"), "{page}");
    let (status, page) = env.page(&vic, "/integrations/demo");
    assert_eq!(status, 200);
    assert!(page.contains("DEMO_TOKEN") && page.contains("DEMO_MISSING"));
    let row = |name: &str| {
        let at = page.find(&format!("<code>{name}</code>")).unwrap();
        page[at..at + 200].to_string()
    };
    assert!(row("DEMO_TOKEN").contains(">set<"), "{page}");
    assert!(row("DEMO_MISSING").contains("not set"), "{page}");
    assert!(!page.contains(SECRET));
    assert!(page.contains("demo.lookup"));
    let (status, _) = env.page(&vic, "/integrations/nope");
    assert_eq!(status, 404);
    // Signed out: to the sign-in page.
    let res = browser().get(env.server.url("/playbooks")).send().unwrap();
    assert_eq!(res.status(), 303);
}

fn a_run_page_follows_its_gate_live(db: TestDb) {
    let Some(chrome) = Browser::start() else {
        return;
    };
    let env = Env::new(db, &[("gated", GATED), ("hello", HELLO)]);
    let id = gated_run_waiting(&env);
    chrome.login(&env.server, "rex", PW);
    chrome.goto(&env.server.url(&format!("/runs/{id}")));
    assert_eq!(
        chrome.text("#step-block .status"),
        "waiting_approval",
        "{}",
        chrome.source()
    );
    assert_eq!(chrome.text("#run-status"), "waiting");
    let deadline = Instant::now() + Duration::from_secs(30);
    while chrome.execute("return document.body.dataset.liveConnected || null") != json!("1") {
        assert!(Instant::now() < deadline, "the page script did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    chrome.execute("window.__marker = 7; return 7;");
    chrome.screenshot("run-page-waiting");

    // The gate is decided elsewhere (the API); the page follows without a reload.
    let gate = env.run(id)["approvals"][0]["id"].as_i64().unwrap();
    let (status, body) = env.server.post_json(
        &env.rex,
        &format!("/api/v1/approvals/{gate}/decision"),
        &json!({ "decision": "approve" }),
    );
    assert_eq!(status, 200, "{body}");
    chrome.wait_text("#step-block .status", "the step to succeed", |t| {
        t == "succeeded"
    });
    chrome.wait_text("#run-status", "the run to succeed", |t| t == "succeeded");
    assert!(chrome.exists(r#"g.node.taken[data-step="after"]"#));
    assert_eq!(
        chrome.execute("return window.__marker || null;"),
        json!(7),
        "the page was reloaded instead of updated"
    );
    assert_eq!(env.stub.hits("/block"), 1);
    chrome.screenshot("run-page");

    chrome.goto(&env.server.url("/playbooks"));
    assert!(chrome.text("main").contains("gated"));
    chrome.screenshot("playbooks-page");
    chrome.goto(&env.server.url("/integrations/demo"));
    assert!(chrome.text("#secrets").contains("DEMO_MISSING"));
    chrome.screenshot("integration-page");
}

both_backends!(
    run_page_shows_steps_redacts_secrets_and_marks_the_path,
    cancel_needs_a_responder_and_the_csrf_token_and_is_audited,
    disabled_playbooks_start_no_runs_anywhere,
    playbook_and_integration_pages_show_definitions_and_secret_names_only,
    a_run_page_follows_its_gate_live,
);
