//! Tocsin: security orchestration, automation and response.
//!
//! Alerts come in over HTTP, become cases, and playbooks triage, enrich and contain them,
//! pausing for a person before any risky action. Every action lands in a hash-chained
//! audit trail.

pub mod alert;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod cases;
pub mod clock;
pub mod config;
pub mod db;
pub mod email;
pub mod events;
pub mod ingest;
pub mod integrations;
pub mod jsonpath;
pub mod live;
pub mod metrics;
pub mod playbooks;
pub mod retention;
pub mod telemetry;
pub mod web;
// Console: dashboard, audit and administration.
pub mod dashboard;
