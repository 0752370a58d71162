//! Every action of every shipped integration, invoked through `Executor::invoke` against a
//! local fake of the vendor's API (`common::vendors`): the outputs it maps, the
//! authentication the vendor checks, and the request the vendor received. Plus retries,
//! OAuth token refresh, body-level failures (Slack), missing inputs and settings, and
//! secrets kept out of results and errors.

mod common;

use common::vendors::{creds, Vendor, Vendors};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use tocsin::integrations::definition::Integration;
use tocsin::integrations::executor::{CallError, CallResult, Executor, ExecutorConfig};
use tocsin::integrations::secrets::Secrets;
use tocsin::playbooks::library;
use tocsin::playbooks::validate::Policy;

/// Every action each test below exercises; `every_shipped_action_is_tested` keeps this
/// in step with `integrations/*.yaml`.
const TESTED: &[(&str, &[&str])] = &[
    (
        "virustotal",
        &[
            "file_report",
            "submit_url",
            "get_analysis",
            "url_report",
            "url_report_by_id",
            "domain_report",
            "ip_report",
        ],
    ),
    ("abuseipdb", &["check_ip", "report_ip"]),
    ("urlscan", &["submit_scan", "get_result"]),
    (
        "crowdstrike",
        &[
            "find_device",
            "device_details",
            "contain_host",
            "lift_containment",
            "hash_device_count",
            "intel_indicator",
        ],
    ),
    (
        "msgraph",
        &[
            "find_message",
            "soft_delete_message",
            "revoke_sessions",
            "disable_user",
            "enable_user",
            "get_user",
        ],
    ),
    (
        "firewall",
        &[
            "block_ip",
            "unblock_ip",
            "block_email_sender",
            "unblock_email_sender",
            "lookup",
        ],
    ),
    ("slack", &["post_message", "reply_in_thread"]),
    (
        "jira",
        &[
            "create_issue",
            "add_comment",
            "list_transitions",
            "transition_issue",
        ],
    ),
    (
        "pagerduty",
        &[
            "create_incident",
            "get_incident",
            "escalate_incident",
            "acknowledge_incident",
            "resolve_incident",
            "add_note",
        ],
    ),
    (
        "pagerduty_events",
        &["trigger_alert", "acknowledge_alert", "resolve_alert"],
    ),
    (
        "diagnostics",
        &[
            "host_diagnostics",
            "restart_service",
            "rollback_deployment",
            "job_status",
        ],
    ),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn shipped() -> BTreeMap<String, Integration> {
    match library::load(
        &root().join("playbooks"),
        &root().join("integrations"),
        Policy::default(),
    ) {
        Ok(lib) => lib.integrations,
        Err(p) => panic!("shipped content does not load: {p:?}"),
    }
}

fn with(v: Value) -> Map<String, Value> {
    v.as_object().expect("an object of inputs").clone()
}

async fn ok(ex: &Executor, integration: &str, action: &str, inputs: Value) -> CallResult {
    ex.invoke(integration, action, &with(inputs), None)
        .await
        .unwrap_or_else(|e| panic!("{integration}.{action}: {e}"))
}

async fn fails(ex: &Executor, integration: &str, action: &str, inputs: Value) -> CallError {
    match ex.invoke(integration, action, &with(inputs), None).await {
        Ok(r) => panic!("{integration}.{action} succeeded: {r:?}"),
        Err(e) => e,
    }
}

/// An executor whose environment differs from the fakes' in `changes` (`None` removes).
fn executor_with(v: &Vendors, changes: &[(&str, Option<&str>)]) -> Executor {
    let mut env = v.env_map();
    for (k, val) in changes {
        match val {
            Some(val) => env.insert(k.to_string(), val.to_string()),
            None => env.remove(*k),
        };
    }
    let secrets = Secrets::from_sources(env.clone(), None).unwrap();
    let config = ExecutorConfig {
        backoff_base: std::time::Duration::from_millis(10),
        backoff_cap: std::time::Duration::from_millis(50),
        ..ExecutorConfig::default()
    };
    Executor::with_env(shipped(), secrets, &env, config).unwrap()
}

fn b64url(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn sha256(s: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

#[test]
fn every_shipped_action_is_tested() {
    let tested: BTreeMap<&str, Vec<&str>> = TESTED
        .iter()
        .map(|(i, actions)| {
            let mut a = actions.to_vec();
            a.sort();
            (*i, a)
        })
        .collect();
    let shipped: BTreeMap<String, Vec<String>> = shipped()
        .into_iter()
        .map(|(id, i)| (id, i.actions.keys().cloned().collect()))
        .collect();
    let shipped: BTreeMap<&str, Vec<&str>> = shipped
        .iter()
        .map(|(id, a)| (id.as_str(), a.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        tested, shipped,
        "tests/integrations.rs TESTED vs integrations/*.yaml"
    );
    let fakes: Vec<&str> = Vendor::ALL.iter().map(|v| v.id()).collect();
    assert_eq!(
        fakes.len(),
        shipped.len(),
        "one fake vendor per shipped integration"
    );
    for id in shipped.keys() {
        assert!(fakes.contains(id), "no fake vendor for {id}");
    }
}

#[tokio::test]
async fn virustotal_lookups_and_url_analysis() {
    let v = Vendors::start();
    let bad_hash = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
    let clean_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let bad_url = "http://login-micros0ft.example/reset?u=alice@contoso.com";
    let new_url = "https://unknown.example/a b";
    v.with(|w| {
        w.malicious_hashes.insert(bad_hash.into());
        w.clean_hashes.insert(clean_hash.into());
        w.malicious_urls.insert(bad_url.into());
        w.malicious_domains.insert("login-micros0ft.example".into());
        w.ip_scores.insert("203.0.113.9".into(), 90);
    });
    let ex = v.executor(shipped());

    let r = ok(&ex, "virustotal", "file_report", json!({"hash": bad_hash})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.output["malicious"], 45);
    assert_eq!(r.output["sha256"], bad_hash);
    assert_eq!(r.output["threat_label"], "trojan.emotet/heodo");
    assert_eq!(r.output["error"], Value::Null);
    let sent = v.last(Vendor::VirusTotal);
    assert_eq!(sent.path, format!("/api/v3/files/{bad_hash}"));
    assert_eq!(sent.header("x-apikey"), Some(creds::VIRUSTOTAL_API_KEY));

    let r = ok(
        &ex,
        "virustotal",
        "file_report",
        json!({"hash": clean_hash}),
    )
    .await;
    assert_eq!(r.output["malicious"], 0);
    // Never seen: 404 is a result with empty outputs.
    let r = ok(
        &ex,
        "virustotal",
        "file_report",
        json!({"hash": "00".repeat(32)}),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.output["error"], "NotFoundError");
    assert_eq!(r.output["malicious"], Value::Null);

    // The URL itself, as its unpadded base64url identifier.
    let r = ok(&ex, "virustotal", "url_report", json!({"url": bad_url})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.output["malicious"], 45);
    assert_eq!(r.output["url"], bad_url);
    assert_eq!(
        v.last(Vendor::VirusTotal).path,
        format!("/api/v3/urls/{}", b64url(bad_url))
    );
    let r = ok(&ex, "virustotal", "url_report", json!({"url": new_url})).await;
    assert_eq!(
        (r.status, r.output["error"].clone()),
        (404, json!("NotFoundError"))
    );

    // Unknown URL: submit (a form), read the analysis, then the report by its id.
    let r = ok(&ex, "virustotal", "submit_url", json!({"url": new_url})).await;
    let analysis = r.output["analysis_id"].as_str().unwrap().to_string();
    assert!(analysis.starts_with("u-"), "{analysis}");
    let sent = v.last(Vendor::VirusTotal);
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/api/v3/urls")
    );
    assert_eq!(
        sent.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(sent.json, json!({"url": new_url}));
    let r = ok(
        &ex,
        "virustotal",
        "get_analysis",
        json!({"analysis_id": analysis}),
    )
    .await;
    assert_eq!(r.output["status"], "completed");
    assert_eq!(r.output["url"], new_url);
    assert_eq!(r.output["url_id"], sha256(new_url));
    assert_eq!(r.output["malicious"], 0);
    let r = ok(
        &ex,
        "virustotal",
        "url_report_by_id",
        json!({"url_id": sha256(new_url)}),
    )
    .await;
    assert_eq!((r.status, r.output["url"].clone()), (200, json!(new_url)));

    let r = ok(
        &ex,
        "virustotal",
        "domain_report",
        json!({"domain": "login-micros0ft.example"}),
    )
    .await;
    assert_eq!(r.output["malicious"], 45);
    assert_eq!(r.output["registrar"], "NameCheap, Inc.");
    assert_eq!(
        v.last(Vendor::VirusTotal).path,
        "/api/v3/domains/login-micros0ft.example"
    );
    let r = ok(&ex, "virustotal", "ip_report", json!({"ip": "203.0.113.9"})).await;
    assert_eq!(r.output["malicious"], 45);
    assert_eq!(r.output["as_owner"], "Example Hosting B.V.");
    assert_eq!(
        v.last(Vendor::VirusTotal).path,
        "/api/v3/ip_addresses/203.0.113.9"
    );
    assert_eq!(v.count(Vendor::VirusTotal, "POST", "/api/v3/urls"), 1);
}

#[tokio::test]
async fn abuseipdb_check_and_report() {
    let v = Vendors::start();
    v.with(|w| w.ip_scores.insert("198.51.100.23".into(), 100));
    let ex = v.executor(shipped());
    let r = ok(&ex, "abuseipdb", "check_ip", json!({"ip": "198.51.100.23"})).await;
    assert_eq!(r.output["score"], 100);
    assert_eq!(r.output["country"], "NL");
    assert_eq!(r.output["is_tor"], false);
    assert_eq!(r.output["total_reports"], 120);
    let sent = v.last(Vendor::AbuseIpdb);
    assert_eq!(sent.path, "/api/v2/check");
    assert_eq!(sent.query("ipAddress"), Some("198.51.100.23"));
    assert_eq!(sent.query("maxAgeInDays"), Some("90"));
    assert_eq!(sent.header("key"), Some(creds::ABUSEIPDB_API_KEY));
    assert_eq!(sent.header("accept"), Some("application/json"));

    let r = ok(
        &ex,
        "abuseipdb",
        "report_ip",
        json!({"ip": "198.51.100.23", "categories": "18,22", "comment": "SSH brute force"}),
    )
    .await;
    assert_eq!(r.output["score"], 100);
    let sent = v.last(Vendor::AbuseIpdb);
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/api/v2/report")
    );
    assert_eq!(
        sent.json,
        json!({"ip": "198.51.100.23", "categories": "18,22", "comment": "SSH brute force"})
    );
    assert_eq!(v.with(|w| w.abuse_reports.len()), 1);

    // The vendor refuses a malformed address with 422: a failure, not retried.
    let err = fails(&ex, "abuseipdb", "check_ip", json!({"ip": "not-an-ip"})).await;
    assert!(
        matches!(&err, CallError::Http { status: 422, attempts: 1, body_excerpt } if body_excerpt.contains("valid IPv4")),
        "{err:?}"
    );
}

#[tokio::test]
async fn urlscan_submit_then_result_after_pending() {
    let v = Vendors::start();
    let url = "http://login-micros0ft.example/reset";
    v.with(|w| {
        w.malicious_urls.insert(url.into());
        w.urlscan_pending_polls = 1;
    });
    let ex = v.executor(shipped());
    let r = ok(
        &ex,
        "urlscan",
        "submit_scan",
        json!({"url": url, "visibility": "private"}),
    )
    .await;
    let uuid = r.output["uuid"].as_str().unwrap().to_string();
    assert_eq!(
        r.output["api_url"],
        format!("https://urlscan.io/api/v1/result/{uuid}/")
    );
    let sent = v.last(Vendor::Urlscan);
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/api/v1/scan/")
    );
    assert_eq!(sent.header("api-key"), Some(creds::URLSCAN_API_KEY));
    assert_eq!(
        sent.json,
        json!({"url": url, "visibility": "private", "tags": ["tocsin"]})
    );

    // Still scanning: urlscan.io answers 404, which is a failure (the playbook retries).
    let err = fails(&ex, "urlscan", "get_result", json!({"uuid": uuid})).await;
    assert!(
        matches!(err, CallError::Http { status: 404, .. }),
        "{err:?}"
    );
    let r = ok(&ex, "urlscan", "get_result", json!({"uuid": uuid})).await;
    assert_eq!(r.output["malicious"], true);
    assert_eq!(r.output["score"], 100);
    assert_eq!(r.output["domain"], "login-micros0ft.example");
    assert_eq!(r.output["brands"], json!(["Microsoft"]));
    assert_eq!(
        v.count(Vendor::Urlscan, "GET", &format!("/api/v1/result/{uuid}/")),
        2
    );
}

#[tokio::test]
async fn crowdstrike_find_contain_lift_and_intel() {
    let v = Vendors::start();
    let hash = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
    v.with(|w| {
        w.malicious_hashes.insert(hash.into());
        w.hash_device_counts.insert(hash.into(), 3);
    });
    let device = v.with(|w| w.hosts["ws-0042"].clone());
    let ex = v.executor(shipped());

    let r = ok(
        &ex,
        "crowdstrike",
        "find_device",
        json!({"hostname": "ws-0042"}),
    )
    .await;
    assert_eq!(r.output["device_id"], device);
    assert_eq!(r.output["device_ids"], json!([device]));
    assert_eq!(r.output["total"], 1);
    let sent = v.last(Vendor::CrowdStrike);
    assert_eq!(sent.path, "/devices/queries/devices/v1");
    assert_eq!(sent.query("filter"), Some("hostname:'ws-0042'"));
    assert_eq!(sent.query("sort"), Some("last_seen.desc"));
    // The token came from the relative token URL under the base URL, as a form.
    let token_calls = v.calls(Vendor::CrowdStrike, "POST", "/oauth2/token");
    assert_eq!(token_calls.len(), 1);
    assert_eq!(
        token_calls[0].json["client_id"],
        creds::CROWDSTRIKE_CLIENT_ID
    );
    assert!(sent
        .header("authorization")
        .unwrap()
        .starts_with("Bearer crowdstrike-token-1"));

    let r = ok(
        &ex,
        "crowdstrike",
        "device_details",
        json!({"device_id": device}),
    )
    .await;
    assert_eq!(r.output["hostname"], "ws-0042");
    assert_eq!(r.output["status"], "normal");

    let r = ok(
        &ex,
        "crowdstrike",
        "contain_host",
        json!({"device_id": device}),
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.output["device_id"], device);
    let sent = v.last(Vendor::CrowdStrike);
    assert_eq!(sent.path, "/devices/entities/devices-actions/v2");
    assert_eq!(sent.query("action_name"), Some("contain"));
    assert_eq!(sent.json, json!({"ids": [device]}));
    assert!(v.with(|w| w.contained.contains(&device)));
    let r = ok(
        &ex,
        "crowdstrike",
        "device_details",
        json!({"device_id": device}),
    )
    .await;
    assert_eq!(r.output["status"], "contained");
    ok(
        &ex,
        "crowdstrike",
        "lift_containment",
        json!({"device_id": device}),
    )
    .await;
    assert_eq!(
        v.last(Vendor::CrowdStrike).query("action_name"),
        Some("lift_containment")
    );
    assert!(!v.with(|w| w.contained.contains(&device)));

    let r = ok(
        &ex,
        "crowdstrike",
        "hash_device_count",
        json!({"type": "sha256", "hash": hash}),
    )
    .await;
    assert_eq!(r.output["device_count"], 3);
    let sent = v.last(Vendor::CrowdStrike);
    assert_eq!(sent.query("type"), Some("sha256"));
    assert_eq!(sent.query("value"), Some(hash));
    // Seen nowhere: Falcon's 404 is accepted as "no count".
    let r = ok(
        &ex,
        "crowdstrike",
        "hash_device_count",
        json!({"type": "sha256", "hash": "ab".repeat(32)}),
    )
    .await;
    assert_eq!(
        (r.status, r.output["device_count"].clone()),
        (404, Value::Null)
    );

    let r = ok(&ex, "crowdstrike", "intel_indicator", json!({"hash": hash})).await;
    assert_eq!(r.output["malicious_confidence"], "high");
    assert_eq!(r.output["malware_families"], json!(["Emotet"]));
    assert_eq!(
        r.output["labels"],
        json!(["MaliciousConfidence/High", "Malware/Emotet"])
    );
    assert_eq!(
        v.last(Vendor::CrowdStrike).query("filter"),
        Some(format!("indicator:'{hash}'").as_str())
    );
    // One token served every call.
    assert_eq!(v.count(Vendor::CrowdStrike, "POST", "/oauth2/token"), 1);
}

#[tokio::test]
async fn msgraph_find_and_soft_delete_a_message_and_contain_a_user() {
    let v = Vendors::start();
    let imid = "<CAF=x+y/z@mail.evil.example>";
    let id = v.with(|w| {
        w.deliver(
            "alice@contoso.com",
            imid,
            "Reset your password",
            "it@evil.example",
        )
    });
    let ex = v.executor(shipped());

    let r = ok(
        &ex,
        "msgraph",
        "find_message",
        json!({"user": "alice@contoso.com", "internet_message_id": imid}),
    )
    .await;
    assert_eq!(r.output["message_id"], id);
    assert_eq!(r.output["from"], "it@evil.example");
    assert_eq!(r.output["matches"], json!([id]));
    let sent = v.last(Vendor::MsGraph);
    assert_eq!(sent.path, "/v1.0/users/alice@contoso.com/messages");
    assert_eq!(
        sent.query("$filter"),
        Some(format!("internetMessageId eq '{imid}'").as_str())
    );
    // The token came from the tenant's endpoint (the `tenant` setting).
    let token = v.calls(
        Vendor::MsGraph,
        "POST",
        &format!("/{}/oauth2/v2.0/token", creds::MSGRAPH_TENANT),
    );
    assert_eq!(token.len(), 1);
    assert_eq!(
        token[0].json["scope"],
        "https://graph.microsoft.com/.default"
    );
    assert_eq!(token[0].json["grant_type"], "client_credentials");

    let r = ok(
        &ex,
        "msgraph",
        "soft_delete_message",
        json!({"user": "alice@contoso.com", "message_id": id}),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.output["folder_id"], "recoverableitemsdeletions");
    assert_ne!(r.output["new_message_id"], json!(id));
    let sent = v.last(Vendor::MsGraph);
    assert_eq!(
        sent.path,
        format!("/v1.0/users/alice@contoso.com/messages/{id}/move")
    );
    assert_eq!(
        sent.json,
        json!({"destinationId": "recoverableitemsdeletions"})
    );
    // The old id is gone: a repeat is a 404, which is why the action is not idempotent.
    let err = fails(
        &ex,
        "msgraph",
        "soft_delete_message",
        json!({"user": "alice@contoso.com", "message_id": id}),
    )
    .await;
    assert!(
        matches!(err, CallError::Http { status: 404, .. }),
        "{err:?}"
    );

    let r = ok(
        &ex,
        "msgraph",
        "get_user",
        json!({"user": "bob@contoso.com"}),
    )
    .await;
    assert_eq!(r.output["upn"], "bob@contoso.com");
    assert_eq!(r.output["enabled"], true);
    let user_id = r.output["id"].as_str().unwrap().to_string();
    assert!(v
        .last(Vendor::MsGraph)
        .query("$select")
        .unwrap()
        .contains("accountEnabled"));
    let r = ok(&ex, "msgraph", "revoke_sessions", json!({"user": user_id})).await;
    assert_eq!(r.output["revoked"], true);
    assert_eq!(
        v.last(Vendor::MsGraph).path,
        format!("/v1.0/users/{user_id}/revokeSignInSessions")
    );
    let r = ok(&ex, "msgraph", "disable_user", json!({"user": user_id})).await;
    assert_eq!(r.status, 204);
    let sent = v.last(Vendor::MsGraph);
    assert_eq!(
        (sent.method.as_str(), sent.json.clone()),
        ("PATCH", json!({"accountEnabled": false}))
    );
    assert!(!v.with(|w| w.users["bob@contoso.com"].enabled));
    ok(&ex, "msgraph", "enable_user", json!({"user": user_id})).await;
    let state = v.with(|w| w.users["bob@contoso.com"].clone());
    assert!(state.enabled);
    assert_eq!(state.revocations, 1);
}

#[tokio::test]
async fn firewall_block_lookup_unblock() {
    let v = Vendors::start();
    let ex = v.executor(shipped());
    let block = json!({"ip": "198.51.100.23", "reason": "brute force", "ttl": 86400,
                       "reference": "tocsin-case-7"});
    let r = ok(&ex, "firewall", "block_ip", block.clone()).await;
    assert_eq!(r.status, 201);
    assert!(r.output["id"].as_str().unwrap().starts_with("bl-"));
    let sent = v.last(Vendor::Firewall);
    assert_eq!(sent.path, "/api/v1/blocklist");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {}", creds::BLOCKLIST_API_TOKEN).as_str())
    );
    assert_eq!(
        sent.json,
        json!({"value": "198.51.100.23", "type": "ip", "reason": "brute force", "ttl": 86400,
               "reference": "tocsin-case-7"})
    );
    // A repeat is harmless: the same entry, 200.
    let again = ok(&ex, "firewall", "block_ip", block).await;
    assert_eq!(
        (again.status, again.output["id"].clone()),
        (200, r.output["id"].clone())
    );
    assert_eq!(v.with(|w| w.blocklist.len()), 1);

    let r = ok(
        &ex,
        "firewall",
        "lookup",
        json!({"type": "ip", "value": "198.51.100.23"}),
    )
    .await;
    assert_eq!(r.output["listed_value"], "198.51.100.23");
    assert_eq!(r.output["reason"], "brute force");
    ok(
        &ex,
        "firewall",
        "unblock_ip",
        json!({"ip": "198.51.100.23"}),
    )
    .await;
    assert_eq!(
        v.last(Vendor::Firewall).path,
        "/api/v1/blocklist/ip/198.51.100.23"
    );
    let r = ok(
        &ex,
        "firewall",
        "lookup",
        json!({"type": "ip", "value": "198.51.100.23"}),
    )
    .await;
    assert_eq!(
        (r.status, r.output["listed_value"].clone()),
        (404, Value::Null)
    );
    // Removing what is not listed is fine too (404 accepted).
    let r = ok(
        &ex,
        "firewall",
        "unblock_ip",
        json!({"ip": "198.51.100.23"}),
    )
    .await;
    assert_eq!(r.status, 404);

    // Senders: the address goes into the path as one encoded segment.
    let sender = "ceo+urgent@evil.example";
    ok(
        &ex,
        "firewall",
        "block_email_sender",
        json!({"sender": sender, "type": "email", "reason": "phishing", "ttl": 0,
               "reference": "tocsin-case-8"}),
    )
    .await;
    assert!(v.with(|w| w.blocklist.contains_key(&("email".into(), sender.into()))));
    ok(
        &ex,
        "firewall",
        "unblock_email_sender",
        json!({"sender": sender, "type": "email"}),
    )
    .await;
    assert_eq!(
        v.last(Vendor::Firewall).path,
        "/api/v1/blocklist/email/ceo%2Burgent@evil.example"
    );
    assert!(v.with(|w| w.blocklist.is_empty()));
    // A crafted value cannot walk out of its segment.
    let r = ok(
        &ex,
        "firewall",
        "lookup",
        json!({"type": "ip", "value": "../../admin"}),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        v.last(Vendor::Firewall).path,
        "/api/v1/blocklist/ip/..%2F..%2Fadmin"
    );
}

#[tokio::test]
async fn slack_posts_and_reports_failures_in_the_body() {
    let v = Vendors::start();
    let ex = v.executor(shipped());
    let r = ok(
        &ex,
        "slack",
        "post_message",
        json!({"channel": "soc-alerts", "text": "*Case 7*: phishing"}),
    )
    .await;
    assert_eq!(r.output["channel"], "C0123456789");
    let ts = r.output["ts"].as_str().unwrap().to_string();
    let sent = v.last(Vendor::Slack);
    assert_eq!(sent.path, "/api/chat.postMessage");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {}", creds::SLACK_BOT_TOKEN).as_str())
    );
    assert_eq!(
        sent.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        sent.json,
        json!({"channel": "soc-alerts", "text": "*Case 7*: phishing", "unfurl_links": false})
    );
    let r = ok(
        &ex,
        "slack",
        "reply_in_thread",
        json!({"channel": "C0123456789", "thread_ts": ts, "text": "contained"}),
    )
    .await;
    assert_eq!(r.output["channel"], "C0123456789");
    assert_eq!(v.last(Vendor::Slack).json["thread_ts"], json!(ts));
    assert_eq!(v.with(|w| w.slack_messages.len()), 2);

    // HTTP 200 with ok:false is now a failed call naming Slack's error, not retried.
    let err = fails(
        &ex,
        "slack",
        "post_message",
        json!({"channel": "no-such-channel", "text": "x"}),
    )
    .await;
    match &err {
        CallError::Rejected {
            status,
            message,
            attempts,
        } => assert_eq!(
            (*status, message.as_str(), *attempts),
            (200, "channel_not_found", 1)
        ),
        other => panic!("{other:?}"),
    }
    assert!(!err.is_transient());
    assert_eq!(v.count(Vendor::Slack, "POST", "/api/chat.postMessage"), 3);
}

