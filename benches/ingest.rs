//! Ingestion load generator: starts the real `tocsin serve` on a fresh database, creates
//! sources, posts realistic mixed vendor alerts over loopback and reports alerts/s and
//! latency percentiles as a markdown table that can be pasted into the README.
//!
//! ```text
//! cargo bench --bench ingest                                   # every scenario, SQLite
//! cargo bench --bench ingest -- --scenario batch,single --seconds 5
//! cargo bench --bench ingest -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! Scenarios:
//! - `batch`: closed loop, `--connections` workers each posting `--batch-size` alerts per
//!   request as fast as the server answers;
//! - `single`: the same with one alert per request;
//! - `rate`: open loop at `--rate` alerts/s, one per request; latency is measured from the
//!   time a request was scheduled, so a stalled server cannot hide its queueing;
//! - `soak`: open loop at `--soak-rate` alerts/s for `--soak-seconds`, sampling the server's
//!   resident memory every second.
//!
//! Every acknowledgement is durable (the server answers after its group commit), so these
//! are figures for stored alerts, not for accepted bytes. The load generator runs on the
//! same machine as the server and takes CPU from it; the output says how much.
//!
//! Exits non-zero when any request failed (anything but 200 or 503, a transport error, or
//! an answer that does not acknowledge every alert sent); 503s are counted separately.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, ValueEnum};
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

#[path = "support/mod.rs"]
mod support;
use support::{rss_kib, BenchDb, CpuSnapshot, Server};

// ---------------------------------------------------------------------------------------
// The alert mix
// ---------------------------------------------------------------------------------------

/// A source the benchmark creates with `tocsin source add`.
struct SourceSpec {
    /// Source name, the last segment of the ingestion URL.
    name: &'static str,
    /// `--kind` for `tocsin source add`.
    kind: &'static str,
    /// `--settings` file, relative to the crate root.
    config: Option<&'static str>,
}

/// One payload shape in the mix: a real vendor payload from `tests/fixtures` whose
/// identifying fields are replaced, per alert, by generated values.
struct PayloadSpec {
    /// Index into [`SOURCES`] of the source it is posted to.
    source: usize,
    /// Fixture file, relative to the crate root.
    fixture: &'static str,
    /// Relative frequency in the mix.
    weight: u32,
    /// JSON pointer of an array to cut to its first element, so that one event is exactly
    /// one alert (Alertmanager groups several alerts in one notification).
    first_only: Option<&'static str>,
    /// Text of the compact fixture to replace, and what replaces it; the replacement may
    /// hold slots (`@@ip@@`, see [`Slot`]) filled per alert. Each text must occur in the
    /// fixture, so a fixture that changes under the mix is noticed rather than silently
    /// producing identical alerts.
    replace: &'static [(&'static str, &'static str)],
}

/// Sources in the mix. To add a vendor, add its source here and its payloads to
/// [`PAYLOADS`].
const SOURCES: &[SourceSpec] = &[
    SourceSpec {
        name: "bench-alertmanager",
        kind: "alertmanager",
        config: None,
    },
    SourceSpec {
        name: "bench-thehive",
        kind: "thehive",
        config: None,
    },
    SourceSpec {
        name: "bench-falco",
        kind: "generic",
        config: Some("tests/fixtures/generic/config.json"),
    },
];

