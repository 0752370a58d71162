//! The console's audit log, administration and dashboard pages through the real server,
//! on both backends, and in headless Chromium.

mod common;

use common::browser::Browser;
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
    let (status, html) = page(&server, &admin, "/audit?before=latest");
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("before=latest"), "{html}");
    let (status, html) = page(&server, &admin, "/audit/export?format=xml");
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("expected ndjson or csv"), "{html}");

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

/// The token in the "shown once" box of an admin page, if there is one.
fn shown_token(html: &str) -> Option<String> {
    let start = html.find("id=\"new-token\"")?;
    let rest = &html[start..];
    let v = rest.find("value=\"")? + "value=\"".len();
    Some(rest[v..v + rest[v..].find('"')?].to_string())
}

fn ingest(server: &Server, token: &str, source: &str, reference: &str) -> u16 {
    server
        .post_json(
            token,
            &format!("/api/v1/ingest/{source}"),
            &common::hive_alert(reference, "Port scan", "198.51.100.7"),
        )
        .0
}

fn administration_users_and_sources(db: TestDb) {
    db.add_user("alice", "admin", PW);
    db.add_user("bob", "analyst", PW);
    let server = Server::start(&db);
    let admin = login(&server, "alice", PW);
    let bob = login(&server, "bob", PW);
    let csrf = session_csrf(&server, &admin);
    let bob_csrf = session_csrf(&server, &bob);

    let (status, html) = page(&server, &admin, "/admin");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"user-bob\"") && html.contains("href=\"/outbox\""));

    // Not an admin: 403 on the page and on every change, and nothing changes.
    assert_eq!(page(&server, &bob, "/admin").0, 403);
    let forbidden: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "/admin/users",
            vec![
                ("username", "mallory"),
                ("role", "admin"),
                ("password", "mallory's long password"),
            ],
        ),
        ("/admin/users/bob/role", vec![("role", "admin")]),
        ("/admin/users/alice/disable", vec![]),
        (
            "/admin/sources",
            vec![("name", "evil"), ("kind", "thehive")],
        ),
    ];
    for (path, fields) in &forbidden {
        let mut with_csrf = fields.clone();
        with_csrf.push(("csrf_token", &bob_csrf));
        assert_eq!(form(&server, &bob, path, &with_csrf).0, 403, "{path}");
        // An admin whose form carries a forged CSRF token is refused too.
        let mut forged = fields.clone();
        forged.push(("csrf_token", "forged"));
        assert_eq!(form(&server, &admin, path, &forged).0, 403, "{path}");
    }
    let (_, html) = page(&server, &admin, "/admin");
    assert!(
        !html.contains("mallory") && !html.contains("source-evil"),
        "{html}"
    );
    assert!(
        html.contains("<option value=\"analyst\" selected>"),
        "bob is still an analyst"
    );
    assert!(db
        .audit_with_action("user.created")
        .iter()
        .all(|e| e["target"] != "user:mallory"));

    // Create a user; bad input is refused with the reason and creates nothing.
    let (status, _, html) = form(
        &server,
        &admin,
        "/admin/users",
        &[
            ("csrf_token", &csrf),
            ("username", "carol"),
            ("role", "viewer"),
            ("password", "short"),
        ],
    );
    assert_eq!(status, 422);
    assert!(
        html.contains("password") && html.contains("at least 12"),
        "{html}"
    );
    let (status, location, _) = form(
        &server,
        &admin,
        "/admin/users",
        &[
            ("csrf_token", &csrf),
            ("username", "Carol"),
            ("email", "carol@example.org"),
            ("role", "viewer"),
            ("password", PW),
        ],
    );
    assert_eq!(
        (status, location.as_str()),
        (303, "/admin?done=user_created&name=carol")
    );
    let (_, html) = page(&server, &admin, &location);
    assert!(html.contains("User carol was created."), "{html}");
    let created = db.audit_with_action("user.created");
    let carol = created
        .iter()
        .find(|e| e["target"] == "user:carol")
        .expect("audited");
    assert_eq!(
        (carol["actor_kind"].as_str(), carol["actor_id"].as_str()),
        (Some("user"), Some("alice"))
    );

    // The role change takes effect: carol may not open /admin, then may.
    let carol_client = login(&server, "carol", PW);
    assert_eq!(page(&server, &carol_client, "/admin").0, 403);
    let (status, location, _) = form(
        &server,
        &admin,
        "/admin/users/carol/role",
        &[("csrf_token", &csrf), ("role", "admin")],
    );
    assert_eq!(
        (status, location.as_str()),
        (303, "/admin?done=role&name=carol")
    );
    assert_eq!(page(&server, &carol_client, "/admin").0, 200);
    let changed = db.audit_with_action("user.role_changed");
    assert_eq!(changed.len(), 1);
    assert_eq!(
        changed[0]["details"],
        json!({ "from": "viewer", "to": "admin" })
    );
    let (status, _, html) = form(
        &server,
        &admin,
        "/admin/users/carol/role",
        &[("csrf_token", &csrf), ("role", "root")],
    );
    assert_eq!(status, 422);
    assert!(html.contains("unknown role"), "{html}");

    // Disable ends carol's session; enable; a reset password works and ends sessions.
    let (status, _, _) = form(
        &server,
        &admin,
        "/admin/users/carol/disable",
        &[("csrf_token", &csrf)],
    );
    assert_eq!(status, 303);
    assert_eq!(page(&server, &carol_client, "/admin").0, 303, "signed out");
    let (status, _, _) = form(
        &server,
        &admin,
        "/admin/users/carol/enable",
        &[("csrf_token", &csrf)],
    );
    assert_eq!(status, 303);
    let new_pw = "a brand new passphrase";
    let (status, _, _) = form(
        &server,
        &admin,
        "/admin/users/carol/password",
        &[("csrf_token", &csrf), ("password", new_pw)],
    );
    assert_eq!(status, 303);
    let carol_client = login(&server, "carol", new_pw);
    assert_eq!(page(&server, &carol_client, "/admin").0, 200);
    for action in ["user.disabled", "user.enabled", "user.password_changed"] {
        let events = db.audit_with_action(action);
        assert_eq!(events.len(), 1, "{action}");
        assert_eq!(events[0]["actor_id"], "alice", "{action}");
    }

    // A source: the token is shown once, works, and is never shown again.
    let (status, _, html) = form(
        &server,
        &admin,
        "/admin/sources",
        &[
            ("csrf_token", &csrf),
            ("name", "edr"),
            ("kind", "thehive"),
            ("settings", ""),
        ],
    );
    assert_eq!(status, 200, "{html}");
    let token = shown_token(&html).expect("token shown");
    assert!(token.starts_with("tis_"), "{token}");
    assert!(html.contains("shown only"), "{html}");
    assert_eq!(ingest(&server, &token, "edr", "a-1"), 200);
    let (_, html) = page(&server, &admin, "/admin");
    assert!(html.contains("id=\"source-edr\""));
    assert!(!html.contains(&token) && shown_token(&html).is_none());
    assert_eq!(
        db.audit_with_action("source.created")[0]["actor_id"],
        "alice"
    );
    let (status, _, html) = form(
        &server,
        &admin,
        "/admin/sources",
        &[("csrf_token", &csrf), ("name", "edr"), ("kind", "thehive")],
    );
    assert_eq!(status, 409, "{html}");
    let (status, _, html) = form(
        &server,
        &admin,
        "/admin/sources",
        &[("csrf_token", &csrf), ("name", "x"), ("kind", "nonsense")],
    );
    assert_eq!(status, 422);
    assert!(html.contains("unknown source kind"), "{html}");

    // A non-admin cannot rotate it: the token keeps working.
    assert_eq!(
        form(
            &server,
            &bob,
            "/admin/sources/edr/rotate",
            &[("csrf_token", &bob_csrf)]
        )
        .0,
        403
    );
    assert_eq!(ingest(&server, &token, "edr", "a-2"), 200);

    // Rotating shows a new token once; the old one stops working at once.
    let (status, _, html) = form(
        &server,
        &admin,
        "/admin/sources/edr/rotate",
        &[("csrf_token", &csrf)],
    );
    assert_eq!(status, 200);
    let rotated = shown_token(&html).expect("new token shown");
    assert_ne!(rotated, token);
    assert_eq!(ingest(&server, &token, "edr", "a-3"), 401);
    assert_eq!(ingest(&server, &rotated, "edr", "a-4"), 200);

    // Disabled: refused; enabled again: accepted.
    let (status, location, _) = form(
        &server,
        &admin,
        "/admin/sources/edr/disable",
        &[("csrf_token", &csrf)],
    );
    assert_eq!(
        (status, location.as_str()),
        (303, "/admin?done=source_disabled&name=edr")
    );
    assert_eq!(ingest(&server, &rotated, "edr", "a-5"), 403);
    form(
        &server,
        &admin,
        "/admin/sources/edr/enable",
        &[("csrf_token", &csrf)],
    );
    assert_eq!(ingest(&server, &rotated, "edr", "a-6"), 200);
    for action in ["source.rotated", "source.disabled", "source.enabled"] {
        let events = db.audit_with_action(action);
        assert_eq!(events.len(), 1, "{action}");
        assert_eq!(events[0]["actor_id"], "alice", "{action}");
    }
}