#[tokio::test]
async fn jira_ticket_lifecycle() {
    let v = Vendors::start();
    let ex = v.executor(shipped());
    let r = ok(
        &ex,
        "jira",
        "create_issue",
        json!({"project": "OPS", "issue_type": "Incident", "summary": "[Outage] checkout",
               "description": "web-01 down", "labels": ["tocsin", "outage"]}),
    )
    .await;
    assert_eq!(r.status, 201);
    let key = r.output["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("OPS-"), "{key}");
    let sent = v.last(Vendor::Jira);
    assert_eq!(sent.path, "/rest/api/3/issue");
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        creds::JIRA_EMAIL,
        creds::JIRA_API_TOKEN
    ));
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(
        sent.json["fields"],
        json!({"project": {"key": "OPS"}, "issuetype": {"name": "Incident"},
               "summary": "[Outage] checkout", "labels": ["tocsin", "outage"],
               "description": {"type": "doc", "version": 1, "content": [
                   {"type": "paragraph", "content": [{"type": "text", "text": "web-01 down"}]}]}})
    );

    let r = ok(
        &ex,
        "jira",
        "add_comment",
        json!({"issue": key, "text": "restarted"}),
    )
    .await;
    assert!(r.output["id"].is_string());
    assert_eq!(
        v.last(Vendor::Jira).path,
        format!("/rest/api/3/issue/{key}/comment")
    );
    assert_eq!(
        v.last(Vendor::Jira).json["body"]["content"][0]["content"][0]["text"],
        "restarted"
    );
    let r = ok(&ex, "jira", "list_transitions", json!({"issue": key})).await;
    assert_eq!(r.output["done_ids"], json!(["31"]));
    assert_eq!(r.output["names"], json!(["To Do", "In Progress", "Done"]));
    let r = ok(
        &ex,
        "jira",
        "transition_issue",
        json!({"issue": key, "transition_id": "31"}),
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        v.last(Vendor::Jira).json,
        json!({"transition": {"id": "31"}})
    );
    assert_eq!(v.with(|w| w.jira_issues[&key]["status"].clone()), "Done");
    assert_eq!(v.count(Vendor::Jira, "POST", "/rest/api/3/issue"), 1);

    let err = fails(
        &ex,
        "jira",
        "add_comment",
        json!({"issue": "OPS-999", "text": "x"}),
    )
    .await;
    assert!(
        matches!(err, CallError::Http { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn pagerduty_page_acknowledge_escalate_resolve() {
    let v = Vendors::start();
    let ex = v.executor(shipped());
    let from = "soc-bot@example.com";
    let create = json!({"from": from, "service_id": "PSERV01", "title": "checkout down",
                        "urgency": "high", "incident_key": "alertmanager-abc",
                        "details": "web-01: http check failing"});
    let r = ok(&ex, "pagerduty", "create_incident", create.clone()).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.output["status"], "triggered");
    let id = r.output["id"].as_str().unwrap().to_string();
    let sent = v.last(Vendor::PagerDuty);
    assert_eq!(sent.path, "/incidents");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Token token={}", creds::PAGERDUTY_API_KEY).as_str())
    );
    assert_eq!(sent.header("from"), Some(from));
    assert_eq!(
        sent.header("accept"),
        Some("application/vnd.pagerduty+json;version=2")
    );
    assert_eq!(
        sent.json,
        json!({"incident": {"type": "incident", "title": "checkout down",
               "service": {"id": "PSERV01", "type": "service_reference"}, "urgency": "high",
               "incident_key": "alertmanager-abc",
               "body": {"type": "incident_body", "details": "web-01: http check failing"}}})
    );
    // The same open incident key is refused: never paged twice.
    let err = fails(&ex, "pagerduty", "create_incident", create).await;
    assert!(
        matches!(err, CallError::Http { status: 400, .. }),
        "{err:?}"
    );
    assert_eq!(v.with(|w| w.incidents.len()), 1);

    // Nobody acknowledged yet.
    let r = ok(&ex, "pagerduty", "get_incident", json!({"incident_id": id})).await;
    assert_eq!(r.output["status"], "triggered");
    assert_eq!(r.output["acknowledged_by"], json!([]));
    let r = ok(
        &ex,
        "pagerduty",
        "escalate_incident",
        json!({"from": from, "incident_id": id, "level": 2}),
    )
    .await;
    assert_eq!(r.output["escalation_level"], 2);
    let sent = v.last(Vendor::PagerDuty);
    assert_eq!(
        (sent.method.as_str(), sent.path.clone()),
        ("PUT", format!("/incidents/{id}"))
    );
    assert_eq!(
        sent.json,
        json!({"incident": {"type": "incident_reference", "escalation_level": 2}})
    );
    // On-call acknowledges (scripted), seen on the next read.
    v.with(|w| w.pagerduty_acknowledges = true);
    let r = ok(&ex, "pagerduty", "get_incident", json!({"incident_id": id})).await;
    assert_eq!(r.output["status"], "acknowledged");
    assert_eq!(r.output["acknowledged_by"], json!(["Jane Oncall"]));
    assert_eq!(r.output["assignees"], json!(["Jane Oncall"]));

    let r = ok(
        &ex,
        "pagerduty",
        "acknowledge_incident",
        json!({"from": from, "incident_id": id}),
    )
    .await;
    assert_eq!(r.output["status"], "acknowledged");
    let r = ok(
        &ex,
        "pagerduty",
        "add_note",
        json!({"from": from, "incident_id": id, "content": "restart requested"}),
    )
    .await;
    assert!(r.output["id"].as_str().unwrap().starts_with("PNOTE"));
    assert_eq!(
        v.last(Vendor::PagerDuty).json,
        json!({"note": {"content": "restart requested"}})
    );
    let r = ok(
        &ex,
        "pagerduty",
        "resolve_incident",
        json!({"from": from, "incident_id": id, "resolution": "healthy again"}),
    )
    .await;
    assert_eq!(r.output["status"], "resolved");
    assert_eq!(
        v.last(Vendor::PagerDuty).json,
        json!({"incident": {"type": "incident_reference", "status": "resolved",
                            "resolution": "healthy again"}})
    );
    assert_eq!(v.count(Vendor::PagerDuty, "POST", "/incidents"), 2);
}

#[tokio::test]
async fn diagnostics_restart_rollback_and_jobs() {
    let v = Vendors::start();
    v.with(|w| {
        w.unhealthy_hosts.insert("web-01".into());
        w.restart_heals = false;
    });
    let ex = v.executor(shipped());
    let r = ok(
        &ex,
        "diagnostics",
        "host_diagnostics",
        json!({"host": "web-01", "alert": "HttpDown"}),
    )
    .await;
    assert_eq!(r.output["healthy"], false);
    assert_eq!(r.output["service"], "checkout-api");
    assert_eq!(r.output["failed_checks"], json!(["http"]));
    let sent = v.last(Vendor::Diagnostics);
    assert_eq!(sent.path, "/api/v1/hosts/web-01/diagnostics");
    assert_eq!(sent.query("alert"), Some("HttpDown"));
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {}", creds::OPS_AUTOMATION_TOKEN).as_str())
    );

    let restart = json!({"service": "checkout-api", "host": "web-01", "reason": "case 9",
                         "request_id": "tocsin-case-9-restart"});
    let r = ok(&ex, "diagnostics", "restart_service", restart.clone()).await;
    assert_eq!(r.status, 202);
    let job = r.output["job_id"].as_str().unwrap().to_string();
    assert_eq!(
        v.last(Vendor::Diagnostics).json,
        json!({"host": "web-01", "reason": "case 9", "request_id": "tocsin-case-9-restart"})
    );
    // The same request_id again: the earlier job, no second restart.
    let again = ok(&ex, "diagnostics", "restart_service", restart).await;
    assert_eq!(
        (again.status, again.output["job_id"].clone()),
        (200, json!(job))
    );
    assert_eq!(v.with(|w| w.jobs.len()), 1);
    let r = ok(&ex, "diagnostics", "job_status", json!({"job_id": job})).await;
    assert_eq!(r.output["status"], "succeeded");
    let r = ok(
        &ex,
        "diagnostics",
        "host_diagnostics",
        json!({"host": "web-01", "alert": "HttpDown"}),
    )
    .await;
    assert_eq!(r.output["healthy"], false, "the restart did not heal it");

    let r = ok(
        &ex,
        "diagnostics",
        "rollback_deployment",
        json!({"service": "checkout-api", "host": "web-01", "reason": "case 9",
               "request_id": "tocsin-case-9-rollback"}),
    )
    .await;
    assert_eq!(r.output["version"], "2026.11.24-1");
    assert_eq!(
        v.last(Vendor::Diagnostics).path,
        "/api/v1/deployments/checkout-api/rollback"
    );
    let r = ok(
        &ex,
        "diagnostics",
        "host_diagnostics",
        json!({"host": "web-01", "alert": "HttpDown"}),
    )
    .await;
    assert_eq!(r.output["healthy"], true);
}

