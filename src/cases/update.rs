//! Analyst changes to cases: status, severity, title, assignee, tags, comments, merges.
//! Each runs in the caller's transaction and appends its audit event there.

use super::query::{self, Comment};
use super::record::due_times;
use super::{Case, CaseError, CaseStatus, Disposition};
use crate::alert::Severity;
use crate::audit::{self, Actor, NewEvent};
use crate::config::CasesConfig;
use crate::db::schema::{alerts, case_comments, case_tags, cases, users};
use crate::db::{last_insert_id, now, DbConn};
use crate::events::{Bus, EventKind};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Fields to change; absent ones stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseChange {
    pub title: Option<String>,
    pub status: Option<CaseStatus>,
    /// Required when `status` is `closed`.
    pub disposition: Option<Disposition>,
    pub severity: Option<Severity>,
    pub add_tags: Option<Vec<String>>,
    pub remove_tags: Option<Vec<String>>,
}

/// Longest tag accepted.
const MAX_TAG: usize = 64;

fn clean_tag(tag: &str) -> Result<String, CaseError> {
    let t = tag.trim().to_lowercase();
    if t.is_empty() || t.len() > MAX_TAG || t.chars().any(|c| c.is_control() || c == ',') {
        return Err(CaseError::invalid(
            "tags",
            format!("{tag:?} must be 1 to {MAX_TAG} characters, without commas"),
        ));
    }
    Ok(t)
}

/// Applies a change and records `case.updated` with what changed (from → to), as an
/// audit event and as the event playbooks listen to.
pub fn apply(
    conn: &mut DbConn,
    config: &CasesConfig,
    bus: &Bus,
    actor: &Actor,
    id: i64,
    change: CaseChange,
) -> Result<Case, CaseError> {
    let before = query::get(conn, id)?;
    let t = now();
    let mut changed = Map::new();

    if let Some(title) = change.title.as_deref().map(str::trim) {
        if title.is_empty() || title.len() > 500 {
            return Err(CaseError::invalid("title", "must be 1 to 500 characters"));
        }
        if title != before.title {
            diesel::update(cases::table.find(id))
                .set(cases::title.eq(title))
                .execute(conn)?;
            changed.insert("title".into(), json!({ "from": before.title, "to": title }));
        }
    }

    if change.disposition.is_some()
        && change.status != Some(CaseStatus::Closed)
        && before.status != CaseStatus::Closed
    {
        return Err(CaseError::invalid(
            "disposition",
            "is set only when closing a case (status: closed)",
        ));
    }
    if let Some(status) = change.status {
        if status == CaseStatus::Closed
            && change.disposition.is_none()
            && before.status != CaseStatus::Closed
        {
            return Err(CaseError::invalid(
                "disposition",
                "is required to close a case: true_positive, false_positive, benign or duplicate",
            ));
        }
        if status != before.status {
            let disposition = if status == CaseStatus::Closed {
                change.disposition
            } else {
                None
            };
            diesel::update(cases::table.find(id))
                .set((
                    cases::status.eq(status.as_str()),
                    cases::disposition.eq(disposition.map(|d| d.as_str())),
                ))
                .execute(conn)?;
            // The first move out of `new` is the acknowledgement (MTTA); reaching
            // resolved or closed stamps resolution (MTTR); reopening clears them.
            if before.acknowledged_at.is_none() && status != CaseStatus::New {
                diesel::update(cases::table.find(id))
                    .set(cases::acknowledged_at.eq(t))
                    .execute(conn)?;
            }
            if !status.is_open() && before.resolved_at.is_none() {
                diesel::update(cases::table.find(id))
                    .set(cases::resolved_at.eq(t))
                    .execute(conn)?;
            }
            if status.is_open() {
                diesel::update(cases::table.find(id))
                    .set((
                        cases::resolved_at.eq(None::<chrono::NaiveDateTime>),
                        cases::closed_at.eq(None::<chrono::NaiveDateTime>),
                    ))
                    .execute(conn)?;
            }
            if status == CaseStatus::Closed {
                diesel::update(cases::table.find(id))
                    .set(cases::closed_at.eq(t))
                    .execute(conn)?;
            }
            changed.insert(
                "status".into(),
                json!({ "from": before.status, "to": status }),
            );
            if disposition.is_some() || before.disposition.is_some() {
                changed.insert(
                    "disposition".into(),
                    json!({ "from": before.disposition, "to": disposition }),
                );
            }
        } else if let (CaseStatus::Closed, Some(d)) = (status, change.disposition) {
            if Some(d) != before.disposition {
                diesel::update(cases::table.find(id))
                    .set(cases::disposition.eq(d.as_str()))
                    .execute(conn)?;
                changed.insert(
                    "disposition".into(),
                    json!({ "from": before.disposition, "to": d }),
                );
            }
        }
    }

    if let Some(severity) = change.severity {
        if severity != before.severity {
            let (ack_due, resolve_due) = due_times(config, severity, before.created_at);
            diesel::update(cases::table.find(id))
                .set((
                    cases::severity.eq(severity.id()),
                    cases::ack_due_at.eq(ack_due),
                    cases::resolve_due_at.eq(resolve_due),
                ))
                .execute(conn)?;
            changed.insert(
                "severity".into(),
                json!({ "from": before.severity, "to": severity }),
            );
        }
    }

    let mut added = Vec::new();
    for tag in change.add_tags.unwrap_or_default() {
        let tag = clean_tag(&tag)?;
        if !before.tags.contains(&tag) && !added.contains(&tag) {
            diesel::insert_into(case_tags::table)
                .values((case_tags::case_id.eq(id), case_tags::tag.eq(&tag)))
                .execute(conn)?;
            added.push(tag);
        }
    }
    let mut removed = Vec::new();
    for tag in change.remove_tags.unwrap_or_default() {
        let tag = clean_tag(&tag)?;
        let n = diesel::delete(
            case_tags::table
                .filter(case_tags::case_id.eq(id))
                .filter(case_tags::tag.eq(&tag)),
        )
        .execute(conn)?;
        if n > 0 {
            removed.push(tag);
        }
    }
    if !added.is_empty() || !removed.is_empty() {
        changed.insert("tags".into(), json!({ "added": added, "removed": removed }));
    }

    if !changed.is_empty() {
        diesel::update(cases::table.find(id))
            .set(cases::updated_at.eq(t))
            .execute(conn)?;
        let changed = Value::Object(changed);
        emit_updated(conn, bus, actor, id, &changed)?;
        audit::append(
            conn,
            NewEvent::new(actor, "case.updated", format!("case:{id}"), changed),
        )?;
    }
    query::get(conn, id)
}

