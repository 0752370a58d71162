//! Prometheus Alertmanager webhook notifications (`webhook_config` receiver, payload
//! `"version": "4"`, as documented in Alertmanager's configuration reference).
//!
//! One notification carries a group of alerts; each entry of `alerts[]` becomes one alert:
//!
//! | Alertmanager                          | Tocsin                                        |
//! |---------------------------------------|-----------------------------------------------|
//! | `version`                             | must be `"4"`, otherwise the event is refused |
//! | `alerts[].annotations.summary`        | title (else `labels.alertname`)               |
//! | `alerts[].annotations.description`    | description                                   |
//! | `alerts[].labels.alertname`           | rule name                                     |
//! | `alerts[].labels.severity`            | severity (see [`severity`])                   |
//! | `alerts[].startsAt`                   | event time                                    |
//! | `alerts[].fingerprint`                | fingerprint and external id                   |
//! | `alerts[].status` = `resolved`        | state `resolved` (`firing` is active)         |
//! | `alerts[].labels.instance`            | observable, role target (see [`instance`])    |
//! | `alerts[].labels`                     | tags `name=value`, sorted                     |
//!
//! The group-level fields (`groupKey`, `groupLabels`, `commonLabels`, `commonAnnotations`,
//! `receiver`, `externalURL`, `truncatedAlerts`) repeat or summarize what each entry
//! already carries and are not used.
//!
//! The class is Security Finding: Alertmanager reports infrastructure conditions (a target
//! down, a disk filling up), not detections of an attack.
//!
//! Only `instance` becomes an observable. It is the one label Prometheus itself attaches
//! to every scraped target and it names the affected endpoint. Other labels such as `job`,
//! `namespace` or `pod` are scheduling metadata rather than indicators; no observable kind
//! fits them and `other` would lose the label's name, so they are kept as `name=value`
//! tags instead.

use super::fields::{self, get, opt_object, opt_str, opt_time};
use super::NormalizeError;
use crate::alert::{AlertClass, AlertState, NewAlert, ObservableKind, ObservableRole, Severity};
use serde_json::Value;
use std::net::IpAddr;

const VENDOR: &str = "Prometheus";
const PRODUCT: &str = "Alertmanager";

/// Normalizes one webhook notification into one alert per entry of `alerts`.
pub fn normalize(event: &Value) -> Result<Vec<NewAlert>, NormalizeError> {
    match opt_str(event, "/version")? {
        None => return Err(NormalizeError::missing("/version")),
        Some(v) if v.trim() == "4" => {}
        Some(v) => {
            return Err(NormalizeError::invalid(
                "/version",
                format!("payload version {v:?} is not supported; expected \"4\""),
            ))
        }
    }
    let alerts = match get(event, "/alerts") {
        None => return Err(NormalizeError::missing("/alerts")),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(NormalizeError::wrong_type("/alerts", "an array")),
    };
    (0..alerts.len())
        .map(|i| normalize_entry(event, &format!("/alerts/{i}")))
        .collect()
}

/// The entry of `alerts[]` at pointer `base` in `event`.
fn normalize_entry(event: &Value, base: &str) -> Result<NewAlert, NormalizeError> {
    if !get(event, base).is_some_and(Value::is_object) {
        return Err(NormalizeError::wrong_type(base, "an object"));
    }
    let at = |rest: &str| format!("{base}{rest}");
    let labels = opt_object(event, &at("/labels"))?;
    opt_object(event, &at("/annotations"))?;

    let alertname = opt_str(event, &at("/labels/alertname"))?;
    let summary = opt_str(event, &at("/annotations/summary"))?;
    let title = match (summary, &alertname) {
        (Some(s), _) => s,
        (None, Some(name)) => name.clone(),
        (None, None) => return Err(NormalizeError::missing(&at("/labels/alertname"))),
    };
    let severity =
        opt_str(event, &at("/labels/severity"))?.map_or(Severity::Unknown, |s| severity(&s));

    let mut alert = NewAlert::new(
        AlertClass::SecurityFinding,
        severity,
        title,
        VENDOR,
        PRODUCT,
    );
    alert.description = opt_str(event, &at("/annotations/description"))?;
    alert.event_time = opt_time(event, &at("/startsAt"))?;
    alert.rule_name = alertname;
    let fingerprint = opt_str(event, &at("/fingerprint"))?;
    alert.external_id = fingerprint.clone();
    alert.fingerprint = fingerprint;
    alert.state = match opt_str(event, &at("/status"))? {
        None => AlertState::Active,
        Some(s) if s.eq_ignore_ascii_case("firing") => AlertState::Active,
        Some(s) if s.eq_ignore_ascii_case("resolved") => AlertState::Resolved,
        Some(s) => {
            return Err(NormalizeError::invalid(
                &at("/status"),
                format!("{s:?} is neither \"firing\" nor \"resolved\""),
            ))
        }
    };

    if let Some(raw) = opt_str(event, &at("/labels/instance"))? {
        let (kind, value) = instance(&raw);
        fields::observe(
            &mut alert,
            kind,
            value,
            Some(ObservableRole::Target),
            &at("/labels/instance"),
        )?;
    }

    if let Some(labels) = labels {
        let mut tags = Vec::with_capacity(labels.len());
        for (name, value) in labels {
            let text = match value {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    let pointer = format!("{base}/labels/{}", escape(name));
                    return Err(NormalizeError::wrong_type(&pointer, "a string"));
                }
            };
            tags.push(format!("{name}={text}"));
        }
        tags.sort();
        tags.dedup();
        alert.tags = tags;
    }
    Ok(alert)
}

