//! Group commit: requests hand their prepared alerts to one writer task, which commits
//! everything that queued up meanwhile in a single transaction and then answers each
//! request. Durability costs one fsync per batch, not one per alert, and no request is
//! answered before its alerts are committed.

use super::IngestError;
use crate::cases::record::{self, PreparedAlert, Recorded};
use crate::config::CasesConfig;
use crate::db::{now, Db};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

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
}

impl Writer {
    /// Starts the writer on the current tokio runtime. `capacity` requests may wait; more
    /// are refused with `Overloaded` so memory stays bounded when the database is slow.
    pub fn start(
        db: Db,
        config: CasesConfig,
        capacity: usize,
        max_alerts_per_commit: usize,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(run(rx, db, Arc::new(config), max_alerts_per_commit.max(1)));
        Writer { tx }
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

async fn run(mut rx: mpsc::Receiver<Job>, db: Db, config: Arc<CasesConfig>, max_alerts: usize) {
    while let Some(first) = rx.recv().await {
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
        let db = db.clone();
        let config = config.clone();
        let done = tokio::task::spawn_blocking(move || commit(&db, &config, jobs)).await;
        if let Err(err) = done {
            tracing::error!(error = %err, "ingestion commit task failed");
        }
    }
}

/// Commits all jobs in one transaction; if that fails, each job is retried alone so one
/// bad request cannot fail the others.
fn commit(db: &Db, config: &CasesConfig, jobs: Vec<Job>) {
    let t = now();
    let together = db.write_sync(|conn| {
        jobs.iter()
            .map(|job| {
                record::record(
                    conn,
                    config,
                    job.source_id,
                    &job.source_name,
                    &job.alerts,
                    t,
                )
            })
            .collect::<Result<Vec<_>, _>>()
    });
    match together {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                let _ = job.reply.send(Ok(result));
            }
        }
        Err(err) if jobs.len() == 1 => {
            if let Some(job) = jobs.into_iter().next() {
                let _ = job.reply.send(Err(IngestError::from(err)));
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, jobs = jobs.len(), "group commit failed; committing requests one by one");
            for job in jobs {
                let result = db.write_sync(|conn| {
                    record::record(
                        conn,
                        config,
                        job.source_id,
                        &job.source_name,
                        &job.alerts,
                        now(),
                    )
                });
                let _ = job.reply.send(result.map_err(IngestError::from));
            }
        }
    }
}
