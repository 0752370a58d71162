//! Alert ingestion: sources, request bodies, signatures, per-vendor normalizers, and the
//! group-commit writer that makes an acknowledged alert durable.

pub mod body;
pub mod signature;
pub mod sources;
pub mod vendors;
pub mod writer;

use crate::audit::AuditError;
use crate::cases::correlate::CorrelationField;
use crate::cases::record::PreparedAlert;
use crate::cases::CaseError;
use crate::db::DbError;
use serde::Serialize;
use sources::Source;

/// Ingestion failures.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unknown source or wrong ingestion token")]
    Unauthorized,
    #[error("no source {0:?}")]
    SourceNotFound(String),
    #[error("source {0:?} is disabled")]
    SourceDisabled(String),
    #[error(
        "missing or invalid HMAC-SHA256 signature (X-Tocsin-Signature: sha256=<hex of the body>)"
    )]
    BadSignature,
    #[error("{}", match .index { Some(i) => format!("event {i}: {message}"), None => message.clone() })]
    Body {
        index: Option<usize>,
        message: String,
    },
    #[error("{} of {total} events were refused; nothing was stored", .entries.len())]
    Rejected {
        total: usize,
        entries: Vec<EntryError>,
    },
    #[error("`{field}` {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0}")]
    Conflict(String),
    #[error("ingestion is overloaded; retry shortly")]
    Overloaded,
    #[error("internal ingestion error: {0}")]
    Internal(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Case(#[from] CaseError),
}

impl From<diesel::result::Error> for IngestError {
    fn from(err: diesel::result::Error) -> Self {
        IngestError::Db(DbError::Query(err))
    }
}

impl IngestError {
    /// An invalid request field.
    pub fn invalid(field: &str, reason: impl Into<String>) -> IngestError {
        IngestError::Invalid {
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    /// An invalid field inside a source's configuration.
    pub fn invalid_config(field: String, reason: String) -> IngestError {
        let field = if field.starts_with("config") {
            field
        } else {
            format!("config.{field}")
        };
        IngestError::Invalid { field, reason }
    }
}

/// Why one event of a request was refused.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EntryError {
    /// Position of the event in the request (0-based).
    pub index: usize,
    /// Dotted path of the offending field inside the event.
    pub field: String,
    pub reason: String,
}

/// Most per-event errors reported for one request.
const MAX_REPORTED: usize = 100;

/// Normalizes every event of a request; any refused event refuses the whole request.
pub fn prepare(
    source: &Source,
    events: &[body::RawEvent],
    correlate_by: &[CorrelationField],
) -> Result<Vec<PreparedAlert>, IngestError> {
    let mut prepared = Vec::with_capacity(events.len());
    let mut errors = Vec::new();
    for (index, event) in events.iter().enumerate() {
        match vendors::normalize(source.kind, &source.config, &event.value) {
            Ok(alerts) => {
                for alert in alerts {
                    prepared.push(PreparedAlert::new(
                        source.id,
                        alert,
                        event.text.clone(),
                        correlate_by,
                    ));
                }
            }
            Err(e) => {
                if errors.len() < MAX_REPORTED {
                    errors.push(EntryError {
                        index,
                        field: e.field,
                        reason: e.reason,
                    });
                } else {
                    break;
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(prepared)
    } else {
        Err(IngestError::Rejected {
            total: events.len(),
            entries: errors,
        })
    }
}
