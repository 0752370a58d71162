//! Proofpoint Targeted Attack Protection (TAP) SIEM API v2 events, JSON format.
//!
//! An event is either a SIEM API response object (`/v2/siem/all` and friends: the arrays
//! `messagesDelivered`, `messagesBlocked`, `clicksPermitted`, `clicksBlocked`, plus
//! `queryEndTime`), whose every entry becomes one Email Activity alert (an empty response
//! gives none), or one message or click event on its own. A lone message event is taken as
//! blocked when it names a `quarantineFolder` or `quarantineRule` (TAP sets those only on
//! `messagesBlocked`), else as delivered. A lone click event cannot say whether the click
//! was blocked, so it is taken as permitted, the case that needs action.
//!
//! Message events: `GUID` → external id, `messageTime` → event time, `subject` (else the
//! first `recipient`) in the title ("Phish message delivered: <subject>", "Spam message to
//! <recipient> blocked"), `sender` and `fromAddress[]` → sender,
//! `replyToAddress[]` → email (related), `recipient[]` → recipient, `senderIP` → src,
//! `messageID` → message_id, `threatsInfoMap[].threat` by its `threatType` (`url` → url,
//! with `http://` added when TAP leaves the scheme out, a domain when it is a bare host
//! name, a hash when TAP names the URL by one; `attachment` → md5/sha1/sha256; `message`,
//! the impostor's address → sender), attached `messageParts[]` (`disposition` `attached`;
//! inline parts are the body) → sha256, md5, file.
//! Click events: `id` → external id, `clickTime` → event time, `url` (required) → url
//! (dst), `recipient` (the clicker) → recipient, `clickIP` → ip (target: it is the
//! clicker's address), `sender` → sender, `senderIP` → src, `messageID` → message_id.
//! Rule id: the `threatID` of the threat that set the severity. Tags: the event's array
//! name, `classification=`, `threat_type=`, `threat_status=`, `campaign=`, `policy_route=`,
//! `quarantine_folder=`, `quarantine_rule=`. The events carry no identity of an update, so
//! there is no fingerprint.
//!
//! `messageID` is the raw Message-ID header, set by whoever sent the (malicious) message,
//! and in click events Proofpoint's own example holds a UUID there: it is observed only
//! when it has the `local@domain` form, never refused.

use super::fields::{self, observe, observe_at, opt_array, opt_f64, opt_str, opt_time};
use super::NormalizeError;
use crate::alert::{AlertClass, NewAlert, Observable, ObservableKind, ObservableRole, Severity};
use serde_json::Value;

const VENDOR: &str = "Proofpoint";
const PRODUCT: &str = "Targeted Attack Protection";

/// The four SIEM API event lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    MessagesDelivered,
    MessagesBlocked,
    ClicksPermitted,
    ClicksBlocked,
}

impl EventType {
    const ALL: [EventType; 4] = [
        EventType::MessagesDelivered,
        EventType::MessagesBlocked,
        EventType::ClicksPermitted,
        EventType::ClicksBlocked,
    ];

    /// The response key holding events of this type.
    fn key(self) -> &'static str {
        match self {
            EventType::MessagesDelivered => "messagesDelivered",
            EventType::MessagesBlocked => "messagesBlocked",
            EventType::ClicksPermitted => "clicksPermitted",
            EventType::ClicksBlocked => "clicksBlocked",
        }
    }

    fn is_click(self) -> bool {
        matches!(self, EventType::ClicksPermitted | EventType::ClicksBlocked)
    }
}

/// A TAP threat classification, most dangerous first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Threat {
    Malware,
    Phish,
    Impostor,
    Spam,
    /// A classification Tocsin does not know, or none.
    Other,
}

