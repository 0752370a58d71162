//! The console's case pages through the real server: the queue's filters, sorting, cursor
//! paging and bulk actions; a case's page and every action on it, each audited; roles and
//! CSRF tokens enforced on every POST; and, in headless Chromium, an analyst's journey from
//! a new alert to a playbook run.

mod common;

use common::browser::Browser;
use common::{browser, login, session_csrf, write_playbooks, Server, TestDb};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";

/// A manual playbook whose one step records a verdict on the address it is given, and
/// one that only comments.
const ENRICH: &str = r#"
id: enrich-ip
version: 1
trigger: { on: manual }
inputs:
  - { name: ip, type: string, required: true }
steps:
  - id: reputation
    uses: noop
    with:
      value: { ip: "${{ $.inputs.ip }}", malicious: 4, suspicious: 1, harmless: 60 }
"#;

const NOTE: &str = r#"
id: note
version: 1
trigger: { on: manual }
steps:
  - id: say
    uses: case.comment
    with: { body: "note from playbook on case ${{ $.case.id }}" }
"#;

/// A manual playbook whose one step waits for a responder's approval.
const GATED: &str = r#"
id: gated
version: 1
trigger: { on: manual }
steps:
  - id: block
    uses: http.request
    with: { method: POST, url: STUB/block }
    approval:
      roles: [responder]
      timeout: 1h
      message: "Block the sender at the edge?"
"#;

struct Env {
    db: TestDb,
    server: Server,
    /// API tokens of ann (analyst) and of the ingestion sources.
    api: String,
    hive: String,
    other: String,
}

fn setup(db: TestDb) -> Env {
    db.add_user("ann", "analyst", PW);
    db.add_user("bob", "analyst", PW);
    db.add_user("vic", "viewer", PW);
    let (hive, _) = db.add_source("hive", "thehive", &[]);
    let (other, _) = db.add_source("edr", "thehive", &[]);
    db.add_user("rex", "responder", PW);
    write_playbooks(
        &db,
        "http://127.0.0.1:9",
        &[("enrich-ip", ENRICH), ("note", NOTE), ("gated", GATED)],
    );
    let api = db.token("ann");
    let server = Server::start(&db);
    Env {
        db,
        server,
        api,
        hive,
        other,
    }
}

impl Env {
    /// Ingests one alert through `source`; returns its case.
    fn alert(&self, source: &str, reference: &str, title: &str, ip: &str) -> i64 {
        let token = if source == "hive" {
            &self.hive
        } else {
            &self.other
        };
        let event = json!({
            "type": "external", "source": "siem", "sourceRef": reference, "title": title,
            "severity": 2, "observables": [ { "dataType": "ip", "data": ip } ]
        });
        let (status, body) =
            self.server
                .post_json(token, &format!("/api/v1/ingest/{source}"), &event);
        assert_eq!(status, 200, "{body}");
        body["results"][0]["case_id"].as_i64().expect("case id")
    }

    fn case(&self, id: i64) -> Value {
        self.server
            .get_json(&self.api, &format!("/api/v1/cases/{id}"))["case"]
            .clone()
    }

    fn patch(&self, id: i64, body: Value) {
        let res = browser()
            .patch(self.server.url(&format!("/api/v1/cases/{id}")))
            .bearer_auth(&self.api)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200, "PATCH case {id}");
    }

    fn assign_api(&self, id: i64, who: &str) {
        let (status, body) = self.server.post_json(
            &self.api,
            &format!("/api/v1/cases/{id}/assign"),
            &json!({ "assignee": who }),
        );
        assert_eq!(status, 200, "{body}");
    }

    /// A signed-in console user.
    fn console(&self, username: &str) -> Console<'_> {
        let client = login(&self.server, username, PW);
        let csrf = session_csrf(&self.server, &client);
        Console {
            server: &self.server,
            client,
            csrf,
        }
    }
}

struct Console<'a> {
    server: &'a Server,
    client: reqwest::blocking::Client,
    csrf: String,
}

