//! Approval gates: a containment step waits for people to approve it. A gate names who
//! may decide (roles and users), how many distinct approvals it needs, and a deadline that
//! is a row, not a timer, so it survives restarts. Deciding is one transaction that also
//! wakes the waiting run; of two concurrent decisions exactly one settles the gate.
//!
//! Opening or escalating a gate queues e-mail to its approvers in the same transaction
//! (`notify`); the links in those e-mails (`links`) decide through a confirmation page.

pub mod links;
pub mod notify;

use crate::audit::{self, Actor, AuditError, NewEvent};
use crate::auth::{Permission, Role};
use crate::db::schema::{approval_decisions, approval_gates, email_outbox, playbook_runs, users};
use crate::db::{DbConn, DbError};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Errors of approval gates.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no approval gate {0}")]
    NotFound(i64),
    #[error("approval gate {id} is already {status}")]
    AlreadySettled { id: i64, status: GateStatus },
    #[error("{0}")]
    NotAllowed(String),
    #[error("you have already decided on approval gate {0}")]
    AlreadyDecided(i64),
    #[error("`comment` is required when rejecting")]
    CommentRequired,
    #[error("this approval link was used by another request at the same time")]
    LinkSpent,
    #[error("the deadline of approval gate {0} has passed")]
    DeadlinePassed(i64),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<diesel::result::Error> for ApprovalError {
    fn from(err: diesel::result::Error) -> Self {
        ApprovalError::Db(DbError::Query(err))
    }
}

/// Where a gate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    Pending,
    Approved,
    Rejected,
    TimedOut,
    Cancelled,
    /// An acknowledgement gate that someone (or the vendor) acknowledged.
    Acknowledged,
}

impl GateStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            GateStatus::Pending => "pending",
            GateStatus::Approved => "approved",
            GateStatus::Rejected => "rejected",
            GateStatus::TimedOut => "timed_out",
            GateStatus::Cancelled => "cancelled",
            GateStatus::Acknowledged => "acknowledged",
        }
    }

    /// The name stored in the database (an acknowledgement is stored as `approved`).
    fn stored(self) -> &'static str {
        match self {
            GateStatus::Acknowledged => "approved",
            other => other.as_str(),
        }
    }

    fn parse(s: &str, kind: GateKind) -> GateStatus {
        match s {
            "approved" if kind == GateKind::Acknowledgement => GateStatus::Acknowledged,
            "approved" => GateStatus::Approved,
            "rejected" => GateStatus::Rejected,
            "timed_out" => GateStatus::TimedOut,
            "cancelled" => GateStatus::Cancelled,
            _ => GateStatus::Pending,
        }
    }
}

impl std::fmt::Display for GateStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a gate waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    /// Approvers allow (or refuse) a containment step before it runs.
    Approval,
    /// Someone acknowledges (an on-call page, say); nobody doing so in time is the
    /// playbook's cue to escalate.
    Acknowledgement,
}

impl GateKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            GateKind::Approval => "approval",
            GateKind::Acknowledgement => "acknowledgement",
        }
    }

    fn parse(s: &str) -> GateKind {
        match s {
            "acknowledgement" => GateKind::Acknowledgement,
            _ => GateKind::Approval,
        }
    }

    /// What deciding on a gate of this kind takes: approving containment, or working cases.
    pub fn permission(self) -> Permission {
        match self {
            GateKind::Approval => Permission::ApproveContainment,
            GateKind::Acknowledgement => Permission::WorkCases,
        }
    }
}

/// Who may decide.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvers {
    /// Members of these roles, or of a higher one.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// These users, by name.
    #[serde(default)]
    pub users: Vec<String>,
}

impl Approvers {
    /// Whether a user with `username` and `role` may decide on a gate of `kind`. Approving
    /// containment needs the responder role, acknowledging the analyst role, whatever the
    /// gate lists.
    pub fn admits(&self, kind: GateKind, username: &str, role: Role) -> bool {
        role.allows(kind.permission())
            && (self.roles.iter().any(|r| role >= *r) || self.users.iter().any(|u| u == username))
    }
}

