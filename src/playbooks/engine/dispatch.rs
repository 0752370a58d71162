//! Where runs come from: trigger events from the outbox (`case.created`,
//! `alert.ingested`, `case.updated`), cron schedules, and manual requests.
//!
//! Triggered runs are created only when the playbook's `condition` holds for the event's
//! case and alerts; a manual run skips the condition (a person chose to run it). Each
//! event is removed in the transaction that creates its runs, so an event yields its runs
//! once even with several processes dispatching.

use super::driver::trigger_context;
use super::store::{self, NewRun};
use super::{Engine, EngineError, Loaded};
use crate::audit::{self, Actor, NewEvent};
use crate::db::schema::playbook_schedules;
use crate::db::{now, DbConn};
use crate::events::{self, EventKind};
use crate::integrations::secrets::Secrets;
use crate::playbooks::definition::{InputType, Playbook, TriggerKind};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// The event kind a trigger listens to (schedule and manual have none).
pub fn event_kind(trigger: TriggerKind) -> Option<EventKind> {
    match trigger {
        TriggerKind::CaseCreated => Some(EventKind::CaseCreated),
        TriggerKind::CaseUpdated => Some(EventKind::CaseUpdated),
        TriggerKind::AlertIngested => Some(EventKind::AlertIngested),
        TriggerKind::Schedule | TriggerKind::Manual => None,
    }
}

/// A playbook's inputs: `given` (an object, or null) checked against the declared
/// inputs, with defaults filled in.
pub fn resolve_inputs(pb: &Playbook, given: &Value) -> Result<Value, EngineError> {
    let invalid = |field: String, reason: String| EngineError::Invalid { field, reason };
    let given = match given {
        Value::Null => Map::new(),
        Value::Object(m) => m.clone(),
        other => {
            return Err(invalid(
                "inputs".into(),
                format!("must be an object of input values, found {other}"),
            ))
        }
    };
    for name in given.keys() {
        if !pb.inputs.iter().any(|i| &i.name == name) {
            let known: Vec<&str> = pb.inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(invalid(
                format!("inputs.{name}"),
                format!(
                    "is not an input of playbook {:?} (inputs: {})",
                    pb.id,
                    known.join(", ")
                ),
            ));
        }
    }
    let mut out = Map::new();
    for def in &pb.inputs {
        let value = match given.get(&def.name) {
            Some(v) if !v.is_null() => v.clone(),
            _ => match &def.default {
                Some(d) => d.clone(),
                None if def.required => {
                    return Err(invalid(
                        format!("inputs.{}", def.name),
                        "is required".into(),
                    ))
                }
                None => Value::Null,
            },
        };
        let ok = has_type(def.kind, &value);
        if !ok {
            return Err(invalid(
                format!("inputs.{}", def.name),
                format!("must be a {:?}, found {value}", def.kind).to_lowercase(),
            ));
        }
        out.insert(def.name.clone(), value);
    }
    Ok(Value::Object(out))
}

/// Whether `value` has an input type (null fits every type: the input is unset).
pub fn has_type(kind: InputType, value: &Value) -> bool {
    matches!(
        (kind, value),
        (_, Value::Null)
            | (InputType::String, Value::String(_))
            | (InputType::Number, Value::Number(_))
            | (InputType::Boolean, Value::Bool(_))
            | (InputType::Object, Value::Object(_))
            | (InputType::Array, Value::Array(_))
    )
}

/// Creates a run in the caller's transaction and records `playbook.run_created`, with any
/// configured secret value in its inputs hidden (the run itself reads them as given).
fn create_run(
    conn: &mut DbConn,
    run: &NewRun,
    actor: &Actor,
    secrets: &Secrets,
) -> Result<i64, EngineError> {
    let id = store::insert_run(conn, run)?;
    let mut inputs = run.inputs.clone();
    secrets.redact_json(&mut inputs);
    audit::append(
        conn,
        NewEvent::new(
            actor,
            "playbook.run_created",
            format!("run:{id}"),
            json!({
                "playbook": run.playbook.id,
                "version": run.playbook.version,
                "trigger": run.trigger_kind,
                "case_id": run.case_id,
                "inputs": inputs,
                "requested_by": run.requested_by,
            }),
        ),
    )?;
    Ok(id)
}

