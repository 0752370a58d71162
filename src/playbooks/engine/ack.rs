//! The `acknowledgement` built-in: a step that waits until someone acknowledges (an
//! on-call page, say), with a deadline after which the playbook escalates. It is an
//! approval gate of kind `acknowledgement`, so it shares the gates' deadline rows, the
//! scheduler that applies them, the inbox, the e-mail links and the audit trail.
//!
//! Who may acknowledge: the listed roles and users (analysts by default), in the console,
//! through the API or from the e-mailed link. Optionally a `check` asks the vendor every
//! `every` (an enrichment action, such as `pagerduty.get_incident`) and counts the matter
//! acknowledged when its condition holds on the action's output, so acknowledging in the
//! paging tool is enough, as on-call engineers expect.
//!
//! The step always succeeds; its output tells what happened:
//! `{acknowledged, by, via, at, check}`, where `via` is `console`, `api`, `email` or the
//! check's action, and `check` is the check's last output.

use crate::approvals::Approvers;
use crate::auth::Role;
use crate::playbooks::validate::duration;
use serde_json::{Map, Value};

/// The built-in's name.
pub const BUILTIN: &str = "acknowledgement";

/// Who acknowledges when the step names nobody.
pub const DEFAULT_ROLE: Role = Role::Analyst;

/// An acknowledgement step's rendered inputs.
#[derive(Debug, Clone)]
pub struct Spec {
    pub message: String,
    pub timeout: chrono::Duration,
    pub approvers: Approvers,
    /// Asked next when nobody acknowledges in time, with their own deadline.
    pub escalate_to: Option<(Approvers, chrono::Duration)>,
    pub check: Option<Check>,
}

/// The vendor's view of the acknowledgement, asked while the step waits.
#[derive(Debug, Clone)]
pub struct Check {
    /// `<integration>.<action>` (an enrichment action).
    pub uses: String,
    pub with: Map<String, Value>,
    /// A condition over `$.output` (and the run context).
    pub acknowledged: String,
    /// A JSONPath into the output naming who acknowledged, for the step's `by`.
    pub by: Option<String>,
    pub every: chrono::Duration,
}

fn field(map: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("with.{name} must be a string, found {other}")),
    }
}

fn span(map: &Map<String, Value>, name: &str) -> Result<Option<chrono::Duration>, String> {
    field(map, name)?
        .map(|text| {
            let d = duration(&text).map_err(|e| format!("with.{name}: {e}"))?;
            chrono::Duration::from_std(d).map_err(|e| format!("with.{name}: {e}"))
        })
        .transpose()
}

fn names(v: Option<&Value>, key: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{key} must list names, found {i}"))
            })
            .collect(),
        Some(other) => Err(format!("{key} must be a list, found {other}")),
    }
}

fn approvers(map: &Map<String, Value>, prefix: &str) -> Result<Approvers, String> {
    let roles = names(map.get("roles"), &format!("{prefix}roles"))?
        .iter()
        .map(|r| {
            r.parse::<Role>()
                .map_err(|_| format!("{prefix}roles: {r:?} is not a role"))
        })
        .collect::<Result<Vec<Role>, String>>()?;
    let users = names(map.get("users"), &format!("{prefix}users"))?;
    if let Some(r) = roles.iter().find(|r| **r < DEFAULT_ROLE) {
        return Err(format!(
            "{prefix}roles: {r} may not acknowledge; analysts and above may"
        ));
    }
    Ok(Approvers { roles, users })
}

impl Spec {
    /// Reads the step's `with:` values, rendered.
    pub fn parse(with: &Value) -> Result<Spec, String> {
        let map = with
            .as_object()
            .ok_or_else(|| "with must be a mapping".to_string())?;
        let message = field(map, "message")?.ok_or("with.message is missing")?;
        let timeout = span(map, "timeout")?.ok_or("with.timeout is missing")?;
        let mut who = approvers(map, "with.")?;
        if who.roles.is_empty() && who.users.is_empty() {
            who.roles = vec![DEFAULT_ROLE];
        }
        let escalate_to = match map.get("escalate_to") {
            None | Some(Value::Null) => None,
            Some(Value::Object(e)) => {
                let next = approvers(e, "with.escalate_to.")?;
                if next.roles.is_empty() && next.users.is_empty() {
                    return Err("with.escalate_to needs roles or users".into());
                }
                let t = span(e, "timeout")
                    .map_err(|m| m.replace("with.", "with.escalate_to."))?
                    .ok_or("with.escalate_to.timeout is missing")?;
                Some((next, t))
            }
            Some(other) => {
                return Err(format!("with.escalate_to must be a mapping, found {other}"))
            }
        };
        let check = match map.get("check") {
            None | Some(Value::Null) => None,
            Some(Value::Object(c)) => Some(Check::parse(c)?),
            Some(other) => return Err(format!("with.check must be a mapping, found {other}")),
        };
        Ok(Spec {
            message,
            timeout,
            approvers: who,
            escalate_to,
            check,
        })
    }
}

