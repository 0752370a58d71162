//! The SOC's whole path through the console in headless Chromium, as one story: an alert's
//! case appears live, an analyst runs a containment playbook from it, a responder approves
//! the containment from the inbox while the analyst's case page updates itself, the vendor
//! is called once, and an admin verifies the audit chain. Along the way the server refuses
//! a page the analyst's role does not allow and a form whose CSRF token was tampered with.

mod common;

use common::browser::Browser;
use common::stub::Stub;
use common::{write_playbooks, Server, TestDb};
use serde_json::json;
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";

/// A manual containment playbook: block the address at the edge, after a responder agrees.
const CONTAIN: &str = r#"
id: contain-ip
version: 1
trigger: { on: manual }
steps:
  - id: block
    uses: http.request
    with: { method: POST, url: STUB/block, body: { case: "${{ $.case.id }}" } }
    approval:
      roles: [responder]
      timeout: 1h
      message: "Block the source address of case ${{ $.case.id }} at the edge?"
"#;

/// Waits until the page's script is connected to the change feed, then marks the page so a
/// reload (which would lose the mark) is told apart from a live update.
fn follow_live(chrome: &Browser) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while chrome.execute("return document.body.dataset.liveConnected || null") != json!("1") {
        assert!(Instant::now() < deadline, "the page script did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    chrome.execute("window.__journey = 1; return 1;");
}

fn not_reloaded(chrome: &Browser) {
    assert_eq!(
        chrome.execute("return window.__journey || null;"),
        json!(1),
        "the page was reloaded instead of updated"
    );
}

#[test]
fn alert_to_contained_and_audited_in_the_browser() {
    let Some(db) = TestDb::new(common::Backend::Sqlite) else {
        return;
    };
    let Some(analyst) = Browser::start() else {
        return;
    };
    let responder = Browser::start().expect("a second browser");
    let vendor = Stub::start();
    db.add_user("ann", "analyst", PW);
    db.add_user("rex", "responder", PW);
    db.add_user("alice", "admin", PW);
    let (hive, _) = db.add_source("hive", "thehive", &[]);
    write_playbooks(&db, &vendor.url(""), &[("contain-ip", CONTAIN)]);
    let server = Server::start(&db);

    // The analyst watches the open queue; an alert arrives and its case appears live.
    analyst.login(&server, "ann", PW);
    analyst.goto(&server.url("/cases"));
    analyst.wait_for("#queue");
    follow_live(&analyst);
    let alert = json!({
        "type": "external", "source": "siem", "sourceRef": "journey-1",
        "title": "Outbound beaconing to known C2", "severity": 3,
        "observables": [ { "dataType": "ip", "data": "203.0.113.66" } ]
    });
    let (status, body) = server.post_json(&hive, "/api/v1/ingest/hive", &alert);
    assert_eq!(status, 200, "{body}");
    let case = body["results"][0]["case_id"].as_i64().expect("case id");
    analyst.wait_text("#queue", "the new case in the queue", |t| {
        t.contains("Outbound beaconing to known C2")
    });
    not_reloaded(&analyst);
    analyst.screenshot("journey-queue");

    // The analyst may not open the administration, whatever the page offers.
    analyst.goto(&server.url("/admin"));
    assert!(
        analyst.text("main").contains("Forbidden") || analyst.source().contains("403"),
        "{}",
        analyst.text("main")
    );

    // Open the case and run the containment playbook from it.
    analyst.goto(&server.url("/cases"));
    analyst.click(&format!("#case-row-{case} a"));
    analyst.wait_for("#run-form");
    analyst.select("#a-playbook", "contain-ip");
    analyst.click("#run-form button[type=submit]");
    analyst.wait_text("#notice", "the run to start", |t| {
        t.contains("Playbook run started")
    });
    analyst.wait_text("#timeline", "the approval request", |t| {
        t.contains("Approval requested")
    });

    // A comment whose CSRF token was tampered with is refused and changes nothing.
    analyst.execute(
        "document.querySelector('#comment-form input[name=csrf_token]').value = 'forged'; return 1;",
    );
    analyst.fill("#a-comment", "this must not be stored");
    analyst.click("#comment-form button[type=submit]");
    analyst.wait_text("main", "the refusal", |t| t.contains("Forbidden"));
    let comments = db.query_i64(&format!(
        "SELECT COUNT(*) AS n FROM case_comments WHERE case_id = {case}"
    ));
    assert_eq!(comments, 0, "a forged form stored a comment");

    // Back on the case page, following the feed.
    analyst.goto(&server.url(&format!("/cases/{case}")));
    analyst.wait_for("#timeline");
    follow_live(&analyst);

    // The responder approves the containment from the inbox.
    responder.login(&server, "rex", PW);
    responder.goto(&server.url("/approvals"));
    responder.wait_text("#approval-list", "the pending containment", |t| {
        t.contains(&format!(
            "Block the source address of case {case} at the edge?"
        ))
    });
    responder.screenshot("journey-inbox");
    responder.fill("#approval-list textarea", "Confirmed C2 traffic; block it.");
    responder.click("#approval-list button[value=approve]");
    responder.wait_text("main", "the decision to be recorded", |t| {
        t.contains("Your decision on request") && t.contains("was recorded")
    });

    // The analyst's case page shows the decision and the finished step without a reload.
    analyst.wait_text("#timeline", "the approval in the timeline", |t| {
        t.contains("rex approved")
    });
    analyst.wait_text("#runs", "the run to succeed", |t| {
        t.contains("contain-ip") && t.contains("succeeded")
    });
    not_reloaded(&analyst);
    analyst.screenshot("journey-case");
    assert_eq!(vendor.hits("/block"), 1, "the block was sent once");
    assert!(
        vendor.bodies("/block")[0].contains(&format!("\"case\":{case}")),
        "{:?}",
        vendor.bodies("/block")
    );

    // An admin verifies the audit chain from the audit page.
    let admin = responder;
    admin.click("form[action='/logout'] button[type=submit]");
    admin.login(&server, "alice", PW);
    admin.goto(&server.url("/audit"));
    admin.click("#verify-now");
    let verdict = admin.wait_text("#verify-result", "the verification", |t| {
        t.contains("Verified")
    });
    assert!(verdict.contains("events 1 to"), "{verdict}");
    admin.screenshot("journey-audit");
    let decided = db.audit_with_action("approval.decided");
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!(
        decided[0]["details"]["comment"],
        "Confirmed C2 traffic; block it."
    );
}
