//! The four shipped playbooks end to end: the real server loads `playbooks/` and
//! `integrations/` from the repository, an alert in a vendor's own format arrives on an
//! ingestion source, the trigger starts the run, responders decide its gates through the
//! JSON API, and the fake vendor servers (tests/common/vendors.rs) count what reached
//! them. Also: a rejected gate, a benign alert that opens no gate, the outage escalation,
//! and a server killed with SIGKILL while a shipped playbook waits and runs.

#![recursion_limit = "256"]

mod common;

use common::vendors::{Vendor, Vendors};
use common::{browser, Server, TestDb};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const PW: &str = "correct horse battery";

/// Short waits for the playbooks that wait, and the PagerDuty service the fake knows.
const INPUTS: &str = r#"{
  "phishing-triage": { "scan_wait": "1s" },
  "it-outage": { "ack_timeout": "2s", "settle_time": "1s", "pagerduty_service_id": "PSERV01" }
}"#;

struct Env {
    db: TestDb,
    vendors: Vendors,
    server: Server,
    /// The ingestion source's name and token.
    source: String,
    source_token: String,
    /// Tokens of rex and rae (responders), ada (admin), vic (viewer).
    rex: String,
    rae: String,
    vic: String,
    /// `TOCSIN_PLAYBOOK_INPUTS` of the server.
    inputs: String,
}

impl Env {
    /// Starts the fakes, creates users and an ingestion source of `kind`, and starts the
    /// server on the shipped playbooks and integrations. Tests script the fakes'
    /// world afterwards, before they post the alert.
    fn new(db: TestDb, kind: &str) -> Env {
        Env::with_inputs(db, kind, INPUTS)
    }

    /// As `new`, with other playbook inputs.
    fn with_inputs(db: TestDb, kind: &str, inputs: &str) -> Env {
        let vendors = Vendors::start();
        for (name, role) in [
            ("rex", "responder"),
            ("rae", "responder"),
            ("ada", "admin"),
            ("vic", "viewer"),
        ] {
            db.add_user(name, role, PW);
        }
        let (rex, rae, vic) = (db.token("rex"), db.token("rae"), db.token("vic"));
        let source = format!("{kind}-feed");
        let out = db.run_ok(&["source", "add", &source, "--kind", kind]);
        let source_token = out
            .lines()
            .find_map(|l| l.strip_prefix("token="))
            .expect("token printed")
            .to_string();
        let server = start_server(&db, &vendors, inputs);
        Env {
            db,
            vendors,
            server,
            source,
            source_token,
            rex,
            rae,
            vic,
            inputs: inputs.to_string(),
        }
    }

    /// Kills the server with SIGKILL and starts it again on the same database.
    fn restart(&mut self) {
        self.server.kill();
        self.server = start_server(&self.db, &self.vendors, &self.inputs);
    }

    /// Posts one vendor event to the ingestion source.
    fn ingest(&self, event: &Value) {
        let res = browser()
            .post(self.server.url(&format!("/api/v1/ingest/{}", self.source)))
            .bearer_auth(&self.source_token)
            .json(event)
            .send()
            .expect("POST ingest");
        let status = res.status();
        let body = res.text().unwrap_or_default();
        assert!(status.is_success(), "ingest answered {status}: {body}");
    }

    fn get(&self, path: &str) -> Value {
        self.server.get_json(&self.vic, path)
    }

    fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.server.post_json(token, path, &body)
    }

    fn run(&self, id: i64) -> Value {
        self.get(&format!("/api/v1/runs/{id}"))
    }

    /// Polls `probe` until it gives a value.
    fn poll<T>(&self, what: &str, probe: impl FnMut() -> Option<T>) -> T {
        self.server.poll(what, probe)
    }

    /// The run the trigger (`case.created` or `alert.ingested`) started for `playbook`
    /// (exactly one).
    fn triggered_run(&self, playbook: &str, trigger: &str) -> i64 {
        let runs = self.poll(&format!("a run of {playbook}"), || {
            let runs = self.get(&format!("/api/v1/runs?playbook={playbook}"))["runs"].clone();
            (!runs.as_array()?.is_empty()).then_some(runs)
        });
        assert_eq!(runs.as_array().unwrap().len(), 1, "{runs:#}");
        assert_eq!(runs[0]["trigger"], trigger, "{runs:#}");
        assert_eq!(runs[0]["requested_by"], format!("trigger:{trigger}"));
        runs[0]["id"].as_i64().unwrap()
    }

    /// Polls run `id` until `done` holds.
    fn wait_for(&self, id: i64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.poll(&format!("run {id}: {what}"), || {
            let run = self.run(id);
            done(&run).then_some(run)
        })
    }

    fn finished(&self, id: i64) -> Value {
        self.wait_for(id, "the end", |r| {
            matches!(
                r["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
        })
    }

    /// The pending gate of `step` in run `id`, once the run is parked on it.
    fn gate(&self, id: i64, step_id: &str) -> Value {
        let run = self.wait_for(id, &format!("the gate of {step_id}"), |r| {
            step(r, step_id)["status"] == "waiting_approval"
                && r["approvals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|g| g["step_id"] == step_id && g["status"] == "pending")
        });
        run["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["step_id"] == step_id && g["status"] == "pending")
            .unwrap()
            .clone()
    }

    /// Decides gate `gate` as the holder of `token`; returns the gate afterwards.
    fn decide(&self, token: &str, gate: &Value, decision: &str, comment: Option<&str>) -> Value {
        let id = gate["id"].as_i64().unwrap();
        let mut body = json!({ "decision": decision });
        if let Some(c) = comment {
            body["comment"] = json!(c);
        }
        let (status, gate) = self.post(token, &format!("/api/v1/approvals/{id}/decision"), body);
        assert_eq!(
            status,
            200,
            "{decision} on gate {id}: {gate}\nserver log:\n{}",
            self.server.stderr()
        );
        gate
    }

    fn case(&self, id: i64) -> Value {
        self.get(&format!("/api/v1/cases/{id}"))
    }

    /// Comment bodies of a case, oldest first.
    fn comments(&self, case_id: i64) -> Vec<String> {
        self.case(case_id)["comments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["body"].as_str().unwrap().to_string())
            .collect()
    }

    fn count(&self, vendor: Vendor, method: &str, path: &str) -> usize {
        self.vendors.count(vendor, method, path)
    }

    /// No playbook other than `playbook` started a run.
    fn only_runs_of(&self, playbook: &str) {
        let runs = self.get("/api/v1/runs")["runs"].clone();
        let others: Vec<&Value> = runs
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["playbook"] != playbook)
            .collect();
        assert!(others.is_empty(), "other playbooks ran: {others:#?}");
    }

    fn audit_intact(&self) {
        let verify = self.db.run_ok(&["audit", "verify"]);
        assert!(verify.contains("intact"), "{verify}");
    }
}

/// `tocsin serve` on the shipped playbooks and integrations, talking to the fakes.
fn start_server(db: &TestDb, vendors: &Vendors, inputs: &str) -> Server {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut env = vendors.env();
    env.extend([
        ("TOCSIN_PLAYBOOKS_DIR".into(), format!("{root}/playbooks")),
        (
            "TOCSIN_PLAYBOOKS_INTEGRATIONS_DIR".into(),
            format!("{root}/integrations"),
        ),
        ("TOCSIN_PLAYBOOK_INPUTS".into(), inputs.into()),
        ("TOCSIN_ENGINE_LEASE_SECONDS".into(), "2".into()),
    ]);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_with(db, &pairs)
}

fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {run:#}"))
}

/// Every step of the run has the status listed for it (and the list names every step).
fn assert_steps(run: &Value, expected: &[(&str, &str)]) {
    let actual: BTreeMap<String, String> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(actual, expected, "step statuses of {run:#}");
}

fn terminal(status: &Value) -> bool {
    matches!(
        status.as_str(),
        Some("succeeded" | "failed" | "skipped" | "rejected" | "cancelled")
    )
}

fn b64url(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn tags(case: &Value) -> Vec<String> {
    let mut t: Vec<String> = case["case"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    t.sort();
    t
}

/// How many comments contain `needle`.
fn mentions(comments: &[String], needle: &str) -> usize {
    comments.iter().filter(|c| c.contains(needle)).count()
}

// ---------------------------------------------------------------------------------------
// Alerts in the vendors' formats (shapes as in tests/fixtures/<kind>/).

const ALICE: &str = "alice@contoso.com";
const ALICE_ID: &str = "8a7b6c5d-0000-4000-8000-000000000001";

const PHISH_URL: &str = "https://sharepoint-docs.example.com/s/Invoice.htm";
const PHISH_MID: &str = "<d0fa0b22c2524752a84a0a56063d73cd@mail.docs-share.example.com>";
const PHISH_SENDER: &str = "share@docs-share.example.com";
const PHISH_ATTACHMENT: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

/// A Defender for Office 365 alert (Graph security API): a user clicked a malicious URL
/// in a delivered message with an attachment.
fn defender_url_click() -> Value {
    json!({
        "@odata.type": "#microsoft.graph.security.alert",
        "id": "fa7e21c9b4-6d3a-4f28-a1b5-08dc5b9c0d1e",
        "providerAlertId": "7e21c9b4-6d3a-4f28-a1b5-08dc5b9c0d1e",
        "incidentId": "141530",
        "status": "new",
        "severity": "high",
        "classification": null,
        "determination": null,
        "serviceSource": "microsoftDefenderForOffice365",
        "detectionSource": "microsoftDefenderForOffice365",
        "productName": "Microsoft Defender for Office 365",
        "detectorId": "d8de5e76-9b36-4b5a-8d59-b6d1c3a2b4e0",
        "tenantId": "2df07d77-3b86-4bb2-a205-6527a1f37ffc",
        "title": "A potentially malicious URL click was detected",
        "description": "We have detected that one of your users has recently clicked on a link that was found to be malicious. -V1.0.0.5",
        "category": "InitialAccess",
        "alertWebUrl": "https://security.microsoft.com/alerts/fa7e21c9b4-6d3a-4f28-a1b5-08dc5b9c0d1e",
        "mitreTechniques": ["T1566.002", "T1204.001"],
        "createdDateTime": "2026-11-25T07:45:41.58Z",
        "lastUpdateDateTime": "2026-11-25T07:45:41.58Z",
        "firstActivityDateTime": "2026-11-25T07:42:00Z",
        "lastActivityDateTime": "2026-11-25T07:42:00Z",
        "comments": [],
        "evidence": [
            {
                "@odata.type": "#microsoft.graph.security.urlEvidence",
                "createdDateTime": "2026-11-25T07:45:41.7666667Z",
                "verdict": "malicious",
                "remediationStatus": "none",
                "roles": [],
                "tags": [],
                "url": "hxxps://sharepoint-docs[.]example[.]com/s/Invoice.htm"
            },
            {
                "@odata.type": "#microsoft.graph.security.userEvidence",
                "createdDateTime": "2026-11-25T07:45:41.7666667Z",
                "verdict": "unknown",
                "remediationStatus": "none",
                "roles": [],
                "tags": [],
                "userAccount": {
                    "accountName": "alice",
                    "domainName": "corp.contoso.com",
                    "azureAdUserId": ALICE_ID,
                    "userPrincipalName": "Alice@contoso.com",
                    "displayName": "Alice Adams"
                }
            },
            {
                "@odata.type": "#microsoft.graph.security.analyzedMessageEvidence",
                "createdDateTime": "2026-11-25T07:45:41.7666667Z",
                "verdict": "malicious",
                "remediationStatus": "none",
                "roles": [],
                "tags": [],
                "networkMessageId": "4ffce93b-d36c-40fb-a3ba-08dc5b9b10e0",
                "internetMessageId": PHISH_MID.trim_start_matches('<').trim_end_matches('>'),
                "subject": "Alice, a document was shared with you",
                "senderIp": "198.51.100.201",
                "recipientEmailAddress": "Alice@contoso.com",
                "antiSpamDirection": "Inbound",
                "deliveryAction": "Delivered",
                "deliveryLocation": "Inbox",
                "urlCount": 1,
                "attachmentsCount": 1,
                "receivedDateTime": "2026-11-25T07:41:09Z",
                "p1Sender": { "emailAddress": "", "displayName": "", "domainName": "" },
                "p2Sender": { "emailAddress": PHISH_SENDER, "displayName": "", "domainName": "" }
            },
            {
                "@odata.type": "#microsoft.graph.security.fileEvidence",
                "createdDateTime": "2026-11-25T07:45:41.7666667Z",
                "verdict": "unknown",
                "remediationStatus": "none",
                "detectionStatus": "detected",
                "roles": [],
                "tags": [],
                "fileDetails": {
                    "sha1": null,
                    "sha256": PHISH_ATTACHMENT.to_uppercase(),
                    "fileName": "Invoice.htm",
                    "fileSize": 4211
                }
            }
        ]
    })
}

const NEWS_URL: &str = "https://newsletter.example.net/offers?id=7";
const NEWS_MID: &str = "<7c1d.20261125.0815@mailer.example.net>";
const NEWS_SHA256: &str = "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c";
const NEWS_MD5: &str = "d3b07384d113edec49eaa6238ad5ff00";

/// A Proofpoint TAP message event: TAP calls it spam, with a link and an attachment that
/// no reputation service flags.
fn proofpoint_spam() -> Value {
    json!({
        "GUID": "TmV3c2xldHRlck9mZmVyczc",
        "QID": "r2FNwRHF007701",
        "ccAddresses": [],
        "cluster": "contoso_hosted",
        "completelyRewritten": "true",
        "fromAddress": ["offers@mailer.example.net"],
        "headerFrom": "Example Offers <offers@mailer.example.net>",
        "headerReplyTo": null,
        "id": "5b6c7d8e-9f00-4a1b-8c2d-3e4f5a6b7c8d",
        "impostorScore": 0,
        "malwareScore": 0,
        "messageID": NEWS_MID,
        "messageParts": [
            {
                "contentType": "text/html",
                "disposition": "inline",
                "filename": "text.html",
                "md5": "0cc175b9c0f1b6a831c399e269772661",
                "oContentType": "text/html",
                "sandboxStatus": null,
                "sha256": "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
            },
            {
                "contentType": "application/pdf",
                "disposition": "attached",
                "filename": "offers.pdf",
                "md5": NEWS_MD5,
                "oContentType": "application/pdf",
                "sandboxStatus": "clean",
                "sha256": NEWS_SHA256
            }
        ],
        "messageSize": 48211,
        "messageTime": "2026-11-25T08:15:02.000Z",
        "modulesRun": ["av", "spf", "dkimv", "spam", "urldefense"],
        "phishScore": 12,
        "policyRoutes": ["default_inbound"],
        "quarantineFolder": null,
        "quarantineRule": null,
        "recipient": [ALICE],
        "replyToAddress": [],
        "sender": "offers@mailer.example.net",
        "senderIP": "198.51.100.61",
        "spamScore": 81,
        "subject": "This week's offers",
        "threatsInfoMap": [
            {
                "campaignID": null,
                "classification": "spam",
                "threat": NEWS_URL,
                "threatID": "8d0c6a2f4e1b3d5a7c9e0f2b4d6a8c0e1f3a5b7d9c0e2f4a6b8d0c2e4f6a8b0c",
                "threatStatus": "active",
                "threatTime": "2026-11-25T08:15:20.000Z",
                "threatType": "url",
                "threatUrl": "https://threatinsight.proofpoint.com/a2abc123/threat/email/8d0c6a2f"
            }
        ],
        "toAddresses": [ALICE],
        "xmailer": null
    })
}

const EVIL_HASH: &str = "de96a6e69944335375dc1ac238336066889d9ffc7d73628ef4fe1b1b160ab32c";
const WS_DEVICE: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// An Elastic Security detection alert (flattened) on host WS-0042 naming a file hash.
fn elastic_detection() -> Value {
    json!({
        "@timestamp": "2026-11-25T08:01:12.345Z",
        "kibana.alert.original_time": "2026-11-25T08:00:58.120Z",
        "kibana.alert.uuid": "6e0f1b2d3c4e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c44c8a2f1e9b7d3c5a",
        "kibana.alert.rule.name": "Malware Detection Alert",
        "kibana.alert.rule.uuid": "3b1d9a52-7b1d-4f0a-8c6e-2d5b7f9e1a04",
        "kibana.alert.rule.rule_id": "0f1e2d3c-0a3d-4c6e-9f8b-1d2c3b4a5e6f",
        "kibana.alert.rule.type": "query",
        "kibana.alert.rule.description": "Endpoint Security detected malware on a host.",
        "kibana.alert.rule.tags": ["Domain: Endpoint", "OS: Windows", "Data Source: Elastic Defend"],
        "kibana.alert.severity": "critical",
        "kibana.alert.risk_score": 99,
        "kibana.alert.reason": "file event with process invoice_0923.pdf.exe, file invoice_0923.pdf.exe, by jdoe on WS-0042 created critical alert Malware Detection Alert.",
        "kibana.alert.status": "active",
        "kibana.alert.workflow_status": "open",
        "kibana.alert.depth": 1,
        "kibana.space_ids": ["default"],
        "event": { "kind": "signal", "category": ["malware", "intrusion_detection"], "type": ["info"] },
        "host": { "name": "WS-0042", "ip": ["10.1.2.3"], "os": { "family": "windows" } },
        "user": { "name": "jdoe", "domain": "CORP" },
        "process": {
            "name": "invoice_0923.pdf.exe",
            "pid": 5120,
            "hash": { "sha256": EVIL_HASH.to_uppercase() },
            "parent": { "name": "explorer.exe" }
        },
        "ecs": { "version": "8.11.0" }
    })
}

const ATTACKER: &str = "203.0.113.45";

/// A Splunk Enterprise Security alert action payload: a brute-force notable.
fn splunk_brute_force() -> Value {
    json!({
        "result": {
            "_time": "1795600800",
            "src": ATTACKER,
            "dest": "vpn-gw-01.corp.example",
            "user": [ALICE],
            "app": "sshd",
            "count": "57",
            "severity": "high",
            "urgency": "critical",
            "tag": ["authentication", "failure"],
            "description": format!("57 failed logins from {ATTACKER} against {ALICE} in 5 minutes")
        },
        "sid": "scheduler__admin_U0EtQWNjZXNzUHJvdGVjdGlvbg__RMD5a1b2c3d4e5f60718_at_1795600800_99",
        "results_link": "https://splunk.corp.example:8000/app/SplunkEnterpriseSecuritySuite/@go?sid=scheduler__admin_U0EtQWNjZXNzUHJvdGVjdGlvbg__RMD5a1b2c3d4e5f60718_at_1795600800_99",
        "search_name": "Access - Brute Force Access Behavior Detected - Rule",
        "owner": "admin",
        "app": "SplunkEnterpriseSecuritySuite"
    })
}

/// An Alertmanager webhook (version 4): one firing alert, critical, on web-01.
fn alertmanager_down() -> Value {
    json!({
        "version": "4",
        "groupKey": "{}/{severity=\"critical\"}:{alertname=\"CheckoutApiDown\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "tocsin",
        "groupLabels": { "alertname": "CheckoutApiDown" },
        "commonLabels": { "alertname": "CheckoutApiDown", "job": "checkout", "severity": "critical" },
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.org:9093",
        "alerts": [{
            "status": "firing",
            "labels": {
                "alertname": "CheckoutApiDown",
                "instance": "web-01:8080",
                "job": "checkout",
                "severity": "critical"
            },
            "annotations": {
                "summary": "checkout-api on web-01 is down",
                "description": "The HTTP probe of web-01:8080 has failed for 5 minutes."
            },
            "startsAt": "2026-11-25T08:52:26.739Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example.org:9090/graph?g0.expr=probe_success+%3D%3D+0",
            "fingerprint": "c0ffee0ddba11ad5"
        }]
    })
}

// ---------------------------------------------------------------------------------------
// Phishing triage

fn phishing_triage_quarantines_and_blocks_after_approval(db: TestDb) {
    let env = Env::new(db, "defender_o365");
    let graph_id = env.vendors.with(|w| {
        w.malicious_urls.insert(PHISH_URL.into());
        w.clean_hashes.insert(PHISH_ATTACHMENT.into());
        w.deliver(
            ALICE,
            PHISH_MID,
            "Alice, a document was shared with you",
            PHISH_SENDER,
        )
    });
    env.ingest(&defender_url_click());
    let id = env.triggered_run("phishing-triage", "case.created");

    let quarantine = env.gate(id, "quarantine");
    let block = env.gate(id, "block_senders");
    let q_msg = quarantine["message"].as_str().unwrap();
    assert!(
        q_msg.contains(PHISH_MID) && q_msg.contains(ALICE),
        "{q_msg}"
    );
    assert!(block["message"].as_str().unwrap().contains(PHISH_SENDER));
    assert_eq!(quarantine["action"], "msgraph.soft_delete_message");
    let move_path = format!("/v1.0/users/{ALICE}/messages/{graph_id}/move");
    assert_eq!(env.count(Vendor::MsGraph, "POST", &move_path), 0);
    assert_eq!(env.count(Vendor::Firewall, "POST", "/api/v1/blocklist"), 0);

    assert_eq!(
        env.decide(&env.rex, &quarantine, "approve", None)["status"],
        "approved"
    );
    env.decide(&env.rae, &block, "approve", Some("known phishing kit"));
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_steps(
        &run,
        &[
            ("vt_hashes", "succeeded"),
            ("vt_domains", "succeeded"),
            ("vt_urls", "succeeded"),
            ("urlscan_submit", "succeeded"),
            ("vt_url_submit", "succeeded"),
            ("let_scans_finish", "succeeded"),
            ("urlscan_results", "succeeded"),
            ("vt_url_results", "succeeded"),
            ("verdict", "succeeded"),
            ("tag", "succeeded"),
            ("tag_malicious", "succeeded"),
            ("find_messages", "succeeded"),
            ("quarantine", "succeeded"),
            ("block_senders", "succeeded"),
            ("containment_summary", "succeeded"),
            ("mark_contained", "succeeded"),
        ],
    );

    // Enrichment: the attachment hash, the URL on both services.
    assert_eq!(
        env.count(
            Vendor::VirusTotal,
            "GET",
            &format!("/api/v3/files/{PHISH_ATTACHMENT}")
        ),
        1
    );
    assert_eq!(
        env.count(
            Vendor::VirusTotal,
            "GET",
            &format!("/api/v3/urls/{}", b64url(PHISH_URL))
        ),
        1
    );
    // VirusTotal knew the URL: nothing to submit.
    assert_eq!(env.count(Vendor::VirusTotal, "POST", "/api/v3/urls"), 0);
    let scans = env.vendors.calls(Vendor::Urlscan, "POST", "/api/v1/scan/");
    assert_eq!(scans.len(), 1);
    assert_eq!(scans[0].json["url"], PHISH_URL);
    assert_eq!(scans[0].json["visibility"], "private");
    let polls = env
        .vendors
        .requests(Vendor::Urlscan)
        .into_iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(polls, 1);

    // Containment, each exactly once.
    assert_eq!(
        env.count(
            Vendor::MsGraph,
            "GET",
            &format!("/v1.0/users/{ALICE}/messages")
        ),
        1
    );
    assert_eq!(env.count(Vendor::MsGraph, "POST", &move_path), 1);
    let folder = env.vendors.with(|w| w.mailboxes[ALICE][0].folder.clone());
    assert_eq!(folder, "recoverableitemsdeletions");
    assert_eq!(env.count(Vendor::Firewall, "POST", "/api/v1/blocklist"), 1);
    let case_id = run["case_id"].as_i64().unwrap();
    let entry = env.vendors.with(|w| {
        w.blocklist
            .get(&("email".to_string(), PHISH_SENDER.to_string()))
            .cloned()
    });
    let entry = entry.expect("the sender is on the block list");
    assert_eq!(entry["reference"], format!("tocsin-case-{case_id}"));

    // The case: verdict and containment comments, tags, status.
    let case = env.case(case_id);
    assert_eq!(case["case"]["status"], "contained");
    assert_eq!(
        tags(&case),
        ["phishing", "triage:automated", "verdict:malicious"]
    );
    let comments = env.comments(case_id);
    assert_eq!(comments.len(), 2, "{comments:#?}");
    assert!(
        comments[0].contains(&format!(
            "URLs (urlscan.io): 1 scan(s) finished; malicious: {PHISH_URL}"
        )),
        "{}",
        comments[0]
    );
    assert!(
        comments[0].contains(&format!(
            "URLs (VirusTotal, by URL): 1 looked up; flagged by 2+ engines: {PHISH_URL}"
        )),
        "{}",
        comments[0]
    );
    assert!(comments[0].contains(&format!("Senders: {PHISH_SENDER}")));
    assert!(
        comments[1].contains("Messages soft-deleted: 1 of 1 found."),
        "{}",
        comments[1]
    );
    assert!(
        comments[1].contains("Senders blocked: 1."),
        "{}",
        comments[1]
    );
    env.only_runs_of("phishing-triage");
    env.audit_intact();
}

fn phishing_triage_of_a_benign_message_opens_no_gate(db: TestDb) {
    let env = Env::new(db, "proofpoint_tap");
    env.vendors.with(|w| {
        w.clean_hashes.insert(NEWS_SHA256.into());
        w.clean_hashes.insert(NEWS_MD5.into());
        w.deliver(
            ALICE,
            NEWS_MID,
            "This week's offers",
            "offers@mailer.example.net",
        );
    });
    env.ingest(&proofpoint_spam());
    let id = env.triggered_run("phishing-triage", "case.created");
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["approvals"], json!([]), "no gate was opened");
    assert_steps(
        &run,
        &[
            ("vt_hashes", "succeeded"),
            ("vt_domains", "succeeded"),
            ("vt_urls", "succeeded"),
            ("urlscan_submit", "succeeded"),
            ("vt_url_submit", "succeeded"),
            ("let_scans_finish", "succeeded"),
            ("urlscan_results", "succeeded"),
            ("vt_url_results", "succeeded"),
            ("verdict", "succeeded"),
            ("tag", "succeeded"),
            ("tag_malicious", "skipped"),
            ("find_messages", "skipped"),
            ("quarantine", "skipped"),
            ("block_senders", "skipped"),
            ("containment_summary", "skipped"),
            ("mark_contained", "skipped"),
        ],
    );
    // Both attachment hashes were looked up; the URL VirusTotal had never seen was
    // submitted and its analysis read; urlscan.io scanned it.
    for hash in [NEWS_SHA256, NEWS_MD5] {
        assert_eq!(
            env.count(Vendor::VirusTotal, "GET", &format!("/api/v3/files/{hash}")),
            1,
            "{hash}"
        );
    }
    assert_eq!(
        env.count(
            Vendor::VirusTotal,
            "GET",
            &format!("/api/v3/urls/{}", b64url(NEWS_URL))
        ),
        1
    );
    let submitted = env
        .vendors
        .calls(Vendor::VirusTotal, "POST", "/api/v3/urls");
    assert_eq!(submitted.len(), 1);
    assert_eq!(submitted[0].json["url"], NEWS_URL);
    let analysis = step(&run, "vt_url_results")["output"][0].clone();
    assert_eq!(analysis["url"], NEWS_URL);
    assert_eq!(analysis["malicious"], 0);
    assert_eq!(env.count(Vendor::Urlscan, "POST", "/api/v1/scan/"), 1);
    // Nothing touched the mailbox or the block list.
    assert!(env.vendors.requests(Vendor::MsGraph).is_empty());
    assert!(env.vendors.requests(Vendor::Firewall).is_empty());
    let folder = env.vendors.with(|w| w.mailboxes[ALICE][0].folder.clone());
    assert_eq!(folder, "inbox");

    let case_id = run["case_id"].as_i64().unwrap();
    let case = env.case(case_id);
    assert_ne!(case["case"]["status"], "contained");
    assert_eq!(tags(&case), ["phishing", "triage:automated"]);
    let comments = env.comments(case_id);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].contains("flagged by 3+ engines: none"),
        "{}",
        comments[0]
    );
    assert!(comments[0].contains("URLs (urlscan.io): 1 scan(s) finished; malicious: none"));
    env.only_runs_of("phishing-triage");
    env.audit_intact();
}

// ---------------------------------------------------------------------------------------
// EDR malware

fn edr_malware_contains_the_host_after_two_approvals(db: TestDb) {
    let env = Env::new(db, "elastic");
    env.vendors.with(|w| {
        w.malicious_hashes.insert(EVIL_HASH.into());
        w.hash_device_counts.insert(EVIL_HASH.into(), 3);
    });
    env.ingest(&elastic_detection());
    let id = env.triggered_run("edr-malware", "case.created");
    let gate = env.gate(id, "contain");
    assert_eq!(gate["required"], 2);
    let msg = gate["message"].as_str().unwrap();
    assert!(
        msg.contains("ws-0042") && msg.contains(WS_DEVICE) && msg.contains(EVIL_HASH),
        "{msg}"
    );
    let contain_path = "/devices/entities/devices-actions/v2";
    let after_one = env.decide(&env.rex, &gate, "approve", Some("looks bad"));
    assert_eq!(after_one["status"], "pending", "one approval of two");
    assert_eq!(env.count(Vendor::CrowdStrike, "POST", contain_path), 0);
    assert_eq!(
        env.decide(&env.rae, &gate, "approve", None)["status"],
        "approved"
    );
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_steps(
        &run,
        &[
            ("vt_hashes", "succeeded"),
            ("falcon_intel", "succeeded"),
            ("spread", "succeeded"),
            ("find_device", "succeeded"),
            ("device", "succeeded"),
            ("verdict", "succeeded"),
            ("tag_malicious", "succeeded"),
            ("contain", "succeeded"),
            ("contained_comment", "succeeded"),
            ("mark_contained", "succeeded"),
        ],
    );
    // Lookups for the hash and the host.
    assert_eq!(
        env.count(
            Vendor::VirusTotal,
            "GET",
            &format!("/api/v3/files/{EVIL_HASH}")
        ),
        1
    );
    let intel = env
        .vendors
        .calls(Vendor::CrowdStrike, "GET", "/intel/combined/indicators/v1");
    assert_eq!(intel.len(), 1);
    assert_eq!(
        intel[0].query("filter"),
        Some(format!("indicator:'{EVIL_HASH}'").as_str())
    );
    let spread = env.vendors.calls(
        Vendor::CrowdStrike,
        "GET",
        "/indicators/aggregates/devices-count/v1",
    );
    assert_eq!(spread.len(), 1);
    assert_eq!(spread[0].query("value"), Some(EVIL_HASH));
    let found = env
        .vendors
        .calls(Vendor::CrowdStrike, "GET", "/devices/queries/devices/v1");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].query("filter"), Some("hostname:'ws-0042'"));
    assert_eq!(
        env.count(Vendor::CrowdStrike, "GET", "/devices/entities/devices/v2"),
        1
    );
    // Containment, once.
    let contained = env.vendors.calls(Vendor::CrowdStrike, "POST", contain_path);
    assert_eq!(contained.len(), 1);
    assert_eq!(contained[0].query("action_name"), Some("contain"));
    assert_eq!(contained[0].json["ids"], json!([WS_DEVICE]));
    assert!(env.vendors.with(|w| w.contained.contains(WS_DEVICE)));

    let case_id = run["case_id"].as_i64().unwrap();
    let case = env.case(case_id);
    assert_eq!(case["case"]["status"], "contained");
    assert_eq!(tags(&case), ["malware", "verdict:malicious"]);
    let comments = env.comments(case_id);
    assert_eq!(comments.len(), 2, "{comments:#?}");
    assert!(
        comments[0].contains(&format!(
            "Hashes flagged by 3+ VirusTotal engines: {EVIL_HASH}"
        )) && comments[0].contains("trojan.emotet/heodo")
            && comments[0].contains(&format!("high confidence malicious: {EVIL_HASH}"))
            && comments[0].contains("Hosts that have seen the SHA-256 hashes: 3")
            && comments[0].contains("status normal"),
        "{}",
        comments[0]
    );
    assert!(
        comments[1].contains(&format!(
            "network-contained in CrowdStrike Falcon (device {WS_DEVICE})"
        )),
        "{}",
        comments[1]
    );
    env.only_runs_of("edr-malware");
    env.audit_intact();
}

