//! Fake vendor APIs on loopback, one HTTP server per shipped integration, that behave like
//! the vendors' documented APIs for the endpoints `integrations/*.yaml` use: they check
//! credentials the way the vendor does (and answer its error bodies), keep state (block
//! lists, incidents, contained hosts, tickets), can be scripted per test (which hashes are
//! malicious, which hosts unhealthy, fail the next N calls), and record every request.
//!
//! ```no_run
//! let vendors = Vendors::start();
//! vendors.with(|s| { s.malicious_hashes.insert("44d8...".into()); });
//! // Run `tocsin` with `vendors.env()`, or build an executor in-process:
//! let executor = vendors.executor(shipped_integrations);
//! // ... then: exactly one block was requested.
//! assert_eq!(vendors.count(Vendor::Firewall, "POST", "/api/v1/blocklist"), 1);
//! ```
//!
//! The servers run on their own thread and runtime, so `Vendors` works the same from a
//! plain `#[test]` driving a child process and from an async test. Dropping it stops them.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Credentials the fakes accept (`env()` passes them as `TOCSIN_SECRET_*`).
pub mod creds {
    pub const VIRUSTOTAL_API_KEY: &str = "vt-key-5e0c1d2a9f";
    pub const ABUSEIPDB_API_KEY: &str = "abuse-key-77c1e0";
    pub const URLSCAN_API_KEY: &str = "urlscan-key-3b9a";
    pub const CROWDSTRIKE_CLIENT_ID: &str = "cs-client-0a1b2c";
    pub const CROWDSTRIKE_CLIENT_SECRET: &str = "cs-secret-9z8y7x";
    pub const MSGRAPH_CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
    pub const MSGRAPH_CLIENT_SECRET: &str = "graph-secret~Qx7";
    pub const MSGRAPH_TENANT: &str = "contoso.onmicrosoft.com";
    pub const BLOCKLIST_API_TOKEN: &str = "blocklist-token-41";
    pub const SLACK_BOT_TOKEN: &str = "xoxb-1111-2222-slackfake";
    pub const JIRA_EMAIL: &str = "soc-bot@example.com";
    pub const JIRA_API_TOKEN: &str = "jira-token-ATATT3x";
    pub const PAGERDUTY_API_KEY: &str = "pd-key-y_NbAkKc66ryYTWUXYEu";
    pub const PAGERDUTY_ROUTING_KEY: &str = "R0UT1NGKEY0000000000000000000042";
    pub const OPS_AUTOMATION_TOKEN: &str = "ops-token-5150";
}

/// One fake vendor, named like its integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Vendor {
    VirusTotal,
    AbuseIpdb,
    Urlscan,
    CrowdStrike,
    MsGraph,
    Firewall,
    Slack,
    Jira,
    PagerDuty,
    PagerDutyEvents,
    Diagnostics,
}

impl Vendor {
    pub const ALL: [Vendor; 11] = [
        Vendor::VirusTotal,
        Vendor::AbuseIpdb,
        Vendor::Urlscan,
        Vendor::CrowdStrike,
        Vendor::MsGraph,
        Vendor::Firewall,
        Vendor::Slack,
        Vendor::Jira,
        Vendor::PagerDuty,
        Vendor::PagerDutyEvents,
        Vendor::Diagnostics,
    ];

    /// The integration id (`integrations/<id>.yaml`).
    pub fn id(self) -> &'static str {
        match self {
            Vendor::VirusTotal => "virustotal",
            Vendor::AbuseIpdb => "abuseipdb",
            Vendor::Urlscan => "urlscan",
            Vendor::CrowdStrike => "crowdstrike",
            Vendor::MsGraph => "msgraph",
            Vendor::Firewall => "firewall",
            Vendor::Slack => "slack",
            Vendor::Jira => "jira",
            Vendor::PagerDuty => "pagerduty",
            Vendor::PagerDutyEvents => "pagerduty_events",
            Vendor::Diagnostics => "diagnostics",
        }
    }

    /// The path of the API root on the fake, as on the real host.
    pub fn base_path(self) -> &'static str {
        match self {
            Vendor::VirusTotal => "/api/v3",
            Vendor::AbuseIpdb => "/api/v2",
            Vendor::Urlscan => "/api/v1",
            Vendor::CrowdStrike | Vendor::Jira | Vendor::PagerDuty => "",
            Vendor::MsGraph => "/v1.0",
            Vendor::Firewall | Vendor::Diagnostics => "/api/v1",
            Vendor::Slack => "/api",
            Vendor::PagerDutyEvents => "/v2",
        }
    }
}

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub vendor: Vendor,
    pub method: String,
    /// The path as sent (percent-encoding kept).
    pub path: String,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The raw body.
    pub body: String,
    /// The body parsed: JSON, or form fields as an object of strings; null otherwise.
    pub json: Value,
    /// The status the fake answered.
    pub status: u16,
}

impl Recorded {
    /// The first value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// An injected failure for the next call to a vendor.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: u16,
    /// `Retry-After` in seconds.
    pub retry_after: Option<u64>,
}

/// A mailbox message (Microsoft Graph).
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub internet_message_id: String,
    pub subject: String,
    pub from: String,
    pub folder: String,
}

/// A directory user (Microsoft Graph).
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub upn: String,
    pub display_name: String,
    pub enabled: bool,
    /// How many times revokeSignInSessions was called for the user.
    pub revocations: u32,
}

/// What the fakes know and what calls changed. Public so tests script and inspect it.
#[derive(Debug, Default)]
pub struct World {
    // --- Scripted knowledge ---
    /// File hashes (any case) VirusTotal and Falcon Intelligence call malicious.
    pub malicious_hashes: BTreeSet<String>,
    /// Hashes VirusTotal knows as clean; other hashes are unknown (404).
    pub clean_hashes: BTreeSet<String>,
    /// URLs VirusTotal and urlscan.io call malicious.
    pub malicious_urls: BTreeSet<String>,
    /// URLs VirusTotal knows as clean; other URLs are unknown to it until submitted.
    pub clean_urls: BTreeSet<String>,
    /// Domains VirusTotal calls malicious (others are clean).
    pub malicious_domains: BTreeSet<String>,
    /// AbuseIPDB confidence per address (others 0); 50 and up is malicious on VirusTotal.
    pub ip_scores: BTreeMap<String, u32>,
    /// Falcon: hostname → device id.
    pub hosts: BTreeMap<String, String>,
    /// Falcon: hash → hosts that saw it.
    pub hash_device_counts: BTreeMap<String, u32>,
    /// urlscan.io: result polls answered 404 ("not finished") before a scan is ready.
    pub urlscan_pending_polls: u32,
    /// Graph: mailbox (UPN, lower case) → messages.
    pub mailboxes: BTreeMap<String, Vec<Message>>,
    /// Graph: users by UPN (lower case).
    pub users: BTreeMap<String, User>,
    /// Slack: channel names → ids the bot may post to.
    pub slack_channels: BTreeMap<String, String>,
    /// Jira: project keys that exist.
    pub jira_projects: BTreeSet<String>,
    /// PagerDuty: service ids that exist.
    pub pagerduty_services: BTreeSet<String>,
    /// PagerDuty: whether on-call acknowledges an incident (seen on the next read).
    pub pagerduty_acknowledges: bool,
    /// Operations API: host → service it runs.
    pub services: BTreeMap<String, String>,
    /// Operations API: hosts whose health checks fail.
    pub unhealthy_hosts: BTreeSet<String>,
    /// Operations API: whether a restart makes the host healthy again.
    pub restart_heals: bool,
    /// Operations API: whether a rollback makes the host healthy again.
    pub rollback_heals: bool,
    /// Failures injected per vendor, served before any real answer.
    pub failures: BTreeMap<Vendor, VecDeque<Failure>>,

