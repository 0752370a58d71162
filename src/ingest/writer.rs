//! Group commit: requests hand their prepared alerts to one writer thread, which commits
//! everything that queued up meanwhile in a single transaction and then answers each
//! request. Durability costs one fsync per batch, not one per alert, and no request is
//! answered before its alerts are committed.

use super::IngestError;
use crate::audit::AuditError;
use crate::cases::record::{self, PreparedAlert, Recorded};
use crate::cases::CaseError;
use crate::config::CasesConfig;
use crate::db::dedicated::DedicatedWriter;
use crate::db::{now, Db, DbError};
use crate::events::Bus;
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Counters of the writer's work, for metrics and for checking that commits are shared.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Transactions committed.
    pub commits: Counter,
    /// Requests answered by those transactions.
    pub requests: Counter,
    /// Alerts recorded.
    pub alerts: Counter,
}

struct Job {
    source_id: i64,
    source_name: String,
    alerts: Vec<PreparedAlert>,
    reply: oneshot::Sender<Result<Vec<Recorded>, IngestError>>,
}

/// Handle to the writer task.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    stats: Arc<Stats>,
}

impl Writer {
    /// Starts the writer on a thread of its own, with a connection of its own (see
    /// [`DedicatedWriter`]). `capacity` requests may wait; more are refused with
    /// `Overloaded` so memory stays bounded when the database is slow.
    pub fn start(
        db: Db,
        config: CasesConfig,
        bus: Bus,
        capacity: usize,
        max_alerts_per_commit: usize,
        stats: Stats,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stats = Arc::new(stats);
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("tocsin-ingest-writer".into())
            .spawn(move || {
                run(
                    rx,
                    db,
                    config,
                    bus,
                    max_alerts_per_commit.max(1),
                    thread_stats,
                )
            })
            .expect("spawning the ingestion writer thread");
        Writer { tx, stats }
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Requests waiting for the writer, and how many may wait before new ones get 503.
    pub fn backlog(&self) -> (usize, usize) {
        let max = self.tx.max_capacity();
        (max - self.tx.capacity(), max)
    }

    /// Commits alerts from one source; returns once they are durable.
    pub async fn submit(
        &self,
        source_id: i64,
        source_name: &str,
        alerts: Vec<PreparedAlert>,
    ) -> Result<Vec<Recorded>, IngestError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            source_id,
            source_name: source_name.to_string(),
            alerts,
            reply,
        };
        self.tx.try_send(job).map_err(|_| IngestError::Overloaded)?;
        answer
            .await
            .map_err(|_| IngestError::Internal("the ingestion writer stopped".into()))?
    }
}

