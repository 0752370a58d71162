//! Microsoft Sentinel incidents, as the Sentinel incidents REST API returns one
//! (`Microsoft.SecurityInsights/incidents`, api-version 2023-02-01: `id`, `name`, `etag`,
//! `properties`) or as the "Microsoft Sentinel incident" trigger of an automation rule's
//! playbook (Logic App) delivers it: there the incident is wrapped in an envelope whose
//! `object` key holds it (beside `eventUniqueId`, `objectSchemaType`, `objectEventType`,
//! `workspaceId`, `workspaceInfo`). An event with an `object` key is read as that envelope,
//! and errors then name fields under `object.`.
//!
//! Mapping (all under `properties.` unless said otherwise): `title` → title (required),
//! `description`, `severity` (see [`severity`]), `firstActivityTimeUtc` (else
//! `createdTimeUtc`) → event time, the last segment of the first `relatedAnalyticRuleIds`
//! entry (the analytics rule's id) → rule id, `name` (the incident id) → external id, the
//! ARM resource `id` (lower-cased: ARM ids are case-insensitive and the trigger and the API
//! spell `Incidents` differently) → fingerprint, as the incident keeps it when updated;
//! `status` `Closed` → resolved. Tags: each label's `labelName`, `classification=`,
//! `tactic=` and `technique=` (`additionalData.tactics`/`techniques`), `product=`
//! (`additionalData.alertProductNames`).
//!
//! Observables come from `relatedEntities` (sent by the playbook trigger), each a Sentinel
//! entity with a `kind` and `properties`: Account → user (`accountName@upnSuffix`, else
//! `ntDomain\accountName`, else `accountName`), Host → host (`hostName.dnsDomain`, else
//! `hostName`, else `netBiosName`), Ip `address`, Url `url`, FileHash `hashValue` by its
//! `algorithm`, File `fileName`, Process `commandLine`, DnsResolution `domainName`,
//! Mailbox `mailboxPrimaryAddress`, and MailMessage `internetMessageId`, `p1Sender` and
//! `p2Sender` (sender), `recipient`, `senderIP` (src) and `urls`. Entities carry no role in
//! an incident: accounts, hosts and mailboxes are `target`, the rest `related`. Other
//! entity kinds are skipped.

use super::fields::{self, observe, observe_at, opt_array, opt_str, opt_time};
use super::NormalizeError;
use crate::alert::{AlertClass, AlertState, NewAlert, ObservableKind, ObservableRole, Severity};
use serde_json::Value;

/// Maps Sentinel incident severity (`High`, `Medium`, `Low`, `Informational`) to OCSF one to
/// one, ignoring case; anything else or absence is `Unknown`.
pub fn severity(word: Option<&str>) -> Severity {
    match word.map(|w| w.trim().to_ascii_lowercase()).as_deref() {
        Some("informational") => Severity::Informational,
        Some("low") => Severity::Low,
        Some("medium") => Severity::Medium,
        Some("high") => Severity::High,
        _ => Severity::Unknown,
    }
}

