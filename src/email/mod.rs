//! Outgoing e-mail. Everything goes through the `email_outbox` table: approval requests
//! (queued with their gate), and `notify.email` steps. With an SMTP relay configured the
//! sender delivers queued rows, retrying with backoff; without one, rows stay `queued` and
//! admins read them in the console or through the API.

pub mod sender;

use crate::db::schema::email_outbox;
use crate::db::{DbConn, DbError};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

/// One outbox row as admins see it.
#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = email_outbox)]
pub struct OutboxEmail {
    pub id: i64,
    pub recipients: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    /// `approval:<gate>` or the playbook run that queued it.
    pub origin: String,
    /// `queued`, `sending`, `sent`, `failed` or `cancelled`.
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub next_attempt_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub sent_at: Option<NaiveDateTime>,
    pub gate_id: Option<i64>,
}

/// The newest outbox rows, optionally of one status, at most `limit`.
pub fn list(
    conn: &mut DbConn,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<OutboxEmail>, DbError> {
    let mut q = email_outbox::table
        .select(OutboxEmail::as_select())
        .order(email_outbox::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(email_outbox::status.eq(s.to_string()));
    }
    q.load(conn).map_err(DbError::Query)
}
