//! Wazuh alerts (Wazuh manager 4.x), the JSON the manager writes to `alerts.json` and hands
//! unchanged to integrations (`integratord` custom integrations): one alert per event.
//!
//! | field | alert |
//! |---|---|
//! | `rule.description` (required) | title, rule_name |
//! | `rule.id` | rule_id |
//! | `rule.level` (0–16) | severity, by the bands below |
//! | `timestamp` (`2020-07-12T15:32:41.756+0000`) | event_time |
//! | `full_log` | description |
//! | `id` (`<epoch>.<offset>`, unique per alert) | external_id |
//! | `rule.groups`, `rule.mitre.id` | tags, then `mitre=<id>` |
//! | `agent.name` / `agent.ip` (the monitored endpoint) | host / ip, target |
//! | `data.srcip` / `data.dstip` (decoder static fields) | ip, or host when a log gave a name; src / dst |
//! | `data.srcuser` / `data.dstuser` | user, actor / target |
//! | `data.url` | url, related, when the log held a full URL (usually it is a path) |
//! | `syscheck.path` (file integrity monitoring) | file, target |
//! | `syscheck.md5_after` / `sha1_after` / `sha256_after` | hashes, related |
//! | `syscheck.audit.user.name` / `syscheck.audit.process.name` (who-data) | user / process, actor |
//!
//! `agent.*` and the checksums are written by Wazuh itself, so an invalid value is refused
//! naming the field. The `data.*` fields and file paths are copied from the monitored
//! system's logs (an attacker can shape them), so values that are not valid observables are
//! skipped instead. Wazuh alerts do not end or get updated, and `id` identifies one alert
//! rather than a recurring condition, so `fingerprint` is left to Tocsin.

use super::fields::{
    self, observe_each_at, observe_free_form_at, opt_i64, opt_str, opt_strs, opt_time,
};
use super::NormalizeError;
use crate::alert::{AlertClass, NewAlert, ObservableKind, ObservableRole, Severity};
use serde_json::Value;

const VENDOR: &str = "Wazuh";
const PRODUCT: &str = "Wazuh";

/// Normalizes one alert.
pub fn normalize(event: &Value) -> Result<Vec<NewAlert>, NormalizeError> {
    let description = opt_str(event, "/rule/description")?
        .ok_or_else(|| NormalizeError::missing("/rule/description"))?;
    let level = opt_i64(event, "/rule/level")?;

    let mut alert = NewAlert::new(
        AlertClass::DetectionFinding,
        level.map_or(Severity::Unknown, severity_from_level),
        description.trim(),
        VENDOR,
        PRODUCT,
    );
    alert.rule_name = Some(description);
    alert.rule_id = opt_str(event, "/rule/id")?;
    alert.event_time = opt_time(event, "/timestamp")?;
    alert.description = opt_str(event, "/full_log")?;
    alert.external_id = opt_str(event, "/id")?;

    observe(&mut alert, event)?;

    for (_, group) in opt_strs(event, "/rule/groups")? {
        push_tag(&mut alert.tags, group.trim().to_string());
    }
    for (_, id) in opt_strs(event, "/rule/mitre/id")? {
        push_tag(&mut alert.tags, format!("mitre={}", id.trim()));
    }
    Ok(vec![alert])
}

/// Wazuh's rule classification, grouped into OCSF severities by what each level means:
/// 0–3 (ignored, low-priority system notifications, successful/authorized events) are
/// Informational; 4–6 (low-priority errors, user errors, low-relevance attacks) Low; 7–11
/// ("bad word" matches, first-time-seen, invalid sources, repeated errors, integrity
/// warnings) Medium; 12–14 (high-importance and unusual events, high-importance security
/// events) High; 15 and the 16 newer rulesets allow (severe attack, "no chances of false
/// positives") Critical. A negative level is `Unknown`.
fn severity_from_level(level: i64) -> Severity {
    match level {
        i64::MIN..=-1 => Severity::Unknown,
        0..=3 => Severity::Informational,
        4..=6 => Severity::Low,
        7..=11 => Severity::Medium,
        12..=14 => Severity::High,
        _ => Severity::Critical,
    }
}

fn observe(alert: &mut NewAlert, event: &Value) -> Result<(), NormalizeError> {
    use ObservableKind::*;
    use ObservableRole::*;
    observe_each_at(alert, event, "/agent/name", Host, Some(Target))?;
    observe_each_at(alert, event, "/agent/ip", Ip, Some(Target))?;
    for (pointer, role) in [("/data/srcip", Src), ("/data/dstip", Dst)] {
        for (_, value) in opt_strs(event, pointer)? {
            if let Ok(observable) = fields::address(&value, Some(role)) {
                alert.observe(observable);
            }
        }
    }
    observe_free_form_at(alert, event, "/data/srcuser", User, Some(Actor))?;
    observe_free_form_at(alert, event, "/data/dstuser", User, Some(Target))?;
    observe_free_form_at(alert, event, "/data/url", Url, Some(Related))?;
    observe_free_form_at(alert, event, "/syscheck/path", File, Some(Target))?;
    observe_each_at(
        alert,
        event,
        "/syscheck/sha256_after",
        Sha256,
        Some(Related),
    )?;
    observe_each_at(alert, event, "/syscheck/sha1_after", Sha1, Some(Related))?;
    observe_each_at(alert, event, "/syscheck/md5_after", Md5, Some(Related))?;
    observe_free_form_at(alert, event, "/syscheck/audit/user/name", User, Some(Actor))?;
    observe_free_form_at(
        alert,
        event,
        "/syscheck/audit/process/name",
        Process,
        Some(Actor),
    )?;
    Ok(())
}

fn push_tag(tags: &mut Vec<String>, tag: String) {
    if !tag.is_empty() && !tags.contains(&tag) {
        tags.push(tag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn level_bands() {
        for (level, want) in [
            (-1, Severity::Unknown),
            (0, Severity::Informational),
            (3, Severity::Informational),
            (4, Severity::Low),
            (6, Severity::Low),
            (7, Severity::Medium),
            (11, Severity::Medium),
            (12, Severity::High),
            (14, Severity::High),
            (15, Severity::Critical),
            (16, Severity::Critical),
        ] {
            assert_eq!(severity_from_level(level), want, "{level}");
        }
    }

    #[test]
    fn level_as_string_and_absent() {
        let base = |rule: Value| normalize(&json!({ "rule": rule })).unwrap()[0].severity;
        assert_eq!(
            base(json!({ "description": "d", "level": "10" })),
            Severity::Medium
        );
        assert_eq!(base(json!({ "description": "d" })), Severity::Unknown);
        let err =
            normalize(&json!({ "rule": { "description": "d", "level": "high" } })).unwrap_err();
        assert_eq!(err.field, "rule.level");
    }

    #[test]
    fn log_supplied_addresses_are_skipped_when_unusable() {
        let a = normalize(&json!({
            "rule": { "description": "d" },
            "data": { "srcip": "attacker.example.net", "dstip": "not an address!" }
        }))
        .unwrap();
        let got: Vec<_> = a[0]
            .observables
            .iter()
            .map(|o| (o.kind, o.value.as_str()))
            .collect();
        assert_eq!(got, vec![(ObservableKind::Host, "attacker.example.net")]);
    }
}