/// Normalizes one incident (bare or in the playbook trigger's envelope).
pub fn normalize(event: &Value) -> Result<Vec<NewAlert>, NormalizeError> {
    let root = match event.get("object") {
        None | Some(Value::Null) => "",
        Some(Value::Object(_)) => "/object",
        Some(_) => return Err(NormalizeError::wrong_type("/object", "an object")),
    };
    let p = |field: &str| format!("{root}/properties/{field}");

    let title = fields::req_str(event, &p("title"))?;
    let severity = severity(opt_str(event, &p("severity"))?.as_deref());
    let mut alert = NewAlert::new(
        AlertClass::IncidentFinding,
        severity,
        title.trim(),
        "Microsoft",
        "Microsoft Sentinel",
    );
    alert.description = opt_str(event, &p("description"))?;
    alert.event_time = match opt_time(event, &p("firstActivityTimeUtc"))? {
        Some(t) => Some(t),
        None => opt_time(event, &p("createdTimeUtc"))?,
    };
    if !opt_array(event, &p("relatedAnalyticRuleIds"))?.is_empty() {
        alert.rule_id = opt_str(event, &p("relatedAnalyticRuleIds/0"))?
            .and_then(|id| last_segment(&id).map(str::to_string));
    }
    let id = opt_str(event, &format!("{root}/id"))?;
    let name = opt_str(event, &format!("{root}/name"))?;
    alert.external_id = name
        .clone()
        .or_else(|| id.as_deref().and_then(last_segment).map(str::to_string));
    alert.fingerprint = id.or(name).map(|f| f.trim().to_ascii_lowercase());
    if opt_str(event, &p("status"))?.is_some_and(|s| s.trim().eq_ignore_ascii_case("closed")) {
        alert.state = AlertState::Resolved;
    }
    alert.tags = tags(event, &format!("{root}/properties"))?;
    for i in 0..opt_array(event, &p("relatedEntities"))?.len() {
        observe_entity(&mut alert, event, &p(&format!("relatedEntities/{i}")))?;
    }
    Ok(vec![alert])
}

/// The last non-empty `/`-separated segment of an ARM resource id.
fn last_segment(id: &str) -> Option<&str> {
    id.trim().split('/').rfind(|s| !s.is_empty())
}

