//! What a step's `uses` does. Built-ins that only change Tocsin's own data (`case.*`,
//! `notify.email`, `noop`) run inside the transaction that records the step, so they
//! happen exactly once; `wait` and `playbook.run` are timers and child runs the engine
//! tracks; integration actions, `http.request` and `notify.webhook` go out over HTTP.

use crate::audit::Actor;
use crate::cases::update::{self, CaseChange};
use crate::config::CasesConfig;
use crate::db::schema::email_outbox;
use crate::db::{now, DbConn};
use crate::events::Bus;
use crate::integrations::executor::Executor;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// How the engine carries out an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Applied in the step's own transaction.
    Internal,
    /// `wait`: a timer.
    Wait,
    /// `playbook.run`: a child run.
    Child,
    /// Sent over HTTP: may be caught mid-flight by a crash.
    External { idempotent: bool },
}

/// How `uses` is carried out. `http.request` is idempotent only for GET.
pub fn kind_of(uses: &str, input_method: Option<&str>, executor: &Executor) -> Kind {
    match uses {
        "noop" | "case.set" | "case.comment" | "case.tag" | "case.assign" | "notify.email" => {
            Kind::Internal
        }
        "wait" => Kind::Wait,
        "playbook.run" => Kind::Child,
        "http.request" => Kind::External {
            idempotent: input_method.is_some_and(|m| m.eq_ignore_ascii_case("GET")),
        },
        "notify.webhook" => Kind::External { idempotent: false },
        other => {
            let idempotent = other
                .split_once('.')
                .and_then(|(i, a)| executor.integration(i)?.actions.get(a))
                .is_some_and(|a| a.is_idempotent());
            Kind::External { idempotent }
        }
    }
}

/// A step failed (the run decides what follows); not a database error.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub message: String,
    /// Trying again later may succeed.
    pub transient: bool,
}

impl Failure {
    /// A failure that repeating will not fix.
    pub fn permanent(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            transient: false,
        }
    }
}

/// What an internal built-in needs besides its input.
pub struct InternalCtx<'a> {
    pub cases: &'a CasesConfig,
    pub bus: &'a Bus,
    pub actor: &'a Actor,
    pub case_id: Option<i64>,
    /// `playbook-id#run-id`, recorded as the origin of queued emails.
    pub origin: &'a str,
}

fn need_case(ctx: &InternalCtx) -> Result<i64, Failure> {
    ctx.case_id
        .ok_or_else(|| Failure::permanent("this run has no case to act on"))
}

fn strings(v: Option<&Value>, field: &str) -> Result<Vec<String>, Failure> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                other => Err(Failure::permanent(format!(
                    "`{field}` must be a string or a list of strings, found {other}"
                ))),
            })
            .collect(),
        Some(other) => Err(Failure::permanent(format!(
            "`{field}` must be a string or a list of strings, found {other}"
        ))),
    }
}

fn text(input: &Map<String, Value>, field: &str) -> Result<Option<String>, Failure> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Failure::permanent(format!(
            "`{field}` must be a string, found {other}"
        ))),
    }
}

