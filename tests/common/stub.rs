//! A small scriptable HTTP server on loopback for engine tests: counts requests per
//! path, records bodies, and can answer late, fail the first N requests, or answer with
//! a given status. Every answer is JSON: `{"path", "n", "body"}`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How one path answers.
#[derive(Debug, Clone, Default)]
pub struct Behavior {
    /// Answer 503 to this many requests first.
    pub fail_first: u32,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Status of a normal answer (200 when 0).
    pub status: u16,
}

#[derive(Default)]
struct State {
    hits: HashMap<String, u32>,
    bodies: HashMap<String, Vec<String>>,
    behaviors: HashMap<String, Behavior>,
    headers: HashMap<String, Vec<HashMap<String, String>>>,
}

/// The running stub.
#[derive(Clone)]
pub struct Stub {
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl Stub {
    /// Starts on a free port; runs until the test process ends.
    pub fn start() -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stub");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &s);
                });
            }
        });
        Stub { base, state }
    }

    /// Sets how `path` answers (a path ending in `/` also sets every path under it).
    pub fn behave(&self, path: &str, b: Behavior) {
        self.state
            .lock()
            .unwrap()
            .behaviors
            .insert(path.to_string(), b);
    }

    /// Requests received on `path` (answered or not).
    pub fn hits(&self, path: &str) -> u32 {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Requests received on every path whose name starts with `prefix`.
    pub fn hits_under(&self, prefix: &str) -> HashMap<String, u32> {
        self.state
            .lock()
            .unwrap()
            .hits
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(p, n)| (p.clone(), *n))
            .collect()
    }

    /// Bodies received on `path`, in order.
    pub fn bodies(&self, path: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .bodies
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// Headers (lower-case names) of the requests received on `path`.
    pub fn headers(&self, path: &str) -> Vec<HashMap<String, String>> {
        self.state
            .lock()
            .unwrap()
            .headers
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// An absolute URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

fn serve(stream: TcpStream, state: &Arc<Mutex<State>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).to_string();
    let (n, behavior) = {
        let mut s = state.lock().unwrap();
        let n = {
            let c = s.hits.entry(path.clone()).or_insert(0);
            *c += 1;
            *c
        };
        s.bodies.entry(path.clone()).or_default().push(body.clone());
        s.headers.entry(path.clone()).or_default().push(headers);
        // An exact path, else the longest key ending in `/` that prefixes it.
        let behavior = s.behaviors.get(&path).cloned().or_else(|| {
            s.behaviors
                .iter()
                .filter(|(k, _)| k.ends_with('/') && path.starts_with(k.as_str()))
                .max_by_key(|(k, _)| k.len())
                .map(|(_, b)| b.clone())
        });
        (n, behavior.unwrap_or_default())
    };
    std::thread::sleep(behavior.delay);
    let status = if n <= behavior.fail_first {
        503
    } else if behavior.status == 0 {
        200
    } else {
        behavior.status
    };
    let echoed: serde_json::Value =
        serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    let payload = serde_json::json!({ "path": path, "n": n, "body": echoed }).to_string();
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )?;
    out.flush()
}
