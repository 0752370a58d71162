//! A real browser for console tests: headless Chromium driven over WebDriver by
//! chromedriver (Debian's `chromium` and `chromium-driver`), through fantoccini.
//!
//! Without chromedriver the tests that need it are skipped, unless
//! `TOCSIN_REQUIRE_ALL_TESTS=1`, which makes the skip a failure. `TOCSIN_CHROMEDRIVER` and
//! `TOCSIN_CHROMIUM` point at other binaries. Screenshots go to
//! `$CARGO_TARGET_TMPDIR/screenshots/` (or `TOCSIN_SCREENSHOT_DIR`).

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `wait_*` helpers wait; generous, CI machines are shared.
const PATIENCE: Duration = Duration::from_secs(30);

/// A headless Chromium session with its chromedriver; both end when this is dropped.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn find_binary(var: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(var) {
        return Some(PathBuf::from(path));
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            let name = candidates.first()?.rsplit('/').next()?;
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|p| p.is_file())
            })
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; `None` (skip) when they are not
    /// installed and not required.
    pub fn start() -> Option<Browser> {
        let driver = find_binary(
            "TOCSIN_CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        );
        let chromium = find_binary("TOCSIN_CHROMIUM", &["/usr/bin/chromium"]);
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            if std::env::var("TOCSIN_REQUIRE_ALL_TESTS").as_deref() == Ok("1") {
                panic!(
                    "chromedriver or chromium not found (apt-get install chromium chromium-driver) \
                     and TOCSIN_REQUIRE_ALL_TESTS=1"
                );
            }
            eprintln!("skipped: chromedriver or chromium is not installed");
            return None;
        };
        let port = free_port();
        let mut child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", driver.display()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                // Headless as root in a container, and no background traffic: this
                // machine's network is closed and Chromium would keep trying.
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let attempt = rt.block_on(
                ClientBuilder::new(connector)
                    .capabilities(caps.clone())
                    .connect(&url),
            );
            match attempt {
                Ok(client) => break client,
                Err(err) => {
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        panic!("no WebDriver session from {}: {err}", driver.display());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        Some(Browser {
            rt,
            client: Some(client),
            driver: child,
            _profile: profile,
        })
    }

    fn c(&self) -> &Client {
        self.client.as_ref().expect("browser session")
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.rt
            .block_on(self.c().goto(url))
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.rt
            .block_on(self.c().current_url())
            .expect("current url")
            .to_string()
    }

    /// The element matching `css`, waiting for it to appear.
    pub fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(el) = self.rt.block_on(self.c().find(Locator::Css(css))) {
                return el;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} on {}:\n{}",
                self.url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every element matching `css` now (possibly none).
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        self.rt
            .block_on(self.c().find_all(Locator::Css(css)))
            .unwrap_or_default()
    }

    /// Whether an element matching `css` is on the page now.
    pub fn exists(&self, css: &str) -> bool {
        !self.find_all(css).is_empty()
    }

    /// Clicks the element matching `css`.
    pub fn click(&self, css: &str) {
        let el = self.find(css);
        self.rt
            .block_on(el.click())
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Replaces the value of the field matching `css` with `text`.
    pub fn fill(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.rt.block_on(el.clear()).ok();
        self.rt
            .block_on(el.send_keys(text))
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Chooses the option with `value` in the select matching `css`.
    pub fn select(&self, css: &str, value: &str) {
        let el = self.find(css);
        self.rt
            .block_on(el.select_by_value(value))
            .unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    /// The visible text of the element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let el = self.find(css);
        self.rt.block_on(el.text()).unwrap_or_default()
    }

    /// The page's HTML as the browser has it now.
    pub fn source(&self) -> String {
        self.rt.block_on(self.c().source()).unwrap_or_default()
    }

    /// Runs `script` in the page and returns its value.
    pub fn execute(&self, script: &str) -> serde_json::Value {
        self.rt
            .block_on(self.c().execute(script, vec![]))
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Presses keys on the focused element (for keyboard-only paths).
    pub fn keys(&self, keys: &str) {
        let active = self
            .rt
            .block_on(self.c().active_element())
            .expect("active element");
        self.rt
            .block_on(active.send_keys(keys))
            .unwrap_or_else(|e| panic!("keys: {e}"));
    }

    /// Waits until the text of the element matching `css` satisfies `ok`.
    pub fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self
                .find_all(css)
                .into_iter()
                .map(|el| self.rt.block_on(el.text()).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n");
            if ok(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what} in {css} on {}; it reads:\n{text}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until an element matching `css` exists.
    pub fn wait_for(&self, css: &str) {
        self.find(css);
    }

    /// Saves a PNG of the page as `<name>.png` in the screenshot folder; returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let dir = std::env::var_os("TOCSIN_SCREENSHOT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots"));
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let png = self.rt.block_on(self.c().screenshot()).expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Signs in through the login page as `username`.
    pub fn login(&self, server: &super::Server, username: &str, password: &str) {
        self.goto(&server.url("/login"));
        self.fill("input[name=username]", username);
        self.fill("input[name=password]", password);
        self.click("form button[type=submit]");
        let deadline = Instant::now() + PATIENCE;
        while self.url().contains("/login") {
            assert!(
                Instant::now() < deadline,
                "sign-in as {username} did not leave the login page:\n{}",
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
