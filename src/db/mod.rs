//! Storage: one connection type over SQLite and PostgreSQL, a pool, transactions and migrations.
//!
//! Diesel is synchronous; the async entry points (`read`, `write`) run on tokio's blocking
//! pool so HTTP workers never wait on the database.

pub mod batch;
pub mod checkpoint;
pub mod dedicated;
pub mod kept;
pub mod logsync;
pub mod notify;
pub mod schema;
pub mod stamp;

use crate::config::{DatabaseConfig, DatabaseUrl, SqliteSynchronous};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Runs one diesel expression on the backend's own connection: `on_backend!(conn, |c| q.execute(c))`.
/// The query is still written once and compiled for each backend; going through the
/// inner connection lets diesel reuse the prepared statement without rendering its SQL
/// again, which the multi-backend wrapper does on every call. Used on hot paths.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match &mut *$conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Postgres($c) => $body,
        }
    };
}

/// Arbitrary but fixed key for the PostgreSQL advisory lock that serializes migrations
/// when several processes start at once.
const MIGRATION_LOCK_KEY: i64 = 0x7_0c51_4e00;

/// A connection to either backend; queries written once run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Which database engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("no database connection available: {0}")]
    Pool(#[from] r2d2::PoolError),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("cannot create the database directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error("database task failed: {0}")]
    Task(String),
    /// The log could not be flushed to disk, so a commit may not survive a power loss.
    #[error("cannot flush the database log to disk: {0}")]
    Flush(String),
    /// Known to be unreachable just now (refused without trying, to fail fast).
    #[error("the database is unreachable")]
    Unavailable,
    #[error(
        "another tocsin serve is using the SQLite database {0}; SQLite serves one process \
         (run several processes on PostgreSQL)"
    )]
    InUse(String),
}

impl DbError {
    /// Whether the error says the database cannot be reached (no connection, or the
    /// connection was cut), as opposed to a problem with the statement or the data.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Connect(_) | DbError::Pool(_) | DbError::Unavailable | DbError::Flush(_) => {
                true
            }
            DbError::Query(e) => query_error_is_unavailable(e),
            _ => false,
        }
    }
}

/// Whether a query failed because the connection is gone (PostgreSQL restarted, the
/// backend terminated, the network cut), so retrying on a new connection may succeed.
pub fn query_error_is_unavailable(err: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match err {
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        Error::DatabaseError(_, info) => {
            let m = info.message();
            m.contains("terminating connection")
                || m.contains("server closed the connection")
                || m.contains("no connection to the server")
                || m.contains("could not receive data")
                || m.contains("could not send data")
        }
        _ => false,
    }
}

/// Opens connections for the pool and sets SQLite's pragmas on each.
#[derive(Debug, Clone)]
pub struct Manager {
    url: DatabaseUrl,
    synchronous: SqliteSynchronous,
    busy_timeout_ms: u32,
}

impl Manager {
    fn establish(&self) -> Result<DbConn, DbError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                Ok(DbConn::Postgres(diesel::PgConnection::establish(url)?))
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())?;
                // WAL lets readers run beside the single writer; `synchronous=FULL` makes a
                // commit durable before it returns, which acknowledged ingestion relies on.
                let synchronous = match self.synchronous {
                    SqliteSynchronous::Full => "FULL",
                    SqliteSynchronous::Normal => "NORMAL",
                };
                // `temp_store = MEMORY` keeps statement journals (written when an insert
                // splits index pages inside a transaction) off the file system.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; \
                     PRAGMA cache_size = -32768; PRAGMA mmap_size = 268435456; \
                     PRAGMA temp_store = MEMORY;",
                    self.busy_timeout_ms
                ))?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = DbError;

    fn connect(&self) -> Result<DbConn, DbError> {
        self.establish()
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), DbError> {
        conn.ping().map_err(DbError::Query)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

/// A pooled connection.
pub type PooledConn = PooledConnection<Manager>;

/// The database handle shared by the whole process.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Manager>,
    /// Opens connections outside the pool (the ingestion writer's, the checkpointer's).
    manager: Manager,
    backend: Backend,
    /// SQLite allows one writer; queuing writers here avoids busy-waiting inside SQLite.
    write_lock: Arc<Mutex<()>>,
    /// Set when a call found the database unreachable, cleared by the next success:
    /// ingestion refuses at once (503) instead of queueing behind connection timeouts.
    down: Arc<AtomicBool>,
    /// The PostgreSQL URL, for the LISTEN connection that lives outside the pool.
    pg_url: Option<String>,
    /// The SQLite file, for the one-server lock.
    sqlite_path: Option<std::path::PathBuf>,
}