// ---------------------------------------------------------------------------------------
// Brute force

fn brute_force_blocks_revokes_and_disables_after_approval(db: TestDb) {
    let env = Env::new(db, "splunk");
    env.vendors
        .with(|w| w.ip_scores.insert(ATTACKER.into(), 92));
    env.ingest(&splunk_brute_force());
    let id = env.triggered_run("brute-force", "case.created");
    let block = env.gate(id, "block_ip");
    let revoke = env.gate(id, "revoke_sessions");
    assert!(block["message"].as_str().unwrap().contains(ATTACKER));
    assert!(revoke["message"].as_str().unwrap().contains(ALICE));
    assert!(env.vendors.requests(Vendor::Firewall).is_empty());
    env.decide(&env.rex, &block, "approve", None);
    env.decide(&env.rae, &revoke, "approve", None);
    // Disabling is asked only after the revocation.
    let disable = env.gate(id, "disable_user");
    assert_eq!(env.vendors.with(|w| w.users[ALICE].revocations), 1);
    assert!(env.vendors.with(|w| w.users[ALICE].enabled));
    env.decide(&env.rex, &disable, "approve", Some("password was guessed"));
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_steps(
        &run,
        &[
            ("abuse", "succeeded"),
            ("vt_ip", "succeeded"),
            ("user", "succeeded"),
            ("verdict", "succeeded"),
            ("block_ip", "succeeded"),
            ("revoke_sessions", "succeeded"),
            ("disable_user", "succeeded"),
            ("summary", "succeeded"),
            ("mark_contained", "succeeded"),
        ],
    );
    // Lookups of the address and the account.
    let checks = env.vendors.calls(Vendor::AbuseIpdb, "GET", "/api/v2/check");
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].query("ipAddress"), Some(ATTACKER));
    assert_eq!(
        env.count(
            Vendor::VirusTotal,
            "GET",
            &format!("/api/v3/ip_addresses/{ATTACKER}")
        ),
        1
    );
    assert_eq!(
        env.count(Vendor::MsGraph, "GET", &format!("/v1.0/users/{ALICE}")),
        1
    );
    // Containment, each once.
    assert_eq!(env.count(Vendor::Firewall, "POST", "/api/v1/blocklist"), 1);
    let case_id = run["case_id"].as_i64().unwrap();
    let entry = env
        .vendors
        .with(|w| {
            w.blocklist
                .get(&("ip".to_string(), ATTACKER.to_string()))
                .cloned()
        })
        .expect("the address is blocked");
    assert_eq!(entry["reference"], format!("tocsin-case-{case_id}"));
    assert_eq!(entry["expires_at"], "in 604800s");
    assert_eq!(
        env.count(
            Vendor::MsGraph,
            "POST",
            &format!("/v1.0/users/{ALICE_ID}/revokeSignInSessions")
        ),
        1
    );
    assert_eq!(
        env.count(Vendor::MsGraph, "PATCH", &format!("/v1.0/users/{ALICE_ID}")),
        1
    );
    assert_eq!(env.vendors.with(|w| w.users[ALICE].revocations), 1);
    assert!(!env.vendors.with(|w| w.users[ALICE].enabled));

    let case = env.case(case_id);
    assert_eq!(case["case"]["status"], "contained");
    let comments = env.comments(case_id);
    assert_eq!(comments.len(), 2, "{comments:#?}");
    assert!(
        comments[0].contains(&format!(
            "AbuseIPDB confidence 75+ (will be proposed for blocking): {ATTACKER}"
        )) && comments[0].contains(&format!("VirusTotal, flagged by 3+ engines: {ATTACKER}"))
            && comments[0].contains(&format!("Targeted account: {ALICE} (enabled: true)")),
        "{}",
        comments[0]
    );
    assert!(
        comments[1].contains("Addresses blocked: 1")
            && comments[1].contains("Sessions revoked: true"),
        "{}",
        comments[1]
    );
    env.only_runs_of("brute-force");
    env.audit_intact();
}