/// Payloads in the mix; each source gets about a third of the alerts.
const PAYLOADS: &[PayloadSpec] = &[
    PayloadSpec {
        source: 0,
        fixture: "tests/fixtures/alertmanager/instance_down_firing.json",
        weight: 2,
        first_only: Some("/alerts"),
        replace: &[("10.20.0.14", "@@ip@@"), ("5d1f4a9ce0b3a7e2", "@@id@@")],
    },
    PayloadSpec {
        source: 0,
        fixture: "tests/fixtures/alertmanager/pod_crashlooping_resolved.json",
        weight: 1,
        first_only: Some("/alerts"),
        replace: &[
            ("[2001:db8:0:0:0:0:0:7]", "@@ip@@"),
            ("x2kqp", "@@word@@"),
            ("c6eadffa33fcdf37", "@@id@@"),
        ],
    },
    PayloadSpec {
        source: 1,
        fixture: "tests/fixtures/thehive/v5_siem_phishing.json",
        weight: 2,
        first_only: None,
        replace: &[
            ("8f3c2a91", "@@id@@"),
            ("203.0.113.77", "@@ip@@"),
            ("WS-0142", "@@host@@"),
            ("4411", "@@num@@"),
            (
                "link and downloaded payload",
                "link and downloaded payload on @@host@@",
            ),
        ],
    },
    PayloadSpec {
        source: 1,
        fixture: "tests/fixtures/thehive/v4_artifacts_malware.json",
        weight: 1,
        first_only: None,
        replace: &[
            ("1764065221.4432190", "@@id@@"),
            ("FINANCE-LT-07", "@@host@@"),
            ("2001:0db8:0000:0000:0000:0000:0000:0042", "@@ip@@"),
        ],
    },
    PayloadSpec {
        source: 2,
        fixture: "tests/fixtures/generic/outbound_c2.json",
        weight: 2,
        first_only: None,
        replace: &[
            ("b7e0f3d2-61a4-4c8e-a2d9-5e1f0c3b7a46", "@@uuid@@"),
            ("198.51.100.99", "@@ip@@"),
            ("k8s-node-1", "@@host@@"),
            ("51544", "@@port@@"),
        ],
    },
    PayloadSpec {
        source: 2,
        fixture: "tests/fixtures/generic/read_shadow_critical.json",
        weight: 1,
        first_only: None,
        replace: &[
            ("bastion-01", "@@host@@"),
            ("collect.py", "@@id@@.py"),
            (
                "\"output\":\"10:20:00.000000000",
                "\"uuid\":\"@@uuid@@\",\"output\":\"10:20:00.000000000",
            ),
        ],
    },
];

/// Hosts and addresses come from bounded pools, as in a real estate, so alerts from the
/// same rule about the same host group into existing cases; the `id`/`uuid` slots keep
/// the alerts themselves distinct.
const HOST_POOL: u64 = 2_000;
const IP_POOL: u64 = 4_096;

/// A value generated per alert. All slots of one name in one alert get the same value,
/// so a summary and a label naming the same host agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// 16 hex digits, unique per alert (fingerprints, `sourceRef`).
    Id,
    /// A UUID, unique per alert.
    Uuid,
    /// A host name from a pool of [`HOST_POOL`].
    Host,
    /// An IPv4 address in 10.0.0.0/8 from a pool of [`IP_POOL`].
    Ip,
    /// A TCP port.
    Port,
    /// A small number (invoice and ticket numbers in titles).
    Num,
    /// Five lowercase letters or digits (Kubernetes pod suffixes).
    Word,
}

impl Slot {
    fn parse(name: &str) -> Option<Slot> {
        Some(match name {
            "id" => Slot::Id,
            "uuid" => Slot::Uuid,
            "host" => Slot::Host,
            "ip" => Slot::Ip,
            "port" => Slot::Port,
            "num" => Slot::Num,
            "word" => Slot::Word,
            _ => return None,
        })
    }

