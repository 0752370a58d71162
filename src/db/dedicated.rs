//! The ingestion writer's own connection, outside the pool.
//!
//! A SQLite connection drops its whole page cache when it starts a transaction and finds
//! that another connection wrote since its last one; pool connections take turns, so a
//! writer on pooled connections re-read its hot index pages at every group commit. One
//! connection that only the writer uses keeps them cached. On SQLite it also leaves WAL
//! checkpoints to a [`Checkpointer`] on another thread, so a commit no longer copies
//! pages into the database file before the requests behind it are answered, and with
//! `synchronous=FULL` it flushes the log on a [`LogSync`] thread instead of inside each
//! commit (callers answer from [`DedicatedWriter::after_durable`]).

use super::checkpoint::{Checkpointer, RESTART_AFTER_FRAMES};
use super::logsync::LogSync;
use super::{Backend, Db, DbConn, DbError};
use crate::config::SqliteSynchronous;
use diesel::connection::SimpleConnection;
use diesel::r2d2::R2D2Connection;

/// A long-lived write connection for one writer thread; reopened after a failure.
pub struct DedicatedWriter {
    db: Db,
    conn: Option<DbConn>,
    checkpointer: Option<Checkpointer>,
    /// Flushes the log behind the writer when commits must be durable (SQLite, `FULL`).
    log_sync: Option<LogSync>,
}

impl DedicatedWriter {
    /// A writer for `db`; the connection opens on first use.
    pub fn new(db: &Db) -> DedicatedWriter {
        DedicatedWriter::with_restart_after(db, RESTART_AFTER_FRAMES)
    }

    /// A writer whose log is rewound at `frames` pages instead of the default.
    pub fn with_restart_after(db: &Db, frames: i64) -> DedicatedWriter {
        let checkpointer = match db.backend {
            Backend::Sqlite => Checkpointer::start(db.manager.clone(), frames),
            Backend::Postgres => None,
        };
        let log_sync = match (&db.sqlite_path, db.manager.synchronous) {
            (Some(path), SqliteSynchronous::Full) => LogSync::start(path)
                .map_err(
                    |e| tracing::warn!(error = %e, "no log flush thread; commits flush the log"),
                )
                .ok(),
            _ => None,
        };
        DedicatedWriter {
            db: db.clone(),
            conn: None,
            checkpointer,
            log_sync,
        }
    }

    /// Runs `f` in one write transaction, like [`Db::write_sync`], on this connection.
    pub fn write<T, E>(&mut self, f: impl FnOnce(&mut DbConn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError> + From<diesel::result::Error>,
    {
        let conn = match self.conn.as_mut() {
            Some(conn) => conn,
            None => match self.open() {
                Ok(conn) => self.conn.insert(conn),
                Err(err) => {
                    self.db.mark_down();
                    return Err(err.into());
                }
            },
        };
        let out = self.db.transaction_on(conn, true, f);
        self.db.observe(Some(conn), &out);
        if out.is_err() && (conn.is_broken() || self.db.is_down()) {
            self.conn = None;
        }
        if out.is_ok() {
            if let (Some(checkpointer), Some(conn)) = (&self.checkpointer, self.conn.as_mut()) {
                checkpointer.after_commit(conn);
            }
        }
        out
    }

    /// Runs `then` once everything this writer committed so far is durable: at once where
    /// the commit itself was (PostgreSQL; SQLite without a flush thread), else after the
    /// flush thread's next flush of the log. `then` runs on that thread, so it should
    /// only hand results on.
    pub fn after_durable(&self, then: impl FnOnce(Result<(), &std::io::Error>) + Send + 'static) {
        match &self.log_sync {
            Some(sync) => sync.after_flush(Box::new(then)),
            None => then(Ok(())),
        }
    }

    /// The checkpoint thread beside this writer (SQLite).
    pub fn checkpointer(&self) -> Option<&Checkpointer> {
        self.checkpointer.as_ref()
    }

    fn open(&self) -> Result<DbConn, DbError> {
        let mut conn = self.db.manager.establish()?;
        if let DbConn::Sqlite(c) = &mut conn {
            // Foreign keys are off on this connection only: the writer inserts alerts
            // under cases and sources it has just read or created in the same
            // transaction, so the checks would only repeat those lookups. Automatic
            // checkpoints are off when the checkpointer thread does them instead, and
            // commits leave flushing the log to the flush thread when there is one.
            let autocheckpoint = if self.checkpointer.is_some() { 0 } else { 1000 };
            let mut pragmas =
                format!("PRAGMA foreign_keys = OFF; PRAGMA wal_autocheckpoint = {autocheckpoint};");
            if self.log_sync.is_some() {
                pragmas.push_str(" PRAGMA synchronous = NORMAL;");
            }
            c.batch_execute(&pragmas)?;
        }
        Ok(conn)
    }
}