/// Runs an internal built-in in the caller's transaction. `Ok(Err(..))` is a step
/// failure whose writes the caller undoes (it runs inside a savepoint).
pub fn run_internal(
    conn: &mut DbConn,
    ctx: &InternalCtx,
    uses: &str,
    input: &Map<String, Value>,
) -> Result<Value, Failure> {
    let case_error = |e: crate::cases::CaseError| match e {
        crate::cases::CaseError::Db(_) | crate::cases::CaseError::Audit(_) => Failure {
            message: e.to_string(),
            transient: true,
        },
        other => Failure::permanent(other.to_string()),
    };
    match uses {
        "noop" => Ok(input.get("value").cloned().unwrap_or(Value::Null)),
        "case.set" => {
            let id = need_case(ctx)?;
            let change: CaseChange = serde_json::from_value(Value::Object(input.clone()))
                .map_err(|e| Failure::permanent(format!("case.set: {e}")))?;
            let case = update::apply(conn, ctx.cases, ctx.bus, ctx.actor, id, change)
                .map_err(case_error)?;
            Ok(json!({ "status": case.status, "severity": case.severity, "title": case.title }))
        }
        "case.comment" => {
            let id = need_case(ctx)?;
            let body = text(input, "body")?.unwrap_or_default();
            let comment = update::comment(conn, ctx.actor, id, &body).map_err(case_error)?;
            Ok(json!({ "comment_id": comment.id }))
        }
        "case.tag" => {
            let id = need_case(ctx)?;
            let change = CaseChange {
                add_tags: Some(strings(input.get("tags"), "tags")?),
                remove_tags: Some(strings(input.get("remove"), "remove")?),
                ..CaseChange::default()
            };
            let case = update::apply(conn, ctx.cases, ctx.bus, ctx.actor, id, change)
                .map_err(case_error)?;
            Ok(json!({ "tags": case.tags }))
        }
        "case.assign" => {
            let id = need_case(ctx)?;
            let assignee = text(input, "assignee")?;
            let case = update::assign(conn, ctx.bus, ctx.actor, id, assignee.as_deref())
                .map_err(case_error)?;
            Ok(json!({ "assignee": case.assignee }))
        }
        "notify.email" => {
            let to = strings(input.get("to"), "to")?;
            if to.is_empty() || to.iter().any(|a| !a.contains('@')) {
                return Err(Failure::permanent(format!(
                    "`to` must name at least one email address, found {to:?}"
                )));
            }
            let subject = text(input, "subject")?.unwrap_or_default();
            let body = text(input, "body")?.unwrap_or_default();
            let html = text(input, "html")?;
            let id: i64 = crate::on_backend!(conn, |c| diesel::insert_into(email_outbox::table)
                .values((
                    email_outbox::recipients.eq(to.join(", ")),
                    email_outbox::subject.eq(&subject),
                    email_outbox::body_text.eq(&body),
                    email_outbox::body_html.eq(&html),
                    email_outbox::origin.eq(ctx.origin),
                    email_outbox::status.eq("queued"),
                    email_outbox::attempts.eq(0),
                    email_outbox::created_at.eq(now()),
                ))
                .returning(email_outbox::id)
                .get_result(c))
            .map_err(|e| Failure {
                message: e.to_string(),
                transient: true,
            })?;
            Ok(json!({ "email_id": id, "queued": true }))
        }
        other => Err(Failure::permanent(format!(
            "{other} is not an internal action"
        ))),
    }
}

/// When a `wait` step ends: after `duration`, or at `until` (RFC 3339).
pub fn wait_until(
    input: &Map<String, Value>,
    from: NaiveDateTime,
) -> Result<NaiveDateTime, Failure> {
    if let Some(d) = text(input, "duration")? {
        let d = humantime::parse_duration(d.trim())
            .map_err(|e| Failure::permanent(format!("`duration` {d:?}: {e}")))?;
        let d = chrono::Duration::from_std(d)
            .map_err(|e| Failure::permanent(format!("`duration` too long: {e}")))?;
        return Ok(from + d);
    }
    if let Some(u) = text(input, "until")? {
        let t = chrono::DateTime::parse_from_rfc3339(u.trim()).map_err(|e| {
            Failure::permanent(format!("`until` {u:?} is not an RFC 3339 time: {e}"))
        })?;
        return Ok(t.naive_utc());
    }
    Err(Failure::permanent("wait needs `duration` or `until`"))
}