/// Writes the `case.updated` trigger. Changes made by playbooks fire none, so a playbook
/// that updates cases cannot trigger itself in a loop.
fn emit_updated(
    conn: &mut DbConn,
    bus: &Bus,
    actor: &Actor,
    id: i64,
    changed: &Value,
) -> Result<(), CaseError> {
    if actor.kind != audit::ActorKind::Playbook {
        let details =
            json!({ "by": format!("{}:{}", actor.kind.as_str(), actor.id), "changed": changed });
        bus.emit(conn, EventKind::CaseUpdated, Some(id), None, &details)?;
    }
    Ok(())
}

/// Assigns the case to a user (`None` unassigns) and records `case.assigned`.
pub fn assign(
    conn: &mut DbConn,
    bus: &Bus,
    actor: &Actor,
    id: i64,
    assignee: Option<&str>,
) -> Result<Case, CaseError> {
    let before = query::get(conn, id)?;
    let user_id = match assignee {
        Some(name) => {
            let found: Option<(i64, Option<chrono::NaiveDateTime>)> = users::table
                .filter(users::username.eq(name))
                .select((users::id, users::disabled_at))
                .first(conn)
                .optional()?;
            match found {
                Some((uid, None)) => Some(uid),
                Some((_, Some(_))) => {
                    return Err(CaseError::invalid(
                        "assignee",
                        format!("{name:?} is disabled"),
                    ))
                }
                None => return Err(CaseError::invalid("assignee", format!("no user {name:?}"))),
            }
        }
        None => None,
    };
    if before.assignee.as_deref() == assignee {
        return Ok(before);
    }
    diesel::update(cases::table.find(id))
        .set((cases::assignee_id.eq(user_id), cases::updated_at.eq(now())))
        .execute(conn)?;
    let changed = json!({ "assignee": { "from": before.assignee, "to": assignee } });
    emit_updated(conn, bus, actor, id, &changed)?;
    audit::append(
        conn,
        NewEvent::new(
            actor,
            "case.assigned",
            format!("case:{id}"),
            json!({ "from": before.assignee, "to": assignee }),
        ),
    )?;
    query::get(conn, id)
}