impl Check {
    fn parse(c: &Map<String, Value>) -> Result<Check, String> {
        for k in c.keys() {
            if !["uses", "with", "acknowledged", "by", "every"].contains(&k.as_str()) {
                return Err(format!("with.check takes no key `{k}`"));
            }
        }
        let uses = field(c, "uses")
            .map_err(|m| m.replace("with.", "with.check."))?
            .ok_or("with.check.uses is missing")?;
        let with = match c.get("with") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(w)) => w.clone(),
            Some(other) => return Err(format!("with.check.with must be a mapping, found {other}")),
        };
        let acknowledged = field(c, "acknowledged")
            .map_err(|m| m.replace("with.", "with.check."))?
            .ok_or("with.check.acknowledged is missing")?;
        let by = field(c, "by").map_err(|m| m.replace("with.", "with.check."))?;
        let every = span(c, "every")
            .map_err(|m| m.replace("with.", "with.check."))?
            .unwrap_or_else(|| chrono::Duration::minutes(1));
        if every < chrono::Duration::seconds(1) {
            return Err("with.check.every must be at least 1s".into());
        }
        Ok(Check {
            uses,
            with,
            acknowledged,
            by,
            every,
        })
    }

    /// Who acknowledged, by the `by` path over the check's output (names joined).
    pub fn who(&self, output: &Value) -> Option<String> {
        let q = crate::jsonpath::Query::parse(self.by.as_deref()?).ok()?;
        let found = q.find(output).ok()?;
        let names: Vec<String> = found
            .iter()
            .flat_map(|r| match r.clone().val() {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            })
            .filter_map(|v| match v {
                Value::String(s) if !s.is_empty() => Some(s),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .collect();
        (!names.is_empty()).then(|| names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs_parse_with_defaults_and_refusals() {
        let spec = Spec::parse(&json!({ "message": "Ack?", "timeout": "15m" })).unwrap();
        assert_eq!(spec.timeout, chrono::Duration::minutes(15));
        assert_eq!(spec.approvers.roles, vec![Role::Analyst]);
        assert!(spec.check.is_none() && spec.escalate_to.is_none());
        let spec = Spec::parse(&json!({
            "message": "Ack?", "timeout": "2s", "users": ["rex"],
            "escalate_to": { "roles": ["responder"], "timeout": "5m" },
            "check": { "uses": "pagerduty.get_incident", "with": { "incident_id": "P1" },
                       "acknowledged": "$.output.status != 'triggered'",
                       "by": "$.acknowledged_by", "every": "30s" }
        }))
        .unwrap();
        assert!(spec.approvers.roles.is_empty());
        let (next, t) = spec.escalate_to.unwrap();
        assert_eq!(
            (next.roles, t),
            (vec![Role::Responder], chrono::Duration::minutes(5))
        );
        let check = spec.check.unwrap();
        assert_eq!(check.every, chrono::Duration::seconds(30));
        assert_eq!(
            check.who(&json!({ "acknowledged_by": ["Jane Oncall", "Sam"] })),
            Some("Jane Oncall, Sam".into())
        );
        assert_eq!(check.who(&json!({ "acknowledged_by": [] })), None);
        for (bad, why) in [
            (json!({ "timeout": "1m" }), "message"),
            (json!({ "message": "x", "timeout": "soon" }), "timeout"),
            (
                json!({ "message": "x", "timeout": "1m", "roles": ["viewer"] }),
                "may not",
            ),
            (
                json!({ "message": "x", "timeout": "1m", "check": { "uses": "a.b" } }),
                "acknowledged",
            ),
            (
                json!({ "message": "x", "timeout": "1m", "check": { "uses": "a.b", "acknowledged": "true", "every": "0s" } }),
                "every",
            ),
            (
                json!({ "message": "x", "timeout": "1m", "check": { "uses": "a.b", "acknowledged": "true", "then": 1 } }),
                "then",
            ),
        ] {
            let err = Spec::parse(&bad).unwrap_err();
            assert!(err.contains(why), "{err} for {bad}");
        }
    }
}
