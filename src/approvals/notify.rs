//! Approval e-mail: who is told about a gate, the queued outbox rows, and what the e-mail
//! says. Rows are queued in the transaction that opens (or escalates) the gate; the sender
//! (`crate::email`) delivers them afterwards, so SMTP never holds up the engine.
//!
//! The queued row holds a preview without links. The approve and reject links carry a
//! single-use token that is created only when the sender hands the e-mail to the relay
//! (`links::mint`), so no usable token is ever stored in clear, and an admin reading the
//! outbox cannot decide in an approver's name.

use super::{ApprovalError, Gate, GateKind};
use crate::auth::Role;
use crate::db::schema::{approval_decisions, cases, email_outbox, users};
use crate::db::DbConn;
use diesel::prelude::*;
use minijinja::Environment;
use serde::Serialize;
use std::sync::OnceLock;

/// The `origin` of approval e-mail rows in the outbox.
pub fn origin(gate_id: i64) -> String {
    format!("approval:{gate_id}")
}

/// A user who should hear about a gate.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub user_id: i64,
    pub username: String,
    pub email: String,
}

/// Active users with an e-mail address who may approve `gate` now: admitted by its
/// approvers, not the run's requester (who cannot approve), and not decided already.
pub fn recipients(conn: &mut DbConn, gate: &Gate) -> Result<Vec<Recipient>, ApprovalError> {
    let rows: Vec<(i64, String, Option<String>, String)> = users::table
        .filter(users::disabled_at.is_null())
        .filter(users::email.is_not_null())
        .order(users::id)
        .select((users::id, users::username, users::email, users::role))
        .load(conn)?;
    let decided: Vec<i64> = approval_decisions::table
        .filter(approval_decisions::gate_id.eq(gate.id))
        .select(approval_decisions::user_id)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(user_id, username, email, role)| {
            let role: Role = role.parse().ok()?;
            let email = email.filter(|e| !e.is_empty())?;
            (gate.approvers.admits(gate.kind, &username, role)
                && (gate.kind == GateKind::Acknowledgement
                    || gate.requested_by != format!("user:{username}"))
                && !decided.contains(&user_id))
            .then_some(Recipient {
                user_id,
                username,
                email,
            })
        })
        .collect())
}

/// Queues one e-mail per recipient for `gate`, due at `t`, in the caller's transaction;
/// returns the usernames told.
pub fn queue(
    conn: &mut DbConn,
    gate: &Gate,
    t: chrono::NaiveDateTime,
) -> Result<Vec<String>, ApprovalError> {
    let to = recipients(conn, gate)?;
    let case_title = case_title(conn, gate.case_id)?;
    let mut told = Vec::with_capacity(to.len());
    for r in to {
        let mail = render(gate, case_title.as_deref(), &r.username, None);
        diesel::insert_into(email_outbox::table)
            .values((
                email_outbox::recipients.eq(&r.email),
                email_outbox::subject.eq(&mail.subject),
                email_outbox::body_text.eq(&mail.text),
                email_outbox::body_html.eq(&mail.html),
                email_outbox::origin.eq(origin(gate.id)),
                email_outbox::status.eq("queued"),
                email_outbox::attempts.eq(0),
                email_outbox::created_at.eq(t),
                email_outbox::next_attempt_at.eq(t),
                email_outbox::gate_id.eq(gate.id),
                email_outbox::user_id.eq(r.user_id),
            ))
            .execute(conn)?;
        told.push(r.username);
    }
    Ok(told)
}

/// Withdraws a gate's e-mail not yet delivered (the gate settled or was escalated).
pub fn cancel_queued(conn: &mut DbConn, gate_id: i64, reason: &str) -> QueryResult<usize> {
    diesel::update(
        email_outbox::table
            .filter(email_outbox::gate_id.eq(gate_id))
            .filter(email_outbox::status.eq("queued")),
    )
    .set((
        email_outbox::status.eq("cancelled"),
        email_outbox::last_error.eq(reason),
        email_outbox::next_attempt_at.eq(None::<chrono::NaiveDateTime>),
    ))
    .execute(conn)
}

/// The title of a gate's case.
pub fn case_title(conn: &mut DbConn, case_id: Option<i64>) -> QueryResult<Option<String>> {
    match case_id {
        None => Ok(None),
        Some(id) => cases::table
            .find(id)
            .select(cases::title)
            .first(conn)
            .optional(),
    }
}

/// The approve and reject links of one e-mail.
#[derive(Debug, Clone, Serialize)]
pub struct Links {
    pub approve: String,
    pub reject: String,
}

/// A rendered e-mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