impl Threat {
    /// Reads a TAP `classification` (`malware`, `phish`, `spam`, `impostor`; any case).
    pub fn parse(word: &str) -> Threat {
        match word.trim().to_ascii_lowercase().as_str() {
            "malware" => Threat::Malware,
            "phish" | "phishing" => Threat::Phish,
            "impostor" | "imposter" => Threat::Impostor,
            "spam" => Threat::Spam,
            _ => Threat::Other,
        }
    }

    /// The word used in titles.
    fn word(self) -> &'static str {
        match self {
            Threat::Malware => "Malware",
            Threat::Phish => "Phish",
            Threat::Impostor => "Impostor",
            Threat::Spam => "Spam",
            Threat::Other => "Malicious",
        }
    }
}

/// The severity mapping:
///
/// | event             | malware, phish | impostor | spam          | other / none |
/// |-------------------|----------------|----------|---------------|--------------|
/// | clicksPermitted   | Critical       | High     | Medium        | High         |
/// | messagesDelivered | High           | High     | Low           | Medium       |
/// | clicksBlocked     | Medium         | Low      | Informational | Low          |
/// | messagesBlocked   | Low            | Low      | Informational | Low          |
///
/// A permitted click on malware or phish means a user reached the threat; a delivered
/// threat sits in a mailbox; blocked events need no action beyond awareness (a blocked
/// click still shows a user who clicks). The classification is the most dangerous of the
/// event's threats that TAP has not marked `falsePositive`; a message with no such threat
/// falls back to its scores (see [`from_scores`]); a message whose every threat is a false
/// positive is Informational.
pub fn severity(event_type: EventType, threat: Threat) -> Severity {
    use EventType as E;
    use Severity as S;
    match (event_type, threat) {
        (E::ClicksPermitted, Threat::Malware | Threat::Phish) => S::Critical,
        (E::ClicksPermitted, Threat::Impostor | Threat::Other) => S::High,
        (E::ClicksPermitted, Threat::Spam) => S::Medium,
        (E::MessagesDelivered, Threat::Malware | Threat::Phish | Threat::Impostor) => S::High,
        (E::MessagesDelivered, Threat::Spam) => S::Low,
        (E::MessagesDelivered, Threat::Other) => S::Medium,
        (E::ClicksBlocked, Threat::Malware | Threat::Phish) => S::Medium,
        (E::ClicksBlocked, Threat::Impostor | Threat::Other) => S::Low,
        (E::ClicksBlocked, Threat::Spam) => S::Informational,
        (E::MessagesBlocked, Threat::Spam) => S::Informational,
        (E::MessagesBlocked, _) => S::Low,
    }
}

/// The classification TAP's message scores (0–100, higher is more certain) point to: the
/// first of malware, phish, impostor, spam whose score is at least 50.
pub fn from_scores(malware: f64, phish: f64, impostor: f64, spam: f64) -> Threat {
    [
        (malware, Threat::Malware),
        (phish, Threat::Phish),
        (impostor, Threat::Impostor),
        (spam, Threat::Spam),
    ]
    .into_iter()
    .find(|(score, _)| *score >= 50.0)
    .map_or(Threat::Other, |(_, threat)| threat)
}

/// Normalizes a SIEM API response or one message or click event.
pub fn normalize(event: &Value) -> Result<Vec<NewAlert>, NormalizeError> {
    let is_response = EventType::ALL.iter().any(|t| event.get(t.key()).is_some());
    if is_response {
        let mut alerts = Vec::new();
        for event_type in EventType::ALL {
            let key = format!("/{}", event_type.key());
            for i in 0..opt_array(event, &key)?.len() {
                let base = format!("{key}/{i}");
                alerts.push(one(event, &base, event_type)?);
            }
        }
        return Ok(alerts);
    }
    let has = |field: &str| fields::get(event, &format!("/{field}")).is_some();
    let event_type = if has("clickTime") || has("clickIP") || has("url") {
        EventType::ClicksPermitted
    } else if has("threatsInfoMap") || has("messageTime") || has("messageParts") {
        if has("quarantineFolder") || has("quarantineRule") {
            EventType::MessagesBlocked
        } else {
            EventType::MessagesDelivered
        }
    } else {
        return Err(NormalizeError {
            field: "messagesDelivered".into(),
            reason: "expected a TAP SIEM API response (messagesDelivered, messagesBlocked, \
                     clicksPermitted, clicksBlocked) or one message or click event"
                .into(),
        });
    };
    Ok(vec![one(event, "", event_type)?])
}