    // --- State changed by calls ---
    /// Block list: (type, value) → entry.
    pub blocklist: BTreeMap<(String, String), Value>,
    /// Falcon: contained device ids.
    pub contained: BTreeSet<String>,
    /// Slack: messages posted (channel id, ts, text, thread_ts).
    pub slack_messages: Vec<Value>,
    /// Jira: issues by key (fields as sent, plus `status` and `comments`).
    pub jira_issues: BTreeMap<String, Value>,
    /// PagerDuty: incidents by id.
    pub incidents: BTreeMap<String, Value>,
    /// PagerDuty Events API: alerts by dedup key (`status`: triggered, acknowledged,
    /// resolved; `events`: how many events named it).
    pub pd_alerts: BTreeMap<String, Value>,
    /// Operations API: jobs by id.
    pub jobs: BTreeMap<String, Value>,
    /// AbuseIPDB: reports received.
    pub abuse_reports: Vec<Value>,
    /// urlscan.io: scans by uuid (url, polls so far).
    pub scans: BTreeMap<String, (String, u32)>,
    /// VirusTotal: analyses by id → URL.
    pub analyses: BTreeMap<String, String>,
    /// OAuth tokens currently valid per vendor (CrowdStrike, Graph).
    pub tokens: BTreeMap<Vendor, String>,
    /// OAuth tokens issued so far per vendor.
    pub tokens_issued: BTreeMap<Vendor, u32>,
    next_id: u64,
}

impl World {
    /// A world with a few hosts, users, mailboxes, channels and projects that the shipped
    /// playbooks' fixtures use; nothing is malicious or unhealthy until a test says so.
    pub fn example() -> World {
        let mut w = World {
            restart_heals: true,
            rollback_heals: true,
            ..World::default()
        };
        w.hosts
            .insert("ws-0042".into(), "a1b2c3d4e5f60718293a4b5c6d7e8f90".into());
        w.hosts.insert(
            "srv-db-01".into(),
            "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
        );
        for (upn, id, name) in [
            (
                "alice@contoso.com",
                "8a7b6c5d-0000-4000-8000-000000000001",
                "Alice Adams",
            ),
            (
                "bob@contoso.com",
                "8a7b6c5d-0000-4000-8000-000000000002",
                "Bob Brown",
            ),
        ] {
            w.users.insert(
                upn.into(),
                User {
                    id: id.into(),
                    upn: upn.into(),
                    display_name: name.into(),
                    enabled: true,
                    revocations: 0,
                },
            );
            w.mailboxes.insert(upn.into(), Vec::new());
        }
        w.slack_channels
            .insert("soc-alerts".into(), "C0123456789".into());
        w.jira_projects.insert("OPS".into());
        w.jira_projects.insert("SEC".into());
        w.pagerduty_services.insert("PSERV01".into());
        w.services.insert("web-01".into(), "checkout-api".into());
        w.services.insert("web-02".into(), "checkout-api".into());
        w
    }

    /// Puts a message in `mailbox` and returns its Graph id.
    pub fn deliver(
        &mut self,
        mailbox: &str,
        internet_message_id: &str,
        subject: &str,
        from: &str,
    ) -> String {
        let id = format!("AAMkAD{}", self.next());
        self.mailboxes
            .entry(mailbox.to_ascii_lowercase())
            .or_default()
            .push(Message {
                id: id.clone(),
                internet_message_id: internet_message_id.into(),
                subject: subject.into(),
                from: from.into(),
                folder: "inbox".into(),
            });
        id
    }

    fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

struct Shared {
    world: Mutex<World>,
    log: Mutex<Vec<Recorded>>,
}

/// The running fakes.
pub struct Vendors {
    shared: Arc<Shared>,
    addrs: BTreeMap<Vendor, SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Vendors {
    /// Starts every fake on its own free loopback port, with [`World::example`].
    pub fn start() -> Vendors {
        let shared = Arc::new(Shared {
            world: Mutex::new(World::example()),
            log: Mutex::new(Vec::new()),
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let mut handles = Vec::new();
                let mut addrs = BTreeMap::new();
                for vendor in Vendor::ALL {
                    let data = actix_web::web::Data::from(state.clone());
                    let server = actix_web::HttpServer::new(move || {
                        actix_web::App::new()
                            .app_data(data.clone())
                            .default_service(actix_web::web::to(
                            move |req: actix_web::HttpRequest,
                                  body: actix_web::web::Bytes,
                                  state: actix_web::web::Data<Shared>| {
                                let response = serve(vendor, &req, &body, &state);
                                async move { response }
                            },
                        ))
                    })
                    .workers(1)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .bind(("127.0.0.1", 0))
                    .expect("bind a fake vendor");
                    addrs.insert(vendor, server.addrs()[0]);
                    let server = server.run();
                    handles.push(server.handle());
                    actix_web::rt::spawn(server);
                }
                addr_tx.send(addrs).expect("report addresses");
                let _ = stop_rx.await;
                for h in handles {
                    h.stop(false).await;
                }
            });
        });
        let addrs = addr_rx.recv().expect("fake vendors started");
        Vendors {
            shared,
            addrs,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The base URL the integration should use for `vendor`.
    pub fn base_url(&self, vendor: Vendor) -> String {
        format!("http://{}{}", self.addrs[&vendor], vendor.base_path())
    }

    /// Everything a `tocsin` process needs to talk to the fakes: `TOCSIN_SECRET_*` for
    /// every credential, `TOCSIN_INTEGRATION_<ID>_BASE_URL` for every vendor, the Graph
    /// tenant and login URL, and rate limits lifted (`..._RATE_PER_MINUTE=0`).
    pub fn env(&self) -> Vec<(String, String)> {
        use creds::*;
        let mut env: Vec<(String, String)> = [
            ("VIRUSTOTAL_API_KEY", VIRUSTOTAL_API_KEY),
            ("ABUSEIPDB_API_KEY", ABUSEIPDB_API_KEY),
            ("URLSCAN_API_KEY", URLSCAN_API_KEY),
            ("CROWDSTRIKE_CLIENT_ID", CROWDSTRIKE_CLIENT_ID),
            ("CROWDSTRIKE_CLIENT_SECRET", CROWDSTRIKE_CLIENT_SECRET),
            ("MSGRAPH_CLIENT_ID", MSGRAPH_CLIENT_ID),
            ("MSGRAPH_CLIENT_SECRET", MSGRAPH_CLIENT_SECRET),
            ("BLOCKLIST_API_TOKEN", BLOCKLIST_API_TOKEN),
            ("SLACK_BOT_TOKEN", SLACK_BOT_TOKEN),
            ("JIRA_EMAIL", JIRA_EMAIL),
            ("JIRA_API_TOKEN", JIRA_API_TOKEN),
            ("PAGERDUTY_API_KEY", PAGERDUTY_API_KEY),
            ("PAGERDUTY_ROUTING_KEY", PAGERDUTY_ROUTING_KEY),
            ("OPS_AUTOMATION_TOKEN", OPS_AUTOMATION_TOKEN),
        ]
        .iter()
        .map(|(k, v)| (format!("TOCSIN_SECRET_{k}"), v.to_string()))
        .collect();
        for vendor in Vendor::ALL {
            let id = vendor.id().to_ascii_uppercase();
            env.push((
                format!("TOCSIN_INTEGRATION_{id}_BASE_URL"),
                self.base_url(vendor),
            ));
            env.push((
                format!("TOCSIN_INTEGRATION_{id}_RATE_PER_MINUTE"),
                "0".into(),
            ));
        }
        env.push((
            "TOCSIN_INTEGRATION_MSGRAPH_TENANT".into(),
            MSGRAPH_TENANT.into(),
        ));
        env.push((
            "TOCSIN_INTEGRATION_MSGRAPH_LOGIN_URL".into(),
            format!("http://{}", self.addrs[&Vendor::MsGraph]),
        ));
        env
    }

    /// [`Vendors::env`] as a map.
    pub fn env_map(&self) -> BTreeMap<String, String> {
        self.env().into_iter().collect()
    }

    /// Reads or changes the fakes' world (scripting, or inspecting side effects).
    pub fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut lock(&self.shared.world))
    }