    /// Appends this slot's value for the alert `identity`. Values are plain ASCII letters,
    /// digits, dots and dashes, so they need no JSON escaping.
    fn write(self, identity: u64, out: &mut String) {
        let h = mix64(identity ^ (self as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        // Writing to a String cannot fail.
        let _ = match self {
            Slot::Id => write!(out, "{h:016x}"),
            Slot::Uuid => {
                let l = mix64(h);
                write!(
                    out,
                    "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                    h >> 32,
                    (h >> 16) & 0xffff,
                    h & 0xfff,
                    l >> 52,
                    l & 0xffff_ffff_ffff
                )
            }
            Slot::Host => write!(out, "host-{:04}", h % HOST_POOL),
            Slot::Ip => {
                let n = h % IP_POOL;
                write!(out, "10.{}.{}.{}", n >> 16, (n >> 8) & 0xff, n & 0xff)
            }
            Slot::Port => write!(out, "{}", 1024 + h % 64_000),
            Slot::Num => write!(out, "{}", 1 + h % 99_999),
            Slot::Word => {
                const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
                let mut v = h;
                for _ in 0..5 {
                    out.push(char::from(CHARS[(v % CHARS.len() as u64) as usize]));
                    v /= CHARS.len() as u64;
                }
                Ok(())
            }
        };
    }
}

/// SplitMix64's finalizer: a cheap, well-mixed hash of a 64-bit value.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Part of a compiled payload.
enum Piece {
    Text(String),
    Slot(Slot),
}

/// A payload compiled to text pieces and slots, so rendering an alert is a few string
/// appends rather than building and serializing a JSON tree.
struct Template {
    weight: u32,
    pieces: Vec<Piece>,
}

impl Template {
    fn load(root: &Path, spec: &PayloadSpec) -> Result<Template> {
        let path = root.join(spec.fixture);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        if let Some(pointer) = spec.first_only {
            match value.pointer_mut(pointer) {
                Some(Value::Array(items)) if !items.is_empty() => items.truncate(1),
                _ => bail!("{}: {pointer} is not a non-empty array", path.display()),
            }
        }
        let mut compact = serde_json::to_string(&value)?;
        if compact.contains("@@") {
            bail!(
                "{} contains \"@@\", which marks slots in the mix",
                path.display()
            );
        }
        for (from, to) in spec.replace {
            if !compact.contains(from) {
                bail!(
                    "{} no longer contains {from:?}; update PAYLOADS in benches/ingest.rs",
                    path.display()
                );
            }
            compact = compact.replace(from, to);
        }
        let mut pieces = Vec::new();
        for (i, part) in compact.split("@@").enumerate() {
            if i % 2 == 0 {
                pieces.push(Piece::Text(part.to_string()));
            } else {
                let slot = Slot::parse(part)
                    .ok_or_else(|| anyhow!("{}: unknown slot @@{part}@@", path.display()))?;
                pieces.push(Piece::Slot(slot));
            }
        }
        if !pieces.iter().any(|p| matches!(p, Piece::Slot(_))) {
            bail!(
                "{}: no slots, every alert would be a repeat",
                path.display()
            );
        }
        Ok(Template {
            weight: spec.weight,
            pieces,
        })
    }

    fn render(&self, identity: u64, out: &mut String) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Slot(s) => s.write(identity, out),
            }
        }
    }
}

/// A source as the load generator sees it: where to post, and what.
struct MixSource {
    name: &'static str,
    url: String,
    authorization: String,
    templates: Vec<Template>,
    /// Sum of the templates' weights.
    weight: u32,
}

/// Everything needed to generate requests.
struct Mix {
    sources: Vec<MixSource>,
    weight: u32,
    /// Chance in a thousand that an alert repeats a recent one.
    repeat_permille: u64,
    /// Makes identities differ between runs.
    salt: u64,
    next_identity: AtomicU64,
}

/// How many recent alerts per source a generator remembers for repeats.
const RECENT: usize = 1_024;

/// Generates request bodies; one per task, so no locking.
struct Generator {
    mix: Arc<Mix>,
    state: u64,
    /// Per source: recently sent (template, identity) pairs.
    recent: Vec<Vec<(usize, u64)>>,
    /// Per source: where the next remembered alert goes in `recent`.
    cursor: Vec<usize>,
}

/// One ready request.
struct Outgoing {
    source: usize,
    body: String,
    alerts: u64,
}

impl Generator {
    fn new(mix: Arc<Mix>, seed: u64) -> Generator {
        let n = mix.sources.len();
        Generator {
            state: mix64(mix.salt ^ seed),
            mix,
            recent: vec![Vec::with_capacity(RECENT); n],
            cursor: vec![0; n],
        }
    }

    fn random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// Picks an index by weight.
    fn pick(&mut self, total: u32, weights: impl Iterator<Item = u32>) -> usize {
        let mut r = (self.random() % u64::from(total.max(1))) as u32;
        let mut last = 0;
        for (i, w) in weights.enumerate() {
            if r < w {
                return i;
            }
            r -= w;
            last = i;
        }
        last
    }

