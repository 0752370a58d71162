//! Subcommands of `tocsin`. Exit codes: 0 success, 1 a check failed (e.g. a broken audit
//! chain), 2 the command could not run.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use tocsin::audit::{export, verify, Actor};
use tocsin::auth::users::{self, NewUser};
use tocsin::auth::{password, setup, tokens, AuthError, Role};
use tocsin::config::{Config, LogFormat};
use tocsin::db::Db;
use tocsin::ingest::sources::{self, SourceSecrets};
use tocsin::ingest::vendors::{SourceConfig, SourceKind};
use tocsin::playbooks::library;
use tocsin::playbooks::validate::Policy;
use tocsin::web::{self, AppState};

/// Tocsin: security orchestration, automation and response.
#[derive(Debug, Parser)]
#[command(name = "tocsin", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: ./tocsin.toml when it exists). TOCSIN_* variables override it.
    #[arg(long, global = true, env = "TOCSIN_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (ingestion, JSON API, console) after applying pending migrations.
    Serve(ServeArgs),
    /// Apply pending database migrations (or revert them all with --revert-all).
    Migrate(MigrateArgs),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens for automation.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage ingestion sources (where alerts come from).
    #[command(subcommand)]
    Source(SourceCommand),
    /// Validate playbooks and integrations; enable or disable a playbook.
    #[command(subcommand)]
    Playbook(PlaybookCommand),
    /// Verify or export the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Copy the SQLite database to a new file while the server runs (consistent snapshot).
    Backup(BackupArgs),
    /// Apply the data retention settings now ([retention]); audit events are kept.
    #[command(subcommand)]
    Retention(RetentionCommand),
}

#[derive(Debug, Args)]
struct BackupArgs {
    /// The file to write (must not exist). Restore by stopping Tocsin and putting this
    /// file in place of the database file (removing its -wal and -shm files).
    output: PathBuf,
}

#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// Run one retention pass and print what it removed.
    Run,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Log format: text for people, json for log shippers (overrides log.format).
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    /// Write the bound address to this file once listening (for supervisors and tests).
    #[arg(long, value_name = "PATH", hide = true)]
    ready_file: Option<PathBuf>,
    /// What this process does: `all` (HTTP and workers), `http` (API, ingestion, console;
    /// no playbook runs, no e-mail delivery) or `worker` (playbook engine, e-mail sender,
    /// retention; HTTP only for /healthz, /readyz, /metrics). Several processes need
    /// PostgreSQL.
    #[arg(long, value_enum, default_value = "all", env = "TOCSIN_ROLE")]
    role: RoleArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RoleArg {
    All,
    Http,
    Worker,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Args)]
