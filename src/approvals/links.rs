//! Approve and reject links sent by e-mail. Each carries a random 256-bit token, stored as
//! its SHA-256, bound to one approver and one gate, usable once, and only while the gate
//! is pending and before its deadline. Following a link only shows a confirmation page;
//! deciding is a separate POST, so a mail scanner that fetches links decides nothing.

use super::{ApprovalError, Decider, Decision, Gate, GateStatus};
use crate::audit::{self, Actor, NewEvent};
use crate::auth::{random_secret, secret_hash, users, User};
use crate::db::schema::approval_links;
use crate::db::DbConn;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

/// Creates a link token for `user_id` on `gate_id` at `t` and returns it; only its hash
/// is kept.
pub fn mint(
    conn: &mut DbConn,
    gate_id: i64,
    user_id: i64,
    outbox_id: Option<i64>,
    t: NaiveDateTime,
) -> QueryResult<String> {
    let token = random_secret();
    diesel::insert_into(approval_links::table)
        .values((
            approval_links::gate_id.eq(gate_id),
            approval_links::user_id.eq(user_id),
            approval_links::outbox_id.eq(outbox_id),
            approval_links::token_hash.eq(secret_hash(&token)),
            approval_links::created_at.eq(t),
        ))
        .execute(conn)?;
    Ok(token)
}

/// Withdraws the unused links of an e-mail that could not be delivered.
pub fn revoke_for_outbox(
    conn: &mut DbConn,
    outbox_id: i64,
    t: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        approval_links::table
            .filter(approval_links::outbox_id.eq(outbox_id))
            .filter(approval_links::used_at.is_null())
            .filter(approval_links::revoked_at.is_null()),
    )
    .set(approval_links::revoked_at.eq(t))
    .execute(conn)
}

/// Withdraws every unused link of a gate (it was escalated to other approvers).
pub fn revoke_for_gate(conn: &mut DbConn, gate_id: i64, t: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        approval_links::table
            .filter(approval_links::gate_id.eq(gate_id))
            .filter(approval_links::used_at.is_null())
            .filter(approval_links::revoked_at.is_null()),
    )
    .set(approval_links::revoked_at.eq(t))
    .execute(conn)
}

/// The absolute URL of a link.
pub fn url(base: &str, gate_id: i64, token: &str, decision: Decision) -> String {
    format!(
        "{}/approvals/{gate_id}/link/{token}/{}",
        base.trim_end_matches('/'),
        decision.as_str()
    )
}

/// Who follows a link, as far as the request tells.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The console session's user, when the browser is signed in.
    pub signed_in: Option<User>,
}

/// Why a link cannot be used; each gets its own page.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// No such token, or a token of another gate.
    Unknown,
    Used,
    Revoked,
    Settled(GateStatus),
    Expired,
    Disabled,
    /// The browser is signed in as someone else than the link's approver.
    OtherUser {
        owner: String,
        signed_in: String,
    },
    /// Configuration wants the approver signed in for this action.
    LoginRequired {
        owner: String,
    },
}

