//! One typed configuration, read from `tocsin.toml` and then `TOCSIN_*` environment variables.

use crate::cases::correlate::{CorrelationField, DEFAULT_CORRELATION};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The file read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "tocsin.toml";
/// The embedded default database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/tocsin.db";

/// A configuration that could not be loaded, always naming the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    fn invalid(key: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

/// The whole configuration of a Tocsin process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds, `host:port`.
    pub listen: String,
    /// Base URL that people and emails use to reach this server; derived from `listen` when empty.
    pub public_url: Option<String>,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub ingest: IngestConfig,
    pub cases: CasesConfig,
    pub playbooks: PlaybooksConfig,
    pub engine: EngineConfig,
    pub email: EmailConfig,
    pub approvals: ApprovalsConfig,
    pub retention: RetentionConfig,
}

/// Where data lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://...`.
    pub url: String,
    /// Connections kept in the pool.
    pub pool_size: u32,
    /// SQLite `synchronous` pragma: `full` (durable across power loss) or `normal`.
    pub sqlite_synchronous: SqliteSynchronous,
    /// How long a SQLite connection waits for a lock before giving up, in milliseconds.
    pub busy_timeout_ms: u32,
}

/// SQLite's `synchronous` pragma values that keep WAL databases consistent.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    Full,
    Normal,
}

/// Logging output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` for people, `json` for log shippers.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `tocsin=debug,actix_web=info`.
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// HTTP server limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest JSON request body accepted on the API, in bytes.
    pub max_body_bytes: usize,
    /// Largest HTML form body accepted by the console, in bytes.
    pub max_form_bytes: usize,
    /// Worker threads for the HTTP server; 0 means one per core.
    pub workers: usize,
    /// On SIGTERM, seconds that requests in flight may take to finish (new connections
    /// are refused at once).
    pub shutdown_grace_seconds: u64,
}

/// How long data is kept. Audit events are never deleted: the chain stays verifiable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days an alert's raw payload is kept after the alert was last seen; 0 keeps it
    /// forever. The normalized alert and its observables stay.
    pub raw_payload_days: u32,
    /// Days a closed case (with its alerts, comments and playbook runs) is kept after it
    /// was closed; 0 keeps closed cases forever.
    pub closed_case_days: u32,
    /// Minutes between two retention passes of `tocsin serve`.
    pub interval_minutes: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            raw_payload_days: 0,
            closed_case_days: 0,
            interval_minutes: 60,
        }
    }
}

/// Sessions, tokens and login throttling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// A console session ends this many minutes after login, whatever happens.
    pub session_lifetime_minutes: u32,
    /// A console session ends after this many minutes without a request.
    pub session_idle_minutes: u32,
    /// Login attempts allowed per minute for one username from one address.
    pub login_attempts_per_minute: u32,
    /// Login attempts allowed per minute from one address, whatever the username.
    pub login_attempts_per_minute_per_ip: u32,
    /// How long a first-admin setup link stays valid, in minutes.
    pub setup_link_minutes: u32,
    /// Mark cookies `Secure`; `auto` means when `public_url` is https.
    pub secure_cookies: SecureCookies,
}

/// Alert ingestion limits and the group-commit writer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest ingestion request body, in bytes.
    pub max_body_bytes: usize,
    /// Most events accepted in one request.
    pub max_events_per_request: usize,
    /// Requests waiting for the writer before new ones get 503.
    pub queue_capacity: usize,
    /// Most alerts committed in one shared transaction.
    pub max_alerts_per_commit: usize,
    /// How long a source's settings are cached before being read again, in seconds.
    pub source_cache_seconds: u64,
}

/// Deduplication, grouping and SLA targets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CasesConfig {
    /// A repeat of an alert (same source and fingerprint) within this many minutes of its
    /// last sighting increments its counter instead of adding a row.
    pub dedup_window_minutes: u32,
    /// Alerts with the same correlation key join an open case last seen within this many minutes.
    pub correlation_window_minutes: u32,
    /// What the correlation key is made of.
    pub correlate_by: Vec<CorrelationField>,
    /// Time to acknowledge and to resolve, by severity.
    pub sla: SlaConfig,
}

