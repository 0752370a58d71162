//! TheHive alerts, as senders POST them to TheHive: the JSON body of `POST /api/v1/alert`
//! (TheHive 5, observables in `observables[]`) or of `POST /api/alert` (TheHive 3/4, the
//! same fields with observables in `artifacts[]`). Tools already configured to raise
//! TheHive alerts can be pointed at Tocsin unchanged.
//!
//! | TheHive                         | Tocsin                                              |
//! |---------------------------------|-----------------------------------------------------|
//! | `type`, `source`, `sourceRef`   | required; fingerprint `type|source|sourceRef`       |
//! | `sourceRef`                     | external id                                         |
//! | `title`                         | title (required)                                    |
//! | `description`                   | description                                         |
//! | `severity`                      | severity (see [`severity`])                         |
//! | `date` (epoch milliseconds)     | event time                                          |
//! | `tags[]`                        | tags, sorted and without duplicates                 |
//! | `observables[]` / `artifacts[]` | observables by `dataType` (see [`kind`])            |
//!
//! TheHive identifies an alert by the triple (`type`, `source`, `sourceRef`): posting the
//! same triple again is the same alert, which is what the fingerprint expresses. TheHive
//! documents `description` as required too; Tocsin accepts an alert without one.
//!
//! The class is Detection Finding: a body posted to TheHive's alert endpoint is a signal
//! raised by some upstream tool (a SIEM rule, an IDS, a mail filter, a MISP event) waiting
//! for triage. It becomes an incident only when an analyst promotes it to a case, and
//! cases are not what this endpoint receives.
//!
//! TheHive observables say nothing about the part a value plays, so they carry no role.
//! `tlp`, `pap`, `status`, `caseTemplate` and custom fields concern TheHive's own workflow
//! and are not used.

use super::fields::{self, get, opt_array, opt_i64, opt_str, opt_time, req_str};
use super::NormalizeError;
use crate::alert::{AlertClass, NewAlert, ObservableKind, Severity};
use serde_json::Value;

const VENDOR: &str = "StrangeBee";
const PRODUCT: &str = "TheHive";

/// Normalizes one alert body.
pub fn normalize(event: &Value) -> Result<Vec<NewAlert>, NormalizeError> {
    let kind = req_str(event, "/type")?;
    let source = req_str(event, "/source")?;
    let source_ref = req_str(event, "/sourceRef")?;
    let title = req_str(event, "/title")?;
    let severity = match opt_i64(event, "/severity")? {
        None => Severity::Medium,
        Some(n) => severity(n),
    };

    let mut alert = NewAlert::new(
        AlertClass::DetectionFinding,
        severity,
        title,
        VENDOR,
        PRODUCT,
    );
    alert.description = opt_str(event, "/description")?;
    alert.event_time = opt_time(event, "/date")?;
    alert.fingerprint = Some(format!("{kind}|{source}|{source_ref}"));
    alert.external_id = Some(source_ref);

    for list in ["/observables", "/artifacts"] {
        for i in 0..opt_array(event, list)?.len() {
            observable(&mut alert, event, &format!("{list}/{i}"))?;
        }
    }

    let mut tags = Vec::new();
    for (i, tag) in opt_array(event, "/tags")?.iter().enumerate() {
        match tag {
            Value::Null => {}
            Value::String(s) if s.trim().is_empty() => {}
            Value::String(s) => tags.push(s.trim().to_string()),
            _ => {
                return Err(NormalizeError::wrong_type(
                    &format!("/tags/{i}"),
                    "a string",
                ))
            }
        }
    }
    tags.sort();
    tags.dedup();
    alert.tags = tags;
    Ok(vec![alert])
}

/// TheHive 5 severities are 1 low, 2 medium, 3 high, 4 critical (TheHive 3/4 stop at 3),
/// which map to the OCSF levels of the same names. TheHive's documented default when the
/// field is absent is 2, medium; 0 ("not set" in early versions) and anything outside
/// the scale are Unknown.
pub fn severity(level: i64) -> Severity {
    match level {
        1 => Severity::Low,
        2 => Severity::Medium,
        3 => Severity::High,
        4 => Severity::Critical,
        _ => Severity::Unknown,
    }
}

