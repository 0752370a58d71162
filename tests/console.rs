//! The console's shared pieces through the real server: the change feed (`/live`) and,
//! in headless Chromium, sign-in, the layout and a page updating itself without a reload.

mod common;

use common::browser::Browser;
use common::{browser, hive_alert, session_cookie, Server, TestDb};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";

/// Reads SSE events from `/live` until one of type `changes` satisfies `want`.
fn next_changes(
    lines: &mut impl BufRead,
    want: impl Fn(&[Value]) -> bool,
    deadline: Instant,
) -> Vec<Value> {
    let mut event = String::new();
    loop {
        assert!(Instant::now() < deadline, "no matching change in time");
        let mut line = String::new();
        let n = lines.read_line(&mut line).expect("read /live");
        assert!(n > 0, "/live ended");
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            if event == "changes" {
                let changes: Vec<Value> = serde_json::from_str(data).expect("JSON changes");
                if want(&changes) {
                    return changes;
                }
            }
        }
    }
}

fn live_feed_streams_changes_to_signed_in_pages(db: TestDb) {
    db.add_user("alice", "admin", PW);
    let (token, _) = db.add_source("hive", "thehive", &[]);
    let server = Server::start(&db);

    // Signed out: sent to sign in, like every console page.
    let anonymous = browser().get(server.url("/live")).send().unwrap();
    assert_eq!(anonymous.status(), 303);
    assert!(anonymous.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login?next="));

    // A client without a timeout: the stream stays open.
    let stream = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap();
    let cookie = session_cookie(&server, "alice", PW);
    let res = stream
        .get(server.url("/live"))
        .header("cookie", cookie)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut lines = BufReader::new(res);
    let deadline = Instant::now() + Duration::from_secs(60);

    // An alert opens a case: the feed names it.
    let (status, body) = server.post_json(
        &token,
        "/api/v1/ingest/hive",
        &hive_alert("r-1", "Beaconing", "203.0.113.9"),
    );
    assert_eq!(status, 200, "{body}");
    let case_id = body["results"][0]["case_id"].as_i64().unwrap();
    let changes = next_changes(
        &mut lines,
        |c| c.iter().any(|c| c["action"] == "case.created"),
        deadline,
    );
    let created = changes
        .iter()
        .find(|c| c["action"] == "case.created")
        .unwrap();
    assert_eq!(created["target"], format!("case:{case_id}"));
    assert_eq!(created["case"], case_id);

    // A second alert joining that case is not audited, but the feed still sees the case move.
    let (status, _) = server.post_json(
        &token,
        "/api/v1/ingest/hive",
        &hive_alert("r-2", "Beaconing", "203.0.113.9"),
    );
    assert_eq!(status, 200);
    next_changes(
        &mut lines,
        |c| {
            c.iter()
                .any(|c| c["action"] == "case.seen" && c["case"] == case_id)
        },
        deadline,
    );

    // An analyst's change to the case.
    let api = db.token("alice");
    let (status, body) = server.post_json(
        &api,
        &format!("/api/v1/cases/{case_id}/comments"),
        &json!({ "body": "looking into it" }),
    );
    assert!(status == 200 || status == 201, "{status} {body}");
    next_changes(
        &mut lines,
        |c| {
            c.iter()
                .any(|c| c["action"] == "case.commented" && c["case"] == case_id)
        },
        deadline,
    );
}

fn a_page_follows_changes_in_the_browser(db: TestDb) {
    let Some(chrome) = Browser::start() else {
        return;
    };
    db.add_user("alice", "admin", PW);
    db.add_user("victor", "viewer", PW);
    let server = Server::start(&db);

    chrome.login(&server, "alice", PW);
    assert!(chrome.url().ends_with('/'), "{}", chrome.url());
    // The layout: sections by role, the current one marked.
    let nav = chrome.text("nav.sections");
    for section in [
        "Dashboard",
        "Cases",
        "Runs",
        "Approvals",
        "Playbooks",
        "Audit",
        "Admin",
    ] {
        assert!(nav.contains(section), "{section} missing from {nav}");
    }
    assert_eq!(
        chrome.text("nav.sections a[aria-current=page]"),
        "Dashboard"
    );
    // The script ran (CSP allows it) and follows the feed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while chrome.execute("return document.body.dataset.liveConnected || null") != json!("1") {
        assert!(Instant::now() < deadline, "the page script did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Read through wait_text: a live refresh may be replacing the element at this moment.
    let before: i64 = chrome
        .wait_text("#audit-count", "the audit count", |t| {
            t.parse::<i64>().is_ok()
        })
        .parse()
        .unwrap();
    chrome.screenshot("home");

    // A change made elsewhere shows up without a reload.
    let marker = chrome.execute("window.__marker = 42; return window.__marker;");
    assert_eq!(marker, json!(42));
    db.token("alice");
    let after = chrome.wait_text("#audit-count", "the audit count to grow", |t| {
        t.parse::<i64>().is_ok_and(|n| n > before)
    });
    assert!(after.parse::<i64>().unwrap() > before);
    assert_eq!(
        chrome.execute("return window.__marker || null;"),
        json!(42),
        "the page was reloaded instead of updated"
    );

    // A viewer's layout has no audit or admin sections, and the server refuses them too.
    let viewer = Browser::start().expect("a second browser");
    viewer.login(&server, "victor", PW);
    let nav = viewer.text("nav.sections");
    assert!(
        !nav.contains("Audit") && !nav.contains("Admin"),
        "viewer sees {nav}"
    );
    viewer.goto(&server.url("/outbox"));
    assert!(viewer.text("main").contains("Forbidden") || viewer.source().contains("403"));
}

both_backends!(
    live_feed_streams_changes_to_signed_in_pages,
    a_page_follows_changes_in_the_browser,
);