    /// Fails the next `n` calls to `vendor` with `status` (and `Retry-After`).
    pub fn fail_next(&self, vendor: Vendor, n: usize, status: u16, retry_after: Option<u64>) {
        self.with(|w| {
            let q = w.failures.entry(vendor).or_default();
            for _ in 0..n {
                q.push_back(Failure {
                    status,
                    retry_after,
                });
            }
        });
    }

    /// Invalidates `vendor`'s current OAuth token, as an early revocation would.
    pub fn revoke_token(&self, vendor: Vendor) {
        self.with(|w| w.tokens.remove(&vendor));
    }

    /// Every request `vendor` received, in order.
    pub fn requests(&self, vendor: Vendor) -> Vec<Recorded> {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.vendor == vendor)
            .cloned()
            .collect()
    }

    /// Requests to `vendor` with this method and exact path (as sent), in order.
    pub fn calls(&self, vendor: Vendor, method: &str, path: &str) -> Vec<Recorded> {
        self.requests(vendor)
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }

    /// How many requests `vendor` received with this method and path.
    pub fn count(&self, vendor: Vendor, method: &str, path: &str) -> usize {
        self.calls(vendor, method, path).len()
    }

    /// An executor for `integrations` (the shipped ones, usually) pointed at the fakes,
    /// with the same environment a `tocsin` process would get and short backoffs.
    pub fn executor(
        &self,
        integrations: BTreeMap<String, tocsin::integrations::definition::Integration>,
    ) -> tocsin::integrations::executor::Executor {
        use tocsin::integrations::executor::{Executor, ExecutorConfig};
        let secrets = tocsin::integrations::secrets::Secrets::from_sources(self.env(), None)
            .expect("secrets");
        let config = ExecutorConfig {
            backoff_base: std::time::Duration::from_millis(10),
            backoff_cap: std::time::Duration::from_millis(50),
            max_retry_after: std::time::Duration::from_secs(5),
            ..ExecutorConfig::default()
        };
        Executor::with_env(integrations, secrets, &self.env_map(), config).expect("executor")
    }

    /// The last request `vendor` received.
    pub fn last(&self, vendor: Vendor) -> Recorded {
        self.requests(vendor)
            .pop()
            .unwrap_or_else(|| panic!("{vendor:?} received no request"))
    }
}

impl Drop for Vendors {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// Serving

/// What a handler sees of a request.
struct Req<'a> {
    method: &'a str,
    /// Path segments after the vendor's base path, percent-decoded.
    segs: Vec<String>,
    query: &'a [(String, String)],
    headers: &'a BTreeMap<String, String>,
    json: &'a Value,
}

impl Req<'_> {
    fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    fn seg(&self) -> Vec<&str> {
        self.segs.iter().map(String::as_str).collect()
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.json.get(name).and_then(Value::as_str)
    }
}

/// A response: status, JSON or text body, extra headers.
struct Answer {
    status: u16,
    body: Option<Value>,
    text: Option<String>,
    headers: Vec<(&'static str, String)>,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        body: Some(body),
        text: None,
        headers: vec![],
    }
}

fn empty(status: u16) -> Answer {
    Answer {
        status,
        body: None,
        text: None,
        headers: vec![],
    }
}

