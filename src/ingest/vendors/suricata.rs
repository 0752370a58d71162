//! Suricata EVE JSON records (Suricata 6.x–8.x, "Eve JSON Format" in the user guide and
//! `etc/schema.json`), one record per event.
//!
//! Only `event_type` `alert` records are alerts. Every other well-formed record (`flow`,
//! `http`, `dns`, `fileinfo`, `anomaly`, `stats`, ...) normalizes to no alert at all, so an
//! `eve.json` stream can be forwarded whole without each non-alert line being refused; a
//! record without an `event_type` is not EVE and is refused naming that field.
//!
//! | field | alert |
//! |---|---|
//! | `alert.signature` (the rule's `msg`, required) | title, rule_name |
//! | `alert.signature_id` | rule_id |
//! | `alert.severity` (classification priority, 1 = highest) | severity, by the table below |
//! | `alert.category` (the classtype's description) | description |
//! | `timestamp` | event_time |
//! | `alert.action` (allowed, blocked), `alert.metadata` (rule metadata, key → values) | tags `action=…`, then `key=value` sorted |
//! | `src_ip` / `dest_ip`; `alert.source.ip` / `alert.target.ip` (rules with `target:`) | ip, src / dst; src / target |
//! | `http.hostname`, `tls.sni`, `dns.query[].rrname` (7.x alerts), `dns.queries[].rrname` (8.x), `dns.rrname` | domain (or ip for a literal address), related |
//! | `http.url` with `http.hostname` (and `http.http_port`) | url `http://host[:port]/path`, related |
//! | `files[]` and `fileinfo`: `filename`, `md5`, `sha1`, `sha256` | file and hashes, related |
//!
//! Addresses and checksums are written by Suricata, so an invalid one is refused naming the
//! field. Host names, SNI, DNS names, URLs and file names are whatever the traffic carried:
//! an attacker chooses them, so values that are not valid observables are skipped rather
//! than letting a malformed Host header get the alert rejected. EVE has no alert id
//! (`flow_id` names the flow, shared by all its records), so `external_id` and
//! `fingerprint` stay empty. Names seen on the wire get the `related` role because an
//! alert's `src_ip`/`dest_ip` follow the packet that matched, which may be either side.

use super::fields::{self, observe_each_at, observe_free_form_at, opt_i64, opt_str, opt_time};
use super::NormalizeError;
use crate::alert::{AlertClass, NewAlert, Observable, ObservableKind, ObservableRole, Severity};
use serde_json::Value;

const VENDOR: &str = "OISF";
const PRODUCT: &str = "Suricata";

/// Normalizes one EVE record: one alert for an `alert` record, none for other types.
pub fn normalize(event: &Value) -> Result<Vec<NewAlert>, NormalizeError> {
    let event_type =
        opt_str(event, "/event_type")?.ok_or_else(|| NormalizeError::missing("/event_type"))?;
    if event_type.trim() != "alert" {
        return Ok(Vec::new());
    }
    if fields::get(event, "/alert").is_some_and(|a| !a.is_object()) {
        return Err(NormalizeError::wrong_type("/alert", "an object"));
    }
    let signature = opt_str(event, "/alert/signature")?
        .ok_or_else(|| NormalizeError::missing("/alert/signature"))?;
    let priority = opt_i64(event, "/alert/severity")?;

    let mut alert = NewAlert::new(
        AlertClass::DetectionFinding,
        priority.map_or(Severity::Unknown, severity_from_priority),
        signature.trim(),
        VENDOR,
        PRODUCT,
    );
    alert.rule_name = Some(signature);
    alert.rule_id = opt_str(event, "/alert/signature_id")?;
    alert.description = opt_str(event, "/alert/category")?;
    alert.event_time = opt_time(event, "/timestamp")?;

    observe(&mut alert, event)?;

    if let Some(action) = opt_str(event, "/alert/action")? {
        alert.tags.push(format!("action={}", action.trim()));
    }
    alert.tags.extend(metadata_tags(event)?);
    Ok(vec![alert])
}

/// `alert.severity` is the signature's priority from `classification.config` (or its
/// `priority` keyword), 1 the most urgent. Suricata's shipped classifications use 1–4:
/// 1 High, 2 Medium, 3 Low, 4 Informational; larger (still lower-priority) values are
/// Informational too, and 0 or less is `Unknown`.
fn severity_from_priority(priority: i64) -> Severity {
    match priority {
        i64::MIN..=0 => Severity::Unknown,
        1 => Severity::High,
        2 => Severity::Medium,
        3 => Severity::Low,
        _ => Severity::Informational,
    }
}

