//! The case API through the real server: the queue's filters, sorting and cursor paging,
//! status changes, assignment, comments, tags and merges, each audited; roles enforced.

mod common;

use common::{browser, Server, TestDb};
use serde_json::{json, Value};

const PW: &str = "correct horse battery";

struct Env {
    db: TestDb,
    server: Server,
    analyst: String,
    viewer: String,
    ingest: String,
}

fn setup(db: TestDb) -> Env {
    db.add_user("ada", "admin", PW);
    db.add_user("ann", "analyst", PW);
    db.add_user("vic", "viewer", PW);
    let out = db.run_ok(&["source", "add", "hive", "--kind", "thehive"]);
    let ingest = out
        .lines()
        .find_map(|l| l.strip_prefix("token="))
        .unwrap()
        .to_string();
    let analyst = db.token("ann");
    let viewer = db.token("vic");
    let server = Server::start(&db);
    Env {
        db,
        server,
        analyst,
        viewer,
        ingest,
    }
}

impl Env {
    /// Ingests one TheHive alert; returns its case id.
    fn alert(&self, reference: &str, title: &str, ip: &str, severity: u8, tags: &[&str]) -> i64 {
        let event = json!({
            "type": "external", "source": "siem", "sourceRef": reference, "title": title, "severity": severity,
            "tags": tags, "observables": [ { "dataType": "ip", "data": ip } ]
        });
        let res: Value = browser()
            .post(self.server.url("/api/v1/ingest/hive"))
            .bearer_auth(&self.ingest)
            .json(&event)
            .send()
            .unwrap()
            .json()
            .unwrap();
        res["results"][0]["case_id"].as_i64().expect("case id")
    }