/// One event at `base` inside `root`.
fn one(root: &Value, base: &str, event_type: EventType) -> Result<NewAlert, NormalizeError> {
    match fields::get(root, base) {
        Some(Value::Object(_)) => {}
        _ => return Err(NormalizeError::wrong_type(base, "an event object")),
    }
    if event_type.is_click() {
        click(root, base, event_type)
    } else {
        message(root, base, event_type)
    }
}

/// Observes the `Message-ID` header when it has the `local@domain` form (see module docs).
fn observe_message_id(
    alert: &mut NewAlert,
    root: &Value,
    pointer: &str,
) -> Result<(), NormalizeError> {
    if let Some(id) = opt_str(root, pointer)? {
        if let Ok(o) = Observable::new(
            ObservableKind::MessageId,
            &id,
            Some(ObservableRole::Related),
        ) {
            alert.observe(o);
        }
    }
    Ok(())
}

/// Tags from `(key, pointer)` pairs, each a string or a list of strings.
fn push_tags(
    tags: &mut Vec<String>,
    root: &Value,
    pairs: &[(&str, String)],
) -> Result<(), NormalizeError> {
    for (key, pointer) in pairs {
        let values = match fields::get(root, pointer) {
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for i in 0..items.len() {
                    if let Some(v) = opt_str(root, &format!("{pointer}/{i}"))? {
                        out.push(v);
                    }
                }
                out
            }
            _ => opt_str(root, pointer)?.into_iter().collect(),
        };
        for v in values {
            tags.push(format!("{key}={}", v.trim()));
        }
    }
    Ok(())
}

fn click(root: &Value, base: &str, event_type: EventType) -> Result<NewAlert, NormalizeError> {
    use ObservableKind as K;
    use ObservableRole as R;
    let at = |field: &str| format!("{base}/{field}");
    let url = fields::req_str(root, &at("url"))?;
    let threat = Threat::parse(&opt_str(root, &at("classification"))?.unwrap_or_default());
    let recipient = opt_str(root, &at("recipient"))?;
    let who = recipient.as_deref().map(str::trim);
    let title = match (event_type, who) {
        (EventType::ClicksBlocked, Some(r)) => format!(
            "Blocked click on {} URL by {r}",
            threat.word().to_lowercase()
        ),
        (EventType::ClicksBlocked, None) => format!(
            "Blocked click on {} URL: {}",
            threat.word().to_lowercase(),
            url.trim()
        ),
        (_, Some(r)) => format!("{} URL clicked by {r}", threat.word()),
        (_, None) => format!("{} URL clicked: {}", threat.word(), url.trim()),
    };
    let mut alert = NewAlert::new(
        AlertClass::EmailActivity,
        severity(event_type, threat),
        title,
        VENDOR,
        PRODUCT,
    );
    alert.event_time = opt_time(root, &at("clickTime"))?;
    alert.external_id = opt_str(root, &at("id"))?;
    alert.rule_id = opt_str(root, &at("threatID"))?;
    alert.description =
        opt_str(root, &at("threatURL"))?.map(|u| format!("TAP threat details: {}", u.trim()));

    observe(&mut alert, K::Url, &url, Some(R::Dst), &at("url"))?;
    observe_at(&mut alert, root, &at("sender"), K::Email, Some(R::Sender))?;
    observe_at(&mut alert, root, &at("senderIP"), K::Ip, Some(R::Src))?;
    observe_at(
        &mut alert,
        root,
        &at("recipient"),
        K::Email,
        Some(R::Recipient),
    )?;
    observe_at(&mut alert, root, &at("clickIP"), K::Ip, Some(R::Target))?;
    observe_message_id(&mut alert, root, &at("messageID"))?;

    let mut tags = vec![event_type.key().to_string()];
    push_tags(
        &mut tags,
        root,
        &[
            ("classification", at("classification")),
            ("threat_status", at("threatStatus")),
            ("campaign", at("campaignId")),
        ],
    )?;
    tags.sort();
    tags.dedup();
    alert.tags = tags;
    Ok(alert)
}

