//! What happened on a case, read for its detail page: the playbook runs on it with their
//! steps, its approval requests, the analyst actions the audit trail recorded, one merged
//! timeline of all of these with alerts and comments, and the enrichment verdicts runs
//! recorded for each observable.
//!
//! Verdicts are read from the outputs of enrichment steps rather than kept in a table of
//! their own: a step's output is already durable and audited, and an observable is tied
//! to a step by appearing among the step's inputs.

use super::query::{AlertView, Comment};
use super::CaseError;
use crate::approvals::{self, ApprovalError, Gate};
use crate::db::schema::{
    alert_observables, alerts, audit_events, playbook_definitions, playbook_runs, step_runs,
};
use crate::db::DbConn;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Most runs, gates and audit events one case page reads; older ones are on the runs and
/// audit pages.
pub const RECENT: i64 = 100;

/// Most distinct observables listed for one case.
pub const MAX_OBSERVABLES: i64 = 500;

/// A playbook run on the case, with the steps it has reached.
#[derive(Debug, Clone, Serialize)]
pub struct RunBrief {
    pub id: i64,
    pub playbook: String,
    pub trigger: String,
    pub requested_by: String,
    pub status: String,
    pub error: Option<String>,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub finished_at: Option<NaiveDateTime>,
    pub steps: Vec<StepBrief>,
}

/// One step run (or `foreach` item) of a run.
#[derive(Debug, Clone, Serialize)]
pub struct StepBrief {
    pub step: String,
    /// The built-in or `<integration>.<action>` the step uses.
    pub uses: String,
    /// The `foreach` item's position.
    pub index: Option<i32>,
    pub status: String,
    pub error: Option<String>,
    #[serde(skip)]
    input: Option<Value>,
    #[serde(skip)]
    item: Option<Value>,
    #[serde(skip)]
    output: Option<Value>,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub finished_at: Option<NaiveDateTime>,
}

/// One line of the case timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub at: NaiveDateTime,
    /// `alert`, `comment`, `action`, `run`, `step` or `approval`.
    pub kind: &'static str,
    pub title: String,
    pub detail: Option<String>,
    pub actor: Option<String>,
    /// A console path with more about the entry.
    pub link: Option<String>,
}

/// An observable seen in the case's alerts, with the verdicts runs recorded for it.
#[derive(Debug, Clone, Serialize)]
pub struct ObservableVerdicts {
    pub kind: String,
    pub value: String,
    pub roles: Vec<String>,
    /// How many of the case's alerts carry it.
    pub alerts: usize,
    pub verdicts: Vec<Verdict>,
}

/// What one enrichment step said about an observable.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    /// The action that gave it (`virustotal.file_report`).
    pub source: String,
    /// `malicious`, `suspicious`, `clean` or `unknown`.
    pub verdict: &'static str,
    /// The figures behind it (`malicious 12, suspicious 1`).
    pub summary: String,
    pub run_id: i64,
    pub step: String,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub at: Option<NaiveDateTime>,
}

/// Everything besides the case row, its alerts and comments that its page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    pub runs: Vec<RunBrief>,
    pub gates: Vec<Gate>,
    pub observables: Vec<ObservableVerdicts>,
    /// Newest first.
    pub timeline: Vec<Entry>,
}

type RunTuple = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    NaiveDateTime,
    Option<NaiveDateTime>,
    String,
);

type StepTuple = (
    i64,
    String,
    i32,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<NaiveDateTime>,
);