    fn call(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = browser()
            .request(method.parse().unwrap(), self.server.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().unwrap();
        let status = res.status().as_u16();
        (status, res.json().unwrap_or(Value::Null))
    }

    fn ids(&self, query: &str) -> Vec<i64> {
        let (status, page) =
            self.call(&self.viewer, "GET", &format!("/api/v1/cases?{query}"), None);
        assert_eq!(status, 200, "{query}: {page}");
        page["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect()
    }
}

fn queue_filters_sorts_and_pages(db: TestDb) {
    let env = setup(db);
    let low = env.alert("q-1", "Port scan from outside", "203.0.113.1", 1, &[]);
    let high = env.alert("q-2", "Credential stuffing", "203.0.113.2", 3, &[]);
    let crit = env.alert("q-3", "Ransomware beacon", "203.0.113.3", 4, &[]);
    let mid = env.alert("q-4", "Port scan internal", "10.0.0.4", 2, &[]);

    assert_eq!(
        env.ids(""),
        [mid, crit, high, low],
        "newest activity first by default"
    );
    assert_eq!(env.ids("sort=last_seen"), [low, high, crit, mid]);
    assert_eq!(env.ids("sort=-severity"), [crit, high, mid, low]);
    assert_eq!(env.ids("severity=high"), [crit, high]);
    assert_eq!(env.ids("q=port%20SCAN"), [mid, low]);
    assert_eq!(env.ids("q=port%20internal"), [mid]);
    assert_eq!(env.ids("source=hive").len(), 4);
    assert!(env.ids("source=other").is_empty());

    env.call(
        &env.analyst,
        "PATCH",
        &format!("/api/v1/cases/{high}"),
        Some(json!({ "status": "triage", "add_tags": ["VIP"] })),
    );
    env.call(
        &env.analyst,
        "POST",
        &format!("/api/v1/cases/{crit}/assign"),
        Some(json!({ "assignee": "ann" })),
    );
    assert_eq!(env.ids("status=triage"), [high]);
    assert_eq!(env.ids("status=new,triage").len(), 4);
    assert_eq!(env.ids("tag=vip"), [high]);
    assert_eq!(env.ids("assignee=ann"), [crit]);
    assert_eq!(env.ids("assignee=none").len(), 3);

    // Cursor paging walks every case once, in order, for each sort.
    for sort in [
        "-last_seen",
        "last_seen",
        "-created",
        "created",
        "-severity",
    ] {
        let all = env.ids(&format!("sort={sort}"));
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let q = match &cursor {
                Some(c) => format!("/api/v1/cases?sort={sort}&limit=3&cursor={c}"),
                None => format!("/api/v1/cases?sort={sort}&limit=3"),
            };
            let (_, page) = env.call(&env.viewer, "GET", &q, None);
            seen.extend(
                page["cases"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["id"].as_i64().unwrap()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, all, "{sort}");
    }

    // Bad parameters are refused with a message naming them.
    let (status, body) = env.call(&env.viewer, "GET", "/api/v1/cases?status=done", None);
    assert_eq!(status, 422);
    assert!(body["error"]["message"].as_str().unwrap().contains("done"));
    let (status, _) = env.call(&env.viewer, "GET", "/api/v1/cases?cursor=garbage", None);
    assert_eq!(status, 422);
    let (status, body) = env.call(&env.viewer, "GET", "/api/v1/cases?sort=sideways", None);
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sideways"));
    let (status, _) = env.call(&env.viewer, "GET", "/api/v1/cases?colour=red", None);
    assert_eq!(status, 400);
}

fn case_work_is_audited_and_role_checked(db: TestDb) {
    let env = setup(db);
    let id = env.alert("w-1", "Malware on laptop", "198.51.100.9", 2, &["edr"]);
    let path = format!("/api/v1/cases/{id}");

    // A viewer reads but cannot change anything.
    let (status, detail) = env.call(&env.viewer, "GET", &path, None);
    assert_eq!(status, 200);
    assert_eq!(detail["case"]["status"], "new");
    assert_eq!(detail["case"]["severity"], "medium");
    assert_eq!(
        detail["alerts"][0]["observables"][0]["value"],
        "198.51.100.9"
    );
    assert!(detail["alerts"][0].get("raw").is_none());
    assert!(
        detail["case"]["ack_due_at"].is_string(),
        "medium severity has an SLA"
    );
    assert_eq!(
        env.call(
            &env.viewer,
            "PATCH",
            &path,
            Some(json!({ "status": "triage" }))
        )
        .0,
        403
    );
    assert_eq!(
        env.call(
            &env.viewer,
            "POST",
            &format!("{path}/comments"),
            Some(json!({ "body": "x" }))
        )
        .0,
        403
    );

    // Closing needs a disposition; a bad one is named.
    let (status, body) = env.call(
        &env.analyst,
        "PATCH",
        &path,
        Some(json!({ "status": "closed" })),
    );
    assert_eq!(status, 422);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("disposition"));
    let (status, body) = env.call(
        &env.analyst,
        "PATCH",
        &path,
        Some(json!({ "status": "closed", "disposition": "maybe" })),
    );
    assert_eq!(status, 422, "{body}");
    let (status, body) = env.call(
        &env.analyst,
        "PATCH",
        &path,
        Some(json!({ "sevrity": "high" })),
    );
    assert_eq!(status, 422);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sevrity"));

    let (status, case) = env.call(
        &env.analyst,
        "PATCH",
        &path,
        Some(
            json!({ "status": "in_progress", "severity": "critical", "add_tags": ["Ransomware"] }),
        ),
    );
    assert_eq!(status, 200, "{case}");
    assert_eq!(case["status"], "in_progress");
    assert_eq!(case["severity"], "critical");
    assert!(case["acknowledged_at"].is_string());
    assert_eq!(case["tags"], json!(["ransomware"]));
    let (_, case) = env.call(
        &env.analyst,
        "POST",
        &format!("{path}/assign"),
        Some(json!({ "assignee": "ann" })),
    );
    assert_eq!(case["assignee"], "ann");
    assert_eq!(
        env.call(
            &env.analyst,
            "POST",
            &format!("{path}/assign"),
            Some(json!({ "assignee": "ghost" }))
        )
        .0,
        422
    );
    let (status, comment) = env.call(
        &env.analyst,
        "POST",
        &format!("{path}/comments"),
        Some(json!({ "body": "Isolated the laptop." })),
    );
    assert_eq!(status, 201);
    assert_eq!(
        comment["author"],
        format!("api_token:ann/{}", comment_author_token_id(&env))
    );
    let (_, case) = env.call(
        &env.analyst,
        "PATCH",
        &path,
        Some(json!({ "status": "closed", "disposition": "true_positive" })),
    );
    assert_eq!(case["status"], "closed");
    assert_eq!(case["disposition"], "true_positive");
    assert!(case["resolved_at"].is_string() && case["closed_at"].is_string());
    // Reopening clears the resolution.
    let (_, case) = env.call(
        &env.analyst,
        "PATCH",
        &path,
        Some(json!({ "status": "triage" })),
    );
    assert!(case["disposition"].is_null() && case["resolved_at"].is_null());

    let (_, detail) = env.call(&env.viewer, "GET", &path, None);
    assert_eq!(detail["comments"][0]["body"], "Isolated the laptop.");
    assert_eq!(
        env.call(&env.viewer, "GET", "/api/v1/cases/999999", None).0,
        404
    );

    let updates = env.db.audit_with_action("case.updated");
    assert_eq!(updates.len(), 3);
    assert_eq!(updates[0]["target"], format!("case:{id}"));
    assert_eq!(updates[0]["details"]["severity"]["from"], "medium");
    assert_eq!(updates[0]["details"]["severity"]["to"], "critical");
    assert_eq!(updates[0]["actor_kind"], "api_token");
    assert_eq!(env.db.audit_with_action("case.assigned").len(), 1);
    assert_eq!(env.db.audit_with_action("case.commented").len(), 1);
    assert!(env.db.run_ok(&["audit", "verify"]).contains("intact"));
}

fn comment_author_token_id(env: &Env) -> i64 {
    env.db.query_i64("SELECT id AS n FROM api_tokens WHERE user_id = (SELECT id FROM users WHERE username = 'ann')")
}

fn merging_moves_alerts_and_closes_duplicates(db: TestDb) {
    let env = setup(db);
    let a = env.alert("m-1", "Phish reported", "192.0.2.10", 2, &[]);
    let b = env.alert("m-2", "Phish clicked", "192.0.2.11", 4, &[]);
    let c = env.alert("m-3", "Phish delivered", "192.0.2.12", 1, &[]);
    env.call(
        &env.analyst,
        "PATCH",
        &format!("/api/v1/cases/{b}"),
        Some(json!({ "add_tags": ["phishing"] })),
    );
    env.call(
        &env.analyst,
        "POST",
        &format!("/api/v1/cases/{c}/comments"),
        Some(json!({ "body": "same campaign" })),
    );

    let (status, merged) = env.call(
        &env.analyst,
        "POST",
        &format!("/api/v1/cases/{a}/merge"),
        Some(json!({ "cases": [b, c] })),
    );
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["alert_count"], 3);
    assert_eq!(merged["severity"], "critical");
    assert_eq!(merged["tags"], json!(["phishing"]));
    let (_, detail) = env.call(&env.viewer, "GET", &format!("/api/v1/cases/{a}"), None);
    assert_eq!(detail["alerts"].as_array().unwrap().len(), 3);
    assert_eq!(detail["comments"][0]["body"], "same campaign");
    let (_, gone) = env.call(&env.viewer, "GET", &format!("/api/v1/cases/{b}"), None);
    assert_eq!(gone["case"]["status"], "closed");
    assert_eq!(gone["case"]["disposition"], "duplicate");
    assert_eq!(gone["case"]["merged_into"], a);
    assert_eq!(env.ids(""), [a], "merged cases leave the queue");
    assert_eq!(env.ids("include_merged=true").len(), 3);

    // Refusals change nothing.
    assert_eq!(
        env.call(
            &env.analyst,
            "POST",
            &format!("/api/v1/cases/{a}/merge"),
            Some(json!({ "cases": [a] }))
        )
        .0,
        422
    );
    assert_eq!(
        env.call(
            &env.analyst,
            "POST",
            &format!("/api/v1/cases/{a}/merge"),
            Some(json!({ "cases": [b] }))
        )
        .0,
        409
    );
    assert_eq!(
        env.call(
            &env.analyst,
            "POST",
            &format!("/api/v1/cases/{a}/merge"),
            Some(json!({ "cases": [] }))
        )
        .0,
        422
    );
    assert_eq!(
        env.call(
            &env.analyst,
            "POST",
            &format!("/api/v1/cases/{a}/merge"),
            Some(json!({ "cases": [424242] }))
        )
        .0,
        404
    );
    assert_eq!(
        env.call(
            &env.viewer,
            "POST",
            &format!("/api/v1/cases/{a}/merge"),
            Some(json!({ "cases": [c] }))
        )
        .0,
        403
    );
    assert_eq!(env.db.audit_with_action("case.merged").len(), 3);

    // A new alert for a merged case's key opens a new case rather than joining a closed one.
    let again = env.alert("m-9", "Phish clicked", "192.0.2.11", 4, &[]);
    assert!(again != a && again != b);
}

both_backends!(
    queue_filters_sorts_and_pages,
    case_work_is_audited_and_role_checked,
    merging_moves_alerts_and_closes_duplicates,
);