/// Adds a comment and records `case.commented`.
pub fn comment(
    conn: &mut DbConn,
    actor: &Actor,
    id: i64,
    body: &str,
) -> Result<Comment, CaseError> {
    let body = body.trim();
    if body.is_empty() || body.len() > 20_000 {
        return Err(CaseError::invalid("body", "must be 1 to 20000 characters"));
    }
    query::get(conn, id)?;
    let author = format!("{}:{}", actor.kind.as_str(), actor.id);
    diesel::insert_into(case_comments::table)
        .values((
            case_comments::case_id.eq(id),
            case_comments::author.eq(&author),
            case_comments::body.eq(body),
            case_comments::created_at.eq(now()),
        ))
        .execute(conn)?;
    let comment_id = last_insert_id(conn)?;
    diesel::update(cases::table.find(id))
        .set(cases::updated_at.eq(now()))
        .execute(conn)?;
    audit::append(
        conn,
        NewEvent::new(
            actor,
            "case.commented",
            format!("case:{id}"),
            json!({ "comment_id": comment_id, "length": body.len() }),
        ),
    )?;
    Ok(case_comments::table
        .find(comment_id)
        .select(Comment::as_select())
        .first(conn)?)
}

/// Merges `others` into `target`: their alerts, comments and tags move over, the target
/// takes the highest severity and earliest first sighting, and each merged case is closed
/// as a duplicate pointing at the target. Records `case.merged` on every case involved.
pub fn merge(
    conn: &mut DbConn,
    actor: &Actor,
    target: i64,
    others: &[i64],
) -> Result<Case, CaseError> {
    if others.is_empty() {
        return Err(CaseError::invalid(
            "cases",
            "name at least one case to merge",
        ));
    }
    let into = query::get(conn, target)?;
    if let Some(parent) = into.merged_into {
        return Err(CaseError::Conflict(format!(
            "case {target} was itself merged into case {parent}"
        )));
    }
    let t = now();
    let mut severity = into.severity;
    let mut first_seen = into.first_seen_at;
    let mut last_seen = into.last_seen_at;
    let mut tags = into.tags.clone();
    for &other in others {
        if other == target {
            return Err(CaseError::invalid(
                "cases",
                "a case cannot be merged into itself",
            ));
        }
        let from = query::get(conn, other)?;
        if let Some(parent) = from.merged_into {
            return Err(CaseError::Conflict(format!(
                "case {other} is already merged into case {parent}"
            )));
        }
        severity = severity.max(from.severity);
        first_seen = first_seen.min(from.first_seen_at);
        last_seen = last_seen.max(from.last_seen_at);
        diesel::update(alerts::table.filter(alerts::case_id.eq(other)))
            .set(alerts::case_id.eq(target))
            .execute(conn)?;
        diesel::update(case_comments::table.filter(case_comments::case_id.eq(other)))
            .set(case_comments::case_id.eq(target))
            .execute(conn)?;
        for tag in &from.tags {
            if !tags.contains(tag) {
                diesel::insert_into(case_tags::table)
                    .values((case_tags::case_id.eq(target), case_tags::tag.eq(tag)))
                    .execute(conn)?;
                tags.push(tag.clone());
            }
        }
        diesel::update(cases::table.find(other))
            .set((
                cases::status.eq(CaseStatus::Closed.as_str()),
                cases::disposition.eq(Disposition::Duplicate.as_str()),
                cases::merged_into_id.eq(target),
                cases::alert_count.eq(0),
                cases::closed_at.eq(t),
                cases::resolved_at.eq(from.resolved_at.unwrap_or(t)),
                cases::updated_at.eq(t),
            ))
            .execute(conn)?;
        audit::append(
            conn,
            NewEvent::new(
                actor,
                "case.merged",
                format!("case:{other}"),
                json!({ "into": target, "alerts": from.alert_count }),
            ),
        )?;
    }
    let alert_count: i64 = alerts::table
        .filter(alerts::case_id.eq(target))
        .count()
        .get_result(conn)?;
    diesel::update(cases::table.find(target))
        .set((
            cases::severity.eq(severity.id()),
            cases::first_seen_at.eq(first_seen),
            cases::last_seen_at.eq(last_seen),
            cases::alert_count.eq(i32::try_from(alert_count).unwrap_or(i32::MAX)),
            cases::updated_at.eq(t),
        ))
        .execute(conn)?;
    audit::append(
        conn,
        NewEvent::new(
            actor,
            "case.merged",
            format!("case:{target}"),
            json!({ "merged": others, "alert_count": alert_count }),
        ),
    )?;
    query::get(conn, target)
}
