//! Delivers queued outbox rows through the configured SMTP relay with lettre.
//!
//! A row is claimed by a compare-and-set (`sending`, attempts + 1, a lease in
//! `next_attempt_at`), sent outside any transaction, then recorded as `sent` or put back
//! with a backoff; a process that dies mid-send leaves the row to be claimed again when the
//! lease passes. For approval rows, the approve/reject link token is created in the claim's
//! transaction and withdrawn when delivery fails. Every delivery and every failure is
//! audited.

use crate::approvals::{self, links, notify, Decision, GateStatus};
use crate::audit::{self, Actor, NewEvent};
use crate::clock::Clock;
use crate::config::{EmailConfig, SmtpTls};
use crate::db::schema::email_outbox;
use crate::db::{Db, DbConn, DbError};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The environment variable holding the SMTP password.
pub const PASSWORD_ENV: &str = "TOCSIN_SMTP_PASSWORD";

/// Rows claimed per round.
const BATCH: i64 = 20;
/// Longest wait between retries.
const MAX_BACKOFF_SECS: u64 = 3600;

/// Errors of the sender.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("email: {0}")]
    Config(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Approval(#[from] approvals::ApprovalError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
}

impl From<diesel::result::Error> for SendError {
    fn from(err: diesel::result::Error) -> Self {
        SendError::Db(DbError::Query(err))
    }
}

/// A claimed row, ready to send.
#[derive(Debug, Clone)]
struct Job {
    id: i64,
    to: String,
    subject: String,
    text: String,
    html: Option<String>,
    attempts: i32,
    gate_id: Option<i64>,
    user: Option<String>,
}

/// The background sender.
pub struct Sender {
    db: Db,
    config: EmailConfig,
    public_url: String,
    from: Mailbox,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    clock: Clock,
}

impl Sender {
    /// A sender for `config`, or `None` when no SMTP host is configured (e-mail then stays
    /// in the outbox).
    pub fn new(
        db: Db,
        config: EmailConfig,
        public_url: String,
        clock: Clock,
    ) -> Result<Option<Arc<Sender>>, SendError> {
        if config.host.trim().is_empty() {
            return Ok(None);
        }
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| SendError::Config(format!("email.from: {e}")))?;
        let host = config.host.trim();
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host);
        let builder = match config.tls {
            SmtpTls::None => builder,
            SmtpTls::Starttls => builder.tls(Tls::Required(tls_parameters(&config, host)?)),
            SmtpTls::Tls => builder.tls(Tls::Wrapper(tls_parameters(&config, host)?)),
        };
        let mut builder = builder
            .port(config.effective_port())
            .timeout(Some(Duration::from_secs(u64::from(
                config.timeout_seconds.max(1),
            ))));
        if !config.username.is_empty() {
            let password = std::env::var(PASSWORD_ENV).unwrap_or_default();
            builder = builder.credentials(Credentials::new(config.username.clone(), password));
        }
        Ok(Some(Arc::new(Sender {
            db,
            public_url,
            from,
            transport: builder.build(),
            config,
            clock,
        })))
    }

    /// Runs the delivery loop on the current runtime.
    pub fn start(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            tracing::info!(
                host = %me.config.host,
                port = me.config.effective_port(),
                tls = ?me.config.tls,
                "e-mail sender started"
            );
            let idle = Duration::from_millis(me.config.poll_interval_ms.max(1));
            loop {
                match me.round().await {
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {}
                    Err(err) => tracing::error!(error = %err, "e-mail sender round failed"),
                }
                tokio::time::sleep(idle).await;
            }
        });
    }

    /// Claims due rows, sends each, records the outcome; returns how many were handled.
    pub async fn round(&self) -> Result<usize, SendError> {
        let lease = Duration::from_secs(u64::from(self.config.timeout_seconds.max(1)) + 60);
        let base = self.public_url.clone();
        let t = self.clock.now();
        let jobs = self
            .db
            .write(move |conn| claim(conn, &base, lease, t))
            .await?;
        let n = jobs.len();
        for job in jobs {
            let result = self.send(&job).await;
            let max = i32::try_from(self.config.max_attempts).unwrap_or(i32::MAX);
            let retry = self.config.retry_seconds;
            let t = self.clock.now();
            self.db
                .write(move |conn| record(conn, &job, result, (max, retry), t))
                .await?;
        }
        Ok(n)
    }

    async fn send(&self, job: &Job) -> Result<(), Failure> {
        let message = self.message(job).map_err(|e| Failure {
            message: e,
            permanent: true,
        })?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // A 5xx reply (unknown mailbox, refused sender, message rejected) is the
            // relay's final word: retrying sends the same thing and gets the same answer.
            // Everything else (4xx, connection, TLS, timeout) may pass and is retried.
            Err(err) => Err(Failure {
                message: describe(&err),
                permanent: err.is_permanent(),
            }),
        }
    }

    fn message(&self, job: &Job) -> Result<Message, String> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(job.subject.clone());
        let mut any = false;
        for addr in job.to.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let to: Mailbox = addr
                .parse()
                .map_err(|e| format!("bad recipient {addr:?}: {e}"))?;
            builder = builder.to(to);
            any = true;
        }
        if !any {
            return Err("no recipients".into());
        }
        let built = match &job.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                job.text.clone(),
                html.clone(),
            )),
            None => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(job.text.clone()),
            ),
        };
        built.map_err(|e| format!("cannot build the message: {e}"))
    }
}