/// A decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// On an acknowledgement gate, the same as `acknowledge` (the console and the links
    /// send `approve` for both kinds).
    Approve,
    Reject,
    /// Only for acknowledgement gates, so a client that means to acknowledge cannot
    /// approve containment by mistake.
    Acknowledge,
}

impl Decision {
    /// The stored name, also the last segment of link URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
            Decision::Acknowledge => "acknowledge",
        }
    }
}

/// A recorded decision.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DecisionView {
    pub user: String,
    pub decision: String,
    pub comment: Option<String>,
    pub channel: String,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub at: NaiveDateTime,
}

/// An e-mail about a gate, as the gate shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NotificationView {
    /// The outbox row.
    pub id: i64,
    pub user: Option<String>,
    pub to: String,
    /// `queued`, `sending`, `sent`, `failed` or `cancelled`.
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub sent_at: Option<NaiveDateTime>,
}

/// A gate as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Gate {
    pub id: i64,
    pub kind: GateKind,
    pub run_id: i64,
    pub step_id: String,
    pub case_id: Option<i64>,
    /// The action the step would run (`firewall.block_ip`).
    pub action: String,
    pub status: GateStatus,
    pub message: String,
    /// What the step would act on: its inputs rendered when the gate opened (secrets
    /// redacted), a list of them for `foreach` steps.
    pub target: Option<serde_json::Value>,
    pub approvers: Approvers,
    pub required: i32,
    /// Who started the run (`user:alice`, `trigger:case.created`).
    pub requested_by: String,
    /// 0 until the gate escalates after a timeout.
    pub escalation_level: i32,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub deadline_at: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub decided_at: Option<NaiveDateTime>,
    pub outcome_reason: Option<String>,
    pub decisions: Vec<DecisionView>,
    /// E-mail sent (or queued, or failed) to approvers, oldest first.
    pub notifications: Vec<NotificationView>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = approval_gates)]
struct GateRow {
    id: i64,
    run_id: i64,
    step_id: String,
    case_id: Option<i64>,
    action: String,
    status: String,
    message: String,
    approvers: String,
    required: i32,
    requested_by: String,
    escalation_level: i32,
    created_at: NaiveDateTime,
    deadline_at: NaiveDateTime,
    decided_at: Option<NaiveDateTime>,
    outcome_reason: Option<String>,
    target: Option<String>,
    kind: String,
}

/// What the engine asks for when a step reaches its gate.
#[derive(Debug, Clone)]
pub struct GateRequest {
    pub kind: GateKind,
    pub run_id: i64,
    pub step_id: String,
    pub case_id: Option<i64>,
    pub action: String,
    pub message: String,
    /// The step's rendered inputs (secrets redacted): what it would act on.
    pub target: serde_json::Value,
    pub approvers: Approvers,
    pub required: u32,
    pub requested_by: String,
    pub deadline_at: NaiveDateTime,
}