/// The writer thread: takes every request queued since its last commit (up to
/// `max_alerts`), commits them together, answers them, and wakes the event dispatcher.
/// Ends when every [`Writer`] handle is dropped.
fn run(
    mut rx: mpsc::Receiver<Job>,
    db: Db,
    config: CasesConfig,
    bus: Bus,
    max_alerts: usize,
    stats: Arc<Stats>,
) {
    let mut conn = DedicatedWriter::new(&db);
    while let Some(first) = rx.blocking_recv() {
        let mut count = first.alerts.len();
        let mut jobs = vec![first];
        while count < max_alerts {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.alerts.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        if db.is_down() {
            // Fail fast: each attempt would wait for a connection timeout, and the
            // queue behind it would grow; the clients retry after Retry-After.
            for job in jobs {
                let _ = job.reply.send(Err(IngestError::Db(DbError::Unavailable)));
            }
            continue;
        }
        commit(&mut conn, &config, &bus, jobs, &stats);
    }
}

type Reply = oneshot::Sender<Result<Vec<Recorded>, IngestError>>;

/// Commits all jobs in one transaction; if that fails, each job is retried alone so one
/// bad request cannot fail the others. The requests are answered, and the dispatcher
/// woken, once the commits are durable.
fn commit(
    db: &mut DedicatedWriter,
    config: &CasesConfig,
    bus: &Bus,
    jobs: Vec<Job>,
    stats: &Stats,
) {
    let t = now();
    let together = db.write(|conn| {
        let mut recorder = record::Recorder::new(config, bus, t);
        let results = jobs
            .iter()
            .map(|job| recorder.record(conn, job.source_id, &job.source_name, &job.alerts))
            .collect::<Result<Vec<_>, _>>()?;
        recorder.finish(conn)?;
        Ok::<_, CaseError>(results)
    });
    // The alerts are freed with the answers, on the flush thread where there is one:
    // freeing thousands of payloads is work the serial writer need not do.
    let mut stored = Vec::with_capacity(jobs.len());
    let answers: Vec<(Reply, Result<Vec<Recorded>, IngestError>)> = match together {
        Ok(results) => {
            stats.commits.inc();
            stats.requests.inc_by(jobs.len() as u64);
            stats
                .alerts
                .inc_by(results.iter().map(|r| r.len() as u64).sum());
            jobs.into_iter()
                .zip(results)
                .map(|(job, result)| {
                    stored.push(job.alerts);
                    (job.reply, Ok(result))
                })
                .collect()
        }
        Err(CaseError::Db(e) | CaseError::Audit(AuditError::Db(e))) if e.is_unavailable() => {
            // The database is gone: one request at a time would only wait longer.
            jobs.into_iter()
                .map(|job| (job.reply, Err(IngestError::Db(DbError::Unavailable))))
                .collect()
        }
        Err(err) if jobs.len() == 1 => {
            let mut answers = Vec::with_capacity(1);
            if let Some(job) = jobs.into_iter().next() {
                answers.push((job.reply, Err(IngestError::from(err))));
            }
            answers
        }
        Err(err) => {
            tracing::warn!(error = %err, jobs = jobs.len(), "group commit failed; committing requests one by one");
            jobs.into_iter()
                .map(|job| {
                    let result = db.write(|conn| {
                        record::record(
                            conn,
                            config,
                            bus,
                            job.source_id,
                            &job.source_name,
                            &job.alerts,
                            now(),
                        )
                    });
                    (job.reply, result.map_err(IngestError::from))
                })
                .collect()
        }
    };
    let bus = bus.clone();
    db.after_durable(move |flushed| {
        match flushed {
            Ok(()) => {
                for (reply, result) in answers {
                    let _ = reply.send(result);
                }
            }
            // Committed but perhaps not on disk: the sender must not take it as stored.
            Err(e) => {
                for (reply, _) in answers {
                    let _ = reply.send(Err(IngestError::Db(DbError::Flush(e.to_string()))));
                }
            }
        }
        bus.wake();
        drop(stored);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{
        AlertClass, NewAlert, Observable, ObservableKind, ObservableRole, Severity,
    };
    use crate::cases::correlate::DEFAULT_CORRELATION;
    use crate::config::DatabaseConfig;
    use diesel::Connection;

    fn alert(i: usize) -> PreparedAlert {
        let mut a = NewAlert::new(
            AlertClass::DetectionFinding,
            Severity::High,
            format!("alert {i}"),
            "V",
            "P",
        );
        a.observe(
            Observable::new(
                ObservableKind::Ip,
                &format!("10.0.{}.{}", i / 250, i % 250),
                Some(ObservableRole::Src),
            )
            .unwrap(),
        );
        PreparedAlert::new(1, a, "{}".into(), &DEFAULT_CORRELATION)
    }

    /// Requests that queue up while the writer is busy share one transaction.
    #[test]
    fn queued_requests_share_one_commit() {
        let (dir, db) = crate::db::scratch_sqlite();
        let source_id = crate::ingest::sources::scratch(&db).id;
        // Another connection holds the write lock, so the writer stalls in its first
        // commit while the other requests queue up behind it.
        let path = dir.path().join("t.db");
        let mut blocker = diesel::SqliteConnection::establish(&path.to_string_lossy()).unwrap();
        diesel::connection::SimpleConnection::batch_execute(&mut blocker, "BEGIN IMMEDIATE")
            .unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let writer = Writer::start(
                db.clone(),
                CasesConfig::default(),
                Bus::new(),
                100,
                10_000,
                Stats::default(),
            );
            let spawn = |i: usize| {
                let w = writer.clone();
                tokio::spawn(async move { w.submit(source_id, "s", vec![alert(i)]).await })
            };
            // The first request is taken by the writer, which then waits for the lock...
            let mut tasks = vec![spawn(0)];
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            // ...while the other 39 queue up behind it.
            tasks.extend((1..40).map(spawn));
            while writer.backlog().0 < 39 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            diesel::connection::SimpleConnection::batch_execute(&mut blocker, "ROLLBACK").unwrap();
            for t in tasks {
                let recorded = t.await.unwrap().unwrap();
                assert_eq!(recorded.len(), 1);
            }
            assert_eq!(writer.stats().requests.get(), 40);
            assert_eq!(writer.stats().alerts.get(), 40);
            // The first request alone, then the 39 that queued meanwhile together (or all
            // 40 at once had the writer not yet taken the first).
            assert!(writer.stats().commits.get() <= 2, "{:?}", writer.stats());
        });
    }

    /// Beyond the queue's capacity, submissions are refused rather than buffered.
    #[test]
    fn a_full_queue_refuses_with_overloaded() {
        use diesel::connection::SimpleConnection;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = Db::open(&DatabaseConfig {
            url: format!("sqlite://{}", path.display()),
            ..DatabaseConfig::default()
        })
        .unwrap();
        db.migrate().unwrap();
        // Another connection holds the write lock, so the writer stalls inside its commit.
        let mut blocker = diesel::SqliteConnection::establish(&path.to_string_lossy()).unwrap();
        blocker.batch_execute("BEGIN IMMEDIATE").unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let writer = Writer::start(
                db,
                CasesConfig::default(),
                Bus::new(),
                1,
                10,
                Stats::default(),
            );
            let pause = std::time::Duration::from_millis(200);
            let w = writer.clone();
            let first = tokio::spawn(async move { w.submit(1, "s", vec![alert(0)]).await });
            tokio::time::sleep(pause).await;
            let w = writer.clone();
            let second = tokio::spawn(async move { w.submit(1, "s", vec![alert(1)]).await });
            tokio::time::sleep(pause).await;
            let third = writer.submit(1, "s", vec![alert(2)]).await;
            assert!(matches!(third, Err(IngestError::Overloaded)), "{third:?}");
            blocker.batch_execute("ROLLBACK").unwrap();
            // The stalled and the queued requests still complete once the lock is free
            // (they fail here only because no source row exists, which is not the point).
            assert!(first.await.is_ok());
            assert!(second.await.is_ok());
        });
    }
}
