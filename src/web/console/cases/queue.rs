//! `GET /cases`: the case queue with filters, sorting, cursor paging and SLA countdowns;
//! `POST /cases/bulk`: assign or close the ticked cases.

use super::form::{case_ids, Fields};
use crate::alert::Severity;
use crate::auth::Permission;
use crate::cases::query::{self, Filter, Sort};
use crate::cases::update::{self, CaseChange};
use crate::cases::{choices, CaseError, CaseStatus, Disposition};
use crate::web::console::page::{self, SignedIn};
use crate::web::error::ApiError;
use crate::web::AppState;
use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(queue).service(bulk);
}

/// Cases shown per page.
pub const PAGE_SIZE: i64 = 50;

/// The queue's query string, as its filter form submits it. Blank fields mean "any";
/// without a `status` field the queue shows open cases.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct QueueParams {
    /// `open`, `any`, or one status.
    pub status: Option<String>,
    /// The least severity shown.
    pub severity: Option<String>,
    pub source: Option<String>,
    /// A username, `me`, or `none` for unassigned.
    pub assignee: Option<String>,
    pub tag: Option<String>,
    pub q: Option<String>,
    pub sort: Option<String>,
    /// Cases per page (default [`PAGE_SIZE`]).
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The statuses an open case may have.
pub fn open_statuses() -> Vec<CaseStatus> {
    CaseStatus::ALL
        .into_iter()
        .filter(|s| s.is_open())
        .collect()
}

impl QueueParams {
    /// The filter and order these parameters ask for; `me` is the signed-in username.
    pub fn filter(&self, me: &str) -> Result<(Filter, Sort), ApiError> {
        let statuses = match self.status.as_deref().map(str::trim) {
            None | Some("open") => open_statuses(),
            Some("" | "any") => Vec::new(),
            Some(s) => vec![s.parse::<CaseStatus>()?],
        };
        let min_severity = match blank(&self.severity) {
            None => None,
            Some(word) => Some(Severity::from_word(word).ok_or_else(|| {
                ApiError::bad_request(format!("`severity`: {word:?} is not a severity"))
            })?),
        };
        let assignee = match blank(&self.assignee) {
            Some("me") => Some(me.to_string()),
            other => other.map(str::to_string),
        };
        let sort = match blank(&self.sort) {
            None => Sort::default(),
            Some(s) => serde_json::from_value(serde_json::Value::String(s.to_string()))
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "`sort`: {s:?} is not one of -last_seen, last_seen, -created, created, -severity"
                    ))
                })?,
        };
        Ok((
            Filter {
                statuses,
                min_severity,
                source: blank(&self.source).map(str::to_string),
                assignee,
                tag: blank(&self.tag).map(|t| t.to_lowercase()),
                text: blank(&self.q).map(str::to_string),
                include_merged: false,
            },
            sort,
        ))
    }

    /// This query string with `cursor` replaced (or removed).
    pub fn href(&self, cursor: Option<&str>) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", &self.status),
            ("severity", &self.severity),
            ("source", &self.source),
            ("assignee", &self.assignee),
            ("tag", &self.tag),
            ("q", &self.q),
            ("sort", &self.sort),
        ] {
            if let Some(v) = v {
                s.append_pair(k, v);
            }
        }
        if let Some(limit) = self.limit {
            s.append_pair("limit", &limit.to_string());
        }
        if let Some(c) = cursor {
            s.append_pair("cursor", c);
        }
        let qs = s.finish();
        if qs.is_empty() {
            "/cases".into()
        } else {
            format!("/cases?{qs}")
        }
    }
}

/// The orderings the queue offers, with their labels.
pub const SORTS: [(&str, &str); 5] = [
    ("-last_seen", "Last activity, newest first"),
    ("last_seen", "Last activity, oldest first"),
    ("-created", "Opened, newest first"),
    ("created", "Opened, oldest first"),
    ("-severity", "Severity, highest first"),
];

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
}

