//! One normalizer per vendor: each turns one event (a JSON value, as the vendor sends it)
//! into zero or more normalized alerts, or an error naming the offending field.

pub mod alertmanager;
pub mod defender_o365;
pub mod elastic;
pub mod fields;
pub mod generic;
pub mod graph_alert;
pub mod graph_security;
pub mod proofpoint_tap;
pub mod sentinel;
pub mod splunk;
pub mod suricata;
pub mod thehive;
pub mod wazuh;

use crate::alert::NewAlert;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// Why an event could not be normalized; `field` is the dotted path inside the event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {reason}")]
pub struct NormalizeError {
    pub field: String,
    pub reason: String,
}

impl NormalizeError {
    /// A required field is absent or null.
    pub fn missing(pointer: &str) -> NormalizeError {
        NormalizeError {
            field: fields::field_name(pointer),
            reason: "is required".into(),
        }
    }

    /// A field has the wrong JSON type.
    pub fn wrong_type(pointer: &str, expected: &str) -> NormalizeError {
        NormalizeError {
            field: fields::field_name(pointer),
            reason: format!("must be {expected}"),
        }
    }

    /// A field's value is unusable.
    pub fn invalid(pointer: &str, reason: impl Into<String>) -> NormalizeError {
        NormalizeError {
            field: fields::field_name(pointer),
            reason: reason.into(),
        }
    }
}

/// The kinds of source Tocsin can ingest from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Splunk "webhook" alert action.
    Splunk,
    /// Elastic/Kibana webhook connector carrying detection-alert (ECS) fields.
    Elastic,
    /// Microsoft Sentinel incident (automation rule / Logic App trigger payload).
    Sentinel,
    /// Microsoft Graph security API alert (`microsoft.graph.security.alert`, v2).
    GraphSecurity,
    /// Microsoft Defender for Office 365 email alerts (Graph alert v2 from MDO).
    DefenderO365,
    /// Prometheus Alertmanager webhook, version 4.
    Alertmanager,
    /// Wazuh alert JSON (alerts.json / integrations).
    Wazuh,
    /// Suricata EVE JSON `alert` events.
    Suricata,
    /// Proofpoint TAP SIEM API events.
    ProofpointTap,
    /// TheHive alert body (`POST /api/v1/alert`).
    Thehive,
    /// Any JSON, mapped by JSONPath expressions in the source's configuration.
    Generic,
}

/// Every kind, for listings and tests.
pub const ALL_KINDS: [SourceKind; 11] = [
    SourceKind::Splunk,
    SourceKind::Elastic,
    SourceKind::Sentinel,
    SourceKind::GraphSecurity,
    SourceKind::DefenderO365,
    SourceKind::Alertmanager,
    SourceKind::Wazuh,
    SourceKind::Suricata,
    SourceKind::ProofpointTap,
    SourceKind::Thehive,
    SourceKind::Generic,
];

impl SourceKind {
    /// The stored and configured name.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Splunk => "splunk",
            SourceKind::Elastic => "elastic",
            SourceKind::Sentinel => "sentinel",
            SourceKind::GraphSecurity => "graph_security",
            SourceKind::DefenderO365 => "defender_o365",
            SourceKind::Alertmanager => "alertmanager",
            SourceKind::Wazuh => "wazuh",
            SourceKind::Suricata => "suricata",
            SourceKind::ProofpointTap => "proofpoint_tap",
            SourceKind::Thehive => "thehive",
            SourceKind::Generic => "generic",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind name that Tocsin does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown source kind {0:?}: expected one of splunk, elastic, sentinel, graph_security, defender_o365, alertmanager, wazuh, suricata, proofpoint_tap, thehive, generic")]
pub struct UnknownKind(pub String);

impl FromStr for SourceKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<SourceKind, UnknownKind> {
        ALL_KINDS
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// Per-source settings a normalizer may need.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The JSONPath mapping of a `generic` source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<generic::GenericMapping>,
}

impl SourceConfig {
    /// Checks that the configuration fits the kind (a generic source needs a valid mapping).
    pub fn validate(&self, kind: SourceKind) -> Result<(), NormalizeError> {
        match (kind, &self.mapping) {
            (SourceKind::Generic, Some(mapping)) => mapping.validate(),
            (SourceKind::Generic, None) => Err(NormalizeError::missing("/config/mapping")),
            (_, Some(_)) => Err(NormalizeError::invalid(
                "/config/mapping",
                format!("only generic sources take a mapping, not {kind}"),
            )),
            (_, None) => Ok(()),
        }
    }
}

/// Normalizes one event from a source of `kind`.
pub fn normalize(
    kind: SourceKind,
    config: &SourceConfig,
    event: &Value,
) -> Result<Vec<NewAlert>, NormalizeError> {
    if !event.is_object() {
        return Err(NormalizeError {
            field: "(event)".into(),
            reason: "each event must be a JSON object".into(),
        });
    }
    match kind {
        SourceKind::Splunk => splunk::normalize(event),
        SourceKind::Elastic => elastic::normalize(event),
        SourceKind::Sentinel => sentinel::normalize(event),
        SourceKind::GraphSecurity => graph_security::normalize(event),
        SourceKind::DefenderO365 => defender_o365::normalize(event),
        SourceKind::Alertmanager => alertmanager::normalize(event),
        SourceKind::Wazuh => wazuh::normalize(event),
        SourceKind::Suricata => suricata::normalize(event),
        SourceKind::ProofpointTap => proofpoint_tap::normalize(event),
        SourceKind::Thehive => thehive::normalize(event),
        SourceKind::Generic => match &config.mapping {
            Some(mapping) => generic::normalize(mapping, event),
            None => Err(NormalizeError::missing("/config/mapping")),
        },
    }
}