impl Db {
    /// Opens a pool for the configured database, creating the SQLite file's directory.
    pub fn open(config: &DatabaseConfig) -> Result<Db, DbError> {
        let url = DatabaseUrl::parse(&config.url)
            .map_err(|e| DbError::Connect(diesel::ConnectionError::BadConnection(e.to_string())))?;
        let backend = match &url {
            DatabaseUrl::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| DbError::Directory {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                Backend::Sqlite
            }
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        };
        let (pg_url, sqlite_path) = match &url {
            DatabaseUrl::Postgres(u) => (Some(u.clone()), None),
            DatabaseUrl::Sqlite(p) => (None, Some(p.clone())),
        };
        let manager = Manager {
            url,
            synchronous: config.sqlite_synchronous,
            busy_timeout_ms: config.busy_timeout_ms,
        };
        // Fail fast with the real connection error rather than r2d2's generic timeout.
        drop(manager.establish()?);
        let pool = Pool::builder()
            .max_size(config.pool_size)
            .connection_timeout(Duration::from_secs(10))
            .build(manager.clone())?;
        Ok(Db {
            pool,
            manager,
            backend,
            write_lock: Arc::new(Mutex::new(())),
            down: Arc::new(AtomicBool::new(false)),
            pg_url,
            sqlite_path,
        })
    }

    /// On SQLite, makes sure no other `tocsin serve` uses the same file: takes an
    /// exclusive lock on `<file>.serve-lock`, held while the returned file stays open.
    /// SQLite is the single-process embedded backend (its writers would queue on the file
    /// lock, and runs held by the other process would be taken back at start as stale);
    /// several processes need PostgreSQL. `None` on PostgreSQL.
    pub fn lock_single_server(&self) -> Result<Option<std::fs::File>, DbError> {
        let Some(path) = &self.sqlite_path else {
            return Ok(None);
        };
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".serve-lock");
        let lock_path = std::path::PathBuf::from(lock_path);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| DbError::Directory {
                path: lock_path.display().to_string(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(DbError::InUse(path.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(source)) => Err(DbError::Directory {
                path: lock_path.display().to_string(),
                source,
            }),
        }
    }

    /// Whether the last call found the database unreachable (and none succeeded since).
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// A connection outside the pool, for `LISTEN` (PostgreSQL only).
    pub fn dedicated_pg_connection(&self) -> Result<diesel::PgConnection, DbError> {
        let url = self.pg_url.as_deref().ok_or_else(|| {
            DbError::Connect(diesel::ConnectionError::BadConnection(
                "not a PostgreSQL database".into(),
            ))
        })?;
        Ok(diesel::PgConnection::establish(url)?)
    }

    /// Notes how a call went: a success clears the down flag; a failure sets it when
    /// the connection no longer answers (checked with a ping, so a refused statement on a
    /// healthy database does not count).
    fn observe<T, E>(&self, conn: Option<&mut DbConn>, result: &Result<T, E>) {
        match (result, conn) {
            (Ok(_), _) => {
                if self.down.swap(false, Ordering::AcqRel) {
                    tracing::info!("database reachable again");
                }
            }
            (Err(_), Some(conn)) => {
                if conn.ping().is_err() {
                    self.mark_down();
                }
            }
            (Err(_), None) => self.mark_down(),
        }
    }

    fn mark_down(&self) {
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::warn!("database unreachable");
        }
    }

    fn pooled(&self) -> Result<PooledConn, DbError> {
        match self.pool.get() {
            Ok(c) => Ok(c),
            Err(e) => {
                self.mark_down();
                Err(e.into())
            }
        }
    }

    /// The engine behind this handle.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection for code that is already on a blocking thread (the CLI, tests).
    pub fn conn(&self) -> Result<PooledConn, DbError> {
        Ok(self.pool.get()?)
    }

