//! The server-rendered console. Templates and CSS come from `frontend/`, compiled into the
//! binary, so cargo alone builds everything.

pub mod approval_links;
pub mod approvals;
// Console: cases
pub mod cases;
pub mod format;
pub mod home;
pub mod live;
pub mod login;
pub mod outbox;
pub mod page;
pub mod setup;
// Console: runs and playbooks.
pub mod playbooks;
pub mod runs;
pub mod step_graph;
// Console: dashboard, audit and administration.
pub mod admin;
pub mod audit;
pub mod charts;

use super::error::ApiError;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{get, web, HttpResponse};
use minijinja::Environment;
use serde::Serialize;

/// Templates, each embedded at compile time.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../../frontend/templates/base.html"),
    ),
    (
        "login.html",
        include_str!("../../../frontend/templates/login.html"),
    ),
    (
        "setup.html",
        include_str!("../../../frontend/templates/setup.html"),
    ),
    (
        "home.html",
        include_str!("../../../frontend/templates/home.html"),
    ),
    (
        "message.html",
        include_str!("../../../frontend/templates/message.html"),
    ),
    (
        "gate_details.html",
        include_str!("../../../frontend/templates/gate_details.html"),
    ),
    (
        "approvals.html",
        include_str!("../../../frontend/templates/approvals.html"),
    ),
    (
        "approval_link.html",
        include_str!("../../../frontend/templates/approval_link.html"),
    ),
    (
        "outbox.html",
        include_str!("../../../frontend/templates/outbox.html"),
    ),
    // Console: runs and playbooks.
    (
        "runs.html",
        include_str!("../../../frontend/templates/runs.html"),
    ),
    (
        "run.html",
        include_str!("../../../frontend/templates/run.html"),
    ),
    (
        "playbook_tabs.html",
        include_str!("../../../frontend/templates/playbook_tabs.html"),
    ),
    (
        "playbooks.html",
        include_str!("../../../frontend/templates/playbooks.html"),
    ),
    (
        "playbook.html",
        include_str!("../../../frontend/templates/playbook.html"),
    ),
    (
        "integrations.html",
        include_str!("../../../frontend/templates/integrations.html"),
    ),
    (
        "integration.html",
        include_str!("../../../frontend/templates/integration.html"),
    ),
    // Console: dashboard, audit and administration.
    (
        "audit.html",
        include_str!("../../../frontend/templates/audit.html"),
    ),
    (
        "admin.html",
        include_str!("../../../frontend/templates/admin.html"),
    ),
    // Console: cases
    (
        "cases.html",
        include_str!("../../../frontend/templates/cases.html"),
    ),
    (
        "case.html",
        include_str!("../../../frontend/templates/case.html"),
    ),
    (
        "case_alert.html",
        include_str!("../../../frontend/templates/case_alert.html"),
    ),
];

const STYLESHEET: &str = include_str!("../../../frontend/static/tocsin.css");
const SCRIPT: &str = include_str!("../../../frontend/static/tocsin.js");

/// Cookie holding the pre-login CSRF token (double-submit: the form echoes it).
pub const FORM_CSRF_COOKIE: &str = "tocsin_form_csrf";

/// The template environment; HTML is auto-escaped.
pub struct Pages {
    env: Environment<'static>,
}

impl Default for Pages {
    fn default() -> Self {
        Self::new()
    }
}

impl Pages {
    /// Loads every embedded template; a broken one is a build defect caught by tests.
    pub fn new() -> Pages {
        let mut env = Environment::new();
        format::register(&mut env);
        for (name, source) in TEMPLATES {
            if let Err(err) = env.add_template(name, source) {
                tracing::error!(template = name, error = %err, "template does not compile");
            }
        }
        Pages { env }
    }

    /// Renders a template into a page with `status`.
    pub fn render(&self, status: StatusCode, name: &str, ctx: impl Serialize) -> HttpResponse {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(html),
            Err(err) => {
                tracing::error!(template = name, error = %err, "template failed to render");
                HttpResponse::InternalServerError()
                    .content_type("text/plain; charset=utf-8")
                    .body("internal error rendering the page; see the server log")
            }
        }
    }

    /// A page with a heading and a sentence, for errors and notices.
    pub fn message(&self, status: StatusCode, heading: &str, message: &str) -> HttpResponse {
        self.render(
            status,
            "message.html",
            minijinja::context! { heading => heading, message => message },
        )
    }

    /// An error as a page rather than JSON.
    pub fn error(&self, err: &ApiError) -> HttpResponse {
        let heading = err.status.canonical_reason().unwrap_or("Error");
        self.message(err.status, heading, &err.message)
    }
}

/// Registers the console pages and static files.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(static_file)
        .configure(live::routes)
        .configure(home::routes)
        .configure(login::routes)
        .configure(setup::routes)
        .configure(approvals::routes)
        .configure(approval_links::routes)
        .configure(outbox::routes)
        // Console: runs and playbooks.
        .configure(runs::routes)
        .configure(playbooks::routes);
    // Console: dashboard, audit and administration.
    cfg.configure(audit::routes).configure(admin::routes);
    // Console: cases
    cfg.configure(cases::routes);
}

/// The console's stylesheet and script, cached by browsers for an hour.
#[get("/static/{name}")]
async fn static_file(name: web::Path<String>) -> HttpResponse {
    let (body, kind) = match name.as_str() {
        "tocsin.css" => (STYLESHEET, "text/css; charset=utf-8"),
        "tocsin.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(body)
}

/// A cookie with the attributes every Tocsin cookie shares.
pub fn cookie(
    name: &'static str,
    value: String,
    secure: bool,
    same_site: SameSite,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(same_site)
        .finish()
}

/// The form CSRF token from the cookie, or a new one to set.
pub fn form_csrf(req: &actix_web::HttpRequest) -> (String, bool) {
    match req.cookie(FORM_CSRF_COOKIE) {
        Some(c) if c.value().len() >= 32 => (c.value().to_string(), false),
        _ => (crate::auth::random_secret(), true),
    }
}

/// Whether a submitted form's token matches its double-submit cookie.
pub fn form_csrf_ok(req: &actix_web::HttpRequest, submitted: &str) -> bool {
    req.cookie(FORM_CSRF_COOKIE)
        .is_some_and(|c| crate::auth::secrets_equal(c.value(), submitted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_escapes() {
        let pages = Pages::new();
        for (name, _) in TEMPLATES {
            assert!(pages.env.get_template(name).is_ok(), "{name}");
        }
        let html = pages
            .env
            .get_template("message.html")
            .unwrap()
            .render(minijinja::context! { heading => "<b>x</b>", message => "<script>" })
            .unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }
}
