//! The case pages of the console: the queue (`/cases`) with its bulk actions, a case's
//! page (`/cases/{id}`) with an alert's raw payload, and the analyst actions on a case.
//! Handlers parse the form, check the CSRF token and the role, and call the same
//! `crate::cases` functions the JSON API calls, so changes are audited the same way.

pub mod actions;
pub mod detail;
pub mod form;
pub mod queue;

use actix_web::web;

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(queue::routes)
        .configure(detail::routes)
        .configure(actions::routes);
}