/// Opens a gate at `t` in the caller's transaction, queues e-mail to its approvers and
/// records `approval.requested`.
pub fn open(
    conn: &mut DbConn,
    actor: &Actor,
    req: &GateRequest,
    t: NaiveDateTime,
) -> Result<i64, ApprovalError> {
    let approvers = serde_json::to_string(&req.approvers).unwrap_or_else(|_| "{}".into());
    let required = i32::try_from(req.required.max(1)).unwrap_or(i32::MAX);
    let id: i64 = crate::on_backend!(conn, |c| diesel::insert_into(approval_gates::table)
        .values((
            approval_gates::run_id.eq(req.run_id),
            approval_gates::step_id.eq(&req.step_id),
            approval_gates::case_id.eq(req.case_id),
            approval_gates::action.eq(&req.action),
            approval_gates::status.eq("pending"),
            approval_gates::message.eq(&req.message),
            approval_gates::approvers.eq(&approvers),
            approval_gates::required.eq(required),
            approval_gates::requested_by.eq(&req.requested_by),
            approval_gates::escalation_level.eq(0),
            approval_gates::created_at.eq(t),
            approval_gates::deadline_at.eq(req.deadline_at),
            approval_gates::target.eq(serde_json::to_string(&req.target).ok()),
            approval_gates::kind.eq(req.kind.as_str()),
        ))
        .returning(approval_gates::id)
        .get_result(c))?;
    let gate = get(conn, id)?;
    let notified = notify::queue(conn, &gate, t)?;
    audit::append(
        conn,
        NewEvent::new(
            actor,
            "approval.requested",
            format!("approval:{id}"),
            json!({
                "kind": req.kind,
                "run_id": req.run_id,
                "step": req.step_id,
                "case_id": req.case_id,
                "action": req.action,
                "message": req.message,
                "approvers": req.approvers,
                "required": required,
                "deadline_at": crate::db::utc::format(&req.deadline_at),
                "target": req.target,
                "emailed": notified,
            }),
        ),
    )?;
    Ok(id)
}

fn hydrate(conn: &mut DbConn, rows: Vec<GateRow>) -> Result<Vec<Gate>, ApprovalError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut decisions: std::collections::HashMap<i64, Vec<DecisionView>> = Default::default();
    if !ids.is_empty() {
        type D = (i64, String, String, Option<String>, String, NaiveDateTime);
        let found: Vec<D> = approval_decisions::table
            .inner_join(users::table)
            .filter(approval_decisions::gate_id.eq_any(&ids))
            .order(approval_decisions::id)
            .select((
                approval_decisions::gate_id,
                users::username,
                approval_decisions::decision,
                approval_decisions::comment,
                approval_decisions::channel,
                approval_decisions::created_at,
            ))
            .load(conn)?;
        for (gate, user, decision, comment, channel, at) in found {
            decisions.entry(gate).or_default().push(DecisionView {
                user,
                decision,
                comment,
                channel,
                at,
            });
        }
    }
    let mut notifications: std::collections::HashMap<i64, Vec<NotificationView>> =
        Default::default();
    if !ids.is_empty() {
        type N = (
            Option<i64>,
            i64,
            Option<String>,
            String,
            String,
            i32,
            Option<String>,
            Option<NaiveDateTime>,
        );
        let found: Vec<N> = email_outbox::table
            .left_join(users::table)
            .filter(email_outbox::gate_id.eq_any(&ids))
            .order(email_outbox::id)
            .select((
                email_outbox::gate_id,
                email_outbox::id,
                users::username.nullable(),
                email_outbox::recipients,
                email_outbox::status,
                email_outbox::attempts,
                email_outbox::last_error,
                email_outbox::sent_at,
            ))
            .load(conn)?;
        for (gate, id, user, to, status, attempts, last_error, sent_at) in found {
            let Some(gate) = gate else { continue };
            notifications
                .entry(gate)
                .or_default()
                .push(NotificationView {
                    id,
                    user,
                    to,
                    status,
                    attempts,
                    last_error,
                    sent_at,
                });
        }
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let kind = GateKind::parse(&r.kind);
            let mut decisions = decisions.remove(&r.id).unwrap_or_default();
            if kind == GateKind::Acknowledgement {
                for d in &mut decisions {
                    d.decision = "acknowledge".into();
                }
            }
            (kind, decisions, r)
        })
        .map(|(kind, decisions, r)| Gate {
            kind,
            decisions,
            notifications: notifications.remove(&r.id).unwrap_or_default(),
            target: r
                .target
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok()),
            id: r.id,
            run_id: r.run_id,
            step_id: r.step_id,
            case_id: r.case_id,
            action: r.action,
            status: GateStatus::parse(&r.status, kind),
            message: r.message,
            approvers: serde_json::from_str(&r.approvers).unwrap_or_default(),
            required: r.required,
            requested_by: r.requested_by,
            escalation_level: r.escalation_level,
            created_at: r.created_at,
            deadline_at: r.deadline_at,
            decided_at: r.decided_at,
            outcome_reason: r.outcome_reason,
        })
        .collect())
}