const TEXT_TEMPLATE: &str = include_str!("../../frontend/templates/email/approval.txt");
const HTML_TEMPLATE: &str = include_str!("../../frontend/templates/email/approval.html");

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // Names decide escaping: `.html` is escaped, `.txt` is not.
        for (name, source) in [
            ("approval.txt", TEXT_TEMPLATE),
            ("approval.html", HTML_TEMPLATE),
        ] {
            if let Err(err) = env.add_template(name, source) {
                tracing::error!(template = name, error = %err, "e-mail template does not compile");
            }
        }
        env
    })
}

/// What a gated step would act on, as one line per input (`ip: 203.0.113.7`).
pub fn describe_target(target: Option<&serde_json::Value>) -> Vec<String> {
    fn scalar(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    match target {
        Some(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", scalar(v)))
            .collect(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| format!("item {}: {}", i + 1, scalar(v)))
            .collect(),
        Some(serde_json::Value::Null) | None => Vec::new(),
        Some(other) => vec![scalar(other)],
    }
}

fn attr_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
}

/// The e-mail about `gate` for `recipient`; without links it is the outbox preview.
pub fn render(
    gate: &Gate,
    case_title: Option<&str>,
    recipient: &str,
    links: Option<&Links>,
) -> Mail {
    let ack = gate.kind == GateKind::Acknowledgement;
    let what = if ack {
        "Acknowledgement needed".to_string()
    } else {
        format!("Approval needed: {}", gate.action)
    };
    let case = gate
        .case_id
        .map(|c| format!(" on case #{c}"))
        .unwrap_or_default();
    let escalated = if gate.escalation_level > 0 {
        " (escalated)"
    } else {
        ""
    };
    let subject = format!("[Tocsin] {what}{case}{escalated}");
    let ctx = minijinja::context! {
        recipient => recipient,
        ack => ack,
        gate_id => gate.id,
        run_id => gate.run_id,
        step => gate.step_id,
        action => gate.action,
        target => describe_target(gate.target.as_ref()),
        case_id => gate.case_id,
        case_title => case_title,
        message => gate.message,
        required => gate.required,
        approvals => gate.decisions.iter().filter(|d| d.decision == "approve").count(),
        requested_by => gate.requested_by,
        escalated => gate.escalation_level > 0,
        deadline => format!("{} UTC", gate.deadline_at.format("%Y-%m-%d %H:%M")),
        links => links,
        // minijinja escapes `/` too; links only need the HTML-special characters escaped.
        links_html => links.map(|l| Links { approve: attr_escape(&l.approve), reject: attr_escape(&l.reject) }),
    };
    let render = |name: &str| {
        templates()
            .get_template(name)
            .and_then(|t| t.render(&ctx))
            .unwrap_or_else(|err| {
                tracing::error!(template = name, error = %err, "e-mail template failed");
                format!("{}\n\n{}", subject, gate.message)
            })
    };
    Mail {
        text: render("approval.txt"),
        html: render("approval.html"),
        subject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approvals::{Approvers, GateStatus};

    fn gate() -> Gate {
        Gate {
            id: 7,
            kind: GateKind::Approval,
            run_id: 3,
            step_id: "block".into(),
            case_id: Some(12),
            action: "firewall.block_ip".into(),
            status: GateStatus::Pending,
            message: "Block <b>203.0.113.7</b>?".into(),
            target: Some(serde_json::json!({ "ip": "203.0.113.7" })),
            approvers: Approvers::default(),
            required: 1,
            requested_by: "trigger:case.created".into(),
            escalation_level: 0,
            created_at: crate::db::now(),
            deadline_at: crate::db::now(),
            decided_at: None,
            outcome_reason: None,
            decisions: vec![],
            notifications: vec![],
        }
    }

    #[test]
    fn the_email_names_action_target_case_and_reason_and_escapes_html() {
        let links = Links {
            approve: "https://soc.example/approvals/7/link/T/approve".into(),
            reject: "https://soc.example/approvals/7/link/T/reject".into(),
        };
        let mail = render(&gate(), Some("Brute force <x>"), "rex", Some(&links));
        assert!(mail.subject.contains("firewall.block_ip"));
        assert!(mail.subject.contains("#12"));
        for part in [&mail.text, &mail.html] {
            assert!(part.contains("firewall.block_ip"), "{part}");
            assert!(part.contains("ip: 203.0.113.7"), "{part}");
            assert!(part.contains(&links.approve), "{part}");
            assert!(part.contains(&links.reject), "{part}");
        }
        assert!(mail.text.contains("Block <b>203.0.113.7</b>?"));
        assert!(
            mail.html.contains("Block &lt;b&gt;203.0.113.7"),
            "{}",
            mail.html
        );
        assert!(!mail.html.contains("<b>"), "{}", mail.html);
        assert!(mail.html.contains("Brute force &lt;x&gt;"));
        let preview = render(&gate(), None, "rex", None);
        assert!(!preview.text.contains("/link/"));
    }
}