/// A header or query value: strings as they are, anything else as JSON text.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Calls an external action; the output is the integration action's mapped outputs, or
/// for `http.request` / `notify.webhook` the response's status and body.
pub async fn run_external(
    executor: &Executor,
    http: &reqwest::Client,
    uses: &str,
    input: &Map<String, Value>,
    idempotency_key: Option<&str>,
) -> Result<Value, Failure> {
    match uses {
        "http.request" | "notify.webhook" => {
            let (method, default_method) = match uses {
                "http.request" => (text(input, "method")?, "GET"),
                _ => (None, "POST"),
            };
            let method = method.unwrap_or_else(|| default_method.to_string());
            let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .map_err(|_| {
                    Failure::permanent(format!("`method` {method:?} is not an HTTP method"))
                })?;
            let url = text(input, "url")?.unwrap_or_default();
            let url = url::Url::parse(&url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    Failure::permanent(format!("`url` {url:?} is not an http(s) URL"))
                })?;
            let mut req = http.request(method, url);
            if let Some(Value::Object(headers)) = input.get("headers") {
                for (k, v) in headers {
                    req = req.header(k.as_str(), as_text(v));
                }
            }
            if let Some(Value::Object(query)) = input.get("query") {
                let pairs: Vec<(String, String)> =
                    query.iter().map(|(k, v)| (k.clone(), as_text(v))).collect();
                req = req.query(&pairs);
            }
            if let Some(key) = idempotency_key {
                req = req.header("Idempotency-Key", key);
            }
            if let Some(body) = input.get("body").filter(|b| !b.is_null()) {
                req = req.json(body);
            }
            let response = req.send().await.map_err(|e| Failure {
                message: format!(
                    "request failed: {}",
                    executor.secrets().redact(&e.to_string())
                ),
                transient: true,
            })?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| Failure {
                message: format!("reading the response failed: {e}"),
                transient: true,
            })?;
            let body = serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|_| {
                let text = String::from_utf8_lossy(&bytes);
                json!({ "text": text.chars().take(10_000).collect::<String>() })
            });
            if status.is_success() {
                Ok(json!({ "status": status.as_u16(), "body": body }))
            } else {
                let excerpt: String = body.to_string().chars().take(500).collect();
                Err(Failure {
                    message: format!("HTTP {}: {excerpt}", status.as_u16()),
                    transient: status.as_u16() == 429 || status.is_server_error(),
                })
            }
        }
        other => {
            let (integration, action) = other
                .split_once('.')
                .ok_or_else(|| Failure::permanent(format!("unknown action {other:?}")))?;
            match executor
                .invoke(integration, action, input, idempotency_key)
                .await
            {
                Ok(result) => Ok(Value::Object(result.output)),
                Err(e) => Err(Failure {
                    transient: e.is_transient(),
                    message: e.to_string(),
                }),
            }
        }
    }
}

/// The wait before attempt `attempt + 1` after `attempt` failed: `backoff` doubled per
/// attempt so far, capped by `max_backoff`.
pub fn backoff(attempt: u32, base: Duration, cap: Option<Duration>) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    let d = base.saturating_mul(factor);
    cap.map_or(d, |c| d.min(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let s = Duration::from_secs;
        assert_eq!(backoff(1, s(2), None), s(2));
        assert_eq!(backoff(2, s(2), None), s(4));
        assert_eq!(backoff(3, s(2), None), s(8));
        assert_eq!(backoff(4, s(2), Some(s(10))), s(10));
    }

    #[test]
    fn waits_take_a_duration_or_a_time() {
        let t0 = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        let mut input = Map::new();
        input.insert("duration".into(), json!("90s"));
        assert_eq!(
            wait_until(&input, t0).unwrap(),
            t0 + chrono::Duration::seconds(90)
        );
        let mut input = Map::new();
        input.insert("until".into(), json!("2026-01-02T00:00:00Z"));
        assert_eq!(
            wait_until(&input, t0).unwrap(),
            t0 + chrono::Duration::days(1)
        );
        let mut input = Map::new();
        input.insert("duration".into(), json!("soon"));
        assert!(wait_until(&input, t0).is_err());
        assert!(wait_until(&Map::new(), t0).is_err());
    }
}