/// One gate with its decisions.
pub fn get(conn: &mut DbConn, id: i64) -> Result<Gate, ApprovalError> {
    let row = approval_gates::table
        .find(id)
        .select(GateRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(ApprovalError::NotFound(id))?;
    Ok(hydrate(conn, vec![row])?.remove(0))
}

/// The gates of a run, oldest first.
pub fn for_run(conn: &mut DbConn, run_id: i64) -> Result<Vec<Gate>, ApprovalError> {
    let rows = approval_gates::table
        .filter(approval_gates::run_id.eq(run_id))
        .order(approval_gates::id)
        .select(GateRow::as_select())
        .load(conn)?;
    hydrate(conn, rows)
}

/// The newest `limit` gates raised on case `case_id`, newest first.
pub fn for_case(conn: &mut DbConn, case_id: i64, limit: i64) -> Result<Vec<Gate>, ApprovalError> {
    let rows = approval_gates::table
        .filter(approval_gates::case_id.eq(case_id))
        .order(approval_gates::id.desc())
        .limit(limit)
        .select(GateRow::as_select())
        .load(conn)?;
    hydrate(conn, rows)
}

/// Pending gates `username` (with `role`) may decide and has not yet decided, oldest first.
pub fn inbox(
    conn: &mut DbConn,
    user_id: i64,
    username: &str,
    role: Role,
) -> Result<Vec<Gate>, ApprovalError> {
    let rows = approval_gates::table
        .filter(approval_gates::status.eq("pending"))
        .order(approval_gates::id)
        .limit(1000)
        .select(GateRow::as_select())
        .load(conn)?;
    let gates = hydrate(conn, rows)?;
    let decided: Vec<i64> = approval_decisions::table
        .filter(approval_decisions::user_id.eq(user_id))
        .select(approval_decisions::gate_id)
        .load(conn)?;
    Ok(gates
        .into_iter()
        .filter(|g| g.approvers.admits(g.kind, username, role) && !decided.contains(&g.id))
        .collect())
}

/// The person deciding, and how they reached the gate.
#[derive(Debug, Clone)]
pub struct Decider {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub actor: Actor,
    /// `api`, `console` or `email`.
    pub channel: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Records a decision made at `t` in the caller's transaction. A rejection settles the
/// gate at once; approvals settle it when `required` distinct people have approved.
/// Settling wakes the run. A gate past its deadline takes no decision (the scheduler is
/// about to apply `on_timeout`). Returns the gate afterwards.
pub fn decide(
    conn: &mut DbConn,
    gate_id: i64,
    who: &Decider,
    decision: Decision,
    comment: Option<&str>,
    t: NaiveDateTime,
) -> Result<Gate, ApprovalError> {
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    if decision == Decision::Reject && comment.is_none() {
        return Err(ApprovalError::CommentRequired);
    }
    // Lock order, the engine's: the run row first (every engine transaction starts with
    // the lease fence on it), then the gate, then the audit chain. Locking the run only
    // when settling, after the audit append, deadlocked on PostgreSQL against an engine
    // transaction of the same run waiting for the audit chain.
    let run_id = get(conn, gate_id)?.run_id;
    diesel::update(playbook_runs::table.find(run_id))
        .set(playbook_runs::signal.eq(playbook_runs::signal))
        .execute(conn)?;
    // Touching the row first takes its lock on PostgreSQL, so concurrent deciders queue
    // here and the second sees the first one's outcome.
    let pending = diesel::update(
        approval_gates::table
            .find(gate_id)
            .filter(approval_gates::status.eq("pending")),
    )
    .set(approval_gates::status.eq("pending"))
    .execute(conn)?;
    let gate = get(conn, gate_id)?;
    if pending == 0 {
        return Err(ApprovalError::AlreadySettled {
            id: gate_id,
            status: gate.status,
        });
    }
    if !gate.approvers.admits(gate.kind, &who.username, who.role) {
        return Err(ApprovalError::NotAllowed(format!(
            "{} may not decide on approval gate {gate_id}: it needs {}",
            who.username,
            describe(&gate.approvers)
        )));
    }
    let ack = gate.kind == GateKind::Acknowledgement;
    let decision = match (ack, decision) {
        (true, Decision::Reject) => {
            return Err(ApprovalError::NotAllowed(format!(
                "approval gate {gate_id} asks for an acknowledgement, which cannot be rejected; \
                 it escalates when nobody acknowledges in time"
            )))
        }
        (true, _) => Decision::Acknowledge,
        (false, Decision::Acknowledge) => {
            return Err(ApprovalError::NotAllowed(format!(
                "approval gate {gate_id} asks for approve or reject, not acknowledge"
            )))
        }
        (false, d) => d,
    };
    if !ack
        && decision == Decision::Approve
        && gate.requested_by == format!("user:{}", who.username)
    {
        return Err(ApprovalError::NotAllowed(format!(
            "{} started this run and cannot approve its own containment step",
            who.username
        )));
    }
    if gate.decisions.iter().any(|d| d.user == who.username) {
        return Err(ApprovalError::AlreadyDecided(gate_id));
    }
    if gate.deadline_at <= t {
        return Err(ApprovalError::DeadlinePassed(gate_id));
    }
    diesel::insert_into(approval_decisions::table)
        .values((
            approval_decisions::gate_id.eq(gate_id),
            approval_decisions::user_id.eq(who.user_id),
            // Stored in the table's vocabulary: an acknowledgement is an `approve` row.
            approval_decisions::decision.eq(match decision {
                Decision::Reject => "reject",
                _ => "approve",
            }),
            approval_decisions::comment.eq(comment),
            approval_decisions::channel.eq(&who.channel),
            approval_decisions::ip.eq(&who.ip),
            approval_decisions::user_agent.eq(&who.user_agent),
            approval_decisions::created_at.eq(t),
        ))
        .execute(conn)?;
    let approvals = 1 + gate
        .decisions
        .iter()
        .filter(|d| d.decision == "approve")
        .count();
    let settled = match decision {
        Decision::Acknowledge => Some(GateStatus::Acknowledged),
        Decision::Reject => Some(GateStatus::Rejected),
        Decision::Approve if approvals >= usize::try_from(gate.required).unwrap_or(1) => {
            Some(GateStatus::Approved)
        }
        Decision::Approve => None,
    };
    audit::append(
        conn,
        NewEvent::new(
            &who.actor,
            "approval.decided",
            format!("approval:{gate_id}"),
            json!({
                "kind": gate.kind,
                "run_id": gate.run_id,
                "step": gate.step_id,
                "decision": decision,
                "comment": comment,
                "channel": who.channel,
                "ip": who.ip,
                "user_agent": who.user_agent,
                "approvals": approvals,
                "required": gate.required,
                "gate_status": settled.unwrap_or(GateStatus::Pending),
            }),
        ),
    )?;
    if let Some(status) = settled {
        settle(conn, gate_id, gate.run_id, status, None, t)?;
    }
    get(conn, gate_id)
}

fn describe(a: &Approvers) -> String {
    let mut parts: Vec<String> = a.roles.iter().map(|r| format!("role {r}")).collect();
    parts.extend(a.users.iter().map(|u| format!("user {u}")));
    if parts.is_empty() {
        "nobody (the gate names no approvers)".into()
    } else {
        parts.join(" or ")
    }
}

/// Settles a pending gate and wakes its run.
fn settle(
    conn: &mut DbConn,
    gate_id: i64,
    run_id: i64,
    status: GateStatus,
    reason: Option<&str>,
    t: NaiveDateTime,
) -> Result<(), ApprovalError> {
    diesel::update(approval_gates::table.find(gate_id))
        .set((
            approval_gates::status.eq(status.stored()),
            approval_gates::decided_at.eq(t),
            approval_gates::outcome_reason.eq(reason),
        ))
        .execute(conn)?;
    notify::cancel_queued(conn, gate_id, "the approval request was settled first")?;
    wake_run(conn, run_id)?;
    Ok(())
}

/// Tells a run that something it waits for happened: bumps its signal (so a driver about
/// to park it notices) and makes a parked run runnable.
pub fn wake_run(conn: &mut DbConn, run_id: i64) -> QueryResult<()> {
    diesel::update(playbook_runs::table.find(run_id))
        .set(playbook_runs::signal.eq(playbook_runs::signal + 1))
        .execute(conn)?;
    diesel::update(
        playbook_runs::table
            .find(run_id)
            .filter(playbook_runs::status.eq("waiting")),
    )
    .set((
        playbook_runs::status.eq("running"),
        playbook_runs::wake_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(())
}

/// What a gate's deadline did.
#[derive(Debug, Clone, PartialEq)]
pub enum Expiry {
    /// Nobody decided in time: the step does not run.
    Rejected,
    /// Approved by policy (`on_timeout: approve`, where configuration allows it).
    Approved,
    /// Other approvers were asked, with a new deadline.
    Escalated(NaiveDateTime),
}

/// Applies a passed deadline to a pending gate at `t`, in the caller's transaction, as
/// the playbook says: reject, approve, or (once) escalate to `escalate_to` until
/// `escalation_deadline`. Returns `None` when the gate was settled meanwhile, or its
/// deadline has not passed at `t` (it moved: another process escalated it first).
pub fn expire(
    conn: &mut DbConn,
    gate_id: i64,
    on_timeout: crate::playbooks::definition::OnTimeout,
    escalate_to: Option<(Approvers, NaiveDateTime)>,
    t: NaiveDateTime,
) -> Result<Option<Expiry>, ApprovalError> {
    use crate::playbooks::definition::OnTimeout;
    let gate = get(conn, gate_id)?;
    if gate.status != GateStatus::Pending || gate.deadline_at > t {
        return Ok(None);
    }
    let actor = Actor::system("approvals");
    let outcome = match (on_timeout, escalate_to) {
        (OnTimeout::Escalate, Some((approvers, deadline))) if gate.escalation_level == 0 => {
            diesel::update(approval_gates::table.find(gate_id))
                .set((
                    approval_gates::approvers
                        .eq(serde_json::to_string(&approvers).unwrap_or_else(|_| "{}".into())),
                    approval_gates::deadline_at.eq(deadline),
                    approval_gates::escalation_level.eq(1),
                ))
                .execute(conn)?;
            // The first approvers' links stop working; the new approvers are e-mailed.
            links::revoke_for_gate(conn, gate_id, t)?;
            notify::cancel_queued(conn, gate_id, "escalated before delivery")?;
            let escalated = get(conn, gate_id)?;
            let notified = notify::queue(conn, &escalated, t)?;
            audit::append(
                conn,
                NewEvent::new(
                    &actor,
                    "approval.escalated",
                    format!("approval:{gate_id}"),
                    json!({
                        "run_id": gate.run_id,
                        "step": gate.step_id,
                        "from": gate.approvers,
                        "to": approvers,
                        "deadline_at": crate::db::utc::format(&deadline),
                        "emailed": notified,
                    }),
                ),
            )?;
            return Ok(Some(Expiry::Escalated(deadline)));
        }
        (OnTimeout::Approve, _) => Expiry::Approved,
        _ => Expiry::Rejected,
    };
    let (status, reason) = match outcome {
        Expiry::Approved => (GateStatus::Approved, "approved on timeout (policy)"),
        _ if gate.kind == GateKind::Acknowledgement => (
            GateStatus::TimedOut,
            "nobody acknowledged before the deadline",
        ),
        _ => (GateStatus::TimedOut, "nobody decided before the deadline"),
    };
    settle(conn, gate_id, gate.run_id, status, Some(reason), t)?;
    audit::append(
        conn,
        NewEvent::new(
            &actor,
            "approval.timed_out",
            format!("approval:{gate_id}"),
            json!({ "kind": gate.kind, "run_id": gate.run_id, "step": gate.step_id, "outcome": status }),
        ),
    )?;
    Ok(Some(outcome))
}

/// Settles a pending acknowledgement gate at `t` because the vendor reports the matter
/// acknowledged (`via` names the check, `detail` is what it returned); wakes the run and
/// records `approval.acknowledged`. Returns whether the gate was still pending.
pub fn acknowledged_by_vendor(
    conn: &mut DbConn,
    gate_id: i64,
    via: &str,
    detail: &serde_json::Value,
    t: NaiveDateTime,
) -> Result<bool, ApprovalError> {
    let gate = get(conn, gate_id)?;
    if gate.status != GateStatus::Pending || gate.kind != GateKind::Acknowledgement {
        return Ok(false);
    }
    // The run row first, then the gate: the engine's lock order.
    diesel::update(playbook_runs::table.find(gate.run_id))
        .set(playbook_runs::signal.eq(playbook_runs::signal))
        .execute(conn)?;
    let reason = format!("acknowledged in {via}");
    settle(
        conn,
        gate_id,
        gate.run_id,
        GateStatus::Acknowledged,
        Some(&reason),
        t,
    )?;
    audit::append(
        conn,
        NewEvent::new(
            &Actor::system("approvals"),
            "approval.acknowledged",
            format!("approval:{gate_id}"),
            json!({ "run_id": gate.run_id, "step": gate.step_id, "via": via, "detail": detail }),
        ),
    )?;
    Ok(true)
}

/// Cancels a run's pending gates at `t` (the run was cancelled or stopped).
pub fn cancel_for_run(
    conn: &mut DbConn,
    run_id: i64,
    reason: &str,
    t: NaiveDateTime,
) -> QueryResult<usize> {
    let pending: Vec<i64> = approval_gates::table
        .filter(approval_gates::run_id.eq(run_id))
        .filter(approval_gates::status.eq("pending"))
        .select(approval_gates::id)
        .load(conn)?;
    for id in pending {
        notify::cancel_queued(conn, id, "the run ended")?;
    }
    diesel::update(
        approval_gates::table
            .filter(approval_gates::run_id.eq(run_id))
            .filter(approval_gates::status.eq("pending")),
    )
    .set((
        approval_gates::status.eq("cancelled"),
        approval_gates::decided_at.eq(t),
        approval_gates::outcome_reason.eq(reason),
    ))
    .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvers_admit_listed_roles_and_above_and_named_users() {
        let a = Approvers {
            roles: vec![Role::Responder],
            users: vec!["carol".into()],
        };
        let k = GateKind::Approval;
        assert!(a.admits(k, "bob", Role::Responder));
        assert!(a.admits(k, "root", Role::Admin));
        assert!(!a.admits(k, "ann", Role::Analyst));
        // A named user still needs the right to approve containment.
        assert!(!a.admits(k, "carol", Role::Analyst));
        assert!(a.admits(k, "carol", Role::Responder));
        let admins = Approvers {
            roles: vec![Role::Admin],
            users: vec![],
        };
        assert!(!admins.admits(k, "bob", Role::Responder));
        // Acknowledging needs only the analyst role.
        let analysts = Approvers {
            roles: vec![Role::Analyst],
            users: vec!["vic".into()],
        };
        let ack = GateKind::Acknowledgement;
        assert!(analysts.admits(ack, "ann", Role::Analyst));
        assert!(analysts.admits(ack, "rex", Role::Responder));
        assert!(!analysts.admits(ack, "vic", Role::Viewer));
    }
}