impl Console<'_> {
    fn get(&self, path: &str) -> (u16, String) {
        let res = self.client.get(self.server.url(path)).send().unwrap();
        (res.status().as_u16(), res.text().unwrap())
    }

    fn page(&self, path: &str) -> String {
        let (status, html) = self.get(path);
        assert_eq!(status, 200, "GET {path}:\n{html}");
        html
    }

    /// The case numbers of the queue page at `path`, in order.
    fn queue(&self, path: &str) -> Vec<i64> {
        rows(&self.page(path))
    }

    /// POSTs a form with this session's CSRF token; returns the status and Location.
    fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", &self.csrf)];
        all.extend_from_slice(fields);
        self.post_raw(path, &all)
    }

    fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let res = self
            .client
            .post(self.server.url(path))
            .form(fields)
            .send()
            .unwrap();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        let status = res.status().as_u16();
        let body = res.text().unwrap_or_default();
        if status != 303 {
            return (status, body);
        }
        (status, location)
    }
}

/// Case numbers in the order the queue lists them.
fn rows(html: &str) -> Vec<i64> {
    html.split("id=\"case-row-")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].parse().unwrap())
        .collect()
}

/// The `href` of the next-page link, unescaped.
fn next_link(html: &str) -> Option<String> {
    let at = html.find("rel=\"next\"")?;
    let start = html[..at].rfind("href=\"")? + 6;
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&amp;", "&")
            .replace("&#x2f;", "/"),
    )
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort();
    v
}

fn queue_filters_sort_and_pages(db: TestDb) {
    let env = setup(db);
    let a = env.alert("hive", "a", "Beaconing to rare host", "203.0.113.1");
    let b = env.alert("hive", "b", "Password spray", "203.0.113.2");
    let c = env.alert("edr", "c", "Beaconing from laptop", "203.0.113.3");
    let d = env.alert("edr", "d", "Malware quarantined", "203.0.113.4");
    let e = env.alert("hive", "e", "Old noise", "203.0.113.5");
    env.patch(a, json!({ "severity": "high", "add_tags": ["c2"] }));
    env.patch(
        c,
        json!({ "severity": "critical", "status": "triage", "add_tags": ["c2", "laptop"] }),
    );
    env.patch(e, json!({ "status": "closed", "disposition": "benign" }));
    env.assign_api(b, "bob");
    env.assign_api(d, "ann");
    let ann = env.console("ann");

    // Default: open cases, most recently active first (d, c were changed last but
    // last activity is the alerts' time, so creation order reversed).
    let open = ann.queue("/cases");
    assert_eq!(
        sorted(open.clone()),
        sorted(vec![a, b, c, d]),
        "e is closed"
    );
    assert_eq!(
        sorted(ann.queue("/cases?status=any")),
        sorted(vec![a, b, c, d, e])
    );
    assert_eq!(ann.queue("/cases?status=closed"), vec![e]);
    assert_eq!(ann.queue("/cases?status=triage"), vec![c]);
    assert_eq!(
        sorted(ann.queue("/cases?severity=high")),
        sorted(vec![a, c])
    );
    assert_eq!(ann.queue("/cases?severity=critical"), vec![c]);
    assert_eq!(sorted(ann.queue("/cases?source=edr")), sorted(vec![c, d]));
    assert_eq!(ann.queue("/cases?assignee=bob"), vec![b]);
    assert_eq!(ann.queue("/cases?assignee=me"), vec![d]);
    assert_eq!(
        sorted(ann.queue("/cases?assignee=none")),
        sorted(vec![a, c])
    );
    assert_eq!(sorted(ann.queue("/cases?tag=c2")), sorted(vec![a, c]));
    assert_eq!(ann.queue("/cases?tag=laptop"), vec![c]);
    assert_eq!(sorted(ann.queue("/cases?q=beaconing")), sorted(vec![a, c]));
    assert_eq!(ann.queue("/cases?q=BEACONING+laptop"), vec![c]);
    // Filters combine.
    assert_eq!(
        ann.queue("/cases?source=hive&severity=high&tag=c2"),
        vec![a]
    );
    assert_eq!(
        ann.queue("/cases?source=hive&assignee=none&q=spray"),
        Vec::<i64>::new()
    );
    // Sorting.
    assert_eq!(ann.queue("/cases?sort=created"), vec![a, b, c, d]);
    assert_eq!(ann.queue("/cases?sort=-created"), vec![d, c, b, a]);
    assert_eq!(ann.queue("/cases?sort=-severity")[..2], [c, a]);
    // Cursor paging: two per page, nothing lost or repeated.
    let mut seen = Vec::new();
    let mut path = "/cases?sort=created&limit=2".to_string();
    let mut pages = 0;
    loop {
        let html = ann.page(&path);
        seen.extend(rows(&html));
        pages += 1;
        match next_link(&html) {
            Some(next) => {
                assert!(next.contains("cursor="), "{next}");
                assert!(
                    next.contains("sort=created"),
                    "the next page keeps the filters: {next}"
                );
                path = next;
            }
            None => break,
        }
    }
    assert_eq!(seen, vec![a, b, c, d]);
    assert_eq!(pages, 2);
    // SLA countdowns, filter choices, and a clear 400 for nonsense.
    let html = ann.page("/cases");
    assert!(html.contains("data-countdown"), "{html}");
    assert!(html.contains("<option value=\"edr\""), "sources offered");
    assert!(
        html.contains("data-live-region"),
        "the queue follows the live feed"
    );
    let (status, body) = ann.get("/cases?severity=dreadful");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("severity"), "{body}");
    let (status, _) = ann.get("/cases?cursor=garbage");
    assert_eq!(status, 422);
    // A viewer may read the queue but is offered no bulk actions.
    let vic = env.console("vic");
    let html = vic.page("/cases");
    assert_eq!(sorted(rows(&html)), sorted(vec![a, b, c, d]));
    assert!(
        !html.contains("name=\"action\""),
        "viewer sees bulk actions"
    );
}