/// TLS settings for the relay `host`: the webpki roots, plus the certificates in
/// `email.ca_file` (a relay with a private CA).
fn tls_parameters(config: &EmailConfig, host: &str) -> Result<TlsParameters, SendError> {
    let mut builder = TlsParameters::builder(host.to_string());
    if let Some(path) = &config.ca_file {
        let bad =
            |why: String| SendError::Config(format!("email.ca_file {}: {why}", path.display()));
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(bad("no PEM certificate in it".into()));
        }
        let cert = Certificate::from_pem(&pem).map_err(|e| bad(e.to_string()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build_rustls()
        .map_err(|e| SendError::Config(format!("email.tls: {e}")))
}

/// A failed delivery attempt.
#[derive(Debug, Clone)]
struct Failure {
    message: String,
    /// Retrying cannot help (the message itself is wrong).
    permanent: bool,
}

/// An SMTP error with its cause chain, which carries the server's reply.
fn describe(err: &lettre::transport::smtp::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

type Row = (
    i64,
    String,
    String,
    String,
    Option<String>,
    i32,
    Option<i64>,
    Option<i64>,
);

fn claim(
    conn: &mut DbConn,
    base: &str,
    lease: Duration,
    t: NaiveDateTime,
) -> Result<Vec<Job>, SendError> {
    let due = email_outbox::next_attempt_at
        .is_null()
        .or(email_outbox::next_attempt_at.le(t));
    let ids: Vec<i64> = email_outbox::table
        .filter(email_outbox::status.eq_any(["queued", "sending"]))
        .filter(due)
        .order(email_outbox::id)
        .limit(BATCH)
        .select(email_outbox::id)
        .load(conn)?;
    let until = t + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(2));
    let mut jobs = Vec::new();
    for id in ids {
        let claimed = diesel::update(
            email_outbox::table
                .find(id)
                .filter(email_outbox::status.eq_any(["queued", "sending"]))
                .filter(
                    email_outbox::next_attempt_at
                        .is_null()
                        .or(email_outbox::next_attempt_at.le(t)),
                ),
        )
        .set((
            email_outbox::status.eq("sending"),
            email_outbox::attempts.eq(email_outbox::attempts + 1),
            email_outbox::next_attempt_at.eq(until),
        ))
        .execute(conn)?;
        if claimed == 0 {
            continue;
        }
        let (id, to, subject, text, html, attempts, gate_id, user_id): Row = email_outbox::table
            .find(id)
            .select((
                email_outbox::id,
                email_outbox::recipients,
                email_outbox::subject,
                email_outbox::body_text,
                email_outbox::body_html,
                email_outbox::attempts,
                email_outbox::gate_id,
                email_outbox::user_id,
            ))
            .first(conn)?;
        let mut job = Job {
            id,
            to,
            subject,
            text,
            html,
            attempts,
            gate_id,
            user: None,
        };
        if let (Some(gate_id), Some(user_id)) = (gate_id, user_id) {
            let gate = approvals::get(conn, gate_id)?;
            if gate.status != GateStatus::Pending {
                diesel::update(email_outbox::table.find(id))
                    .set((
                        email_outbox::status.eq("cancelled"),
                        email_outbox::last_error
                            .eq("the approval request was settled before delivery"),
                        email_outbox::next_attempt_at.eq(None::<NaiveDateTime>),
                    ))
                    .execute(conn)?;
                continue;
            }
            use crate::db::schema::users;
            let user: Option<(String, String, Option<NaiveDateTime>)> = users::table
                .find(user_id)
                .select((users::username, users::role, users::disabled_at))
                .first(conn)
                .optional()?;
            let admitted = user.as_ref().is_some_and(|(name, role, disabled)| {
                disabled.is_none()
                    && role
                        .parse()
                        .is_ok_and(|r| gate.approvers.admits(gate.kind, name, r))
            });
            let Some((username, _, _)) = user.filter(|_| admitted) else {
                // Escalated away from this approver, or the account was disabled since.
                diesel::update(email_outbox::table.find(id))
                    .set((
                        email_outbox::status.eq("cancelled"),
                        email_outbox::last_error.eq("the recipient is no longer an approver"),
                        email_outbox::next_attempt_at.eq(None::<NaiveDateTime>),
                    ))
                    .execute(conn)?;
                continue;
            };
            let token = links::mint(conn, gate_id, user_id, Some(id), t)?;
            let urls = notify::Links {
                approve: links::url(base, gate_id, &token, Decision::Approve),
                reject: links::url(base, gate_id, &token, Decision::Reject),
            };
            let case_title = notify::case_title(conn, gate.case_id)?;
            let mail = notify::render(&gate, case_title.as_deref(), &username, Some(&urls));
            job.subject = mail.subject;
            job.text = mail.text;
            job.html = Some(mail.html);
            job.user = Some(username);
        }
        jobs.push(job);
    }
    Ok(jobs)
}

fn backoff(retry_seconds: u32, attempts: i32) -> chrono::Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(0);
    let secs = u64::from(retry_seconds.max(1))
        .saturating_mul(1u64 << exp)
        .min(MAX_BACKOFF_SECS);
    chrono::Duration::seconds(i64::try_from(secs).unwrap_or(3600))
}

/// Records the outcome of one attempt at `t`; `(max_attempts, retry_seconds)` decide
/// whether and when it is tried again.
fn record(
    conn: &mut DbConn,
    job: &Job,
    result: Result<(), Failure>,
    (max_attempts, retry_seconds): (i32, u32),
    t: NaiveDateTime,
) -> Result<(), SendError> {
    let actor = Actor::system("email");
    let (action_ok, action_failed, target) = match job.gate_id {
        Some(g) => (
            "approval.notified",
            "approval.notification_failed",
            format!("approval:{g}"),
        ),
        None => ("email.sent", "email.failed", format!("email:{}", job.id)),
    };
    match result {
        Ok(()) => {
            diesel::update(email_outbox::table.find(job.id))
                .set((
                    email_outbox::status.eq("sent"),
                    email_outbox::sent_at.eq(t),
                    email_outbox::last_error.eq(None::<String>),
                    email_outbox::next_attempt_at.eq(None::<NaiveDateTime>),
                ))
                .execute(conn)?;
            audit::append(
                conn,
                NewEvent::new(
                    &actor,
                    action_ok,
                    target,
                    json!({
                        "outbox_id": job.id,
                        "to": job.to,
                        "approver": job.user,
                        "subject": job.subject,
                        "attempts": job.attempts,
                    }),
                ),
            )?;
            tracing::info!(outbox = job.id, to = %job.to, "e-mail sent");
        }
        Err(failure) => {
            let give_up = failure.permanent || job.attempts >= max_attempts;
            let next = (!give_up).then(|| t + backoff(retry_seconds, job.attempts));
            diesel::update(email_outbox::table.find(job.id))
                .set((
                    email_outbox::status.eq(if give_up { "failed" } else { "queued" }),
                    email_outbox::last_error.eq(&failure.message),
                    email_outbox::next_attempt_at.eq(next),
                ))
                .execute(conn)?;
            // The links in an undelivered e-mail must not work should it surface later.
            links::revoke_for_outbox(conn, job.id, t)?;
            audit::append(
                conn,
                NewEvent::new(
                    &actor,
                    action_failed,
                    target,
                    json!({
                        "outbox_id": job.id,
                        "to": job.to,
                        "approver": job.user,
                        "attempt": job.attempts,
                        "error": failure.message,
                        "permanent": failure.permanent,
                        "will_retry": !give_up,
                        "next_attempt_at": next.map(|n| crate::db::utc::format(&n)),
                    }),
                ),
            )?;
            tracing::warn!(outbox = job.id, to = %job.to, attempt = job.attempts, error = %failure.message, retry = !give_up, "e-mail not delivered");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(30, 1).num_seconds(), 30);
        assert_eq!(backoff(30, 2).num_seconds(), 60);
        assert_eq!(backoff(30, 3).num_seconds(), 120);
        assert_eq!(backoff(30, 30).num_seconds(), 3600);
        assert_eq!(backoff(0, 1).num_seconds(), 1);
    }
}
