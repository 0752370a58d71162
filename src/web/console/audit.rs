//! The audit log page: search, the chain's verification status with "Verify now", and
//! the export download.

use crate::audit::export::{self, Format};
use crate::audit::search::{self, Filter};
use crate::audit::{verify, AuditError, AuditEvent};
use crate::auth::Permission;
use crate::web::console::page::{self, SignedIn};
use crate::web::AppState;
use actix_web::web::Bytes;
use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use std::io::Write;

/// Events on one page of the log.
const PAGE_SIZE: i64 = 50;
/// Characters of an event's details shown in the table (the export has them whole).
const DETAILS_SHOWN: usize = 200;

/// An event as a table row shows it.
#[derive(serde::Serialize)]
struct Row {
    seq: i64,
    /// RFC 3339, for the `datetime` attribute.
    at: String,
    /// `2026-12-01 20:50:06`, UTC.
    time: String,
    actor: String,
    action: String,
    target: String,
    details: String,
}

impl From<AuditEvent> for Row {
    fn from(e: AuditEvent) -> Row {
        let mut details: String = e.details.chars().take(DETAILS_SHOWN).collect();
        if details.len() < e.details.len() {
            details.push('…');
        }
        Row {
            seq: e.seq,
            at: crate::audit::hash_time(&e.occurred_at),
            time: e.occurred_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            actor: format!("{}/{}", e.actor_kind, e.actor_id),
            action: e.action,
            target: e.target,
            details,
        }
    }
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(log).service(verify_now).service(download);
}

/// The search form as submitted (every field optional, as text).
#[derive(Deserialize, Default, serde::Serialize, Clone)]
struct SearchForm {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    q: String,
    /// Text, parsed by the handler so a bad value gets the page naming it.
    #[serde(default)]
    before: String,
    #[serde(default)]
    verified: Option<String>,
}

impl SearchForm {
    fn filter(&self) -> Result<Filter, AuditError> {
        let text = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
        let time = |field, v: &str| -> Result<_, AuditError> {
            match text(v) {
                Some(v) => search::parse_bound(field, &v).map(Some),
                None => Ok(None),
            }
        };
        Ok(Filter {
            actor: text(&self.actor),
            action: text(&self.action),
            target: text(&self.target),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            text: text(&self.q),
        })
    }

    /// The query string of these filters without the cursor, for the next-page link.
    fn query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
            ("since", &self.since),
            ("until", &self.until),
            ("q", &self.q),
        ] {
            if !v.trim().is_empty() {
                q.append_pair(k, v.trim());
            }
        }
        q.finish()
    }
}

#[get("/audit")]
async fn log(
    state: web::Data<AppState>,
    session: SignedIn,
    form: web::Query<SearchForm>,
) -> actix_web::Result<HttpResponse> {
    session.require(&state.pages, Permission::ReadAudit)?;
    let form = form.into_inner();
    let filter = form.filter().map_err(|e| page::fail(&state.pages, e))?;
    let before = match form.before.trim() {
        "" => None,
        text => Some(text.parse::<i64>().map_err(|_| {
            page::fail(
                &state.pages,
                crate::web::error::ApiError::bad_request(format!(
                    "before={text}: expected an event number from the \"Older events\" link"
                )),
            )
        })?),
    };
    let (page, verification) = state
        .db
        .read(move |conn| {
            let page = search::search(conn, &filter, before, PAGE_SIZE)?;
            let verification = search::last_verification(conn)?;
            Ok::<_, AuditError>((page, verification))
        })
        .await
        .map_err(|e| page::fail(&state.pages, e))?;
    let query = form.query();
    let next = page.next_before.map(|b| {
        if query.is_empty() {
            format!("/audit?before={b}")
        } else {
            format!("/audit?{query}&before={b}")
        }
    });
    let export_query = {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("since", &form.since), ("until", &form.until)] {
            if !v.trim().is_empty() {
                q.append_pair(k, v.trim());
            }
        }
        q.finish()
    };
    Ok(page::render(
        &state,
        &session,
        "audit",
        "audit.html",
        minijinja::context! {
            form => form.clone(),
            events => page.events.into_iter().map(Row::from).collect::<Vec<_>>(),
            next => next,
            paged => before.is_some(),
            first_page => if query.is_empty() { "/audit".to_string() } else { format!("/audit?{query}") },
            verification => verification,
            just_verified => form.verified.is_some(),
            export_query => export_query,
        },
    ))
}