fn bulk_actions_change_exactly_the_ticked_cases(db: TestDb) {
    let env = setup(db);
    let ids: Vec<i64> = (0..4)
        .map(|i| {
            env.alert(
                "hive",
                &format!("r{i}"),
                &format!("Case {i}"),
                &format!("198.51.100.{i}"),
            )
        })
        .collect();
    let ann = env.console("ann");
    let assigned_before = env.db.audit_with_action("case.assigned").len();
    let (one, two) = (ids[0].to_string(), ids[1].to_string());
    let (status, location) = ann.post(
        "/cases/bulk",
        &[
            ("action", "assign"),
            ("assignee", "bob"),
            ("case", &one),
            ("case", &two),
            ("back", "/cases?sort=created"),
        ],
    );
    assert_eq!(status, 303, "{location}");
    assert!(
        location.starts_with("/cases?sort=created&done="),
        "{location}"
    );
    for (i, id) in ids.iter().enumerate() {
        let want = if i < 2 { json!("bob") } else { Value::Null };
        assert_eq!(env.case(*id)["assignee"], want, "case {id}");
    }
    let assigned = env.db.audit_with_action("case.assigned");
    assert_eq!(assigned.len(), assigned_before + 2);
    let targets: Vec<&str> = assigned[assigned_before..]
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, [format!("case:{one}"), format!("case:{two}")]);
    assert!(assigned
        .iter()
        .skip(assigned_before)
        .all(|e| e["actor_kind"] == "user" && e["actor_id"] == "ann"));

    let three = ids[2].to_string();
    let (status, _) = ann.post(
        "/cases/bulk",
        &[
            ("action", "close"),
            ("disposition", "false_positive"),
            ("case", &two),
            ("case", &three),
        ],
    );
    assert_eq!(status, 303);
    for (i, id) in ids.iter().enumerate() {
        let case = env.case(*id);
        if i == 1 || i == 2 {
            assert_eq!(case["status"], "closed", "case {id}");
            assert_eq!(case["disposition"], "false_positive");
        } else {
            assert_eq!(case["status"], "new", "case {id}");
        }
    }
    let closed: Vec<Value> = env
        .db
        .audit_with_action("case.updated")
        .into_iter()
        .filter(|e| e["details"]["status"]["to"] == "closed")
        .collect();
    assert_eq!(closed.len(), 2);
    // A bulk action on nothing, or an unknown one, is refused and changes nothing.
    let (status, _) = ann.post(
        "/cases/bulk",
        &[("action", "close"), ("disposition", "benign")],
    );
    assert_eq!(status, 400);
    let four = ids[3].to_string();
    let (status, _) = ann.post("/cases/bulk", &[("action", "delete"), ("case", &four)]);
    assert_eq!(status, 400);
    // Closing without a disposition is refused as a whole: the valid case is not closed.
    let (status, body) = ann.post("/cases/bulk", &[("action", "close"), ("case", &four)]);
    assert_eq!(status, 422, "{body}");
    assert_eq!(env.case(ids[3])["status"], "new");
}

