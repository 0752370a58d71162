//! Whether a loaded playbook may start runs. Admins disable a playbook (a noisy trigger,
//! a vendor outage) without editing its file or restarting; every place a run starts
//! (trigger events, schedules, manual runs, `playbook.run` children) reads the switch in
//! the transaction that would create the run, so it holds across processes at once.
//! Runs already going are not touched: cancel them if they must stop.

use super::EngineError;
use crate::audit::{self, Actor, NewEvent};
use crate::db::schema::playbook_switches;
use crate::db::{now, DbConn};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;

/// A playbook's switch as last set; playbooks never switched have none (enabled).
#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = playbook_switches)]
pub struct Switch {
    pub playbook_id: String,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub disabled_at: Option<NaiveDateTime>,
    /// The actor who last changed it (`user:ada`, `system:cli`).
    pub changed_by: String,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub changed_at: NaiveDateTime,
}

impl Switch {
    /// Whether the playbook may start runs.
    pub fn enabled(&self) -> bool {
        self.disabled_at.is_none()
    }
}

/// Whether playbook `id` is disabled.
pub fn is_disabled(conn: &mut DbConn, id: &str) -> QueryResult<bool> {
    let at: Option<Option<NaiveDateTime>> = playbook_switches::table
        .find(id)
        .select(playbook_switches::disabled_at)
        .first(conn)
        .optional()?;
    Ok(matches!(at, Some(Some(_))))
}

/// Every switch ever set, by playbook id.
pub fn all(conn: &mut DbConn) -> QueryResult<HashMap<String, Switch>> {
    let rows: Vec<Switch> = playbook_switches::table
        .select(Switch::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|s| (s.playbook_id.clone(), s))
        .collect())
}

/// Sets playbook `id` enabled or disabled as `actor`, recording `playbook.enabled` or
/// `playbook.disabled` when that changes anything. Returns whether it changed. The caller
/// checks that `id` names a playbook.
pub fn set(conn: &mut DbConn, id: &str, enabled: bool, actor: &Actor) -> Result<bool, EngineError> {
    if is_disabled(conn, id)? != enabled {
        return Ok(false);
    }
    let t = now();
    let by = format!("{}:{}", actor.kind.as_str(), actor.id);
    let disabled_at = (!enabled).then_some(t);
    let updated = diesel::update(playbook_switches::table.find(id))
        .set((
            playbook_switches::disabled_at.eq(disabled_at),
            playbook_switches::changed_by.eq(&by),
            playbook_switches::changed_at.eq(t),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(playbook_switches::table)
            .values((
                playbook_switches::playbook_id.eq(id),
                playbook_switches::disabled_at.eq(disabled_at),
                playbook_switches::changed_by.eq(&by),
                playbook_switches::changed_at.eq(t),
            ))
            .execute(conn)?;
    }
    let action = if enabled {
        "playbook.enabled"
    } else {
        "playbook.disabled"
    };
    audit::append(
        conn,
        NewEvent::new(actor, action, format!("playbook:{id}"), json!({})),
    )?;
    Ok(true)
}

/// Enables or disables loaded playbook `id` as `actor`; returns whether it changed.
pub async fn switch(
    engine: &std::sync::Arc<super::Engine>,
    id: &str,
    enabled: bool,
    actor: &Actor,
) -> Result<bool, EngineError> {
    if engine.playbook(id).is_none() {
        return Err(EngineError::PlaybookNotFound(id.to_string()));
    }
    let id = id.to_string();
    let actor = actor.clone();
    engine
        .db
        .write(move |conn| set(conn, &id, enabled, &actor))
        .await
}
