//! PLACEHOLDER: replaced by the real normalizer before this lands.

use super::NormalizeError;
use crate::alert::NewAlert;
use serde_json::Value;

/// Normalizes one event.
pub fn normalize(_event: &Value) -> Result<Vec<NewAlert>, NormalizeError> {
    Err(NormalizeError::invalid("", "not implemented yet"))
}