#[tokio::test]
async fn pagerduty_events_carry_the_routing_key_in_the_body() {
    let v = Vendors::start();
    let ex = v.executor(shipped());
    let trigger = json!({"dedup_key": "tocsin-case-9", "summary": "checkout down",
                         "source": "web-01", "severity": "critical",
                         "details": {"case": 9, "alert": "HttpDown"}});
    let r = ok(&ex, "pagerduty_events", "trigger_alert", trigger.clone()).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.output["dedup_key"], "tocsin-case-9");
    assert_eq!(r.output["status"], "success");
    let sent = v.last(Vendor::PagerDutyEvents);
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v2/enqueue")
    );
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        sent.json,
        json!({"routing_key": creds::PAGERDUTY_ROUTING_KEY, "event_action": "trigger",
               "dedup_key": "tocsin-case-9",
               "payload": {"summary": "checkout down", "source": "web-01",
                           "severity": "critical",
                           "custom_details": {"case": 9, "alert": "HttpDown"}}})
    );
    // The key went to the vendor but never comes back in the result.
    assert!(!format!("{r:?}").contains(creds::PAGERDUTY_ROUTING_KEY));
    // A repeat adds to the same alert: one alert, two events.
    ok(&ex, "pagerduty_events", "trigger_alert", trigger).await;
    assert_eq!(v.with(|w| w.pd_alerts.len()), 1);
    assert_eq!(
        v.with(|w| w.pd_alerts["tocsin-case-9"]["events"].clone()),
        2
    );

    ok(
        &ex,
        "pagerduty_events",
        "acknowledge_alert",
        json!({"dedup_key": "tocsin-case-9"}),
    )
    .await;
    assert_eq!(
        v.with(|w| w.pd_alerts["tocsin-case-9"]["status"].clone()),
        "acknowledged"
    );
    ok(
        &ex,
        "pagerduty_events",
        "resolve_alert",
        json!({"dedup_key": "tocsin-case-9"}),
    )
    .await;
    assert_eq!(
        v.with(|w| w.pd_alerts["tocsin-case-9"]["status"].clone()),
        "resolved"
    );
    assert_eq!(
        v.last(Vendor::PagerDutyEvents).json,
        json!({"routing_key": creds::PAGERDUTY_ROUTING_KEY, "event_action": "resolve",
               "dedup_key": "tocsin-case-9"})
    );

    // An invalid event is the vendor's 400, quoting its errors.
    let err = fails(
        &ex,
        "pagerduty_events",
        "trigger_alert",
        json!({"dedup_key": "k", "summary": "s", "source": "h", "severity": "urgent", "details": null}),
    )
    .await;
    assert!(
        matches!(&err, CallError::Http { status: 400, body_excerpt, .. } if body_excerpt.contains("payload.severity")),
        "{err:?}"
    );
    // Without the secret nothing is sent.
    let ex = executor_with(&v, &[("TOCSIN_SECRET_PAGERDUTY_ROUTING_KEY", None)]);
    let before = v.requests(Vendor::PagerDutyEvents).len();
    let err = fails(
        &ex,
        "pagerduty_events",
        "resolve_alert",
        json!({"dedup_key": "k"}),
    )
    .await;
    assert!(
        matches!(&err, CallError::MissingSecret { name } if name == "PAGERDUTY_ROUTING_KEY"),
        "{err:?}"
    );
    assert_eq!(v.requests(Vendor::PagerDutyEvents).len(), before);
}