/// Where playbooks and integrations live, and what they may waive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlaybooksConfig {
    /// Folder of playbook YAML files.
    pub dir: PathBuf,
    /// Folder of integration YAML files.
    pub integrations_dir: PathBuf,
    /// Allow `waive_approval: true` on containment steps.
    pub allow_approval_waivers: bool,
    /// Allow approval gates with `on_timeout: approve`.
    pub allow_approve_on_timeout: bool,
    /// A TOML file of integration secrets (`NAME = "value"`), read besides the
    /// `TOCSIN_SECRET_<NAME>` environment variables; keep it readable by Tocsin only.
    pub secrets_file: Option<PathBuf>,
    /// Per-deployment values of playbook inputs, replacing their defaults:
    /// playbook id → input name → value (a Jira project key, a PagerDuty service id).
    pub inputs: std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

impl Default for PlaybooksConfig {
    fn default() -> Self {
        PlaybooksConfig {
            dir: PathBuf::from("playbooks"),
            integrations_dir: PathBuf::from("integrations"),
            allow_approval_waivers: false,
            allow_approve_on_timeout: false,
            secrets_file: None,
            inputs: Default::default(),
        }
    }
}

/// The playbook engine in `serve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Run playbooks in this process (false: serve HTTP only).
    pub enabled: bool,
    /// Runs driven at once by this process.
    pub max_concurrent_runs: usize,
    /// Seconds a process holds a run before another may take it over (renewed while it
    /// works); after a crash, its runs resume once this has passed.
    pub lease_seconds: u32,
    /// Longest a step attempt may take when the step sets no `timeout`, e.g. `10m`.
    pub default_step_timeout: String,
    /// Most alerts of a case put in a run's context (`$.alerts`), newest first.
    pub max_context_alerts: usize,
    /// On SIGTERM, how long calls in flight may take to finish before the process exits
    /// (their runs then resume at the next start), in seconds.
    pub shutdown_grace_seconds: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            enabled: true,
            max_concurrent_runs: 256,
            lease_seconds: 30,
            default_step_timeout: "10m".into(),
            max_context_alerts: 100,
            shutdown_grace_seconds: 30,
        }
    }
}

/// Outgoing e-mail (approval requests, `notify.email`). Without `host`, e-mail stays in the
/// outbox, readable by admins, and nothing is sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// The sender, `Name <address>` or `address`.
    pub from: String,
    /// SMTP relay host; empty: keep e-mail in the outbox.
    pub host: String,
    /// SMTP port; 0 means the usual one for `tls` (25 none, 587 starttls, 465 tls).
    pub port: u16,
    /// `none`, `starttls` or `tls` (implicit TLS).
    pub tls: SmtpTls,
    /// SMTP user name; the password comes from `TOCSIN_SMTP_PASSWORD`, never from the file.
    pub username: String,
    /// Delivery attempts before a message is marked `failed`.
    pub max_attempts: u32,
    /// Wait before the first retry, doubled after each failure (at most an hour).
    pub retry_seconds: u32,
    /// How often the sender looks for queued e-mail, in milliseconds.
    pub poll_interval_ms: u64,
    /// Longest one SMTP conversation may take.
    pub timeout_seconds: u32,
    /// A PEM file of CA certificates trusted for the relay besides the public roots (an
    /// internal relay with a private CA).
    pub ca_file: Option<PathBuf>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            from: "Tocsin <tocsin@localhost>".into(),
            host: String::new(),
            port: 0,
            tls: SmtpTls::Starttls,
            username: String::new(),
            max_attempts: 8,
            retry_seconds: 30,
            poll_interval_ms: 1000,
            timeout_seconds: 30,
            ca_file: None,
        }
    }
}

impl EmailConfig {
    /// The port to connect to.
    pub fn effective_port(&self) -> u16 {
        match (self.port, self.tls) {
            (0, SmtpTls::None) => 25,
            (0, SmtpTls::Starttls) => 587,
            (0, SmtpTls::Tls) => 465,
            (p, _) => p,
        }
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

/// Approval links and gates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// Actions whose e-mail links also need the approver signed in to the console as the
    /// same user: exact names (`edr.isolate_host`), prefixes ending in `*` (`firewall.*`),
    /// or `*` for every gate. Empty: the link alone is enough.
    pub links_require_login_for: Vec<String>,
}

impl ApprovalsConfig {
    /// Whether deciding `action` through an e-mail link needs a console session too.
    pub fn link_needs_login(&self, action: &str) -> bool {
        self.links_require_login_for
            .iter()
            .any(|p| match p.strip_suffix('*') {
                Some(prefix) => action.starts_with(prefix),
                None => p == action,
            })
    }
}

/// SLA targets per severity.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaConfig {
    pub fatal: SlaTarget,
    pub critical: SlaTarget,
    pub high: SlaTarget,
    pub medium: SlaTarget,
    pub low: SlaTarget,
    pub informational: SlaTarget,
    pub unknown: SlaTarget,
}

