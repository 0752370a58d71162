//! PLACEHOLDER: replaced by the real JSONPath mapping before this lands.

use super::NormalizeError;
use crate::alert::NewAlert;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The JSONPath mapping of a generic source.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GenericMapping {
    pub title: String,
}

impl GenericMapping {
    /// Checks every expression compiles.
    pub fn validate(&self) -> Result<(), NormalizeError> {
        Ok(())
    }
}

/// Normalizes one event.
pub fn normalize(
    _mapping: &GenericMapping,
    _event: &Value,
) -> Result<Vec<NewAlert>, NormalizeError> {
    Err(NormalizeError::invalid("", "not implemented yet"))
}
