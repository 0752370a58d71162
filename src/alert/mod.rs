//! The normalized alert every vendor's event becomes, aligned with OCSF (the Open
//! Cybersecurity Schema Framework): class, severity, times, title, vendor and product,
//! rule, observables, and the raw payload kept verbatim.

pub mod observable;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use observable::{Observable, ObservableError, ObservableKind, ObservableRole};

/// OCSF event classes Tocsin's alerts fall into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertClass {
    /// OCSF 2004: a detection by a security product (SIEM rule, IDS signature, EDR).
    DetectionFinding,
    /// OCSF 2005: an incident grouping detections (Sentinel incidents).
    IncidentFinding,
    /// OCSF 4009: email seen, delivered, blocked or clicked (Proofpoint, Defender for Office 365).
    EmailActivity,
    /// OCSF 2001: a security finding that fits no narrower class (infrastructure alerts).
    SecurityFinding,
}

impl AlertClass {
    /// OCSF `class_uid`.
    pub fn uid(self) -> i32 {
        match self {
            AlertClass::SecurityFinding => 2001,
            AlertClass::DetectionFinding => 2004,
            AlertClass::IncidentFinding => 2005,
            AlertClass::EmailActivity => 4009,
        }
    }

    /// OCSF `class_name`.
    pub fn name(self) -> &'static str {
        match self {
            AlertClass::SecurityFinding => "Security Finding",
            AlertClass::DetectionFinding => "Detection Finding",
            AlertClass::IncidentFinding => "Incident Finding",
            AlertClass::EmailActivity => "Email Activity",
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertClass::SecurityFinding => "security_finding",
            AlertClass::DetectionFinding => "detection_finding",
            AlertClass::IncidentFinding => "incident_finding",
            AlertClass::EmailActivity => "email_activity",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<AlertClass> {
        [
            AlertClass::SecurityFinding,
            AlertClass::DetectionFinding,
            AlertClass::IncidentFinding,
            AlertClass::EmailActivity,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// OCSF `severity_id`, ordered so the highest of several is `max()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Unknown,
    Informational,
    Low,
    Medium,
    High,
    Critical,
    Fatal,
}

impl Severity {
    /// All severities, lowest first.
    pub const ALL: [Severity; 7] = [
        Severity::Unknown,
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
        Severity::Fatal,
    ];

    /// OCSF `severity_id` (0–6).
    pub fn id(self) -> i32 {
        match self {
            Severity::Unknown => 0,
            Severity::Informational => 1,
            Severity::Low => 2,
            Severity::Medium => 3,
            Severity::High => 4,
            Severity::Critical => 5,
            Severity::Fatal => 6,
        }
    }

    /// The severity with an OCSF id; 99 (Other) and anything unknown map to `Unknown`.
    pub fn from_id(id: i64) -> Severity {
        Severity::ALL
            .into_iter()
            .find(|s| i64::from(s.id()) == id)
            .unwrap_or(Severity::Unknown)
    }

    /// OCSF `severity` caption.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Unknown => "Unknown",
            Severity::Informational => "Informational",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
            Severity::Fatal => "Fatal",
        }
    }

    /// The stored, lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
            Severity::Fatal => "fatal",
        }
    }

    /// Reads the words vendors commonly use (case-insensitive): `info`, `informational`,
    /// `low`, `medium`/`moderate`, `warning`, `high`, `critical`/`crit`, `fatal`/`emergency`.
    pub fn from_word(word: &str) -> Option<Severity> {
        match word.trim().to_ascii_lowercase().as_str() {
            "unknown" | "unspecified" | "none" => Some(Severity::Unknown),
            "info" | "informational" | "information" | "notice" | "debug" => {
                Some(Severity::Informational)
            }
            "low" | "minor" => Some(Severity::Low),
            "medium" | "moderate" | "warning" | "warn" => Some(Severity::Medium),
            "high" | "major" | "error" | "severe" => Some(Severity::High),
            "critical" | "crit" | "alert" => Some(Severity::Critical),
            "fatal" | "emergency" | "emerg" | "page" => Some(Severity::Fatal),
            _ => None,
        }
    }
}