/// One harmless call per integration, for checks that apply to all of them.
fn sample_calls() -> Vec<(Vendor, &'static str, Value)> {
    vec![
        (Vendor::VirusTotal, "ip_report", json!({"ip": "192.0.2.1"})),
        (Vendor::AbuseIpdb, "check_ip", json!({"ip": "192.0.2.1"})),
        (
            Vendor::Urlscan,
            "submit_scan",
            json!({"url": "https://x.example/", "visibility": "private"}),
        ),
        (
            Vendor::CrowdStrike,
            "find_device",
            json!({"hostname": "ws-0042"}),
        ),
        (
            Vendor::MsGraph,
            "get_user",
            json!({"user": "alice@contoso.com"}),
        ),
        (
            Vendor::Firewall,
            "lookup",
            json!({"type": "ip", "value": "192.0.2.1"}),
        ),
        (
            Vendor::Slack,
            "post_message",
            json!({"channel": "soc-alerts", "text": "hello"}),
        ),
        (Vendor::Jira, "list_transitions", json!({"issue": "OPS-1"})),
        (
            Vendor::PagerDuty,
            "get_incident",
            json!({"incident_id": "Q0PD0001"}),
        ),
        (
            Vendor::PagerDutyEvents,
            "resolve_alert",
            json!({"dedup_key": "tocsin-case-1"}),
        ),
        (
            Vendor::Diagnostics,
            "host_diagnostics",
            json!({"host": "web-02", "alert": "x"}),
        ),
    ]
}

