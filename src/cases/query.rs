//! Reading cases: one case with its alerts, observables and comments, and the case queue
//! with filters, sorting and cursor paging.

use super::{Case, CaseError, CaseStatus, Disposition};
use crate::alert::{AlertClass, Observable, ObservableKind, ObservableRole, Severity};
use crate::db::kept::{bind, kept};
use crate::db::schema::{
    alert_observables, alerts, case_comments, case_tags, cases, sources, users,
};
use crate::db::DbConn;
use base64::Engine;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// Every column of a case row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = cases)]
pub struct CaseRow {
    pub id: i64,
    pub title: String,
    pub status: String,
    pub disposition: Option<String>,
    pub severity: i32,
    pub assignee_id: Option<i64>,
    pub correlation_key: String,
    pub source_id: Option<i64>,
    pub alert_count: i32,
    pub first_seen_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub acknowledged_at: Option<NaiveDateTime>,
    pub resolved_at: Option<NaiveDateTime>,
    pub closed_at: Option<NaiveDateTime>,
    pub ack_due_at: Option<NaiveDateTime>,
    pub resolve_due_at: Option<NaiveDateTime>,
    pub merged_into_id: Option<i64>,
}

/// Turns rows into cases with their tags, assignee and source names, in row order.
pub fn hydrate(conn: &mut DbConn, rows: Vec<CaseRow>) -> Result<Vec<Case>, CaseError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut tags: HashMap<i64, Vec<String>> = HashMap::new();
    for (case_id, tag) in case_tags::table
        .filter(case_tags::case_id.eq_any(&ids))
        .order((case_tags::case_id, case_tags::tag))
        .select((case_tags::case_id, case_tags::tag))
        .load::<(i64, String)>(conn)?
    {
        tags.entry(case_id).or_default().push(tag);
    }
    let user_ids: Vec<i64> = rows.iter().filter_map(|r| r.assignee_id).collect();
    let names: HashMap<i64, String> = if user_ids.is_empty() {
        HashMap::new()
    } else {
        users::table
            .filter(users::id.eq_any(&user_ids))
            .select((users::id, users::username))
            .load::<(i64, String)>(conn)?
            .into_iter()
            .collect()
    };
    let source_ids: Vec<i64> = rows.iter().filter_map(|r| r.source_id).collect();
    let source_names: HashMap<i64, String> = if source_ids.is_empty() {
        HashMap::new()
    } else {
        sources::table
            .filter(sources::id.eq_any(&source_ids))
            .select((sources::id, sources::name))
            .load::<(i64, String)>(conn)?
            .into_iter()
            .collect()
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            let severity = Severity::from_id(i64::from(r.severity));
            Case {
                id: r.id,
                title: r.title,
                status: r.status.parse().unwrap_or(CaseStatus::New),
                disposition: r.disposition.and_then(|d| d.parse::<Disposition>().ok()),
                severity,
                severity_id: severity.id(),
                assignee: r.assignee_id.and_then(|id| names.get(&id).cloned()),
                source: r.source_id.and_then(|id| source_names.get(&id).cloned()),
                correlation_key: r.correlation_key,
                alert_count: r.alert_count,
                tags: tags.remove(&r.id).unwrap_or_default(),
                first_seen_at: r.first_seen_at,
                last_seen_at: r.last_seen_at,
                created_at: r.created_at,
                updated_at: r.updated_at,
                acknowledged_at: r.acknowledged_at,
                resolved_at: r.resolved_at,
                closed_at: r.closed_at,
                ack_due_at: r.ack_due_at,
                resolve_due_at: r.resolve_due_at,
                merged_into: r.merged_into_id,
            }
        })
        .collect())
}