/// A timestamp `secs` seconds before now, as both backends parse it.
fn ago(secs: i64) -> String {
    (chrono::Utc::now().naive_utc() - chrono::Duration::seconds(secs))
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

/// Sums `data-count` of the bars of `series` inside the chart `id`.
fn bar_total(html: &str, id: &str, series: &str) -> i64 {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no chart {id}"));
    let svg = &html[start..start + html[start..].find("</svg>").unwrap()];
    svg.split("<rect class=\"bar\"")
        .skip(1)
        .filter(|r| r.contains(&format!("data-series=\"{series}\"")))
        .map(|r| {
            let v = r.find("data-count=\"").unwrap() + "data-count=\"".len();
            r[v..v + r[v..].find('"').unwrap()].parse::<i64>().unwrap()
        })
        .sum()
}

fn attr_of(html: &str, id: &str, attr: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id}"));
    let rest = &html[start..];
    let v = rest.find(&format!("{attr}=\"")).unwrap() + attr.len() + 2;
    rest[v..v + rest[v..].find('"').unwrap()].to_string()
}

fn text_of(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id}"));
    let rest = &html[start..];
    let open = rest.find('>').unwrap() + 1;
    rest[open..open + rest[open..].find('<').unwrap()]
        .trim()
        .to_string()
}