fn a_rejected_gate_keeps_its_containment_from_the_vendor(db: TestDb) {
    let env = Env::new(db, "splunk");
    env.vendors
        .with(|w| w.ip_scores.insert(ATTACKER.into(), 92));
    env.ingest(&splunk_brute_force());
    let id = env.triggered_run("brute-force", "case.created");
    let block = env.gate(id, "block_ip");
    let revoke = env.gate(id, "revoke_sessions");
    // A rejection needs a comment.
    let (status, body) = env.post(
        &env.rex,
        &format!("/api/v1/approvals/{}/decision", block["id"]),
        json!({ "decision": "reject" }),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        env.decide(&env.rex, &block, "reject", Some("our own VPN egress"))["status"],
        "rejected"
    );
    env.decide(&env.rae, &revoke, "approve", None);
    let disable = env.gate(id, "disable_user");
    env.decide(&env.rae, &disable, "reject", Some("no sign-in succeeded"));
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_steps(
        &run,
        &[
            ("abuse", "succeeded"),
            ("vt_ip", "succeeded"),
            ("user", "succeeded"),
            ("verdict", "succeeded"),
            ("block_ip", "rejected"),
            ("revoke_sessions", "succeeded"),
            ("disable_user", "rejected"),
            ("summary", "succeeded"),
            ("mark_contained", "succeeded"),
        ],
    );
    assert!(
        step(&run, "block_ip")["error"]
            .as_str()
            .unwrap()
            .contains("our own VPN egress"),
        "{run:#}"
    );
    // The rejected calls never reached the vendors; the approved one did, once.
    assert!(env.vendors.requests(Vendor::Firewall).is_empty());
    assert!(env.vendors.with(|w| w.blocklist.is_empty()));
    assert_eq!(
        env.count(Vendor::MsGraph, "PATCH", &format!("/v1.0/users/{ALICE_ID}")),
        0
    );
    assert!(env.vendors.with(|w| w.users[ALICE].enabled));
    assert_eq!(env.vendors.with(|w| w.users[ALICE].revocations), 1);

    let case_id = run["case_id"].as_i64().unwrap();
    // Revoked sessions still make the case contained, as the playbook says.
    assert_eq!(env.case(case_id)["case"]["status"], "contained");
    let comments = env.comments(case_id);
    assert_eq!(comments.len(), 2, "{comments:#?}");
    assert!(
        comments[1].contains("Addresses blocked: 0")
            && comments[1].contains("Sessions revoked: true"),
        "{}",
        comments[1]
    );
    let decided = env.db.audit_with_action("approval.decided");
    assert_eq!(decided.len(), 3);
    env.audit_intact();
}