/// The observable kind of a TheHive `dataType` and the value's text. Hashes are told
/// apart by length (32, 40, 64 hex digits: MD5, SHA-1, SHA-256); other hashes (SHA-512,
/// ssdeep) and the types Tocsin has no kind for (`mail-subject`, `user-agent`,
/// `uri_path`, `registry`, `regexp`, `autonomous-system`, custom types) are `other`.
/// `fqdn` is a fully qualified domain name and is read as a domain; `hostname` is a host.
/// `None` for `file`, whose content is an attachment rather than a value.
pub fn kind(data_type: &str, data: &str) -> Option<ObservableKind> {
    Some(match data_type.trim().to_ascii_lowercase().as_str() {
        "ip" => ObservableKind::Ip,
        "domain" | "fqdn" => ObservableKind::Domain,
        "hostname" => ObservableKind::Host,
        "url" => ObservableKind::Url,
        "mail" => ObservableKind::Email,
        "filename" => ObservableKind::File,
        "file" => return None,
        "hash" => {
            let hex = data.trim();
            match hex.len() {
                _ if !hex.bytes().all(|b| b.is_ascii_hexdigit()) => ObservableKind::Other,
                32 => ObservableKind::Md5,
                40 => ObservableKind::Sha1,
                64 => ObservableKind::Sha256,
                _ => ObservableKind::Other,
            }
        }
        _ => ObservableKind::Other,
    })
}

/// Adds the observable at `base` (an entry of `observables[]` or `artifacts[]`).
fn observable(alert: &mut NewAlert, event: &Value, base: &str) -> Result<(), NormalizeError> {
    if !get(event, base).is_some_and(Value::is_object) {
        return Err(NormalizeError::wrong_type(base, "an object"));
    }
    let data_type = req_str(event, &format!("{base}/dataType"))?;
    let data_at = format!("{base}/data");
    // TheHive 5 also takes several values of one type as an array.
    let values: Vec<(String, String)> = match get(event, &data_at) {
        Some(Value::Array(items)) => (0..items.len())
            .filter_map(|i| {
                let at = format!("{data_at}/{i}");
                opt_str(event, &at).transpose().map(|v| v.map(|v| (v, at)))
            })
            .collect::<Result<_, _>>()?,
        _ => opt_str(event, &data_at)?
            .map(|v| (v, data_at.clone()))
            .into_iter()
            .collect(),
    };
    if values.is_empty() {
        // A file observable carries an attachment instead of data.
        return match kind(&data_type, "") {
            Some(_) => Err(NormalizeError::missing(&data_at)),
            None => Ok(()),
        };
    }
    for (value, at) in values {
        if let Some(k) = kind(&data_type, &value) {
            fields::observe(alert, k, &value, None, &at)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hashes_by_length() {
        assert_eq!(kind("hash", &"a".repeat(32)), Some(ObservableKind::Md5));
        assert_eq!(kind("hash", &"B".repeat(40)), Some(ObservableKind::Sha1));
        assert_eq!(kind("hash", &"0".repeat(64)), Some(ObservableKind::Sha256));
        assert_eq!(kind("hash", &"0".repeat(128)), Some(ObservableKind::Other));
        assert_eq!(kind("hash", "3:abc:def"), Some(ObservableKind::Other));
        assert_eq!(kind("fqdn", "x.example"), Some(ObservableKind::Domain));
        assert_eq!(kind("user-agent", "curl/8"), Some(ObservableKind::Other));
        assert_eq!(kind("file", ""), None);
    }

    #[test]
    fn severity_scale() {
        assert_eq!(severity(1), Severity::Low);
        assert_eq!(severity(4), Severity::Critical);
        assert_eq!(severity(0), Severity::Unknown);
        assert_eq!(severity(9), Severity::Unknown);
    }

    #[test]
    fn observable_errors_name_the_field() {
        let base = json!({ "type": "t", "source": "s", "sourceRef": "r", "title": "x" });
        let with = |obs: Value| {
            let mut e = base.clone();
            e["artifacts"] = obs;
            normalize(&e)
        };
        let err = with(json!([{ "dataType": "ip", "data": "not-an-ip" }])).unwrap_err();
        assert_eq!(err.field, "artifacts.0.data");
        let err = with(json!([{ "dataType": "ip" }])).unwrap_err();
        assert_eq!(err.field, "artifacts.0.data");
        let err =
            with(json!([{ "dataType": "url", "data": ["https://a.example/", 5] }])).unwrap_err();
        assert_eq!(err.field, "artifacts.0.data.1");
        let ok = with(json!([{ "dataType": "file", "attachment": "part-1" }])).unwrap();
        assert!(ok[0].observables.is_empty());
        assert_eq!(ok[0].severity, Severity::Medium);
    }
}
