//! Group commit for many small, independent writers (the playbook engine's step
//! transitions): closures queued while a transaction is being written go into the next
//! one together, each inside its own savepoint, so a failing closure undoes only its own
//! writes. Every caller gets its answer only after the shared COMMIT, so nothing is
//! acknowledged before it is durable.

use super::{Db, DbConn, DbError};
use diesel::connection::SimpleConnection;
use tokio::sync::{mpsc, oneshot};

/// What runs inside the shared transaction; returns how to answer once it is committed
/// (with the commit's error, if any).
type Job = Box<dyn FnOnce(&mut DbConn) -> Reply + Send>;
type Reply = Box<dyn FnOnce(Option<String>) + Send>;

/// Handle to the group-commit task.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
}

impl Batcher {
    /// Starts the task on the current runtime; at most `max_jobs` closures share one
    /// transaction.
    pub fn start(db: Db, max_jobs: usize) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(db, rx, max_jobs.max(1)));
        Batcher { tx }
    }

    /// Runs `f` in the next shared transaction; returns its result once committed.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (answer, result) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn| {
            let outcome = match in_savepoint(conn, f) {
                Ok(r) => r,
                Err(e) => Err(E::from(DbError::Query(e))),
            };
            Box::new(move |commit_error: Option<String>| {
                let out = match (outcome, commit_error) {
                    (Ok(_), Some(e)) => Err(E::from(DbError::Task(format!("commit failed: {e}")))),
                    (out, _) => out,
                };
                let _ = answer.send(out);
            })
        });
        self.tx
            .send(job)
            .map_err(|_| E::from(DbError::Task("the group-commit task stopped".into())))?;
        result.await.unwrap_or_else(|_| {
            Err(E::from(DbError::Task(
                "the shared transaction could not be started".into(),
            )))
        })
    }
}

fn in_savepoint<T, E>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<Result<T, E>, diesel::result::Error> {
    conn.batch_execute("SAVEPOINT tocsin_job")?;
    let out = f(conn);
    match &out {
        Ok(_) => conn.batch_execute("RELEASE SAVEPOINT tocsin_job")?,
        Err(_) => {
            conn.batch_execute("ROLLBACK TO SAVEPOINT tocsin_job; RELEASE SAVEPOINT tocsin_job")?
        }
    }
    Ok(out)
}

async fn run(db: Db, mut rx: mpsc::UnboundedReceiver<Job>, max_jobs: usize) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < max_jobs {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let db = db.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut replies: Vec<Reply> = Vec::with_capacity(jobs.len());
            let committed = db.write_sync(|conn| {
                for job in jobs {
                    replies.push(job(conn));
                }
                Ok::<_, DbError>(())
            });
            let error = committed.err().map(|e| e.to_string());
            for reply in replies {
                reply(error.clone());
            }
        })
        .await;
        if let Err(e) = done {
            tracing::error!(error = %e, "group commit task failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseConfig;
    use crate::db::schema::engine_events;
    use diesel::prelude::*;

    fn db(dir: &tempfile::TempDir) -> Db {
        let db = Db::open(&DatabaseConfig {
            url: format!("sqlite://{}", dir.path().join("t.db").display()),
            ..DatabaseConfig::default()
        })
        .unwrap();
        db.migrate().unwrap();
        db
    }

    fn insert(conn: &mut DbConn, kind: &str) -> QueryResult<usize> {
        diesel::insert_into(engine_events::table)
            .values((
                engine_events::kind.eq(kind),
                engine_events::details.eq("{}"),
                engine_events::created_at.eq(crate::db::now()),
            ))
            .execute(conn)
    }

    /// A failing closure undoes only its own writes; the others in its transaction stay.
    #[test]
    fn a_failing_job_does_not_undo_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let b = Batcher::start(db.clone(), 100);
            let ok = b.clone();
            let first = tokio::spawn(async move {
                ok.write(|c| insert(c, "kept").map_err(DbError::Query))
                    .await
            });
            let bad = b.clone();
            let second = tokio::spawn(async move {
                bad.write(|c| {
                    insert(c, "undone").map_err(DbError::Query)?;
                    Err::<(), _>(DbError::Task("refused".into()))
                })
                .await
            });
            assert!(first.await.unwrap().is_ok());
            assert!(second.await.unwrap().is_err());
        });
        let kinds: Vec<String> = db
            .read_sync(|c| {
                engine_events::table
                    .select(engine_events::kind)
                    .load(c)
                    .map_err(DbError::Query)
            })
            .unwrap();
        assert_eq!(kinds, vec!["kept".to_string()]);
    }
}