// ---------------------------------------------------------------------------------------
// IT outage

/// PUT /incidents/{id} requests that changed the escalation level, and those resolving.
fn pd_updates(env: &Env, incident: &str) -> (usize, usize) {
    let puts = env
        .vendors
        .calls(Vendor::PagerDuty, "PUT", &format!("/incidents/{incident}"));
    let escalations = puts
        .iter()
        .filter(|r| r.json["incident"].get("escalation_level").is_some())
        .count();
    let resolutions = puts
        .iter()
        .filter(|r| r.json["incident"]["status"] == "resolved")
        .count();
    assert_eq!(puts.len(), escalations + resolutions, "unexpected updates");
    (escalations, resolutions)
}

fn it_outage_pages_escalates_restarts_and_closes_the_ticket(db: TestDb) {
    let env = Env::new(db, "alertmanager");
    env.vendors.with(|w| {
        w.unhealthy_hosts.insert("web-01".into());
        w.pagerduty_acknowledges = false;
    });
    env.ingest(&alertmanager_down());
    let id = env.triggered_run("it-outage", "alert.ingested");
    let gate = env.gate(id, "restart");
    let msg = gate["message"].as_str().unwrap();
    assert!(
        msg.contains("checkout-api")
            && msg.contains("web-01")
            && msg.contains("http check failing"),
        "{msg}"
    );
    assert_eq!(
        env.count(
            Vendor::Diagnostics,
            "POST",
            "/api/v1/services/checkout-api/restart"
        ),
        0
    );
    env.decide(&env.rex, &gate, "approve", None);
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_steps(
        &run,
        &[
            ("open_ticket", "succeeded"),
            ("page", "succeeded"),
            ("diagnose", "succeeded"),
            ("ticket_diagnostics", "succeeded"),
            ("acknowledge", "succeeded"),
            ("escalate", "succeeded"),
            ("escalation_comment", "succeeded"),
            ("restart", "succeeded"),
            ("settle_restart", "succeeded"),
            ("restart_job", "succeeded"),
            ("recheck", "succeeded"),
            ("rollback", "skipped"),
            ("settle_rollback", "skipped"),
            ("rollback_job", "skipped"),
            ("final_check", "succeeded"),
            ("summary", "succeeded"),
            ("ticket_transitions", "succeeded"),
            ("close_ticket", "succeeded"),
            ("ticket_left_open", "skipped"),
            ("resolve_page", "succeeded"),
        ],
    );
    let case_id = run["case_id"].as_i64().unwrap();
    let ack = &step(&run, "acknowledge")["output"];
    assert_eq!(ack["acknowledged"], false, "{ack:#}");
    assert_eq!(ack["check"]["status"], "triggered", "{ack:#}");
    let gate = run["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["kind"] == "acknowledgement")
        .unwrap()
        .clone();
    assert_eq!(gate["status"], "timed_out", "{gate:#}");
    assert_eq!(gate["step_id"], "acknowledge");
    let timed_out = env.db.audit_with_action("approval.timed_out");
    assert_eq!(timed_out.len(), 1, "{timed_out:#?}");
    assert_eq!(timed_out[0]["details"]["kind"], "acknowledgement");

    // The page: created once, not acknowledged, escalated once, resolved once.
    let pages = env.vendors.calls(Vendor::PagerDuty, "POST", "/incidents");
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].json["incident"]["service"]["id"], "PSERV01");
    assert_eq!(
        pages[0].json["incident"]["incident_key"],
        "alertmanager-c0ffee0ddba11ad5"
    );
    let incident = step(&run, "page")["output"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        env.count(Vendor::PagerDuty, "GET", &format!("/incidents/{incident}")),
        1
    );
    assert_eq!(pd_updates(&env, &incident), (1, 1));
    let (level, status) = env.vendors.with(|w| {
        let i = &w.incidents[&incident];
        (i["escalation_level"].clone(), i["status"].clone())
    });
    assert_eq!((level, status), (json!(2), json!("resolved")));

    // The ticket: opened once, diagnostics commented once, closed once.
    assert_eq!(env.count(Vendor::Jira, "POST", "/rest/api/3/issue"), 1);
    let key = step(&run, "open_ticket")["output"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(key.starts_with("OPS-"), "{key}");
    assert_eq!(
        env.count(
            Vendor::Jira,
            "POST",
            &format!("/rest/api/3/issue/{key}/comment")
        ),
        1
    );
    assert_eq!(
        env.count(
            Vendor::Jira,
            "POST",
            &format!("/rest/api/3/issue/{key}/transitions")
        ),
        1
    );
    let (ticket_status, ticket_comment) = env.vendors.with(|w| {
        let i = &w.jira_issues[&key];
        (i["status"].clone(), i["comments"][0]["body"].to_string())
    });
    assert_eq!(ticket_status, "Done");
    assert!(
        ticket_comment.contains("http check failing"),
        "{ticket_comment}"
    );

    // Diagnostics before and after; one restart, no rollback.
    assert_eq!(
        env.count(
            Vendor::Diagnostics,
            "GET",
            "/api/v1/hosts/web-01/diagnostics"
        ),
        3
    );
    let restarts = env.vendors.calls(
        Vendor::Diagnostics,
        "POST",
        "/api/v1/services/checkout-api/restart",
    );
    assert_eq!(restarts.len(), 1);
    assert_eq!(
        restarts[0].json["request_id"],
        format!("tocsin-case-{case_id}-restart")
    );
    assert_eq!(
        env.count(
            Vendor::Diagnostics,
            "POST",
            "/api/v1/deployments/checkout-api/rollback"
        ),
        0
    );

    let comments = env.comments(case_id);
    assert_eq!(comments.len(), 2, "{comments:#?}");
    assert_eq!(
        mentions(
            &comments,
            "was not acknowledged within 2s; escalated to level 2"
        ),
        1
    );
    let summary = &comments[1];
    for line in [
        format!("Ticket: {key}"),
        "acknowledged: not by the deadline".into(),
        "Service: checkout-api; diagnostics: http check failing".into(),
        "Restart job: succeeded".into(),
        "Rollback job: not run".into(),
        "Healthy after remediation: true".into(),
    ] {
        assert!(summary.contains(&line), "{line:?} not in {summary}");
    }
    env.only_runs_of("it-outage");
    env.audit_intact();
}

