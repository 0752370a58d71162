//! Fingerprints (what makes two alerts the same alert) and correlation keys (what makes
//! alerts belong to the same case).

use crate::alert::NewAlert;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A part of the correlation key (`cases.correlate_by` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrelationField {
    /// The ingestion source; leave it out to group across sources.
    Source,
    /// The detection rule (its id, else its name, else the alert title).
    Rule,
    /// The alert's primary observable (attacker address, sender, host...).
    PrimaryObservable,
    /// The alert title as sent.
    Title,
}

/// The default key: source, rule and primary observable.
pub const DEFAULT_CORRELATION: [CorrelationField; 3] = [
    CorrelationField::Source,
    CorrelationField::Rule,
    CorrelationField::PrimaryObservable,
];

/// The alert's identity within its source: the vendor's own when it gives one, otherwise
/// vendor, product, rule (or title when there is no rule) and every observable.
pub fn fingerprint(source_id: i64, alert: &NewAlert) -> String {
    let mut h = Sha256::new();
    let mut part = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    part(&source_id.to_string());
    match &alert.fingerprint {
        Some(vendor_id) => {
            part("vendor");
            part(vendor_id);
        }
        None => {
            part("derived");
            part(&alert.vendor);
            part(&alert.product);
            part(
                alert
                    .rule_id
                    .as_deref()
                    .or(alert.rule_name.as_deref())
                    .unwrap_or(&alert.title),
            );
            let mut observables: Vec<String> = alert
                .observables
                .iter()
                .map(|o| {
                    format!(
                        "{}:{}:{}",
                        o.kind.as_str(),
                        o.role.map_or("", |r| r.as_str()),
                        o.value
                    )
                })
                .collect();
            observables.sort();
            for o in &observables {
                part(o);
            }
        }
    }
    hex::encode(h.finalize())
}

/// The grouping key built from `fields`. With the default fields, alerts from the same
/// rule about the same attacker, host or sender land in one case; a rule that fires on
/// many hosts makes one case per host.
pub fn correlation_key(fields: &[CorrelationField], source_id: i64, alert: &NewAlert) -> String {
    let mut h = Sha256::new();
    for field in fields {
        let value = match field {
            CorrelationField::Source => format!("source={source_id}"),
            CorrelationField::Rule => format!(
                "rule={}",
                alert
                    .rule_id
                    .as_deref()
                    .or(alert.rule_name.as_deref())
                    .unwrap_or(&alert.title)
            ),
            CorrelationField::PrimaryObservable => alert
                .primary_observable()
                .map(|o| format!("observable={}={}", o.kind.as_str(), o.value))
                .unwrap_or_else(|| "observable=".into()),
            CorrelationField::Title => format!("title={}", alert.title),
        };
        h.update((value.len() as u64).to_be_bytes());
        h.update(value.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertClass, Observable, ObservableKind, ObservableRole, Severity};

    fn alert(rule: &str, ip: &str, host: &str) -> NewAlert {
        let mut a = NewAlert::new(
            AlertClass::DetectionFinding,
            Severity::High,
            "Brute force",
            "V",
            "P",
        );
        a.rule_id = Some(rule.into());
        a.observe(Observable::new(ObservableKind::Ip, ip, Some(ObservableRole::Src)).unwrap());
        a.observe(
            Observable::new(ObservableKind::Host, host, Some(ObservableRole::Target)).unwrap(),
        );
        a
    }

    #[test]
    fn same_alert_same_fingerprint_regardless_of_observable_order() {
        let a = alert("r1", "203.0.113.5", "web1");
        let mut b = a.clone();
        b.observables.reverse();
        assert_eq!(fingerprint(1, &a), fingerprint(1, &b));
        assert_ne!(fingerprint(1, &a), fingerprint(2, &a));
        assert_ne!(
            fingerprint(1, &a),
            fingerprint(1, &alert("r1", "203.0.113.6", "web1"))
        );
    }

    #[test]
    fn fields_are_configurable() {
        let a = alert("r1", "203.0.113.5", "web1");
        let by_attacker = [CorrelationField::PrimaryObservable];
        assert_eq!(
            correlation_key(&by_attacker, 1, &a),
            correlation_key(&by_attacker, 2, &alert("r9", "203.0.113.5", "db"))
        );
        assert_ne!(
            correlation_key(&DEFAULT_CORRELATION, 1, &a),
            correlation_key(&DEFAULT_CORRELATION, 2, &a)
        );
    }

    #[test]
    fn vendor_fingerprint_wins() {
        let mut a = alert("r1", "203.0.113.5", "web1");
        a.fingerprint = Some("abc".into());
        let mut b = alert("r2", "198.51.100.1", "db1");
        b.fingerprint = Some("abc".into());
        assert_eq!(fingerprint(1, &a), fingerprint(1, &b));
    }

    #[test]
    fn correlation_groups_by_rule_and_primary_observable() {
        let a = alert("r1", "203.0.113.5", "web1");
        let other_host = alert("r1", "203.0.113.5", "web2");
        let d = &DEFAULT_CORRELATION;
        assert_eq!(
            correlation_key(d, 1, &a),
            correlation_key(d, 1, &other_host)
        );
        assert_ne!(
            correlation_key(d, 1, &a),
            correlation_key(d, 1, &alert("r1", "203.0.113.9", "web1"))
        );
        assert_ne!(
            correlation_key(d, 1, &a),
            correlation_key(d, 1, &alert("r2", "203.0.113.5", "web1"))
        );
    }
}
