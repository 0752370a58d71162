//! Ingestion through the real server: bodies, authentication and signatures, bad input,
//! deduplication and grouping over time windows, and every vendor fixture end to end.

mod common;

use common::{browser, Server, TestDb};
use serde_json::{json, Value};
use std::path::Path;

const PW: &str = "correct horse battery";

fn add_source(db: &TestDb, name: &str, kind: &str, extra: &[&str]) -> (String, Option<String>) {
    db.add_source(name, kind, extra)
}

fn post(
    server: &Server,
    path: &str,
    token: &str,
    body: impl Into<reqwest::blocking::Body>,
) -> (u16, Value) {
    let res = browser()
        .post(server.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .expect("POST");
    let status = res.status().as_u16();
    let text = res.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

use common::hive_alert as hive;

fn count(db: &TestDb, table: &str) -> i64 {
    db.query_i64(&format!("SELECT COUNT(*) AS n FROM {table}"))
}

fn single_array_and_ndjson_bodies(db: TestDb) {
    let (token, _) = add_source(&db, "hive", "thehive", &[]);
    let server = Server::start(&db);
    let (status, body) = post(
        &server,
        "/api/v1/ingest/hive",
        &token,
        hive("a-1", "Beaconing", "203.0.113.1").to_string(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], 1);
    assert_eq!(body["alerts"], 1);
    assert_eq!(body["cases_created"], 1);

    let batch = json!([
        hive("a-2", "Scan", "203.0.113.2"),
        hive("a-3", "Scan", "203.0.113.3")
    ]);
    let (status, body) = post(&server, "/api/v1/ingest/hive", &token, batch.to_string());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], 2);

    let nd = format!(
        "{}\n{}\n",
        hive("a-4", "Scan", "203.0.113.4"),
        hive("a-5", "Scan", "203.0.113.5")
    );
    let (status, body) = post(&server, "/api/v1/ingest/hive", &token, nd);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], 2);
    assert_eq!(count(&db, "alerts"), 5);

    // The raw payload is kept verbatim, byte for byte.
    let exact =
        "{\"type\":\"external\",  \"source\":\"siem\",\"sourceRef\":\"a-6\",\"title\":\"Raw\"}";
    let (_, body) = post(&server, "/api/v1/ingest/hive", &token, exact);
    let alert_id = body["results"][0]["alert_id"].as_i64().unwrap();
    let admin_token = {
        db.add_user("admin", "admin", PW);
        db.token("admin")
    };
    let alert: Value = browser()
        .get(server.url(&format!("/api/v1/alerts/{alert_id}")))
        .bearer_auth(&admin_token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(alert["raw"], serde_json::from_str::<Value>(exact).unwrap());
    let stored = db.query_i64(&format!(
        "SELECT COUNT(*) AS n FROM alerts WHERE id = {alert_id} AND raw = '{}'",
        exact.replace('\'', "''")
    ));
    assert_eq!(stored, 1, "raw text must be stored exactly");
}