fn it_outage_acknowledged_on_a_healthy_host_neither_escalates_nor_restarts(db: TestDb) {
    let env = Env::new(db, "alertmanager");
    env.vendors.with(|w| w.pagerduty_acknowledges = true);
    env.ingest(&alertmanager_down());
    let id = env.triggered_run("it-outage", "alert.ingested");
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    // One gate, the acknowledgement, settled by PagerDuty's state; no approval was asked.
    let gates = run["approvals"].as_array().unwrap();
    assert_eq!(gates.len(), 1, "{gates:#?}");
    assert_eq!(gates[0]["kind"], "acknowledgement");
    assert_eq!(gates[0]["status"], "acknowledged");
    assert_eq!(
        gates[0]["outcome_reason"],
        "acknowledged in pagerduty.get_incident"
    );
    let ack = &step(&run, "acknowledge")["output"];
    assert_eq!(ack["acknowledged"], true, "{ack:#}");
    assert_eq!(ack["by"], "Jane Oncall");
    assert_eq!(ack["via"], "pagerduty.get_incident");
    assert_eq!(env.db.audit_with_action("approval.acknowledged").len(), 1);
    assert_steps(
        &run,
        &[
            ("open_ticket", "succeeded"),
            ("page", "succeeded"),
            ("diagnose", "succeeded"),
            ("ticket_diagnostics", "succeeded"),
            ("acknowledge", "succeeded"),
            ("escalate", "skipped"),
            ("escalation_comment", "skipped"),
            ("restart", "skipped"),
            ("settle_restart", "skipped"),
            ("restart_job", "skipped"),
            ("recheck", "skipped"),
            ("rollback", "skipped"),
            ("settle_rollback", "skipped"),
            ("rollback_job", "skipped"),
            ("final_check", "skipped"),
            ("summary", "succeeded"),
            ("ticket_transitions", "skipped"),
            ("close_ticket", "skipped"),
            ("ticket_left_open", "succeeded"),
            ("resolve_page", "skipped"),
        ],
    );
    let incident = step(&run, "page")["output"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(pd_updates(&env, &incident), (0, 0));
    assert_eq!(
        env.vendors
            .with(|w| w.incidents[&incident]["escalation_level"].clone()),
        1
    );
    let restarts_or_rollbacks = env
        .vendors
        .requests(Vendor::Diagnostics)
        .into_iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(restarts_or_rollbacks, 0);
    // Nothing was remediated, so the ticket stays open for on-call, with a comment.
    let key = step(&run, "open_ticket")["output"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        env.count(
            Vendor::Jira,
            "POST",
            &format!("/rest/api/3/issue/{key}/comment")
        ),
        2
    );
    assert_eq!(
        env.vendors.with(|w| w.jira_issues[&key]["status"].clone()),
        "To Do"
    );
    let comments = env.comments(run["case_id"].as_i64().unwrap());
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].contains("acknowledged: Jane Oncall"),
        "{}",
        comments[0]
    );
    env.audit_intact();
}

