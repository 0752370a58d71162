//! Cases: alerts deduplicated by fingerprint and grouped by correlation key into cases that
//! analysts work through a status model, with severity, assignee, tags, SLA due times,
//! comments and merges. Every change an analyst makes is audited.

pub mod activity;
pub mod choices;
pub mod correlate;
pub mod query;
pub mod record;
pub mod update;

use crate::alert::Severity;
use crate::audit::AuditError;
use crate::db::DbError;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Case failures.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("no case {0}")]
    NotFound(i64),
    #[error("no alert {0}")]
    AlertNotFound(i64),
    #[error("`{field}` {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<diesel::result::Error> for CaseError {
    fn from(err: diesel::result::Error) -> Self {
        CaseError::Db(DbError::Query(err))
    }
}

impl CaseError {
    /// An invalid field value.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> CaseError {
        CaseError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Where a case is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    New,
    Triage,
    InProgress,
    Contained,
    Resolved,
    Closed,
}

impl CaseStatus {
    /// Every status, in workflow order.
    pub const ALL: [CaseStatus; 6] = [
        CaseStatus::New,
        CaseStatus::Triage,
        CaseStatus::InProgress,
        CaseStatus::Contained,
        CaseStatus::Resolved,
        CaseStatus::Closed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::New => "new",
            CaseStatus::Triage => "triage",
            CaseStatus::InProgress => "in_progress",
            CaseStatus::Contained => "contained",
            CaseStatus::Resolved => "resolved",
            CaseStatus::Closed => "closed",
        }
    }

    /// Whether new alerts may still join the case.
    pub fn is_open(self) -> bool {
        !matches!(self, CaseStatus::Resolved | CaseStatus::Closed)
    }
}

impl FromStr for CaseStatus {
    type Err = CaseError;

    fn from_str(s: &str) -> Result<CaseStatus, CaseError> {
        CaseStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                CaseError::invalid(
                    "status",
                    format!(
                        "{s:?} is not one of new, triage, in_progress, contained, resolved, closed"
                    ),
                )
            })
    }
}

/// Why a case was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    TruePositive,
    FalsePositive,
    Benign,
    Duplicate,
}

impl Disposition {
    /// Every disposition.
    pub const ALL: [Disposition; 4] = [
        Disposition::TruePositive,
        Disposition::FalsePositive,
        Disposition::Benign,
        Disposition::Duplicate,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::TruePositive => "true_positive",
            Disposition::FalsePositive => "false_positive",
            Disposition::Benign => "benign",
            Disposition::Duplicate => "duplicate",
        }
    }
}

impl FromStr for Disposition {
    type Err = CaseError;

    fn from_str(s: &str) -> Result<Disposition, CaseError> {
        Disposition::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                CaseError::invalid(
                    "disposition",
                    format!("{s:?} is not one of true_positive, false_positive, benign, duplicate"),
                )
            })
    }
}

/// A case as the API and console show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Case {
    pub id: i64,
    pub title: String,
    pub status: CaseStatus,
    pub disposition: Option<Disposition>,
    pub severity: Severity,
    pub severity_id: i32,
    pub assignee: Option<String>,
    pub source: Option<String>,
    pub correlation_key: String,
    pub alert_count: i32,
    pub tags: Vec<String>,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub first_seen_at: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub last_seen_at: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub updated_at: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub acknowledged_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub resolved_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub closed_at: Option<NaiveDateTime>,
    /// When the case must leave `new` to meet its SLA.
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub ack_due_at: Option<NaiveDateTime>,
    /// When the case must be resolved to meet its SLA.
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub resolve_due_at: Option<NaiveDateTime>,
    pub merged_into: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in CaseStatus::ALL {
            assert_eq!(s.as_str().parse::<CaseStatus>().unwrap(), s);
        }
        for d in Disposition::ALL {
            assert_eq!(d.as_str().parse::<Disposition>().unwrap(), d);
        }
        assert!("done".parse::<CaseStatus>().is_err());
        assert!(CaseStatus::Contained.is_open());
        assert!(!CaseStatus::Resolved.is_open());
    }
}
