//! The durable playbook engine. Runs and step runs are rows; every transition is
//! committed before the next step starts, under a lease that fences out any other
//! process, so a killed process's runs resume elsewhere (or after a restart) from their
//! last committed step.
//!
//! Pieces: [`dispatch`] turns trigger events, cron schedules and manual requests into
//! runs; the runner loop ([`Engine::start`]) claims runnable runs and hands each to a
//! [`driver`], which walks the step graph ([`graph`]), carries out actions
//! ([`actions`]) and writes transitions ([`store`]).

pub mod ack;
pub mod actions;
pub mod dispatch;
pub mod driver;
pub mod graph;
pub mod store;
pub mod switches;
pub mod view;

use crate::approvals::ApprovalError;
use crate::audit::AuditError;
use crate::clock::Clock;
use crate::config::{CasesConfig, EngineConfig};
use crate::db::notify::Channel;
use crate::db::{Backend, Db, DbError};
use crate::events::Bus;
use crate::integrations::executor::Executor;
use crate::playbooks::definition::Playbook;
use crate::playbooks::library::Library;
use graph::Graph;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no playbook run {0}")]
    RunNotFound(i64),
    #[error("no playbook {0:?} is loaded")]
    PlaybookNotFound(String),
    #[error("`{field}` {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0}")]
    Conflict(String),
    /// Another process took the run over (its lease had run out); this one stops.
    #[error("run {0} is held by another process")]
    LeaseLost(i64),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    #[error(transparent)]
    Case(#[from] crate::cases::CaseError),
    /// An admin disabled the playbook: it starts no runs until enabled again.
    #[error("playbook {0:?} is disabled; an admin can enable it")]
    PlaybookDisabled(String),
}

impl From<diesel::result::Error> for EngineError {
    fn from(err: diesel::result::Error) -> Self {
        EngineError::Db(DbError::Query(err))
    }
}

/// A playbook ready to run: the definition and its step graph.
#[derive(Debug)]
pub struct Loaded {
    pub playbook: Playbook,
    pub graph: Graph,
    pub hash: String,
    /// The trigger condition, parsed once (the dispatcher checks it for every event).
    pub condition:
        Option<Result<crate::playbooks::expr::Condition, crate::playbooks::expr::ExprError>>,
}

impl Loaded {
    /// A definition stored under `hash`, ready to run.
    pub fn new(playbook: Playbook, hash: String) -> Loaded {
        Loaded {
            graph: Graph::new(&playbook),
            condition: playbook
                .condition
                .as_deref()
                .map(crate::playbooks::expr::Condition::parse),
            hash,
            playbook,
        }
    }
}

/// Settings the engine works with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub engine: EngineConfig,
    pub cases: CasesConfig,
    pub allow_approval_waivers: bool,
    pub allow_approve_on_timeout: bool,
    pub default_step_timeout: Duration,
    pub lease: chrono::Duration,
    /// Deployment values replacing playbook input defaults.
    pub input_overrides:
        std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

impl Settings {
    /// Settings from the configuration.
    pub fn from_config(config: &crate::config::Config) -> Settings {
        Settings {
            default_step_timeout: humantime::parse_duration(&config.engine.default_step_timeout)
                .unwrap_or(Duration::from_secs(600)),
            lease: chrono::Duration::seconds(i64::from(config.engine.lease_seconds)),
            engine: config.engine.clone(),
            cases: config.cases.clone(),
            allow_approval_waivers: config.playbooks.allow_approval_waivers,
            allow_approve_on_timeout: config.playbooks.allow_approve_on_timeout,
            input_overrides: config.playbooks.inputs.clone(),
        }
    }
}