// ---------------------------------------------------------------------------------------
// A crash while a shipped playbook waits for approval, and again mid-run

fn a_killed_server_finishes_the_outage_playbook_with_every_effect_once(db: TestDb) {
    let mut env = Env::new(db, "alertmanager");
    env.vendors.with(|w| {
        w.unhealthy_hosts.insert("web-01".into());
        w.restart_heals = false;
    });
    env.ingest(&alertmanager_down());
    let id = env.triggered_run("it-outage", "alert.ingested");

    // 1. Killed while parked on the restart gate, after everything before it ended.
    env.gate(id, "restart");
    env.wait_for(id, "parked on the restart gate alone", |r| {
        r["status"] == "waiting"
            && [
                "open_ticket",
                "page",
                "diagnose",
                "ticket_diagnostics",
                "acknowledge",
                "escalate",
                "escalation_comment",
            ]
            .iter()
            .all(|s| terminal(&step(r, s)["status"]))
    });
    env.restart();
    let gate = env.gate(id, "restart");
    env.decide(&env.rex, &gate, "approve", None);

    // 2. Killed mid-run: the restart was sent and the run waits for it to settle.
    env.wait_for(id, "the settle wait", |r| {
        step(r, "settle_restart")["status"] == "waiting"
    });
    assert_eq!(
        env.count(
            Vendor::Diagnostics,
            "POST",
            "/api/v1/services/checkout-api/restart"
        ),
        1
    );
    env.restart();

    // The restart did not help: the rollback is asked for.
    let gate = env.gate(id, "rollback");
    assert!(gate["message"].as_str().unwrap().contains("checkout-api"));
    env.decide(&env.rae, &gate, "approve", None);
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_steps(
        &run,
        &[
            ("open_ticket", "succeeded"),
            ("page", "succeeded"),
            ("diagnose", "succeeded"),
            ("ticket_diagnostics", "succeeded"),
            ("acknowledge", "succeeded"),
            ("escalate", "succeeded"),
            ("escalation_comment", "succeeded"),
            ("restart", "succeeded"),
            ("settle_restart", "succeeded"),
            ("restart_job", "succeeded"),
            ("recheck", "succeeded"),
            ("rollback", "succeeded"),
            ("settle_rollback", "succeeded"),
            ("rollback_job", "succeeded"),
            ("final_check", "succeeded"),
            ("summary", "succeeded"),
            ("ticket_transitions", "succeeded"),
            ("close_ticket", "succeeded"),
            ("ticket_left_open", "skipped"),
            ("resolve_page", "succeeded"),
        ],
    );
    for s in ["open_ticket", "page", "restart", "rollback", "close_ticket"] {
        assert_eq!(step(&run, s)["attempts"], 1, "{s} ran more than once");
    }
    let case_id = run["case_id"].as_i64().unwrap();

    // Every side effect the fakes count, exactly once.
    assert_eq!(env.count(Vendor::PagerDuty, "POST", "/incidents"), 1);
    let incident = step(&run, "page")["output"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(pd_updates(&env, &incident), (1, 1));
    assert_eq!(env.count(Vendor::Jira, "POST", "/rest/api/3/issue"), 1);
    let key = step(&run, "open_ticket")["output"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        env.count(
            Vendor::Jira,
            "POST",
            &format!("/rest/api/3/issue/{key}/comment")
        ),
        1
    );
    assert_eq!(
        env.count(
            Vendor::Jira,
            "POST",
            &format!("/rest/api/3/issue/{key}/transitions")
        ),
        1
    );
    assert_eq!(
        env.count(
            Vendor::Diagnostics,
            "POST",
            "/api/v1/services/checkout-api/restart"
        ),
        1
    );
    assert_eq!(
        env.count(
            Vendor::Diagnostics,
            "POST",
            "/api/v1/deployments/checkout-api/rollback"
        ),
        1
    );
    assert_eq!(env.vendors.with(|w| w.jobs.len()), 2);
    let ticket = env.vendors.with(|w| w.jira_issues[&key]["status"].clone());
    assert_eq!(ticket, "Done");
    let comments = env.comments(case_id);
    assert_eq!(comments.len(), 2, "{comments:#?}");
    assert_eq!(mentions(&comments, "was not acknowledged within 2s"), 1);
    assert_eq!(mentions(&comments, "Healthy after remediation: true"), 1);
    let summary = &comments[1];
    assert!(
        summary.contains("Restart job: succeeded") && summary.contains("Rollback job: succeeded"),
        "{summary}"
    );
    assert_eq!(env.db.audit_with_action("approval.decided").len(), 2);
    env.only_runs_of("it-outage");
    let all = env.get("/api/v1/runs")["runs"].as_array().unwrap().len();
    assert_eq!(all, 1, "the restarts started no second run");
    env.audit_intact();
}

fn it_outage_acknowledged_in_tocsin_does_not_escalate(db: TestDb) {
    // A long acknowledgement deadline: a person acknowledges in Tocsin, PagerDuty says
    // nothing.
    let inputs = INPUTS.replace(r#""ack_timeout": "2s""#, r#""ack_timeout": "1h""#);
    let env = Env::with_inputs(db, "alertmanager", &inputs);
    env.vendors.with(|w| w.pagerduty_acknowledges = false);
    env.ingest(&alertmanager_down());
    let id = env.triggered_run("it-outage", "alert.ingested");
    let gate = env.gate(id, "acknowledge");
    assert_eq!(gate["kind"], "acknowledgement");
    assert!(
        gate["message"].as_str().unwrap().contains("within 1h"),
        "{gate:#}"
    );
    // It is in an analyst's inbox too (analysts and above acknowledge); a viewer cannot.
    let gid = gate["id"].as_i64().unwrap();
    let (status, body) = env.post(
        &env.vic,
        &format!("/api/v1/approvals/{gid}/decision"),
        json!({ "decision": "acknowledge" }),
    );
    assert_eq!(status, 403, "{body}");
    // An acknowledgement cannot be rejected.
    let (status, body) = env.post(
        &env.rex,
        &format!("/api/v1/approvals/{gid}/decision"),
        json!({ "decision": "reject", "comment": "no" }),
    );
    assert_eq!(status, 403, "{body}");
    let gate = env.decide(&env.rex, &gate, "acknowledge", None);
    assert_eq!(gate["status"], "acknowledged");
    assert_eq!(gate["decisions"][0]["decision"], "acknowledge");
    let run = env.finished(id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let ack = &step(&run, "acknowledge")["output"];
    assert_eq!(ack["acknowledged"], true, "{ack:#}");
    assert_eq!(ack["by"], "rex");
    assert_eq!(ack["via"], "api");
    assert_eq!(step(&run, "escalate")["status"], "skipped");
    assert_eq!(step(&run, "escalation_comment")["status"], "skipped");
    let incident = step(&run, "page")["output"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(pd_updates(&env, &incident).0, 0, "never escalated");
    let comments = env.comments(run["case_id"].as_i64().unwrap());
    assert!(
        comments.iter().any(|c| c.contains("acknowledged: rex")),
        "{comments:#?}"
    );
    let decided = env.db.audit_with_action("approval.decided");
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["details"]["decision"], "acknowledge");
    assert_eq!(decided[0]["details"]["kind"], "acknowledgement");
    env.audit_intact();
}

both_backends!(
    it_outage_acknowledged_in_tocsin_does_not_escalate,
    phishing_triage_quarantines_and_blocks_after_approval,
    phishing_triage_of_a_benign_message_opens_no_gate,
    edr_malware_contains_the_host_after_two_approvals,
    brute_force_blocks_revokes_and_disables_after_approval,
    a_rejected_gate_keeps_its_containment_from_the_vendor,
    it_outage_pages_escalates_restarts_and_closes_the_ticket,
    it_outage_acknowledged_on_a_healthy_host_neither_escalates_nor_restarts,
    a_killed_server_finishes_the_outage_playbook_with_every_effect_once,
);