fn serve(
    vendor: Vendor,
    req: &actix_web::HttpRequest,
    body: &[u8],
    shared: &Shared,
) -> actix_web::HttpResponse {
    let path = req.path().to_string();
    let query: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let text = String::from_utf8_lossy(body).into_owned();
    let content_type = headers.get("content-type").cloned().unwrap_or_default();
    let json = if content_type.starts_with("application/x-www-form-urlencoded") {
        Value::Object(
            url::form_urlencoded::parse(body)
                .into_owned()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    } else {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    };
    let method = req.method().as_str().to_string();

    let answer = {
        let mut world = lock(&shared.world);
        let injected = world
            .failures
            .get_mut(&vendor)
            .and_then(VecDeque::pop_front);
        match injected {
            Some(f) => {
                let mut a = answer(
                    f.status,
                    json!({"error": format!("injected failure {}", f.status)}),
                );
                if let Some(s) = f.retry_after {
                    a.headers.push(("Retry-After", s.to_string()));
                }
                a
            }
            None => {
                let rest = path.strip_prefix(vendor.base_path()).unwrap_or(&path);
                let segs = rest
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(pct_decode)
                    .collect();
                let r = Req {
                    method: &method,
                    segs,
                    query: &query,
                    headers: &headers,
                    json: &json,
                };
                let outside_base = !path.starts_with(vendor.base_path());
                match vendor {
                    Vendor::MsGraph if outside_base => graph_token(&r, &path, &mut world),
                    _ if outside_base => answer(404, json!({"error": "not found"})),
                    Vendor::VirusTotal => virustotal(&r, &mut world),
                    Vendor::AbuseIpdb => abuseipdb(&r, &mut world),
                    Vendor::Urlscan => urlscan(&r, &mut world),
                    Vendor::CrowdStrike => crowdstrike(&r, &mut world),
                    Vendor::MsGraph => msgraph(&r, &mut world),
                    Vendor::Firewall => firewall(&r, &mut world),
                    Vendor::Slack => slack(&r, &mut world),
                    Vendor::Jira => jira(&r, &mut world),
                    Vendor::PagerDuty => pagerduty(&r, &mut world),
                    Vendor::PagerDutyEvents => pagerduty_events(&r, &mut world),
                    Vendor::Diagnostics => diagnostics(&r, &mut world),
                }
            }
        }
    };

    lock(&shared.log).push(Recorded {
        vendor,
        method,
        path,
        query,
        headers,
        body: text,
        json,
        status: answer.status,
    });
    let status = actix_web::http::StatusCode::from_u16(answer.status).expect("status");
    let mut response = actix_web::HttpResponse::build(status);
    for (k, v) in &answer.headers {
        response.insert_header((*k, v.as_str()));
    }
    match (answer.body, answer.text) {
        (Some(b), _) => response.json(b),
        (None, Some(t)) => response.content_type("text/plain;charset=UTF-8").body(t),
        (None, None) => response.finish(),
    }
}

fn pct_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn bearer_is(r: &Req, token: &str) -> bool {
    r.header("authorization") == format!("Bearer {token}")
}

fn not_found() -> Answer {
    answer(404, json!({"error": "no such endpoint"}))
}

// --- VirusTotal API v3 ---------------------------------------------------------------

fn vt_error(status: u16, code: &str, message: &str) -> Answer {
    answer(status, json!({"error": {"code": code, "message": message}}))
}

fn vt_stats(malicious: bool) -> Value {
    if malicious {
        json!({"malicious": 45, "suspicious": 2, "harmless": 0, "undetected": 23, "timeout": 0})
    } else {
        json!({"malicious": 0, "suspicious": 0, "harmless": 68, "undetected": 4, "timeout": 0})
    }
}

fn virustotal(r: &Req, w: &mut World) -> Answer {
    match r.headers.get("x-apikey") {
        None => {
            return vt_error(
                401,
                "AuthenticationRequiredError",
                "X-Apikey header is missing",
            )
        }
        Some(k) if k != creds::VIRUSTOTAL_API_KEY => {
            return vt_error(401, "WrongCredentialsError", "Wrong API key")
        }
        Some(_) => {}
    }
    match (r.method, r.seg().as_slice()) {
        ("GET", ["files", id]) => {
            let id = id.to_ascii_lowercase();
            let malicious = w
                .malicious_hashes
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&id));
            let clean = w.clean_hashes.iter().any(|h| h.eq_ignore_ascii_case(&id));
            if !malicious && !clean {
                return vt_error(404, "NotFoundError", &format!("File \"{id}\" not found"));
            }
            answer(
                200,
                json!({"data": {"id": id, "type": "file", "attributes": {
                    "sha256": id,
                    "last_analysis_stats": vt_stats(malicious),
                    "reputation": if malicious { -87 } else { 0 },
                    "meaningful_name": "invoice.pdf.exe",
                    "type_description": "Win32 EXE",
                    "popular_threat_classification": if malicious {
                        json!({"suggested_threat_label": "trojan.emotet/heodo"})
                    } else { json!({}) },
                }}}),
            )
        }
        ("POST", ["urls"]) => {
            let Some(url) = r.field("url").filter(|u| !u.is_empty()) else {
                return vt_error(400, "BadRequestError", "Missing url parameter");
            };
            let n = w.next();
            let id = format!("u-{}-{}", sha256_hex(url), 1_700_000_000 + n);
            w.analyses.insert(id.clone(), url.to_string());
            answer(
                200,
                json!({"data": {"type": "analysis", "id": id,
                    "links": {"self": format!("https://www.virustotal.com/api/v3/analyses/{id}")}}}),
            )
        }
        ("GET", ["analyses", id]) => {
            let Some(url) = w.analyses.get(*id).cloned() else {
                return vt_error(
                    404,
                    "NotFoundError",
                    &format!("Analysis \"{id}\" not found"),
                );
            };
            let malicious = w.malicious_urls.contains(&url);
            // Once analysed, VirusTotal knows the URL.
            if !malicious {
                w.clean_urls.insert(url.clone());
            }
            answer(
                200,
                json!({"data": {"id": id, "type": "analysis", "attributes": {
                    "status": "completed", "stats": vt_stats(malicious)}},
                  "meta": {"url_info": {"id": sha256_hex(&url), "url": url}}}),
            )
        }
        ("GET", ["urls", id]) => {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(id)
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            let known = w
                .malicious_urls
                .iter()
                .chain(w.clean_urls.iter())
                .find(|u| Some(u.as_str()) == decoded.as_deref() || sha256_hex(u) == *id);
            let Some(url) = known.cloned() else {
                return vt_error(404, "NotFoundError", &format!("URL \"{id}\" not found"));
            };
            let malicious = w.malicious_urls.contains(&url);
            answer(
                200,
                json!({"data": {"id": sha256_hex(&url), "type": "url", "attributes": {
                    "url": url, "last_final_url": url,
                    "last_analysis_stats": vt_stats(malicious),
                    "reputation": if malicious { -30 } else { 0 },
                    "categories": {"Forcepoint ThreatSeeker": if malicious { "phishing" } else { "business" }},
                }}}),
            )
        }
        ("GET", ["domains", d]) => {
            let malicious = w.malicious_domains.contains(*d);
            answer(
                200,
                json!({"data": {"id": d, "type": "domain", "attributes": {
                    "last_analysis_stats": vt_stats(malicious),
                    "reputation": if malicious { -50 } else { 5 },
                    "categories": {"BitDefender": if malicious { "phishing" } else { "business" }},
                    "creation_date": 1_700_000_000, "registrar": "NameCheap, Inc.",
                }}}),
            )
        }
        ("GET", ["ip_addresses", ip]) => {
            let malicious = w.ip_scores.get(*ip).copied().unwrap_or(0) >= 50;
            answer(
                200,
                json!({"data": {"id": ip, "type": "ip_address", "attributes": {
                    "last_analysis_stats": vt_stats(malicious),
                    "reputation": if malicious { -20 } else { 0 },
                    "country": "NL", "as_owner": "Example Hosting B.V.", "asn": 64500,
                    "network": format!("{ip}/24"),
                }}}),
            )
        }
        _ => vt_error(404, "NotFoundError", "Resource not found"),
    }
}

// --- AbuseIPDB API v2 ----------------------------------------------------------------

fn abuseipdb(r: &Req, w: &mut World) -> Answer {
    if r.header("key") != creds::ABUSEIPDB_API_KEY {
        return answer(
            401,
            json!({"errors": [{"detail": "Authentication failed. Your API key is either missing, incorrect, or revoked. Note: The APIv2 key differs from the APIv1 key.", "status": 401}]}),
        );
    }
    let unprocessable = |param: &str, detail: &str| {
        answer(
            422,
            json!({"errors": [{"detail": detail, "status": 422, "source": {"parameter": param}}]}),
        )
    };
    match (r.method, r.seg().as_slice()) {
        ("GET", ["check"]) => {
            let Some(ip) = r
                .q("ipAddress")
                .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
            else {
                return unprocessable("ipAddress", "The ip address must be a valid IPv4 or IPv6 address (e.g. 8.8.8.8 or 2001:4860:4860::8888).");
            };
            let score = w.ip_scores.get(ip).copied().unwrap_or(0);
            let reports = w.abuse_reports.iter().filter(|r| r["ip"] == ip).count();
            answer(
                200,
                json!({"data": {
                    "ipAddress": ip, "isPublic": true, "ipVersion": if ip.contains(':') { 6 } else { 4 },
                    "isWhitelisted": false, "abuseConfidenceScore": score,
                    "countryCode": "NL", "usageType": "Data Center/Web Hosting/Transit",
                    "isp": "Example Hosting B.V.", "domain": "example-hosting.net", "hostnames": [],
                    "isTor": false, "totalReports": if score > 0 { 120 + reports } else { reports },
                    "numDistinctUsers": if score > 0 { 37 } else { 0 },
                    "lastReportedAt": if score > 0 { json!("2026-11-24T22:01:13+00:00") } else { Value::Null },
                }}),
            )
        }
        ("POST", ["report"]) => {
            let Some(ip) = r
                .field("ip")
                .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
            else {
                return unprocessable("ip", "The ip must be a valid IP address.");
            };
            if r.field("categories").is_none_or(str::is_empty) {
                return unprocessable("categories", "The categories field is required.");
            }
            w.abuse_reports.push(r.json.clone());
            let score = w.ip_scores.get(ip).copied().unwrap_or(0);
            answer(
                200,
                json!({"data": {"ipAddress": ip, "abuseConfidenceScore": score}}),
            )
        }
        _ => not_found(),
    }
}

