//! The dashboard, the landing page after sign-in: MTTA and MTTR, cases over time,
//! playbook outcomes, the slowest steps and pending approvals, as SVG charts with the
//! same figures in tables; plus the signed-in user's own inbox and the system status.

use crate::approvals;
use crate::auth::{users, Permission};
use crate::dashboard::{self, Dashboard, Range, Series};
use crate::db::schema::audit_head;
use crate::db::DbError;
use crate::web::console::charts::{self, BarRow};
use crate::web::console::format::span;
use crate::web::console::page::{self, SignedIn};
use crate::web::error::ApiError;
use crate::web::AppState;
use actix_web::{get, web, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

/// Registers the route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(home);
}

#[derive(Deserialize)]
struct RangeQuery {
    range: Option<String>,
}

/// A chart ready for the template: its SVG and the legend.
#[derive(Serialize)]
struct Chart {
    svg: String,
    legend: Vec<(String, &'static str)>,
    empty: bool,
}

fn legend(keys: &[String]) -> Vec<(String, &'static str)> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), charts::colour(k, i)))
        .collect()
}

fn over_time(id: &str, title: &str, d: &Dashboard, s: &Series) -> Chart {
    Chart {
        svg: charts::stacked_columns(id, title, &d.buckets, &s.keys, &s.counts),
        legend: legend(&s.keys),
        empty: s.keys.is_empty(),
    }
}

fn playbook_chart(d: &Dashboard) -> Chart {
    let rows: Vec<BarRow> = d
        .playbooks
        .iter()
        .map(|p| BarRow {
            label: p.playbook.clone(),
            segments: vec![
                ("succeeded".into(), p.succeeded as f64),
                ("failed".into(), p.failed as f64),
                ("cancelled".into(), p.cancelled as f64),
            ],
            note: format!("{}% succeeded", p.success_rate),
        })
        .collect();
    let total: i64 = d
        .playbooks
        .iter()
        .map(|p| p.succeeded + p.failed + p.cancelled)
        .sum();
    Chart {
        svg: charts::horizontal_bars(
            "chart-playbooks",
            "Playbook runs by outcome",
            &format!(
                "{total} runs finished, across {} playbooks.",
                d.playbooks.len()
            ),
            &rows,
        ),
        legend: legend(&["succeeded".into(), "failed".into(), "cancelled".into()]),
        empty: rows.is_empty(),
    }
}

fn steps_chart(d: &Dashboard) -> Chart {
    let rows: Vec<BarRow> = d
        .slowest_steps
        .iter()
        .map(|s| BarRow {
            label: format!("{} / {}", s.playbook, s.step),
            segments: vec![("mean".into(), s.avg_seconds)],
            note: format!("mean {}", seconds(s.avg_seconds)),
        })
        .collect();
    Chart {
        svg: charts::horizontal_bars(
            "chart-steps",
            "Slowest steps by mean duration",
            "The steps with the longest mean duration; the table has the run counts and maxima.",
            &rows,
        ),
        legend: Vec::new(),
        empty: rows.is_empty(),
    }
}

fn approvals_chart(d: &Dashboard) -> Chart {
    let rows: Vec<BarRow> = d
        .pending
        .by_age
        .iter()
        .map(|(label, n)| BarRow {
            label: label.clone(),
            segments: vec![("pending".into(), *n as f64)],
            note: n.to_string(),
        })
        .collect();
    Chart {
        svg: charts::horizontal_bars(
            "chart-approvals",
            "Pending approvals by age",
            &format!("{} approvals are waiting for a decision.", d.pending.total),
            &rows,
        ),
        legend: Vec::new(),
        empty: d.pending.total == 0,
    }
}

/// A duration in seconds as the page shows it: `850 ms`, `4.2 s`, `12m`, `3h 5m`.
fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else {
        span(s.round() as i64)
    }
}

#[get("/")]
async fn home(
    state: web::Data<AppState>,
    session: SignedIn,
    query: web::Query<RangeQuery>,
) -> actix_web::Result<HttpResponse> {
    let range: Range = match query.range.as_deref() {
        None | Some("") => Range::Week,
        Some(r) => r.parse().map_err(|e: dashboard::UnknownRange| {
            page::fail(&state.pages, ApiError::bad_request(e.to_string()))
        })?,
    };
    let user = session.0.user.clone();
    let is_admin = user.role.allows(Permission::ManageUsers);
    let now = crate::db::now();
    let (d, inbox, audit_seq, user_count) = state
        .db
        .read(move |conn| {
            let d = dashboard::compute(conn, range, now)?;
            let inbox = approvals::inbox(conn, user.id, &user.username, user.role)
                .map_err(ApiError::from)?;
            let seq: i64 = audit_head::table
                .select(audit_head::seq)
                .first(conn)
                .map_err(DbError::from)?;
            let user_count = if is_admin {
                Some(users::count(conn)?)
            } else {
                None
            };
            Ok::<_, ApiError>((d, inbox, seq, user_count))
        })
        .await
        .map_err(|e| page::fail(&state.pages, e))?;
    let charts = minijinja::context! {
        severity => over_time("chart-severity", "Cases created by severity", &d, &d.by_severity),
        source => over_time("chart-source", "Cases created by source", &d, &d.by_source),
        status => over_time("chart-status", "Cases created, by their status now", &d, &d.by_status),
        playbooks => playbook_chart(&d),
        steps => steps_chart(&d),
        approvals => approvals_chart(&d),
    };
    let fmt_mean = |m: &dashboard::Mean| m.seconds.map(span);
    Ok(page::render(
        &state,
        &session,
        "dashboard",
        "home.html",
        minijinja::context! {
            d => &d,
            mtta => fmt_mean(&d.mtta),
            mttr => fmt_mean(&d.mttr),
            steps => d.slowest_steps.iter().map(|s| (seconds(s.avg_seconds), seconds(s.max_seconds))).collect::<Vec<_>>(),
            charts => charts,
            ranges => ["24h", "7d", "30d"],
            inbox_count => inbox.len(),
            backend => state.db.backend().to_string(),
            user_count => user_count,
            audit_seq => audit_seq,
        },
    ))
}