    /// A request of `count` alerts to one source: a JSON array when `count > 1`, else a
    /// single JSON object.
    fn request(&mut self, count: usize) -> Outgoing {
        let mix = self.mix.clone();
        let source = self.pick(mix.weight, mix.sources.iter().map(|s| s.weight));
        let src = &mix.sources[source];
        let mut body = String::with_capacity(count * 1_600 + 2);
        if count > 1 {
            body.push('[');
        }
        for i in 0..count {
            if i > 0 {
                body.push(',');
            }
            let remembered = self.recent[source].len() as u64;
            let repeat = remembered > 0 && self.random() % 1_000 < mix.repeat_permille;
            let (template, identity) = if repeat {
                let at = (self.random() % remembered) as usize;
                self.recent[source][at]
            } else {
                let template = self.pick(src.weight, src.templates.iter().map(|t| t.weight));
                let n = mix.next_identity.fetch_add(1, Ordering::Relaxed);
                let identity = mix64(mix.salt ^ n);
                let (recent, cursor) = (&mut self.recent[source], &mut self.cursor[source]);
                if recent.len() < RECENT {
                    recent.push((template, identity));
                } else {
                    recent[*cursor] = (template, identity);
                    *cursor = (*cursor + 1) % RECENT;
                }
                (template, identity)
            };
            src.templates[template].render(identity, &mut body);
        }
        if count > 1 {
            body.push(']');
        }
        Outgoing {
            source,
            body,
            alerts: count as u64,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------

/// A load scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Batch,
    Single,
    Rate,
    Soak,
}

/// Tocsin ingestion load generator.
#[derive(Debug, Parser)]
#[command(name = "ingest", about)]
struct Args {
    /// Scenarios to run, comma-separated: batch, single, rate, soak.
    #[arg(long, value_delimiter = ',', default_value = "batch,single,rate,soak")]
    scenario: Vec<Scenario>,
    /// Measured seconds of the batch, single and rate scenarios.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Unmeasured seconds of load before each scenario.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Concurrent connections of the batch and single scenarios.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Alerts per request in the batch scenario.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Offered alerts/s of the rate scenario (one alert per request).
    #[arg(long, default_value_t = 1_000)]
    rate: u32,
    /// Seconds of the soak scenario.
    #[arg(long, default_value_t = 60)]
    soak_seconds: u64,
    /// Offered alerts/s of the soak scenario; below the server's capacity, so the queue
    /// stays short and memory reflects steady state rather than a growing backlog.
    #[arg(long, default_value_t = 2_000)]
    soak_rate: u32,
    /// Alerts per request in the soak scenario.
    #[arg(long, default_value_t = 10)]
    soak_batch: usize,
    /// Share of alerts that repeat a recently sent one, exercising deduplication.
    #[arg(long, default_value_t = 10)]
    repeat_percent: u64,
    /// Run on PostgreSQL: a database named tocsin_bench_<pid> is created beside this URL's
    /// database and dropped afterwards.
    #[arg(long, env = "TOCSIN_BENCH_POSTGRES_URL", value_name = "URL")]
    postgres: Option<String>,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// The server's log level; `info` logs every request, which costs throughput.
    #[arg(long, default_value = "warn")]
    server_log_level: String,
    /// A tocsin.toml for the server (e.g. to try other [ingest] settings).
    #[arg(long, value_name = "FILE")]
    server_config: Option<PathBuf>,
    /// Seed of the generated alerts (random by default).
    #[arg(long)]
    seed: Option<u64>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("\ningest bench: FAILED: some requests failed (see the errors above)");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("\ningest bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark; `Ok(false)` when requests failed.
fn run(args: Args) -> Result<bool> {
    if args.batch_size == 0 || args.soak_batch == 0 || args.connections == 0 {
        bail!("--batch-size, --soak-batch and --connections must be at least 1");
    }
    if args.rate == 0 || args.soak_rate == 0 || args.client_threads == 0 {
        bail!("--rate, --soak-rate and --client-threads must be at least 1");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut templates: Vec<Vec<Template>> = SOURCES.iter().map(|_| Vec::new()).collect();
    for payload in PAYLOADS {
        templates
            .get_mut(payload.source)
            .ok_or_else(|| anyhow!("{}: no source {}", payload.fixture, payload.source))?
            .push(Template::load(root, payload)?);
    }

    let db = BenchDb::create(args.postgres.as_deref())?;
    eprintln!("database: {}", db.describe());
    let mut sources = Vec::new();
    for (spec, templates) in SOURCES.iter().zip(templates) {
        let token = db.add_source(
            spec.name,
            spec.kind,
            spec.config.map(|c| root.join(c)).as_deref(),
        )?;
        sources.push(MixSource {
            name: spec.name,
            url: String::new(),
            authorization: format!("Bearer {token}"),
            weight: templates.iter().map(|t| t.weight).sum(),
            templates,
        });
    }
    if let Some(s) = sources.iter().find(|s| s.weight == 0) {
        bail!("source {} has no payloads in the mix", s.name);
    }

    let server = Server::start(
        &db,
        &args.server_log_level,
        args.server_config.as_deref(),
        &[],
    )?;
    eprintln!("server: pid {} at {}", server.pid, server.base);
    for s in &mut sources {
        s.url = format!("{}/api/v1/ingest/{}", server.base, s.name);
    }
    let mix = Arc::new(Mix {
        weight: sources.iter().map(|s| s.weight).sum(),
        sources,
        repeat_permille: args.repeat_percent.min(100) * 10,
        salt: args.seed.unwrap_or_else(rand::random),
        next_identity: AtomicU64::new(0),
    });

    let runtime = if args.client_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.client_threads)
            .enable_all()
            .build()?
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = scenarios(&args, mix, &server) => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
    let reports = match outcome {
        Ok(reports) => reports,
        Err(err) => {
            eprintln!("server log: {}", server.log_tail());
            return Err(err);
        }
    };
    drop(runtime);
    let server_log = server.log_tail();
    drop(server);
    drop(db);

    println!("{}", render(&args, &reports));
    let ok = reports.iter().all(|r| r.tally.failed == 0);
    if !ok {
        eprintln!("server log: {server_log}");
    }
    Ok(ok)
}

/// What the server answered to one request.
enum Answer {
    /// 200 acknowledging every alert.
    Stored {
        deduplicated: u64,
        cases_created: u64,
    },
    /// 503: the writer queue is full.
    Overloaded { retry_after: Duration },
    /// Anything else: a failure of the run.
    Failed(String),
}

/// The fields of an ingestion answer the benchmark checks.
#[derive(Deserialize)]
struct IngestAnswer {
    alerts: u64,
    deduplicated: u64,
    cases_created: u64,
}

/// Counts and latencies of one scenario.
#[derive(Default)]
struct Tally {
    requests: u64,
    alerts: u64,
    deduplicated: u64,
    cases_created: u64,
    overloaded: u64,
    failed: u64,
    /// Requests an open-loop scenario could not send because too many were outstanding.
    not_sent: u64,
    /// Latency of each stored request, in microseconds.
    latencies_us: Vec<u32>,
    /// The first few failures, verbatim.
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, alerts: u64, latency: Duration, answer: Answer) {
        self.requests += 1;
        match answer {
            Answer::Stored {
                deduplicated,
                cases_created,
            } => {
                self.alerts += alerts;
                self.deduplicated += deduplicated;
                self.cases_created += cases_created;
                self.latencies_us
                    .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
            }
            Answer::Overloaded { .. } => self.overloaded += 1,
            Answer::Failed(message) => {
                self.failed += 1;
                if self.failures.len() < 5 {
                    self.failures.push(message);
                }
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.alerts += other.alerts;
        self.deduplicated += other.deduplicated;
        self.cases_created += other.cases_created;
        self.overloaded += other.overloaded;
        self.failed += other.failed;
        self.not_sent += other.not_sent;
        self.latencies_us.extend(other.latencies_us);
        for f in other.failures {
            if self.failures.len() < 5 {
                self.failures.push(f);
            }
        }
    }
}

/// Sends requests for the mix over one shared connection pool.
struct Client {
    http: reqwest::Client,
    mix: Arc<Mix>,
}

impl Client {
    fn new(mix: Arc<Mix>, connections: usize) -> Result<Client> {
        let http = reqwest::Client::builder()
            // Keep every connection of the closed loops alive between requests.
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Client { http, mix })
    }

    async fn send(&self, out: Outgoing) -> Answer {
        let source = &self.mix.sources[out.source];
        let response = self
            .http
            .post(&source.url)
            .header(reqwest::header::AUTHORIZATION, &source.authorization)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(out.body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(err) => return Answer::Failed(format!("{}: {err}", source.name)),
        };
        let status = response.status();
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs);
            // Read the body so the connection can be reused.
            let _ = response.bytes().await;
            return Answer::Overloaded { retry_after };
        }
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(err) => {
                return Answer::Failed(format!("{}: reading the answer: {err}", source.name))
            }
        };
        if !status.is_success() {
            return Answer::Failed(format!(
                "{}: {status}: {}",
                source.name,
                String::from_utf8_lossy(&body[..body.len().min(500)])
            ));
        }
        match serde_json::from_slice::<IngestAnswer>(&body) {
            Ok(a) if a.alerts == out.alerts => Answer::Stored {
                deduplicated: a.deduplicated,
                cases_created: a.cases_created,
            },
            Ok(a) => Answer::Failed(format!(
                "{}: the server acknowledged {} of {} alerts",
                source.name, a.alerts, out.alerts
            )),
            Err(err) => Answer::Failed(format!("{}: unexpected answer: {err}", source.name)),
        }
    }
}

/// `connections` workers, each sending `per_request` alerts and waiting for the answer,
/// until `duration` has passed.
async fn closed_loop(
    client: &Arc<Client>,
    connections: usize,
    per_request: usize,
    duration: Duration,
) -> Tally {
    let end = Instant::now() + duration;
    let mut workers = JoinSet::new();
    for worker in 0..connections {
        let client = client.clone();
        workers.spawn(async move {
            let mut generator = Generator::new(client.mix.clone(), worker as u64 + 1);
            let mut tally = Tally::default();
            while Instant::now() < end {
                let out = generator.request(per_request);
                let alerts = out.alerts;
                let started = Instant::now();
                let answer = client.send(out).await;
                let pause = match &answer {
                    Answer::Overloaded { retry_after } => Some(*retry_after),
                    _ => None,
                };
                tally.record(alerts, started.elapsed(), answer);
                // Honour Retry-After as a well-behaved sender would.
                if let Some(pause) = pause {
                    tokio::time::sleep(pause.min(end.saturating_duration_since(Instant::now())))
                        .await;
                }
            }
            tally
        });
    }
    collect(workers).await
}

async fn collect(mut tasks: JoinSet<Tally>) -> Tally {
    let mut total = Tally::default();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(t) => total.merge(t),
            Err(err) => total.record(0, Duration::ZERO, Answer::Failed(format!("task: {err}"))),
        }
    }
    total
}

