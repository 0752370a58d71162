//! Wake-ups between processes sharing one PostgreSQL database, by LISTEN/NOTIFY.
//!
//! Work is always found in rows (the trigger outbox, runnable runs); a notification only
//! says "look now" so an idle cluster need not poll hard and a process hears at once of
//! work another one created. A lost notification costs latency, never work: the loops
//! still look on their own, less often. On SQLite (one process) nothing is sent.
//!
//! Sending is coalesced: announcements made while a NOTIFY is on its way go out together
//! in the next one, so a busy writer costs the database a few NOTIFYs per second, not one
//! per commit. Receiving uses a connection outside the pool: diesel's
//! `PgConnection::notifications_iter` only reads what has arrived, so the listener checks
//! the socket every few milliseconds (a local read, no round trip to the server).

use super::{Backend, Db, DbError};
use diesel::prelude::*;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// What a wake-up is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Trigger events were written to the outbox (the dispatchers should look).
    Events,
    /// Runs became runnable (the runners should claim).
    Runs,
}

impl Channel {
    /// The PostgreSQL channel name.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Events => "tocsin_events",
            Channel::Runs => "tocsin_runs",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Channel::Events => 1,
            Channel::Runs => 2,
        }
    }

    fn parse(name: &str) -> Option<Channel> {
        [Channel::Events, Channel::Runs]
            .into_iter()
            .find(|c| c.name() == name)
    }
}

/// Least time between two NOTIFYs of one process: bounds what a busy process costs the
/// database, at that much added latency for the other processes.
const MIN_SPACING: Duration = Duration::from_millis(5);
/// How often the listener looks at its socket.
const LISTEN_TICK: Duration = Duration::from_millis(10);

/// Sends wake-ups to the other processes (cheap to clone; a no-op on SQLite).
#[derive(Debug, Clone)]
pub struct Notifier {
    inner: Option<Arc<NotifierInner>>,
    /// Names this process in payloads, so its listener ignores its own announcements.
    id: Arc<str>,
}

#[derive(Debug)]
struct NotifierInner {
    pending: AtomicU8,
    wake: Notify,
}

impl Notifier {
    /// A notifier that sends nothing (SQLite, tests).
    pub fn disabled() -> Notifier {
        Notifier {
            inner: None,
            id: Arc::from(""),
        }
    }

    /// Starts the sending task on the current runtime (PostgreSQL only).
    pub fn start(db: &Db) -> Notifier {
        let id: Arc<str> = Arc::from(crate::auth::random_secret()[..12].to_string());
        if db.backend() != Backend::Postgres {
            return Notifier { inner: None, id };
        }
        let inner = Arc::new(NotifierInner {
            pending: AtomicU8::new(0),
            wake: Notify::new(),
        });
        tokio::spawn(send_loop(db.clone(), inner.clone(), id.clone()));
        Notifier {
            inner: Some(inner),
            id,
        }
    }

    /// Tells the other processes to look at `channel`'s work.
    pub fn announce(&self, channel: Channel) {
        if let Some(inner) = &self.inner {
            inner.pending.fetch_or(channel.bit(), Ordering::AcqRel);
            inner.wake.notify_one();
        }
    }

    /// Whether announcements are sent (PostgreSQL).
    pub fn is_active(&self) -> bool {
        self.inner.is_some()
    }

    /// This process's id in payloads.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Sends one wake-up now and waits for it (at shutdown, when the sending task may not get
/// another turn before the process exits).
pub async fn announce_now(db: &Db, notifier: &Notifier, channel: Channel) {
    if !notifier.is_active() {
        return;
    }
    let payload = notifier.id().to_string();
    let sent = db
        .read(move |conn| {
            diesel::select(pg_notify(channel.name(), &payload))
                .execute(conn)
                .map_err(DbError::Query)
        })
        .await;
    if let Err(e) = sent {
        tracing::debug!(error = %e, "cannot send a wake-up to the other processes");
    }
}

async fn send_loop(db: Db, inner: Arc<NotifierInner>, id: Arc<str>) {
    loop {
        inner.wake.notified().await;
        let bits = inner.pending.swap(0, Ordering::AcqRel);
        if bits == 0 {
            continue;
        }
        let channels: Vec<&'static str> = [Channel::Events, Channel::Runs]
            .into_iter()
            .filter(|c| bits & c.bit() != 0)
            .map(Channel::name)
            .collect();
        let payload = id.to_string();
        let sent = db
            .read(move |conn| {
                for channel in channels {
                    diesel::select(pg_notify(channel, &payload))
                        .execute(conn)
                        .map_err(DbError::Query)?;
                }
                Ok::<_, DbError>(())
            })
            .await;
        if let Err(e) = sent {
            // The work is in rows; the others find it when they next look.
            tracing::debug!(error = %e, "cannot send a wake-up to the other processes");
        }
        tokio::time::sleep(MIN_SPACING).await;
    }
}

diesel::define_sql_function! {
    /// PostgreSQL: `NOTIFY channel, payload` as a function.
    fn pg_notify(channel: diesel::sql_types::Text, payload: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Listens for the other processes' wake-ups on its own thread and connection, calling
/// `on_wake` for each (and for every channel after each (re)connection, since
/// notifications sent while it was away are lost). Reconnects after a cut connection.
/// Does nothing on SQLite.
pub fn listen(db: &Db, notifier: &Notifier, on_wake: impl Fn(Channel) + Send + 'static) {
    if db.backend() != Backend::Postgres {
        return;
    }
    let db = db.clone();
    let own = notifier.id().to_string();
    let spawned = std::thread::Builder::new()
        .name("tocsin-listen".into())
        .spawn(move || loop {
            match listen_once(&db, &own, &on_wake) {
                Ok(()) => {}
                Err(e) => tracing::warn!(error = %e, "LISTEN connection lost; reconnecting"),
            }
            std::thread::sleep(Duration::from_secs(1));
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the LISTEN thread; wake-ups between processes are off");
    }
}

fn listen_once(db: &Db, own: &str, on_wake: &impl Fn(Channel)) -> Result<(), DbError> {
    let mut conn = db.dedicated_pg_connection()?;
    for c in [Channel::Events, Channel::Runs] {
        diesel::sql_query(format!("LISTEN {}", c.name())).execute(&mut conn)?;
    }
    tracing::debug!("listening for wake-ups from other processes");
    on_wake(Channel::Events);
    on_wake(Channel::Runs);
    let mut idle_ticks = 0u32;
    loop {
        let mut got = 0u8;
        for n in conn.notifications_iter() {
            let n = n?;
            if n.payload == own {
                continue;
            }
            if let Some(c) = Channel::parse(&n.channel) {
                got |= c.bit();
            }
        }
        for c in [Channel::Events, Channel::Runs] {
            if got & c.bit() != 0 {
                on_wake(c);
            }
        }
        // A half-open connection reads nothing forever; a cheap query now and then
        // finds out (every ~30 s when nothing arrives).
        idle_ticks = if got == 0 { idle_ticks + 1 } else { 0 };
        if idle_ticks >= 3000 {
            idle_ticks = 0;
            diesel::sql_query("SELECT 1").execute(&mut conn)?;
        }
        std::thread::sleep(LISTEN_TICK);
    }
}