fn message(root: &Value, base: &str, event_type: EventType) -> Result<NewAlert, NormalizeError> {
    use ObservableKind as K;
    use ObservableRole as R;
    let at = |field: &str| format!("{base}/{field}");

    // The worst threat TAP still stands by, and how many it has withdrawn.
    let threats_at = at("threatsInfoMap");
    let count = opt_array(root, &threats_at)?.len();
    let mut worst: Option<(Threat, usize)> = None;
    let mut false_positives = 0;
    for i in 0..count {
        let t = format!("{threats_at}/{i}");
        let status = opt_str(root, &format!("{t}/threatStatus"))?.unwrap_or_default();
        if status.trim().eq_ignore_ascii_case("falsePositive") {
            false_positives += 1;
            continue;
        }
        let threat =
            Threat::parse(&opt_str(root, &format!("{t}/classification"))?.unwrap_or_default());
        if worst.is_none_or(|(w, _)| threat < w) {
            worst = Some((threat, i));
        }
    }
    let score = |field: &str| -> Result<f64, NormalizeError> {
        Ok(opt_f64(root, &at(field))?.unwrap_or(0.0))
    };
    let threat = match worst {
        Some((t, _)) if t != Threat::Other => t,
        _ => from_scores(
            score("malwareScore")?,
            score("phishScore")?,
            score("impostorScore")?,
            score("spamScore")?,
        ),
    };
    let severity = if count > 0 && false_positives == count {
        Severity::Informational
    } else {
        severity(event_type, threat)
    };

    let subject = opt_str(root, &at("subject"))?;
    let first_recipient = if opt_array(root, &at("recipient"))?.is_empty() {
        None
    } else {
        opt_str(root, &at("recipient/0"))?
    };
    let verb = match event_type {
        EventType::MessagesBlocked => "blocked",
        _ => "delivered",
    };
    let title = match (subject, first_recipient) {
        (Some(s), _) => format!("{} message {verb}: {}", threat.word(), s.trim()),
        (None, Some(r)) => format!("{} message to {} {verb}", threat.word(), r.trim()),
        (None, None) => return Err(NormalizeError::missing(&at("recipient"))),
    };
    let mut alert = NewAlert::new(AlertClass::EmailActivity, severity, title, VENDOR, PRODUCT);
    alert.event_time = opt_time(root, &at("messageTime"))?;
    alert.external_id = opt_str(root, &at("GUID"))?;
    if let Some((_, i)) = worst {
        let t = format!("{threats_at}/{i}");
        alert.rule_id = opt_str(root, &format!("{t}/threatID"))?;
        alert.description = opt_str(root, &format!("{t}/threatUrl"))?
            .map(|u| format!("TAP threat details: {}", u.trim()));
    }

    observe_at(&mut alert, root, &at("sender"), K::Email, Some(R::Sender))?;
    for (list, role) in [
        ("fromAddress", R::Sender),
        ("replyToAddress", R::Related),
        ("recipient", R::Recipient),
    ] {
        for i in 0..opt_array(root, &at(list))?.len() {
            observe_at(
                &mut alert,
                root,
                &at(&format!("{list}/{i}")),
                K::Email,
                Some(role),
            )?;
        }
    }
    observe_at(&mut alert, root, &at("senderIP"), K::Ip, Some(R::Src))?;
    observe_message_id(&mut alert, root, &at("messageID"))?;
    for i in 0..count {
        observe_threat(&mut alert, root, &format!("{threats_at}/{i}"))?;
    }
    for i in 0..opt_array(root, &at("messageParts"))?.len() {
        let part = at(&format!("messageParts/{i}"));
        let disposition = opt_str(root, &format!("{part}/disposition"))?;
        if disposition.is_some_and(|d| !d.trim().eq_ignore_ascii_case("attached")) {
            continue; // an inline part is the message body, not an attachment
        }
        for (field, kind) in [
            ("sha256", K::Sha256),
            ("md5", K::Md5),
            ("filename", K::File),
        ] {
            observe_at(
                &mut alert,
                root,
                &format!("{part}/{field}"),
                kind,
                Some(R::Related),
            )?;
        }
    }

    let mut tags = vec![event_type.key().to_string()];
    let mut pairs = vec![
        ("policy_route", at("policyRoutes")),
        ("quarantine_folder", at("quarantineFolder")),
        ("quarantine_rule", at("quarantineRule")),
    ];
    for i in 0..count {
        let t = format!("{threats_at}/{i}");
        pairs.push(("classification", format!("{t}/classification")));
        pairs.push(("threat_type", format!("{t}/threatType")));
        pairs.push(("threat_status", format!("{t}/threatStatus")));
        pairs.push(("campaign", format!("{t}/campaignID")));
    }
    push_tags(&mut tags, root, &pairs)?;
    tags.sort();
    tags.dedup();
    alert.tags = tags;
    Ok(alert)
}

