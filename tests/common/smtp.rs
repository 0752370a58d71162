//! A small SMTP server on loopback for e-mail tests: speaks enough of the protocol (EHLO or
//! HELO, STARTTLS, MAIL FROM, RCPT TO, DATA, RSET, NOOP, QUIT) to accept and keep messages,
//! over plain TCP, STARTTLS or implicit TLS with a certificate from a CA made for the test,
//! and can be told to refuse mail with a temporary error or a recipient with a permanent
//! one. Also decodes the MIME parts tests read.

use base64::Engine;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A message as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, dot-stuffing removed.
    pub data: String,
    /// Whether it came over TLS.
    pub tls: bool,
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    refuse: bool,
    refused: u32,
    /// Recipients answered `550` (a permanent failure).
    unknown: HashSet<String>,
    /// TLS handshakes that failed (the client did not trust the certificate).
    failed_handshakes: u32,
}

/// How the sink protects connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Plain,
    /// Plain first; `STARTTLS` is offered and required before `MAIL FROM`.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

/// The sink's certificate: a leaf for 127.0.0.1 and localhost signed by a CA made here.
pub struct TestCa {
    /// The CA certificate, PEM: what a client must trust.
    pub ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

impl TestCa {
    /// A fresh CA and a server certificate signed by it.
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Tocsin test relay CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("server params");
        let leaf = params
            .signed_by(&key, &ca, &ca_key)
            .expect("server certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server TLS config");
        TestCa {
            ca_pem: ca.pem(),
            server: Arc::new(server),
        }
    }
}

/// The running sink.
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    pub security: Security,
    state: Arc<Mutex<State>>,
}

/// A connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

impl SmtpSink {
    /// Starts a plain sink on a free port; runs until the test process ends.
    pub fn start() -> SmtpSink {
        SmtpSink::launch(Security::Plain, None)
    }

    /// Starts a sink speaking `security` with `ca`'s server certificate.
    pub fn start_tls(security: Security, ca: &TestCa) -> SmtpSink {
        SmtpSink::launch(security, Some(ca.server.clone()))
    }