/// Whether the vendor says the condition still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Active,
    /// The vendor reports the condition over (Alertmanager `resolved`, Sentinel `Closed`).
    Resolved,
}

/// One alert as a normalizer produced it, before storage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewAlert {
    pub class: AlertClass,
    pub severity: Severity,
    pub title: String,
    pub description: Option<String>,
    /// When the vendor says it happened; `None` when the payload does not say.
    pub event_time: Option<DateTime<Utc>>,
    /// Vendor and product names as OCSF `metadata.product` (`vendor_name`, `name`).
    pub vendor: String,
    pub product: String,
    pub rule_id: Option<String>,
    pub rule_name: Option<String>,
    /// The vendor's own identifier for this alert, when it has one.
    pub external_id: Option<String>,
    /// A vendor-supplied identity for deduplication (Alertmanager's `fingerprint`); Tocsin
    /// derives one from rule and observables when absent.
    pub fingerprint: Option<String>,
    pub state: AlertState,
    pub observables: Vec<Observable>,
    /// Labels or tags the vendor attached, as `key` or `key=value`.
    pub tags: Vec<String>,
}

impl NewAlert {
    /// An alert with the required fields and everything else empty.
    pub fn new(
        class: AlertClass,
        severity: Severity,
        title: impl Into<String>,
        vendor: &str,
        product: &str,
    ) -> NewAlert {
        NewAlert {
            class,
            severity,
            title: title.into(),
            description: None,
            event_time: None,
            vendor: vendor.to_string(),
            product: product.to_string(),
            rule_id: None,
            rule_name: None,
            external_id: None,
            fingerprint: None,
            state: AlertState::Active,
            observables: Vec::new(),
            tags: Vec::new(),
        }
    }

    /// Adds an observable unless the same (kind, value, role) is already there.
    pub fn observe(&mut self, observable: Observable) {
        if !self.observables.contains(&observable) {
            self.observables.push(observable);
        }
    }

    /// The observable that identifies the alert for grouping: the first in priority order
    /// (an attacker-side address before a target, a host before a user, ...).
    pub fn primary_observable(&self) -> Option<&Observable> {
        self.observables.iter().min_by_key(|o| {
            (
                o.role.map_or(9, |r| r.primary_rank()),
                o.kind.primary_rank(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_ids_follow_ocsf() {
        assert_eq!(Severity::Informational.id(), 1);
        assert_eq!(Severity::Critical.id(), 5);
        assert_eq!(Severity::from_id(4), Severity::High);
        assert_eq!(Severity::from_id(99), Severity::Unknown);
        assert!(Severity::Critical > Severity::High);
        assert_eq!(Severity::from_word("WARNING"), Some(Severity::Medium));
        assert_eq!(Severity::from_word("sev-x"), None);
    }

    #[test]
    fn classes_follow_ocsf() {
        assert_eq!(AlertClass::DetectionFinding.uid(), 2004);
        assert_eq!(AlertClass::EmailActivity.uid(), 4009);
        assert_eq!(
            AlertClass::parse("incident_finding"),
            Some(AlertClass::IncidentFinding)
        );
    }

    #[test]
    fn primary_observable_prefers_source_address() {
        let mut a = NewAlert::new(AlertClass::DetectionFinding, Severity::High, "t", "v", "p");
        a.observe(
            Observable::new(ObservableKind::User, "bob", Some(ObservableRole::Target)).unwrap(),
        );
        a.observe(
            Observable::new(ObservableKind::Ip, "10.0.0.9", Some(ObservableRole::Dst)).unwrap(),
        );
        a.observe(
            Observable::new(ObservableKind::Ip, "203.0.113.7", Some(ObservableRole::Src)).unwrap(),
        );
        a.observe(
            Observable::new(ObservableKind::Ip, "203.0.113.7", Some(ObservableRole::Src)).unwrap(),
        );
        assert_eq!(a.observables.len(), 3);
        assert_eq!(a.primary_observable().unwrap().value, "203.0.113.7");
    }
}
