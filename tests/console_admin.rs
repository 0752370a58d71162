//! The console's audit log, administration and dashboard pages through the real server,
//! on both backends, and in headless Chromium.

mod common;

use common::{browser, login, session_csrf, Backend, Server, TestDb};
use reqwest::blocking::Client;
use serde_json::{json, Value};

const PW: &str = "correct horse battery";

/// GETs a console page, returning its status and HTML.
fn page(server: &Server, client: &Client, path: &str) -> (u16, String) {
    let res = client
        .get(server.url(path))
        .send()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = res.status().as_u16();
    // minijinja escapes `/` in text; read it back as the browser shows it.
    (status, res.text().expect("body").replace("&#x2f;", "/"))
}

/// POSTs a console form, returning the status, the `Location` header and the HTML.
fn form(
    server: &Server,
    client: &Client,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, String, String) {
    let res = client
        .post(server.url(path))
        .form(fields)
        .send()
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, res.text().expect("body"))
}

/// The `<tr id="event-N">` rows of an audit page, as (seq, row HTML).
fn audit_rows(html: &str) -> Vec<(i64, String)> {
    html.split("<tr id=\"event-")
        .skip(1)
        .map(|rest| {
            let seq = rest[..rest.find('"').unwrap()].parse().unwrap();
            let row = rest[..rest.find("</tr>").unwrap()].to_string();
            (seq, row)
        })
        .collect()
}

/// Tampering as a database owner would (on PostgreSQL the append-only trigger is bypassed).
fn tamper(db: &TestDb, sql: &str) {
    let sql = match db.backend {
        Backend::Sqlite => sql.to_string(),
        Backend::Postgres => format!("SET session_replication_role = replica; {sql}"),
    };
    db.exec(&sql).expect("tamper");
}