/// Reads the activity of case `id`; `alerts` and `comments` are what the page already
/// loaded (the timeline includes them).
pub fn read(
    conn: &mut DbConn,
    id: i64,
    alerts_shown: &[AlertView],
    comments: &[Comment],
) -> Result<Activity, CaseError> {
    let runs = runs(conn, id)?;
    let gates = gates(conn, id)?;
    let observables = observables(conn, id, &runs)?;
    let actions = audit_entries(conn, id)?;
    let mut timeline = actions;
    for a in alerts_shown {
        timeline.push(Entry {
            at: a.received_at,
            kind: "alert",
            title: format!("Alert: {}", a.title),
            detail: Some(match a.occurrences {
                1 => format!("{} {}", a.vendor, a.product),
                n => format!("{} {}, seen {n} times", a.vendor, a.product),
            }),
            actor: a.source.clone(),
            link: Some(format!("/cases/{id}/alerts/{}", a.id)),
        });
    }
    for c in comments {
        timeline.push(Entry {
            at: c.created_at,
            kind: "comment",
            title: "Comment".into(),
            detail: Some(c.body.clone()),
            actor: Some(c.author.clone()),
            link: None,
        });
    }
    for r in &runs {
        timeline.push(Entry {
            at: r.created_at,
            kind: "run",
            title: format!("Playbook {} started ({})", r.playbook, r.trigger),
            detail: None,
            actor: Some(r.requested_by.clone()),
            link: Some(format!("/runs/{}", r.id)),
        });
        for s in &r.steps {
            if let Some(at) = s.finished_at {
                let which = match s.index {
                    Some(i) => format!("{} [{i}]", s.step),
                    None => s.step.clone(),
                };
                timeline.push(Entry {
                    at,
                    kind: "step",
                    title: format!("{}: step {which} ({}) {}", r.playbook, s.uses, s.status),
                    detail: s.error.clone(),
                    actor: None,
                    link: Some(format!("/runs/{}", r.id)),
                });
            }
        }
        if let Some(at) = r.finished_at {
            timeline.push(Entry {
                at,
                kind: "run",
                title: format!("Playbook {} {}", r.playbook, r.status),
                detail: r.error.clone(),
                actor: None,
                link: Some(format!("/runs/{}", r.id)),
            });
        }
    }
    for g in &gates {
        timeline.push(Entry {
            at: g.created_at,
            kind: "approval",
            title: format!("Approval requested: {}", g.action),
            detail: Some(g.message.clone()),
            actor: None,
            link: Some("/approvals".into()),
        });
        for d in &g.decisions {
            timeline.push(Entry {
                at: d.at,
                kind: "approval",
                title: format!("{} {}: {}", d.user, past(&d.decision), g.action),
                detail: d.comment.clone().filter(|c| !c.is_empty()),
                actor: Some(d.user.clone()),
                link: None,
            });
        }
    }
    // Newest first; a stable sort keeps entries of the same instant in gathering order.
    timeline.sort_by_key(|e| std::cmp::Reverse(e.at));
    Ok(Activity {
        runs,
        gates,
        observables,
        timeline,
    })
}

fn past(decision: &str) -> &str {
    match decision {
        "approve" => "approved",
        "reject" => "rejected",
        other => other,
    }
}