// --- urlscan.io API v1 ---------------------------------------------------------------

fn urlscan(r: &Req, w: &mut World) -> Answer {
    if r.header("api-key") != creds::URLSCAN_API_KEY {
        return answer(
            401,
            json!({"message": "API key supplied but not found in database!", "status": 401}),
        );
    }
    match (r.method, r.seg().as_slice()) {
        ("POST", ["scan"]) => {
            let Some(url) = r.field("url").filter(|u| u.starts_with("http")) else {
                return answer(
                    400,
                    json!({"message": "Missing URL properties", "status": 400}),
                );
            };
            let visibility = r.field("visibility").unwrap_or("public");
            if !["public", "unlisted", "private"].contains(&visibility) {
                return answer(400, json!({"message": "Invalid visibility", "status": 400}));
            }
            let uuid = format!("0e2f3a4b-5c6d-4e7f-8a9b-{:012x}", w.next());
            w.scans.insert(uuid.clone(), (url.to_string(), 0));
            answer(
                200,
                json!({"message": "Submission successful", "uuid": uuid,
                  "result": format!("https://urlscan.io/result/{uuid}/"),
                  "api": format!("https://urlscan.io/api/v1/result/{uuid}/"),
                  "visibility": visibility, "options": {}, "url": url, "country": "de"}),
            )
        }
        ("GET", ["result", uuid]) => {
            let pending = w.urlscan_pending_polls;
            let Some((url, polls)) = w.scans.get_mut(*uuid) else {
                return answer(
                    404,
                    json!({"message": "Scan is not finished yet or does not exist", "status": 404}),
                );
            };
            *polls += 1;
            if *polls <= pending {
                return answer(
                    404,
                    json!({"message": "Scan is not finished yet or does not exist", "status": 404}),
                );
            }
            let url = url.clone();
            let malicious = w.malicious_urls.contains(&url);
            let domain = url::Url::parse(&url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default();
            answer(
                200,
                json!({
                    "task": {"uuid": uuid, "url": url, "visibility": "private",
                             "reportURL": format!("https://urlscan.io/result/{uuid}/"),
                             "screenshotURL": format!("https://urlscan.io/screenshots/{uuid}.png")},
                    "page": {"url": url, "domain": domain, "ip": "203.0.113.7", "country": "US"},
                    "verdicts": {"overall": {"score": if malicious { 100 } else { 0 },
                        "categories": if malicious { json!(["phishing"]) } else { json!([]) },
                        "brands": if malicious { json!(["Microsoft"]) } else { json!([]) },
                        "malicious": malicious}},
                }),
            )
        }
        _ => not_found(),
    }
}

// --- OAuth2 token endpoints ------------------------------------------------------------

fn issue_token(w: &mut World, vendor: Vendor) -> String {
    let n = {
        let c = w.tokens_issued.entry(vendor).or_default();
        *c += 1;
        *c
    };
    let token = format!("{}-token-{n}-{}", vendor.id(), "q".repeat(12));
    w.tokens.insert(vendor, token.clone());
    token
}

fn token_valid(r: &Req, w: &World, vendor: Vendor) -> bool {
    w.tokens.get(&vendor).is_some_and(|t| bearer_is(r, t))
}

fn graph_token(r: &Req, path: &str, w: &mut World) -> Answer {
    let expected = format!("/{}/oauth2/v2.0/token", creds::MSGRAPH_TENANT);
    if r.method != "POST" || !path.ends_with("/oauth2/v2.0/token") {
        return not_found();
    }
    if path != expected {
        return answer(
            400,
            json!({"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found. Check to make sure you have the correct tenant ID."}),
        );
    }
    if r.field("grant_type") != Some("client_credentials")
        || r.field("scope") != Some("https://graph.microsoft.com/.default")
    {
        return answer(
            400,
            json!({"error": "invalid_request", "error_description": "AADSTS900144: The request body must contain the following parameter: 'grant_type' or 'scope'."}),
        );
    }
    if r.field("client_id") != Some(creds::MSGRAPH_CLIENT_ID)
        || r.field("client_secret") != Some(creds::MSGRAPH_CLIENT_SECRET)
    {
        return answer(
            401,
            json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
        );
    }
    let token = issue_token(w, Vendor::MsGraph);
    answer(
        200,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
    )
}

// --- CrowdStrike Falcon ------------------------------------------------------------------

fn cs_errors(status: u16, message: &str) -> Answer {
    answer(
        status,
        json!({"meta": {"query_time": 0.001, "trace_id": "trace-1"},
               "errors": [{"code": status, "message": message}], "resources": []}),
    )
}

fn cs_ok(status: u16, resources: Value, total: usize) -> Answer {
    answer(
        status,
        json!({"meta": {"query_time": 0.002, "trace_id": "trace-1",
                        "pagination": {"offset": 0, "limit": 100, "total": total}},
               "errors": [], "resources": resources}),
    )
}

/// The value inside `field:'...'` of an FQL filter.
fn fql_value<'a>(filter: &'a str, field: &str) -> Option<&'a str> {
    let rest = filter.strip_prefix(field)?.strip_prefix(":'")?;
    rest.strip_suffix('\'')
}

fn crowdstrike(r: &Req, w: &mut World) -> Answer {
    if r.seg().as_slice() == ["oauth2", "token"] && r.method == "POST" {
        if r.field("client_id") != Some(creds::CROWDSTRIKE_CLIENT_ID)
            || r.field("client_secret") != Some(creds::CROWDSTRIKE_CLIENT_SECRET)
        {
            return cs_errors(401, "access denied, invalid client");
        }
        let token = issue_token(w, Vendor::CrowdStrike);
        return answer(
            201,
            json!({"access_token": token, "token_type": "bearer", "expires_in": 1799}),
        );
    }
    if !token_valid(r, w, Vendor::CrowdStrike) {
        return cs_errors(401, "access denied, invalid bearer token");
    }
    match (r.method, r.seg().as_slice()) {
        ("GET", ["devices", "queries", "devices", "v1"]) => {
            let Some(host) = r.q("filter").and_then(|f| fql_value(f, "hostname")) else {
                return cs_errors(400, "Invalid filter");
            };
            let ids: Vec<&String> = w.hosts.get(host).into_iter().collect();
            let n = ids.len();
            cs_ok(200, json!(ids), n)
        }
        ("GET", ["devices", "entities", "devices", "v2"]) => {
            let id = r.q("ids").unwrap_or("");
            let Some((host, _)) = w.hosts.iter().find(|(_, d)| *d == id) else {
                return cs_errors(404, &format!("Device {id} not found"));
            };
            let status = if w.contained.contains(id) {
                "contained"
            } else {
                "normal"
            };
            cs_ok(
                200,
                json!([{"device_id": id, "hostname": host, "status": status,
                        "platform_name": "Windows", "os_version": "Windows 11",
                        "local_ip": "10.1.2.3", "external_ip": "198.51.100.4",
                        "last_seen": "2026-11-25T07:59:00Z"}]),
                1,
            )
        }
        ("POST", ["devices", "entities", "devices-actions", "v2"]) => {
            let action = r.q("action_name").unwrap_or("");
            let ids: Vec<String> = r.json["ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if ids.is_empty() || ids.iter().any(|id| !w.hosts.values().any(|d| d == id)) {
                return cs_errors(400, "one or more device ids are invalid");
            }
            for id in &ids {
                match action {
                    "contain" => {
                        w.contained.insert(id.clone());
                    }
                    "lift_containment" => {
                        w.contained.remove(id);
                    }
                    _ => return cs_errors(400, "invalid action_name"),
                }
            }
            let resources: Vec<Value> = ids
                .iter()
                .map(|id| json!({"id": id, "path": format!("/devices/entities/devices/v1?ids={id}")}))
                .collect();
            cs_ok(202, json!(resources), ids.len())
        }
        ("GET", ["indicators", "aggregates", "devices-count", "v1"]) => {
            let (t, v) = (r.q("type").unwrap_or(""), r.q("value").unwrap_or(""));
            match w.hash_device_counts.get(v).copied().filter(|n| *n > 0) {
                Some(n) => cs_ok(
                    200,
                    json!([{"id": format!("{t}:{v}"), "type": t, "value": v, "device_count": n}]),
                    1,
                ),
                None => cs_errors(404, &format!("No results found for type={t} and value={v}")),
            }
        }
        ("GET", ["intel", "combined", "indicators", "v1"]) => {
            let Some(hash) = r.q("filter").and_then(|f| fql_value(f, "indicator")) else {
                return cs_errors(400, "Invalid filter");
            };
            if !w
                .malicious_hashes
                .iter()
                .any(|h| h.eq_ignore_ascii_case(hash))
            {
                return cs_ok(200, json!([]), 0);
            }
            cs_ok(
                200,
                json!([{"indicator": hash, "type": "hash_sha256", "malicious_confidence": "high",
                        "malware_families": ["Emotet"], "actors": ["MUMMY SPIDER"],
                        "labels": [{"name": "MaliciousConfidence/High"}, {"name": "Malware/Emotet"}]}]),
                1,
            )
        }
        _ => cs_errors(404, "Not Found"),
    }
}