/// Most requests an open loop lets be outstanding before it skips sends.
const MAX_OUTSTANDING: usize = 10_000;

/// Sends `alerts_per_second` in requests of `per_request` alerts on a fixed schedule,
/// whether or not earlier requests were answered; latency counts from the scheduled time.
async fn open_loop(
    client: &Arc<Client>,
    alerts_per_second: u32,
    per_request: usize,
    duration: Duration,
) -> Tally {
    let requests_per_second = f64::from(alerts_per_second) / per_request as f64;
    let period = Duration::from_secs_f64(1.0 / requests_per_second);
    let start = tokio::time::Instant::now();
    let end = start + duration;
    let mut generator = Generator::new(client.mix.clone(), 0);
    let mut inflight: JoinSet<Tally> = JoinSet::new();
    let mut total = Tally::default();
    for i in 0u32.. {
        let scheduled = start + period * i;
        if scheduled >= end {
            break;
        }
        tokio::time::sleep_until(scheduled).await;
        while let Some(done) = inflight.try_join_next() {
            match done {
                Ok(t) => total.merge(t),
                Err(err) => total.record(0, Duration::ZERO, Answer::Failed(format!("task: {err}"))),
            }
        }
        if inflight.len() >= MAX_OUTSTANDING {
            total.not_sent += 1;
            continue;
        }
        let out = generator.request(per_request);
        let client = client.clone();
        inflight.spawn(async move {
            let alerts = out.alerts;
            let answer = client.send(out).await;
            let mut t = Tally::default();
            t.record(alerts, scheduled.elapsed(), answer);
            t
        });
    }
    total.merge(collect(inflight).await);
    total
}