/// One case.
pub fn get(conn: &mut DbConn, id: i64) -> Result<Case, CaseError> {
    let row = cases::table
        .find(id)
        .select(CaseRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(CaseError::NotFound(id))?;
    hydrate(conn, vec![row])?
        .pop()
        .ok_or(CaseError::NotFound(id))
}

/// An alert as shown inside a case (without its raw payload).
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    pub id: i64,
    pub case_id: i64,
    pub source: Option<String>,
    pub class: Option<AlertClass>,
    pub class_uid: Option<i32>,
    pub severity: Severity,
    pub severity_id: i32,
    pub state: String,
    pub title: String,
    pub description: Option<String>,
    pub vendor: String,
    pub product: String,
    pub rule_id: Option<String>,
    pub rule_name: Option<String>,
    pub external_id: Option<String>,
    pub fingerprint: String,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub event_time: Option<NaiveDateTime>,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub received_at: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub last_seen_at: NaiveDateTime,
    pub occurrences: i32,
    pub tags: Vec<String>,
    pub observables: Vec<Observable>,
    /// The event exactly as received; only on single-alert reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<Box<serde_json::value::RawValue>>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = alerts)]
struct AlertRow {
    id: i64,
    case_id: i64,
    source_id: i64,
    fingerprint: String,
    class: String,
    severity: i32,
    state: String,
    title: String,
    description: Option<String>,
    vendor: String,
    product: String,
    rule_id: Option<String>,
    rule_name: Option<String>,
    external_id: Option<String>,
    event_time: Option<NaiveDateTime>,
    received_at: NaiveDateTime,
    last_seen_at: NaiveDateTime,
    occurrences: i32,
    tags: String,
}

fn alert_views(conn: &mut DbConn, rows: Vec<AlertRow>) -> Result<Vec<AlertView>, CaseError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut observables: HashMap<i64, Vec<Observable>> = HashMap::new();
    if !ids.is_empty() {
        for (alert_id, kind, value, role) in alert_observables::table
            .filter(alert_observables::alert_id.eq_any(&ids))
            .order((
                alert_observables::alert_id,
                alert_observables::kind,
                alert_observables::value,
            ))
            .select((
                alert_observables::alert_id,
                alert_observables::kind,
                alert_observables::value,
                alert_observables::role,
            ))
            .load::<(i64, String, String, String)>(conn)?
        {
            if let Some(kind) = ObservableKind::parse(&kind) {
                observables.entry(alert_id).or_default().push(Observable {
                    kind,
                    value,
                    role: ObservableRole::parse(&role),
                });
            }
        }
    }
    let source_ids: Vec<i64> = rows.iter().map(|r| r.source_id).collect();
    let names: HashMap<i64, String> = sources::table
        .filter(sources::id.eq_any(&source_ids))
        .select((sources::id, sources::name))
        .load::<(i64, String)>(conn)?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|r| {
            let class = AlertClass::parse(&r.class);
            let severity = Severity::from_id(i64::from(r.severity));
            AlertView {
                id: r.id,
                case_id: r.case_id,
                source: names.get(&r.source_id).cloned(),
                class,
                class_uid: class.map(AlertClass::uid),
                severity,
                severity_id: severity.id(),
                state: r.state,
                title: r.title,
                description: r.description,
                vendor: r.vendor,
                product: r.product,
                rule_id: r.rule_id,
                rule_name: r.rule_name,
                external_id: r.external_id,
                fingerprint: r.fingerprint,
                event_time: r.event_time,
                received_at: r.received_at,
                last_seen_at: r.last_seen_at,
                occurrences: r.occurrences,
                tags: serde_json::from_str(&r.tags).unwrap_or_default(),
                observables: observables.remove(&r.id).unwrap_or_default(),
                raw: None,
            }
        })
        .collect())
}

/// The alerts of a case, oldest first.
pub fn case_alerts(conn: &mut DbConn, case_id: i64) -> Result<Vec<AlertView>, CaseError> {
    let rows = alerts::table
        .filter(alerts::case_id.eq(case_id))
        .order(alerts::id.asc())
        .select(AlertRow::as_select())
        .load(conn)?;
    alert_views(conn, rows)
}