fn case_page_and_actions(db: TestDb) {
    let env = setup(db);
    let id = env.alert("hive", "x1", "Beaconing to rare host", "203.0.113.7");
    let dup = env.alert("hive", "x2", "Same thing elsewhere", "203.0.113.8");
    let ann = env.console("ann");

    let html = ann.page(&format!("/cases/{id}"));
    assert!(html.contains("Beaconing to rare host"));
    assert!(html.contains("203.0.113.7"), "observables listed");
    assert!(html.contains("not enriched"));
    assert!(
        html.contains("Case opened"),
        "the timeline has the audited creation"
    );
    assert!(
        html.contains("<option value=\"enrich-ip\""),
        "manual playbooks offered"
    );
    // Raw payload of the alert.
    let alert_id = env
        .server
        .get_json(&env.api, &format!("/api/v1/cases/{id}"))["alerts"][0]["id"]
        .as_i64()
        .unwrap();
    let raw = ann.page(&format!("/cases/{id}/alerts/{alert_id}"));
    assert!(raw.contains("sourceRef") && raw.contains("x1"), "{raw}");
    let (status, _) = ann.get(&format!("/cases/{dup}/alerts/{alert_id}"));
    assert_eq!(status, 404, "an alert is shown only under its own case");
    let (status, _) = ann.get("/cases/999999");
    assert_eq!(status, 404);

    let act = |action: &str, fields: &[(&str, &str)]| {
        let (status, location) = ann.post(&format!("/cases/{id}/{action}"), fields);
        assert_eq!(status, 303, "{action}: {location}");
        assert!(
            location.starts_with(&format!("/cases/{id}?done=")),
            "{location}"
        );
    };
    act("assign", &[("assignee", "bob")]);
    assert_eq!(env.case(id)["assignee"], "bob");
    act("assign", &[("assignee", "me")]);
    assert_eq!(env.case(id)["assignee"], "ann");
    act("status", &[("status", "in_progress"), ("disposition", "")]);
    assert_eq!(env.case(id)["status"], "in_progress");
    act("severity", &[("severity", "critical")]);
    assert_eq!(env.case(id)["severity"], "critical");
    act(
        "comment",
        &[("body", "Looked at the proxy logs <b>here</b>")],
    );
    act("tags", &[("add", "c2, Beacon")]);
    assert_eq!(env.case(id)["tags"], json!(["beacon", "c2"]));
    act("tags", &[("remove", "beacon")]);
    assert_eq!(env.case(id)["tags"], json!(["c2"]));
    let dup_s = dup.to_string();
    act("merge", &[("cases", &dup_s)]);
    assert_eq!(env.case(dup)["merged_into"], id);
    assert_eq!(env.case(id)["alert_count"], 2);
    act(
        "run",
        &[
            ("playbook", "enrich-ip"),
            ("inputs", r#"{"ip": "203.0.113.7"}"#),
        ],
    );
    act("run", &[("playbook", "note")]);
    // Both runs finish on this case.
    let runs = env.server.poll("two runs on the case to finish", || {
        let runs = env
            .server
            .get_json(&env.api, &format!("/api/v1/runs?case_id={id}"))["runs"]
            .clone();
        let runs = runs.as_array().cloned().unwrap_or_default();
        (runs.len() == 2 && runs.iter().all(|r| r["status"] == "succeeded")).then_some(runs)
    });
    assert!(runs.iter().all(|r| r["requested_by"] == "user:ann"));

    // Every change was audited as ann, as the API audits it.
    let of_case: Vec<Value> = env
        .db
        .audit_events()
        .into_iter()
        .filter(|e| e["target"] == format!("case:{id}") && e["actor_id"] == "ann")
        .collect();
    let actions: Vec<&str> = of_case
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "case.assigned",
        "case.updated",
        "case.commented",
        "case.merged",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }

    // The page now shows it all: comment (escaped) in the timeline, the verdict, the runs.
    let html = ann.page(&format!("/cases/{id}?done=run"));
    assert!(html.contains("Playbook run started."));
    assert!(
        html.contains("Looked at the proxy logs &lt;b&gt;here&lt;&#x2f;b&gt;"),
        "{html}"
    );
    assert!(!html.contains("<b>here</b>"));
    let timeline =
        &html[html.find("id=\"timeline\"").unwrap()..html.find("id=\"alerts-h\"").unwrap()];
    for want in [
        "Looked at the proxy logs",
        "Assigned to ann",
        "Changed status new → in_progress",
        "Changed severity",
        "tagged c2, beacon",
        "untagged beacon",
        "Merged case(s)",
        "Playbook enrich-ip started",
        "Playbook note succeeded",
        "note from playbook on case",
        "Alert: Same thing elsewhere",
    ] {
        assert!(
            timeline.contains(want),
            "{want} missing from the timeline:\n{timeline}"
        );
    }
    let observables =
        &html[html.find("id=\"observables\"").unwrap()..html.find("id=\"runs-h\"").unwrap()];
    assert!(observables.contains("verdict-malicious"), "{observables}");
    assert!(
        observables.contains("malicious 4, suspicious 1"),
        "{observables}"
    );
    // The other address was not enriched.
    let other = &observables[observables.find("203.0.113.8").unwrap()..];
    assert!(other[..other.find("</tr>").unwrap()].contains("not enriched"));

    // Bad input gets a clear 4xx and changes nothing.
    let (status, body) = ann.post(&format!("/cases/{id}/status"), &[("status", "closed")]);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("disposition"), "{body}");
    let (status, _) = ann.post(&format!("/cases/{id}/severity"), &[("severity", "dire")]);
    assert_eq!(status, 422);
    let (status, _) = ann.post(&format!("/cases/{id}/run"), &[("playbook", "nope")]);
    assert_eq!(status, 400);
    let (status, _) = ann.post(&format!("/cases/{id}/run"), &[("playbook", "enrich-ip")]);
    assert_eq!(status, 422, "a required input is missing");
    let (status, _) = ann.post(&format!("/cases/{id}/merge"), &[("cases", "abc")]);
    assert_eq!(status, 400);
    let (status, _) = ann.post(&format!("/cases/{id}/comment"), &[("body", "  ")]);
    assert_eq!(status, 422);
    let (status, _) = ann.post(&format!("/cases/{id}/explode"), &[]);
    assert_eq!(status, 404);
    assert_eq!(env.case(id)["status"], "in_progress");
}

