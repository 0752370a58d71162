//! Durability behind the writer (SQLite): the log is flushed to disk on a thread of its
//! own while the writer goes on with its next transaction.
//!
//! In WAL mode `synchronous=FULL` means exactly one thing more than `NORMAL`: the log is
//! flushed (fsync) at the end of every commit, on the committing thread. For the
//! ingestion writer that flush was a quarter of its time, spent waiting instead of
//! preparing the next group commit. Its connection therefore commits with `NORMAL`, and
//! the requests of a commit are answered only after this thread has flushed the log
//! *after* that commit returned; one flush serves every commit that finished before it
//! started. `NORMAL` still flushes the log before each checkpoint copies it into the
//! database file and flushes that file before the log is rewound, so a commit is on disk,
//! in the log or in the database, from the moment its callback runs, as with `FULL`.

use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};

/// What runs once the commits before it are on disk (or the flush failed).
pub type Then = Box<dyn FnOnce(Result<(), &io::Error>) + Send>;

/// Handle to the flushing thread; it ends when the handle is dropped and the callbacks
/// queued before were run.
pub struct LogSync {
    tx: Sender<Then>,
    wal: PathBuf,
}

impl LogSync {
    /// Starts the thread for the database file `database` (its log is `<database>-wal`).
    pub fn start(database: &std::path::Path) -> io::Result<LogSync> {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let (tx, rx) = channel();
        let thread_wal = wal.clone();
        std::thread::Builder::new()
            .name("tocsin-log-sync".into())
            .spawn(move || run(&thread_wal, rx))?;
        Ok(LogSync { tx, wal })
    }

    /// Runs `then` after a flush of the log that starts after this call, so after
    /// everything committed before it is durable.
    pub fn after_flush(&self, then: Then) {
        if let Err(unsent) = self.tx.send(then) {
            // The thread is gone (it only ends with this handle); flush here instead.
            let then = unsent.0;
            match flush(&self.wal) {
                Ok(()) => then(Ok(())),
                Err(e) => then(Err(&e)),
            }
        }
    }
}

fn run(wal: &std::path::Path, rx: Receiver<Then>) {
    while let Ok(first) = rx.recv() {
        // Everything queued meanwhile shares this flush: all of it was committed before
        // the flush starts.
        let waiting: Vec<Then> = std::iter::once(first).chain(rx.try_iter()).collect();
        let result = flush(wal);
        if let Err(e) = &result {
            tracing::error!(error = %e, log = %wal.display(), "flushing the database log failed");
        }
        for then in waiting {
            then(result.as_ref().map(|_| ()));
        }
    }
}

/// Flushes the log file's data to disk. The file is opened anew each time because
/// SQLite deletes it when the last connection closes (after copying it into the
/// database file and flushing that), and a descriptor kept open would then flush a
/// deleted file; a log that does not exist has nothing unflushed.
fn flush(wal: &std::path::Path) -> io::Result<()> {
    match std::fs::File::open(wal) {
        Ok(file) => file.sync_data(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Callbacks run in the order queued, each after a flush, and a missing log counts
    /// as flushed.
    #[test]
    fn callbacks_run_in_order_after_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        std::fs::write(dir.path().join("t.db-wal"), b"frames").unwrap();
        let sync = LogSync::start(&db).unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..50 {
            let tx = tx.clone();
            sync.after_flush(Box::new(move |r| tx.send((i, r.is_ok())).unwrap()));
        }
        let got: Vec<_> = (0..50)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert_eq!(got, (0..50).map(|i| (i, true)).collect::<Vec<_>>());

        std::fs::remove_file(dir.path().join("t.db-wal")).unwrap();
        let tx2 = tx.clone();
        sync.after_flush(Box::new(move |r| tx2.send((99, r.is_ok())).unwrap()));
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            (99, true)
        );
    }

    /// A log that cannot be opened is reported to the callback, not taken as durable.
    #[test]
    fn an_unreadable_log_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // The log's folder is a plain file, so opening the log fails (not "not found").
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let sync = LogSync::start(&file.join("t.db")).unwrap();
        let (tx, rx) = mpsc::channel();
        sync.after_flush(Box::new(move |r| tx.send(r.is_err()).unwrap()));
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    }
}