#[get("/cases")]
async fn queue(
    state: web::Data<AppState>,
    session: SignedIn,
    params: web::Query<QueueParams>,
    notice: web::Query<Notice>,
) -> actix_web::Result<HttpResponse> {
    session.require(&state.pages, Permission::Read)?;
    let params = params.into_inner();
    let me = session.0.user.username.clone();
    let (filter, sort) = params
        .filter(&me)
        .map_err(|e| page::fail(&state.pages, e))?;
    let cursor = params.cursor.clone();
    let limit = params.limit.unwrap_or(PAGE_SIZE);
    let (page_, (sources, users)) = state
        .db
        .read(move |conn| {
            let page_ = query::list(conn, &filter, sort, limit, cursor.as_deref())?;
            Ok::<_, CaseError>((page_, choices::filter_choices(conn)?))
        })
        .await
        .map_err(|e| page::fail(&state.pages, e))?;
    let next_href = page_.next_cursor.as_deref().map(|c| params.href(Some(c)));
    let first_href = params.cursor.is_some().then(|| params.href(None));
    let back = params.href(params.cursor.as_deref());
    let statuses: Vec<&str> = CaseStatus::ALL.iter().map(|s| s.as_str()).collect();
    let severities: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    let dispositions: Vec<&str> = Disposition::ALL.iter().map(|d| d.as_str()).collect();
    Ok(page::render(
        &state,
        &session,
        "cases",
        "cases.html",
        minijinja::context! {
            cases => page_.cases,
            next_href => next_href,
            first_href => first_href,
            back => back,
            params => params,
            status => params.status.clone().unwrap_or_else(|| "open".into()),
            statuses => statuses,
            severities => severities,
            dispositions => dispositions,
            sorts => SORTS,
            sources => sources,
            users => users,
            notice => notice.into_inner().done,
        },
    ))
}

#[post("/cases/bulk")]
async fn bulk(
    state: web::Data<AppState>,
    session: SignedIn,
    body: web::Bytes,
) -> actix_web::Result<HttpResponse> {
    let f = Fields::parse(&body);
    session.check_csrf(&state.pages, f.csrf())?;
    session.require(&state.pages, Permission::WorkCases)?;
    let fail = |e: ApiError| page::fail(&state.pages, e);
    let ids = case_ids("case", f.all("case")).map_err(fail)?;
    if ids.is_empty() {
        return Err(fail(ApiError::bad_request(
            "tick at least one case for a bulk action",
        )));
    }
    let action = f.required("action").map_err(fail)?.to_string();
    let actor = crate::audit::Actor::user(&session.0.user.username);
    let bus = state.bus.clone();
    let config = state.config.cases.clone();
    let n = ids.len();
    let done = match action.as_str() {
        "assign" => {
            let assignee = match f.required("assignee").map_err(fail)? {
                "none" => None,
                "me" => Some(session.0.user.username.clone()),
                name => Some(name.to_string()),
            };
            state
                .db
                .write(move |conn| {
                    for id in ids {
                        update::assign(conn, &bus, &actor, id, assignee.as_deref())?;
                    }
                    Ok::<_, CaseError>(())
                })
                .await
                .map_err(|e| page::fail(&state.pages, e))?;
            format!("assigned {n}")
        }
        "close" => {
            let disposition = match f.get("disposition") {
                Some(d) => Some(
                    d.parse::<Disposition>()
                        .map_err(|e| page::fail(&state.pages, e))?,
                ),
                None => None,
            };
            state
                .db
                .write(move |conn| {
                    for id in ids {
                        let change = CaseChange {
                            status: Some(CaseStatus::Closed),
                            disposition,
                            ..CaseChange::default()
                        };
                        update::apply(conn, &config, &bus, &actor, id, change)?;
                    }
                    Ok::<_, CaseError>(())
                })
                .await
                .map_err(|e| page::fail(&state.pages, e))?;
            format!("closed {n}")
        }
        other => {
            return Err(fail(ApiError::bad_request(format!(
                "`action`: {other:?} is not assign or close"
            ))))
        }
    };
    state.bus.wake();
    // Back to the queue as it was filtered; only a local queue path is followed.
    let back = f
        .get("back")
        .filter(|b| b.starts_with("/cases") && !b.starts_with("/cases/"))
        .unwrap_or("/cases");
    let sep = if back.contains('?') { '&' } else { '?' };
    let done: String = url::form_urlencoded::byte_serialize(done.as_bytes()).collect();
    Ok(page::see_other(&format!("{back}{sep}done={done}")))
}