/// The secret names an integration authenticates with (in `auth`, or in its bodies).
fn auth_secrets(integration: &Integration) -> Vec<String> {
    let mut names: Vec<String> = integration
        .auth
        .secrets()
        .into_iter()
        .map(str::to_string)
        .collect();
    if integration.id == "pagerduty_events" {
        names.push("PAGERDUTY_ROUTING_KEY".into());
    }
    names
}

#[tokio::test]
async fn every_fake_refuses_wrong_credentials_like_the_vendor() {
    let v = Vendors::start();
    let integrations = shipped();
    for (vendor, action, inputs) in sample_calls() {
        let secrets = auth_secrets(&integrations[vendor.id()]);
        let env: Vec<(String, Option<&str>)> = secrets
            .iter()
            .map(|s| (format!("TOCSIN_SECRET_{s}"), Some("wrong-value-123")))
            .collect();
        let env: Vec<(&str, Option<&str>)> = env.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let ex = executor_with(&v, &env);
        let err = fails(&ex, vendor.id(), action, inputs).await;
        let refused = match &err {
            // The Events API refuses an unknown routing key as an invalid event.
            CallError::Http {
                status: 400,
                body_excerpt,
                ..
            } if vendor == Vendor::PagerDutyEvents => body_excerpt.contains("routing_key"),
            CallError::Http { status, .. } => *status == 401 || *status == 403,
            CallError::OAuth { status, .. } => *status == Some(401),
            CallError::Rejected { message, .. } => message == "invalid_auth",
            _ => false,
        };
        assert!(refused, "{}: {err:?}", vendor.id());
        let text = format!("{err} {err:?}");
        assert!(!text.contains("wrong-value-123"), "{}: {text}", vendor.id());
        // Refused credentials are not retried.
        assert!(!err.is_transient(), "{}: {err:?}", vendor.id());
    }
}