/// Minutes to acknowledge (leave `new`) and to resolve; 0 means no target.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SlaTarget {
    pub ack_minutes: u32,
    pub resolve_minutes: u32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: 10 * 1024 * 1024,
            max_events_per_request: 10_000,
            queue_capacity: 1024,
            max_alerts_per_commit: 5_000,
            source_cache_seconds: 10,
        }
    }
}

impl Default for CasesConfig {
    fn default() -> Self {
        CasesConfig {
            dedup_window_minutes: 60,
            correlation_window_minutes: 24 * 60,
            correlate_by: DEFAULT_CORRELATION.to_vec(),
            sla: SlaConfig::default(),
        }
    }
}

impl Default for SlaConfig {
    fn default() -> Self {
        let t = |ack_minutes, resolve_minutes| SlaTarget {
            ack_minutes,
            resolve_minutes,
        };
        SlaConfig {
            fatal: t(15, 4 * 60),
            critical: t(15, 4 * 60),
            high: t(60, 24 * 60),
            medium: t(4 * 60, 3 * 24 * 60),
            low: t(24 * 60, 7 * 24 * 60),
            informational: t(0, 0),
            unknown: t(24 * 60, 7 * 24 * 60),
        }
    }
}

/// Whether session cookies carry the `Secure` attribute.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookies {
    Auto,
    Always,
    Never,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            database: DatabaseConfig::default(),
            log: LogConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            ingest: IngestConfig::default(),
            cases: CasesConfig::default(),
            playbooks: PlaybooksConfig::default(),
            engine: EngineConfig::default(),
            email: EmailConfig::default(),
            approvals: ApprovalsConfig::default(),
            retention: RetentionConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: DEFAULT_DATABASE_URL.into(),
            pool_size: 8,
            sqlite_synchronous: SqliteSynchronous::Full,
            busy_timeout_ms: 10_000,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 1024 * 1024,
            max_form_bytes: 64 * 1024,
            workers: 0,
            shutdown_grace_seconds: 30,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_lifetime_minutes: 12 * 60,
            session_idle_minutes: 60,
            login_attempts_per_minute: 5,
            login_attempts_per_minute_per_ip: 30,
            setup_link_minutes: 60,
            secure_cookies: SecureCookies::Auto,
        }
    }
}

/// Environment variables that override the file, with the key each one sets.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("TOCSIN_LISTEN", "listen"),
    ("TOCSIN_PUBLIC_URL", "public_url"),
    ("TOCSIN_DATABASE_URL", "database.url"),
    ("TOCSIN_DATABASE_POOL_SIZE", "database.pool_size"),
    ("TOCSIN_LOG_FORMAT", "log.format"),
    ("TOCSIN_LOG_LEVEL", "log.level"),
    ("TOCSIN_ENGINE_ENABLED", "engine.enabled"),
    ("TOCSIN_ENGINE_LEASE_SECONDS", "engine.lease_seconds"),
    (
        "TOCSIN_ENGINE_SHUTDOWN_GRACE_SECONDS",
        "engine.shutdown_grace_seconds",
    ),
    (
        "TOCSIN_HTTP_SHUTDOWN_GRACE_SECONDS",
        "http.shutdown_grace_seconds",
    ),
    ("TOCSIN_INGEST_QUEUE_CAPACITY", "ingest.queue_capacity"),
    (
        "TOCSIN_RETENTION_RAW_PAYLOAD_DAYS",
        "retention.raw_payload_days",
    ),
    (
        "TOCSIN_RETENTION_CLOSED_CASE_DAYS",
        "retention.closed_case_days",
    ),
    ("TOCSIN_PLAYBOOKS_DIR", "playbooks.dir"),
    (
        "TOCSIN_PLAYBOOKS_INTEGRATIONS_DIR",
        "playbooks.integrations_dir",
    ),
    ("TOCSIN_SECRETS_FILE", "playbooks.secrets_file"),
    ("TOCSIN_PLAYBOOK_INPUTS", "playbooks.inputs"),
    ("TOCSIN_SMTP_HOST", "email.host"),
    ("TOCSIN_SMTP_PORT", "email.port"),
    ("TOCSIN_SMTP_TLS", "email.tls"),
    ("TOCSIN_SMTP_USERNAME", "email.username"),
    ("TOCSIN_SMTP_CA_FILE", "email.ca_file"),
    ("TOCSIN_EMAIL_FROM", "email.from"),
    ("TOCSIN_EMAIL_RETRY_SECONDS", "email.retry_seconds"),
    ("TOCSIN_EMAIL_POLL_INTERVAL_MS", "email.poll_interval_ms"),
    ("TOCSIN_EMAIL_MAX_ATTEMPTS", "email.max_attempts"),
];

