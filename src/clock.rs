//! The time the deadline scheduler works with: gate deadlines and escalations, link
//! expiry, step timers and leases, e-mail retry times. The server owns one [`Clock`] and
//! hands it to the engine, the e-mail sender and the web handlers; the domain functions
//! they call take `now` as an argument, so nothing below them reads the system time.
//!
//! Production reads the system clock. For tests, `TOCSIN_TEST_CLOCK_FILE` names a file
//! holding an offset (`90m`, `2h 30s`, `0`) added to the system time, read at every
//! look, so a test can move a running server's time forward and watch a one-hour
//! deadline pass at once. It is off unless that variable is set, and `serve` logs a
//! warning whenever it is.

use chrono::NaiveDateTime;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The environment variable that shifts the clock (tests only).
pub const TEST_CLOCK_ENV: &str = "TOCSIN_TEST_CLOCK_FILE";

/// A source of the current time, cheap to clone.
#[derive(Clone, Debug)]
pub struct Clock(Arc<Source>);

#[derive(Debug)]
enum Source {
    System,
    /// System time plus the offset written in a file, read at every look (tests only,
    /// so a time a test has just moved is seen by the very next request); the last good
    /// offset is kept for a file caught half-written.
    Shifted {
        path: PathBuf,
        last: Mutex<chrono::Duration>,
    },
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(Source::System))
    }

    /// The system clock shifted by the offset in `path` (a missing or empty file is 0).
    pub fn shifted_by_file(path: &Path) -> Clock {
        Clock(Arc::new(Source::Shifted {
            path: path.to_path_buf(),
            last: Mutex::new(chrono::Duration::zero()),
        }))
    }

    /// The system clock, or the shifted one when `TOCSIN_TEST_CLOCK_FILE` is set in `env`.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Clock {
        match env(TEST_CLOCK_ENV).filter(|p| !p.trim().is_empty()) {
            Some(path) => Clock::shifted_by_file(Path::new(path.trim())),
            None => Clock::system(),
        }
    }

    /// Whether this clock may differ from the system's.
    pub fn is_shifted(&self) -> bool {
        matches!(*self.0, Source::Shifted { .. })
    }

    /// The current time, UTC, microsecond precision (as stored).
    pub fn now(&self) -> NaiveDateTime {
        crate::db::now() + self.offset()
    }

    /// How far this clock is ahead of the system's.
    pub fn offset(&self) -> chrono::Duration {
        match &*self.0 {
            Source::System => chrono::Duration::zero(),
            Source::Shifted { path, last } => {
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                let read = match std::fs::read_to_string(path) {
                    Ok(text) => parse_offset(&text),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Ok(chrono::Duration::zero())
                    }
                    Err(e) => Err(e.to_string()),
                };
                match read {
                    Ok(offset) => *last = offset,
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "unreadable clock offset; keeping the previous one");
                    }
                }
                *last
            }
        }
    }
}

/// Parses an offset: empty or `0` for none, else a duration such as `90m` or `1h 30s`.
fn parse_offset(text: &str) -> Result<chrono::Duration, String> {
    let t = text.trim();
    if t.is_empty() || t == "0" {
        return Ok(chrono::Duration::zero());
    }
    let d = humantime::parse_duration(t).map_err(|e| format!("{t:?}: {e}"))?;
    chrono::Duration::from_std(d).map_err(|e| format!("{t:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_is_not_shifted() {
        let c = Clock::from_env(|_| None);
        assert!(!c.is_shifted());
        assert_eq!(c.offset(), chrono::Duration::zero());
    }

    #[test]
    fn a_file_shifts_the_clock_and_is_reread_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("tocsin-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("offset");
        let c = Clock::from_env(|k| (k == TEST_CLOCK_ENV).then(|| file.display().to_string()));
        assert!(c.is_shifted());
        assert_eq!(
            c.offset(),
            chrono::Duration::zero(),
            "missing file: no shift"
        );
        std::fs::write(&file, "90m\n").unwrap();
        assert_eq!(c.offset(), chrono::Duration::minutes(90));
        let ahead = c.now() - crate::db::now();
        assert!(ahead > chrono::Duration::minutes(89), "{ahead}");
        std::fs::write(&file, "not a duration").unwrap();
        assert_eq!(
            c.offset(),
            chrono::Duration::minutes(90),
            "kept on a bad value"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