// --- Microsoft Graph v1.0 ----------------------------------------------------------------

fn graph_error(status: u16, code: &str, message: &str) -> Answer {
    answer(status, json!({"error": {"code": code, "message": message}}))
}

fn graph_user<'a>(w: &'a mut World, key: &str) -> Option<&'a mut User> {
    let key = key.to_ascii_lowercase();
    w.users
        .values_mut()
        .find(|u| u.upn.eq_ignore_ascii_case(&key) || u.id == key)
}

fn graph_message(m: &Message) -> Value {
    json!({"id": m.id, "subject": m.subject, "internetMessageId": m.internet_message_id,
           "from": {"emailAddress": {"address": m.from}},
           "receivedDateTime": "2026-11-25T07:41:09Z", "parentFolderId": m.folder})
}

fn msgraph(r: &Req, w: &mut World) -> Answer {
    if !token_valid(r, w, Vendor::MsGraph) {
        return graph_error(
            401,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        );
    }
    let segs = r.seg();
    let Some(["users", user, rest @ ..]) = Some(segs.as_slice()) else {
        return graph_error(400, "BadRequest", "Resource not found for the segment.");
    };
    let Some(u) = graph_user(w, user) else {
        return graph_error(404, "Request_ResourceNotFound", &format!("Resource '{user}' does not exist or one of its queried reference-property objects are not present."));
    };
    let upn = u.upn.clone();
    match (r.method, rest) {
        ("GET", []) => answer(
            200,
            json!({"id": u.id, "displayName": u.display_name, "userPrincipalName": u.upn,
                   "accountEnabled": u.enabled, "jobTitle": "Analyst", "department": "Finance"}),
        ),
        ("PATCH", []) => {
            match r.json.get("accountEnabled").and_then(Value::as_bool) {
                Some(enabled) => u.enabled = enabled,
                None => return graph_error(400, "BadRequest", "Invalid request body."),
            }
            empty(204)
        }
        ("POST", ["revokeSignInSessions"]) => {
            u.revocations += 1;
            answer(
                200,
                json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": true}),
            )
        }
        ("GET", ["messages"]) => {
            let filter = r.q("$filter").unwrap_or("");
            let wanted = filter
                .strip_prefix("internetMessageId eq '")
                .and_then(|s| s.strip_suffix('\''));
            let Some(wanted) = wanted else {
                return graph_error(400, "BadRequest", "Invalid filter clause");
            };
            let found: Vec<Value> = w
                .mailboxes
                .get(&upn)
                .into_iter()
                .flatten()
                .filter(|m| m.internet_message_id == wanted)
                .map(graph_message)
                .collect();
            answer(200, json!({"value": found}))
        }
        ("POST", ["messages", id, "move"]) => {
            let Some(dest) = r.field("destinationId").map(str::to_string) else {
                return graph_error(400, "ErrorInvalidRequest", "destinationId is required");
            };
            let n = w.next();
            let Some(m) = w
                .mailboxes
                .get_mut(&upn)
                .and_then(|ms| ms.iter_mut().find(|m| m.id == *id))
            else {
                return graph_error(
                    404,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                );
            };
            // A move gives the message a new id.
            m.id = format!("AAMkAD{n}moved");
            m.folder = dest;
            answer(201, graph_message(m))
        }
        _ => graph_error(400, "BadRequest", "Unsupported request"),
    }
}

// --- Block list (Tocsin's own contract) --------------------------------------------------

fn firewall(r: &Req, w: &mut World) -> Answer {
    if !bearer_is(r, creds::BLOCKLIST_API_TOKEN) {
        return answer(401, json!({"error": "unauthorized"}));
    }
    const TYPES: [&str; 6] = ["ip", "cidr", "domain", "url", "email", "email_domain"];
    match (r.method, r.seg().as_slice()) {
        ("POST", ["blocklist"]) => {
            let (Some(value), Some(t)) = (r.field("value"), r.field("type")) else {
                return answer(400, json!({"error": "value and type are required"}));
            };
            if !TYPES.contains(&t) || value.is_empty() {
                return answer(
                    400,
                    json!({"error": format!("bad type {t:?} or empty value")}),
                );
            }
            let key = (t.to_string(), value.to_string());
            if let Some(existing) = w.blocklist.get(&key) {
                return answer(200, existing.clone());
            }
            let ttl = r.json.get("ttl").and_then(Value::as_u64).unwrap_or(0);
            let entry = json!({"id": format!("bl-{}", w.next()), "value": value, "type": t,
                "reason": r.json.get("reason"), "reference": r.json.get("reference"),
                "expires_at": if ttl == 0 { Value::Null } else { json!(format!("in {ttl}s")) }});
            w.blocklist.insert(key, entry.clone());
            answer(201, entry)
        }
        ("DELETE", ["blocklist", t, value]) => {
            match w.blocklist.remove(&(t.to_string(), value.to_string())) {
                Some(_) => empty(204),
                None => answer(404, json!({"error": "not listed"})),
            }
        }
        ("GET", ["blocklist", t, value]) => {
            match w.blocklist.get(&(t.to_string(), value.to_string())) {
                Some(e) => answer(200, e.clone()),
                None => answer(404, json!({"error": "not listed"})),
            }
        }
        _ => not_found(),
    }
}

// --- Slack Web API ---------------------------------------------------------------------------