impl Refusal {
    /// A short stable name for audit details.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown",
            Refusal::Used => "used",
            Refusal::Revoked => "revoked",
            Refusal::Settled(_) => "settled",
            Refusal::Expired => "expired",
            Refusal::Disabled => "disabled",
            Refusal::OtherUser { .. } => "other_user",
            Refusal::LoginRequired { .. } => "login_required",
        }
    }

    /// The heading and sentence of the page shown.
    pub fn explain(&self) -> (&'static str, String) {
        match self {
            Refusal::Unknown => (
                "This link is not valid",
                "The link is not known for this approval request. Check that you copied the whole link from the e-mail.".into(),
            ),
            Refusal::Used => (
                "This link was already used",
                "Each approval link works once, and this one has been used. Nothing was changed.".into(),
            ),
            Refusal::Revoked => (
                "This link was withdrawn",
                "The request was escalated to other approvers or the e-mail was not delivered; this link no longer works. Nothing was changed.".into(),
            ),
            Refusal::Settled(status) => (
                "This request is closed",
                format!("The approval request is already {}. Nothing was changed.", status.as_str().replace('_', " ")),
            ),
            Refusal::Expired => (
                "This link has expired",
                "The approval request's deadline has passed. Nothing was changed.".into(),
            ),
            Refusal::Disabled => (
                "This account is disabled",
                "The approver this link was sent to is disabled. Nothing was changed.".into(),
            ),
            Refusal::OtherUser { owner, signed_in } => (
                "This link is for someone else",
                format!("This link was sent to {owner}, but this browser is signed in as {signed_in}. Nothing was changed."),
            ),
            Refusal::LoginRequired { owner } => (
                "Sign in first",
                format!("This action needs the approver signed in as well. Sign in as {owner}, then open the link again."),
            ),
        }
    }
}

/// A usable link: its gate and approver.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub link_id: i64,
    pub gate: Gate,
    pub user: User,
    pub case_title: Option<String>,
}

/// What a look at a link found: usable, or refused (with what was known).
pub type Lookup = Result<Resolved, (Refusal, Option<Resolved>)>;

type LinkRow = (i64, i64, i64, Option<NaiveDateTime>, Option<NaiveDateTime>);

/// Checks a link for `gate_id` at `t`; `needs_login` tells whether the gate's action
/// needs a console session of the same user.
pub fn resolve(
    conn: &mut DbConn,
    gate_id: i64,
    token: &str,
    access: &Access,
    needs_login: &dyn Fn(&str) -> bool,
    t: NaiveDateTime,
) -> Result<Lookup, ApprovalError> {
    let row: Option<LinkRow> = approval_links::table
        .filter(approval_links::token_hash.eq(secret_hash(token)))
        .select((
            approval_links::id,
            approval_links::gate_id,
            approval_links::user_id,
            approval_links::used_at,
            approval_links::revoked_at,
        ))
        .first(conn)
        .optional()?;
    let Some((link_id, link_gate, user_id, used_at, revoked_at)) = row else {
        return Ok(Err((Refusal::Unknown, None)));
    };
    if link_gate != gate_id {
        return Ok(Err((Refusal::Unknown, None)));
    }
    let gate = super::get(conn, gate_id)?;
    let Some(user) = users::find_by_id(conn, user_id).map_err(|e| match e {
        crate::auth::AuthError::Db(d) => ApprovalError::Db(d),
        other => ApprovalError::NotAllowed(other.to_string()),
    })?
    else {
        return Ok(Err((Refusal::Unknown, None)));
    };
    let case_title = super::notify::case_title(conn, gate.case_id)?;
    let found = Resolved {
        link_id,
        gate,
        user,
        case_title,
    };
    let refusal = if !found.user.is_active() {
        Some(Refusal::Disabled)
    } else if let Some(s) = access.signed_in.as_ref().filter(|s| s.id != found.user.id) {
        Some(Refusal::OtherUser {
            owner: found.user.username.clone(),
            signed_in: s.username.clone(),
        })
    } else if revoked_at.is_some() {
        Some(Refusal::Revoked)
    } else if used_at.is_some() {
        Some(Refusal::Used)
    } else if found.gate.status != GateStatus::Pending {
        Some(Refusal::Settled(found.gate.status))
    } else if found.gate.deadline_at <= t {
        Some(Refusal::Expired)
    } else if access.signed_in.is_none() && needs_login(&found.gate.action) {
        Some(Refusal::LoginRequired {
            owner: found.user.username.clone(),
        })
    } else {
        None
    };
    Ok(match refusal {
        None => Ok(found),
        Some(r) => Err((r, Some(found))),
    })
}

fn actor_of(found: Option<&Resolved>) -> Actor {
    found.map_or_else(
        || Actor::system("approval-link"),
        |f| Actor::user(&f.user.username),
    )
}