fn refused_requests_store_nothing_and_are_audited(db: TestDb) {
    let (token, _) = add_source(&db, "hive", "thehive", &[]);
    let (signed_token, secret) = add_source(&db, "signed", "thehive", &["--signed"]);
    let secret = secret.expect("signed source has a secret");
    let (off_token, _) = add_source(&db, "off", "thehive", &[]);
    db.run_ok(&["source", "disable", "off"]);
    let server = Server::start(&db);
    let event = hive("x-1", "Test", "198.51.100.7").to_string();

    assert_eq!(
        post(&server, "/api/v1/ingest/hive", "tis_wrong", event.clone()).0,
        401
    );
    assert_eq!(
        post(&server, "/api/v1/ingest/nosuch", &token, event.clone()).0,
        401
    );
    assert_eq!(
        post(&server, "/api/v1/ingest/signed", &token, event.clone()).0,
        401
    );
    assert_eq!(
        post(&server, "/api/v1/ingest/off", &off_token, event.clone()).0,
        403
    );
    // Signed source: missing, wrong, and right signatures.
    let (status, body) = post(
        &server,
        "/api/v1/ingest/signed",
        &signed_token,
        event.clone(),
    );
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "bad_signature");
    let wrong = tocsin::ingest::signature::sign("not-the-secret", event.as_bytes());
    let res = browser()
        .post(server.url("/api/v1/ingest/signed"))
        .bearer_auth(&signed_token)
        .header("x-tocsin-signature", wrong)
        .body(event.clone())
        .send()
        .unwrap();
    assert_eq!(res.status(), 403);
    let tampered_sig = tocsin::ingest::signature::sign(&secret, event.as_bytes());
    let res = browser()
        .post(server.url("/api/v1/ingest/signed"))
        .bearer_auth(&signed_token)
        .header("x-tocsin-signature", &tampered_sig)
        .body(event.replace("Test", "Tset"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(count(&db, "alerts"), 0);
    assert_eq!(count(&db, "cases"), 0);
    let rejected = db.audit_with_action("ingest.rejected");
    assert_eq!(rejected.len(), 7, "{rejected:?}");
    assert_eq!(rejected[0]["details"]["ip"], "127.0.0.1");
    assert!(rejected.iter().any(|e| e["target"] == "source:nosuch"));
    let metrics = browser()
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for line in [
        r#"tocsin_ingest_refused_total{outcome="unauthorized"} 3"#,
        r#"tocsin_ingest_refused_total{outcome="bad_signature"} 3"#,
        r#"tocsin_ingest_refused_total{outcome="disabled"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // The right signature (and the GitHub-style header) is accepted; `?token=` works for
    // senders that can only be given a URL.
    let res = browser()
        .post(server.url("/api/v1/ingest/signed"))
        .bearer_auth(&signed_token)
        .header("x-hub-signature-256", &tampered_sig)
        .body(event.clone())
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = browser()
        .post(server.url(&format!("/api/v1/ingest/hive?token={token}")))
        .body(event)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(count(&db, "alerts"), 2);
}

fn bad_input_gets_4xx_naming_the_problem(db: TestDb) {
    let (token, _) = add_source(&db, "hive", "thehive", &[]);
    let server = Server::start_with(&db, &[]);
    let (status, body) = post(&server, "/api/v1/ingest/hive", &token, "{\"title\": ");
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed"),
        "{body}"
    );
    let (status, body) = post(&server, "/api/v1/ingest/hive", &token, "");
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("empty"));
    let (status, _) = post(&server, "/api/v1/ingest/hive", &token, "[1, 2]");
    assert_eq!(status, 422);

    // One bad entry refuses the whole batch, and says which entry and field.
    let mut bad = hive("b-2", "Bad", "203.0.113.9");
    bad["observables"][0]["data"] = json!("999.999.1.1");
    let batch = json!([hive("b-1", "Good", "203.0.113.8"), bad, {"type": "x", "source": "y", "title": "no ref"}]);
    let (status, body) = post(&server, "/api/v1/ingest/hive", &token, batch.to_string());
    assert_eq!(status, 422, "{body}");
    let entries = body["error"]["details"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["index"], 1);
    assert_eq!(entries[0]["field"], "observables.0.data");
    assert_eq!(entries[1]["index"], 2);
    assert_eq!(entries[1]["field"], "sourceRef");
    assert_eq!(count(&db, "alerts"), 0);

    let (status, body) = post(&server, "/api/v1/ingest/hive", &token, "{\"a\":1}\n{\"a\":");
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{body}"
    );

    let one = format!("[{}]", hive("c", "Fine", "203.0.113.1"));
    assert_eq!(post(&server, "/api/v1/ingest/hive", &token, one).0, 200);
    let huge = "x".repeat(11 * 1024 * 1024);
    let (status, body) = post(&server, "/api/v1/ingest/hive", &token, huge);
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "too_large");
    let many = format!("[{}]", vec!["{}"; 10_001].join(","));
    let (status, body) = post(&server, "/api/v1/ingest/hive", &token, many);
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("limit"),
        "{body}"
    );
    assert_eq!(count(&db, "alerts"), 1);
}