fn slack(r: &Req, w: &mut World) -> Answer {
    let fail = |error: &str| answer(200, json!({"ok": false, "error": error}));
    match r.headers.get("authorization") {
        None => return fail("not_authed"),
        Some(_) if !bearer_is(r, creds::SLACK_BOT_TOKEN) => return fail("invalid_auth"),
        Some(_) => {}
    }
    match (r.method, r.seg().as_slice()) {
        ("POST", ["chat.postMessage"]) => {
            let channel = r.field("channel").unwrap_or("").trim_start_matches('#');
            let Some(id) = w
                .slack_channels
                .iter()
                .find(|(name, id)| *name == channel || *id == channel)
                .map(|(_, id)| id.clone())
            else {
                return fail("channel_not_found");
            };
            let Some(text) = r.field("text").filter(|t| !t.is_empty()) else {
                return fail("no_text");
            };
            let ts = format!("1764057600.{:06}", w.next());
            let thread_ts = r.field("thread_ts").map(str::to_string);
            if let Some(t) = &thread_ts {
                if !w.slack_messages.iter().any(|m| m["ts"] == t.as_str()) {
                    return fail("thread_not_found");
                }
            }
            w.slack_messages
                .push(json!({"channel": id, "ts": ts, "text": text, "thread_ts": thread_ts}));
            answer(
                200,
                json!({"ok": true, "channel": id, "ts": ts,
                       "message": {"type": "message", "text": text, "ts": ts, "bot_id": "B0FAKE"}}),
            )
        }
        _ => fail("unknown_method"),
    }
}

// --- Jira Cloud REST v3 ----------------------------------------------------------------------

fn jira(r: &Req, w: &mut World) -> Answer {
    use base64::Engine as _;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            creds::JIRA_EMAIL,
            creds::JIRA_API_TOKEN
        ))
    );
    if r.header("authorization") != expected {
        return Answer {
            status: 401,
            body: None,
            text: Some("Client must be authenticated to access this resource.".into()),
            headers: vec![],
        };
    }
    let missing = || {
        answer(
            404,
            json!({"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}),
        )
    };
    match (r.method, r.seg().as_slice()) {
        ("POST", ["rest", "api", "3", "issue"]) => {
            let fields = &r.json["fields"];
            let project = fields["project"]["key"].as_str().unwrap_or("");
            let mut errors = Map::new();
            if !w.jira_projects.contains(project) {
                errors.insert("project".into(), json!("valid project is required"));
            }
            if fields["summary"].as_str().is_none_or(str::is_empty) {
                errors.insert(
                    "summary".into(),
                    json!("You must specify a summary of the issue."),
                );
            }
            if fields["issuetype"]["name"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                errors.insert("issuetype".into(), json!("valid issue type is required"));
            }
            if fields["description"]["type"] != "doc" {
                errors.insert("description".into(), json!("Operation value must be an Atlassian Document (see the Atlassian Document Format)"));
            }
            if !errors.is_empty() {
                return answer(400, json!({"errorMessages": [], "errors": errors}));
            }
            let n = w.next();
            let key = format!("{project}-{n}");
            let id = format!("{}", 10000 + n);
            w.jira_issues.insert(
                key.clone(),
                json!({"id": id, "fields": fields, "status": "To Do", "comments": []}),
            );
            answer(
                201,
                json!({"id": id, "key": key, "self": format!("https://example.atlassian.net/rest/api/3/issue/{id}")}),
            )
        }
        ("POST", ["rest", "api", "3", "issue", key, "comment"]) => {
            let n = w.next();
            let Some(issue) = w.jira_issues.get_mut(*key) else {
                return missing();
            };
            if r.json["body"]["type"] != "doc" {
                return answer(
                    400,
                    json!({"errorMessages": [], "errors": {"comment": "Comment body can not be empty!"}}),
                );
            }
            let id = format!("{}", 20000 + n);
            if let Some(c) = issue["comments"].as_array_mut() {
                c.push(json!({"id": id, "body": r.json["body"]}));
            }
            answer(201, json!({"id": id, "body": r.json["body"]}))
        }
        ("GET", ["rest", "api", "3", "issue", key, "transitions"]) => {
            if !w.jira_issues.contains_key(*key) {
                return missing();
            }
            answer(
                200,
                json!({"expand": "transitions", "transitions": [
                    {"id": "11", "name": "To Do", "to": {"name": "To Do", "statusCategory": {"key": "new"}}},
                    {"id": "21", "name": "In Progress", "to": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}}},
                    {"id": "31", "name": "Done", "to": {"name": "Done", "statusCategory": {"key": "done"}}},
                ]}),
            )
        }
        ("POST", ["rest", "api", "3", "issue", key, "transitions"]) => {
            let Some(issue) = w.jira_issues.get_mut(*key) else {
                return missing();
            };
            let status = match r.json["transition"]["id"].as_str() {
                Some("11") => "To Do",
                Some("21") => "In Progress",
                Some("31") => "Done",
                other => {
                    return answer(
                        400,
                        json!({"errorMessages": [format!("Transition id '{}' is not valid for this issue.", other.unwrap_or(""))], "errors": {}}),
                    )
                }
            };
            issue["status"] = json!(status);
            empty(204)
        }
        _ => answer(404, json!({"errorMessages": ["Not found"], "errors": {}})),
    }
}

// --- PagerDuty REST API v2 -------------------------------------------------------------------

fn pd_error(status: u16, message: &str, errors: &[&str]) -> Answer {
    answer(
        status,
        json!({"error": {"message": message, "code": 2001, "errors": errors}}),
    )
}

