//! Elastic Security detection alerts (Elastic Stack 8.x alert schema, `kibana.alert.*` plus
//! ECS fields), as a Kibana Webhook connector posts them: one alert document per request,
//! for instance a rule action whose body renders one element of `context.alerts`.
//!
//! Both shapes Kibana produces are read, and mixtures of them: the flattened keys the alert
//! index stores (`"kibana.alert.rule.name": "…"`) and the nested objects rule actions
//! expand them into (`"kibana": {"alert": {"rule": {"name": "…"}}}`). A field is found
//! under any split of its dotted name, so `"host": {"name": …}` and `"host.name": …` are
//! the same field, and errors name it the same way (`host.name`). The older 7.x `signal.*`
//! schema is not read.
//!
//! | field | alert |
//! |---|---|
//! | `kibana.alert.rule.name` (required) | title, rule_name |
//! | `kibana.alert.rule.uuid` | rule_id |
//! | `kibana.alert.severity` (low, medium, high, critical), else `kibana.alert.risk_score` (0–100, Elastic's bands) | severity |
//! | `kibana.alert.original_time` (the source event), else `@timestamp` (the alert) | event_time |
//! | `kibana.alert.reason`, else `kibana.alert.rule.description` | description |
//! | `kibana.alert.uuid` | external_id and fingerprint: the alert document's own id, kept when the alert is updated or sent again |
//! | `kibana.alert.workflow_status` `closed`, or `kibana.alert.status` `recovered` | state resolved |
//! | `kibana.alert.rule.tags`, MITRE ids in `kibana.alert.rule.threat` | tags, then `mitre=<id>` |
//! | `source.ip` / `destination.ip` | ip, src / dst |
//! | `source.domain` / `destination.domain` | domain, src / dst |
//! | `host.name` | host, target |
//! | `user.name` / `user.target.name` | user, actor / target |
//! | `process.name` | process, actor |
//! | `process.hash.*`, `file.hash.*` (md5, sha1, sha256) | hashes, related |
//! | `file.name` | file, related |
//! | `url.full` | url, related |
//! | `dns.question.name` | domain, related |
//! | `email.from.address` / `email.to.address` / `email.message_id` | email sender / recipient, message_id |
//!
//! ECS types IP addresses and hashes strictly, so an invalid one is refused naming the
//! field; the keyword fields copied from source logs (names, URLs, domains) are skipped when
//! they are not valid observables, so one odd log value cannot get the alert rejected.

use super::fields::{self, opt_f64, opt_str, opt_strs, opt_time};
use super::NormalizeError;
use crate::alert::{AlertClass, AlertState, NewAlert, ObservableKind, ObservableRole, Severity};
use serde_json::Value;

const VENDOR: &str = "Elastic";
const PRODUCT: &str = "Elastic Security";

/// How an observable field is read: strictly (invalid is refused) or as free-form text.
#[derive(Clone, Copy)]
enum Check {
    Strict,
    FreeForm,
}

/// ECS fields that carry indicators.
const OBSERVABLES: &[(&str, ObservableKind, ObservableRole, Check)] = {
    use Check::*;
    use ObservableKind::*;
    use ObservableRole::*;
    &[
        ("source.ip", Ip, Src, Strict),
        ("destination.ip", Ip, Dst, Strict),
        ("source.domain", Domain, Src, FreeForm),
        ("destination.domain", Domain, Dst, FreeForm),
        ("host.name", Host, Target, FreeForm),
        ("user.name", User, Actor, FreeForm),
        ("user.target.name", User, Target, FreeForm),
        ("process.name", Process, Actor, FreeForm),
        ("process.hash.sha256", Sha256, Related, Strict),
        ("process.hash.sha1", Sha1, Related, Strict),
        ("process.hash.md5", Md5, Related, Strict),
        ("file.name", File, Related, FreeForm),
        ("file.hash.sha256", Sha256, Related, Strict),
        ("file.hash.sha1", Sha1, Related, Strict),
        ("file.hash.md5", Md5, Related, Strict),
        ("url.full", Url, Related, FreeForm),
        ("dns.question.name", Domain, Related, FreeForm),
        ("email.from.address", Email, Sender, FreeForm),
        ("email.to.address", Email, Recipient, FreeForm),
        ("email.message_id", MessageId, Related, FreeForm),
    ]
};