fn viewers_and_forged_forms_change_nothing(db: TestDb) {
    let env = setup(db);
    let id = env.alert("hive", "v1", "Something", "192.0.2.1");
    let other = env.alert("hive", "v2", "Something else", "192.0.2.2");
    let vic = env.console("vic");
    let ann = env.console("ann");
    let before = env.case(id);
    let audit_before = env.db.audit_events().len();
    let other_s = other.to_string();
    let id_s = id.to_string();
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/cases/{id}/assign"), vec![("assignee", "vic")]),
        (format!("/cases/{id}/status"), vec![("status", "triage")]),
        (format!("/cases/{id}/severity"), vec![("severity", "high")]),
        (format!("/cases/{id}/comment"), vec![("body", "hello")]),
        (format!("/cases/{id}/tags"), vec![("add", "x")]),
        (format!("/cases/{id}/merge"), vec![("cases", &other_s)]),
        (format!("/cases/{id}/run"), vec![("playbook", "note")]),
        (
            "/cases/bulk".into(),
            vec![("action", "assign"), ("assignee", "me"), ("case", &id_s)],
        ),
        (
            "/cases/bulk".into(),
            vec![
                ("action", "close"),
                ("disposition", "benign"),
                ("case", &id_s),
            ],
        ),
    ];
    let html = vic.page(&format!("/cases/{id}"));
    assert!(
        !html.contains("/assign\""),
        "a viewer is offered no actions"
    );
    for (path, fields) in &posts {
        let (status, body) = vic.post(path, fields);
        assert_eq!(status, 403, "viewer POST {path}: {body}");
        assert!(
            body.contains("work cases"),
            "the page names what is missing: {body}"
        );
    }
    for (path, fields) in &posts {
        let (status, _) = ann.post_raw(path, fields);
        assert_eq!(status, 403, "POST {path} without a CSRF token");
        let mut forged = vec![("csrf_token", "not-the-token-0123456789abcdef0123456789")];
        forged.extend_from_slice(fields);
        let (status, _) = ann.post_raw(path, &forged);
        assert_eq!(status, 403, "POST {path} with a wrong CSRF token");
    }
    // Signed out: sent to sign in.
    let (status, location) = {
        let res = browser()
            .post(env.server.url(&format!("/cases/{id}/comment")))
            .form(&[("body", "x")])
            .send()
            .unwrap();
        (
            res.status().as_u16(),
            res.headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string()),
        )
    };
    assert_eq!(status, 303);
    assert!(location.unwrap().starts_with("/login"));

    assert_eq!(env.case(id), before, "the case changed");
    assert_eq!(env.case(other)["merged_into"], Value::Null);
    let runs = env.server.get_json(&env.api, "/api/v1/runs");
    assert_eq!(runs["runs"], json!([]), "no playbook ran");
    assert_eq!(
        env.db.audit_events().len(),
        audit_before,
        "something was audited"
    );
}