    /// Runs `f` outside an explicit transaction, on the calling thread.
    pub fn read_sync<T, E>(&self, f: impl FnOnce(&mut DbConn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let mut conn = self.pooled()?;
        let out = f(&mut conn);
        self.observe(Some(&mut conn), &out);
        out
    }

    /// Runs `f` in one write transaction on the calling thread: all of it commits, or none.
    /// On SQLite the transaction is `BEGIN IMMEDIATE`, so it never fails half-way for lack
    /// of the write lock.
    pub fn write_sync<T, E>(&self, f: impl FnOnce(&mut DbConn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        self.transaction_sync(true, f)
    }

    /// A write transaction that appends nothing to the audit chain (claiming runs under
    /// leases): on PostgreSQL it skips the chain lock, so claims of several processes do
    /// not queue behind every other writer. `f` must not call `audit::append`.
    pub fn write_unchained_sync<T, E>(
        &self,
        f: impl FnOnce(&mut DbConn) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        self.transaction_sync(false, f)
    }

    fn transaction_sync<T, E>(
        &self,
        lock_chain: bool,
        f: impl FnOnce(&mut DbConn) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        let mut pooled = self.pooled()?;
        let out = self.transaction_on(&mut pooled, lock_chain, f);
        self.observe(Some(&mut pooled), &out);
        out
    }

    fn transaction_on<T, E>(
        &self,
        conn: &mut DbConn,
        lock_chain: bool,
        f: impl FnOnce(&mut DbConn) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        match self.backend {
            // Every write transaction takes the audit chain's row lock first. Most writes
            // append to the chain, which locks its head until commit; taking it first in
            // all of them gives one lock order, so a transaction holding a run or case row
            // can never wait for the chain while a group commit holding the chain waits
            // for that row (a deadlock PostgreSQL would break by failing one of them).
            Backend::Postgres => conn.transaction(|c| {
                if lock_chain {
                    diesel::sql_query("SELECT id FROM audit_head WHERE id = 1 FOR UPDATE")
                        .execute(c)
                        .map_err(DbError::Query)?;
                }
                f(c)
            }),
            Backend::Sqlite => {
                let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
                conn.batch_execute("BEGIN IMMEDIATE")
                    .map_err(DbError::Query)?;
                match f(conn) {
                    Ok(value) => match conn.batch_execute("COMMIT") {
                        Ok(()) => Ok(value),
                        Err(err) => {
                            let _ = conn.batch_execute("ROLLBACK");
                            Err(DbError::Query(err).into())
                        }
                    },
                    Err(err) => {
                        // A failed ROLLBACK leaves the connection unusable; r2d2 drops it
                        // when `has_broken` says so, so the error here is not lost work.
                        let _ = conn.batch_execute("ROLLBACK");
                        Err(err)
                    }
                }
            }
        }
    }

    /// Runs `f` on the blocking pool, outside an explicit transaction.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        self.blocking(move |db| db.read_sync(f)).await
    }

    /// Runs `f` in one write transaction on the blocking pool.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        self.blocking(move |db| db.write_sync(f)).await
    }

    async fn blocking<T, E>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| E::from(DbError::Task(e.to_string())))?
    }

    /// [`Db::write_unchained_sync`] on the blocking pool.
    pub async fn write_unchained<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        self.blocking(move |db| db.write_unchained_sync(f)).await
    }

    /// Applies every pending migration; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, DbError> {
        self.with_migration_lock(|conn| match conn {
            DbConn::Sqlite(c) => run_pending(c, SQLITE_MIGRATIONS),
            DbConn::Postgres(c) => run_pending(c, POSTGRES_MIGRATIONS),
        })
    }

    /// Reverts every applied migration, leaving an empty database; returns the versions reverted.
    pub fn revert_all(&self) -> Result<Vec<String>, DbError> {
        self.with_migration_lock(|conn| {
            let reverted = match conn {
                DbConn::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS),
                DbConn::Postgres(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS),
            };
            reverted
                .map(|v| v.into_iter().map(|m| m.to_string()).collect())
                .map_err(|e| DbError::Migration(e.to_string()))
        })
    }

    /// Migrations not yet applied.
    pub fn pending_migrations(&self) -> Result<Vec<String>, DbError> {
        let mut conn = self.conn()?;
        let pending = match &mut *conn {
            DbConn::Sqlite(c) => c
                .pending_migrations(SQLITE_MIGRATIONS)
                .map(|v| v.iter().map(|m| m.name().to_string()).collect()),
            DbConn::Postgres(c) => c
                .pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.iter().map(|m| m.name().to_string()).collect()),
        };
        pending.map_err(|e| DbError::Migration(e.to_string()))
    }

    fn with_migration_lock<T>(
        &self,
        f: impl FnOnce(&mut DbConn) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut conn = self.conn()?;
        if self.backend == Backend::Postgres {
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .execute(&mut *conn)?;
        }
        let result = f(&mut conn);
        if self.backend == Backend::Postgres {
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                .execute(&mut *conn)?;
        }
        result
    }

    /// Writes a consistent copy of the SQLite database to `to` while the server may be
    /// writing (`VACUUM INTO`: one read transaction, so the copy is a single committed
    /// state; also compacted). `to` must not exist. PostgreSQL has its own tools.
    pub fn backup_sqlite(&self, to: &std::path::Path) -> Result<(), DbError> {
        if self.backend != Backend::Sqlite {
            return Err(DbError::Task(
                "tocsin backup copies SQLite databases; back PostgreSQL up with pg_dump or \
                 pg_basebackup"
                    .into(),
            ));
        }
        if to.exists() {
            return Err(DbError::Task(format!(
                "{} already exists; choose a new file",
                to.display()
            )));
        }
        let target = to.to_string_lossy().replace('\'', "''");
        let mut conn = self.conn()?;
        diesel::sql_query(format!("VACUUM INTO '{target}'")).execute(&mut *conn)?;
        Ok(())
    }

    /// True when a trivial query succeeds; used by `/readyz`.
    pub async fn ping(&self) -> bool {
        self.read(|conn| {
            diesel::sql_query("SELECT 1")
                .execute(conn)
                .map_err(DbError::Query)
        })
        .await
        .is_ok()
    }

    /// Connections open in the pool and how many are idle.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }
}