fn audit_search_verification_and_export(db: TestDb) {
    db.add_user("alice", "admin", PW);
    db.add_user("bob", "analyst", PW);
    db.add_user("victor", "viewer", PW);
    let server = Server::start(&db);
    let admin = login(&server, "alice", PW);
    let bob = login(&server, "bob", PW);
    let victor = login(&server, "victor", PW);

    // Not verified yet; the page says so.
    let (status, html) = page(&server, &admin, "/audit");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("has not been verified"), "{html}");

    // Filters: action, actor, target, text (any case), time range.
    let (_, html) = page(&server, &admin, "/audit?action=user.created");
    let rows = audit_rows(&html);
    assert_eq!(rows.len(), 3, "{html}");
    assert!(rows.iter().all(|(_, r)| r.contains("user.created")));
    let (_, html) = page(&server, &admin, "/audit?action=auth.*&actor=bob");
    let rows = audit_rows(&html);
    assert_eq!(rows.len(), 1, "{html}");
    assert!(
        rows[0].1.contains("user/bob") && rows[0].1.contains("auth.login"),
        "{html}"
    );
    let (_, html) = page(&server, &admin, "/audit?target=user%3Avictor");
    let rows = audit_rows(&html);
    assert!(
        !rows.is_empty() && rows.iter().all(|(_, r)| r.contains("user:victor")),
        "{html}"
    );
    let (_, html) = page(&server, &admin, "/audit?action=user.created&q=VIEWER");
    let rows = audit_rows(&html);
    assert_eq!(rows.len(), 1, "{html}");
    assert!(rows[0].1.contains("user:victor"));
    let (_, html) = page(&server, &admin, "/audit?since=2999-01-01T00%3A00");
    assert!(audit_rows(&html).is_empty() && html.contains("No event matches"));
    let (_, html) = page(&server, &admin, "/audit?since=2000-01-01&until=2999-01-01");
    assert!(audit_rows(&html).len() >= 6, "{html}");
    let (status, html) = page(&server, &admin, "/audit?since=yesterday");
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("since=yesterday"), "{html}");

    // Paging: 60 more events, 50 a page, the next page continues below the first.
    let token = db.token("alice");
    for i in 0..60 {
        let (status, body) = server.post_json(
            &token,
            "/api/v1/tokens",
            &json!({ "name": format!("t{i}") }),
        );
        assert_eq!(status, 201, "{body}");
    }
    let (_, html) = page(&server, &admin, "/audit");
    let first = audit_rows(&html);
    assert_eq!(first.len(), 50);
    assert!(first.windows(2).all(|w| w[0].0 > w[1].0), "newest first");
    let older = html
        .split("href=\"")
        .find_map(|s| s.strip_prefix("/audit?before="))
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .expect("a link to older events");
    let (_, html) = page(&server, &admin, &format!("/audit?before={older}"));
    let second = audit_rows(&html);
    assert!(!second.is_empty());
    assert_eq!(second[0].0, first.last().unwrap().0 - 1, "pages join up");

    // Someone without the permission: 403 on the page, the button and the export.
    for path in ["/audit", "/audit/export"] {
        assert_eq!(page(&server, &victor, path).0, 403, "{path}");
        assert_eq!(page(&server, &bob, path).0, 403, "{path}");
    }
    let victor_csrf = session_csrf(&server, &victor);
    let (status, _, _) = form(
        &server,
        &victor,
        "/audit/verify",
        &[("csrf_token", &victor_csrf)],
    );
    assert_eq!(status, 403);
    // A wrong CSRF token changes nothing either.
    let (status, _, _) = form(
        &server,
        &admin,
        "/audit/verify",
        &[("csrf_token", "forged")],
    );
    assert_eq!(status, 403);
    assert!(db.audit_with_action("audit.verified").is_empty());

    // Verify now: intact.
    let csrf = session_csrf(&server, &admin);
    let (status, location, _) = form(&server, &admin, "/audit/verify", &[("csrf_token", &csrf)]);
    assert_eq!((status, location.as_str()), (303, "/audit?verified=1"));
    let (_, html) = page(&server, &admin, &location);
    assert!(html.contains("<strong>Verified</strong>"), "{html}");
    assert!(html.contains("by user/alice"), "{html}");
    assert_eq!(db.audit_with_action("audit.verified").len(), 1);

    // The export is the chain: every link and hash checks out.
    let res = admin
        .get(server.url("/audit/export?format=ndjson"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment; filename=\"tocsin-audit-all-all.ndjson\""));
    let text = res.text().unwrap();
    let mut prev = tocsin::audit::GENESIS_HASH.to_string();
    let mut n = 0;
    for line in text.lines() {
        let e: Value = serde_json::from_str(line).expect("NDJSON");
        n += 1;
        assert_eq!(e["seq"], n);
        assert_eq!(e["prev_hash"], prev.as_str());
        let at = chrono::DateTime::parse_from_rfc3339(e["occurred_at"].as_str().unwrap())
            .unwrap()
            .naive_utc();
        let hash = tocsin::audit::event_hash(
            n,
            &at,
            e["actor_kind"].as_str().unwrap(),
            e["actor_id"].as_str().unwrap(),
            e["action"].as_str().unwrap(),
            e["target"].as_str().unwrap(),
            &e["details"].to_string(),
            &prev,
        );
        assert_eq!(e["hash"], hash.as_str(), "event {n}");
        prev = hash;
    }
    assert!(n > 60, "{n} events exported");
    let csv = admin
        .get(server.url("/audit/export?format=csv&since=2999-01-01"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        csv.trim(),
        "seq,occurred_at,actor_kind,actor_id,action,target,details,prev_hash,hash"
    );

    // Tampering with an event shows where the chain breaks.
    tamper(
        &db,
        "UPDATE audit_events SET target = 'user:mallory' WHERE seq = 3",
    );
    let (status, _, _) = form(&server, &admin, "/audit/verify", &[("csrf_token", &csrf)]);
    assert_eq!(status, 303);
    let (_, html) = page(&server, &admin, "/audit");
    assert!(html.contains("Broken at event 3"), "{html}");
    assert!(html.contains("was edited"), "{html}");
    assert!(html.contains("Events 1 to 2 verified"), "{html}");
    assert!(!html.contains("<strong>Verified</strong>"));
}

both_backends!(audit_search_verification_and_export);