/// A new run of a loaded playbook (no parent).
fn new_run<'a>(
    loaded: &'a Loaded,
    case_id: Option<i64>,
    trigger_kind: &'a str,
    trigger_data: &'a Value,
    inputs: &'a Value,
    requested_by: &'a str,
) -> NewRun<'a> {
    NewRun {
        playbook: &loaded.playbook,
        definition_hash: &loaded.hash,
        case_id,
        trigger_kind,
        trigger_data,
        inputs,
        requested_by,
        parent_step_run_id: None,
    }
}

/// A manual run of `playbook_id`, optionally on a case, by `actor` (recorded as the
/// requester, who may then not approve its containment steps).
pub async fn start_manual(
    engine: &Arc<Engine>,
    playbook_id: &str,
    case_id: Option<i64>,
    inputs: &Value,
    requester: &str,
    actor: &Actor,
) -> Result<i64, EngineError> {
    let loaded = engine
        .playbook(playbook_id)
        .cloned()
        .ok_or_else(|| EngineError::PlaybookNotFound(playbook_id.to_string()))?;
    let inputs = resolve_inputs(&loaded.playbook, inputs)?;
    let requester = requester.to_string();
    let actor = actor.clone();
    let secrets = engine.executor_secrets().clone();
    let id = engine
        .db
        .write(move |conn| {
            if super::switches::is_disabled(conn, &loaded.playbook.id)? {
                return Err(EngineError::PlaybookDisabled(loaded.playbook.id.clone()));
            }
            if let Some(case_id) = case_id {
                crate::cases::query::get(conn, case_id)?;
            }
            let trigger =
                json!({ "kind": "manual", "case_id": case_id, "requested_by": requester });
            create_run(
                conn,
                &new_run(&loaded, case_id, "manual", &trigger, &inputs, &requester),
                &actor,
                &secrets,
            )
        })
        .await?;
    engine.wake();
    Ok(id)
}

/// Cancels a run: a parked or pending run ends at once (through a driver); a run being
/// driven stops starting steps and ends when its in-flight calls return.
pub async fn cancel(engine: &Arc<Engine>, run_id: i64, actor: &Actor) -> Result<(), EngineError> {
    let by = format!("{}:{}", actor.kind.as_str(), actor.id);
    let actor = actor.clone();
    engine
        .db
        .write(move |conn| {
            let run = store::run(conn, run_id)?;
            if !store::request_cancel(conn, run_id, &by)? {
                return Err(EngineError::Conflict(format!(
                    "run {run_id} is already {}",
                    run.status
                )));
            }
            audit::append(
                conn,
                NewEvent::new(
                    &actor,
                    "playbook.run_cancel_requested",
                    format!("run:{run_id}"),
                    json!({}),
                ),
            )?;
            Ok(())
        })
        .await?;
    engine.wake();
    Ok(())
}

/// Turns outbox events into runs until the outbox is empty, then waits for a wake-up.
pub async fn events_loop(engine: Arc<Engine>) {
    const BATCH: i64 = 200;
    loop {
        match dispatch_events(&engine, BATCH).await {
            Ok(n) if n >= BATCH as usize => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "dispatching trigger events failed"),
        }
        tokio::select! {
            _ = engine.bus.woken() => {}
            _ = tokio::time::sleep(engine.idle_poll()) => {}
        }
    }
}