fn run_pending<C>(conn: &mut C, source: EmbeddedMigrations) -> Result<Vec<String>, DbError>
where
    C: MigrationHarness<C::Backend> + diesel::Connection,
{
    conn.run_pending_migrations(source)
        .map(|v| v.into_iter().map(|m| m.to_string()).collect())
        .map_err(|e| DbError::Migration(e.to_string()))
}

diesel::define_sql_function! {
    /// SQLite: the rowid of the last insert on this connection.
    fn last_insert_rowid() -> diesel::sql_types::BigInt;
}

diesel::define_sql_function! {
    /// PostgreSQL: the value most recently taken from a sequence in this session.
    fn lastval() -> diesel::sql_types::BigInt;
}

/// The id of the row just inserted on this connection (SQLite rowid or PostgreSQL
/// sequence). Written as typed selects so the statement is prepared once and cached.
pub fn last_insert_id(conn: &mut DbConn) -> QueryResult<i64> {
    match conn {
        DbConn::Sqlite(c) => last_rowid(c),
        DbConn::Postgres(c) => diesel::select(lastval()).get_result(c),
    }
}

/// SQLite: the rowid of the row just inserted on this connection (cached statement).
pub fn last_rowid(c: &mut diesel::SqliteConnection) -> QueryResult<i64> {
    diesel::select(last_insert_rowid()).get_result(c)
}

/// Runs `f` inside a savepoint of the caller's transaction: if it fails, its writes are
/// undone and the transaction goes on (used where a failure is itself recorded).
pub fn savepoint<T, E>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<Result<T, E>, diesel::result::Error> {
    conn.batch_execute("SAVEPOINT tocsin_step")?;
    match f(conn) {
        Ok(v) => {
            conn.batch_execute("RELEASE SAVEPOINT tocsin_step")?;
            Ok(Ok(v))
        }
        Err(e) => {
            conn.batch_execute("ROLLBACK TO SAVEPOINT tocsin_step; RELEASE SAVEPOINT tocsin_step")?;
            Ok(Err(e))
        }
    }
}

/// Current UTC time truncated to microseconds, the precision both backends store.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}

/// Serializes stored UTC times as RFC 3339 with a `Z`, the form the API promises.
pub mod utc {
    use chrono::NaiveDateTime;
    use serde::Serializer;

    /// `2026-11-25T10:00:00.123456Z`.
    pub fn format(t: &NaiveDateTime) -> String {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }

    /// For `#[serde(serialize_with = "crate::db::utc::serialize")]`.
    pub fn serialize<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    /// The same for optional times.
    pub fn serialize_opt<S: Serializer>(
        t: &Option<NaiveDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format(t)),
            None => s.serialize_none(),
        }
    }
}

/// A migrated SQLite database in a fresh temporary folder (kept while the `TempDir` lives),
/// for unit tests.
#[cfg(test)]
pub fn scratch_sqlite() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let db = Db::open(&crate::config::DatabaseConfig {
        url: format!("sqlite://{}", dir.path().join("t.db").display()),
        ..crate::config::DatabaseConfig::default()
    })
    .expect("open SQLite");
    db.migrate().expect("migrate");
    (dir, db)
}