#[derive(Deserialize)]
struct VerifyForm {
    csrf_token: String,
}

#[post("/audit/verify")]
async fn verify_now(
    state: web::Data<AppState>,
    session: SignedIn,
    form: web::Form<VerifyForm>,
) -> actix_web::Result<HttpResponse> {
    session.check_csrf(&state.pages, &form.csrf_token)?;
    session.require(&state.pages, Permission::ReadAudit)?;
    // Walking the chain is a read; only recording the outcome takes the write lock, so a
    // long chain does not hold up every writer while it is checked.
    let report = state
        .db
        .read(verify::verify)
        .await
        .map_err(|e| page::fail(&state.pages, e))?;
    let actor = crate::audit::Actor::user(&session.0.user.username);
    state
        .db
        .write(move |conn| search::record_verification(conn, &actor, &report))
        .await
        .map_err(|e| page::fail(&state.pages, e))?;
    Ok(page::see_other("/audit?verified=1"))
}

#[derive(Deserialize)]
struct ExportQuery {
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    format: Option<String>,
}

/// Hands the exporter's output to the response in chunks as it is written, so a long
/// chain is never held in memory whole.
struct ChannelWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Bytes>,
}

const CHUNK: usize = 64 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        // Runs on the blocking pool (inside `Db::read`), where blocking on the channel is
        // allowed; an error means the client went away, which ends the export.
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

#[get("/audit/export")]
async fn download(
    state: web::Data<AppState>,
    session: SignedIn,
    query: web::Query<ExportQuery>,
) -> actix_web::Result<HttpResponse> {
    session.require(&state.pages, Permission::ReadAudit)?;
    let q = query.into_inner();
    let bound = |field, v: &str| -> Result<_, AuditError> {
        match v.trim() {
            "" => Ok(None),
            v => search::parse_bound(field, v).map(Some),
        }
    };
    let since = bound("since", &q.since).map_err(|e| page::fail(&state.pages, e))?;
    let until = bound("until", &q.until).map_err(|e| page::fail(&state.pages, e))?;
    let (format, ext, kind) = match q.format.as_deref().unwrap_or("ndjson") {
        "ndjson" => (Format::Ndjson, "ndjson", "application/x-ndjson"),
        "csv" => (Format::Csv, "csv", "text/csv; charset=utf-8"),
        other => {
            return Err(page::fail(
                &state.pages,
                crate::web::error::ApiError::bad_request(format!(
                    "format={other}: expected ndjson or csv"
                )),
            ))
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let db = state.db.clone();
    actix_web::rt::spawn(async move {
        let result = db
            .read(move |conn| {
                let mut out = ChannelWriter {
                    buf: Vec::new(),
                    tx,
                };
                export::export(conn, since, until, format, &mut out)?;
                out.flush()?;
                Ok::<_, AuditError>(())
            })
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "audit export from the console stopped early");
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, actix_web::Error>(chunk), rx))
    });
    let stamp = |t: Option<chrono::NaiveDateTime>| {
        t.map_or("all".to_string(), |t| t.format("%Y%m%dT%H%M").to_string())
    };
    let filename = format!("tocsin-audit-{}-{}.{ext}", stamp(since), stamp(until));
    Ok(HttpResponse::Ok()
        .content_type(kind)
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{filename}\""),
        ))
        .streaming(stream))
}