fn dashboard_figures(db: TestDb) {
    db.add_user("alice", "admin", PW);
    db.add_user("victor", "viewer", PW);
    let (ingest_token, _) = db.add_source("hive", "thehive", &[]);
    let api = db.token("alice");
    let server = Server::start(&db);
    let alert = |reference: &str, ip: &str, severity: u8| -> i64 {
        let event = json!({
            "type": "external", "source": "siem", "sourceRef": reference, "title": "Scan",
            "severity": severity, "observables": [ { "dataType": "ip", "data": ip } ]
        });
        let (status, body) = server.post_json(&ingest_token, "/api/v1/ingest/hive", &event);
        assert_eq!(status, 200, "{body}");
        body["results"][0]["case_id"].as_i64().unwrap()
    };
    let patch = |id: i64, body: Value| {
        let res = browser()
            .patch(server.url(&format!("/api/v1/cases/{id}")))
            .bearer_auth(&api)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
    };
    // Four cases: two Medium, one High, one Critical (two days old).
    let a = alert("r-a", "203.0.113.1", 2);
    let b = alert("r-b", "203.0.113.2", 2);
    let c = alert("r-c", "203.0.113.3", 3);
    let old = alert("r-d", "203.0.113.4", 4);
    patch(a, json!({ "status": "triage" }));
    patch(a, json!({ "status": "resolved" }));
    patch(b, json!({ "status": "in_progress" }));
    patch(old, json!({ "status": "triage" }));
    // Known times: a acknowledged after 10 minutes and resolved after an hour, b
    // acknowledged after 30 minutes, c untouched, the old case acknowledged after an hour.
    let set = |id: i64, created: i64, ack: Option<i64>, resolved: Option<i64>| {
        let t = |s: Option<i64>| s.map_or("NULL".to_string(), |s| format!("'{}'", ago(s)));
        db.exec(&format!(
            "UPDATE cases SET created_at = '{}', acknowledged_at = {}, resolved_at = {} WHERE id = {id}",
            ago(created),
            t(ack.map(|a| created - a)),
            t(resolved.map(|r| created - r)),
        ))
        .expect("set times");
    };
    set(a, 3 * 3600, Some(600), Some(3600));
    set(b, 5 * 3600, Some(1800), None);
    set(c, 3600, None, None);
    set(old, 2 * 86_400, Some(3600), None);

    // Finished playbook runs and steps, and a pending approval, as the engine records them.
    let now = ago(0);
    let mut sql = format!(
        "INSERT INTO playbook_definitions (hash, playbook_id, version, definition, created_at) \
         VALUES ('h1', 'phishing', 1, '{{}}', '{now}');"
    );
    for (id, status) in [
        (901, "succeeded"),
        (902, "succeeded"),
        (903, "succeeded"),
        (904, "failed"),
    ] {
        sql += &format!(
            "INSERT INTO playbook_runs (id, playbook_id, playbook_version, definition_hash, trigger_kind, \
             trigger_data, inputs, requested_by, status, created_at, started_at, finished_at, updated_at) \
             VALUES ({id}, 'phishing', 1, 'h1', 'manual', '{{}}', '{{}}', 'test', '{status}', '{s}', '{s}', '{f}', '{f}');\
             INSERT INTO step_runs (run_id, step_id, item_index, status, created_at, started_at, finished_at) \
             VALUES ({id}, 'lookup', 0, 'succeeded', '{s}', '{s}', '{f}');",
            s = ago(7200),
            f = ago(7200 - 90),
        );
    }
    sql += &format!(
        "INSERT INTO approval_gates (run_id, step_id, action, status, message, approvers, required, \
         requested_by, created_at, deadline_at) VALUES (901, 'block', 'firewall.block_ip', 'pending', \
         'block it', '{{}}', 1, 'test', '{}', '2999-01-01 00:00:00');",
        ago(2 * 3600)
    );
    db.exec(&sql).expect("runs");

    let admin = login(&server, "alice", PW);
    let (status, html) = page(&server, &admin, "/?range=24h");
    assert_eq!(status, 200, "{html}");
    // MTTA over a and b: (600 + 1800) / 2; MTTR over a: 3600.
    assert_eq!(attr_of(&html, "mtta", "data-seconds"), "1200");
    assert_eq!(text_of(&html, "mtta"), "20m");
    assert_eq!(attr_of(&html, "mttr", "data-seconds"), "3600");
    assert_eq!(text_of(&html, "mttr"), "1h");
    assert_eq!(text_of(&html, "cases-created"), "3");
    assert_eq!(text_of(&html, "cases-open"), "3");
    assert_eq!(text_of(&html, "approvals-pending"), "1");
    assert_eq!(bar_total(&html, "chart-severity", "Medium"), 2);
    assert_eq!(bar_total(&html, "chart-severity", "High"), 1);
    assert_eq!(bar_total(&html, "chart-severity", "Critical"), 0);
    assert_eq!(bar_total(&html, "chart-source", "hive"), 3);
    assert_eq!(bar_total(&html, "chart-status", "resolved"), 1);
    assert_eq!(bar_total(&html, "chart-status", "in_progress"), 1);
    assert_eq!(bar_total(&html, "chart-status", "new"), 1);
    assert!(
        html.contains("data-label=\"phishing\" data-series=\"succeeded\" data-value=\"3\""),
        "{html}"
    );
    assert!(html.contains("data-label=\"phishing\" data-series=\"failed\" data-value=\"1\""));
    assert!(html.contains("75% succeeded"));
    assert!(
        html.contains("data-label=\"phishing / lookup\" data-series=\"mean\" data-value=\"90\""),
        "{html}"
    );
    assert!(
        html.contains("data-label=\"1h–4h\" data-series=\"pending\" data-value=\"1\""),
        "{html}"
    );
    // Text alternatives: every chart is an image with a title, and has a table.
    assert_eq!(html.matches("role=\"img\" aria-labelledby=").count(), 6);
    assert!(html.contains("<summary>Cases by severity as a table</summary>"));
    // The status facts the old home page showed are still there.
    assert!(html.contains("id=\"audit-count\""));

    // A week includes the old case: MTTA (600 + 1800 + 3600) / 3.
    let (_, html) = page(&server, &admin, "/?range=7d");
    assert_eq!(attr_of(&html, "mtta", "data-seconds"), "2000");
    assert_eq!(text_of(&html, "cases-created"), "4");
    assert_eq!(bar_total(&html, "chart-severity", "Critical"), 1);
    assert!(html.contains("aria-current=\"true\">last 7 days"));
    let (status, html) = page(&server, &admin, "/?range=1y");
    assert_eq!(status, 400);
    assert!(html.contains("expected 24h, 7d or 30d"), "{html}");

    // A viewer sees the dashboard too, without the user count.
    let viewer = login(&server, "victor", PW);
    let (status, html) = page(&server, &viewer, "/");
    assert_eq!(status, 200);
    assert_eq!(attr_of(&html, "mtta", "data-seconds"), "2000");
}