/// Maps the `severity` label, a convention of alerting rules rather than a fixed scale,
/// through [`Severity::from_word`]: `info` → Informational, `warning` → Medium,
/// `error` → High, `critical` → Critical, `page` → Fatal, and so on. Words it does not
/// know (`none`, team-specific levels) are Unknown.
pub fn severity(label: &str) -> Severity {
    Severity::from_word(label).unwrap_or(Severity::Unknown)
}

/// The observable an `instance` label names. Prometheus sets `instance` to the scraped
/// `host:port` by default; exporters such as the blackbox exporter are usually relabeled
/// so that it holds the probed URL instead. A URL is kept as a URL, an address (with its
/// port removed, IPv6 in brackets or bare) as an IP, anything else as a host name.
pub fn instance(raw: &str) -> (ObservableKind, &str) {
    let raw = raw.trim();
    if raw.contains("://") {
        return (ObservableKind::Url, raw);
    }
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // `[2001:db8::1]:9100`
        rest.split_once(']').map_or(raw, |(h, _)| h)
    } else if raw.parse::<IpAddr>().is_ok() {
        // A bare address, which for IPv6 contains colons that are not a port.
        raw
    } else {
        match raw.rsplit_once(':') {
            Some((h, port))
                if !h.contains(':')
                    && !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                h
            }
            _ => raw,
        }
    };
    if host.parse::<IpAddr>().is_ok() {
        (ObservableKind::Ip, host)
    } else {
        (ObservableKind::Host, host)
    }
}

/// Escapes an object key for use in a JSON pointer.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn instance_ports_are_stripped() {
        assert_eq!(instance("10.0.0.5:9100"), (ObservableKind::Ip, "10.0.0.5"));
        assert_eq!(
            instance("node-1.example.org:9100"),
            (ObservableKind::Host, "node-1.example.org")
        );
        assert_eq!(
            instance("[2001:db8::7]:9100"),
            (ObservableKind::Ip, "2001:db8::7")
        );
        assert_eq!(instance("2001:db8::7"), (ObservableKind::Ip, "2001:db8::7"));
        assert_eq!(instance("db-primary"), (ObservableKind::Host, "db-primary"));
        assert_eq!(
            instance("https://shop.example.org/health"),
            (ObservableKind::Url, "https://shop.example.org/health")
        );
        // Not a port: left alone for validation to judge.
        assert_eq!(instance("host:abc"), (ObservableKind::Host, "host:abc"));
    }

    #[test]
    fn severity_words() {
        assert_eq!(severity("critical"), Severity::Critical);
        assert_eq!(severity("warning"), Severity::Medium);
        assert_eq!(severity("info"), Severity::Informational);
        assert_eq!(severity("page"), Severity::Fatal);
        assert_eq!(severity("sev-whatever"), Severity::Unknown);
    }

    #[test]
    fn errors_name_the_entry() {
        let base = json!({ "version": "4", "alerts": [
            { "labels": { "alertname": "A" } },
            { "labels": { "job": "x" } }
        ]});
        let err = normalize(&base).unwrap_err();
        assert_eq!(err.field, "alerts.1.labels.alertname");

        let bad = json!({ "version": "4", "alerts": [{ "labels": { "alertname": ["x"] } }] });
        assert_eq!(
            normalize(&bad).unwrap_err().field,
            "alerts.0.labels.alertname"
        );

        let bad =
            json!({ "version": "4", "alerts": [{ "labels": { "alertname": "A", "a/b": {} } }] });
        assert_eq!(normalize(&bad).unwrap_err().field, "alerts.0.labels.a/b");

        let bad = json!({ "version": "4", "alerts": [{ "status": "pending", "labels": { "alertname": "A" } }] });
        assert_eq!(normalize(&bad).unwrap_err().field, "alerts.0.status");

        assert_eq!(
            normalize(&json!({ "alerts": [] })).unwrap_err().field,
            "version"
        );
        assert!(normalize(&json!({ "version": "4", "alerts": [] }))
            .unwrap()
            .is_empty());
    }
}