fn approvals_show_on_the_case_page(db: TestDb) {
    let env = setup(db);
    let id = env.alert("hive", "g1", "Phishing reported", "192.0.2.50");
    let ann = env.console("ann");
    let (status, body) = ann.post(&format!("/cases/{id}/run"), &[("playbook", "gated")]);
    assert_eq!(status, 303, "{body}\n{}", env.server.stderr());
    let gate = env.server.poll("the approval request", || {
        let html = ann.page(&format!("/cases/{id}"));
        html.contains("Block the sender at the edge?")
            .then_some(html)
    });
    let gates = &gate[gate.find("id=\"gates\"").unwrap()..];
    assert!(gates.contains("pending"), "{gates}");
    let gate_id: i64 = gates[gates.find("Request ").unwrap() + 8..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let rex = env.db.token("rex");
    let (status, body) = env.server.post_json(
        &rex,
        &format!("/api/v1/approvals/{gate_id}/decision"),
        &json!({ "decision": "reject", "comment": "not this one" }),
    );
    assert_eq!(status, 200, "{body}");
    let html = env.server.poll("the decision on the case page", || {
        let html = ann.page(&format!("/cases/{id}"));
        html.contains("rex rejected").then_some(html)
    });
    let timeline =
        &html[html.find("id=\"timeline\"").unwrap()..html.find("id=\"alerts-h\"").unwrap()];
    assert!(
        timeline.contains("Approval requested: http.request"),
        "{timeline}"
    );
    assert!(
        timeline.contains("rex rejected: http.request"),
        "{timeline}"
    );
    assert!(timeline.contains("not this one"), "{timeline}");
}

both_backends!(
    queue_filters_sort_and_pages,
    bulk_actions_change_exactly_the_ticked_cases,
    case_page_and_actions,
    viewers_and_forged_forms_change_nothing,
    approvals_show_on_the_case_page,
);

/// One analyst's journey in a real browser (SQLite): a new case appears in the open queue
/// without a reload, a comment shows in the timeline, a manual playbook runs.
#[test]
fn analyst_journey_in_the_browser() {
    let Some(db) = TestDb::new(common::Backend::Sqlite) else {
        return;
    };
    let Some(chrome) = Browser::start() else {
        return;
    };
    let env = setup(db);
    let first = env.alert("hive", "j0", "Earlier case", "198.51.100.50");
    chrome.login(&env.server, "ann", PW);
    chrome.goto(&env.server.url("/cases"));
    chrome.wait_for(&format!("#case-row-{first}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while chrome.execute("return document.body.dataset.liveConnected || null") != json!("1") {
        assert!(Instant::now() < deadline, "the page script did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    chrome.execute("window.__marker = 7; return 7;");

    // An alert arrives over HTTP; its case appears in the open queue without a reload.
    let id = env.alert(
        "hive",
        "j1",
        "Suspicious login from new country",
        "198.51.100.77",
    );
    chrome.wait_text("#queue", "the new case in the queue", |t| {
        t.contains("Suspicious login from new country")
    });
    assert_eq!(
        chrome.execute("return window.__marker || null;"),
        json!(7),
        "the page was reloaded instead of updated"
    );
    chrome.screenshot("console-cases-queue");

    // Open it, comment, and see the comment in the timeline.
    chrome.click(&format!("#case-row-{id} a"));
    chrome.wait_for("#a-comment");
    assert!(
        chrome.url().ends_with(&format!("/cases/{id}")),
        "{}",
        chrome.url()
    );
    chrome.fill("#a-comment", "Called the user; not them.");
    chrome.click("#comment-form button[type=submit]");
    chrome.wait_text("#timeline", "the comment in the timeline", |t| {
        t.contains("Called the user; not them.")
    });
    assert!(chrome.text("#notice").contains("Comment added"));

    // Run a manual playbook from the case page; its run and comment show up.
    chrome.select("#a-playbook", "note");
    chrome.click("#run-form button[type=submit]");
    chrome.wait_text("#notice", "the run to start", |t| {
        t.contains("Playbook run started")
    });
    chrome.wait_text("#runs", "the run to succeed", |t| {
        t.contains("note") && t.contains("succeeded")
    });
    chrome.wait_text("#timeline", "the playbook's comment", |t| {
        t.contains(&format!("note from playbook on case {id}"))
    });
    chrome.screenshot("console-cases-case");
    let case = env.case(id);
    assert_eq!(case["id"], id);
}