/// Observes a `threatsInfoMap` entry's `threat`, the condemned artifact: a URL, an
/// attachment's hash, or an impostor's address, as its `threatType` says.
fn observe_threat(alert: &mut NewAlert, root: &Value, base: &str) -> Result<(), NormalizeError> {
    use ObservableKind as K;
    let pointer = format!("{base}/threat");
    let Some(threat) = opt_str(root, &pointer)? else {
        return Ok(());
    };
    let value = threat.trim();
    let threat_type = opt_str(root, &format!("{base}/threatType"))?.unwrap_or_default();
    let related = Some(ObservableRole::Related);
    let hash_kind = match value.len() {
        64 => Some(K::Sha256),
        40 => Some(K::Sha1),
        32 => Some(K::Md5),
        _ => None,
    }
    .filter(|_| value.chars().all(|c| c.is_ascii_hexdigit()));
    match threat_type.trim().to_ascii_lowercase().as_str() {
        "attachment" => match hash_kind {
            Some(kind) => observe(alert, kind, value, related, &pointer),
            None => Err(NormalizeError::invalid(
                &pointer,
                "an attachment threat must be an MD5, SHA-1 or SHA-256 hash",
            )),
        },
        "url" => {
            if let Some(kind) = hash_kind {
                // TAP names some URL threats by a hash of the URL.
                return observe(alert, kind, value, related, &pointer);
            }
            let kind = if value.contains("://") || value.contains('/') {
                K::Url
            } else {
                K::Domain
            };
            let value = if kind == K::Url && !value.contains("://") {
                format!("http://{value}") // TAP drops the scheme of some URL threats
            } else {
                value.to_string()
            };
            observe(alert, kind, &value, related, &pointer)
        }
        "message" => {
            if value.contains('@') {
                return observe(
                    alert,
                    K::Email,
                    value,
                    Some(ObservableRole::Sender),
                    &pointer,
                );
            }
            if let Some(o) = Observable::guess(value, related) {
                alert.observe(o);
            }
            Ok(())
        }
        _ => {
            if let Some(o) = Observable::guess(value, related) {
                alert.observe(o);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn severity_mapping() {
        use EventType as E;
        assert_eq!(
            severity(E::ClicksPermitted, Threat::Phish),
            Severity::Critical
        );
        assert_eq!(
            severity(E::ClicksPermitted, Threat::Malware),
            Severity::Critical
        );
        assert_eq!(severity(E::ClicksPermitted, Threat::Spam), Severity::Medium);
        assert_eq!(
            severity(E::MessagesDelivered, Threat::Malware),
            Severity::High
        );
        assert_eq!(severity(E::MessagesDelivered, Threat::Spam), Severity::Low);
        assert_eq!(severity(E::ClicksBlocked, Threat::Phish), Severity::Medium);
        assert_eq!(severity(E::MessagesBlocked, Threat::Malware), Severity::Low);
        assert_eq!(
            severity(E::MessagesBlocked, Threat::Spam),
            Severity::Informational
        );
    }

    #[test]
    fn classification_words_and_scores() {
        assert_eq!(Threat::parse("MALWARE"), Threat::Malware);
        assert_eq!(Threat::parse("phish"), Threat::Phish);
        assert_eq!(Threat::parse("impostor"), Threat::Impostor);
        assert_eq!(Threat::parse("toad"), Threat::Other);
        assert_eq!(from_scores(0.0, 100.0, 0.0, 100.0), Threat::Phish);
        assert_eq!(from_scores(0.0, 0.0, 0.0, 60.0), Threat::Spam);
        assert_eq!(from_scores(10.0, 0.0, 0.0, 0.0), Threat::Other);
    }

    #[test]
    fn worst_threat_sets_severity_and_false_positives_do_not_count() {
        let event = json!({ "GUID": "g", "subject": "s", "messageTime": "2026-01-01T00:00:00Z",
            "threatsInfoMap": [
                { "classification": "spam", "threatType": "url", "threat": "https://a.example/",
                  "threatID": "t-spam", "threatStatus": "active" },
                { "classification": "malware", "threatType": "url", "threat": "https://b.example/",
                  "threatID": "t-mal", "threatStatus": "falsePositive" },
                { "classification": "phish", "threatType": "url", "threat": "c.example/login",
                  "threatID": "t-phish", "threatStatus": "active" }
            ] });
        let alert = &normalize(&event).unwrap()[0];
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(alert.rule_id.as_deref(), Some("t-phish"));
        assert_eq!(alert.title, "Phish message delivered: s");
        assert!(alert
            .observables
            .iter()
            .any(|o| o.value == "http://c.example/login"));

        let all_fp = json!({ "GUID": "g", "subject": "s", "threatsInfoMap": [
            { "classification": "malware", "threatStatus": "falsePositive" } ] });
        assert_eq!(
            normalize(&all_fp).unwrap()[0].severity,
            Severity::Informational
        );
    }

    #[test]
    fn message_ids_that_are_no_message_ids_are_skipped() {
        let click = json!({ "url": "http://badguy.example/", "classification": "malware",
                            "messageID": "8c6cfedd-3050-4d65-8c09-c5f65c38da81" });
        let alert = &normalize(&click).unwrap()[0];
        assert!(alert
            .observables
            .iter()
            .all(|o| o.kind != ObservableKind::MessageId));
        assert_eq!(alert.title, "Malware URL clicked: http://badguy.example/");
    }

    #[test]
    fn unrecognized_objects_and_bad_entries_are_refused() {
        assert_eq!(
            normalize(&json!({ "foo": 1 })).unwrap_err().field,
            "messagesDelivered"
        );
        let err = normalize(&json!({ "clicksBlocked": [1] })).unwrap_err();
        assert_eq!(err.field, "clicksBlocked.0");
        assert!(
            normalize(&json!({ "queryEndTime": "x", "clicksPermitted": [] }))
                .unwrap()
                .is_empty()
        );
        let err = normalize(&json!({ "threatsInfoMap": [{ "threatType": "attachment",
                                                          "threat": "nope" }],
                                      "subject": "s" }))
        .unwrap_err();
        assert_eq!(err.field, "threatsInfoMap.0.threat");
    }
}