fn runs(conn: &mut DbConn, id: i64) -> Result<Vec<RunBrief>, CaseError> {
    let rows: Vec<RunTuple> = playbook_runs::table
        .filter(playbook_runs::case_id.eq(id))
        .order(playbook_runs::id.desc())
        .limit(RECENT)
        .select((
            playbook_runs::id,
            playbook_runs::playbook_id,
            playbook_runs::trigger_kind,
            playbook_runs::requested_by,
            playbook_runs::status,
            playbook_runs::error,
            playbook_runs::created_at,
            playbook_runs::finished_at,
            playbook_runs::definition_hash,
        ))
        .load(conn)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let run_ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let mut hashes: Vec<String> = rows.iter().map(|r| r.8.clone()).collect();
    hashes.sort();
    hashes.dedup();
    // Which action each step uses, from the definition each run started with.
    let mut uses: HashMap<(String, String), String> = HashMap::new();
    for (hash, text) in playbook_definitions::table
        .filter(playbook_definitions::hash.eq_any(&hashes))
        .select((playbook_definitions::hash, playbook_definitions::definition))
        .load::<(String, String)>(conn)?
    {
        let def: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        for step in def["steps"].as_array().into_iter().flatten() {
            if let (Some(sid), Some(u)) = (step["id"].as_str(), step["uses"].as_str()) {
                uses.insert((hash.clone(), sid.to_string()), u.to_string());
            }
        }
    }
    let mut steps: HashMap<i64, Vec<StepTuple>> = HashMap::new();
    for s in step_runs::table
        .filter(step_runs::run_id.eq_any(&run_ids))
        .order((step_runs::run_id, step_runs::id))
        .select((
            step_runs::run_id,
            step_runs::step_id,
            step_runs::item_index,
            step_runs::status,
            step_runs::error,
            step_runs::input,
            step_runs::item,
            step_runs::output,
            step_runs::finished_at,
        ))
        .load::<StepTuple>(conn)?
    {
        steps.entry(s.0).or_default().push(s);
    }
    let parse = |t: Option<String>| t.and_then(|t| serde_json::from_str::<Value>(&t).ok());
    Ok(rows
        .into_iter()
        .map(|r| {
            let hash = r.8;
            let steps = steps
                .remove(&r.0)
                .unwrap_or_default()
                .into_iter()
                .map(|s| StepBrief {
                    uses: uses
                        .get(&(hash.clone(), s.1.clone()))
                        .cloned()
                        .unwrap_or_default(),
                    step: s.1,
                    index: (s.2 >= 0).then_some(s.2),
                    status: s.3,
                    error: s.4,
                    input: parse(s.5),
                    item: parse(s.6),
                    output: parse(s.7),
                    finished_at: s.8,
                })
                .collect();
            RunBrief {
                id: r.0,
                playbook: r.1,
                trigger: r.2,
                requested_by: r.3,
                status: r.4,
                error: r.5,
                created_at: r.6,
                finished_at: r.7,
                steps,
            }
        })
        .collect())
}

/// The approval requests raised by runs on case `id`, newest first, with their decisions.
fn gates(conn: &mut DbConn, id: i64) -> Result<Vec<Gate>, CaseError> {
    approvals::for_case(conn, id, RECENT).map_err(|err| match err {
        ApprovalError::Db(err) => CaseError::Db(err),
        ApprovalError::Audit(err) => CaseError::Audit(err),
        // Reading gates raises nothing else.
        other => CaseError::Conflict(other.to_string()),
    })
}