impl Config {
    /// Loads the file (the explicit one must exist; the default one may be absent), applies
    /// `TOCSIN_*` overrides from `env`, and validates the result.
    pub fn load(
        explicit: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config = match explicit {
            Some(path) => Self::from_file(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                Self::from_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses one TOML file, naming the offending key on error.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text; the error names the key path and the reason.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let deserializer = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let message = inner.message().to_string();
            let position = inner
                .span()
                .map(|span| {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            if path == "." || path.is_empty() {
                format!("{message}{position}")
            } else {
                format!("key `{path}`: {message}{position}")
            }
        })
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for (var, key) in ENV_OVERRIDES {
            let Some(value) = env(var) else { continue };
            let bad = |reason: String| ConfigError::invalid(key, format!("from {var}: {reason}"));
            match *key {
                "listen" => self.listen = value,
                "public_url" => self.public_url = Some(value),
                "database.url" => self.database.url = value,
                "database.pool_size" => {
                    self.database.pool_size =
                        value.parse().map_err(|e| bad(format!("{e}: {value:?}")))?
                }
                "log.format" => {
                    self.log.format = match value.as_str() {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        _ => return Err(bad(format!("expected `text` or `json`, got {value:?}"))),
                    }
                }
                "log.level" => self.log.level = value,
                "engine.enabled" => {
                    self.engine.enabled =
                        value.parse().map_err(|e| bad(format!("{e}: {value:?}")))?
                }
                "engine.lease_seconds" => {
                    self.engine.lease_seconds =
                        value.parse().map_err(|e| bad(format!("{e}: {value:?}")))?
                }
                "engine.shutdown_grace_seconds" => {
                    self.engine.shutdown_grace_seconds =
                        value.parse().map_err(|e| bad(format!("{e}: {value:?}")))?
                }
                "http.shutdown_grace_seconds" => {
                    self.http.shutdown_grace_seconds =
                        value.parse().map_err(|e| bad(format!("{e}: {value:?}")))?
                }
                "ingest.queue_capacity" => {
                    self.ingest.queue_capacity =
                        value.parse().map_err(|e| bad(format!("{e}: {value:?}")))?
                }
                "retention.raw_payload_days" => {
                    self.retention.raw_payload_days =
                        value.parse().map_err(|e| bad(format!("{e}: {value:?}")))?
                }
                "retention.closed_case_days" => {
                    self.retention.closed_case_days =
                        value.parse().map_err(|e| bad(format!("{e}: {value:?}")))?
                }
                "email.host" => self.email.host = value,
                "email.port" => {
                    self.email.port = value.parse().map_err(|e| bad(format!("{e}: {value:?}")))?
                }
                "email.tls" => {
                    self.email.tls = match value.as_str() {
                        "none" => SmtpTls::None,
                        "starttls" => SmtpTls::Starttls,
                        "tls" => SmtpTls::Tls,
                        _ => {
                            return Err(bad(format!(
                                "expected `none`, `starttls` or `tls`, got {value:?}"
                            )))
                        }
                    }
                }
                "email.username" => self.email.username = value,
                "email.ca_file" => {
                    self.email.ca_file =
                        Some(value.into()).filter(|p: &PathBuf| !p.as_os_str().is_empty())
                }
                "email.from" => self.email.from = value,
                "email.retry_seconds" => {
                    self.email.retry_seconds =
                        value.parse().map_err(|e| bad(format!("{e}: {value:?}")))?
                }
                "email.poll_interval_ms" => {
                    self.email.poll_interval_ms =
                        value.parse().map_err(|e| bad(format!("{e}: {value:?}")))?
                }
                "email.max_attempts" => {
                    self.email.max_attempts =
                        value.parse().map_err(|e| bad(format!("{e}: {value:?}")))?
                }
                "playbooks.dir" => self.playbooks.dir = value.into(),
                "playbooks.integrations_dir" => self.playbooks.integrations_dir = value.into(),
                "playbooks.secrets_file" => self.playbooks.secrets_file = Some(value.into()),
                "playbooks.inputs" => {
                    let given: std::collections::BTreeMap<
                        String,
                        serde_json::Map<String, serde_json::Value>,
                    > = serde_json::from_str(&value).map_err(|e| {
                        bad(format!(
                            "expected JSON like {{\"playbook-id\": {{\"input\": value}}}}: {e}"
                        ))
                    })?;
                    for (playbook, values) in given {
                        self.playbooks
                            .inputs
                            .entry(playbook)
                            .or_default()
                            .extend(values);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        DatabaseUrl::parse(&self.database.url)?;
        if self.database.pool_size == 0 {
            return Err(ConfigError::invalid(
                "database.pool_size",
                "must be at least 1",
            ));
        }
        if let Some(url) = &self.public_url {
            let parsed = url::Url::parse(url)
                .map_err(|e| ConfigError::invalid("public_url", format!("{e}: {url:?}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::invalid(
                    "public_url",
                    format!("must be an http or https URL, got {url:?}"),
                ));
            }
        }
        if self.email.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::invalid(
                "email.from",
                format!("not an e-mail address: {:?}", self.email.from),
            ));
        }
        if self.email.max_attempts == 0 {
            return Err(ConfigError::invalid(
                "email.max_attempts",
                "must be at least 1",
            ));
        }
        if self.email.poll_interval_ms == 0 {
            return Err(ConfigError::invalid(
                "email.poll_interval_ms",
                "must be at least 1",
            ));
        }
        if self.engine.max_concurrent_runs == 0 {
            return Err(ConfigError::invalid(
                "engine.max_concurrent_runs",
                "must be at least 1",
            ));
        }
        if self.engine.lease_seconds < 2 {
            return Err(ConfigError::invalid(
                "engine.lease_seconds",
                "must be at least 2",
            ));
        }
        if let Err(e) = humantime::parse_duration(&self.engine.default_step_timeout) {
            return Err(ConfigError::invalid(
                "engine.default_step_timeout",
                format!("{e}: {:?}", self.engine.default_step_timeout),
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError::invalid("log.level", e.to_string()))?;
        if self.http.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "http.max_body_bytes",
                "must be at least 1024",
            ));
        }
        if self.http.max_form_bytes < 1024 {
            return Err(ConfigError::invalid(
                "http.max_form_bytes",
                "must be at least 1024",
            ));
        }
        if self.retention.interval_minutes == 0 {
            return Err(ConfigError::invalid(
                "retention.interval_minutes",
                "must be at least 1",
            ));
        }
        let ingest = &self.ingest;
        for (key, value) in [
            ("ingest.max_body_bytes", ingest.max_body_bytes),
            (
                "ingest.max_events_per_request",
                ingest.max_events_per_request,
            ),
            ("ingest.queue_capacity", ingest.queue_capacity),
            ("ingest.max_alerts_per_commit", ingest.max_alerts_per_commit),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        if self.cases.correlate_by.is_empty() {
            return Err(ConfigError::invalid(
                "cases.correlate_by",
                "name at least one of source, rule, primary_observable, title",
            ));
        }
        if self.cases.dedup_window_minutes == 0 {
            return Err(ConfigError::invalid(
                "cases.dedup_window_minutes",
                "must be at least 1",
            ));
        }
        let auth = &self.auth;
        for (key, value) in [
            (
                "auth.session_lifetime_minutes",
                auth.session_lifetime_minutes,
            ),
            ("auth.session_idle_minutes", auth.session_idle_minutes),
            (
                "auth.login_attempts_per_minute",
                auth.login_attempts_per_minute,
            ),
            (
                "auth.login_attempts_per_minute_per_ip",
                auth.login_attempts_per_minute_per_ip,
            ),
            ("auth.setup_link_minutes", auth.setup_link_minutes),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The socket address to bind.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            ConfigError::invalid(
                "listen",
                format!(
                    "expected host:port such as 127.0.0.1:8080, got {:?}",
                    self.listen
                ),
            )
        })
    }

    /// The base URL for links, without a trailing slash; derived from `listen` when unset.
    pub fn public_base_url(&self, bound: Option<SocketAddr>) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let addr = bound
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| self.listen.clone());
                format!("http://{addr}")
            }
        }
    }

    /// Whether cookies must carry `Secure`.
    pub fn secure_cookies(&self) -> bool {
        match self.auth.secure_cookies {
            SecureCookies::Always => true,
            SecureCookies::Never => false,
            SecureCookies::Auto => self
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
        }
    }

    /// The configuration as TOML with the database password masked.
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = redact_url(&shown.database.url);
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// Masks the password of a URL such as `postgres://user:secret@host/db`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("****"));
            url.to_string()
        }
        _ => raw.to_string(),
    }
}