/// One batch: checks each event against the playbooks listening to its kind, then
/// removes the events and creates the runs in one transaction. Returns the events seen.
pub async fn dispatch_events(engine: &Arc<Engine>, limit: i64) -> Result<usize, EngineError> {
    let listeners: Vec<Arc<Loaded>> = {
        let mut l: Vec<Arc<Loaded>> = engine
            .playbooks()
            .filter(|l| event_kind(l.playbook.trigger.on).is_some())
            .cloned()
            .collect();
        l.sort_by(|a, b| a.playbook.id.cmp(&b.playbook.id));
        l
    };
    let max_alerts = i64::try_from(engine.settings.engine.max_context_alerts).unwrap_or(100);
    // Conditions are checked outside the write transaction, so reading cases and alerts
    // does not hold the database's write lock.
    let planned = engine
        .db
        .read(move |conn| {
            let batch = events::peek(conn, limit)?;
            let mut planned = Vec::with_capacity(batch.len());
            for ev in batch {
                let mut runs = Vec::new();
                if let Some(kind) = ev.kind {
                    let trigger = json!({
                        "kind": kind.as_str(),
                        "case_id": ev.case_id,
                        "alert_id": ev.alert_id,
                        "details": ev.details,
                    });
                    let mut ctx: Option<Value> = None;
                    for l in listeners.iter().filter(|l| event_kind(l.playbook.trigger.on) == Some(kind)) {
                        let inputs = match resolve_inputs(&l.playbook, &Value::Null) {
                            Ok(i) => i,
                            Err(e) => {
                                tracing::warn!(playbook = %l.playbook.id, error = %e, "cannot start: inputs");
                                continue;
                            }
                        };
                        let holds = match &l.condition {
                            None => true,
                            Some(cond) => {
                                if ctx.is_none() {
                                    ctx = Some(trigger_context(conn, ev.case_id, ev.alert_id, &trigger, &Value::Null, max_alerts)?);
                                }
                                let mut c = ctx.clone().unwrap_or(Value::Null);
                                if let Value::Object(m) = &mut c {
                                    m.insert("inputs".into(), inputs.clone());
                                }
                                match cond.as_ref().map_err(Clone::clone).and_then(|p| p.eval(&c)) {
                                    Ok(b) => b,
                                    Err(e) => {
                                        tracing::warn!(playbook = %l.playbook.id, error = %e, "trigger condition failed; not started");
                                        false
                                    }
                                }
                            }
                        };
                        if holds {
                            runs.push((l.clone(), trigger.clone(), inputs));
                        }
                    }
                }
                planned.push((ev, runs));
            }
            Ok::<_, EngineError>(planned)
        })
        .await?;
    let seen = planned.len();
    if seen == 0 {
        return Ok(0);
    }
    let secrets = engine.executor_secrets().clone();
    let created = engine
        .db
        .write(move |conn| {
            let mut created = 0usize;
            // Read in this transaction, so a playbook disabled meanwhile starts nothing.
            let switches = super::switches::all(conn)?;
            for (ev, runs) in &planned {
                if !events::remove(conn, ev.id)? {
                    continue;
                }
                for (loaded, trigger, inputs) in runs {
                    if switches
                        .get(&loaded.playbook.id)
                        .is_some_and(|s| !s.enabled())
                    {
                        tracing::info!(playbook = %loaded.playbook.id, event = ev.id, "playbook disabled: not started");
                        continue;
                    }
                    let kind = trigger
                        .get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or("event");
                    let actor = Actor::system("engine");
                    let by = format!("trigger:{kind}");
                    let run = new_run(loaded, ev.case_id, kind, trigger, inputs, &by);
                    create_run(conn, &run, &actor, &secrets)?;
                    created += 1;
                }
            }
            Ok::<_, EngineError>(created)
        })
        .await?;
    if created > 0 {
        engine.wake();
    }
    Ok(seen)
}

/// Fires scheduled playbooks, once per cluster per due time: the next due time is
/// advanced with a compare-and-set, and only the process whose update won creates the run.
/// After downtime, a missed schedule fires once, not once per missed time.
pub async fn schedule_loop(engine: Arc<Engine>) {
    let scheduled: Vec<(Arc<Loaded>, croner::Cron)> = engine
        .playbooks()
        .filter(|l| l.playbook.trigger.on == TriggerKind::Schedule)
        .filter_map(|l| {
            let text = l.playbook.trigger.schedule.clone()?;
            match croner::Cron::new(&text).parse() {
                Ok(c) => Some((l.clone(), c)),
                Err(e) => {
                    tracing::error!(playbook = %l.playbook.id, error = %e, "bad schedule");
                    None
                }
            }
        })
        .collect();
    if scheduled.is_empty() {
        return;
    }
    loop {
        for (loaded, cron) in &scheduled {
            if let Err(e) = fire_if_due(&engine, loaded, cron).await {
                tracing::warn!(playbook = %loaded.playbook.id, error = %e, "schedule check failed");
            }
        }
        // Sleep until the next due time (a missed or changed one was handled just now),
        // looking again at least every 5 s (the clock may move; an operator may reset a
        // schedule row).
        let t = now();
        let next = scheduled
            .iter()
            .filter_map(|(_, cron)| next_after(cron, t))
            .min()
            .and_then(|n| (n - t).to_std().ok())
            .unwrap_or(Duration::from_secs(1));
        tokio::time::sleep(
            next.clamp(Duration::from_millis(100), Duration::from_secs(5))
                + Duration::from_millis(5),
        )
        .await;
    }
}

fn next_after(cron: &croner::Cron, t: NaiveDateTime) -> Option<NaiveDateTime> {
    cron.find_next_occurrence(&t.and_utc(), false)
        .ok()
        .map(|d| d.naive_utc())
}