#[tokio::test]
async fn every_integration_works_with_the_fakes_environment() {
    // The same calls with the right credentials: each reaches its vendor once.
    let v = Vendors::start();
    let ex = v.executor(shipped());
    for (vendor, action, inputs) in sample_calls() {
        let result = ex.invoke(vendor.id(), action, &with(inputs), None).await;
        match (vendor, result) {
            // No such issue or incident in a fresh world: the vendor's 404.
            (Vendor::Jira | Vendor::PagerDuty, Err(CallError::Http { status: 404, .. })) => {}
            (_, Ok(_)) => {}
            (_, Err(e)) => panic!("{}.{action}: {e}", vendor.id()),
        }
        let api_calls = v
            .requests(vendor)
            .into_iter()
            .filter(|r| !r.path.contains("oauth2"))
            .count();
        assert_eq!(api_calls, 1, "{}", vendor.id());
    }
}

#[tokio::test]
async fn rate_limited_calls_wait_for_retry_after_then_succeed() {
    let v = Vendors::start();
    let ex = v.executor(shipped());
    v.fail_next(Vendor::AbuseIpdb, 1, 429, Some(1));
    let r = ok(&ex, "abuseipdb", "check_ip", json!({"ip": "192.0.2.7"})).await;
    assert_eq!((r.status, r.attempts), (200, 2));
    let calls = v.calls(Vendor::AbuseIpdb, "GET", "/api/v2/check");
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        vec![429, 200]
    );

    // 503 on a write that is not idempotent: sent once, not repeated.
    v.fail_next(Vendor::Jira, 1, 503, None);
    let err = fails(
        &ex,
        "jira",
        "create_issue",
        json!({"project": "OPS", "issue_type": "Task", "summary": "s", "description": "d",
               "labels": []}),
    )
    .await;
    assert!(
        matches!(
            err,
            CallError::Http {
                status: 503,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(v.count(Vendor::Jira, "POST", "/rest/api/3/issue"), 1);

    // The same write with an idempotency key may be repeated: the key is sent each time.
    v.fail_next(Vendor::AbuseIpdb, 2, 503, None);
    let r = ex
        .invoke(
            "abuseipdb",
            "report_ip",
            &with(json!({"ip": "192.0.2.7", "categories": "18", "comment": "c"})),
            Some("run-1-step-report"),
        )
        .await
        .unwrap();
    assert_eq!(r.attempts, 3);
    let reports = v.calls(Vendor::AbuseIpdb, "POST", "/api/v2/report");
    assert_eq!(reports.len(), 3);
    assert!(reports
        .iter()
        .all(|c| c.header("idempotency-key") == Some("run-1-step-report")));
    assert_eq!(
        v.with(|w| w.abuse_reports.len()),
        1,
        "one report reached the vendor"
    );
}

#[tokio::test]
async fn revoked_oauth_tokens_are_renewed_once() {
    let v = Vendors::start();
    let ex = v.executor(shipped());
    for vendor in [Vendor::CrowdStrike, Vendor::MsGraph] {
        let (action, inputs) = match vendor {
            Vendor::CrowdStrike => ("find_device", json!({"hostname": "ws-0042"})),
            _ => ("get_user", json!({"user": "alice@contoso.com"})),
        };
        ok(&ex, vendor.id(), action, inputs.clone()).await;
        v.revoke_token(vendor);
        let r = ok(&ex, vendor.id(), action, inputs).await;
        assert_eq!(r.attempts, 2, "{}", vendor.id());
        assert_eq!(v.with(|w| w.tokens_issued[&vendor]), 2, "{}", vendor.id());
        let statuses: Vec<u16> = v
            .requests(vendor)
            .iter()
            .filter(|r| !r.path.contains("oauth2"))
            .map(|r| r.status)
            .collect();
        assert_eq!(statuses, vec![200, 401, 200], "{}", vendor.id());
    }
}

#[tokio::test]
async fn secret_values_never_come_back_in_results_or_errors() {
    let v = Vendors::start();
    let ex = v.executor(shipped());
    // Slack echoes the posted text; a text that happens to contain the bot token.
    let r = ok(
        &ex,
        "slack",
        "post_message",
        json!({"channel": "soc-alerts", "text": format!("token {}", creds::SLACK_BOT_TOKEN)}),
    )
    .await;
    assert_eq!(r.body["message"]["text"], "token ****");
    assert!(!format!("{r:?}").contains(creds::SLACK_BOT_TOKEN));
    // The block list quotes a bad type back in its 400.
    let err = fails(
        &ex,
        "firewall",
        "block_email_sender",
        json!({"sender": "x@evil.example", "type": creds::BLOCKLIST_API_TOKEN, "reason": "r",
               "ttl": 0, "reference": "c"}),
    )
    .await;
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("bad type \\\"****\\\"") || text.contains("bad type \"****\""),
        "{text}"
    );
    assert!(!text.contains(creds::BLOCKLIST_API_TOKEN), "{text}");
    // OAuth tokens learned at run time are redacted too.
    ok(
        &ex,
        "msgraph",
        "get_user",
        json!({"user": "alice@contoso.com"}),
    )
    .await;
    let token = v.with(|w| w.tokens[&Vendor::MsGraph].clone());
    assert_eq!(ex.secrets().redact(&format!("t={token}")), "t=****");
}

#[tokio::test]
async fn missing_inputs_and_settings_fail_before_sending() {
    let v = Vendors::start();
    let ex = v.executor(shipped());
    let err = fails(
        &ex,
        "firewall",
        "block_ip",
        json!({"ip": "192.0.2.1", "reason": "r"}),
    )
    .await;
    match &err {
        CallError::MissingInput { name, .. } => assert_eq!(name, "ttl"),
        other => panic!("{other:?}"),
    }
    assert!(format!("{err}").contains("firewall.block_ip"), "{err}");
    assert!(v.requests(Vendor::Firewall).is_empty());

    // Without the Graph tenant, nothing is sent and the error names the variable.
    let ex = executor_with(&v, &[("TOCSIN_INTEGRATION_MSGRAPH_TENANT", None)]);
    let err = fails(
        &ex,
        "msgraph",
        "get_user",
        json!({"user": "alice@contoso.com"}),
    )
    .await;
    assert!(
        matches!(&err, CallError::MissingSetting { name, env_var, .. }
            if name == "tenant" && env_var == "TOCSIN_INTEGRATION_MSGRAPH_TENANT"),
        "{err:?}"
    );
    assert!(v.requests(Vendor::MsGraph).is_empty());

    // A tenant the directory does not know: the identity platform's own error.
    let ex = executor_with(
        &v,
        &[(
            "TOCSIN_INTEGRATION_MSGRAPH_TENANT",
            Some("fabrikam.example"),
        )],
    );
    let err = fails(
        &ex,
        "msgraph",
        "get_user",
        json!({"user": "alice@contoso.com"}),
    )
    .await;
    assert!(
        matches!(&err, CallError::OAuth { status: Some(400), message } if message.contains("AADSTS90002")),
        "{err:?}"
    );
}

#[test]
fn playbooks_cannot_read_secrets_or_settings() {
    let dir = tempfile::tempdir().unwrap();
    for (root, name) in [("secrets", "SLACK_BOT_TOKEN"), ("settings", "tenant")] {
        let path = dir.path().join(format!("leak-{root}.yaml"));
        std::fs::write(
            &path,
            format!(
                r#"
id: leak-{root}
version: 1
description: Tries to read {root}.
trigger: {{ on: case.created }}
steps:
  - id: post
    uses: slack.post_message
    with: {{ channel: soc-alerts, text: "${{{{ $.{root}.{name} }}}}" }}
"#
            ),
        )
        .unwrap();
        let problems = library::check_file(
            &path,
            &root_dir().join("playbooks"),
            &root_dir().join("integrations"),
            Policy::default(),
        );
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|p| p.contains(&format!("unknown context key '{root}'"))),
            "{text:?}"
        );
    }
}

fn root_dir() -> &'static Path {
    root()
}