fn observe(alert: &mut NewAlert, event: &Value) -> Result<(), NormalizeError> {
    use ObservableKind::*;
    use ObservableRole::*;
    observe_each_at(alert, event, "/src_ip", Ip, Some(Src))?;
    observe_each_at(alert, event, "/dest_ip", Ip, Some(Dst))?;
    observe_each_at(alert, event, "/alert/source/ip", Ip, Some(Src))?;
    observe_each_at(alert, event, "/alert/target/ip", Ip, Some(Target))?;

    let hostname = opt_str(event, "/http/hostname")?;
    if let Some(host) = &hostname {
        observe_wire_name(alert, host);
    }
    if let Some(url) = http_url(event, hostname.as_deref())? {
        if let Ok(o) = Observable::new(Url, &url, Some(Related)) {
            alert.observe(o);
        }
    }
    if let Some(sni) = opt_str(event, "/tls/sni")? {
        observe_wire_name(alert, &sni);
    }
    for list in ["/dns/query", "/dns/queries"] {
        for i in 0..fields::opt_array(event, list)?.len() {
            if let Some(name) = opt_str(event, &format!("{list}/{i}/rrname"))? {
                observe_wire_name(alert, &name);
            }
        }
    }
    for pointer in ["/dns/rrname", "/dns/answer/rrname"] {
        if let Some(name) = opt_str(event, pointer)? {
            observe_wire_name(alert, &name);
        }
    }

    let mut files: Vec<String> = (0..fields::opt_array(event, "/files")?.len())
        .map(|i| format!("/files/{i}"))
        .collect();
    if fields::opt_object(event, "/fileinfo")?.is_some() {
        files.push("/fileinfo".to_string());
    }
    for file in files {
        observe_free_form_at(
            alert,
            event,
            &format!("{file}/filename"),
            File,
            Some(Related),
        )?;
        observe_each_at(
            alert,
            event,
            &format!("{file}/sha256"),
            Sha256,
            Some(Related),
        )?;
        observe_each_at(alert, event, &format!("{file}/sha1"), Sha1, Some(Related))?;
        observe_each_at(alert, event, &format!("{file}/md5"), Md5, Some(Related))?;
    }
    Ok(())
}

/// A name taken from traffic: a domain, or an IP address written literally (an HTTP Host
/// header of `203.0.113.5`); anything else is skipped.
fn observe_wire_name(alert: &mut NewAlert, raw: &str) {
    let role = Some(ObservableRole::Related);
    if let Ok(o) = Observable::new(ObservableKind::Ip, raw, role)
        .or_else(|_| Observable::new(ObservableKind::Domain, raw, role))
    {
        alert.observe(o);
    }
}

/// The request URL: `http.url` as logged when it is absolute (a proxy request), otherwise
/// the path joined to `http.hostname` and `http.http_port`. Suricata does not decrypt TLS,
/// so a logged HTTP transaction is plain `http`.
fn http_url(event: &Value, hostname: Option<&str>) -> Result<Option<String>, NormalizeError> {
    let Some(path) = opt_str(event, "/http/url")? else {
        return Ok(None);
    };
    let path = path.trim();
    let lower = path.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(Some(path.to_string()));
    }
    let (Some(host), true) = (hostname, path.starts_with('/')) else {
        return Ok(None);
    };
    let host = host.trim();
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]") // a literal IPv6 address
    } else {
        host.to_string()
    };
    Ok(Some(match opt_i64(event, "/http/http_port")? {
        Some(port) => format!("http://{host}:{port}{path}"),
        None => format!("http://{host}{path}"),
    }))
}

/// `alert.metadata` (each key holds an array of strings) as `key=value` tags, sorted.
fn metadata_tags(event: &Value) -> Result<Vec<String>, NormalizeError> {
    let mut tags = Vec::new();
    let Some(metadata) = fields::opt_object(event, "/alert/metadata")? else {
        return Ok(tags);
    };
    for key in metadata.keys() {
        let pointer = format!(
            "/alert/metadata/{}",
            key.replace('~', "~0").replace('/', "~1")
        );
        for (_, value) in fields::opt_strs(event, &pointer)? {
            tags.push(format!("{}={}", key.trim(), value.trim()));
        }
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn priority_table() {
        for (priority, want) in [
            (0, Severity::Unknown),
            (-3, Severity::Unknown),
            (1, Severity::High),
            (2, Severity::Medium),
            (3, Severity::Low),
            (4, Severity::Informational),
            (255, Severity::Informational),
        ] {
            assert_eq!(severity_from_priority(priority), want, "{priority}");
        }
    }

    #[test]
    fn other_event_types_give_no_alert() {
        for t in [
            "flow", "http", "dns", "fileinfo", "anomaly", "stats", "drop",
        ] {
            let out = normalize(&json!({ "event_type": t, "src_ip": "not checked" })).unwrap();
            assert!(out.is_empty(), "{t}");
        }
        assert_eq!(
            normalize(&json!({ "flow_id": 1 })).unwrap_err().field,
            "event_type"
        );
        assert_eq!(
            normalize(&json!({ "event_type": ["alert"] }))
                .unwrap_err()
                .field,
            "event_type"
        );
        assert_eq!(
            normalize(&json!({ "event_type": "alert" }))
                .unwrap_err()
                .field,
            "alert.signature"
        );
    }

    #[test]
    fn urls_from_host_and_path() {
        let url = |http: Value| {
            let e = json!({ "http": http });
            let host = opt_str(&e, "/http/hostname").unwrap();
            http_url(&e, host.as_deref()).unwrap()
        };
        assert_eq!(
            url(json!({ "hostname": "www.test.org", "url": "/a.tar.gz", "http_port": 1337 })),
            Some("http://www.test.org:1337/a.tar.gz".into())
        );
        assert_eq!(
            url(json!({ "hostname": "2001:db8::1", "url": "/x" })),
            Some("http://[2001:db8::1]/x".into())
        );
        assert_eq!(
            url(json!({ "hostname": "proxy", "url": "http://evil.example/p" })),
            Some("http://evil.example/p".into())
        );
        assert_eq!(url(json!({ "url": "/no-host" })), None);
        assert_eq!(url(json!({ "hostname": "h.example", "url": "*" })), None);
    }

    #[test]
    fn hostile_wire_names_do_not_refuse_the_alert() {
        let a = normalize(&json!({
            "event_type": "alert",
            "src_ip": "192.0.2.1",
            "alert": { "signature": "x", "severity": 1 },
            "http": { "hostname": "bad host\u{1}", "url": "/\u{0}" },
            "tls": { "sni": "..." }
        }))
        .unwrap();
        assert_eq!(a[0].observables.len(), 1);
    }
}