/// Memory of the server during a soak, in KiB, one sample a second.
#[derive(Default)]
struct Memory {
    samples: Vec<u64>,
}

/// The outcome of one scenario.
struct Report {
    scenario: Scenario,
    /// How the load was offered, for the table.
    load: String,
    per_request: usize,
    elapsed: Duration,
    tally: Tally,
    /// Server cores, client cores and machine busy share.
    cpu: (f64, f64, f64),
    memory: Option<Memory>,
}

async fn scenarios(args: &Args, mix: Arc<Mix>, server: &Server) -> Result<Vec<Report>> {
    // The open loops can have many requests outstanding; the pool keeps up to that many
    // idle connections so they are reused rather than reopened.
    let client = Arc::new(Client::new(mix, args.connections.max(256))?);
    let seconds = Duration::from_secs(args.seconds);
    let warmup = Duration::from_secs(args.warmup);
    let mut reports = Vec::new();
    for &scenario in &args.scenario {
        let (load, per_request) = match scenario {
            Scenario::Batch => (
                format!("{} conns, closed loop", args.connections),
                args.batch_size,
            ),
            Scenario::Single => (format!("{} conns, closed loop", args.connections), 1),
            Scenario::Rate => (format!("open loop, {} alerts/s offered", args.rate), 1),
            Scenario::Soak => (
                format!(
                    "open loop, {} alerts/s offered, {} s",
                    args.soak_rate, args.soak_seconds
                ),
                args.soak_batch,
            ),
        };
        eprintln!("{scenario:?}: {load}, {per_request} alert(s)/request ...");
        let warm = match scenario {
            Scenario::Batch | Scenario::Single => {
                closed_loop(&client, args.connections, per_request, warmup).await
            }
            Scenario::Rate => open_loop(&client, args.rate, 1, warmup).await,
            // The soak measures memory from a server that has seen no load in this
            // scenario yet, so it gets no warm-up.
            Scenario::Soak => Tally::default(),
        };
        if warm.failed > 0 {
            bail!("{scenario:?} warm-up failed: {}", warm.failures.join("; "));
        }
        let before = CpuSnapshot::take(server.pid);
        let started = Instant::now();
        let mut memory = None;
        let tally = match scenario {
            Scenario::Batch | Scenario::Single => {
                closed_loop(&client, args.connections, per_request, seconds).await
            }
            Scenario::Rate => open_loop(&client, args.rate, 1, seconds).await,
            Scenario::Soak => {
                let stop = Arc::new(AtomicBool::new(false));
                let sampler = tokio::spawn(sample_memory(server.pid, stop.clone()));
                let tally = open_loop(
                    &client,
                    args.soak_rate,
                    args.soak_batch,
                    Duration::from_secs(args.soak_seconds),
                )
                .await;
                stop.store(true, Ordering::Relaxed);
                memory = Some(sampler.await.context("memory sampler")?);
                tally
            }
        };
        let elapsed = started.elapsed();
        let cpu = CpuSnapshot::take(server.pid).since(&before);
        for f in &tally.failures {
            eprintln!("  error: {f}");
        }
        let report = Report {
            scenario,
            load,
            per_request,
            elapsed,
            tally,
            cpu,
            memory,
        };
        eprintln!("  {}", summary(&report));
        reports.push(report);
    }
    Ok(reports)
}