/// The newest `limit` alerts of a case, newest first.
pub fn recent_alerts(
    conn: &mut DbConn,
    case_id: i64,
    limit: i64,
) -> Result<Vec<AlertView>, CaseError> {
    let rows = alerts::table
        .filter(alerts::case_id.eq(case_id))
        .order(alerts::id.desc())
        .limit(limit)
        .select(AlertRow::as_select())
        .load(conn)?;
    alert_views(conn, rows)
}

/// One alert with its raw payload.
pub fn alert(conn: &mut DbConn, id: i64) -> Result<AlertView, CaseError> {
    let row = alerts::table
        .find(id)
        .select(AlertRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(CaseError::AlertNotFound(id))?;
    let raw: String = alerts::table.find(id).select(alerts::raw).first(conn)?;
    let mut view = alert_views(conn, vec![row])?
        .pop()
        .ok_or(CaseError::AlertNotFound(id))?;
    view.raw = serde_json::value::RawValue::from_string(raw).ok();
    Ok(view)
}

/// A comment on a case.
#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = case_comments)]
pub struct Comment {
    pub id: i64,
    #[serde(skip)]
    pub case_id: i64,
    pub author: String,
    pub body: String,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub created_at: NaiveDateTime,
}

/// Comments of a case, oldest first.
pub fn comments(conn: &mut DbConn, case_id: i64) -> Result<Vec<Comment>, CaseError> {
    Ok(case_comments::table
        .filter(case_comments::case_id.eq(case_id))
        .order(case_comments::id.asc())
        .select(Comment::as_select())
        .load(conn)?)
}

/// Queue orderings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Sort {
    /// Most recently active first (the default).
    #[default]
    #[serde(rename = "-last_seen")]
    LastSeenDesc,
    #[serde(rename = "last_seen")]
    LastSeenAsc,
    #[serde(rename = "-created")]
    CreatedDesc,
    #[serde(rename = "created")]
    CreatedAsc,
    /// Most severe first, then newest.
    #[serde(rename = "-severity")]
    SeverityDesc,
}

/// Filters for the queue; every one that is set must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub statuses: Vec<CaseStatus>,
    pub min_severity: Option<Severity>,
    pub source: Option<String>,
    /// A username, or `none` for unassigned cases.
    pub assignee: Option<String>,
    pub tag: Option<String>,
    /// Words that must appear in the title (case-insensitive).
    pub text: Option<String>,
    /// Include cases merged into others (hidden by default).
    pub include_merged: bool,
}

/// One page of the queue.
#[derive(Debug, Serialize)]
pub struct Page {
    pub cases: Vec<Case>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    /// The sort key of the last case on the page (time text or severity id).
    k: String,
    id: i64,
}

/// Longest page served.
pub const MAX_LIMIT: i64 = 200;

/// Most cases a title search may match for the queue to read them through the title index
/// rather than scan cases in order (a common word fills a page quickly in order).
const TITLE_INDEX_MAX: i64 = 2_000;

/// The title index's query for `text` (each word of three or more characters, as a
/// quoted trigram phrase) when it matches at most `TITLE_INDEX_MAX` cases; `None` when it
/// matches more or no word is long enough for trigrams. SQLite only.
fn few_titles_matching(conn: &mut DbConn, text: &str) -> Result<Option<String>, CaseError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let words: Vec<String> = text
        .split_whitespace()
        .take(8)
        .filter(|w| w.chars().count() >= 3)
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    if words.is_empty() {
        return Ok(None);
    }
    let expr = words.join(" AND ");
    let DbConn::Sqlite(c) = conn else {
        return Ok(None);
    };
    let count: Count = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM (SELECT rowid FROM cases_title_fts \
         WHERE cases_title_fts MATCH ? LIMIT ?)",
    )
    .bind::<diesel::sql_types::Text, _>(&expr)
    .bind::<diesel::sql_types::BigInt, _>(TITLE_INDEX_MAX + 1)
    .get_result(c)?;
    Ok((count.n <= TITLE_INDEX_MAX).then_some(expr))
}