/// The engine of one process.
pub struct Engine {
    pub(crate) db: Db,
    /// Group commit for step transitions of many runs.
    pub(crate) batcher: crate::db::batch::Batcher,
    pub(crate) settings: Settings,
    pub(crate) bus: Bus,
    pub(crate) executor: Arc<Executor>,
    pub(crate) http: reqwest::Client,
    pub(crate) stats: crate::metrics::EngineStats,
    /// Loaded playbooks by id.
    pub(crate) playbooks: HashMap<String, Arc<Loaded>>,
    /// Definitions by hash: the loaded ones, and older ones read back for old runs.
    definitions: Mutex<HashMap<String, Arc<Loaded>>>,
    /// Identifies this process in leases.
    pub(crate) owner: String,
    /// Wakes the runner (a run became runnable).
    pub(crate) runnable: Notify,
    slots: Arc<Semaphore>,
    /// Set on shutdown: no run is claimed and no step started any more.
    stopping: std::sync::atomic::AtomicBool,
    /// When the shutdown grace period ends (set with `stopping`).
    stop_deadline: Mutex<Option<tokio::time::Instant>>,
    /// Runs this process is driving now.
    active: Mutex<HashSet<i64>>,
    /// The time timers, deadlines and leases are measured by.
    pub(crate) clock: Clock,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("owner", &self.owner)
            .field("playbooks", &self.playbooks.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Engine {
    /// Prepares the engine: stores the loaded definitions and tells the bus which
    /// events to write. Does not start any loop.
    pub async fn new(
        db: Db,
        settings: Settings,
        bus: Bus,
        library: &Library,
        executor: Executor,
        stats: crate::metrics::EngineStats,
        clock: Clock,
    ) -> Result<Arc<Engine>, EngineError> {
        let mut playbooks_list: Vec<Playbook> =
            library.playbooks.values().map(|(p, _)| p.clone()).collect();
        for pb in &mut playbooks_list {
            if let Some(values) = settings.input_overrides.get(&pb.id) {
                apply_input_overrides(pb, values)?;
            }
        }
        for id in settings.input_overrides.keys() {
            if !library.playbooks.contains_key(id) {
                return Err(EngineError::Invalid {
                    field: format!("playbooks.inputs.{id}"),
                    reason: "names no loaded playbook".into(),
                });
            }
        }
        let stored = playbooks_list.clone();
        let hashes: Vec<String> = db
            .write(move |conn| {
                stored
                    .iter()
                    .map(|p| store::save_definition(conn, p).map_err(EngineError::from))
                    .collect::<Result<Vec<_>, EngineError>>()
            })
            .await?;
        let mut playbooks = HashMap::new();
        let mut definitions = HashMap::new();
        for (pb, hash) in playbooks_list.into_iter().zip(hashes) {
            let loaded = Arc::new(Loaded::new(pb, hash.clone()));
            definitions.insert(hash, loaded.clone());
            playbooks.insert(loaded.playbook.id.clone(), loaded);
        }
        let kinds: HashSet<_> = playbooks
            .values()
            .filter_map(|l| dispatch::event_kind(l.playbook.trigger.on))
            .collect();
        bus.listen(kinds);
        let http = reqwest::Client::builder()
            .user_agent(concat!("tocsin/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.default_step_timeout)
            .build()
            .map_err(|e| EngineError::Internal(format!("cannot create the HTTP client: {e}")))?;
        let slots = Arc::new(Semaphore::new(settings.engine.max_concurrent_runs));
        Ok(Arc::new(Engine {
            batcher: crate::db::batch::Batcher::start(db.clone(), 512),
            db,
            bus,
            executor: Arc::new(executor),
            http,
            stats,
            playbooks,
            definitions: Mutex::new(definitions),
            owner: format!(
                "{}-{}-{}",
                hostname(),
                std::process::id(),
                &crate::auth::random_secret()[..8]
            ),
            runnable: Notify::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            stop_deadline: Mutex::new(None),
            slots,
            active: Mutex::new(HashSet::new()),
            settings,
            clock,
        }))
    }

    /// Starts the runner, dispatcher and scheduler loops on the current runtime, and on
    /// PostgreSQL the listener for other processes' wake-ups.
    pub fn start(self: &Arc<Self>) {
        if let Some(peers) = self.bus.peers() {
            let me = self.clone();
            crate::db::notify::listen(&self.db, peers, move |channel| match channel {
                Channel::Events => me.bus.wake_local(),
                Channel::Runs => me.runnable.notify_one(),
            });
        }
        let me = self.clone();
        tokio::spawn(async move { me.runner().await });
        let me = self.clone();
        tokio::spawn(async move { dispatch::events_loop(me).await });
        let me = self.clone();
        tokio::spawn(async move { dispatch::schedule_loop(me).await });
    }

    /// The loaded playbook `id`.
    pub fn playbook(&self, id: &str) -> Option<&Arc<Loaded>> {
        self.playbooks.get(id)
    }

    /// The loaded playbooks, by id.
    pub fn playbooks(&self) -> impl Iterator<Item = &Arc<Loaded>> {
        self.playbooks.values()
    }

    /// The integration secrets store, for redacting what is shown (never for values).
    pub fn executor_secrets(&self) -> &crate::integrations::secrets::Secrets {
        self.executor.secrets()
    }

    /// The loaded integrations, by id.
    pub fn integrations(
        &self,
    ) -> impl Iterator<Item = &crate::integrations::definition::Integration> {
        self.executor.integrations()
    }

    /// The base URL calls to integration `id` go to, after deployment overrides.
    pub fn integration_base_url(&self, id: &str) -> Option<String> {
        self.executor.base_url(id).map(ToString::to_string)
    }

    /// The secret names integration `id` reads (its auth and its actions' templates).
    pub fn integration_secrets(&self, id: &str) -> Vec<String> {
        self.executor.secret_names(id)
    }

    /// The definition a run started from.
    pub(crate) async fn definition(&self, hash: &str) -> Result<Arc<Loaded>, EngineError> {
        if let Some(l) = self.lock_definitions().get(hash) {
            return Ok(l.clone());
        }
        let h = hash.to_string();
        let pb = self
            .db
            .read(move |conn| store::load_definition(conn, &h))
            .await?;
        let loaded = Arc::new(Loaded::new(pb, hash.to_string()));
        self.lock_definitions()
            .insert(hash.to_string(), loaded.clone());
        Ok(loaded)
    }

    fn lock_definitions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Loaded>>> {
        self.definitions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the process is shutting down.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Stops claiming runs and starting steps from now on; the grace period
    /// (`engine.shutdown_grace_seconds`) counts from the first call.
    pub fn begin_shutdown(&self) {
        let mut deadline = self.stop_deadline.lock().unwrap_or_else(|p| p.into_inner());
        if deadline.is_none() {
            *deadline = Some(
                tokio::time::Instant::now()
                    + Duration::from_secs(self.settings.engine.shutdown_grace_seconds),
            );
        }
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
        // The runner may be asleep; it must see `stopping` and return.
        self.runnable.notify_one();
    }

    /// Stops claiming runs and starting steps, lets calls in flight finish (within the
    /// grace period counted from [`Engine::begin_shutdown`]), records them, and lets go of
    /// every run: it resumes at the next start, or at once in another process.
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        let deadline = self
            .stop_deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(tokio::time::Instant::now);
        loop {
            let active = self.lock_active().len();
            if active == 0 {
                if let Some(peers) = self.bus.peers() {
                    // The runs let go of can be taken by another process at once.
                    crate::db::notify::announce_now(&self.db, peers, Channel::Runs).await;
                }
                tracing::info!("playbook engine stopped");
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    runs = active,
                    "shutdown grace period over with calls still in flight"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Tells the runners (this process's and, on PostgreSQL, the others') that runs may
    /// be waiting.
    pub fn wake(&self) {
        self.runnable.notify_one();
        if let Some(peers) = self.bus.peers() {
            peers.announce(Channel::Runs);
        }
    }

    /// Longest an idle loop sleeps before looking for work by itself. With wake-ups
    /// from the other processes (PostgreSQL) that is a fallback for a lost notification,
    /// so it can be long; the runner also wakes when a timer or lease is due.
    pub(crate) fn idle_poll(&self) -> Duration {
        if self.bus.peers().is_some_and(|p| p.is_active()) {
            Duration::from_secs(10)
        } else {
            Duration::from_secs(1)
        }
    }

    /// The current time by the engine's clock.
    pub(crate) fn now(&self) -> chrono::NaiveDateTime {
        self.clock.now()
    }

    /// The end of a lease taken or renewed now.
    pub(crate) fn lease_until(&self) -> chrono::NaiveDateTime {
        self.now() + self.settings.lease
    }

    /// Claims runnable runs and drives each on its own task, within the concurrency limit.
    async fn runner(self: Arc<Self>) {
        if self.db.backend() == Backend::Sqlite {
            // One process owns an SQLite database, so leases left by a previous life of
            // this process are stale: take its runs back at once rather than after expiry.
            let released = self
                .db
                .write(|conn| store::release_all(conn).map_err(EngineError::from))
                .await;
            match released {
                Ok(0) => {}
                Ok(n) => tracing::info!(runs = n, "resuming runs interrupted by a restart"),
                Err(e) => tracing::error!(error = %e, "cannot release stale run leases"),
            }
        }
        loop {
            if self.is_stopping() {
                return;
            }
            let free = self.slots.available_permits();
            let claimed = if free == 0 {
                Vec::new()
            } else {
                match self.claim(free).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming runs failed");
                        Vec::new()
                    }
                }
            };
            let full = !claimed.is_empty() && claimed.len() == free;
            for id in claimed {
                let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                    break;
                };
                let me = self.clone();
                me.stats.runs_active.inc();
                tokio::spawn(async move {
                    driver::drive(me.clone(), id).await;
                    me.stats.runs_active.dec();
                    me.lock_active().remove(&id);
                    drop(permit);
                    // A slot is free: only this process's runner needs to know.
                    me.runnable.notify_one();
                });
            }
            if full {
                tokio::task::yield_now().await;
                continue;
            }
            if self.slots.available_permits() == 0 {
                // Every slot is busy: a driver that ends wakes the runner.
                self.runnable.notified().await;
                continue;
            }
            let sleep = self.until_next_timer().await.max(Duration::from_millis(5));
            tokio::select! {
                _ = self.runnable.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn claim(self: &Arc<Self>, limit: usize) -> Result<Vec<i64>, EngineError> {
        let at = self.now();
        if self.db.backend() == Backend::Postgres {
            let owner = self.owner.clone();
            let until = self.lease_until();
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            // A run whose lease ran out while this process still drives it (a slow
            // database) must not get a second driver here.
            let driving: Vec<i64> = self.lock_active().iter().copied().collect();
            // No audit record is written, so the claim need not take the chain lock.
            let claimed = self
                .db
                .write_unchained(move |conn| match conn {
                    crate::db::DbConn::Postgres(c) => {
                        store::claim_batch_pg(c, &owner, at, until, limit, &driving)
                            .map_err(EngineError::from)
                    }
                    crate::db::DbConn::Sqlite(_) => Ok(Vec::new()),
                })
                .await?;
            self.lock_active().extend(claimed.iter().copied());
            return Ok(claimed);
        }
        let candidates = self
            .db
            .read(move |conn| {
                store::claimable(conn, at, i64::try_from(limit).unwrap_or(i64::MAX))
                    .map_err(EngineError::from)
            })
            .await?;
        let candidates: Vec<i64> = {
            let active = self.lock_active();
            candidates
                .into_iter()
                .filter(|id| !active.contains(id))
                .collect()
        };
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let owner = self.owner.clone();
        let until = self.lease_until();
        let claimed = self
            .db
            .write(move |conn| {
                let mut got = Vec::new();
                for id in candidates {
                    if store::claim(conn, id, &owner, at, until)? {
                        got.push(id);
                    }
                }
                Ok::<_, EngineError>(got)
            })
            .await?;
        self.lock_active().extend(claimed.iter().copied());
        Ok(claimed)
    }

    /// How long the runner may sleep: until the earliest parked run's timer or lease end
    /// (runs whose holder died become free without any wake-up), at most `idle_poll`.
    async fn until_next_timer(&self) -> Duration {
        let max = self.idle_poll();
        let next = self
            .db
            .read(|conn| store::next_wake(conn).map_err(EngineError::from))
            .await;
        match next {
            Ok(Some(t)) => (t - self.now()).to_std().unwrap_or(Duration::ZERO).min(max),
            _ => max,
        }
    }
}

/// Makes deployment values the defaults of a playbook's inputs, checking each names a
/// declared input and has its type (the stored definition then records them).
fn apply_input_overrides(
    pb: &mut Playbook,
    values: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), EngineError> {
    for (name, value) in values {
        let invalid = |reason: String| EngineError::Invalid {
            field: format!("playbooks.inputs.{}.{name}", pb.id),
            reason,
        };
        let def = pb
            .inputs
            .iter()
            .find(|d| &d.name == name)
            .ok_or_else(|| invalid("is not an input of this playbook".into()))?;
        if !dispatch::has_type(def.kind, value) {
            return Err(invalid(
                format!("must be a {:?}, found {value}", def.kind).to_lowercase(),
            ));
        }
    }
    for def in &mut pb.inputs {
        if let Some(v) = values.get(&def.name) {
            def.default = Some(v.clone());
        }
    }
    Ok(())
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tocsin".into())
}