async fn sample_memory(pid: u32, stop: Arc<AtomicBool>) -> Memory {
    let mut memory = Memory::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        if let Some(kib) = rss_kib(pid) {
            memory.samples.push(kib);
            let n = memory.samples.len();
            if n % 10 == 1 {
                eprintln!(
                    "  {:>3} s: server RSS {:.1} MiB",
                    n - 1,
                    kib as f64 / 1024.0
                );
            }
        }
    }
    memory
}

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

/// Latency percentile in milliseconds (nearest rank) of sorted microseconds.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

fn alerts_per_second(r: &Report) -> f64 {
    r.tally.alerts as f64 / r.elapsed.as_secs_f64().max(1e-9)
}

/// One line for the progress output.
fn summary(r: &Report) -> String {
    let mut l = r.tally.latencies_us.clone();
    l.sort_unstable();
    format!(
        "{:.0} alerts/s, p50 {:.1} ms, p99 {:.1} ms, {} requests, {} 503s, {} errors",
        alerts_per_second(r),
        percentile(&l, 0.50),
        percentile(&l, 0.99),
        r.tally.requests,
        r.tally.overloaded,
        r.tally.failed
    )
}

/// Whether a scenario met the issue's target (set for SQLite on a 2-core machine).
fn target(args: &Args, r: &Report, p99_ms: f64) -> String {
    let verdict = |ok: bool| if ok { "met" } else { "**not met**" };
    let rate = alerts_per_second(r);
    match r.scenario {
        Scenario::Batch if args.batch_size == 100 => {
            format!("≥ 20,000/s: {}", verdict(rate >= 20_000.0))
        }
        Scenario::Single => format!("≥ 5,000/s: {}", verdict(rate >= 5_000.0)),
        Scenario::Rate if args.rate == 1_000 => {
            format!("p99 < 50 ms: {}", verdict(p99_ms < 50.0))
        }
        Scenario::Soak => "memory flat: see below".to_string(),
        _ => "-".to_string(),
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The markdown report.
fn render(args: &Args, reports: &[Report]) -> String {
    let backend = if args.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite (WAL, synchronous=FULL)"
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Ingestion, {backend}, {cpus} CPUs ({model})\n\n\
         Durable acknowledgement (answered after commit). The load generator runs on the same \
         {cpus} CPUs as the server ({} client thread(s)); the CPU columns show who used them \
         (1.00 = one core; \"other\" is every other process, e.g. PostgreSQL's backends); \
         server CPU time per stored alert is the figure least disturbed by other load. \
         Mix: Alertmanager, TheHive and generic (Falco) payloads, \
         {}% repeats.\n",
        args.client_threads, args.repeat_percent
    );
    let _ = writeln!(
        out,
        "| scenario | load | alerts/req | alerts/s | req/s | p50 ms | p90 ms | p99 ms | max ms \
         | dedup | new cases | 503s | errors | server CPU | µs CPU/alert | client CPU | other CPU \
         | target |"
    );
    let _ = writeln!(
        out,
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
    );
    for r in reports {
        let mut l = r.tally.latencies_us.clone();
        l.sort_unstable();
        let p99 = percentile(&l, 0.99);
        let t = &r.tally;
        let share = |n: u64| {
            if t.alerts == 0 {
                "-".to_string()
            } else {
                format!("{:.1}%", n as f64 * 100.0 / t.alerts as f64)
            }
        };
        let errors = if t.not_sent > 0 {
            format!("{} (+{} not sent)", t.failed, t.not_sent)
        } else {
            t.failed.to_string()
        };
        let _ = writeln!(
            out,
            "| {:?} | {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} \
             | {:.2} | {:.0} | {:.2} | {:.2} | {} |",
            r.scenario,
            r.load,
            r.per_request,
            alerts_per_second(r),
            (t.requests - t.overloaded - t.failed) as f64 / r.elapsed.as_secs_f64().max(1e-9),
            percentile(&l, 0.50),
            percentile(&l, 0.90),
            p99,
            percentile(&l, 1.0),
            share(t.deduplicated),
            share(t.cases_created),
            t.overloaded,
            errors,
            r.cpu.0,
            r.cpu.0 * r.elapsed.as_secs_f64() * 1e6 / t.alerts.max(1) as f64,
            r.cpu.1,
            (r.cpu.2 * cpus as f64 - r.cpu.0 - r.cpu.1).max(0.0),
            target(args, r, p99),
        );
    }
    for r in reports {
        let Some(memory) = &r.memory else { continue };
        let s = &memory.samples;
        let (Some(first), Some(last), Some(max)) = (s.first(), s.last(), s.iter().max()) else {
            continue;
        };
        let settled = s.get(10).copied().unwrap_or(*first);
        let _ = writeln!(
            out,
            "\nServer memory (VmRSS) during the soak, {} samples one second apart:\n\n\
             | start | after 10 s | end | max | end - after 10 s |\n\
             |--:|--:|--:|--:|--:|\n\
             | {} | {} | {} | {} | {:+.1} MiB |",
            s.len(),
            mib(*first),
            mib(settled),
            mib(*last),
            mib(*max),
            (*last as f64 - settled as f64) / 1024.0
        );
    }
    out
}
