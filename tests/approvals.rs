//! Approval gates decided by e-mail and in the console, through the real server and a real
//! SMTP server on loopback (`common::smtp`): delivered e-mail and its links, the
//! confirmation page that changes nothing, single use, foreign and settled links, rejects
//! with comments, four-eyes through two links, escalation e-mailing the new approvers, a
//! restart while a gate waits, SMTP failures retried and recorded, and the outbox when no
//! SMTP relay is configured.

mod common;

use common::smtp::{Security, SmtpSink, TestCa};
use common::stub::Stub;
use common::{browser, form_value, login, Server, TestClock, TestDb};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";
const UA: &str = "approval-test-browser/1.0";

struct Env {
    db: TestDb,
    server: Server,
    stub: Stub,
    sink: Option<SmtpSink>,
    extra: Vec<(String, String)>,
    /// Tokens of ann (analyst), rex and rae (responders), ada (admin), vic (viewer).
    ann: String,
    ada: String,
    vic: String,
}

impl Env {
    /// Writes `playbooks` (`STUB` stands for the stub's base URL), creates the users (the
    /// responders and the admin with e-mail addresses) and starts the server, pointed at
    /// `sink` when given.
    fn new(db: TestDb, playbooks: &[(&str, &str)], sink: Option<SmtpSink>) -> Env {
        Env::with_env(db, playbooks, sink, &[])
    }

    fn with_env(
        db: TestDb,
        playbooks: &[(&str, &str)],
        sink: Option<SmtpSink>,
        extra: &[(&str, &str)],
    ) -> Env {
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
        db.exec(
            "UPDATE users SET email = username || '@example.org' \
             WHERE username IN ('ann', 'rex', 'rae', 'ada')",
        )
        .unwrap();
        let (ann, ada, vic) = (db.token("ann"), db.token("ada"), db.token("vic"));
        let mut extra: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        extra.push(("TOCSIN_ENGINE_LEASE_SECONDS".into(), "2".into()));
        if let Some(s) = &sink {
            extra.extend(s.env());
        }
        let server = start(&db, &extra);
        Env {
            db,
            server,
            stub,
            sink,
            extra,
            ann,
            ada,
            vic,
        }
    }

    fn sink(&self) -> &SmtpSink {
        self.sink.as_ref().expect("an SMTP sink")
    }

    fn restart(&mut self) {
        self.restart_with(&[]);
    }

    /// Kills the server and starts it again with `more` variables on top of the first
    /// start's (a later value wins).
    fn restart_with(&mut self, more: &[(&str, &str)]) {
        self.server.kill();
        let mut env = self.extra.clone();
        env.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.server = start(&self.db, &env);
    }

    fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let res = browser()
            .post(self.server.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().unwrap_or(Value::Null))
    }

    /// Posts a decision on gate `gate` as the holder of `token`.
    fn decision(&self, token: &str, gate: i64, body: Value) -> (u16, Value) {
        self.post(token, &format!("/api/v1/approvals/{gate}/decision"), body)
    }

    fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let res = browser()
            .get(self.server.url(path))
            .bearer_auth(token)
            .send()
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().unwrap_or(Value::Null))
    }

    /// Starts `playbook` manually as ann; returns the run id.
    fn start(&self, playbook: &str) -> i64 {
        let (status, run) = self.post(
            &self.ann,
            &format!("/api/v1/playbooks/{playbook}/runs"),
            json!({}),
        );
        assert_eq!(status, 201, "{run}");
        run["id"].as_i64().unwrap()
    }

    fn run(&self, id: i64) -> Value {
        let (status, run) = self.get(&self.vic, &format!("/api/v1/runs/{id}"));
        assert_eq!(status, 200);
        run
    }

    /// Polls run `id` until `done` holds (at most 30 s).
    fn wait_for(&self, id: i64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let run = self.run(id);
            if done(&run) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {id}: gave up waiting for {what}; run is {run:#}\nserver log:\n{}",
                self.server.stderr()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    fn finished(&self, id: i64) -> Value {
        self.wait_for(id, "the end", |r| {
            matches!(
                r["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
        })
    }

    /// The run's first gate, once it exists.
    fn gate(&self, run: i64) -> Value {
        let r = self.wait_for(run, "a gate", |r| {
            r["approvals"].as_array().is_some_and(|a| !a.is_empty())
        });
        r["approvals"][0].clone()
    }

    fn gate_by_id(&self, id: i64) -> Value {
        let (status, gate) = self.get(&self.vic, &format!("/api/v1/approvals/{id}"));
        assert_eq!(status, 200, "{gate}");
        gate
    }

    /// Polls gate `id` until `done` holds (at most 30 s).
    fn wait_gate(&self, id: i64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let gate = self.gate_by_id(id);
            if done(&gate) {
                return gate;
            }
            assert!(
                Instant::now() < deadline,
                "gate {id}: gave up waiting for {what}; gate is {gate:#}\nserver log:\n{}",
                self.server.stderr()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }
}

fn start(db: &TestDb, env: &[(String, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_with(db, &env)
}

fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {run:#}"))
}

/// A page fetched by a browser without a session (as a mail client opens a link).
struct Page {
    status: u16,
    body: String,
}

fn open(client: &reqwest::blocking::Client, url: &str) -> Page {
    let res = client.get(url).header("User-Agent", UA).send().unwrap();
    Page {
        status: res.status().as_u16(),
        body: res.text().unwrap(),
    }
}

/// Submits the confirmation form of the page at `url` (opened first by `client`).
fn confirm(client: &reqwest::blocking::Client, url: &str, comment: &str) -> Page {
    let page = open(client, url);
    assert_eq!(page.status, 200, "{}", page.body);
    submit(client, url, &page.body, comment)
}

/// Posts a confirmation form taken from `page`.
fn submit(client: &reqwest::blocking::Client, url: &str, page: &str, comment: &str) -> Page {
    let csrf = form_value(page, "csrf_token");
    let decision = form_value(page, "decision");
    let action = url
        .rsplit_once('/')
        .map(|(head, _)| head.to_string())
        .unwrap();
    let res = client
        .post(action)
        .header("User-Agent", UA)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("decision", decision.as_str()),
            ("comment", comment),
        ])
        .send()
        .unwrap();
    Page {
        status: res.status().as_u16(),
        body: res.text().unwrap(),
    }
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
      message: "Brute force from ${{ $.inputs.ip }}: block it at the edge"
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

fn email_links_decide_only_after_confirmation_and_only_once(db: TestDb) {
    let env = Env::new(db, &[("gated", GATED)], Some(SmtpSink::start()));
    let id = env.start("gated");
    let gate = env.gate(id);
    let gid = gate["id"].as_i64().unwrap();

    // rex and rae (responders) and ada (admin) are asked; ann started the run and the
    // viewer may not approve.
    let mails = env.sink().wait_for("rex@example.org", 1);
    env.sink().wait_for("rae@example.org", 1);
    env.sink().wait_for("ada@example.org", 1);
    assert!(env.sink().to("ann@example.org").is_empty());
    let mail = &mails[0];
    let subject = mail.header("Subject").unwrap();
    assert!(subject.contains("http.request"), "{subject}");
    let text = mail.text();
    let html = mail.html();
    for part in [&text, &html] {
        assert!(part.contains("http.request"), "{part}");
        assert!(part.contains("203.0.113.7"), "target in {part}");
        assert!(part.contains("Brute force from 203.0.113.7"), "{part}");
        assert!(part.contains(&format!("#{id}")), "run in {part}");
    }
    let approve = mail.link("approve");
    assert!(approve.starts_with(&env.server.base), "{approve}");
    assert!(
        html.contains(&approve),
        "the HTML part carries the same link"
    );
    let gate = env.wait_gate(gid, "3 notifications sent", |g| {
        g["notifications"]
            .as_array()
            .is_some_and(|n| n.len() == 3 && n.iter().all(|x| x["status"] == "sent"))
    });
    assert_eq!(gate["target"]["body"]["ip"], "203.0.113.7");
    assert_eq!(gate["target"]["method"], "POST");

    // A mail scanner (or the approver) opening the link changes nothing.
    let scanner = browser();
    for _ in 0..2 {
        let page = open(&scanner, &approve);
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body.contains("Nothing has been decided yet"),
            "{}",
            page.body
        );
        assert!(page.body.contains("203.0.113.7"));
        assert!(page.body.contains("<form method=\"post\""));
    }
    let run = env.run(id);
    assert_eq!(step(&run, "block")["status"], "waiting_approval");
    assert_eq!(env.gate_by_id(gid)["status"], "pending");
    assert_eq!(env.stub.hits("/block"), 0);
    let views = env.db.audit_with_action("approval.link_viewed");
    assert_eq!(views.len(), 2);
    assert_eq!(views[0]["details"]["approver"], "rex");
    assert_eq!(views[0]["details"]["outcome"], "shown");
    assert_eq!(views[0]["details"]["user_agent"], UA);

    // A link of one approver does not open another gate, nor in another approver's session.
    let token = approve.split("/link/").nth(1).unwrap();
    let wrong_gate = format!("{}/approvals/{}/link/{token}", env.server.base, gid + 1000);
    let page = open(&browser(), &wrong_gate);
    assert_eq!(page.status, 404, "{}", page.body);
    assert!(page.body.contains("not valid"));
    let rae_session = login(&env.server, "rae", PW);
    let page = open(&rae_session, &approve);
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("sent to rex"), "{}", page.body);
    // A POST without the form's CSRF cookie is refused.
    let res = browser()
        .post(approve.rsplit_once('/').unwrap().0)
        .form(&[
            ("csrf_token", "x".repeat(43).as_str()),
            ("decision", "approve"),
        ])
        .send()
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(env.gate_by_id(gid)["status"], "pending");
    assert_eq!(env.stub.hits("/block"), 0);

    // Confirming decides, as rex, through e-mail, and the run goes on.
    let approver = browser();
    let done = confirm(&approver, &approve, "");
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Approved"), "{}", done.body);
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(step(&run, "block")["status"], "succeeded");
    assert_eq!(step(&run, "after")["output"], "block was succeeded");
    assert_eq!(env.stub.hits("/block"), 1);
    let gate = env.gate_by_id(gid);
    assert_eq!(gate["status"], "approved");
    assert_eq!(gate["decisions"][0]["user"], "rex");
    assert_eq!(gate["decisions"][0]["channel"], "email");

    // The same link again: refused with a clear page, nothing changes.
    let again = open(&approver, &approve);
    assert_eq!(again.status, 410, "{}", again.body);
    assert!(again.body.contains("already used"), "{}", again.body);
    // rae's link on the now settled gate: refused.
    let rae_link = env.sink().to("rae@example.org")[0].link("approve");
    let page = open(&browser(), &rae_link);
    assert_eq!(page.status, 409, "{}", page.body);
    assert!(page.body.contains("already approved"), "{}", page.body);
    assert_eq!(env.stub.hits("/block"), 1);

    // Audited: the request, each e-mail, each view, the decision with its channel.
    assert_eq!(env.db.audit_with_action("approval.requested").len(), 1);
    assert_eq!(env.db.audit_with_action("approval.notified").len(), 3);
    let decided = env.db.audit_with_action("approval.decided");
    assert_eq!(decided.len(), 1);
    let d = &decided[0];
    assert_eq!(d["actor_id"], "rex", "{d:#}");
    assert_eq!(d["details"]["channel"], "email");
    assert_eq!(d["details"]["ip"], "127.0.0.1");
    assert_eq!(d["details"]["user_agent"], UA);
    let views = env.db.audit_with_action("approval.link_viewed");
    let outcomes: Vec<&str> = views
        .iter()
        .map(|v| v["details"]["outcome"].as_str().unwrap())
        .collect();
    for expected in ["shown", "unknown", "other_user", "used", "settled"] {
        assert!(outcomes.contains(&expected), "{expected} in {outcomes:?}");
    }
    env.db.run_ok(&["audit", "verify"]);
    // The token is a secret: the request log never shows it.
    let secret = token.split('/').next().unwrap();
    let log = env.server.stderr();
    assert!(log.contains("/link/<token>/approve"), "{log}");
    assert!(!log.contains(secret), "token in the server log");
}

fn two_concurrent_posts_of_one_link_decide_once(db: TestDb) {
    let env = Env::new(db, &[("gated", GATED)], Some(SmtpSink::start()));
    let id = env.start("gated");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    let link = env.sink().wait_for("rex@example.org", 1)[0].link("approve");
    let tabs: Vec<(reqwest::blocking::Client, String)> = (0..2)
        .map(|_| {
            let c = browser();
            let page = open(&c, &link);
            assert_eq!(page.status, 200, "{}", page.body);
            (c, page.body)
        })
        .collect();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = tabs
            .iter()
            .map(|(c, page)| {
                let barrier = barrier.clone();
                let link = link.clone();
                s.spawn(move || {
                    barrier.wait();
                    submit(c, &link, page, "").status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted[0], 200, "{statuses:?}");
    assert!(matches!(sorted[1], 409 | 410), "{statuses:?}");
    env.finished(id);
    assert_eq!(env.stub.hits("/block"), 1);
    let gate = env.gate_by_id(gid);
    assert_eq!(gate["decisions"].as_array().unwrap().len(), 1);
    assert_eq!(env.db.audit_with_action("approval.decided").len(), 1);
    assert_eq!(env.db.audit_with_action("approval.link_refused").len(), 1);
}

fn a_reject_link_needs_a_comment_and_skips_the_step(db: TestDb) {
    let env = Env::new(db, &[("gated", GATED)], Some(SmtpSink::start()));
    let id = env.start("gated");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    let reject = env.sink().wait_for("rae@example.org", 1)[0].link("reject");
    let client = browser();
    let page = open(&client, &reject);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Reject request"), "{}", page.body);
    // No comment: the form comes back, the link stays usable.
    let refused = submit(&client, &reject, &page.body, "  ");
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("comment is required"),
        "{}",
        refused.body
    );
    assert_eq!(env.gate_by_id(gid)["status"], "pending");
    let done = submit(
        &client,
        &reject,
        &refused.body,
        "false positive: our scanner",
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Rejected"));
    let run = env.finished(id);
    assert_eq!(step(&run, "block")["status"], "rejected");
    assert_eq!(step(&run, "after")["output"], "block was rejected");
    assert_eq!(env.stub.hits("/block"), 0);
    let gate = env.gate_by_id(gid);
    assert_eq!(gate["status"], "rejected");
    assert_eq!(gate["decisions"][0]["user"], "rae");
    assert_eq!(
        gate["decisions"][0]["comment"],
        "false positive: our scanner"
    );
    assert_eq!(gate["decisions"][0]["channel"], "email");
}

fn without_smtp_email_stays_in_the_outbox_and_the_console_decides(db: TestDb) {
    let env = Env::new(db, &[("gated", GATED)], None);
    let id = env.start("gated");
    let gid = env.gate(id)["id"].as_i64().unwrap();

    let (status, outbox) = env.get(&env.ada, "/api/v1/outbox");
    assert_eq!(status, 200, "{outbox}");
    assert_eq!(outbox["smtp_configured"], false);
    let emails = outbox["emails"].as_array().unwrap();
    let to: Vec<&str> = emails
        .iter()
        .map(|e| e["recipients"].as_str().unwrap())
        .collect();
    assert_eq!(emails.len(), 3, "{emails:#?}");
    for who in ["rex@example.org", "rae@example.org", "ada@example.org"] {
        assert!(to.contains(&who), "{who} in {to:?}");
    }
    for e in emails {
        assert_eq!(e["status"], "queued");
        assert_eq!(e["gate_id"], gid);
        assert_eq!(e["origin"], format!("approval:{gid}"));
        assert!(e["body_text"].as_str().unwrap().contains("203.0.113.7"));
        // No usable link is ever stored: links are created on delivery.
        assert!(
            !e["body_text"].as_str().unwrap().contains("/link/"),
            "{e:#}"
        );
    }
    let (status, _) = env.get(&env.vic, "/api/v1/outbox");
    assert_eq!(status, 403);
    let (status, _) = env.get(&env.ann, "/api/v1/outbox");
    assert_eq!(status, 403);
    let (status, _) = env.get(&env.ada, "/api/v1/outbox?status=bogus");
    assert_eq!(status, 422);
    let gate = env.gate_by_id(gid);
    assert_eq!(gate["notifications"].as_array().unwrap().len(), 3);
    assert_eq!(gate["notifications"][0]["status"], "queued");

    // The console outbox: admins only.
    let admin = login(&env.server, "ada", PW);
    let page = admin.get(env.server.url("/outbox")).send().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("rex@example.org"));
    let viewer = login(&env.server, "vic", PW);
    assert_eq!(
        viewer
            .get(env.server.url("/outbox"))
            .send()
            .unwrap()
            .status(),
        403
    );

    // The console inbox: rex sees the gate, rejecting needs a comment, approving resumes.
    let rex = login(&env.server, "rex", PW);
    let inbox = rex.get(env.server.url("/approvals")).send().unwrap();
    assert_eq!(inbox.status(), 200);
    let html = inbox.text().unwrap();
    assert!(html.contains(&format!("Request {gid}")), "{html}");
    assert!(html.contains("Brute force from 203.0.113.7"));
    let csrf = form_value(&html, "csrf_token");
    let decide = env.server.url(&format!("/approvals/{gid}/decide"));
    let res = rex
        .post(&decide)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("decision", "reject"),
            ("comment", ""),
        ])
        .send()
        .unwrap();
    assert_eq!(res.status(), 422);
    let res = rex
        .post(&decide)
        .form(&[
            ("csrf_token", "wrong"),
            ("decision", "approve"),
            ("comment", ""),
        ])
        .send()
        .unwrap();
    assert_eq!(res.status(), 403, "CSRF token required");
    assert_eq!(env.gate_by_id(gid)["status"], "pending");
    let res = rex
        .post(&decide)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("decision", "approve"),
            ("comment", "ok"),
        ])
        .send()
        .unwrap();
    assert_eq!(res.status(), 303);
    let run = env.finished(id);
    assert_eq!(step(&run, "block")["status"], "succeeded");
    assert_eq!(env.stub.hits("/block"), 1);
    let gate = env.gate_by_id(gid);
    assert_eq!(gate["decisions"][0]["channel"], "console");
    // The settled gate's undelivered e-mail is withdrawn; the inbox is empty again.
    assert!(gate["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["status"] == "cancelled"));
    let html = rex
        .get(env.server.url("/approvals"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(html.contains("Nothing is waiting"), "{html}");
}

fn four_eyes_through_two_approvers_links(db: TestDb) {
    let env = Env::new(db, &[("four-eyes", FOUR_EYES)], Some(SmtpSink::start()));
    let id = env.start("four-eyes");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    let rex = env.sink().wait_for("rex@example.org", 1)[0].link("approve");
    let rae = env.sink().wait_for("rae@example.org", 1)[0].link("approve");
    let first = confirm(&browser(), &rex, "");
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(
        first.body.contains("needs 2 approvals and has 1"),
        "{}",
        first.body
    );
    let gate = env.gate_by_id(gid);
    assert_eq!(gate["status"], "pending");
    assert_eq!(env.stub.hits("/isolate"), 0);
    let second = confirm(&browser(), &rae, "");
    assert_eq!(second.status, 200, "{}", second.body);
    assert!(second.body.contains("Approved"), "{}", second.body);
    let run = env.finished(id);
    assert_eq!(step(&run, "isolate")["status"], "succeeded");
    assert_eq!(env.stub.hits("/isolate"), 1);
    let gate = env.gate_by_id(gid);
    let users: Vec<&str> = gate["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["rex", "rae"]);
    assert!(gate["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["channel"] == "email"));
}

fn escalation_emails_the_new_approvers_and_withdraws_old_links(db: TestDb) {
    let clock = TestClock::new(&db);
    let (env, id) = escalating_run(db, &clock);
    let gid = env.gate(id)["id"].as_i64().unwrap();
    // After the hour's deadline the gate escalates to rae, who is e-mailed.
    clock.advance(HOUR + MINUTE);
    let mails = env.sink().wait_for("rae@example.org", 1);
    let gate = env.gate_by_id(gid);
    assert_eq!(gate["escalation_level"], 1);
    assert_eq!(gate["approvers"]["users"], json!(["rae"]));
    assert!(
        mails[0].header("Subject").unwrap().contains("escalated"),
        "{}",
        mails[0].data
    );
    assert!(mails[0].text().contains("escalated to you"));
    let escalated = env.db.audit_with_action("approval.escalated");
    assert_eq!(escalated.len(), 1);
    assert_eq!(escalated[0]["details"]["emailed"], json!(["rae"]));
    // rex was asked first; his e-mail either went out (its link is now withdrawn) or was
    // withdrawn before delivery.
    let rex_rows: Vec<Value> = gate["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["user"] == "rex")
        .cloned()
        .collect();
    assert_eq!(rex_rows.len(), 1, "{gate:#}");
    if let Some(mail) = env.sink().to("rex@example.org").first() {
        let page = open(&browser(), &mail.link("approve"));
        assert_eq!(page.status, 410, "{}", page.body);
        assert!(page.body.contains("withdrawn"), "{}", page.body);
    } else {
        assert_eq!(rex_rows[0]["status"], "cancelled");
    }
    assert_eq!(env.stub.hits("/wipe"), 0);
    let done = confirm(&browser(), &mails[0].link("approve"), "");
    assert_eq!(done.status, 200, "{}", done.body);
    let run = env.finished(id);
    assert_eq!(step(&run, "wipe")["status"], "succeeded");
    assert_eq!(env.stub.hits("/wipe"), 1);
}

fn a_restart_keeps_pending_links_valid(db: TestDb) {
    let mut env = Env::new(db, &[("gated", GATED)], Some(SmtpSink::start()));
    let id = env.start("gated");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    let link = env.sink().wait_for("rex@example.org", 1)[0].link("approve");
    env.wait_gate(gid, "sent", |g| {
        g["notifications"]
            .as_array()
            .is_some_and(|n| n.iter().all(|x| x["status"] == "sent"))
    });
    let old_base = env.server.base.clone();
    env.restart();
    // The test server gets a new port; a deployment's public_url would not change.
    let link = link.replace(&old_base, &env.server.base);
    let done = confirm(&browser(), &link, "after the restart");
    assert_eq!(done.status, 200, "{}", done.body);
    let run = env.finished(id);
    assert_eq!(step(&run, "block")["status"], "succeeded");
    assert_eq!(env.stub.hits("/block"), 1);
    // Delivered e-mail is not sent again by the restarted server.
    assert_eq!(env.sink().to("rex@example.org").len(), 1);
}

fn smtp_failures_are_retried_recorded_and_audited(db: TestDb) {
    let sink = SmtpSink::start();
    sink.set_refuse(true);
    let env = Env::new(db, &[("gated", GATED)], Some(sink));
    let id = env.start("gated");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    // Three approvers, each refused at least twice: retried with backoff.
    env.sink().wait_refused(6);
    let gate = env.wait_gate(gid, "failures recorded", |g| {
        g["notifications"].as_array().is_some_and(|n| {
            n.len() == 3
                && n.iter()
                    .all(|x| x["attempts"].as_i64().unwrap_or(0) >= 2 && x["status"] != "sent")
        })
    });
    for n in gate["notifications"].as_array().unwrap() {
        let err = n["last_error"].as_str().unwrap_or_default();
        assert!(err.contains("refuses mail"), "{n:#}");
    }
    let (_, outbox) = env.get(&env.ada, "/api/v1/outbox");
    assert!(outbox["emails"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["last_error"].as_str().is_some_and(|x| x.contains("451"))));
    let failed = env.db.audit_with_action("approval.notification_failed");
    assert!(failed.len() >= 6, "{failed:#?}");
    assert_eq!(failed[0]["details"]["will_retry"], true);
    assert!(failed[0]["details"]["error"]
        .as_str()
        .unwrap()
        .contains("refuses mail"));
    assert!(env.sink().messages().is_empty());

    // The relay recovers: the next attempt delivers, with a link that works.
    env.sink().set_refuse(false);
    let mail = env.sink().wait_for("rex@example.org", 1);
    env.wait_gate(gid, "delivered", |g| {
        g["notifications"].as_array().is_some_and(|n| {
            n.iter()
                .any(|x| x["user"] == "rex" && x["status"] == "sent")
        })
    });
    let done = confirm(&browser(), &mail[0].link("approve"), "");
    assert_eq!(done.status, 200, "{}", done.body);
    env.finished(id);
    assert_eq!(env.stub.hits("/block"), 1);
    assert!(!env.db.audit_with_action("approval.notified").is_empty());
}

fn undeliverable_email_fails_after_the_last_attempt(db: TestDb) {
    let sink = SmtpSink::start();
    sink.set_refuse(true);
    let env = Env::with_env(
        db,
        &[("gated", GATED)],
        Some(sink),
        &[("TOCSIN_EMAIL_MAX_ATTEMPTS", "2")],
    );
    let id = env.start("gated");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    let gate = env.wait_gate(gid, "failed", |g| {
        g["notifications"]
            .as_array()
            .is_some_and(|n| n.len() == 3 && n.iter().all(|x| x["status"] == "failed"))
    });
    assert!(gate["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["attempts"] == 2));
    let failed = env.db.audit_with_action("approval.notification_failed");
    assert_eq!(failed.len(), 6);
    assert_eq!(
        failed
            .iter()
            .filter(|f| f["details"]["will_retry"] == false)
            .count(),
        3
    );
    // The gate still waits and can be decided in the console or the API.
    assert_eq!(gate["status"], "pending");
}

fn links_can_require_a_signed_in_approver(db: TestDb) {
    let config = db.dir.path().join("tocsin.toml");
    std::fs::write(
        &config,
        "[approvals]\nlinks_require_login_for = [\"http.*\"]\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let env = Env::with_env(
        db,
        &[("gated", GATED)],
        Some(SmtpSink::start()),
        &[("TOCSIN_CONFIG", config.as_str())],
    );
    let id = env.start("gated");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    let link = env.sink().wait_for("rex@example.org", 1)[0].link("approve");
    let page = open(&browser(), &link);
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(page.body.contains("Sign in as rex"), "{}", page.body);
    assert!(page.body.contains("login?next="), "{}", page.body);
    assert_eq!(env.gate_by_id(gid)["status"], "pending");
    let rex = login(&env.server, "rex", PW);
    let done = confirm(&rex, &link, "");
    assert_eq!(done.status, 200, "{}", done.body);
    env.finished(id);
    assert_eq!(env.stub.hits("/block"), 1);
}

const NOTIFY: &str = r#"
id: notify
version: 1
trigger: { on: manual }
steps:
  - id: mail
    uses: notify.email
    with:
      to: [oncall@example.org, lead@example.org]
      subject: "Run ${{ $.run.id }} says hello"
      body: "Plain words from run ${{ $.run.id }}."
"#;

fn notify_email_rows_are_delivered_by_the_sender(db: TestDb) {
    let env = Env::new(db, &[("notify", NOTIFY)], Some(SmtpSink::start()));
    let id = env.start("notify");
    let run = env.finished(id);
    assert_eq!(step(&run, "mail")["status"], "succeeded", "{run:#}");
    let mail = env.sink().wait_for("oncall@example.org", 1);
    assert_eq!(mail[0].to, ["oncall@example.org", "lead@example.org"]);
    assert_eq!(
        mail[0].header("Subject").unwrap(),
        format!("Run {id} says hello")
    );
    assert!(mail[0]
        .text()
        .contains(&format!("Plain words from run {id}.")));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, outbox) = env.get(&env.ada, "/api/v1/outbox?status=sent");
        if outbox["emails"].as_array().is_some_and(|e| e.len() == 1) {
            assert_eq!(outbox["emails"][0]["origin"], format!("notify#{id}"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not recorded as sent: {outbox:#}"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    let sent = env.db.audit_with_action("email.sent");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["details"]["to"],
        "oncall@example.org, lead@example.org"
    );
}

// ---------------------------------------------------------------------------------------
// Deadlines on a moved clock: the server's scheduler reads a clock the test shifts
// forward (`TOCSIN_TEST_CLOCK_FILE`), so hour-long deadlines pass at once and nothing
// here depends on how fast the machine is.

/// An environment whose server runs on `clock`, with `extra` variables.
fn on_clock(
    db: TestDb,
    clock: &TestClock,
    playbooks: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> Env {
    let (k, v) = clock.env();
    let mut all = vec![(k.as_str(), v.as_str())];
    all.extend_from_slice(extra);
    Env::with_env(db, playbooks, Some(SmtpSink::start()), &all)
}

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

const ESCALATE_THEN_REJECT: &str = r#"
id: escalate-then-reject
version: 1
trigger: { on: manual }
steps:
  - id: wipe
    uses: http.request
    with: { method: DELETE, url: STUB/wipe }
    approval:
      users: [rex]
      timeout: 1h
      on_timeout: escalate
      escalate_to: { users: [rae], timeout: 30m }
      message: Wipe the mailbox?
"#;

/// A server on `clock` with the escalate-then-reject playbook, and a run of it started.
fn escalating_run(db: TestDb, clock: &TestClock) -> (Env, i64) {
    let env = on_clock(
        db,
        clock,
        &[("escalate-then-reject", ESCALATE_THEN_REJECT)],
        &[],
    );
    let id = env.start("escalate-then-reject");
    (env, id)
}

fn escalation_after_the_deadline_then_final_reject(db: TestDb) {
    let clock = TestClock::new(&db);
    let (env, id) = escalating_run(db, &clock);
    let gate = env.gate(id);
    let gid = gate["id"].as_i64().unwrap();
    let rex_link = env.sink().wait_for("rex@example.org", 1)[0].link("approve");
    assert_eq!(gate["escalation_level"], 0);

    // Past the first deadline: rae is asked, with a new deadline half an hour on.
    clock.advance(HOUR + MINUTE);
    let gate = env.wait_gate(gid, "escalation", |g| g["escalation_level"] == 1);
    assert_eq!(gate["status"], "pending");
    assert_eq!(gate["approvers"]["users"], json!(["rae"]));
    let first: chrono::DateTime<chrono::Utc> =
        gate["created_at"].as_str().unwrap().parse().unwrap();
    let second: chrono::DateTime<chrono::Utc> =
        gate["deadline_at"].as_str().unwrap().parse().unwrap();
    let after = (second - first).num_minutes();
    assert!(
        (90..=92).contains(&after),
        "new deadline {after} min after the request"
    );
    let rae_mail = env.sink().wait_for("rae@example.org", 1);
    assert!(rae_mail[0].header("Subject").unwrap().contains("escalated"));
    // rex's link is withdrawn, and he is no longer an approver.
    let page = open(&browser(), &rex_link);
    assert_eq!(page.status, 410, "{}", page.body);
    let rex = env.db.token("rex");
    let (status, body) = env.decision(&rex, gid, json!({ "decision": "approve" }));
    assert_eq!(status, 403, "{body}");

    // Past the second deadline: nobody decided, the gate times out and the step is
    // rejected; the run goes on without the call.
    clock.advance(31 * MINUTE);
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(step(&run, "wipe")["status"], "rejected");
    assert_eq!(env.stub.hits("/wipe"), 0);
    let gate = env.gate_by_id(gid);
    assert_eq!(gate["status"], "timed_out");
    assert_eq!(gate["outcome_reason"], "nobody decided before the deadline");
    let page = open(&browser(), &rae_mail[0].link("approve"));
    assert_eq!(page.status, 409, "{}", page.body);
    assert_eq!(env.db.audit_with_action("approval.escalated").len(), 1);
    let timed_out = env.db.audit_with_action("approval.timed_out");
    assert_eq!(timed_out.len(), 1);
    assert_eq!(timed_out[0]["details"]["outcome"], "timed_out");
    env.db.run_ok(&["audit", "verify"]);
}

fn four_eyes_needs_both_approvals_before_the_deadline(db: TestDb) {
    let clock = TestClock::new(&db);
    let env = on_clock(db, &clock, &[("four-eyes", FOUR_EYES)], &[]);
    // Two approvals, 40 minutes apart, both in time: the step runs once.
    let id = env.start("four-eyes");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    let rex = env.db.token("rex");
    let rae = env.db.token("rae");
    let path = format!("/api/v1/approvals/{gid}/decision");
    // `acknowledge` is for acknowledgement gates; it approves nothing here.
    let (status, body) = env.post(&rex, &path, json!({ "decision": "acknowledge" }));
    assert_eq!(status, 403, "{body}");
    let (status, gate) = env.post(&rex, &path, json!({ "decision": "approve" }));
    assert_eq!(status, 200, "{gate}");
    assert_eq!(gate["status"], "pending");
    // The same approver twice does not make two.
    let (status, _) = env.post(&rex, &path, json!({ "decision": "approve" }));
    assert_eq!(status, 409);
    clock.advance(40 * MINUTE);
    let (status, gate) = env.post(&rae, &path, json!({ "decision": "approve" }));
    assert_eq!(status, 200, "{gate}");
    assert_eq!(gate["status"], "approved");
    let run = env.finished(id);
    assert_eq!(step(&run, "isolate")["status"], "succeeded");
    assert_eq!(env.stub.hits("/isolate"), 1);

    // One approval, then the deadline: the single approval does not run the step.
    let id = env.start("four-eyes");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    let path = format!("/api/v1/approvals/{gid}/decision");
    let (status, _) = env.post(&rex, &path, json!({ "decision": "approve" }));
    assert_eq!(status, 200);
    clock.advance(HOUR + MINUTE);
    let run = env.finished(id);
    assert_eq!(step(&run, "isolate")["status"], "rejected");
    let gate = env.gate_by_id(gid);
    assert_eq!(gate["status"], "timed_out");
    assert_eq!(gate["decisions"].as_array().unwrap().len(), 1);
    // A decision after the gate settled is refused.
    let (status, body) = env.post(&rae, &path, json!({ "decision": "approve" }));
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        env.stub.hits("/isolate"),
        1,
        "still only the first run's call"
    );
}

const APPROVE_ON_TIMEOUT: &str = r#"
id: approve-on-timeout
version: 1
trigger: { on: manual }
steps:
  - id: block
    uses: http.request
    with: { method: POST, url: STUB/block }
    approval:
      roles: [responder]
      timeout: 1h
      on_timeout: escalate
      escalate_to: { users: [rae], timeout: 30m, on_timeout: approve }
      message: Block it?
"#;

fn approve_on_timeout_only_where_configuration_allows_it(db: TestDb) {
    // Without the policy the playbook is refused when it loads.
    let dir = db.dir.path().join("policy-check");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("approve-on-timeout.yaml");
    std::fs::write(
        &file,
        APPROVE_ON_TIMEOUT.replace("STUB", "http://127.0.0.1:9"),
    )
    .unwrap();
    let out = db
        .tocsin()
        .args(["playbook", "validate", file.to_str().unwrap()])
        .env("TOCSIN_PLAYBOOKS_DIR", &dir)
        .env("TOCSIN_PLAYBOOKS_INTEGRATIONS_DIR", &dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("allow_approve_on_timeout is off"), "{text}");

    // With it: escalated, then approved by policy when the escalated deadline passes.
    let allow = db.dir.path().join("allow.toml");
    std::fs::write(&allow, "[playbooks]\nallow_approve_on_timeout = true\n").unwrap();
    let allow = allow.display().to_string();
    let clock = TestClock::new(&db);
    let mut env = on_clock(
        db,
        &clock,
        &[("approve-on-timeout", APPROVE_ON_TIMEOUT)],
        &[("TOCSIN_CONFIG", allow.as_str())],
    );
    let id = env.start("approve-on-timeout");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    clock.advance(HOUR + MINUTE);
    env.wait_gate(gid, "escalation", |g| g["escalation_level"] == 1);
    clock.advance(31 * MINUTE);
    let run = env.finished(id);
    assert_eq!(step(&run, "block")["status"], "succeeded", "{run:#}");
    assert_eq!(env.stub.hits("/block"), 1);
    let gate = env.gate_by_id(gid);
    assert_eq!(gate["status"], "approved");
    assert_eq!(gate["outcome_reason"], "approved on timeout (policy)");
    assert!(gate["decisions"].as_array().unwrap().is_empty());

    // A run that started under the policy, on a server restarted without it (and without
    // the playbook file): its deadline rejects instead.
    let id = env.start("approve-on-timeout");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    std::fs::remove_file(env.db.dir.path().join("playbooks/approve-on-timeout.yaml")).unwrap();
    let none = env.db.dir.path().join("empty.toml");
    std::fs::write(&none, "").unwrap();
    let none = none.display().to_string();
    env.restart_with(&[("TOCSIN_CONFIG", none.as_str())]);
    clock.advance(HOUR + MINUTE);
    env.wait_gate(gid, "escalation", |g| g["escalation_level"] == 1);
    clock.advance(31 * MINUTE);
    let run = env.finished(id);
    assert_eq!(step(&run, "block")["status"], "rejected", "{run:#}");
    assert_eq!(env.gate_by_id(gid)["status"], "timed_out");
    assert_eq!(env.stub.hits("/block"), 1, "only the first run's call");
}

fn a_deadline_passing_while_the_server_is_down_fires_once_after_restart(db: TestDb) {
    let clock = TestClock::new(&db);
    let (mut env, id) = escalating_run(db, &clock);
    let gid = env.gate(id)["id"].as_i64().unwrap();
    env.sink().wait_for("rex@example.org", 1);
    // Down while the first deadline passes; the restarted server escalates, once.
    env.server.kill();
    clock.advance(2 * HOUR);
    env.restart();
    env.wait_gate(gid, "escalation", |g| g["escalation_level"] == 1);
    env.sink().wait_for("rae@example.org", 1);
    // Recorded as sent before the next kill (a kill between delivery and its record
    // would rightly send again: delivery is at least once).
    env.wait_gate(gid, "rae's e-mail recorded", |g| {
        g["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["user"] == "rae" && n["status"] == "sent")
    });
    // Restarted again before the second deadline: no second escalation, no second e-mail.
    env.restart();
    env.wait_gate(gid, "still escalated once", |g| {
        g["escalation_level"] == 1 && g["status"] == "pending"
    });
    // Down again while the second deadline passes: it times out once.
    env.server.kill();
    clock.advance(HOUR);
    env.restart();
    let run = env.finished(id);
    assert_eq!(step(&run, "wipe")["status"], "rejected");
    assert_eq!(env.gate_by_id(gid)["status"], "timed_out");
    assert_eq!(env.db.audit_with_action("approval.escalated").len(), 1);
    assert_eq!(env.db.audit_with_action("approval.timed_out").len(), 1);
    assert_eq!(env.sink().to("rae@example.org").len(), 1);
    assert_eq!(env.stub.hits("/wipe"), 0);
    env.db.run_ok(&["audit", "verify"]);
}

fn an_expired_link_is_refused_and_decides_nothing(db: TestDb) {
    let clock = TestClock::new(&db);
    let mut env = on_clock(db, &clock, &[("gated", GATED)], &[]);
    let id = env.start("gated");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    let link = env.sink().wait_for("rex@example.org", 1)[0].link("approve");
    env.wait_gate(gid, "sent", |g| {
        g["notifications"]
            .as_array()
            .is_some_and(|n| n.iter().all(|x| x["status"] == "sent"))
    });
    // The page opened before the deadline, the form sent after it.
    let client = browser();
    let old_base = env.server.base.clone();
    // Without the engine nothing applies the deadline, so the link itself must refuse.
    env.restart_with(&[("TOCSIN_ENGINE_ENABLED", "false")]);
    let link = link.replace(&old_base, &env.server.base);
    let page = open(&client, &link);
    assert_eq!(page.status, 200, "{}", page.body);
    clock.advance(2 * HOUR);
    let late = submit(&client, &link, &page.body, "");
    assert_eq!(late.status, 410, "{}", late.body);
    assert!(late.body.contains("expired"), "{}", late.body);
    let again = open(&browser(), &link);
    assert_eq!(again.status, 410, "{}", again.body);
    let rae = env.db.token("rae");
    let (status, body) = env.decision(&rae, gid, json!({ "decision": "approve" }));
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "deadline_passed", "{body}");
    let gate = env.gate_by_id(gid);
    assert_eq!(gate["status"], "pending");
    assert!(gate["decisions"].as_array().unwrap().is_empty());
    let views = env.db.audit_with_action("approval.link_viewed");
    assert!(
        views.iter().any(|v| v["details"]["outcome"] == "expired"),
        "{views:#?}"
    );
    let refused = env.db.audit_with_action("approval.link_refused");
    assert!(
        refused.iter().any(|v| v["details"]["reason"] == "expired"),
        "{refused:#?}"
    );
    // With the engine back, the deadline applies: the step is rejected, never run.
    env.restart();
    let run = env.finished(id);
    assert_eq!(step(&run, "block")["status"], "rejected");
    assert_eq!(env.stub.hits("/block"), 0);
}

// ---------------------------------------------------------------------------------------
// SMTP over TLS, and permanent refusals

/// Runs a gated playbook against a TLS sink trusting `ca` through `email.ca_file`; the
/// e-mail arrives over TLS and its link decides.
fn delivers_over(db: TestDb, security: Security) {
    let ca = TestCa::new();
    let ca_file = db.dir.path().join("relay-ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let ca_file = ca_file.display().to_string();
    let env = Env::with_env(
        db,
        &[("gated", GATED)],
        Some(SmtpSink::start_tls(security, &ca)),
        &[("TOCSIN_SMTP_CA_FILE", ca_file.as_str())],
    );
    let id = env.start("gated");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    let mail = env.sink().wait_for("rex@example.org", 1);
    assert!(mail[0].tls, "delivered without TLS");
    assert!(env.sink().messages().iter().all(|m| m.tls));
    assert_eq!(env.sink().failed_handshakes(), 0);
    env.wait_gate(gid, "3 sent", |g| {
        g["notifications"]
            .as_array()
            .is_some_and(|n| n.len() == 3 && n.iter().all(|x| x["status"] == "sent"))
    });
    let done = confirm(&browser(), &mail[0].link("approve"), "");
    assert_eq!(done.status, 200, "{}", done.body);
    env.finished(id);
    assert_eq!(env.stub.hits("/block"), 1);
}

fn starttls_delivers_to_a_relay_with_a_private_ca(db: TestDb) {
    delivers_over(db, Security::StartTls);
}

fn implicit_tls_delivers_to_a_relay_with_a_private_ca(db: TestDb) {
    delivers_over(db, Security::Implicit);
}

fn an_untrusted_relay_certificate_is_refused_retried_and_audited(db: TestDb) {
    // The relay's CA is not configured: the handshake fails and nothing is sent.
    let ca = TestCa::new();
    let env = Env::new(
        db,
        &[("gated", GATED)],
        Some(SmtpSink::start_tls(Security::StartTls, &ca)),
    );
    let id = env.start("gated");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    let gate = env.wait_gate(gid, "failed attempts", |g| {
        g["notifications"].as_array().is_some_and(|n| {
            n.len() == 3 && n.iter().all(|x| x["attempts"].as_i64().unwrap_or(0) >= 2)
        })
    });
    for n in gate["notifications"].as_array().unwrap() {
        assert_ne!(n["status"], "sent", "{n:#}");
        assert_ne!(
            n["status"], "failed",
            "a certificate problem is retried: {n:#}"
        );
        let err = n["last_error"].as_str().unwrap_or_default();
        assert!(err.contains("certificate"), "{n:#}");
    }
    assert!(env.sink().messages().is_empty());
    env.sink().wait_failed_handshakes(6);
    let failed = env.db.audit_with_action("approval.notification_failed");
    assert!(failed.len() >= 6, "{failed:#?}");
    assert!(failed
        .iter()
        .all(|f| f["details"]["will_retry"] == true && f["details"]["permanent"] == false));
    let (_, outbox) = env.get(&env.ada, "/api/v1/outbox");
    assert!(outbox["emails"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["last_error"]
            .as_str()
            .is_some_and(|x| x.contains("certificate"))));
    assert_eq!(env.gate_by_id(gid)["status"], "pending");
}

fn a_permanent_smtp_refusal_fails_at_once(db: TestDb) {
    let sink = SmtpSink::start();
    sink.unknown_mailbox("rex@example.org");
    let env = Env::new(db, &[("gated", GATED)], Some(sink));
    let id = env.start("gated");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    // The others are delivered; rex's e-mail fails after one attempt.
    env.sink().wait_for("rae@example.org", 1);
    let gate = env.wait_gate(gid, "rex failed, the others sent", |g| {
        g["notifications"].as_array().is_some_and(|n| {
            n.len() == 3
                && n.iter().all(|x| {
                    (x["user"] == "rex" && x["status"] == "failed")
                        || (x["user"] != "rex" && x["status"] == "sent")
                })
        })
    });
    let rex = gate["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["user"] == "rex")
        .unwrap()
        .clone();
    assert_eq!(rex["attempts"], 1, "{rex:#}");
    assert!(
        rex["last_error"].as_str().unwrap().contains("550"),
        "{rex:#}"
    );
    let (_, outbox) = env.get(&env.ada, "/api/v1/outbox?status=failed");
    let failed_rows = outbox["emails"].as_array().unwrap();
    assert_eq!(failed_rows.len(), 1, "{outbox:#}");
    assert_eq!(failed_rows[0]["recipients"], "rex@example.org");
    let failed = env.db.audit_with_action("approval.notification_failed");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["details"]["approver"], "rex");
    assert_eq!(failed[0]["details"]["permanent"], true);
    assert_eq!(failed[0]["details"]["will_retry"], false);
    assert!(env.sink().to("rex@example.org").is_empty());
    // The gate still waits for the others.
    assert_eq!(gate["status"], "pending");
}

// ---------------------------------------------------------------------------------------
// Acknowledgement gates: the same deadline rows and scheduler, a different question

const ACKNOWLEDGE: &str = r#"
id: acknowledge
version: 1
trigger: { on: manual }
steps:
  - id: ack
    uses: acknowledgement
    with:
      message: "Disk full on db-01: acknowledge or it escalates"
      timeout: 15m
      roles: [analyst]
      escalate_to: { users: [ada], timeout: 10m }
  - id: escalate
    uses: noop
    if: $.steps.ack.output.acknowledged == false
    with: { value: "escalated" }
"#;

fn an_acknowledgement_by_link_stops_the_escalation(db: TestDb) {
    let clock = TestClock::new(&db);
    let env = on_clock(db, &clock, &[("acknowledge", ACKNOWLEDGE)], &[]);
    let id = env.start("acknowledge");
    let gate = env.gate(id);
    let gid = gate["id"].as_i64().unwrap();
    assert_eq!(gate["kind"], "acknowledgement");
    // Analysts acknowledge, so ann (who started the run) is asked too; the viewer is not.
    let mail = env.sink().wait_for("ann@example.org", 1);
    let subject = mail[0].header("Subject").unwrap();
    assert!(subject.contains("Acknowledgement needed"), "{subject}");
    let text = mail[0].text();
    assert!(text.contains("Acknowledge: "), "{text}");
    assert!(!text.contains("Reject:"), "{text}");
    // The viewer may not acknowledge; nobody may reject an acknowledgement.
    let (status, _) = env.decision(&env.vic, gid, json!({ "decision": "acknowledge" }));
    assert_eq!(status, 403);
    let (status, _) = env.decision(
        &env.ann,
        gid,
        json!({ "decision": "reject", "comment": "no" }),
    );
    assert_eq!(status, 403);
    // Ten minutes on, ann acknowledges from the e-mail.
    clock.advance(10 * MINUTE);
    let link = mail[0].link("approve");
    let page = open(&browser(), &link);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Acknowledge request"), "{}", page.body);
    assert!(!page.body.contains("Reject instead"), "{}", page.body);
    let done = confirm(&browser(), &link, "on it");
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Acknowledged"), "{}", done.body);
    let run = env.finished(id);
    let ack = &step(&run, "ack")["output"];
    assert_eq!(ack["acknowledged"], true, "{ack:#}");
    assert_eq!(ack["by"], "ann");
    assert_eq!(ack["via"], "email");
    assert_eq!(step(&run, "escalate")["status"], "skipped");
    let gate = env.gate_by_id(gid);
    assert_eq!(gate["status"], "acknowledged");
    assert_eq!(gate["decisions"][0]["decision"], "acknowledge");
    // Past the old deadline nothing more happens: the gate stays acknowledged.
    clock.advance(HOUR);
    assert_eq!(env.gate_by_id(gid)["status"], "acknowledged");
    assert!(env.db.audit_with_action("approval.escalated").is_empty());
    let decided = env.db.audit_with_action("approval.decided");
    assert_eq!(decided[0]["details"]["decision"], "acknowledge");
    assert_eq!(decided[0]["details"]["channel"], "email");
}

fn an_unacknowledged_request_escalates_then_the_playbook_goes_on(db: TestDb) {
    let clock = TestClock::new(&db);
    let mut env = on_clock(db, &clock, &[("acknowledge", ACKNOWLEDGE)], &[]);
    let id = env.start("acknowledge");
    let gid = env.gate(id)["id"].as_i64().unwrap();
    env.sink().wait_for("rex@example.org", 1);
    // Nobody acknowledges within 15 minutes: ada is asked, for 10 more, even across a
    // restart.
    clock.advance(16 * MINUTE);
    let gate = env.wait_gate(gid, "escalation", |g| g["escalation_level"] == 1);
    assert_eq!(gate["approvers"]["users"], json!(["ada"]));
    let mails = env.sink().wait_for("ada@example.org", 2);
    assert!(mails[1].header("Subject").unwrap().contains("escalated"));
    assert!(mails[1].text().contains("Nobody acknowledged in time"));
    env.restart();
    clock.advance(11 * MINUTE);
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let ack = &step(&run, "ack")["output"];
    assert_eq!(ack["acknowledged"], false, "{ack:#}");
    assert_eq!(step(&run, "escalate")["status"], "succeeded");
    assert_eq!(step(&run, "escalate")["output"], "escalated");
    let gate = env.gate_by_id(gid);
    assert_eq!(gate["status"], "timed_out");
    assert_eq!(
        gate["outcome_reason"],
        "nobody acknowledged before the deadline"
    );
    assert_eq!(env.db.audit_with_action("approval.escalated").len(), 1);
    let timed_out = env.db.audit_with_action("approval.timed_out");
    assert_eq!(timed_out.len(), 1);
    assert_eq!(timed_out[0]["details"]["kind"], "acknowledgement");
}

fn a_bad_ca_file_stops_the_server_naming_the_key(db: TestDb) {
    let sink = SmtpSink::start();
    let bad = db.dir.path().join("not-a-ca.pem");
    std::fs::write(&bad, "hello").unwrap();
    for file in [bad.display().to_string(), "/nonexistent/ca.pem".to_string()] {
        let mut cmd = db.tocsin();
        cmd.args(["serve"])
            .env("TOCSIN_LISTEN", "127.0.0.1:0")
            .env("TOCSIN_SMTP_CA_FILE", &file);
        for (k, v) in sink.env() {
            cmd.env(k, v);
        }
        cmd.env("TOCSIN_SMTP_TLS", "starttls");
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("email.ca_file"), "{err}");
    }
}

both_backends!(
    a_bad_ca_file_stops_the_server_naming_the_key,
    an_acknowledgement_by_link_stops_the_escalation,
    an_unacknowledged_request_escalates_then_the_playbook_goes_on,
    starttls_delivers_to_a_relay_with_a_private_ca,
    implicit_tls_delivers_to_a_relay_with_a_private_ca,
    an_untrusted_relay_certificate_is_refused_retried_and_audited,
    a_permanent_smtp_refusal_fails_at_once,
    escalation_after_the_deadline_then_final_reject,
    four_eyes_needs_both_approvals_before_the_deadline,
    approve_on_timeout_only_where_configuration_allows_it,
    a_deadline_passing_while_the_server_is_down_fires_once_after_restart,
    an_expired_link_is_refused_and_decides_nothing,
    two_concurrent_posts_of_one_link_decide_once,
    notify_email_rows_are_delivered_by_the_sender,
    email_links_decide_only_after_confirmation_and_only_once,
    a_reject_link_needs_a_comment_and_skips_the_step,
    without_smtp_email_stays_in_the_outbox_and_the_console_decides,
    four_eyes_through_two_approvers_links,
    escalation_emails_the_new_approvers_and_withdraws_old_links,
    a_restart_keeps_pending_links_valid,
    smtp_failures_are_retried_recorded_and_audited,
    undeliverable_email_fails_after_the_last_attempt,
    links_can_require_a_signed_in_approver,
);
