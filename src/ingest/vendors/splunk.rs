//! Splunk "webhook" alert action (Splunk Enterprise / Splunk Cloud Platform 8.x–10.x,
//! "Use a webhook alert action" in the Alerting Manual).
//!
//! The action POSTs a fixed JSON body: `sid`, `search_name` (null when the search was not
//! saved), `app`, `owner`, `results_link` and `result`, the first row of the triggering
//! search's results with the search's own field names. Tocsin reads that row by the Splunk
//! Common Information Model (CIM) field names, which is what correlation searches and
//! CIM-mapped data produce; a field may be one string or, for a multivalue field, an array.
//!
//! | payload | alert |
//! |---|---|
//! | `search_name`, else `result.signature` (CIM Intrusion Detection/Malware/Alerts) | title; `search_name` is also `rule_name` |
//! | `result.severity` (CIM: critical, high, medium, low, informational), else `result.urgency` (Enterprise Security notables, same words) | severity |
//! | `result._time` (epoch seconds or ISO 8601) | event_time |
//! | `result.description`, then `results_link` | description |
//! | `sid` (the search job of this trigger) | external_id |
//! | `app`, `owner`, `result.tag` | tags `app=…`, `owner=…`, then each Splunk tag |
//! | `result.src` / `result.dest` (CIM: IP or host name) | ip or host, role src / dst |
//! | `result.src_ip` / `result.dest_ip` | ip, role src / dst |
//! | `result.src_user` (CIM: the user who initiated, e.g. a privilege escalation) | user, actor |
//! | `result.user` (CIM: the user involved, the target of an escalation or logon) | user, target |
//! | `result.url` (CIM Web) | url, related (skipped when not a full URL: logs often hold a path) |
//! | `result.url_domain` (CIM Web) | domain, related (free-form, skipped when invalid) |
//! | `result.file_hash` (CIM Malware/Endpoint) | md5, sha1 or sha256 by length, related (other digests skipped) |
//! | `result.file_name` (CIM Malware/Endpoint) | file, related |
//! | `result.process_name` (CIM Endpoint) | process, actor |
//!
//! CIM uses the literal value `unknown` for a field a source could not fill; such values
//! are not observables. The payload has no identity for "the same alert again" (one `sid`
//! covers every result of a "for each result" trigger), so `fingerprint` is left to Tocsin.

use super::fields::{
    get, observe, observe_address_at, observe_each_at, observe_free_form_at, opt_str, opt_strs,
    opt_time,
};
use super::NormalizeError;
use crate::alert::{AlertClass, NewAlert, ObservableKind, ObservableRole, Severity};
use serde_json::Value;

const VENDOR: &str = "Splunk";
const PRODUCT: &str = "Splunk Enterprise";

/// Normalizes one webhook body.
pub fn normalize(event: &Value) -> Result<Vec<NewAlert>, NormalizeError> {
    if get(event, "/result").is_some_and(|r| !r.is_object()) {
        return Err(NormalizeError::wrong_type("/result", "an object"));
    }
    let search_name = opt_str(event, "/search_name")?;
    let title = match &search_name {
        Some(name) => name.clone(),
        None => opt_str(event, "/result/signature")?
            .ok_or_else(|| NormalizeError::missing("/search_name"))?,
    };

    let mut alert = NewAlert::new(
        AlertClass::DetectionFinding,
        severity(event)?,
        title.trim(),
        VENDOR,
        PRODUCT,
    );
    alert.rule_name = search_name;
    alert.event_time = opt_time(event, "/result/_time")?;
    alert.external_id = opt_str(event, "/sid")?;
    alert.description = description(event)?;

    observe_cim(&mut alert, event)?;

    for (key, pointer) in [("app", "/app"), ("owner", "/owner")] {
        if let Some(value) = opt_str(event, pointer)? {
            alert.tags.push(format!("{key}={}", value.trim()));
        }
    }
    for (_, tag) in opt_strs(event, "/result/tag")? {
        let tag = tag.trim().to_string();
        if !alert.tags.contains(&tag) {
            alert.tags.push(tag);
        }
    }
    Ok(vec![alert])
}

/// CIM's `severity`, else Enterprise Security's `urgency`; both use the words
/// critical / high / medium / low / informational (plus `unknown`), which map one to one
/// onto OCSF. Anything else, or neither field, is `Unknown`.
fn severity(event: &Value) -> Result<Severity, NormalizeError> {
    for pointer in ["/result/severity", "/result/urgency"] {
        if let Some(word) = opt_str(event, pointer)? {
            if let Some(severity) = Severity::from_word(&word) {
                return Ok(severity);
            }
        }
    }
    Ok(Severity::Unknown)
}

