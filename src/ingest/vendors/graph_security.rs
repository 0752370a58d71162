//! Microsoft Graph security API alerts: one `microsoft.graph.security.alert` (the v2
//! alerts_v2 resource of Graph v1.0, as `GET /security/alerts_v2/{id}` returns it or a
//! change notification carries it) becomes one Detection Finding.
//!
//! The mapping, shared with `defender_o365`, is documented in [`super::graph_alert`]: `title`
//! is required; `severity` maps one to one (`unknown` → Unknown); `id` is the external id
//! and the fingerprint; `status` `resolved` resolves; `evidence[]` gives the observables.
//! The product is the alert's `productName`, else the product its `serviceSource` names.

use super::{graph_alert, NormalizeError};
use crate::alert::NewAlert;
use serde_json::Value;

/// Normalizes one Graph alert.
pub fn normalize(event: &Value) -> Result<Vec<NewAlert>, NormalizeError> {
    Ok(vec![graph_alert::normalize(event, graph_alert::DETECTION)?])
}