fn console_pages_in_the_browser(db: TestDb) {
    let Some(chrome) = Browser::start() else {
        return;
    };
    db.add_user("alice", "admin", PW);
    let (token, _) = db.add_source("hive", "thehive", &[]);
    let server = Server::start(&db);
    for (i, severity) in [2, 3, 3, 4].into_iter().enumerate() {
        let event = json!({
            "type": "external", "source": "siem", "sourceRef": format!("b-{i}"), "title": "Scan",
            "severity": severity, "observables": [ { "dataType": "ip", "data": format!("192.0.2.{}", i + 1) } ]
        });
        assert_eq!(
            server.post_json(&token, "/api/v1/ingest/hive", &event).0,
            200
        );
    }

    chrome.login(&server, "alice", PW);
    // The dashboard: charts drawn as SVG images with their text alternatives.
    chrome.wait_for("svg#chart-severity rect.bar");
    for chart in ["chart-severity", "chart-source", "chart-status"] {
        assert!(
            chrome.exists(&format!("svg#{chart}[role=img][aria-labelledby]")),
            "{chart}"
        );
    }
    // No run or approval yet: said in words rather than drawn empty.
    assert!(chrome
        .text("main")
        .contains("No playbook run finished in this window."));
    assert!(chrome.text("#cases-created").parse::<i64>().unwrap() >= 4);
    assert_eq!(
        chrome.text("nav.sections a[aria-current=page]"),
        "Dashboard"
    );
    chrome.click("nav.range a[href='/?range=24h']");
    chrome.wait_text("nav.range a[aria-current=true]", "the 24h window", |t| {
        t.contains("24 hours")
    });
    chrome.wait_for("svg#chart-severity rect.bar");
    chrome.screenshot("console-dashboard");

    // The audit log: Verify now, by keyboard, shows the verified status.
    chrome.goto(&server.url("/audit"));
    chrome.wait_text("#verify-result", "the unverified notice", |t| {
        t.contains("not been verified")
    });
    chrome.execute("document.getElementById('verify-now').focus(); return null;");
    chrome.keys("\u{E007}");
    chrome.wait_text("#verify-result", "the verified status", |t| {
        t.starts_with("Verified")
    });
    assert!(
        chrome.url().ends_with("/audit?verified=1"),
        "{}",
        chrome.url()
    );
    assert!(chrome.exists("#audit-events tr[id^=event-]"));
    chrome.fill("#f-action", "case.*");
    chrome.click("form[role=search] button[type=submit]");
    chrome.wait_text("#audit-events tbody", "only case events", |t| {
        t.contains("case.created") && !t.contains("auth.login") && !t.contains("audit.verified")
    });
    assert_eq!(chrome.find_all("#audit-events tbody tr").len(), 4);
    chrome.screenshot("console-audit");

    // Administration: create a source, its token is shown once.
    chrome.goto(&server.url("/admin"));
    chrome.fill("#ns-name", "splunk-prod");
    chrome.select("#ns-kind", "splunk");
    chrome.click("#create-source button[type=submit]");
    let shown = chrome.find("#new-token");
    let value = chrome.execute("return document.getElementById('new-token').value;");
    assert!(value.as_str().unwrap().starts_with("tis_"), "{value}");
    drop(shown);
    chrome.wait_for("#source-splunk-prod");
    chrome.screenshot("console-admin");
    chrome.goto(&server.url("/admin"));
    chrome.wait_for("#source-splunk-prod");
    assert!(!chrome.exists("#new-token"), "the token is not shown again");
}

both_backends!(
    audit_search_verification_and_export,
    administration_users_and_sources,
    dashboard_figures,
);

/// The browser test touches SQL only through pages already covered on both backends.
mod browser_sqlite {
    #[test]
    fn console_pages_in_the_browser() {
        if let Some(db) = crate::common::TestDb::new(crate::common::Backend::Sqlite) {
            super::console_pages_in_the_browser(db);
        }
    }
}