/// A parsed database location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file path (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL, passed to libpq as it is.
    Postgres(String),
}

impl DatabaseUrl {
    /// Accepts `sqlite://PATH`, `sqlite:PATH`, `postgres://...` and `postgresql://...`.
    pub fn parse(raw: &str) -> Result<DatabaseUrl, ConfigError> {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(raw.to_string()));
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                ConfigError::invalid(
                    "database.url",
                    format!(
                        "expected sqlite://PATH or postgres://..., got {:?}",
                        redact_url(raw)
                    ),
                )
            })?;
        if path.is_empty() {
            return Err(ConfigError::invalid(
                "database.url",
                "the SQLite path is empty",
            ));
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_use_embedded_sqlite() {
        let config = Config::default();
        config.validate().expect("defaults validate");
        assert_eq!(config.listen, "127.0.0.1:8080");
        assert_eq!(
            DatabaseUrl::parse(&config.database.url).unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("data/tocsin.db"))
        );
        assert_eq!(config.public_base_url(None), "http://127.0.0.1:8080");
    }

    #[test]
    fn example_file_is_valid_and_matches_defaults() {
        let example = Config::from_toml(include_str!("../tocsin.example.toml")).unwrap();
        example.validate().unwrap();
        assert_eq!(example.redacted_toml(), Config::default().redacted_toml());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[database]\nurll = \"x\"\n").unwrap_err();
        assert!(err.contains("database"), "{err}");
        assert!(err.contains("urll"), "{err}");
    }

    #[test]
    fn wrong_type_is_named_with_line() {
        let err =
            Config::from_toml("listen = \"a:1\"\n[database]\npool_size = \"many\"\n").unwrap_err();
        assert!(err.contains("database.pool_size"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn env_overrides_file() {
        let mut config = Config::from_toml("listen = \"127.0.0.1:9000\"\n").unwrap();
        config
            .apply_env(|k| match k {
                "TOCSIN_LISTEN" => Some("0.0.0.0:7000".into()),
                "TOCSIN_DATABASE_URL" => Some("postgres://u:p@h/db".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.listen, "0.0.0.0:7000");
        assert_eq!(
            DatabaseUrl::parse(&config.database.url).unwrap(),
            DatabaseUrl::Postgres("postgres://u:p@h/db".into())
        );
        assert!(config.redacted_toml().contains("postgres://u:****@h/db"));
    }

    #[test]
    fn bad_values_are_refused_with_key() {
        let config = Config {
            listen: "nowhere".into(),
            ..Config::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("`listen`"), "{err}");

        let mut config = Config::default();
        config.database.url = "mysql://x".into();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("database.url"), "{err}");

        let mut config = Config::default();
        let err = config
            .apply_env(|k| (k == "TOCSIN_LOG_FORMAT").then(|| "xml".to_string()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("log.format") && err.contains("TOCSIN_LOG_FORMAT"),
            "{err}"
        );
    }

    #[test]
    fn secure_cookies_follow_https_public_url() {
        let mut config = Config::default();
        assert!(!config.secure_cookies());
        config.public_url = Some("https://soc.example.org".into());
        assert!(config.secure_cookies());
    }
}
