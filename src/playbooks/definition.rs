//! Playbook files (`playbooks/<id>.yaml`) as typed values. Unknown keys are refused by
//! the parser; meaning (references, cycles, actions, expressions) is checked by
//! [`super::validate`].

use crate::auth::Role;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One playbook.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// Identifier: `a-z 0-9 - _`, unique among playbooks.
    pub id: String,
    /// Increases with every change; runs record the version they ran.
    pub version: u32,
    #[serde(default)]
    pub description: Option<String>,
    pub trigger: Trigger,
    /// A condition on the run context; the playbook runs only when it holds.
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub inputs: Vec<InputDef>,
    pub steps: Vec<Step>,
}

/// What starts a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    pub on: TriggerKind,
    /// Cron expression (5 fields, UTC) for `on: schedule`.
    #[serde(default)]
    pub schedule: Option<String>,
}

/// Trigger events.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum TriggerKind {
    #[serde(rename = "case.created")]
    CaseCreated,
    #[serde(rename = "case.updated")]
    CaseUpdated,
    #[serde(rename = "alert.ingested")]
    AlertIngested,
    #[serde(rename = "schedule")]
    Schedule,
    #[serde(rename = "manual")]
    Manual,
}

/// A declared input of a playbook (given by a manual run or `playbook.run`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputDef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: InputType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default)]
    pub description: Option<String>,
}

/// JSON types an input may have.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    String,
    Number,
    Boolean,
    Object,
    Array,
}

/// One step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Identifier within the playbook; outputs are `$.steps.<id>.output`.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// A built-in (`case.comment`, ...) or `<integration>.<action>`.
    pub uses: String,
    /// Inputs; strings are templates.
    #[serde(default)]
    pub with: BTreeMap<String, Value>,
    /// Run only when this condition holds; otherwise the step is skipped.
    #[serde(default, rename = "if")]
    pub condition: Option<String>,
    /// Run once per element of the JSONPath's results, each as `$.item`.
    #[serde(default)]
    pub foreach: Option<String>,
    #[serde(default)]
    pub retry: Option<Retry>,
    /// Longest one attempt may take, e.g. `30s`.
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Steps that must finish first; steps without `needs` follow the previous step.
    #[serde(default)]
    pub needs: Option<Vec<String>>,
    /// Output name → template; the step's own result is `$.steps.<this id>.output`.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// A template whose value identifies the side effect, so a step caught mid-flight by
    /// a crash can be retried safely (the vendor de-duplicates on it).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The approval gate for a containment action.
    #[serde(default)]
    pub approval: Option<Approval>,
    /// Run a containment action without approval; needs `playbooks.allow_approval_waivers`.
    #[serde(default)]
    pub waive_approval: bool,
}

/// Retries after a failed attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Total attempts, including the first.
    pub attempts: u32,
    /// Wait before the second attempt, doubling each time, e.g. `2s`.
    #[serde(default = "default_backoff")]
    pub backoff: String,
    /// Cap on the doubled wait.
    #[serde(default)]
    pub max_backoff: Option<String>,
}

fn default_backoff() -> String {
    "1s".into()
}

/// What a failed step (after its retries) does to the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OnFailure {
    /// Fail the run (the default).
    #[default]
    Stop,
    /// Record the failure and go on as if the step succeeded with no output.
    Continue,
    /// Go to another step.
    Goto(String),
}

impl Serialize for OnFailure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            OnFailure::Stop => s.serialize_str("stop"),
            OnFailure::Continue => s.serialize_str("continue"),
            OnFailure::Goto(step) => s.serialize_str(&format!("goto:{step}")),
        }
    }
}

impl<'de> Deserialize<'de> for OnFailure {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "stop" => Ok(OnFailure::Stop),
            "continue" => Ok(OnFailure::Continue),
            other => match other.strip_prefix("goto:").map(str::trim) {
                Some(step) if !step.is_empty() => Ok(OnFailure::Goto(step.to_string())),
                _ => Err(serde::de::Error::custom(format!(
                    "on_failure must be stop, continue or goto:<step id>, not {other:?}"
                ))),
            },
        }
    }
}

/// Who must approve a containment step before it runs, and what happens on silence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Roles whose members may approve (at least responder).
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Named users who may approve.
    #[serde(default)]
    pub users: Vec<String>,
    /// Distinct approvers needed (2 for four-eyes).
    #[serde(default = "one")]
    pub required: u32,
    /// How long to wait, e.g. `30m`.
    pub timeout: String,
    #[serde(default)]
    pub on_timeout: OnTimeout,
    /// Who is asked next when `on_timeout: escalate`.
    #[serde(default)]
    pub escalate_to: Option<Escalation>,
    /// Shown to approvers; a template (what action, on what, for which case, why).
    pub message: String,
}

fn one() -> u32 {
    1
}

/// What a gate does when nobody decides in time.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    #[default]
    Reject,
    Escalate,
    /// Only where `playbooks.allow_approve_on_timeout` is set.
    Approve,
}

/// The approvers asked after a timeout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub users: Vec<String>,
    pub timeout: String,
    /// What happens when the escalated approvers do not decide either: `reject` (the
    /// default) or `approve` (only where `playbooks.allow_approve_on_timeout` is set).
    #[serde(default, skip_serializing_if = "is_reject")]
    pub on_timeout: OnTimeout,
}

fn is_reject(t: &OnTimeout) -> bool {
    *t == OnTimeout::Reject
}