fn description(event: &Value) -> Result<Option<String>, NormalizeError> {
    let parts: Vec<String> = [
        opt_str(event, "/result/description")?,
        opt_str(event, "/results_link")?.map(|link| format!("Search results: {}", link.trim())),
    ]
    .into_iter()
    .flatten()
    .collect();
    Ok((!parts.is_empty()).then(|| parts.join("\n\n")))
}

fn observe_cim(alert: &mut NewAlert, event: &Value) -> Result<(), NormalizeError> {
    use ObservableKind::*;
    use ObservableRole::*;
    // `unknown` is CIM's placeholder for a value the source did not have.
    let row = without_unknowns(event);
    let row = &row;
    observe_address_at(alert, row, "/result/src", Some(Src))?;
    observe_each_at(alert, row, "/result/src_ip", Ip, Some(Src))?;
    observe_address_at(alert, row, "/result/dest", Some(Dst))?;
    observe_each_at(alert, row, "/result/dest_ip", Ip, Some(Dst))?;
    observe_each_at(alert, row, "/result/src_user", User, Some(Actor))?;
    observe_each_at(alert, row, "/result/user", User, Some(Target))?;
    observe_free_form_at(alert, row, "/result/url", Url, Some(Related))?;
    observe_free_form_at(alert, row, "/result/url_domain", Domain, Some(Related))?;
    // CIM leaves the algorithm open: a digest of another length (SHA-512, imphash...) or a
    // combined `SHA256=…,MD5=…` string is no indicator kind Tocsin has, so it is skipped.
    for (field, value) in opt_strs(row, "/result/file_hash")? {
        if let Some(kind) = hash_kind(&value) {
            observe(alert, kind, &value, Some(Related), &field)?;
        }
    }
    observe_each_at(alert, row, "/result/file_name", File, Some(Related))?;
    observe_each_at(alert, row, "/result/process_name", Process, Some(Actor))?;
    Ok(())
}

/// The event with `result` values equal to `unknown` (any case) removed, single or in arrays.
fn without_unknowns(event: &Value) -> Value {
    let is_unknown = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("unknown"))
    };
    let mut copy = event.clone();
    if let Some(Value::Object(row)) = copy.get_mut("result") {
        row.retain(|_, v| !is_unknown(v));
        for value in row.values_mut() {
            if let Value::Array(items) = value {
                for item in items.iter_mut() {
                    if is_unknown(item) {
                        *item = Value::Null;
                    }
                }
            }
        }
    }
    copy
}

/// The hash kind a hexadecimal digest's length implies.
fn hash_kind(value: &str) -> Option<ObservableKind> {
    let v = value.trim();
    if !v.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    match v.len() {
        32 => Some(ObservableKind::Md5),
        40 => Some(ObservableKind::Sha1),
        64 => Some(ObservableKind::Sha256),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn severity_from_cim_words() {
        let sev = |result: Value| severity(&json!({ "result": result })).unwrap();
        assert_eq!(sev(json!({ "severity": "critical" })), Severity::Critical);
        assert_eq!(
            sev(json!({ "severity": "Informational" })),
            Severity::Informational
        );
        assert_eq!(sev(json!({ "urgency": "high" })), Severity::High);
        // severity wins over urgency; an unknown word falls through to urgency
        assert_eq!(
            sev(json!({ "severity": "low", "urgency": "high" })),
            Severity::Low
        );
        assert_eq!(
            sev(json!({ "severity": "p3", "urgency": "medium" })),
            Severity::Medium
        );
        assert_eq!(sev(json!({})), Severity::Unknown);
    }

    #[test]
    fn hash_kinds_by_length() {
        assert_eq!(hash_kind(&"a".repeat(32)), Some(ObservableKind::Md5));
        assert_eq!(hash_kind(&"B".repeat(40)), Some(ObservableKind::Sha1));
        assert_eq!(hash_kind(&"0".repeat(64)), Some(ObservableKind::Sha256));
        assert_eq!(hash_kind(&"0".repeat(128)), None);
        assert_eq!(hash_kind(&"z".repeat(32)), None);
    }

    #[test]
    fn title_falls_back_to_signature_then_refuses() {
        let a =
            normalize(&json!({ "search_name": null, "result": { "signature": "ET X" } })).unwrap();
        assert_eq!(a[0].title, "ET X");
        assert_eq!(a[0].rule_name, None);
        let err =
            normalize(&json!({ "search_name": null, "result": { "count": "8" } })).unwrap_err();
        assert_eq!(err.field, "search_name");
        let err = normalize(&json!({ "search_name": "x", "result": [1] })).unwrap_err();
        assert_eq!(err.field, "result");
    }

    #[test]
    fn unknown_placeholders_are_not_observables() {
        let a = normalize(&json!({
            "search_name": "s",
            "result": { "src": "unknown", "user": ["UNKNOWN", "alice"] }
        }))
        .unwrap();
        let values: Vec<_> = a[0].observables.iter().map(|o| o.value.as_str()).collect();
        assert_eq!(values, vec!["alice"]);
    }
}