struct MigrateArgs {
    /// Revert every applied migration, leaving an empty database.
    #[arg(long, conflicts_with = "status")]
    revert_all: bool,
    /// List pending migrations without applying them.
    #[arg(long)]
    status: bool,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from the terminal, or from stdin with --password-stdin.
    Add {
        /// Login name: letters, digits, '.', '_', '-', '@'.
        username: String,
        /// viewer, analyst, responder (may approve containment) or admin.
        #[arg(long)]
        role: Role,
        /// Address for approval requests and notifications.
        #[arg(long)]
        email: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users and their roles.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Change a user's role.
    SetRole {
        username: String,
        /// viewer, analyst, responder or admin.
        role: Role,
    },
    /// Disable an account: its sessions end and its API tokens stop working.
    Disable { username: String },
    /// Re-enable a disabled account.
    Enable { username: String },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an API token for a user and print it once.
    Create {
        /// The user the token acts as.
        #[arg(long)]
        user: String,
        /// A name to recognise the token by.
        #[arg(long)]
        name: String,
        /// Days until the token expires (default: never).
        #[arg(long)]
        expires_days: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
enum SourceCommand {
    /// Create a source and print its ingestion token (and HMAC secret) once.
    Add {
        /// The name in the ingestion URL: /api/v1/ingest/NAME (a-z, 0-9, '-', '_').
        name: String,
        /// splunk, elastic, sentinel, graph_security, defender_o365, alertmanager, wazuh,
        /// suricata, proofpoint_tap, thehive or generic.
        #[arg(long)]
        kind: SourceKind,
        /// Require an HMAC-SHA256 signature of every request body (a secret is generated).
        #[arg(long)]
        signed: bool,
        /// JSON file with the source's settings, e.g. {"mapping": {...}} for a generic source.
        #[arg(long, value_name = "FILE")]
        settings: Option<PathBuf>,
    },
    /// List sources.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop accepting events from a source.
    Disable { name: String },
    /// Accept events from a disabled source again.
    Enable { name: String },
    /// Issue a new token (and HMAC secret); the old ones stop working.
    Rotate { name: String },
}

#[derive(Debug, Subcommand)]
enum PlaybookCommand {
    /// Check playbook files (default: every playbook and integration in the configured
    /// folders); print each problem as FILE:LINE: reason and exit 1 if there is any.
    Validate {
        /// Playbook files to check against the configured integrations.
        files: Vec<PathBuf>,
    },
    /// Let a playbook start runs again (triggers, schedules, manual and child runs).
    Enable {
        /// The playbook's id.
        id: String,
    },
    /// Stop a playbook from starting runs; runs already going are not touched.
    Disable {
        /// The playbook's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain; exit 1 and name the first bad event if it was tampered with.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write events of a time range as NDJSON or CSV.
    Export {
        /// Earliest event time, inclusive (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Latest event time, exclusive (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long)]
        until: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "ndjson")]
        format: export::Format,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration, then print it (secrets masked).
    Check,
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let config = Config::load(cli.config.as_deref(), |k| std::env::var(k).ok())?;
    match cli.command {
        Command::Serve(args) => serve(config, args),
        Command::Migrate(args) => migrate(&config, args),
        Command::User(cmd) => user(&config, cmd),
        Command::Token(cmd) => token(&config, cmd),
        Command::Source(cmd) => source(&config, cmd),
        Command::Playbook(PlaybookCommand::Validate { files }) => {
            validate_playbooks(&config, &files)
        }
        Command::Playbook(PlaybookCommand::Enable { id }) => switch_playbook(&config, &id, true),
        Command::Playbook(PlaybookCommand::Disable { id }) => switch_playbook(&config, &id, false),
        Command::Audit(cmd) => audit_cmd(&config, cmd),
        Command::Config(ConfigCommand::Check) => {
            print!("{}", config.redacted_toml());
            eprintln!("configuration is valid");
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup(args) => backup(&config, &args),
        Command::Retention(RetentionCommand::Run) => retention(&config),
    }
}

fn backup(config: &Config, args: &BackupArgs) -> Result<ExitCode> {
    let db = open(config)?;
    db.backup_sqlite(&args.output)?;
    let target = args.output.display().to_string();
    db.write_sync(|conn| {
        tocsin::audit::append(
            conn,
            tocsin::audit::NewEvent::new(
                &cli_actor(),
                "backup.created",
                "database",
                serde_json::json!({ "file": target }),
            ),
        )
    })?;
    eprintln!("backup written to {}", args.output.display());
    Ok(ExitCode::SUCCESS)
}

fn retention(config: &Config) -> Result<ExitCode> {
    let db = open_migrated(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let purged = runtime.block_on(tocsin::retention::run(
        &db,
        &config.retention,
        tocsin::db::now(),
        &cli_actor(),
    ))?;
    println!("{}", serde_json::to_string(&purged)?);
    Ok(ExitCode::SUCCESS)
}

fn open(config: &Config) -> Result<Db> {
    Db::open(&config.database).with_context(|| {
        format!(
            "opening {}",
            tocsin::config::redact_url(&config.database.url)
        )
    })
}

fn open_migrated(config: &Config) -> Result<Db> {
    let db = open(config)?;
    db.migrate().context("applying migrations")?;
    Ok(db)
}

fn cli_actor() -> Actor {
    Actor::system("cli")
}

fn serve(mut config: Config, args: ServeArgs) -> Result<ExitCode> {
    if let Some(format) = args.log_format {
        config.log.format = match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    tocsin::telemetry::init(config.log.format, &config.log.level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let db = open(&config)?;
        // Held until the process exits: a second server on the same SQLite file refuses
        // to start rather than fight over it.
        let _single = db.lock_single_server()?;
        if db.backend() == tocsin::db::Backend::Sqlite && args.role != RoleArg::All {
            tracing::warn!(role = ?args.role, "SQLite serves one process: with role http or worker alone, nothing does the other half of the work");
        }
        let applied = db.migrate().context("applying migrations")?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "applied migrations");
        }
        let addr = config.listen_addr()?;
        let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        let bound = listener.local_addr()?;
        let mut state = AppState::new(config, db.clone(), Some(bound));
        state.clock = tocsin::clock::Clock::from_env(|k| std::env::var(k).ok());
        if state.clock.is_shifted() {
            tracing::warn!(
                variable = tocsin::clock::TEST_CLOCK_ENV,
                "the scheduler's clock is shifted by a test offset file; never set this in production"
            );
        }
        state.bus.connect(tocsin::db::notify::Notifier::start(&db));
        let runs_work = args.role != RoleArg::Http;
        if state.config.engine.enabled {
            // An HTTP-only process still loads the playbooks (manual runs, decisions and
            // triggers are recorded there) but drives no run.
            let engine = start_engine(&state, runs_work).await?;
            state.engine = Some(engine);
        }
        let state = actix_web::web::Data::new(state);

        let lifetime = chrono::Duration::minutes(i64::from(state.config.auth.setup_link_minutes));
        let link = db.write(move |conn| setup::issue_if_no_users(conn, lifetime)).await?;
        if let Some(secret) = link {
            // Printed, not logged: the link is for the operator at the terminal.
            eprintln!(
                "\nTocsin has no users yet. Create the first administrator within {} minutes at:\n\n    {}/setup?token={}\n\n\
                 or run: tocsin user add --role admin NAME\n",
                state.config.auth.setup_link_minutes, state.public_url, secret
            );
        }
        tracing::info!(address = %bound, backend = %db.backend(), public_url = %state.public_url, "tocsin listening");
        if let Some(path) = &args.ready_file {
            std::fs::write(path, format!("{bound}\n")).with_context(|| format!("writing {}", path.display()))?;
        }
        tokio::spawn(maintenance(state.clone()));
        tokio::spawn(watch_database(db.clone()));
        if runs_work {
            tokio::spawn(tocsin::retention::run_periodically(db.clone(), state.config.retention.clone()));
            match tocsin::email::sender::Sender::new(
                db.clone(),
                state.config.email.clone(),
                state.public_url.clone(),
                state.clock.clone(),
            )
            .context("starting the e-mail sender")?
            {
                Some(sender) => sender.start(),
                None => tracing::info!("no SMTP host configured (email.host): e-mail stays in the outbox"),
            }
        }
        let routes = if args.role == RoleArg::Worker { web::Routes::HealthOnly } else { web::Routes::All };
        web::serve(state.clone(), listener, routes).await?;
        if let Some(engine) = &state.engine {
            // HTTP has drained; let calls in flight finish and be recorded rather than be
            // found interrupted at the next start (the grace period counts from SIGTERM).
            engine.shutdown().await;
        }
        tracing::info!("tocsin stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Loads playbooks and integrations (refusing to start on any problem, so nothing is
/// half-loaded) and starts the engine's loops.
async fn start_engine(
    state: &AppState,
    run_loops: bool,
) -> Result<std::sync::Arc<tocsin::playbooks::engine::Engine>> {
    use tocsin::integrations::executor::Executor;
    use tocsin::integrations::secrets::Secrets;
    use tocsin::playbooks::engine::{Engine, Settings};
    let pc = &state.config.playbooks;
    let policy = Policy {
        allow_approval_waivers: pc.allow_approval_waivers,
        allow_approve_on_timeout: pc.allow_approve_on_timeout,
    };
    for dir in [&pc.dir, &pc.integrations_dir] {
        if !dir.is_dir() {
            tracing::warn!(folder = %dir.display(), "no such folder: nothing loaded from it");
        }
    }
    let lib = match library::load(&pc.dir, &pc.integrations_dir, policy) {
        Ok(lib) => lib,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            anyhow::bail!(
                "{} problem(s) in playbooks or integrations; fix them (tocsin playbook validate) or set engine.enabled = false",
                problems.len()
            );
        }
    };
    let secrets =
        Secrets::load(pc.secrets_file.as_deref()).context("reading integration secrets")?;
    let executor = Executor::new(lib.integrations.clone(), secrets, Default::default())
        .map_err(|e| anyhow::anyhow!("integrations: {e}"))?;
    let engine = Engine::new(
        state.db.clone(),
        Settings::from_config(&state.config),
        state.bus.clone(),
        &lib,
        executor,
        state.metrics.engine.clone(),
        state.clock.clone(),
    )
    .await
    .context("starting the playbook engine")?;
    if run_loops {
        engine.start();
    }
    tracing::info!(
        playbooks = lib.playbooks.len(),
        integrations = lib.integrations.len(),
        "playbook engine started"
    );
    Ok(engine)
}

/// While the database is unreachable, looks four times a second whether it is back, so
/// the process recovers by itself (ingestion answers 503 meanwhile instead of queueing).
async fn watch_database(db: Db) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tick.tick().await;
        if db.is_down() {
            db.ping().await;
        }
    }
}

/// Housekeeping that keeps tables and memory bounded.
async fn maintenance(state: actix_web::web::Data<AppState>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        state.throttle.prune();
        let idle = chrono::Duration::minutes(i64::from(state.config.auth.session_idle_minutes));
        match state
            .db
            .write(move |conn| tocsin::auth::sessions::purge_expired(conn, idle))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "purged expired sessions"),
            Err(err) => tracing::warn!(error = %err, "session purge failed"),
        }
    }
}

fn migrate(config: &Config, args: MigrateArgs) -> Result<ExitCode> {
    let db = open(config)?;
    if args.status {
        let pending = db.pending_migrations()?;
        if pending.is_empty() {
            println!("database is up to date");
        }
        for name in pending {
            println!("pending: {name}");
        }
    } else if args.revert_all {
        for version in db.revert_all()? {
            println!("reverted {version}");
        }
    } else {
        let applied = db.migrate()?;
        if applied.is_empty() {
            println!("database is up to date");
        }
        for version in applied {
            println!("applied {version}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_password(from_stdin: bool) -> Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for a password; pipe it in with --password-stdin");
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Password again: ")?;
    if first != second {
        bail!("the passwords differ");
    }
    Ok(first)
}

fn user(config: &Config, cmd: UserCommand) -> Result<ExitCode> {
    let db = open_migrated(config)?;
    let actor = cli_actor();
    match cmd {
        UserCommand::Add {
            username,
            role,
            email,
            password_stdin,
        } => {
            let username = users::normalize_username(&username)?;
            let email = users::normalize_email(email.as_deref())?;
            let pw = read_password(password_stdin)?;
            users::check_password("password", &pw)?;
            let password_hash = password::hash(&pw).map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
            let user = db.write_sync(|conn| {
                users::create(
                    conn,
                    &actor,
                    NewUser {
                        username,
                        email,
                        role,
                        password_hash,
                    },
                )
            })?;
            println!("created {} ({})", user.username, user.role);
        }
        UserCommand::List { json } => {
            let all = db.read_sync(users::list)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!("{:<32} {:<10} {:<8} EMAIL", "USERNAME", "ROLE", "STATE");
                for u in all {
                    let state = if u.is_active() { "active" } else { "disabled" };
                    println!(
                        "{:<32} {:<10} {:<8} {}",
                        u.username,
                        u.role,
                        state,
                        u.email.unwrap_or_default()
                    );
                }
            }
        }
        UserCommand::SetRole { username, role } => {
            let username = users::normalize_username(&username)?;
            let user = db.write_sync(|conn| users::set_role(conn, &actor, &username, role))?;
            println!("{} is now {}", user.username, user.role);
        }
        UserCommand::Disable { username } => {
            let username = users::normalize_username(&username)?;
            let user = db.write_sync(|conn| users::set_disabled(conn, &actor, &username, true))?;
            println!("{} is disabled", user.username);
        }
        UserCommand::Enable { username } => {
            let username = users::normalize_username(&username)?;
            let user = db.write_sync(|conn| users::set_disabled(conn, &actor, &username, false))?;
            println!("{} is enabled", user.username);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn token(config: &Config, cmd: TokenCommand) -> Result<ExitCode> {
    let db = open_migrated(config)?;
    match cmd {
        TokenCommand::Create {
            user,
            name,
            expires_days,
        } => {
            let username = users::normalize_username(&user)?;
            let lifetime = expires_days.map(|d| chrono::Duration::days(i64::from(d)));
            let created = db.write_sync(|conn| {
                let owner = users::find(conn, &username)?
                    .ok_or_else(|| AuthError::UserNotFound(username.clone()))?;
                tokens::create(conn, &cli_actor(), &owner, &name, lifetime)
            })?;
            // The secret alone on stdout, so `TOKEN=$(tocsin token create ...)` works.
            println!("{}", created.secret);
            eprintln!(
                "token {} ({}) created for {}; it is shown only this once",
                created.token.id, created.token.name, username
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn validate_playbooks(config: &Config, files: &[PathBuf]) -> Result<ExitCode> {
    let pc = &config.playbooks;
    let policy = Policy {
        allow_approval_waivers: pc.allow_approval_waivers,
        allow_approve_on_timeout: pc.allow_approve_on_timeout,
    };
    for dir in [&pc.dir, &pc.integrations_dir] {
        if !dir.is_dir() {
            eprintln!("{}: no such folder", dir.display());
            return Ok(ExitCode::from(1));
        }
    }
    let problems = if files.is_empty() {
        match library::load(&pc.dir, &pc.integrations_dir, policy) {
            Ok(lib) => {
                println!(
                    "{} playbooks and {} integrations are valid",
                    lib.playbooks.len(),
                    lib.integrations.len()
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(problems) => problems,
        }
    } else {
        let problems: Vec<_> = files
            .iter()
            .flat_map(|f| library::check_file(f, &pc.dir, &pc.integrations_dir, policy))
            .collect();
        if problems.is_empty() {
            println!("{} playbook files are valid", files.len());
            return Ok(ExitCode::SUCCESS);
        }
        problems
    };
    for p in &problems {
        println!("{p}");
    }
    eprintln!("{} problems", problems.len());
    Ok(ExitCode::from(1))
}

fn print_secrets(s: &SourceSecrets) {
    // Secrets alone on stdout as KEY=VALUE lines, so scripts can read them.
    println!("token={}", s.token);
    if let Some(secret) = &s.hmac_secret {
        println!("hmac_secret={secret}");
    }
    eprintln!(
        "source {} ({}): POST events to /api/v1/ingest/{}; the secrets above are shown only this once",
        s.source.name, s.source.kind, s.source.name
    );
}

fn source(config: &Config, cmd: SourceCommand) -> Result<ExitCode> {
    let db = open_migrated(config)?;
    let actor = cli_actor();
    match cmd {
        SourceCommand::Add {
            name,
            kind,
            signed,
            settings,
        } => {
            let settings: SourceConfig = match &settings {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    serde_json::from_str(&text).with_context(|| {
                        format!("{} is not a valid source configuration", path.display())
                    })?
                }
                None => SourceConfig::default(),
            };
            let created =
                db.write_sync(|conn| sources::create(conn, &actor, &name, kind, settings, signed))?;
            print_secrets(&created);
        }
        SourceCommand::List { json } => {
            let all = db.read_sync(sources::list)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!("{:<32} {:<16} {:<8} STATE", "NAME", "KIND", "SIGNED");
                for s in all {
                    let state = if s.disabled_at.is_some() {
                        "disabled"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<32} {:<16} {:<8} {state}",
                        s.name,
                        s.kind.as_str(),
                        if s.signed { "yes" } else { "no" }
                    );
                }
            }
        }
        SourceCommand::Disable { name } => {
            db.write_sync(|conn| sources::set_disabled(conn, &actor, &name, true))?;
            println!("{name} is disabled");
        }
        SourceCommand::Enable { name } => {
            db.write_sync(|conn| sources::set_disabled(conn, &actor, &name, false))?;
            println!("{name} is enabled");
        }
        SourceCommand::Rotate { name } => {
            let rotated = db.write_sync(|conn| sources::rotate(conn, &actor, &name))?;
            print_secrets(&rotated);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_cmd(config: &Config, cmd: AuditCommand) -> Result<ExitCode> {
    let db = open(config)?;
    if !db.pending_migrations()?.is_empty() {
        bail!("the database is not migrated; run `tocsin migrate` first");
    }
    match cmd {
        AuditCommand::Verify { json } => {
            let report = db.read_sync(verify::verify)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                match &report.first_bad {
                    None => println!(
                        "audit chain intact: {} events, head {} ({})",
                        report.events_checked, report.head_seq, report.head_hash
                    ),
                    Some(bad) => println!(
                        "audit chain BROKEN at event {}: {} ({} events verified before it)",
                        bad.seq, bad.reason, report.events_checked
                    ),
                }
            }
            Ok(if report.intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCommand::Export {
            since,
            until,
            format,
            output,
        } => {
            let since = since.as_deref().map(export::parse_time).transpose()?;
            let until = until.as_deref().map(export::parse_time).transpose()?;
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let count =
                db.read_sync(|conn| export::export(conn, since, until, format, &mut out))?;
            drop(out);
            eprintln!("exported {count} events");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `tocsin playbook enable|disable ID`: the switch every run start obeys, audited as
/// `system/cli`. The id must be declared by a file in the playbook folder.
fn switch_playbook(config: &Config, id: &str, enabled: bool) -> Result<ExitCode> {
    let pc = &config.playbooks;
    let policy = Policy {
        allow_approval_waivers: pc.allow_approval_waivers,
        allow_approve_on_timeout: pc.allow_approve_on_timeout,
    };
    let survey = library::survey(&pc.dir, &pc.integrations_dir, policy);
    if survey.playbook(id).is_none() {
        eprintln!("no playbook {id:?} in {}", pc.dir.display());
        return Ok(ExitCode::from(2));
    }
    let db = open_migrated(config)?;
    let changed = db.write_sync(|conn| {
        tocsin::playbooks::engine::switches::set(conn, id, enabled, &cli_actor())
    })?;
    let state = if enabled { "enabled" } else { "disabled" };
    if changed {
        println!("playbook {id} {state}");
    } else {
        println!("playbook {id} was already {state}");
    }
    Ok(ExitCode::SUCCESS)
}