/// Normalizes one alert document.
pub fn normalize(event: &Value) -> Result<Vec<NewAlert>, NormalizeError> {
    let rule_name = ecs_str(event, "kibana.alert.rule.name")?
        .ok_or_else(|| NormalizeError::missing(&pointer_of("kibana.alert.rule.name")))?;

    let mut alert = NewAlert::new(
        AlertClass::DetectionFinding,
        severity(event)?,
        rule_name.trim(),
        VENDOR,
        PRODUCT,
    );
    alert.rule_name = Some(rule_name);
    alert.rule_id = ecs_str(event, "kibana.alert.rule.uuid")?;
    alert.event_time = match ecs_time(event, "kibana.alert.original_time")? {
        Some(t) => Some(t),
        None => ecs_time(event, "@timestamp")?,
    };
    alert.description = match ecs_str(event, "kibana.alert.reason")? {
        Some(reason) => Some(reason),
        None => ecs_str(event, "kibana.alert.rule.description")?,
    };
    alert.external_id = ecs_str(event, "kibana.alert.uuid")?;
    alert.fingerprint = alert.external_id.clone();
    let closed = ecs_str(event, "kibana.alert.workflow_status")?
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("closed"));
    let recovered = ecs_str(event, "kibana.alert.status")?
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("recovered"));
    if closed || recovered {
        alert.state = AlertState::Resolved;
    }

    for &(field, kind, role, check) in OBSERVABLES {
        let Some((pointer, _)) = lookup(event, field) else {
            continue;
        };
        match check {
            Check::Strict => {
                fields::observe_each_at(&mut alert, event, &pointer, kind, Some(role))?
            }
            Check::FreeForm => {
                fields::observe_free_form_at(&mut alert, event, &pointer, kind, Some(role))?
            }
        }
    }

    if let Some((pointer, _)) = lookup(event, "kibana.alert.rule.tags") {
        for (_, tag) in opt_strs(event, &pointer)? {
            push_tag(&mut alert.tags, tag.trim().to_string());
        }
    }
    for id in mitre_ids(event)? {
        push_tag(&mut alert.tags, format!("mitre={id}"));
    }
    Ok(vec![alert])
}

/// `kibana.alert.severity` when it holds one of Elastic's words; otherwise the risk score
/// by the bands Elastic's rule editor documents: 0–21 low, 22–47 medium, 48–73 high,
/// 74–100 critical. Neither, or a score outside 0–100, is `Unknown`.
fn severity(event: &Value) -> Result<Severity, NormalizeError> {
    if let Some(word) = ecs_str(event, "kibana.alert.severity")? {
        if let Some(severity) = Severity::from_word(&word) {
            return Ok(severity);
        }
    }
    let score = match lookup(event, "kibana.alert.risk_score") {
        Some((pointer, _)) => opt_f64(event, &pointer)?,
        None => None,
    };
    Ok(score.map_or(Severity::Unknown, severity_from_risk_score))
}

fn severity_from_risk_score(score: f64) -> Severity {
    match score {
        s if !(0.0..=100.0).contains(&s) => Severity::Unknown,
        s if s < 22.0 => Severity::Low,
        s if s < 48.0 => Severity::Medium,
        s if s < 74.0 => Severity::High,
        _ => Severity::Critical,
    }
}

/// Technique and sub-technique ids from `kibana.alert.rule.threat[].technique[]`, in order.
fn mitre_ids(event: &Value) -> Result<Vec<String>, NormalizeError> {
    let mut ids = Vec::new();
    let Some((threat, _)) = lookup(event, "kibana.alert.rule.threat") else {
        return Ok(ids);
    };
    for t in 0..fields::opt_array(event, &threat)?.len() {
        let techniques = format!("{threat}/{t}/technique");
        for i in 0..fields::opt_array(event, &techniques)?.len() {
            let technique = format!("{techniques}/{i}");
            ids.extend(opt_str(event, &format!("{technique}/id"))?);
            let subs = format!("{technique}/subtechnique");
            for s in 0..fields::opt_array(event, &subs)?.len() {
                ids.extend(opt_str(event, &format!("{subs}/{s}/id"))?);
            }
        }
    }
    Ok(ids.into_iter().map(|id| id.trim().to_string()).collect())
}