/// Records that someone opened a link (usable or not).
pub fn audit_view(
    conn: &mut DbConn,
    gate_id: i64,
    lookup: &Lookup,
    decision: Decision,
    access: &Access,
) -> Result<(), ApprovalError> {
    let (found, outcome) = match lookup {
        Ok(f) => (Some(f), "shown"),
        Err((r, f)) => (f.as_ref(), r.code()),
    };
    audit::append(
        conn,
        NewEvent::new(
            &actor_of(found),
            "approval.link_viewed",
            format!("approval:{gate_id}"),
            json!({
                "link_id": found.map(|f| f.link_id),
                "approver": found.map(|f| f.user.username.clone()),
                "decision": decision,
                "outcome": outcome,
                "ip": access.ip,
                "user_agent": access.user_agent,
                "signed_in": access.signed_in.as_ref().map(|u| u.username.clone()),
            }),
        ),
    )?;
    Ok(())
}

/// Records a refused attempt to decide through a link.
pub fn audit_refusal(
    conn: &mut DbConn,
    gate_id: i64,
    reason: &str,
    found: Option<&Resolved>,
    access: &Access,
    detail: Option<&str>,
) -> Result<(), ApprovalError> {
    audit::append(
        conn,
        NewEvent::new(
            &actor_of(found),
            "approval.link_refused",
            format!("approval:{gate_id}"),
            json!({
                "link_id": found.map(|f| f.link_id),
                "approver": found.map(|f| f.user.username.clone()),
                "reason": reason,
                "detail": detail,
                "ip": access.ip,
                "user_agent": access.user_agent,
            }),
        ),
    )?;
    Ok(())
}

/// What deciding through a link did.
#[derive(Debug)]
pub enum LinkDecision {
    Decided(Box<Gate>),
    Refused(Refusal, Option<Box<Resolved>>),
}

/// What a link decision is: which, with what comment, made when.
#[derive(Debug, Clone, Copy)]
pub struct LinkRequest<'a> {
    pub decision: Decision,
    pub comment: Option<&'a str>,
    pub at: NaiveDateTime,
}

/// Decides through a link in the caller's transaction: the decision is recorded as
/// channel `email` by the link's approver, and the link is spent. A refusal changes
/// nothing; errors of the decision itself (comment missing, already decided) are returned
/// and the caller's transaction must roll back, leaving the link unused.
pub fn decide(
    conn: &mut DbConn,
    gate_id: i64,
    token: &str,
    req: LinkRequest<'_>,
    access: &Access,
    needs_login: &dyn Fn(&str) -> bool,
) -> Result<LinkDecision, ApprovalError> {
    let LinkRequest {
        decision,
        comment,
        at: t,
    } = req;
    let found = match resolve(conn, gate_id, token, access, needs_login, t)? {
        Ok(f) => f,
        Err((r, f)) => return Ok(LinkDecision::Refused(r, f.map(Box::new))),
    };
    let who = Decider {
        user_id: found.user.id,
        username: found.user.username.clone(),
        role: found.user.role,
        actor: Actor::user(&found.user.username),
        channel: "email".into(),
        ip: access.ip.clone(),
        user_agent: access.user_agent.clone(),
    };
    // The gate first (the run row, then the gate: the engine's lock order), the link after.
    let gate = super::decide(conn, gate_id, &who, decision, comment, t)?;
    let spent = diesel::update(
        approval_links::table
            .find(found.link_id)
            .filter(approval_links::used_at.is_null())
            .filter(approval_links::revoked_at.is_null()),
    )
    .set(approval_links::used_at.eq(t))
    .execute(conn)?;
    if spent == 0 {
        // Spent by a concurrent request between the check and here: undo by failing.
        return Err(ApprovalError::LinkSpent);
    }
    Ok(LinkDecision::Decided(Box::new(gate)))
}