fn repeats_are_counted_and_related_alerts_grouped(db: TestDb) {
    let (token, _) = add_source(&db, "hive", "thehive", &[]);
    let server = Server::start(&db);
    let first = hive("d-1", "Brute force", "203.0.113.50");
    let (_, r1) = post(&server, "/api/v1/ingest/hive", &token, first.to_string());
    let (_, r2) = post(&server, "/api/v1/ingest/hive", &token, first.to_string());
    assert_eq!(r2["deduplicated"], 1);
    assert_eq!(r1["results"][0]["alert_id"], r2["results"][0]["alert_id"]);
    assert_eq!(count(&db, "alerts"), 1);
    assert_eq!(
        db.query_i64("SELECT CAST(occurrences AS BIGINT) AS n FROM alerts"),
        2
    );

    // Same title (no rule) and same primary observable: a new alert in the same case.
    let (_, r3) = post(
        &server,
        "/api/v1/ingest/hive",
        &token,
        hive("d-2", "Brute force", "203.0.113.50").to_string(),
    );
    assert_eq!(r3["deduplicated"], 0);
    assert_eq!(r3["cases_created"], 0);
    assert_eq!(r3["results"][0]["case_id"], r1["results"][0]["case_id"]);
    assert_eq!(
        db.query_i64("SELECT CAST(alert_count AS BIGINT) AS n FROM cases"),
        2
    );
    // A different attacker: a new case.
    let (_, r4) = post(
        &server,
        "/api/v1/ingest/hive",
        &token,
        hive("d-3", "Brute force", "203.0.113.51").to_string(),
    );
    assert_eq!(r4["cases_created"], 1);

    // Outside the dedup window (60 min) a repeat is a new alert row, still in the open case.
    db.exec("UPDATE alerts SET last_seen_at = '2020-01-01 00:00:00' WHERE id = 1")
        .unwrap();
    let (_, r5) = post(&server, "/api/v1/ingest/hive", &token, first.to_string());
    assert_eq!(r5["deduplicated"], 0);
    assert_eq!(r5["results"][0]["case_id"], r1["results"][0]["case_id"]);
    // Outside the correlation window (24 h) the same key opens a new case.
    let case_id = r1["results"][0]["case_id"].as_i64().unwrap();
    db.exec(&format!(
        "UPDATE cases SET last_seen_at = '2020-01-01 00:00:00' WHERE id = {case_id}"
    ))
    .unwrap();
    let (_, r6) = post(
        &server,
        "/api/v1/ingest/hive",
        &token,
        hive("d-4", "Brute force", "203.0.113.50").to_string(),
    );
    assert_eq!(r6["cases_created"], 1);
    assert_ne!(r6["results"][0]["case_id"], r1["results"][0]["case_id"]);
    // A closed case takes no new alerts either.
    let new_case = r6["results"][0]["case_id"].as_i64().unwrap();
    db.exec(&format!(
        "UPDATE cases SET status = 'closed', disposition = 'benign' WHERE id = {new_case}"
    ))
    .unwrap();
    let (_, r7) = post(
        &server,
        "/api/v1/ingest/hive",
        &token,
        hive("d-5", "Brute force", "203.0.113.50").to_string(),
    );
    assert_eq!(r7["cases_created"], 1);
    assert_eq!(db.audit_with_action("case.created").len(), 4);

    // Within one request: three alerts for one key make one case counting all three, with
    // the highest severity; a repeat inside the batch is counted, not added.
    let mut severe = hive("e-2", "Lateral movement", "198.51.100.77");
    severe["severity"] = json!(4);
    let batch = json!([
        hive("e-1", "Lateral movement", "198.51.100.77"),
        severe,
        hive("e-3", "Lateral movement", "198.51.100.77"),
        hive("e-1", "Lateral movement", "198.51.100.77")
    ]);
    let (status, body) = post(&server, "/api/v1/ingest/hive", &token, batch.to_string());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cases_created"], 1);
    assert_eq!(body["deduplicated"], 1);
    let case_id = body["results"][0]["case_id"].as_i64().unwrap();
    assert!(body["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["case_id"] == case_id));
    assert_eq!(
        db.query_i64(&format!(
            "SELECT CAST(alert_count AS BIGINT) AS n FROM cases WHERE id = {case_id}"
        )),
        3
    );
    assert_eq!(
        db.query_i64(&format!(
            "SELECT CAST(severity AS BIGINT) AS n FROM cases WHERE id = {case_id}"
        )),
        5
    );
}

fn alertmanager_resolution_updates_the_alert(db: TestDb) {
    let (token, _) = add_source(&db, "am", "alertmanager", &[]);
    let server = Server::start(&db);
    let firing = json!({
        "version": "4", "groupKey": "{}:{alertname=\"DiskFull\"}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "tocsin", "groupLabels": {"alertname": "DiskFull"}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://am.example:9093",
        "alerts": [{
            "status": "firing", "labels": {"alertname": "DiskFull", "instance": "db-1.example.org:9100", "severity": "critical"},
            "annotations": {"summary": "Disk full on db-1"}, "startsAt": "2026-11-25T09:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom.example/graph", "fingerprint": "c0ffee0000000001"
        }]
    });
    let mut resolved = firing.clone();
    resolved["status"] = json!("resolved");
    resolved["alerts"][0]["status"] = json!("resolved");
    resolved["alerts"][0]["endsAt"] = json!("2026-11-25T09:30:00Z");
    assert_eq!(
        post(&server, "/api/v1/ingest/am", &token, firing.to_string()).0,
        200
    );
    let (status, body) = post(&server, "/api/v1/ingest/am", &token, resolved.to_string());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deduplicated"], 1);
    assert_eq!(count(&db, "alerts"), 1);
    assert_eq!(
        db.query_i64(
            "SELECT COUNT(*) AS n FROM alerts WHERE state = 'resolved' AND occurrences = 2"
        ),
        1
    );
}

fn thehive_compatible_endpoint(db: TestDb) {
    let (token, _) = add_source(&db, "hive", "thehive", &[]);
    let (am_token, _) = add_source(&db, "am", "alertmanager", &[]);
    let server = Server::start(&db);
    let (status, body) = post(
        &server,
        "/api/v1/alert",
        &token,
        hive("h-1", "From Cortex", "192.0.2.77").to_string(),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["_type"], "Alert");
    assert!(body["_id"].as_str().unwrap().starts_with('~'));
    assert_eq!(body["sourceRef"], "h-1");
    assert_eq!(body["status"], "New");
    assert_eq!(
        post(
            &server,
            "/api/v1/alert",
            "tis_nope",
            hive("h-2", "x", "192.0.2.1").to_string()
        )
        .0,
        401
    );
    assert_eq!(
        post(
            &server,
            "/api/v1/alert",
            &am_token,
            hive("h-3", "x", "192.0.2.1").to_string()
        )
        .0,
        422
    );
    assert_eq!(count(&db, "alerts"), 1);
}

fn concurrent_requests_are_all_committed(db: TestDb) {
    let (token, _) = add_source(&db, "hive", "thehive", &[]);
    let server = Server::start(&db);
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let url = server.url("/api/v1/ingest/hive");
            let token = token.clone();
            std::thread::spawn(move || {
                let client = browser();
                for i in 0..25 {
                    let batch: Vec<Value> = (0..4)
                        .map(|j| {
                            hive(
                                &format!("c-{t}-{i}-{j}"),
                                &format!("Rule {j}"),
                                &format!("10.{t}.{i}.{j}"),
                            )
                        })
                        .collect();
                    let res = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&batch)
                        .send()
                        .unwrap();
                    assert_eq!(res.status(), 200);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    assert_eq!(count(&db, "alerts"), 8 * 25 * 4);
    assert_eq!(count(&db, "cases"), 8 * 25 * 4);
    let metrics = browser()
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("tocsin_ingest_committed_requests_total 200"),
        "{metrics}"
    );
    assert!(db.run_ok(&["audit", "verify"]).contains("intact"));
}

/// Every vendor fixture that normalizes goes through the real server and is stored.
fn every_fixture_ingests_over_http(db: TestDb) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut kinds: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    kinds.sort();
    let mut tokens = Vec::new();
    for kind in &kinds {
        let name = kind.replace('_', "-");
        let config = fixtures.join(kind).join("config.json");
        let extra: Vec<String> = if config.exists() {
            vec!["--settings".into(), config.display().to_string()]
        } else {
            vec![]
        };
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        tokens.push((
            kind.clone(),
            name.clone(),
            add_source(&db, &name, kind, &extra).0,
        ));
    }
    let server = Server::start(&db);
    let mut expected_alerts = 0;
    for (kind, name, token) in &tokens {
        let mut cases: Vec<_> = std::fs::read_dir(fixtures.join(kind))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        cases.sort();
        for path in cases {
            let file = path.file_name().unwrap().to_string_lossy().to_string();
            if !file.ends_with(".json") || file.ends_with(".expected.json") || file == "config.json"
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let (status, body) = post(&server, &format!("/api/v1/ingest/{name}"), token, text);
            let expected = path.with_file_name(file.replace(".json", ".expected.json"));
            if expected.exists() {
                assert_eq!(status, 200, "{kind}/{file}: {body}");
                let n = serde_json::from_str::<Value>(&std::fs::read_to_string(expected).unwrap())
                    .unwrap()
                    .as_array()
                    .unwrap()
                    .len();
                assert_eq!(body["alerts"], n, "{kind}/{file}");
                expected_alerts +=
                    body["alerts"].as_u64().unwrap() - body["deduplicated"].as_u64().unwrap();
            } else {
                assert_eq!(status, 422, "{kind}/{file} should be refused: {body}");
                let field = std::fs::read_to_string(
                    path.with_file_name(file.replace(".json", ".error.txt")),
                )
                .unwrap();
                assert_eq!(
                    body["error"]["details"]["entries"][0]["field"],
                    field.trim(),
                    "{kind}/{file}"
                );
            }
        }
    }
    assert_eq!(count(&db, "alerts") as u64, expected_alerts);
}

/// Alerts acknowledged before a SIGKILL are all in the database afterwards.
fn acknowledged_alerts_survive_a_crash(db: TestDb) {
    let (token, _) = add_source(&db, "hive", "thehive", &[]);
    let mut server = Server::start(&db);
    let url = server.url("/api/v1/ingest/hive");
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (url, token, acked) = (url.clone(), token.clone(), acked.clone());
            std::thread::spawn(move || {
                let client = browser();
                for i in 0.. {
                    let reference = format!("k-{t}-{i}");
                    let sent = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&hive(&reference, "Crash test", "192.0.2.200"))
                        .send();
                    match sent {
                        Ok(res) if res.status() == 200 => acked.lock().unwrap().push(reference),
                        _ => break,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(700));
    server.kill();
    for w in writers {
        w.join().expect("writer thread");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "only {} acknowledged before the kill",
        acked.len()
    );
    let list = acked
        .iter()
        .map(|r| format!("'{r}'"))
        .collect::<Vec<_>>()
        .join(",");
    let stored = db.query_i64(&format!(
        "SELECT COUNT(*) AS n FROM alerts WHERE external_id IN ({list})"
    ));
    assert_eq!(
        stored,
        acked.len() as i64,
        "every acknowledged alert is stored"
    );
    // The restarted server works and the audit chain survived the crash intact.
    let server = Server::start(&db);
    assert_eq!(
        browser()
            .get(server.url("/readyz"))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert!(db.run_ok(&["audit", "verify"]).contains("intact"));
}

/// Random bodies never make the server fail with a 5xx, and store nothing unexpected.
fn random_bodies_never_cause_server_errors(db: TestDb) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let (hive_token, _) = add_source(&db, "hive", "thehive", &[]);
    let settings = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/generic/config.json");
    let (generic_token, _) = add_source(
        &db,
        "gen",
        "generic",
        &["--settings", settings.to_str().unwrap()],
    );
    let (am_token, _) = add_source(&db, "am", "alertmanager", &[]);
    let server = Server::start(&db);
    let client = browser();
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "[\\[\\]{}\",:0-9a-z \n]{0,200}".prop_map(String::into_bytes),
        Just(b"{\"version\":\"4\",\"alerts\":[{\"labels\":{}}]}".to_vec()),
        Just(b"[{}, [], null, 1e999, \"\\ud800\"]".to_vec()),
    ];
    let mut runner = TestRunner::new(Config {
        cases: 150,
        ..Config::default()
    });
    runner
        .run(&(body, 0usize..3), |(bytes, which)| {
            let (path, token) = [
                ("hive", &hive_token),
                ("gen", &generic_token),
                ("am", &am_token),
            ][which];
            let res = client
                .post(server.url(&format!("/api/v1/ingest/{path}")))
                .bearer_auth(token)
                .body(bytes.clone())
                .send()
                .expect("server answers");
            let status = res.status().as_u16();
            prop_assert!(
                (200..500).contains(&status),
                "{status} for {:?}",
                String::from_utf8_lossy(&bytes)
            );
            Ok(())
        })
        .unwrap();
    assert_eq!(
        browser()
            .get(server.url("/healthz"))
            .send()
            .unwrap()
            .status(),
        200
    );
}

both_backends!(
    acknowledged_alerts_survive_a_crash,
    random_bodies_never_cause_server_errors,
    single_array_and_ndjson_bodies,
    refused_requests_store_nothing_and_are_audited,
    bad_input_gets_4xx_naming_the_problem,
    repeats_are_counted_and_related_alerts_grouped,
    alertmanager_resolution_updates_the_alert,
    thehive_compatible_endpoint,
    concurrent_requests_are_all_committed,
    every_fixture_ingests_over_http,
);