async fn fire_if_due(
    engine: &Arc<Engine>,
    loaded: &Arc<Loaded>,
    cron: &croner::Cron,
) -> Result<(), EngineError> {
    let id = loaded.playbook.id.clone();
    let text = loaded.playbook.trigger.schedule.clone().unwrap_or_default();
    let cron = cron.clone();
    let loaded = loaded.clone();
    let secrets = engine.executor_secrets().clone();
    let fired = engine
        .db
        .write(move |conn| {
            let t = now();
            let row: Option<(String, NaiveDateTime)> = playbook_schedules::table
                .find(&id)
                .select((
                    playbook_schedules::schedule,
                    playbook_schedules::next_fire_at,
                ))
                .first(conn)
                .optional()?;
            let Some(first) = next_after(&cron, t) else {
                return Ok(false);
            };
            let due = match row {
                None => {
                    diesel::insert_into(playbook_schedules::table)
                        .values((
                            playbook_schedules::playbook_id.eq(&id),
                            playbook_schedules::schedule.eq(&text),
                            playbook_schedules::next_fire_at.eq(first),
                        ))
                        .execute(conn)?;
                    return Ok(false);
                }
                Some((stored, _)) if stored != text => {
                    diesel::update(playbook_schedules::table.find(&id))
                        .set((
                            playbook_schedules::schedule.eq(&text),
                            playbook_schedules::next_fire_at.eq(first),
                        ))
                        .execute(conn)?;
                    return Ok(false);
                }
                Some((_, due)) => due,
            };
            if due > t {
                return Ok(false);
            }
            let won = diesel::update(
                playbook_schedules::table
                    .find(&id)
                    .filter(playbook_schedules::next_fire_at.eq(due)),
            )
            .set(playbook_schedules::next_fire_at.eq(first))
            .execute(conn)?;
            if won == 0 {
                return Ok(false);
            }
            // A disabled playbook's due time passes without a run (it is not made up later).
            if super::switches::is_disabled(conn, &id)? {
                tracing::info!(playbook = %id, "playbook disabled: scheduled run not started");
                return Ok(false);
            }
            let inputs = resolve_inputs(&loaded.playbook, &Value::Null)?;
            let trigger =
                json!({ "kind": "schedule", "scheduled_for": crate::db::utc::format(&due) });
            let run = new_run(&loaded, None, "schedule", &trigger, &inputs, "schedule");
            create_run(conn, &run, &Actor::system("scheduler"), &secrets)?;
            Ok::<_, EngineError>(true)
        })
        .await?;
    if fired {
        engine.wake();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb() -> Playbook {
        serde_norway::from_str(
            r#"
id: p
version: 1
trigger: { on: manual }
inputs:
  - { name: ip, type: string, required: true }
  - { name: days, type: number, default: 30 }
  - { name: dry_run, type: boolean }
steps: [ { id: a, uses: noop } ]
"#,
        )
        .unwrap()
    }

    #[test]
    fn inputs_get_defaults_and_are_type_checked() {
        let v = resolve_inputs(&pb(), &json!({ "ip": "10.0.0.1" })).unwrap();
        assert_eq!(v, json!({ "ip": "10.0.0.1", "days": 30, "dry_run": null }));
        let e = resolve_inputs(&pb(), &json!({})).unwrap_err().to_string();
        assert!(e.contains("inputs.ip") && e.contains("required"), "{e}");
        let e = resolve_inputs(&pb(), &json!({ "ip": 1 }))
            .unwrap_err()
            .to_string();
        assert!(e.contains("inputs.ip") && e.contains("string"), "{e}");
        let e = resolve_inputs(&pb(), &json!({ "ip": "x", "port": 1 }))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("inputs.port") && e.contains("not an input"),
            "{e}"
        );
        assert!(resolve_inputs(&pb(), &json!([1])).is_err());
    }

    #[test]
    fn schedules_fire_at_the_next_matching_minute() {
        let cron = croner::Cron::new("*/15 * * * *").parse().unwrap();
        let t = chrono::NaiveDate::from_ymd_opt(2026, 11, 25)
            .unwrap()
            .and_hms_opt(10, 7, 30)
            .unwrap();
        let next = next_after(&cron, t).unwrap();
        assert_eq!(next.format("%H:%M:%S").to_string(), "10:15:00");
    }
}