/// Analyst and system actions on the case, as the audit trail recorded them. Comments
/// are left out: the timeline shows them with their text.
fn audit_entries(conn: &mut DbConn, id: i64) -> Result<Vec<Entry>, CaseError> {
    let rows: Vec<(NaiveDateTime, String, String, String, String)> = audit_events::table
        .filter(audit_events::target.eq(format!("case:{id}")))
        .filter(audit_events::action.ne("case.commented"))
        .order(audit_events::seq.desc())
        .limit(RECENT)
        .select((
            audit_events::occurred_at,
            audit_events::actor_kind,
            audit_events::actor_id,
            audit_events::action,
            audit_events::details,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(at, kind, actor, action, details)| {
            let details: Value = serde_json::from_str(&details).unwrap_or(Value::Null);
            Entry {
                at,
                kind: "action",
                title: describe(&action, &details),
                detail: None,
                actor: Some(format!("{kind}:{actor}")),
                link: None,
            }
        })
        .collect())
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "none".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A sentence for an audited case action.
pub fn describe(action: &str, d: &Value) -> String {
    match action {
        "case.created" => "Case opened".into(),
        "case.assigned" => match &d["to"] {
            Value::Null => "Unassigned".into(),
            to => format!("Assigned to {}", text(to)),
        },
        "case.merged" => match (&d["into"], &d["merged"]) {
            (Value::Null, Value::Array(ids)) => format!(
                "Merged case(s) {} into this one",
                ids.iter().map(text).collect::<Vec<_>>().join(", ")
            ),
            (into, _) => format!("Merged into case {}", text(into)),
        },
        "case.updated" => {
            let mut parts = Vec::new();
            if let Some(map) = d.as_object() {
                for (field, change) in map {
                    if field == "tags" {
                        let list = |k: &str| {
                            change[k]
                                .as_array()
                                .map(|a| a.iter().map(text).collect::<Vec<_>>())
                                .unwrap_or_default()
                        };
                        let (added, removed) = (list("added"), list("removed"));
                        if !added.is_empty() {
                            parts.push(format!("tagged {}", added.join(", ")));
                        }
                        if !removed.is_empty() {
                            parts.push(format!("untagged {}", removed.join(", ")));
                        }
                    } else {
                        parts.push(format!(
                            "{field} {} → {}",
                            text(&change["from"]),
                            text(&change["to"])
                        ));
                    }
                }
            }
            if parts.is_empty() {
                "Updated".into()
            } else {
                format!("Changed {}", parts.join("; "))
            }
        }
        other => other.to_string(),
    }
}

fn observables(
    conn: &mut DbConn,
    id: i64,
    runs: &[RunBrief],
) -> Result<Vec<ObservableVerdicts>, CaseError> {
    let rows: Vec<(i64, String, String, String)> = alert_observables::table
        .inner_join(alerts::table)
        .filter(alerts::case_id.eq(id))
        .order((alert_observables::kind, alert_observables::value))
        .limit(MAX_OBSERVABLES * 4)
        .select((
            alert_observables::alert_id,
            alert_observables::kind,
            alert_observables::value,
            alert_observables::role,
        ))
        .load(conn)?;
    let mut found: BTreeMap<(String, String), (Vec<String>, Vec<i64>)> = BTreeMap::new();
    for (alert, kind, value, role) in rows {
        let entry = found.entry((kind, value)).or_default();
        if !role.is_empty() && !entry.0.contains(&role) {
            entry.0.push(role);
        }
        if !entry.1.contains(&alert) {
            entry.1.push(alert);
        }
    }
    Ok(found
        .into_iter()
        .take(usize::try_from(MAX_OBSERVABLES).unwrap_or(usize::MAX))
        .map(|((kind, value), (roles, alerts))| ObservableVerdicts {
            verdicts: verdicts_for(&value, runs),
            kind,
            value,
            roles,
            alerts: alerts.len(),
        })
        .collect())
}

/// The verdicts of succeeded steps that took `value` as an input (or item).
fn verdicts_for(value: &str, runs: &[RunBrief]) -> Vec<Verdict> {
    let mut out = Vec::new();
    for r in runs {
        for s in &r.steps {
            if s.status != "succeeded" {
                continue;
            }
            let Some(output) = &s.output else { continue };
            let mentions = [&s.input, &s.item]
                .into_iter()
                .flatten()
                .any(|v| mentions(v, value));
            if !mentions {
                continue;
            }
            if let Some((verdict, summary)) = judge(output) {
                out.push(Verdict {
                    source: if s.uses.is_empty() {
                        s.step.clone()
                    } else {
                        s.uses.clone()
                    },
                    verdict,
                    summary,
                    run_id: r.id,
                    step: s.step.clone(),
                    at: s.finished_at,
                });
            }
        }
    }
    out
}

/// Whether a string in `v` is `value` (ignoring case and surrounding space).
fn mentions(v: &Value, value: &str) -> bool {
    match v {
        Value::String(s) => s.trim().eq_ignore_ascii_case(value.trim()),
        Value::Array(items) => items.iter().any(|i| mentions(i, value)),
        Value::Object(map) => map.values().any(|i| mentions(i, value)),
        _ => false,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads a verdict from an enrichment step's output: an explicit `verdict`, engine counts
/// (`malicious`, `suspicious`, `harmless`, as VirusTotal gives), a `malicious` flag (as
/// urlscan.io gives), or a 0–100 confidence `score` (as AbuseIPDB gives). Outputs with
/// none of these are not verdicts.
pub fn judge(output: &Value) -> Option<(&'static str, String)> {
    let o = output.as_object()?;
    if let Some(v) = o.get("verdict").and_then(Value::as_str) {
        let word = match v.to_lowercase().as_str() {
            "malicious" | "bad" => "malicious",
            "suspicious" => "suspicious",
            "clean" | "benign" | "harmless" | "good" => "clean",
            _ => "unknown",
        };
        return Some((word, v.to_string()));
    }
    match o.get("malicious") {
        Some(Value::Bool(b)) => {
            let summary = match o.get("score").and_then(number) {
                Some(s) => format!("malicious {b}, score {s}"),
                None => format!("malicious {b}"),
            };
            return Some((if *b { "malicious" } else { "clean" }, summary));
        }
        Some(m) if number(m).is_some() => {
            let m = number(m).unwrap_or(0.0);
            let s = o.get("suspicious").and_then(number).unwrap_or(0.0);
            let mut summary = format!("malicious {m}, suspicious {s}");
            if let Some(h) = o.get("harmless").and_then(number) {
                summary.push_str(&format!(", harmless {h}"));
            }
            let verdict = if m > 0.0 {
                "malicious"
            } else if s > 0.0 {
                "suspicious"
            } else {
                "clean"
            };
            return Some((verdict, summary));
        }
        _ => {}
    }
    let score = o.get("score").and_then(number)?;
    let verdict = if score >= 75.0 {
        "malicious"
    } else if score >= 25.0 {
        "suspicious"
    } else {
        "clean"
    };
    Some((verdict, format!("score {score}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn verdicts_come_from_counts_flags_scores_or_words() {
        assert_eq!(
            judge(&json!({ "malicious": 12, "suspicious": 1, "harmless": 50 })),
            Some((
                "malicious",
                "malicious 12, suspicious 1, harmless 50".into()
            ))
        );
        assert_eq!(
            judge(&json!({ "malicious": 0, "suspicious": 2 })).map(|v| v.0),
            Some("suspicious")
        );
        assert_eq!(
            judge(&json!({ "malicious": false, "score": -20 })).map(|v| v.0),
            Some("clean")
        );
        assert_eq!(
            judge(&json!({ "score": 90 })).map(|v| v.0),
            Some("malicious")
        );
        assert_eq!(
            judge(&json!({ "score": "30" })).map(|v| v.0),
            Some("suspicious")
        );
        assert_eq!(
            judge(&json!({ "verdict": "Benign" })),
            Some(("clean", "Benign".into()))
        );
        assert_eq!(judge(&json!({ "status": 200 })), None);
        assert_eq!(judge(&json!("hello")), None);
    }

    #[test]
    fn an_observable_is_found_anywhere_in_inputs() {
        let input = json!({ "ip": "203.0.113.9", "nested": { "list": ["EVIL.example"] } });
        assert!(mentions(&input, "203.0.113.9"));
        assert!(mentions(&input, "evil.example"));
        assert!(!mentions(&input, "203.0.113"));
    }

    #[test]
    fn audited_changes_read_as_sentences() {
        assert_eq!(
            describe(
                "case.updated",
                &json!({ "status": { "from": "new", "to": "triage" }, "tags": { "added": ["x"], "removed": [] } })
            ),
            "Changed status new → triage; tagged x"
        );
        assert_eq!(
            describe("case.assigned", &json!({ "from": null, "to": "ann" })),
            "Assigned to ann"
        );
        assert_eq!(
            describe("case.merged", &json!({ "into": 4, "alerts": 2 })),
            "Merged into case 4"
        );
        assert_eq!(
            describe(
                "case.merged",
                &json!({ "merged": [2, 3], "alert_count": 5 })
            ),
            "Merged case(s) 2, 3 into this one"
        );
    }
}
