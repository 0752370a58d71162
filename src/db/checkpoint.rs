//! WAL checkpoints on their own thread (SQLite).
//!
//! By default SQLite copies the write-ahead log into the database file inside the commit
//! that grows the log past 1,000 pages, on the committing thread: for the ingestion
//! writer that is work on the one serial path every alert takes. Here a thread with its
//! own connection runs `PASSIVE` checkpoints beside the writer (they copy what is
//! committed without blocking it), at most every [`MIN_INTERVAL`]. A passive checkpoint
//! cannot rewind the log while the writer keeps appending, so once the log holds
//! [`RESTART_AFTER_FRAMES`] pages the writer itself runs a short `RESTART` between group
//! commits: by then most pages are already copied, and the next commit starts the log
//! from its beginning again, keeping the file and its index bounded.

use super::{DbConn, Manager};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Log size (pages, 256 MiB) at which the writer rewinds the log. The rewind copies what
/// the background has not yet copied, about one group commit; rewinding rarely keeps that
/// share of the writer's time small, at the cost of a larger log file.
pub const RESTART_AFTER_FRAMES: i64 = 65_536;
/// Least time between two background checkpoints: each ends with an fsync of the
/// database file, which should not follow every small commit.
pub const MIN_INTERVAL: Duration = Duration::from_millis(50);
/// Longest the writer waits for readers to leave the log when rewinding it; a long read
/// (an export) makes it skip the rewind rather than hold up ingestion.
const RESTART_BUSY_MS: u32 = 100;

/// Handle to the checkpoint thread; dropping it stops the thread.
pub struct Checkpointer {
    wake: SyncSender<()>,
    /// Pages in the log at the last background checkpoint.
    log_frames: Arc<AtomicI64>,
    /// Background checkpoints that copied pages.
    copies: Arc<AtomicI64>,
    restart_after_frames: i64,
    busy_timeout_ms: u32,
}

#[derive(QueryableByName)]
struct CheckpointRow {
    #[diesel(sql_type = BigInt)]
    busy: i64,
    #[diesel(sql_type = BigInt)]
    log: i64,
    #[diesel(sql_type = BigInt)]
    checkpointed: i64,
}

impl Checkpointer {
    /// Starts the thread on a connection of its own; `None` (and SQLite's automatic
    /// checkpoints stay on) if that connection cannot be opened.
    pub fn start(manager: Manager, restart_after_frames: i64) -> Option<Checkpointer> {
        let busy_timeout_ms = manager.busy_timeout_ms;
        let conn = match manager.establish() {
            Ok(DbConn::Sqlite(c)) => c,
            Ok(DbConn::Postgres(_)) => return None,
            Err(err) => {
                tracing::warn!(error = %err, "no checkpoint thread; SQLite checkpoints in commits");
                return None;
            }
        };
        let (wake, rx) = sync_channel(1);
        let log_frames = Arc::new(AtomicI64::new(0));
        let copies = Arc::new(AtomicI64::new(0));
        let (frames, copied) = (log_frames.clone(), copies.clone());
        std::thread::Builder::new()
            .name("tocsin-checkpoint".into())
            .spawn(move || run(conn, rx, frames, copied))
            .ok()?;
        Some(Checkpointer {
            wake,
            log_frames,
            copies,
            restart_after_frames,
            busy_timeout_ms,
        })
    }

    /// Background checkpoints so far that copied pages into the database file.
    pub fn copies(&self) -> i64 {
        self.copies.load(Ordering::Acquire)
    }

    /// Called by the writer after each commit, on its own connection.
    pub fn after_commit(&self, writer: &mut DbConn) {
        if self.log_frames.load(Ordering::Acquire) >= self.restart_after_frames {
            if let DbConn::Sqlite(c) = writer {
                let sql = format!(
                    "PRAGMA busy_timeout = {RESTART_BUSY_MS}; PRAGMA wal_checkpoint(RESTART); \
                     PRAGMA busy_timeout = {};",
                    self.busy_timeout_ms
                );
                if let Err(err) = c.batch_execute(&sql) {
                    tracing::warn!(error = %err, "rewinding the write-ahead log failed");
                }
            }
            self.log_frames.store(0, Ordering::Release);
        }
        // Full channel: a wake-up is already pending, which covers this commit too.
        let _ = self.wake.try_send(());
    }
}

fn run(
    mut conn: SqliteConnection,
    rx: Receiver<()>,
    log_frames: Arc<AtomicI64>,
    copies: Arc<AtomicI64>,
) {
    while rx.recv().is_ok() {
        let started = Instant::now();
        match diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
            .get_result::<CheckpointRow>(&mut conn)
        {
            Ok(row) => {
                log_frames.store(row.log, Ordering::Release);
                if row.checkpointed > 0 {
                    copies.fetch_add(1, Ordering::AcqRel);
                }
                tracing::trace!(
                    log = row.log,
                    checkpointed = row.checkpointed,
                    busy = row.busy,
                    "checkpoint"
                );
            }
            Err(err) => tracing::warn!(error = %err, "background checkpoint failed"),
        }
        if let Some(rest) = MIN_INTERVAL.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::dedicated::DedicatedWriter;
    use crate::db::DbError;

    /// Commits through the dedicated writer are copied into the database file by the
    /// checkpoint thread, and the log is rewound once it passes the restart size.
    #[test]
    fn the_log_is_checkpointed_and_rewound_beside_the_writer() {
        let (dir, db) = crate::db::scratch_sqlite();
        let restart_after = 2_000;
        let mut writer = DedicatedWriter::with_restart_after(&db, restart_after);
        let wal = dir.path().join("t.db-wal");
        let blob = "x".repeat(3_000);
        let mut most = 0u64;
        for round in 0..200 {
            writer
                .write(|conn| {
                    for i in 0..25 {
                        diesel::sql_query("INSERT INTO engine_events (kind, details, created_at) VALUES ('t', ?, '2026-12-02 00:00:00')")
                            .bind::<diesel::sql_types::Text, _>(format!("{round}-{i}-{blob}"))
                            .execute(conn)
                            .map_err(DbError::Query)?;
                    }
                    Ok::<_, DbError>(())
                })
                .unwrap();
            std::thread::sleep(Duration::from_millis(2));
            most = most.max(std::fs::metadata(&wal).unwrap().len());
        }
        // 200 × 25 rows of 3 KB are about 15,000 pages: without rewinding, the log would
        // hold all of them (60 MB).
        let limit = (restart_after as u64 + 2_000) * 4_120;
        assert!(most < limit, "the log grew to {most} bytes");
        let copies = writer.checkpointer().expect("a checkpoint thread").copies();
        assert!(copies > 0, "the checkpoint thread copied nothing");
        let rows: i64 = db
            .read_sync(|conn| {
                crate::on_backend!(conn, |c| crate::db::schema::engine_events::table
                    .count()
                    .get_result(c))
                .map_err(DbError::Query)
            })
            .unwrap();
        assert_eq!(rows, 5_000);
    }
}
