//! The real server on a free port: health endpoints, authentication, roles, CSRF,
//! throttling, limits and the first-admin setup link.

mod common;

use common::{browser, form_value, login, session_csrf, Server, TestDb};
use serde_json::{json, Value};

const PW: &str = "correct horse battery";

fn health_ready_and_metrics(db: TestDb) {
    let server = Server::start(&db);
    let client = browser();
    let health = client.get(server.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().unwrap()["status"], "ok");

    let ready = client.get(server.url("/readyz")).send().unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().unwrap();
    assert_eq!(ready["checks"]["database"]["ok"], true);
    let expected = match db.backend {
        common::Backend::Sqlite => "sqlite",
        common::Backend::Postgres => "postgres",
    };
    assert_eq!(ready["checks"]["database"]["backend"], expected);

    let metrics = client.get(server.url("/metrics")).send().unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().unwrap();
    assert!(
        text.contains("# TYPE tocsin_http_requests counter"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"tocsin_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("tocsin_db_pool_connections"), "{text}");
}

fn api_requires_credentials_and_errors_are_json(db: TestDb) {
    db.add_user("alice", "admin", PW);
    let server = Server::start(&db);
    let client = browser();
    for (method, path) in [
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/tokens"),
    ] {
        let res = client
            .request(method.parse().unwrap(), server.url(path))
            .json(&json!({}))
            .send()
            .unwrap();
        assert_eq!(res.status(), 401, "{method} {path}");
        let body: Value = res.json().unwrap();
        assert_eq!(body["error"]["code"], "unauthenticated", "{body}");
        assert!(body["error"]["message"].is_string());
    }
    let bad_token = client
        .get(server.url("/api/v1/me"))
        .bearer_auth("tcn_not-a-real-token")
        .send()
        .unwrap();
    assert_eq!(bad_token.status(), 401);
    assert!(bad_token.json::<Value>().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("API token"));
    let basic = client
        .get(server.url("/api/v1/me"))
        .basic_auth("alice", Some(PW))
        .send()
        .unwrap();
    assert_eq!(basic.status(), 401);

    let token = db.token("alice");
    let unknown = client
        .get(server.url("/api/v1/nope"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().unwrap()["error"]["code"],
        "not_found"
    );

    // Malformed and mistyped bodies get a 4xx naming the problem, and change nothing.
    let before = db.query_i64("SELECT COUNT(*) AS n FROM users");
    let malformed = client
        .post(server.url("/api/v1/users"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert!(malformed.json::<Value>().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("JSON"));
    let missing = client
        .post(server.url("/api/v1/users"))
        .bearer_auth(&token)
        .json(&json!({ "username": "carol", "role": "viewer" }))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 422);
    assert!(missing.json::<Value>().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("password"));
    let wrong_role = client
        .post(server.url("/api/v1/users"))
        .bearer_auth(&token)
        .json(&json!({ "username": "carol", "role": "root", "password": PW }))
        .send()
        .unwrap();
    assert_eq!(wrong_role.status(), 422);
    assert!(wrong_role.json::<Value>().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("root"));
    let bad_email = client
        .post(server.url("/api/v1/users"))
        .bearer_auth(&token)
        .json(&json!({ "username": "carol", "role": "viewer", "password": PW, "email": "nope" }))
        .send()
        .unwrap();
    assert_eq!(bad_email.status(), 422);
    assert!(bad_email.json::<Value>().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("email"));
    let huge = client
        .post(server.url("/api/v1/users"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"username\":\"{}\"}}",
            "x".repeat(2 * 1024 * 1024)
        ))
        .send()
        .unwrap();
    assert_eq!(huge.status(), 413);
    assert_eq!(huge.json::<Value>().unwrap()["error"]["code"], "too_large");
    let bad_path = client
        .delete(server.url("/api/v1/tokens/abc"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(bad_path.status(), 400);
    assert_eq!(db.query_i64("SELECT COUNT(*) AS n FROM users"), before);
}

fn login_failures_are_refused_and_audited(db: TestDb) {
    db.add_user("alice", "analyst", PW);
    db.add_user("dave", "viewer", PW);
    db.run_ok(&["user", "disable", "dave"]);
    let server = Server::start(&db);

    let attempt = |user: &str, password: &str| {
        let client = browser();
        let page = client
            .get(server.url("/login"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let csrf = form_value(&page, "csrf_token");
        client
            .post(server.url("/login"))
            .form(&[
                ("username", user),
                ("password", password),
                ("csrf_token", csrf.as_str()),
            ])
            .send()
            .unwrap()
    };
    let wrong = attempt("alice", "not the password");
    assert_eq!(wrong.status(), 401);
    assert!(!wrong
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().contains("tocsin_session")));
    assert!(wrong
        .text()
        .unwrap()
        .contains("Invalid username or password"));
    assert_eq!(attempt("mallory", PW).status(), 401);
    assert_eq!(attempt("dave", PW).status(), 401);
    let ok = attempt("alice", PW);
    assert_eq!(ok.status(), 303);
    assert!(ok.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("HttpOnly"));
    assert!(ok.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("SameSite=Lax"));

    let failed = db.audit_with_action("auth.login_failed");
    let reasons: Vec<(&str, &str)> = failed
        .iter()
        .map(|e| {
            (
                e["details"]["username"].as_str().unwrap(),
                e["details"]["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("alice", "wrong_password"),
            ("mallory", "unknown_user"),
            ("dave", "disabled_user")
        ]
    );
    assert_eq!(failed[0]["details"]["ip"], "127.0.0.1");
    let logins = db.audit_with_action("auth.login");
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0]["actor_kind"], "user");
    assert_eq!(logins[0]["actor_id"], "alice");
    assert_eq!(db.query_i64("SELECT COUNT(*) AS n FROM sessions"), 1);
    let metrics = browser()
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("tocsin_logins_failed_total 3"),
        "{metrics}"
    );

    // The whole chain, with these events, still verifies.
    assert!(db.run_ok(&["audit", "verify"]).contains("intact"));
}

fn roles_are_enforced(db: TestDb) {
    db.add_user("root", "admin", PW);
    db.add_user("vic", "viewer", PW);
    let server = Server::start(&db);
    let admin = db.token("root");
    let viewer = db.token("vic");
    let client = browser();

    let me: Value = client
        .get(server.url("/api/v1/me"))
        .bearer_auth(&viewer)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me["username"], "vic");
    assert_eq!(me["role"], "viewer");
    assert_eq!(me["auth"], "token");

    let denied = client
        .post(server.url("/api/v1/users"))
        .bearer_auth(&viewer)
        .json(&json!({ "username": "eve", "password": PW, "role": "admin" }))
        .send()
        .unwrap();
    assert_eq!(denied.status(), 403);
    let body: Value = denied.json().unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("viewer"));
    assert_eq!(
        client
            .get(server.url("/api/v1/users"))
            .bearer_auth(&viewer)
            .send()
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        client
            .patch(server.url("/api/v1/users/vic"))
            .bearer_auth(&viewer)
            .json(&json!({ "role": "admin" }))
            .send()
            .unwrap()
            .status(),
        403
    );
    assert_eq!(db.query_i64("SELECT COUNT(*) AS n FROM users"), 2);

    // The admin can do all of it, and it is audited as the admin's token.
    let created = client
        .post(server.url("/api/v1/users"))
        .bearer_auth(&admin)
        .json(&json!({ "username": "Eve", "password": PW, "role": "analyst", "email": "eve@example.org" }))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let eve: Value = created.json().unwrap();
    assert_eq!(eve["username"], "eve");
    assert!(eve.get("password_hash").is_none());
    let dup = client
        .post(server.url("/api/v1/users"))
        .bearer_auth(&admin)
        .json(&json!({ "username": "eve", "password": PW, "role": "analyst" }))
        .send()
        .unwrap();
    assert_eq!(dup.status(), 409);

    let updated: Value = client
        .patch(server.url("/api/v1/users/eve"))
        .bearer_auth(&admin)
        .json(&json!({ "role": "responder" }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(updated["role"], "responder");
    let list: Value = client
        .get(server.url("/api/v1/users"))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list["users"].as_array().unwrap().len(), 3);

    // Demoting the last admin is refused and changes nothing, even alongside other fields.
    let last = client
        .patch(server.url("/api/v1/users/root"))
        .bearer_auth(&admin)
        .json(&json!({ "email": "root@example.org", "role": "viewer" }))
        .send()
        .unwrap();
    assert_eq!(last.status(), 409);
    let root: Value = client
        .get(server.url("/api/v1/users/root"))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(root["role"], "admin");
    assert!(root["email"].is_null());

    // Disabling a user makes their token stop working at once.
    let disabled = client
        .patch(server.url("/api/v1/users/vic"))
        .bearer_auth(&admin)
        .json(&json!({ "disabled": true }))
        .send()
        .unwrap();
    assert_eq!(disabled.status(), 200);
    assert_eq!(
        client
            .get(server.url("/api/v1/me"))
            .bearer_auth(&viewer)
            .send()
            .unwrap()
            .status(),
        401
    );

    let created_events = db.audit_with_action("user.created");
    let eve_event = created_events
        .iter()
        .find(|e| e["target"] == "user:eve")
        .unwrap();
    assert_eq!(eve_event["actor_kind"], "api_token");
    assert!(eve_event["actor_id"].as_str().unwrap().starts_with("root/"));
    let role_events = db.audit_with_action("user.role_changed");
    assert_eq!(role_events.len(), 1);
    assert_eq!(role_events[0]["target"], "user:eve");
    assert_eq!(db.audit_with_action("user.disabled").len(), 1);
    assert!(db.audit_with_action("user.updated").is_empty());
}

fn csrf_is_required_for_cookie_writes(db: TestDb) {
    db.add_user("alice", "admin", PW);
    let server = Server::start(&db);
    let client = login(&server, "alice", PW);

    let me: Value = client
        .get(server.url("/api/v1/me"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me["auth"], "session");
    let csrf = session_csrf(&server, &client);
    let body = json!({ "name": "from-browser" });
    let without = client
        .post(server.url("/api/v1/tokens"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(without.status(), 403);
    assert_eq!(without.json::<Value>().unwrap()["error"]["code"], "csrf");
    let wrong = client
        .post(server.url("/api/v1/tokens"))
        .header("x-csrf-token", "guess")
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert_eq!(db.query_i64("SELECT COUNT(*) AS n FROM api_tokens"), 0);
    let with = client
        .post(server.url("/api/v1/tokens"))
        .header("x-csrf-token", &csrf)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(with.status(), 201);
    let token: Value = with.json().unwrap();
    let secret = token["secret"].as_str().unwrap();
    assert!(secret.starts_with("tcn_"));
    // Only the hash is stored.
    assert_eq!(
        db.query_i64(&format!(
            "SELECT COUNT(*) AS n FROM api_tokens WHERE token_hash = '{secret}'"
        )),
        0
    );
    let listed: Value = browser()
        .get(server.url("/api/v1/tokens"))
        .bearer_auth(secret)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["tokens"][0]["name"], "from-browser");
    assert!(listed["tokens"][0].get("secret").is_none());

    // The login form refuses a post without its CSRF token.
    let fresh = browser();
    let res = fresh
        .post(server.url("/login"))
        .form(&[
            ("username", "alice"),
            ("password", PW),
            ("csrf_token", "forged"),
        ])
        .send()
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(db.audit_with_action("auth.login").len() == 1);

    // Logging out needs the session's token, then ends the session.
    let home = client.get(server.url("/")).send().unwrap();
    assert_eq!(home.status(), 200);
    let page = home.text().unwrap();
    assert!(page.contains("alice") && page.contains("admin"), "{page}");
    let bad_logout = client
        .post(server.url("/logout"))
        .form(&[("csrf_token", "nope")])
        .send()
        .unwrap();
    assert_eq!(bad_logout.status(), 403);
    assert_eq!(
        client
            .get(server.url("/api/v1/me"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let logout_token = form_value(&page, "csrf_token");
    let out = client
        .post(server.url("/logout"))
        .form(&[("csrf_token", logout_token.as_str())])
        .send()
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(
        client
            .get(server.url("/api/v1/me"))
            .send()
            .unwrap()
            .status(),
        401
    );
    assert_eq!(db.audit_with_action("auth.logout").len(), 1);
}

fn login_is_throttled(db: TestDb) {
    db.add_user("alice", "analyst", PW);
    let server = Server::start_with(&db, &[]);
    let client = browser();
    let page = client
        .get(server.url("/login"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let csrf = form_value(&page, "csrf_token");
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let res = client
            .post(server.url("/login"))
            .form(&[
                ("username", "alice"),
                ("password", "wrong password!"),
                ("csrf_token", csrf.as_str()),
            ])
            .send()
            .unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            assert!(res.headers().contains_key("retry-after"));
        }
    }
    // The default allows 5 attempts a minute per account and address.
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    // Even the right password is refused while throttled.
    let res = client
        .post(server.url("/login"))
        .form(&[
            ("username", "alice"),
            ("password", PW),
            ("csrf_token", csrf.as_str()),
        ])
        .send()
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(db.audit_with_action("auth.login_throttled").len(), 3);
    assert_eq!(db.audit_with_action("auth.login_failed").len(), 5);
}

fn setup_link_creates_first_admin_once(db: TestDb) {
    let server = Server::start(&db);
    let log = server.stderr();
    let start = log.find("/setup?token=").expect("setup link printed") + "/setup?token=".len();
    let token: String = log[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43);
    assert!(log.contains(&format!("{}/setup?token=", server.base)));

    let client = browser();
    assert_eq!(
        client
            .get(server.url("/setup?token=wrong"))
            .send()
            .unwrap()
            .status(),
        410
    );
    let page = client
        .get(server.url(&format!("/setup?token={token}")))
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().unwrap();
    let csrf = form_value(&html, "csrf_token");
    let form = |pw2: &str| {
        vec![
            ("token", token.clone()),
            ("csrf_token", csrf.clone()),
            ("username", "Admin".to_string()),
            ("email", "soc@example.org".to_string()),
            ("password", PW.to_string()),
            ("password_confirm", pw2.to_string()),
        ]
    };
    let mismatch = client
        .post(server.url("/setup"))
        .form(&form("something else"))
        .send()
        .unwrap();
    assert_eq!(mismatch.status(), 422);
    assert_eq!(db.query_i64("SELECT COUNT(*) AS n FROM users"), 0);
    let done = client
        .post(server.url("/setup"))
        .form(&form(PW))
        .send()
        .unwrap();
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()["location"], "/login?setup=done");
    let again = client
        .post(server.url("/setup"))
        .form(&form(PW))
        .send()
        .unwrap();
    assert_eq!(again.status(), 410);
    assert_eq!(
        client
            .get(server.url(&format!("/setup?token={token}")))
            .send()
            .unwrap()
            .status(),
        410
    );

    let admin = login(&server, "admin", PW);
    let me: Value = admin
        .get(server.url("/api/v1/me"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me["role"], "admin");
    assert_eq!(me["email"], "soc@example.org");
    assert_eq!(db.audit_with_action("setup.link_issued").len(), 1);
    assert_eq!(db.audit_with_action("setup.completed").len(), 1);
    let created = db.audit_with_action("user.created");
    assert_eq!(created[0]["actor_id"], "setup-link");
    assert_eq!(db.query_i64("SELECT COUNT(*) AS n FROM users"), 1);
}

fn pages_carry_security_headers(db: TestDb) {
    let server = Server::start(&db);
    let client = browser();
    let home = client.get(server.url("/")).send().unwrap();
    assert_eq!(home.status(), 303);
    assert_eq!(home.headers()["location"], "/login");
    let login = client.get(server.url("/login")).send().unwrap();
    let h = login.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let cookie = h["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let html = login.text().unwrap();
    assert!(html.contains("<form method=\"post\" action=\"/login\">"));
    let css = client.get(server.url("/static/tocsin.css")).send().unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}

fn password_change_ends_sessions(db: TestDb) {
    db.add_user("alice", "analyst", PW);
    let server = Server::start(&db);
    let token = db.token("alice");
    let client = browser();
    let wrong = client
        .post(server.url("/api/v1/me/password"))
        .bearer_auth(&token)
        .json(&json!({ "current_password": "wrong wrong wrong", "new_password": "a brand new passphrase" }))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 422);
    assert!(wrong.json::<Value>().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("current_password"));
    let session = login(&server, "alice", PW);
    let ok = client
        .post(server.url("/api/v1/me/password"))
        .bearer_auth(&token)
        .json(&json!({ "current_password": PW, "new_password": "a brand new passphrase" }))
        .send()
        .unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(
        session
            .get(server.url("/api/v1/me"))
            .send()
            .unwrap()
            .status(),
        401
    );
    login(&server, "alice", "a brand new passphrase");
    assert_eq!(db.audit_with_action("user.password_changed").len(), 1);
}

both_backends!(
    health_ready_and_metrics,
    api_requires_credentials_and_errors_are_json,
    login_failures_are_refused_and_audited,
    roles_are_enforced,
    csrf_is_required_for_cookie_writes,
    login_is_throttled,
    setup_link_creates_first_admin_once,
    pages_carry_security_headers,
    password_change_ends_sessions,
);