fn tags(event: &Value, props: &str) -> Result<Vec<String>, NormalizeError> {
    let mut tags = Vec::new();
    for i in 0..opt_array(event, &format!("{props}/labels"))?.len() {
        if let Some(label) = opt_str(event, &format!("{props}/labels/{i}/labelName"))? {
            tags.push(label.trim().to_string());
        }
    }
    if let Some(c) = opt_str(event, &format!("{props}/classification"))? {
        tags.push(format!("classification={}", c.trim()));
    }
    for (key, list) in [
        ("tactic", "tactics"),
        ("technique", "techniques"),
        ("product", "alertProductNames"),
    ] {
        let pointer = format!("{props}/additionalData/{list}");
        for i in 0..opt_array(event, &pointer)?.len() {
            if let Some(v) = opt_str(event, &format!("{pointer}/{i}"))? {
                tags.push(format!("{key}={}", v.trim()));
            }
        }
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// Adds the observables of one Sentinel entity at `base` (`kind` and `properties`).
fn observe_entity(alert: &mut NewAlert, event: &Value, base: &str) -> Result<(), NormalizeError> {
    use ObservableKind as K;
    let related = Some(ObservableRole::Related);
    let target = Some(ObservableRole::Target);
    let Some(kind) = opt_str(event, &format!("{base}/kind"))? else {
        return Ok(());
    };
    let at = |field: &str| format!("{base}/properties/{field}");
    match kind.trim().to_ascii_lowercase().as_str() {
        "account" => {
            let name_at = at("accountName");
            let Some(name) = opt_str(event, &name_at)? else {
                return Ok(());
            };
            let value = match (
                opt_str(event, &at("upnSuffix"))?,
                opt_str(event, &at("ntDomain"))?,
            ) {
                (Some(suffix), _) => format!("{}@{}", name.trim(), suffix.trim()),
                (None, Some(domain)) => format!("{}\\{}", domain.trim(), name.trim()),
                (None, None) => name,
            };
            observe(alert, K::User, &value, target, &name_at)?;
        }
        "host" => {
            let host_at = at("hostName");
            match opt_str(event, &host_at)? {
                Some(host) => {
                    let value = match opt_str(event, &at("dnsDomain"))? {
                        Some(domain) => format!("{}.{}", host.trim(), domain.trim()),
                        None => host,
                    };
                    observe(alert, K::Host, &value, target, &host_at)?;
                }
                None => observe_at(alert, event, &at("netBiosName"), K::Host, target)?,
            }
        }
        "ip" => observe_at(alert, event, &at("address"), K::Ip, related)?,
        "url" => observe_at(alert, event, &at("url"), K::Url, related)?,
        "filehash" => {
            let algorithm = opt_str(event, &at("algorithm"))?.unwrap_or_default();
            let kind = match algorithm.trim().to_ascii_uppercase().as_str() {
                "MD5" => K::Md5,
                "SHA1" => K::Sha1,
                "SHA256" => K::Sha256,
                // `SHA256AC` (an Authenticode hash) and `Unknown` are no file-content hash.
                _ => return Ok(()),
            };
            observe_at(alert, event, &at("hashValue"), kind, related)?;
        }
        "file" => observe_at(alert, event, &at("fileName"), K::File, related)?,
        "process" => observe_at(alert, event, &at("commandLine"), K::Process, related)?,
        "dnsresolution" => observe_at(alert, event, &at("domainName"), K::Domain, related)?,
        "mailbox" => observe_at(alert, event, &at("mailboxPrimaryAddress"), K::Email, target)?,
        "mailmessage" => {
            let sender = Some(ObservableRole::Sender);
            observe_at(
                alert,
                event,
                &at("internetMessageId"),
                K::MessageId,
                related,
            )?;
            observe_at(alert, event, &at("p1Sender"), K::Email, sender)?;
            observe_at(alert, event, &at("p2Sender"), K::Email, sender)?;
            let to = Some(ObservableRole::Recipient);
            observe_at(alert, event, &at("recipient"), K::Email, to)?;
            let src = Some(ObservableRole::Src);
            observe_at(alert, event, &at("senderIP"), K::Ip, src)?;
            for u in 0..opt_array(event, &at("urls"))?.len() {
                observe_at(alert, event, &at(&format!("urls/{u}")), K::Url, related)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn severity_follows_sentinel_levels() {
        assert_eq!(severity(Some("High")), Severity::High);
        assert_eq!(severity(Some("Medium")), Severity::Medium);
        assert_eq!(severity(Some("Low")), Severity::Low);
        assert_eq!(severity(Some("Informational")), Severity::Informational);
        assert_eq!(severity(Some("Critical")), Severity::Unknown);
        assert_eq!(severity(None), Severity::Unknown);
    }

    #[test]
    fn bare_and_wrapped_incidents_read_alike() {
        let incident = json!({
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w/providers/Microsoft.SecurityInsights/Incidents/abc",
            "name": "abc",
            "properties": { "title": "T", "severity": "Low", "status": "Closed",
                            "relatedAnalyticRuleIds": ["/x/alertRules/rule-1"] }
        });
        let bare = normalize(&incident).unwrap();
        let wrapped =
            normalize(&json!({ "objectSchemaType": "Incident", "object": incident })).unwrap();
        assert_eq!(bare, wrapped);
        assert_eq!(bare[0].state, AlertState::Resolved);
        assert_eq!(bare[0].rule_id.as_deref(), Some("rule-1"));
        assert_eq!(bare[0].external_id.as_deref(), Some("abc"));
        assert!(bare[0]
            .fingerprint
            .as_deref()
            .unwrap()
            .ends_with("/incidents/abc"));
    }

    #[test]
    fn missing_title_names_the_wrapped_field() {
        let err = normalize(&json!({ "object": { "properties": {} } })).unwrap_err();
        assert_eq!(err.field, "object.properties.title");
        let err = normalize(&json!({ "object": "x" })).unwrap_err();
        assert_eq!(err.field, "object");
    }

    #[test]
    fn last_segment_of_arm_ids() {
        assert_eq!(last_segment("/a/alertRules/r1"), Some("r1"));
        assert_eq!(last_segment("/a/b/"), Some("b"));
        assert_eq!(last_segment("plain"), Some("plain"));
        assert_eq!(last_segment("//"), None);
    }
}