    fn launch(security: Security, tls: Option<Arc<rustls::ServerConfig>>) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind SMTP sink");
        let port = listener.local_addr().expect("addr").port();
        let state: Arc<Mutex<State>> = Arc::default();
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                let tls = tls.clone();
                std::thread::spawn(move || {
                    let _ = session(conn, &s, security, tls);
                });
            }
        });
        SmtpSink {
            port,
            security,
            state,
        }
    }

    /// The environment that points `tocsin serve` at this sink.
    pub fn env(&self) -> Vec<(String, String)> {
        let tls = match self.security {
            Security::Plain => "none",
            Security::StartTls => "starttls",
            Security::Implicit => "tls",
        };
        vec![
            ("TOCSIN_SMTP_HOST".into(), "127.0.0.1".into()),
            ("TOCSIN_SMTP_PORT".into(), self.port.to_string()),
            ("TOCSIN_SMTP_TLS".into(), tls.into()),
            (
                "TOCSIN_EMAIL_FROM".into(),
                "Tocsin <soc@example.org>".into(),
            ),
            ("TOCSIN_EMAIL_POLL_INTERVAL_MS".into(), "50".into()),
            ("TOCSIN_EMAIL_RETRY_SECONDS".into(), "1".into()),
        ]
    }

    /// Answer MAIL FROM with `451` (temporary failure) while `refuse` is set.
    pub fn set_refuse(&self, refuse: bool) {
        self.state.lock().unwrap().refuse = refuse;
    }

    /// Answer RCPT TO `address` with `550` (mailbox unavailable: a permanent failure).
    pub fn unknown_mailbox(&self, address: &str) {
        self.state
            .lock()
            .unwrap()
            .unknown
            .insert(address.to_string());
    }

    /// How many messages were refused.
    pub fn refused(&self) -> u32 {
        self.state.lock().unwrap().refused
    }

    /// How many TLS handshakes failed.
    pub fn failed_handshakes(&self) -> u32 {
        self.state.lock().unwrap().failed_handshakes
    }

    /// Every message accepted so far.
    pub fn messages(&self) -> Vec<Received> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Messages accepted for `address`.
    pub fn to(&self, address: &str) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == address))
            .collect()
    }

    /// Waits (at most 30 s) until `address` has received `n` messages; returns them.
    pub fn wait_for(&self, address: &str, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.to(address);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{address} did not receive {n} message(s); the sink has {:#?}",
                self.messages()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most 30 s) until at least `n` TLS handshakes failed.
    pub fn wait_failed_handshakes(&self, n: u32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.failed_handshakes() < n {
            assert!(
                Instant::now() < deadline,
                "{} TLS handshake(s) failed, expected {n}",
                self.failed_handshakes()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most 30 s) until at least `n` messages were refused.
    pub fn wait_refused(&self, n: u32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.refused() < n {
            assert!(
                Instant::now() < deadline,
                "the sink refused {} message(s), expected {n}",
                self.refused()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn path_arg(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line.rfind('>').unwrap_or(line.len());
    line[start..end.max(start)].to_string()
}

/// Completes a server TLS handshake on `tcp`; counts a failure (an untrusted
/// certificate makes the client abort here).
fn handshake(
    tcp: TcpStream,
    config: &Arc<rustls::ServerConfig>,
    state: &Mutex<State>,
) -> std::io::Result<Conn> {
    let mut server =
        rustls::ServerConnection::new(config.clone()).map_err(std::io::Error::other)?;
    let mut tcp = tcp;
    while server.is_handshaking() {
        match server.complete_io(&mut tcp) {
            // No progress: the client went away mid-handshake.
            Ok((0, 0)) => {
                state.lock().unwrap().failed_handshakes += 1;
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok(_) => {}
            Err(e) => {
                state.lock().unwrap().failed_handshakes += 1;
                return Err(e);
            }
        }
    }
    Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(server, tcp))))
}

fn reply(input: &mut BufReader<Conn>, text: &[u8]) -> std::io::Result<()> {
    let out = input.get_mut();
    out.write_all(text)?;
    out.flush()
}

fn session(
    tcp: TcpStream,
    state: &Mutex<State>,
    security: Security,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    let conn = match (security, &tls) {
        (Security::Implicit, Some(config)) => handshake(tcp, config, state)?,
        _ => Conn::Plain(tcp),
    };
    let mut secure = matches!(conn, Conn::Tls(_));
    let mut input = BufReader::new(conn);
    reply(&mut input, b"220 sink.test ESMTP test sink\r\n")?;
    let mut from = String::new();
    let mut to = Vec::new();
    loop {
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            if security == Security::StartTls && !secure {
                reply(
                    &mut input,
                    b"250-sink.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
                )?;
            } else {
                reply(&mut input, b"250-sink.test\r\n250 8BITMIME\r\n")?;
            }
        } else if upper.starts_with("HELO") {
            reply(&mut input, b"250 sink.test\r\n")?;
        } else if upper == "STARTTLS" && security == Security::StartTls && !secure {
            reply(&mut input, b"220 2.0.0 ready to start TLS\r\n")?;
            let Conn::Plain(tcp) = input.into_inner() else {
                unreachable!("not yet secure");
            };
            let config = tls.as_ref().expect("a STARTTLS sink has a certificate");
            input = BufReader::new(handshake(tcp, config, state)?);
            secure = true;
            from.clear();
            to.clear();
        } else if upper.starts_with("MAIL FROM:") {
            if security != Security::Plain && !secure {
                reply(
                    &mut input,
                    b"530 5.7.0 must issue a STARTTLS command first\r\n",
                )?;
                continue;
            }
            let refuse = {
                let mut s = state.lock().unwrap();
                if s.refuse {
                    s.refused += 1;
                }
                s.refuse
            };
            if refuse {
                reply(&mut input, b"451 4.3.0 test sink refuses mail for now\r\n")?;
            } else {
                from = path_arg(&line);
                to.clear();
                reply(&mut input, b"250 2.1.0 ok\r\n")?;
            }
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = path_arg(&line);
            let unknown = {
                let mut s = state.lock().unwrap();
                let unknown = s.unknown.contains(&rcpt);
                if unknown {
                    s.refused += 1;
                }
                unknown
            };
            if unknown {
                reply(&mut input, b"550 5.1.1 mailbox unavailable\r\n")?;
            } else {
                to.push(rcpt);
                reply(&mut input, b"250 2.1.5 ok\r\n")?;
            }
        } else if upper == "DATA" {
            reply(&mut input, b"354 end with <CRLF>.<CRLF>\r\n")?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if input.read_line(&mut l)? == 0 {
                    return Ok(());
                }
                if l == ".\r\n" || l == ".\n" {
                    break;
                }
                let l = l.strip_prefix('.').unwrap_or(&l);
                data.push_str(l);
            }
            state.lock().unwrap().messages.push(Received {
                from: from.clone(),
                to: std::mem::take(&mut to),
                data,
                tls: secure,
            });
            reply(&mut input, b"250 2.0.0 queued\r\n")?;
        } else if upper == "RSET" || upper == "NOOP" {
            reply(&mut input, b"250 ok\r\n")?;
        } else if upper == "QUIT" {
            reply(&mut input, b"221 bye\r\n")?;
            return Ok(());
        } else {
            reply(&mut input, b"502 command not implemented\r\n")?;
        }
    }
}

fn split_head(s: &str) -> (&str, &str) {
    match s.find("\r\n\r\n") {
        Some(i) => (&s[..i], &s[i + 4..]),
        None => match s.find("\n\n") {
            Some(i) => (&s[..i], &s[i + 2..]),
            None => (s, ""),
        },
    }
}

/// A header's value (continuation lines joined), case-insensitive name.
pub fn header(head: &str, name: &str) -> Option<String> {
    let mut value: Option<String> = None;
    let mut current = false;
    for line in head.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            if current {
                if let Some(v) = value.as_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            }
            continue;
        }
        current = false;
        if let Some((n, v)) = line.split_once(':') {
            if n.trim().eq_ignore_ascii_case(name) && value.is_none() {
                value = Some(v.trim().to_string());
                current = true;
            }
        }
    }
    value
}