/// Adds new cases to the SQLite title index (`cases_title_fts`); nothing on PostgreSQL,
/// whose trigram index follows the table by itself. Whoever inserts cases calls this in
/// the same transaction, after its other statements: an FTS5 table written earlier in a
/// transaction writes its pending terms out as a new segment at the start of every later
/// statement, so a trigger per case made the ingestion writer flush (and later merge) one
/// segment per new case.
pub fn index_titles(conn: &mut DbConn, case_ids: &[i64]) -> Result<(), CaseError> {
    let DbConn::Sqlite(c) = conn else {
        return Ok(());
    };
    if case_ids.is_empty() {
        return Ok(());
    }
    let ids = serde_json::to_string(case_ids).unwrap_or_else(|_| "[]".into());
    kept(
        "INSERT INTO cases_title_fts (rowid, title) SELECT id, title FROM cases \
         WHERE id IN (SELECT value FROM json_each(?))",
        (bind::<diesel::sql_types::Text, _>(ids),),
    )
    .execute(c)?;
    Ok(())
}

/// A page of cases matching `filter`, after `cursor`.
pub fn list(
    conn: &mut DbConn,
    filter: &Filter,
    sort: Sort,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page, CaseError> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let mut q = cases::table.select(CaseRow::as_select()).into_boxed();
    // SQLite plans without statistics: left alone it drives a page from whichever index
    // matches a filter and sorts every match (hundreds of ms on a million cases). So on
    // SQLite the queue steers it: the only index-usable terms are the status and a
    // redundant range on the sort key, which picks the (status, key, id) or (key, id)
    // index that reads cases already in order; the other filters (unary `+` makes a
    // column unusable for an index) are checked on the rows read. PostgreSQL keeps
    // statistics and plans the plain terms well.
    //
    // A title search for a rare word is the exception: reading cases in order would scan
    // them all to fill a page, so when the title index finds few cases, the page is read
    // from those (and sorted), with no other term usable as an index.
    let sqlite = matches!(conn, DbConn::Sqlite(_));
    let by_title = match filter.text.as_deref() {
        Some(text) if sqlite => few_titles_matching(conn, text)?,
        _ => None,
    };
    let steer = sqlite && by_title.is_none();
    if let Some(expr) = by_title {
        q = q.filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>(
                "cases.id IN (SELECT rowid FROM cases_title_fts WHERE cases_title_fts MATCH ",
            )
            .bind::<diesel::sql_types::Text, _>(expr)
            .sql(")"),
        );
        if !filter.statuses.is_empty() {
            // Status names are the enum's own words, never user text.
            let names: Vec<String> = filter
                .statuses
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            q = q.filter(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                "+cases.status IN ({})",
                names.join(", ")
            )));
        }
    } else if !filter.statuses.is_empty() {
        let names: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        q = q.filter(cases::status.eq_any(names));
    }
    if steer {
        let epoch = chrono::DateTime::UNIX_EPOCH.naive_utc();
        q = match sort {
            Sort::LastSeenDesc | Sort::LastSeenAsc => q.filter(cases::last_seen_at.gt(epoch)),
            Sort::CreatedDesc | Sort::CreatedAsc => q.filter(cases::created_at.gt(epoch)),
            Sort::SeverityDesc => q.filter(cases::severity.gt(-1)),
        };
    }
    if let Some(min) = filter.min_severity {
        q = if sqlite {
            q.filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>("+cases.severity >= ")
                    .bind::<diesel::sql_types::Integer, _>(min.id()),
            )
        } else {
            q.filter(cases::severity.ge(min.id()))
        };
    }
    if let Some(source) = &filter.source {
        let id: Option<i64> = sources::table
            .filter(sources::name.eq(source))
            .select(sources::id)
            .first(conn)
            .optional()?;
        q = q.filter(cases::source_id.eq(id.unwrap_or(-1)));
    }
    match filter.assignee.as_deref() {
        None => {}
        Some("none") if sqlite => {
            q = q.filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "+cases.assignee_id IS NULL",
            ))
        }
        Some("none") => q = q.filter(cases::assignee_id.is_null()),
        Some(name) => {
            let id: Option<i64> = users::table
                .filter(users::username.eq(name))
                .select(users::id)
                .first(conn)
                .optional()?;
            let id = id.unwrap_or(-1);
            q = if sqlite {
                q.filter(
                    diesel::dsl::sql::<diesel::sql_types::Bool>("+cases.assignee_id = ")
                        .bind::<diesel::sql_types::BigInt, _>(id),
                )
            } else {
                q.filter(cases::assignee_id.eq(id))
            };
        }
    }
    if let Some(tag) = &filter.tag {
        q = if sqlite {
            q.filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>(
                    "+cases.id IN (SELECT case_id FROM case_tags WHERE tag = ",
                )
                .bind::<diesel::sql_types::Text, _>(tag.clone())
                .sql(")"),
            )
        } else {
            q.filter(
                cases::id.eq_any(
                    case_tags::table
                        .filter(case_tags::tag.eq(tag.clone()))
                        .select(case_tags::case_id),
                ),
            )
        };
    }
    if let Some(text) = filter
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        for word in text.split_whitespace().take(8) {
            let escaped = word
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            q = q.filter(
                lower(cases::title)
                    .like(format!("%{escaped}%"))
                    .escape('\\'),
            );
        }
    }
    if !filter.include_merged {
        q = q.filter(cases::merged_into_id.is_null());
    }
    if let Some(raw) = cursor {
        let c = decode_cursor(raw)?;
        let bad = || CaseError::invalid("cursor", "is not a cursor from this listing");
        // Row values (`(key, id) < (?, ?)`) rather than `key < ? OR (key = ? AND id < ?)`:
        // both databases read them as one range of the (…, key, id) indexes, where the OR
        // form made SQLite sort every matching case for pages after the first.
        let (columns, op) = match sort {
            Sort::LastSeenDesc => ("(cases.last_seen_at, cases.id)", "<"),
            Sort::LastSeenAsc => ("(cases.last_seen_at, cases.id)", ">"),
            Sort::CreatedDesc => ("(cases.created_at, cases.id)", "<"),
            Sort::CreatedAsc => ("(cases.created_at, cases.id)", ">"),
            Sort::SeverityDesc => ("(cases.severity, cases.id)", "<"),
        };
        let head = diesel::dsl::sql::<diesel::sql_types::Bool>(&format!("{columns} {op} ("));
        q = match sort {
            Sort::SeverityDesc => {
                let s: i32 = c.k.parse().map_err(|_| bad())?;
                q.filter(
                    head.bind::<diesel::sql_types::Integer, _>(s)
                        .sql(", ")
                        .bind::<diesel::sql_types::BigInt, _>(c.id)
                        .sql(")"),
                )
            }
            _ => {
                let t = NaiveDateTime::parse_from_str(&c.k, "%Y-%m-%dT%H:%M:%S%.f")
                    .map_err(|_| bad())?;
                q.filter(
                    head.bind::<diesel::sql_types::Timestamp, _>(t)
                        .sql(", ")
                        .bind::<diesel::sql_types::BigInt, _>(c.id)
                        .sql(")"),
                )
            }
        };
    }
    q = match sort {
        Sort::LastSeenDesc => q.order((cases::last_seen_at.desc(), cases::id.desc())),
        Sort::LastSeenAsc => q.order((cases::last_seen_at.asc(), cases::id.asc())),
        Sort::CreatedDesc => q.order((cases::created_at.desc(), cases::id.desc())),
        Sort::CreatedAsc => q.order((cases::created_at.asc(), cases::id.asc())),
        Sort::SeverityDesc => q.order((cases::severity.desc(), cases::id.desc())),
    };
    let mut rows: Vec<CaseRow> = q.limit(limit + 1).load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = match (more, rows.last()) {
        (true, Some(last)) => {
            let k = match sort {
                Sort::SeverityDesc => last.severity.to_string(),
                Sort::LastSeenDesc | Sort::LastSeenAsc => last
                    .last_seen_at
                    .format("%Y-%m-%dT%H:%M:%S%.6f")
                    .to_string(),
                Sort::CreatedDesc | Sort::CreatedAsc => {
                    last.created_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
                }
            };
            Some(encode_cursor(&Cursor { k, id: last.id }))
        }
        _ => None,
    };
    Ok(Page {
        cases: hydrate(conn, rows)?,
        next_cursor,
    })
}

