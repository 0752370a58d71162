//! What the benchmarks share: a throwaway database (SQLite file or PostgreSQL database),
//! the real `tocsin serve` on a free port, and CPU and memory readings from `/proc`.

#![allow(dead_code)]

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Database and server
// ---------------------------------------------------------------------------------------

/// The benchmark's own database: a temporary SQLite file or a PostgreSQL database that is
/// dropped when the benchmark ends.
pub struct BenchDb {
    pub dir: tempfile::TempDir,
    pub url: String,
    /// Admin URL and database name, for PostgreSQL.
    pub postgres: Option<(String, String)>,
}

impl BenchDb {
    pub fn create(postgres: Option<&str>) -> Result<BenchDb> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let Some(admin_url) = postgres else {
            let url = format!("sqlite://{}", dir.path().join("tocsin.db").display());
            return Ok(BenchDb {
                dir,
                url,
                postgres: None,
            });
        };
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let name = format!("tocsin_bench_{}", std::process::id());
        let mut admin = diesel::PgConnection::establish(admin_url)
            .with_context(|| format!("connecting to {admin_url}"))?;
        // Separate statements: several in one call run as one transaction, which
        // PostgreSQL refuses for CREATE and DROP DATABASE. The DROP clears a leftover
        // from an interrupted run with the same process id.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .and_then(|()| admin.batch_execute(&format!("CREATE DATABASE {name}")))
            .with_context(|| format!("creating database {name}"))?;
        let mut url = url::Url::parse(admin_url).context("the PostgreSQL URL")?;
        url.set_path(&name);
        Ok(BenchDb {
            dir,
            url: url.to_string(),
            postgres: Some((admin_url.to_string(), name)),
        })
    }

    /// Writes the `bench-noop` playbook of `steps` steps (see [`noop_playbook`]) and an
    /// empty integrations folder, then applies the migrations.
    pub fn prepare_noop(&self, steps: usize) -> Result<()> {
        let dir = self.dir.path();
        std::fs::create_dir_all(dir.join("playbooks"))?;
        std::fs::create_dir_all(dir.join("integrations"))?;
        std::fs::write(dir.join("playbooks/bench-noop.yaml"), noop_playbook(steps))?;
        let out = self.tocsin().arg("migrate").output()?;
        if !out.status.success() {
            bail!("migrate failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        match &self.postgres {
            Some((_, name)) => format!("PostgreSQL, database {name}"),
            None => format!("SQLite {}", self.url.trim_start_matches("sqlite://")),
        }
    }

    /// The `tocsin` binary pointed at this database with a clean environment.
    pub fn tocsin(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tocsin"));
        cmd.current_dir(self.dir.path())
            .env_remove("TOCSIN_CONFIG")
            .env_remove("TOCSIN_LISTEN")
            .env_remove("TOCSIN_PUBLIC_URL")
            .env_remove("TOCSIN_DATABASE_POOL_SIZE")
            .env_remove("RUST_LOG")
            .env("TOCSIN_DATABASE_URL", &self.url)
            .env("TOCSIN_LOG_LEVEL", "warn");
        cmd
    }

    /// Creates a user with `tocsin user add` and returns a new API token of theirs.
    pub fn add_user_with_token(
        &self,
        name: &str,
        role: &str,
        email: Option<&str>,
    ) -> Result<String> {
        use std::io::Write;
        let mut cmd = self.tocsin();
        cmd.args(["user", "add", name, "--role", role, "--password-stdin"]);
        if let Some(e) = email {
            cmd.args(["--email", e]);
        }
        cmd.stdin(Stdio::piped());
        let mut child = cmd.spawn().context("running tocsin user add")?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(b"bench password 12345\n")?;
        if !child.wait()?.success() {
            bail!("tocsin user add {name} failed");
        }
        let out = self
            .tocsin()
            .args(["token", "create", "--user", name, "--name", "bench"])
            .output()
            .context("running tocsin token create")?;
        if !out.status.success() {
            bail!(
                "tocsin token create failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Creates a source and returns its ingestion token.
    pub fn add_source(&self, name: &str, kind: &str, settings: Option<&Path>) -> Result<String> {
        let mut cmd = self.tocsin();
        cmd.args(["source", "add", name, "--kind", kind]);
        if let Some(config) = settings {
            cmd.arg("--settings").arg(config);
        }
        let out = cmd.output().context("running tocsin source add")?;
        if !out.status.success() {
            bail!(
                "tocsin source add {} failed: {}",
                name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("token="))
            .map(|t| t.trim().to_string())
            .ok_or_else(|| anyhow!("tocsin source add {name} printed no token="))
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        if let Some((admin_url, name)) = &self.postgres {
            let dropped = diesel::PgConnection::establish(admin_url)
                .map_err(|e| e.to_string())
                .and_then(|mut c| {
                    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .map_err(|e| e.to_string())
                });
            if let Err(err) = dropped {
                eprintln!("could not drop database {name}: {err}");
            }
        }
    }
}

/// A running `tocsin serve`.
pub struct Server {
    child: Child,
    pub pid: u32,
    pub base: String,
    log: PathBuf,
}

impl Server {
    /// Starts `tocsin serve` on a free port with extra environment variables.
    pub fn start(
        db: &BenchDb,
        log_level: &str,
        config: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Result<Server> {
        // Numbered, so several servers can share one database directory.
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let ready = db.dir.path().join(format!("ready-{n}"));
        let log = db.dir.path().join(format!("serve-{n}.log"));
        let stderr = std::fs::File::create(&log).context("creating the server log")?;
        let mut cmd = db.tocsin();
        cmd.args(["serve", "--ready-file"])
            .arg(&ready)
            .env("TOCSIN_LISTEN", "127.0.0.1:0")
            .env("TOCSIN_LOG_LEVEL", log_level)
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(config) = config {
            let config = std::fs::canonicalize(config)
                .with_context(|| format!("--server-config {}", config.display()))?;
            cmd.env("TOCSIN_CONFIG", config);
        }
        let child = cmd.spawn().context("starting tocsin serve")?;
        let mut server = Server {
            pid: child.id(),
            child,
            base: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(addr) = std::fs::read_to_string(&ready) {
                if addr.ends_with('\n') {
                    server.base = format!("http://{}", addr.trim());
                    return Ok(server);
                }
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("tocsin serve exited with {status}: {}", server.log_tail());
            }
            if Instant::now() > deadline {
                bail!("tocsin serve did not start within 60 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The end of the server's stderr, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4_000);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------

/// CPU time of the server, of this process and of the whole machine, to tell a saturated
/// machine from a slow server.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    at: Instant,
    server_ticks: u64,
    client_ticks: u64,
    machine_busy: u64,
    machine_total: u64,
}

/// `/proc` reports process times in USER_HZ, which Linux fixes at 100 for user space.
const TICKS_PER_SECOND: f64 = 100.0;

impl CpuSnapshot {
    pub fn take(server_pid: u32) -> CpuSnapshot {
        let process_ticks = |path: String| -> u64 {
            let Ok(stat) = std::fs::read_to_string(path) else {
                return 0;
            };
            // Fields after the command name, which is in parentheses and may hold spaces;
            // utime and stime are fields 14 and 15 of the whole line.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let fields: Vec<u64> = rest
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse().ok())
                .collect();
            fields.iter().sum()
        };
        let (busy, total) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let line = s.lines().next()?.to_string();
                let v: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|f| f.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal ...
                let total: u64 = v.iter().take(8).sum();
                let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
                Some((total - idle, total))
            })
            .unwrap_or((0, 0));
        CpuSnapshot {
            at: Instant::now(),
            server_ticks: process_ticks(format!("/proc/{server_pid}/stat")),
            client_ticks: process_ticks("/proc/self/stat".to_string()),
            machine_busy: busy,
            machine_total: total,
        }
    }

    /// (server cores, client cores, machine busy share) used since `earlier`.
    pub fn since(&self, earlier: &CpuSnapshot) -> (f64, f64, f64) {
        let secs = self.at.duration_since(earlier.at).as_secs_f64().max(1e-9);
        let cores = |a: u64, b: u64| a.saturating_sub(b) as f64 / TICKS_PER_SECOND / secs;
        let total = self.machine_total.saturating_sub(earlier.machine_total) as f64;
        let busy = self.machine_busy.saturating_sub(earlier.machine_busy) as f64;
        (
            cores(self.server_ticks, earlier.server_ticks),
            cores(self.client_ticks, earlier.client_ticks),
            if total > 0.0 { busy / total } else { 0.0 },
        )
    }
}

/// The 1-minute load average of the machine, from `/proc/loadavg`.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The server's resident memory in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The value at fraction `p` (0..=1) of sorted samples, nearest rank; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A duration in milliseconds.
pub fn ms(d: chrono::Duration) -> f64 {
    d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

/// A playbook `bench-noop` of `steps` built-in `noop` steps, started manually.
pub fn noop_playbook(steps: usize) -> String {
    let mut y = String::from(
        "id: bench-noop\nversion: 1\ndescription: Benchmark, built-in no-op steps.\ntrigger: { on: manual }\nsteps:\n",
    );
    for i in 0..steps {
        y.push_str(&format!(
            "  - {{ id: s{i}, uses: noop, with: {{ value: {i} }} }}\n"
        ));
    }
    y
}

/// Inserts `runs` pending runs of `bench-noop` (from `dir/playbooks`) in one transaction.
pub fn queue_noop_runs(handle: &tocsin::db::Db, dir: &Path, runs: usize) -> Result<()> {
    use tocsin::playbooks::engine::store;
    let lib = tocsin::playbooks::library::load(
        &dir.join("playbooks"),
        &dir.join("integrations"),
        Default::default(),
    )
    .map_err(|p| anyhow!("bench playbooks: {p:?}"))?;
    let pb = lib.playbooks["bench-noop"].0.clone();
    handle.write_sync(|conn| {
        let hash = store::save_definition(conn, &pb)?;
        let trigger = serde_json::json!({ "kind": "manual" });
        let inputs = serde_json::json!({});
        for _ in 0..runs {
            store::insert_run(
                conn,
                &store::NewRun {
                    playbook: &pb,
                    definition_hash: &hash,
                    case_id: None,
                    trigger_kind: "manual",
                    trigger_data: &trigger,
                    inputs: &inputs,
                    requested_by: "user:bench",
                    parent_step_run_id: None,
                },
            )?;
        }
        Ok::<_, tocsin::db::DbError>(())
    })?;
    Ok(())
}

/// The exit code of a benchmark's `main`, printing the error chain of a failure.
pub fn exit_code(name: &str, result: Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name} benchmark failed: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