fn pagerduty(r: &Req, w: &mut World) -> Answer {
    if r.header("authorization") != format!("Token token={}", creds::PAGERDUTY_API_KEY) {
        return answer(
            401,
            json!({"error": {"message": "Unauthorized", "code": 2006}}),
        );
    }
    let writes = r.method != "GET";
    if writes && !r.header("from").contains('@') {
        return pd_error(400, "Invalid Input Provided", &["You must specify a user's email address in the \"From\" header to perform this action."]);
    }
    let acknowledges = w.pagerduty_acknowledges;
    match (r.method, r.seg().as_slice()) {
        ("POST", ["incidents"]) => {
            let inc = &r.json["incident"];
            let service = inc["service"]["id"].as_str().unwrap_or("");
            if inc["type"] != "incident" || inc["title"].as_str().is_none_or(str::is_empty) {
                return pd_error(
                    400,
                    "Invalid Input Provided",
                    &["Incident type and title are required."],
                );
            }
            if !w.pagerduty_services.contains(service) {
                return pd_error(404, "Not Found", &["Service not found"]);
            }
            if let Some(key) = inc["incident_key"].as_str() {
                if w.incidents.values().any(|i| {
                    i["incident_key"] == key
                        && i["service"]["id"] == service
                        && i["status"] != "resolved"
                }) {
                    return pd_error(
                        400,
                        "Invalid Input Provided",
                        &["Open incident with key already exists on this service"],
                    );
                }
            }
            let n = w.next();
            let id = format!("Q0PD{n:04}");
            let incident = json!({
                "id": id, "type": "incident", "incident_number": n, "title": inc["title"],
                "status": "triggered", "urgency": inc["urgency"].as_str().unwrap_or("high"),
                "incident_key": inc["incident_key"], "service": {"id": service, "type": "service_reference"},
                "escalation_level": 1, "acknowledgements": [], "body": inc["body"],
                "assignments": [{"assignee": {"id": "PUSER01", "summary": "Jane Oncall", "type": "user_reference"}}],
                "html_url": format!("https://acme.pagerduty.com/incidents/{id}"), "notes": [],
            });
            w.incidents.insert(id, incident.clone());
            answer(201, json!({"incident": incident}))
        }
        ("GET", ["incidents", id]) => {
            let Some(inc) = w.incidents.get_mut(*id) else {
                return pd_error(404, "Not Found", &[]);
            };
            if acknowledges && inc["status"] == "triggered" {
                inc["status"] = json!("acknowledged");
                inc["acknowledgements"] = json!([{"at": "2026-11-25T08:05:00Z",
                    "acknowledger": {"id": "PUSER01", "summary": "Jane Oncall", "type": "user_reference"}}]);
            }
            answer(200, json!({"incident": inc}))
        }
        ("PUT", ["incidents", id]) => {
            let Some(inc) = w.incidents.get_mut(*id) else {
                return pd_error(404, "Not Found", &[]);
            };
            let change = &r.json["incident"];
            if change["type"] != "incident_reference" && change["type"] != "incident" {
                return pd_error(
                    400,
                    "Invalid Input Provided",
                    &["Incident type must be incident_reference."],
                );
            }
            if let Some(status) = change["status"].as_str() {
                if !["acknowledged", "resolved"].contains(&status) {
                    return pd_error(400, "Invalid Input Provided", &["Status is invalid."]);
                }
                inc["status"] = json!(status);
                if status == "acknowledged" {
                    inc["acknowledgements"] = json!([{"acknowledger": {"id": "PUSER02",
                        "summary": r.header("from"), "type": "user_reference"}}]);
                }
            }
            if let Some(level) = change.get("escalation_level") {
                let Some(level) = level.as_u64().filter(|l| (1..=5).contains(l)) else {
                    return pd_error(
                        400,
                        "Invalid Input Provided",
                        &["Escalation level is invalid."],
                    );
                };
                inc["escalation_level"] = json!(level);
            }
            if let Some(res) = change.get("resolution") {
                inc["resolution"] = res.clone();
            }
            answer(200, json!({"incident": inc}))
        }
        ("POST", ["incidents", id, "notes"]) => {
            let n = w.next();
            let Some(inc) = w.incidents.get_mut(*id) else {
                return pd_error(404, "Not Found", &[]);
            };
            let Some(content) = r.json["note"]["content"].as_str() else {
                return pd_error(
                    400,
                    "Invalid Input Provided",
                    &["Note content is required."],
                );
            };
            let note = json!({"id": format!("PNOTE{n}"), "content": content,
                              "created_at": "2026-11-25T08:06:00Z", "user": {"summary": r.header("from")}});
            if let Some(notes) = inc["notes"].as_array_mut() {
                notes.push(note.clone());
            }
            answer(201, json!({"note": note}))
        }
        _ => pd_error(404, "Not Found", &[]),
    }
}

// --- PagerDuty Events API v2 ------------------------------------------------------------------

fn pagerduty_events(r: &Req, w: &mut World) -> Answer {
    let invalid = |error: &str| {
        answer(
            400,
            json!({"status": "invalid event", "message": "Event object is invalid", "errors": [error]}),
        )
    };
    if (r.method, r.seg().as_slice()) != ("POST", ["enqueue"].as_slice()) {
        return answer(404, json!({"status": "error", "message": "not found"}));
    }
    // The routing key is the credential. An unknown key is refused here so tests can see
    // a credential problem; the real service's treatment of it is not modelled further.
    if r.field("routing_key") != Some(creds::PAGERDUTY_ROUTING_KEY) {
        return invalid("'routing_key' is invalid");
    }
    let action = r.field("event_action").unwrap_or("");
    let dedup = match r.field("dedup_key").filter(|k| !k.is_empty()) {
        Some(k) => k.to_string(),
        None if action == "trigger" => format!("generated-{}", w.next()),
        None => return invalid("'dedup_key' is required for acknowledge and resolve"),
    };
    match action {
        "trigger" => {
            let p = &r.json["payload"];
            for field in ["summary", "source"] {
                if p[field].as_str().is_none_or(str::is_empty) {
                    return invalid(&format!("'payload.{field}' is missing or blank"));
                }
            }
            if !["critical", "error", "warning", "info"]
                .contains(&p["severity"].as_str().unwrap_or(""))
            {
                return invalid(
                    "'payload.severity' must be one of critical, error, warning or info",
                );
            }
            let alert = w.pd_alerts.entry(dedup.clone()).or_insert_with(|| {
                json!({"status": "triggered", "events": 0, "summary": p["summary"],
                       "custom_details": p["custom_details"]})
            });
            if alert["status"] == "resolved" {
                alert["status"] = json!("triggered");
            }
            alert["events"] = json!(alert["events"].as_u64().unwrap_or(0) + 1);
        }
        "acknowledge" | "resolve" => {
            if let Some(alert) = w.pd_alerts.get_mut(&dedup) {
                alert["status"] = json!(if action == "resolve" {
                    "resolved"
                } else {
                    "acknowledged"
                });
                alert["events"] = json!(alert["events"].as_u64().unwrap_or(0) + 1);
            }
        }
        _ => return invalid("'event_action' must be trigger, acknowledge or resolve"),
    }
    answer(
        202,
        json!({"status": "success", "message": "Event processed", "dedup_key": dedup}),
    )
}

// --- Operations automation API (Tocsin's own contract) ---------------------------------------

fn diagnostics(r: &Req, w: &mut World) -> Answer {
    if !bearer_is(r, creds::OPS_AUTOMATION_TOKEN) {
        return answer(401, json!({"error": "unauthorized"}));
    }
    let job = |w: &mut World, kind: &str, service: &str| -> Answer {
        let (Some(host), Some(request_id)) = (r.field("host"), r.field("request_id")) else {
            return answer(400, json!({"error": "host and request_id are required"}));
        };
        if let Some(earlier) = w
            .jobs
            .values()
            .find(|j| j["request_id"] == request_id && j["kind"] == kind)
        {
            return answer(200, earlier.clone());
        }
        let id = format!("job-{}", w.next());
        let heals = if kind == "restart" {
            w.restart_heals
        } else {
            w.rollback_heals
        };
        if heals {
            w.unhealthy_hosts.remove(host);
        }
        let mut j = json!({"job_id": id, "status": "queued", "kind": kind, "service": service,
                           "host": host, "request_id": request_id, "reason": r.field("reason")});
        if kind == "rollback" {
            j["version"] = json!("2026.11.24-1");
        }
        w.jobs.insert(id, j.clone());
        answer(202, j)
    };
    match (r.method, r.seg().as_slice()) {
        ("GET", ["hosts", host, "diagnostics"]) => {
            let healthy = !w.unhealthy_hosts.contains(*host);
            let service = w.services.get(*host).cloned();
            answer(
                200,
                json!({"host": host, "service": service, "healthy": healthy,
                "alert": r.q("alert"),
                "summary": if healthy { "all checks pass" } else { "http check failing" },
                "checks": [
                    {"name": "disk", "ok": true, "detail": "41% used"},
                    {"name": "http", "ok": healthy, "detail": if healthy { "200 in 35ms" } else { "connection refused on :8080" }},
                ]}),
            )
        }
        ("POST", ["services", service, "restart"]) => job(w, "restart", service),
        ("POST", ["deployments", service, "rollback"]) => job(w, "rollback", service),
        ("GET", ["jobs", id]) => match w.jobs.get_mut(*id) {
            Some(j) => {
                j["status"] = json!("succeeded");
                j["detail"] = json!(format!(
                    "{} of {} done",
                    j["kind"].as_str().unwrap_or(""),
                    j["service"].as_str().unwrap_or("")
                ));
                answer(200, j.clone())
            }
            None => answer(404, json!({"error": "no such job"})),
        },
        _ => not_found(),
    }
}