fn encode_cursor(c: &Cursor) -> String {
    let json = serde_json::to_vec(c).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_cursor(raw: &str) -> Result<Cursor, CaseError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| CaseError::invalid("cursor", "is not a cursor from this listing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts cases titled `title N` for N in `range`, as ingestion would (with their
    /// titles indexed).
    fn add_cases(conn: &mut DbConn, title: &str, range: std::ops::Range<i64>) {
        let DbConn::Sqlite(c) = conn else {
            unreachable!("SQLite only")
        };
        let mut ids = Vec::new();
        for n in range {
            diesel::sql_query(
                "INSERT INTO cases (title, status, severity, correlation_key, alert_count, \
                 first_seen_at, last_seen_at, created_at, updated_at) \
                 VALUES (?, 'new', 3, ?, 1, '2026-01-01 00:00:00', ?, \
                 '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
            )
            .bind::<diesel::sql_types::Text, _>(format!("{title} {n}"))
            .bind::<diesel::sql_types::Text, _>(format!("k{title}{n}"))
            .bind::<diesel::sql_types::Text, _>(format!(
                "2026-01-01 00:{:02}:{:02}",
                (n / 60) % 60,
                n % 60
            ))
            .execute(c)
            .unwrap();
            ids.push(
                diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "last_insert_rowid()",
                ))
                .get_result(c)
                .unwrap(),
            );
        }
        index_titles(conn, &ids).unwrap();
    }

    fn titles(conn: &mut DbConn, text: &str) -> Vec<String> {
        let filter = Filter {
            text: Some(text.into()),
            statuses: vec![CaseStatus::New],
            ..Filter::default()
        };
        let page = list(conn, &filter, Sort::default(), MAX_LIMIT, None).unwrap();
        page.cases.into_iter().map(|c| c.title).collect()
    }

    /// A rare word is read through the title index, a common one by scanning in order, and
    /// both give the same cases as the plain filter would; the index follows title changes.
    #[test]
    fn title_search_uses_the_index_for_rare_words_only() {
        let (_dir, db) = crate::db::scratch_sqlite();
        db.write_sync(|conn| {
            add_cases(conn, "Port scan", 0..(TITLE_INDEX_MAX + 10));
            add_cases(conn, "Kerberoasting of svc", 0..3);
            let rare = few_titles_matching(conn, "KERBEROAST svc").unwrap();
            assert_eq!(rare.as_deref(), Some("\"KERBEROAST\" AND \"svc\""));
            assert_eq!(few_titles_matching(conn, "scan").unwrap(), None);
            assert_eq!(few_titles_matching(conn, "of").unwrap(), None, "too short");

            let mut found = titles(conn, "KERBEROAST svc");
            found.sort();
            assert_eq!(
                found,
                [
                    "Kerberoasting of svc 0",
                    "Kerberoasting of svc 1",
                    "Kerberoasting of svc 2"
                ]
            );
            let common = titles(conn, "port SCAN");
            assert_eq!(common.len(), MAX_LIMIT as usize);
            assert!(
                common.iter().all(|t| t.starts_with("Port scan")),
                "{common:?}"
            );
            assert_eq!(titles(conn, "scan 2005"), ["Port scan 2005"]);

            let DbConn::Sqlite(c) = conn else {
                unreachable!()
            };
            diesel::sql_query(
                "UPDATE cases SET title = 'Golden ticket' WHERE title = 'Kerberoasting of svc 1'",
            )
            .execute(c)
            .unwrap();
            assert_eq!(titles(conn, "golden"), ["Golden ticket"]);
            assert_eq!(titles(conn, "kerberoasting").len(), 2);
            Ok::<_, CaseError>(())
        })
        .unwrap();
    }
}
