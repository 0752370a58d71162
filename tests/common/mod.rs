//! Test harness: a fresh database per test (a SQLite file, or a new PostgreSQL database
//! created beside `TOCSIN_TEST_POSTGRES_URL`), the real `tocsin` binary, and a real server
//! on a free loopback port.

#![allow(dead_code)]

pub mod browser;
pub mod proxy;
pub mod smtp;
pub mod stub;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub mod vendors;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named test function (taking a `TestDb`) once per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    if let Some(db) = $crate::common::TestDb::new($crate::common::Backend::Sqlite) {
                        super::$name(db);
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(db) = $crate::common::TestDb::new($crate::common::Backend::Postgres) {
                        super::$name(db);
                    }
                }
            )*
        }
    };
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database that exists for one test and is removed after it.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pub dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A fresh, empty database; `None` when PostgreSQL is not configured and not required.
    pub fn new(backend: Backend) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("tocsin.db").display());
                Some(TestDb {
                    backend,
                    url,
                    dir,
                    pg: None,
                })
            }
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var("TOCSIN_TEST_POSTGRES_URL") else {
                    if std::env::var("TOCSIN_REQUIRE_ALL_TESTS").as_deref() == Ok("1") {
                        panic!(
                            "TOCSIN_TEST_POSTGRES_URL is not set and TOCSIN_REQUIRE_ALL_TESTS=1"
                        );
                    }
                    eprintln!("skipped: TOCSIN_TEST_POSTGRES_URL is not set");
                    return None;
                };
                let name = format!(
                    "tocsin_t_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    rand::random::<u32>()
                );
                let mut admin = diesel::PgConnection::establish(&admin_url)
                    .unwrap_or_else(|e| panic!("cannot reach TOCSIN_TEST_POSTGRES_URL: {e}"));
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create test database");
                let mut url =
                    url::Url::parse(&admin_url).expect("TOCSIN_TEST_POSTGRES_URL is a URL");
                url.set_path(&name);
                Some(TestDb {
                    backend,
                    url: url.to_string(),
                    dir,
                    pg: Some((admin_url, name)),
                })
            }
        }
    }

    /// The library's handle on this database (for setup that would be slow through HTTP).
    pub fn open(&self) -> tocsin::db::Db {
        let config = tocsin::config::DatabaseConfig {
            url: self.url.clone(),
            pool_size: 2,
            ..Default::default()
        };
        tocsin::db::Db::open(&config).expect("open test database")
    }

    /// Runs raw SQL directly on the database, as someone with database access would.
    pub fn exec(&self, sql: &str) -> Result<(), String> {
        match self.backend {
            Backend::Sqlite => {
                let path = self.url.trim_start_matches("sqlite://");
                let mut c = diesel::SqliteConnection::establish(path).map_err(|e| e.to_string())?;
                c.batch_execute(sql).map_err(|e| e.to_string())
            }
            Backend::Postgres => {
                let mut c =
                    diesel::PgConnection::establish(&self.url).map_err(|e| e.to_string())?;
                c.batch_execute(sql).map_err(|e| e.to_string())
            }
        }
    }

    /// Runs a query returning one integer column named `n`.
    pub fn query_i64(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        match self.backend {
            Backend::Sqlite => {
                let path = self.url.trim_start_matches("sqlite://");
                let mut c = diesel::SqliteConnection::establish(path).expect("connect");
                diesel::sql_query(sql).get_result::<N>(&mut c).expect(sql).n
            }
            Backend::Postgres => {
                let mut c = diesel::PgConnection::establish(&self.url).expect("connect");
                diesel::sql_query(sql).get_result::<N>(&mut c).expect(sql).n
            }
        }
    }

    /// The `tocsin` binary pointed at this database, run in the test's own directory.
    pub fn tocsin(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tocsin"));
        cmd.current_dir(self.dir.path())
            .env_remove("TOCSIN_CONFIG")
            .env_remove("TOCSIN_LISTEN")
            .env_remove("TOCSIN_PUBLIC_URL")
            .env_remove("RUST_LOG")
            .env("TOCSIN_DATABASE_URL", &self.url)
            .env("TOCSIN_LOG_LEVEL", "warn");
        cmd
    }

    /// Runs the binary with `args`, asserting success, and returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.tocsin().args(args).output().expect("run tocsin");
        assert!(
            out.status.success(),
            "tocsin {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs the binary with `args` and stdin, returning the whole output.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .tocsin()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tocsin");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait tocsin")
    }

    /// Creates a user through the CLI.
    pub fn add_user(&self, username: &str, role: &str, password: &str) {
        let out = self.run_with_stdin(
            &["user", "add", username, "--role", role, "--password-stdin"],
            &format!("{password}\n"),
        );
        assert!(
            out.status.success(),
            "user add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates an API token for `username` through the CLI and returns its secret.
    pub fn token(&self, username: &str) -> String {
        self.run_ok(&["token", "create", "--user", username, "--name", "test"])
            .trim()
            .to_string()
    }

    /// Creates an ingestion source through the CLI; returns its token and HMAC secret.
    pub fn add_source(&self, name: &str, kind: &str, extra: &[&str]) -> (String, Option<String>) {
        let mut args = vec!["source", "add", name, "--kind", kind];
        args.extend_from_slice(extra);
        let out = self.run_ok(&args);
        let get = |key: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(str::to_string)
        };
        (get("token").expect("token printed"), get("hmac_secret"))
    }

    /// Every audit event, through `tocsin audit export`.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        self.run_ok(&["audit", "export", "--format", "ndjson"])
            .lines()
            .map(|l| serde_json::from_str(l).expect("NDJSON line"))
            .collect()
    }

    /// Audit events with the given action.
    pub fn audit_with_action(&self, action: &str) -> Vec<serde_json::Value> {
        self.audit_events()
            .into_iter()
            .filter(|e| e["action"] == action)
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.pg {
            if let Ok(mut admin) = diesel::PgConnection::establish(admin_url) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// A running `tocsin serve` on a free loopback port.
pub struct Server {
    child: Child,
    pub base: String,
    pub stderr_path: PathBuf,
}

impl Server {
    /// Starts the server and waits until it listens.
    pub fn start(db: &TestDb) -> Server {
        Server::start_with(db, &[])
    }

    /// Starts the server with extra environment variables.
    pub fn start_with(db: &TestDb, env: &[(&str, &str)]) -> Server {
        let ready = db
            .dir
            .path()
            .join(format!("ready-{}", COUNTER.fetch_add(1, Ordering::SeqCst)));
        let stderr_path = db.dir.path().join(format!(
            "serve-{}.log",
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let stderr = std::fs::File::create(&stderr_path).expect("log file");
        let mut cmd = db.tocsin();
        cmd.args(["serve", "--ready-file"])
            .arg(&ready)
            .env("TOCSIN_LISTEN", "127.0.0.1:0")
            .env("TOCSIN_LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn tocsin serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(addr) = std::fs::read_to_string(&ready) {
                if addr.ends_with('\n') {
                    return Server {
                        child,
                        base: format!("http://{}", addr.trim()),
                        stderr_path,
                    };
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "tocsin serve exited with {status}: {}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tocsin serve did not start in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// An absolute URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POSTs JSON with a bearer token; returns the status and the JSON answer (null if none).
    pub fn post_json(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let res = browser()
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = res.status().as_u16();
        (status, res.json().unwrap_or(serde_json::Value::Null))
    }

    /// GETs JSON with a bearer token, requiring 200.
    pub fn get_json(&self, token: &str, path: &str) -> serde_json::Value {
        let res = browser()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().expect("JSON")
    }

    /// Polls `probe` every 50 ms until it gives a value; fails after 90 s (generous: CI
    /// machines are shared) with the server's log.
    pub fn poll<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(v) = probe() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}; server log:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM, as an orderly stop does, and waits (at most 60 s) for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "tocsin serve ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the server printed to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that keeps cookies and never follows redirects (tests look at them).
pub fn browser() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The value of `name="field" value="..."` in an HTML page.
pub fn form_value(html: &str, field: &str) -> String {
    let marker = format!("name=\"{field}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {field} in page:\n{html}"))
        + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end].to_string()
}

/// Signs in through the login form; returns the client holding the session cookie.
pub fn login(server: &Server, username: &str, password: &str) -> reqwest::blocking::Client {
    let client = browser();
    sign_in(&client, server, username, password);
    client
}

/// Signs in through the login form and returns the cookies as a `Cookie` header value,
/// for clients that do not keep cookies (a long-lived stream, say).
pub fn session_cookie(server: &Server, username: &str, password: &str) -> String {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::blocking::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    sign_in(&client, server, username, password);
    let url = url::Url::parse(&server.base).expect("server URL");
    let cookies = reqwest::cookie::CookieStore::cookies(&*jar, &url).expect("cookies set");
    let header = cookies.to_str().expect("ASCII cookies").to_string();
    assert!(header.contains("tocsin_session="), "{header}");
    header
}

fn sign_in(client: &reqwest::blocking::Client, server: &Server, username: &str, password: &str) {
    let page = client.get(server.url("/login")).send().expect("GET /login");
    assert_eq!(page.status(), 200);
    let csrf = form_value(&page.text().expect("body"), "csrf_token");
    let res = client
        .post(server.url("/login"))
        .form(&[
            ("username", username),
            ("password", password),
            ("csrf_token", &csrf),
            ("next", "/"),
        ])
        .send()
        .expect("POST /login");
    assert_eq!(res.status(), 303, "login as {username} failed");
}

/// The CSRF token of a signed-in browser session, from `/api/v1/me`.
pub fn session_csrf(server: &Server, client: &reqwest::blocking::Client) -> String {
    let me: serde_json::Value = client
        .get(server.url("/api/v1/me"))
        .send()
        .expect("GET /api/v1/me")
        .json()
        .expect("JSON");
    me["csrf_token"].as_str().expect("csrf_token").to_string()
}

/// A TheHive alert with an IP observable, the simplest alert to ingest.
pub fn hive_alert(reference: &str, title: &str, ip: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "external", "source": "siem", "sourceRef": reference, "title": title,
        "description": "from the test", "severity": 2, "date": 1795600800000u64,
        "observables": [ { "dataType": "ip", "data": ip } ]
    })
}

/// A path inside the test database's directory.
pub fn path_in(db: &TestDb, name: &str) -> PathBuf {
    Path::new(db.dir.path()).join(name)
}

/// The server's scheduler clock, shifted through `TOCSIN_TEST_CLOCK_FILE` so a test can
/// move time forward (a one-hour deadline passes at once). Every server started with
/// [`TestClock::env`] on this database reads the same offset, across restarts.
pub struct TestClock {
    path: PathBuf,
    offset: std::sync::Mutex<Duration>,
}

impl TestClock {
    /// A clock at the system time (offset 0) kept in the test's directory.
    pub fn new(db: &TestDb) -> TestClock {
        let path = path_in(db, "clock-offset");
        std::fs::write(&path, "0\n").expect("write clock offset");
        TestClock {
            path,
            offset: std::sync::Mutex::new(Duration::ZERO),
        }
    }

    /// The variable that points `tocsin serve` at this clock.
    pub fn env(&self) -> (String, String) {
        (
            "TOCSIN_TEST_CLOCK_FILE".into(),
            self.path.display().to_string(),
        )
    }

    /// Moves the servers' time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap();
        *offset += by;
        std::fs::write(&self.path, format!("{}s\n", offset.as_secs())).expect("write clock offset");
    }
}

/// Writes `playbooks` (id → YAML, where `STUB` stands for `stub_base`) into the test's
/// `playbooks/` folder, and creates an empty `integrations/` beside it.
pub fn write_playbooks(db: &TestDb, stub_base: &str, playbooks: &[(&str, &str)]) {
    let dir = db.dir.path().join("playbooks");
    std::fs::create_dir_all(&dir).expect("playbooks dir");
    std::fs::create_dir_all(db.dir.path().join("integrations")).expect("integrations dir");
    for (id, yaml) in playbooks {
        std::fs::write(
            dir.join(format!("{id}.yaml")),
            yaml.replace("STUB", stub_base),
        )
        .expect("write playbook");
    }
}