fn decode_qp(body: &str) -> String {
    let joined = body.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

fn decode(head: &str, body: &str) -> String {
    match header(head, "Content-Transfer-Encoding")
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("quoted-printable") => decode_qp(body),
        Some("base64") => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .expect("base64 body");
            String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
        }
        _ => body.replace("\r\n", "\n"),
    }
}

impl Received {
    /// The message's headers.
    pub fn head(&self) -> &str {
        split_head(&self.data).0
    }

    /// A header of the message.
    pub fn header(&self, name: &str) -> Option<String> {
        header(self.head(), name)
    }

    /// The decoded part of `mime` type (`text/plain`, `text/html`), single-part or within
    /// a multipart message.
    pub fn part(&self, mime: &str) -> Option<String> {
        let (head, body) = split_head(&self.data);
        let ctype = header(head, "Content-Type").unwrap_or_default();
        if !ctype.to_ascii_lowercase().starts_with("multipart/") {
            return ctype
                .to_ascii_lowercase()
                .starts_with(mime)
                .then(|| decode(head, body));
        }
        let boundary = ctype
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))
            .map(|b| b.trim_matches('"').to_string())?;
        let marker = format!("--{boundary}");
        for chunk in body.split(&marker).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            let chunk = chunk.trim_start_matches("\r\n").trim_start_matches('\n');
            let (h, b) = split_head(chunk);
            let t = header(h, "Content-Type").unwrap_or_default();
            if t.to_ascii_lowercase().starts_with(mime) {
                return Some(decode(h, b.trim_end()));
            }
        }
        None
    }

    /// The plain-text part.
    pub fn text(&self) -> String {
        self.part("text/plain")
            .unwrap_or_else(|| panic!("no text/plain part in {}", self.data))
    }

    /// The HTML part.
    pub fn html(&self) -> String {
        self.part("text/html")
            .unwrap_or_else(|| panic!("no text/html part in {}", self.data))
    }

    /// The first link in the text part ending in `/approve` or `/reject`.
    pub fn link(&self, decision: &str) -> String {
        let text = self.text();
        let re = regex::Regex::new(&format!(r"https?://\S+/link/[A-Za-z0-9_-]+/{decision}"))
            .expect("regex");
        re.find(&text)
            .unwrap_or_else(|| panic!("no {decision} link in:\n{text}"))
            .as_str()
            .to_string()
    }
}