fn push_tag(tags: &mut Vec<String>, tag: String) {
    if !tag.is_empty() && !tags.contains(&tag) {
        tags.push(tag);
    }
}

/// A string field by its dotted ECS name, in whichever shape the document uses.
fn ecs_str(event: &Value, field: &str) -> Result<Option<String>, NormalizeError> {
    match lookup(event, field) {
        Some((pointer, _)) => opt_str(event, &pointer),
        None => Ok(None),
    }
}

fn ecs_time(
    event: &Value,
    field: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, NormalizeError> {
    match lookup(event, field) {
        Some((pointer, _)) => opt_time(event, &pointer),
        None => Ok(None),
    }
}

/// The JSON pointer of a dotted name stored as one flattened key.
fn pointer_of(field: &str) -> String {
    format!("/{}", escape(field))
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Finds a dotted ECS field in a document that may nest it, flatten it, or mix both
/// (`{"kibana.alert": {"rule": {"name": …}}}`): returns the JSON pointer of the first
/// non-null value found, trying the longest flattened key first at each level.
fn lookup<'a>(event: &'a Value, field: &str) -> Option<(String, &'a Value)> {
    let segments: Vec<&str> = field.split('.').collect();
    find(event, &segments, String::new())
}

fn find<'a>(v: &'a Value, segments: &[&str], prefix: String) -> Option<(String, &'a Value)> {
    let Value::Object(map) = v else {
        return None;
    };
    for take in (1..=segments.len()).rev() {
        let (head, rest) = segments.split_at(take);
        let key = head.join(".");
        let Some(child) = map.get(&key) else {
            continue;
        };
        let pointer = format!("{prefix}/{}", escape(&key));
        if rest.is_empty() {
            if !child.is_null() {
                return Some((pointer, child));
            }
        } else if let Some(found) = find(child, rest, pointer) {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn risk_score_bands() {
        for (score, want) in [
            (0.0, Severity::Low),
            (21.0, Severity::Low),
            (21.5, Severity::Low),
            (22.0, Severity::Medium),
            (47.0, Severity::Medium),
            (48.0, Severity::High),
            (73.0, Severity::High),
            (74.0, Severity::Critical),
            (100.0, Severity::Critical),
            (-1.0, Severity::Unknown),
            (101.0, Severity::Unknown),
        ] {
            assert_eq!(severity_from_risk_score(score), want, "{score}");
        }
    }

    #[test]
    fn severity_word_wins_over_score() {
        let sev = |v: Value| severity(&v).unwrap();
        assert_eq!(
            sev(json!({ "kibana.alert.severity": "critical", "kibana.alert.risk_score": 10 })),
            Severity::Critical
        );
        assert_eq!(
            sev(json!({ "kibana.alert.risk_score": 47 })),
            Severity::Medium
        );
        assert_eq!(
            sev(json!({ "kibana": { "alert": { "risk_score": "73" } } })),
            Severity::High
        );
        assert_eq!(sev(json!({})), Severity::Unknown);
    }

    #[test]
    fn fields_are_found_flattened_nested_or_mixed() {
        let flat = json!({ "host.name": "a" });
        let nested = json!({ "host": { "name": "a" } });
        let mixed = json!({ "kibana.alert": { "rule": { "name": "r" } } });
        assert_eq!(lookup(&flat, "host.name").unwrap().0, "/host.name");
        assert_eq!(lookup(&nested, "host.name").unwrap().0, "/host/name");
        assert_eq!(
            lookup(&mixed, "kibana.alert.rule.name").unwrap().0,
            "/kibana.alert/rule/name"
        );
        // a nested object beside a flattened key: both are searched
        let both = json!({ "user": { "risk": {} }, "user.name": "bob" });
        assert_eq!(lookup(&both, "user.name").unwrap().1, "bob");
        assert!(lookup(&json!({ "host": "x" }), "host.name").is_none());
        assert!(lookup(&json!({ "host.name": null }), "host.name").is_none());
        assert_eq!(
            fields::field_name(&lookup(&nested, "host.name").unwrap().0),
            "host.name"
        );
    }

    #[test]
    fn missing_rule_name_is_refused_by_its_dotted_name() {
        let err = normalize(&json!({ "kibana": { "alert": { "uuid": "x" } } })).unwrap_err();
        assert_eq!(err.field, "kibana.alert.rule.name");
    }
}
