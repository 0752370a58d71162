//! Reading a Microsoft Graph security API alert (`microsoft.graph.security.alert`, the v2
//! "alerts_v2" resource of Graph v1.0), shared by the `graph_security` and `defender_o365`
//! normalizers so the two read the alert and its evidence the same way.
//!
//! Alert fields (documented on the Graph "alert resource type" page):
//! `title` → title (required), `description`, `severity` (see [`severity`]),
//! `firstActivityDateTime` (else `createdDateTime`) → event time, `detectorId` (else
//! `alertPolicyId`) → rule id, `id` → external id and fingerprint (Graph keeps the id when
//! the alert is updated), `status` `resolved` → resolved. Tags: `systemTags` as they are,
//! then `category=`, `technique=` (each of `mitreTechniques`), `service_source=`,
//! `detection_source=`, `classification=`, `determination=` (unless `unknown`),
//! `incident_id=`, `threat=` (`threatDisplayName`) and `threat_family=`. The product is
//! `productName` (sent by the service though missing from the v1.0 property table), else
//! the product `serviceSource` names (see [`service_product`]).
//!
//! Evidence (`evidence[]`, each typed by `@odata.type`; see [`observe_evidence`]):
//! `ipEvidence.ipAddress` → ip; `deviceEvidence.deviceDnsName` → host;
//! `userEvidence.userAccount` → user; `mailboxEvidence.primaryAddress` → email;
//! `urlEvidence.url` → url; `fileEvidence.fileDetails` → sha256/sha1/md5 and file name;
//! `processEvidence` → its image file, `processCommandLine` → process and its user account;
//! `analyzedMessageEvidence` → `internetMessageId` (message_id), `p1Sender`/`p2Sender`
//! `emailAddress` (sender), `recipientEmailAddress` (recipient), `senderIp` (src) and `urls`.
//! Other evidence types (registry keys, cloud applications, mail clusters, ...) carry no
//! indicator Tocsin models and are skipped.

use super::fields::{self, observe_at, opt_array, opt_str, opt_time};
use super::NormalizeError;
use crate::alert::{AlertClass, AlertState, NewAlert, ObservableKind, ObservableRole, Severity};
use serde_json::Value;

/// The vendor name of every Graph alert.
pub const VENDOR: &str = "Microsoft";

/// The `serviceSource` of Microsoft Defender for Office 365 alerts.
pub const MDO_SOURCE: &str = "microsoftDefenderForOffice365";

/// The product name for a Graph `serviceSource` value (names as the Graph documentation
/// describes each value); `None` for `unknown` and values Tocsin does not know.
pub fn service_product(service_source: &str) -> Option<&'static str> {
    Some(match service_source {
        "microsoftDefenderForEndpoint" => "Microsoft Defender for Endpoint",
        "microsoftDefenderForIdentity" => "Microsoft Defender for Identity",
        "microsoftDefenderForCloudApps" => "Microsoft Defender for Cloud Apps",
        "microsoftDefenderForOffice365" => "Microsoft Defender for Office 365",
        "microsoft365Defender" => "Microsoft 365 Defender",
        "azureAdIdentityProtection" => "Microsoft Entra ID Protection",
        "microsoftAppGovernance" => "Microsoft App Governance",
        "dataLossPrevention" => "Microsoft Purview Data Loss Prevention",
        "microsoftDefenderForCloud" => "Microsoft Defender for Cloud",
        "microsoftSentinel" => "Microsoft Sentinel",
        "microsoftInsiderRiskManagement" => "Microsoft Purview Insider Risk Management",
        _ => return None,
    })
}

/// Product named when the alert says neither `productName` nor a known `serviceSource`:
/// the alerts_v2 API is Microsoft 365 Defender's.
pub const DEFAULT_PRODUCT: &str = "Microsoft 365 Defender";

/// Maps Graph `alertSeverity` (`unknown`, `informational`, `low`, `medium`, `high`,
/// `unknownFutureValue`) to OCSF: the four named levels map one to one; `unknown`,
/// `unknownFutureValue`, anything else and absence are `Unknown`. Graph has no level above
/// `high`, so no Graph alert is Critical. Case is ignored.
pub fn severity(word: Option<&str>) -> Severity {
    match word.map(|w| w.trim().to_ascii_lowercase()).as_deref() {
        Some("informational") => Severity::Informational,
        Some("low") => Severity::Low,
        Some("medium") => Severity::Medium,
        Some("high") => Severity::High,
        _ => Severity::Unknown,
    }
}

/// How the two normalizers differ when reading the same alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavor {
    pub class: AlertClass,
    /// Fixed product name; `None` reads it from `productName` / `serviceSource`.
    pub product: Option<&'static str>,
    /// Role of a mailbox whose evidence roles say nothing attacker-side: the mailbox a
    /// message went to (`Recipient`) for email alerts, the affected account (`Target`) else.
    pub mailbox_role: ObservableRole,
}

/// Reading for any Graph alert (`graph_security`).
pub const DETECTION: Flavor = Flavor {
    class: AlertClass::DetectionFinding,
    product: None,
    mailbox_role: ObservableRole::Target,
};

/// Normalizes one Graph alert.
pub fn normalize(event: &Value, flavor: Flavor) -> Result<NewAlert, NormalizeError> {
    let title = fields::req_str(event, "/title")?;
    let product = match flavor.product {
        Some(p) => p.to_string(),
        None => match opt_str(event, "/productName")? {
            Some(name) => name.trim().to_string(),
            None => opt_str(event, "/serviceSource")?
                .and_then(|s| service_product(s.trim()))
                .unwrap_or(DEFAULT_PRODUCT)
                .to_string(),
        },
    };
    let severity = severity(opt_str(event, "/severity")?.as_deref());
    let mut alert = NewAlert::new(flavor.class, severity, title.trim(), VENDOR, &product);
    alert.description = opt_str(event, "/description")?;
    alert.event_time = match opt_time(event, "/firstActivityDateTime")? {
        Some(t) => Some(t),
        None => opt_time(event, "/createdDateTime")?,
    };
    alert.rule_id = match opt_str(event, "/detectorId")? {
        Some(d) => Some(d),
        None => opt_str(event, "/alertPolicyId")?,
    };
    alert.external_id = opt_str(event, "/id")?;
    alert.fingerprint = alert.external_id.clone();
    if opt_str(event, "/status")?.is_some_and(|s| s.trim().eq_ignore_ascii_case("resolved")) {
        alert.state = AlertState::Resolved;
    }
    alert.tags = tags(event)?;
    observe_evidence(&mut alert, event, flavor.mailbox_role)?;
    Ok(alert)
}

fn tags(event: &Value) -> Result<Vec<String>, NormalizeError> {
    let mut tags = Vec::new();
    for i in 0..opt_array(event, "/systemTags")?.len() {
        if let Some(t) = opt_str(event, &format!("/systemTags/{i}"))? {
            tags.push(t.trim().to_string());
        }
    }
    for i in 0..opt_array(event, "/mitreTechniques")?.len() {
        if let Some(t) = opt_str(event, &format!("/mitreTechniques/{i}"))? {
            tags.push(format!("technique={}", t.trim()));
        }
    }
    for (key, pointer) in [
        ("category", "/category"),
        ("service_source", "/serviceSource"),
        ("detection_source", "/detectionSource"),
        ("classification", "/classification"),
        ("determination", "/determination"),
        ("incident_id", "/incidentId"),
        ("threat", "/threatDisplayName"),
        ("threat_family", "/threatFamilyName"),
    ] {
        if let Some(v) = opt_str(event, pointer)? {
            let v = v.trim();
            if !v.eq_ignore_ascii_case("unknown") && !v.eq_ignore_ascii_case("unknownFutureValue") {
                tags.push(format!("{key}={v}"));
            }
        }
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// Which side of the attack an evidence item's `roles` put it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// `attacker`, `source`, `commandAndControl`, `policyViolator`.
    Attacker,
    /// `compromised`, `attacked`, `destination`, `scanned`, `created`, `added`, `edited`.
    Victim,
    /// No role, or only `contextual`, `loaded`, `suspicious`, `unknown`.
    Unknown,
}

/// Reads `roles` (Graph `evidenceRole` values); an attacker-side role wins over a victim
/// one, since an entity that is both (a compromised host used to attack) acts for the
/// attacker in this alert.
fn side(event: &Value, base: &str) -> Result<Side, NormalizeError> {
    let pointer = format!("{base}/roles");
    let mut side = Side::Unknown;
    for i in 0..opt_array(event, &pointer)?.len() {
        let Some(role) = opt_str(event, &format!("{pointer}/{i}"))? else {
            continue;
        };
        match role.trim() {
            "attacker" | "source" | "commandAndControl" | "policyViolator" => {
                return Ok(Side::Attacker)
            }
            "compromised" | "attacked" | "destination" | "scanned" | "created" | "added"
            | "edited" => side = Side::Victim,
            _ => {}
        }
    }
    Ok(side)
}

/// Role for a side: `(attacker, victim, neither)`.
fn pick(side: Side, roles: (ObservableRole, ObservableRole, ObservableRole)) -> ObservableRole {
    match side {
        Side::Attacker => roles.0,
        Side::Victim => roles.1,
        Side::Unknown => roles.2,
    }
}

/// Adds the observables of every item of `evidence[]`. An item's `roles` decide the role
/// of what it names: an IP or URL on the attacker side is `src`, on the victim side `dst`,
/// else `related`; a device is `src` or else `target`; a user or mailbox is `actor` or else
/// `target` (a mailbox: `mailbox_role`); files and message contents are `related`.
pub fn observe_evidence(
    alert: &mut NewAlert,
    event: &Value,
    mailbox_role: ObservableRole,
) -> Result<(), NormalizeError> {
    use ObservableKind as K;
    use ObservableRole as R;
    for i in 0..opt_array(event, "/evidence")?.len() {
        let base = format!("/evidence/{i}");
        match fields::get(event, &base) {
            Some(Value::Object(_)) => {}
            Some(_) => return Err(NormalizeError::wrong_type(&base, "an object")),
            None => continue,
        }
        let Some(odata_type) = opt_str(event, &format!("{base}/@odata.type"))? else {
            continue;
        };
        let kind = odata_type
            .trim()
            .trim_start_matches('#')
            .trim_start_matches("microsoft.graph.security.")
            .to_string();
        let side = side(event, &base)?;
        let at = |field: &str| format!("{base}/{field}");
        match kind.as_str() {
            "ipEvidence" => {
                let role = pick(side, (R::Src, R::Dst, R::Related));
                observe_at(alert, event, &at("ipAddress"), K::Ip, Some(role))?;
            }
            "deviceEvidence" => {
                let role = pick(side, (R::Src, R::Target, R::Target));
                observe_at(alert, event, &at("deviceDnsName"), K::Host, Some(role))?;
            }
            "userEvidence" => {
                let role = pick(side, (R::Actor, R::Target, R::Target));
                observe_account(alert, event, &at("userAccount"), role)?;
            }
            "mailboxEvidence" => {
                let role = pick(side, (R::Actor, mailbox_role, mailbox_role));
                observe_at(alert, event, &at("primaryAddress"), K::Email, Some(role))?;
            }
            "urlEvidence" => {
                let role = pick(side, (R::Src, R::Dst, R::Related));
                observe_at(alert, event, &at("url"), K::Url, Some(role))?;
            }
            "fileEvidence" => observe_file(alert, event, &at("fileDetails"))?,
            "processEvidence" => {
                observe_file(alert, event, &at("imageFile"))?;
                let role = pick(side, (R::Actor, R::Related, R::Related));
                observe_at(
                    alert,
                    event,
                    &at("processCommandLine"),
                    K::Process,
                    Some(role),
                )?;
                observe_account(alert, event, &at("userAccount"), R::Actor)?;
            }
            "analyzedMessageEvidence" => {
                let msg = Some(R::Related);
                observe_at(alert, event, &at("internetMessageId"), K::MessageId, msg)?;
                for sender in ["p1Sender", "p2Sender"] {
                    let pointer = at(&format!("{sender}/emailAddress"));
                    observe_at(alert, event, &pointer, K::Email, Some(R::Sender))?;
                }
                let to = at("recipientEmailAddress");
                observe_at(alert, event, &to, K::Email, Some(R::Recipient))?;
                observe_at(alert, event, &at("senderIp"), K::Ip, Some(R::Src))?;
                for u in 0..opt_array(event, &at("urls"))?.len() {
                    let pointer = at(&format!("urls/{u}"));
                    observe_at(alert, event, &pointer, K::Url, Some(R::Related))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A Graph `userAccount`: the user principal name, else `domain\account`, else the
/// account name.
fn observe_account(
    alert: &mut NewAlert,
    event: &Value,
    base: &str,
    role: ObservableRole,
) -> Result<(), NormalizeError> {
    let upn = format!("{base}/userPrincipalName");
    if opt_str(event, &upn)?.is_some() {
        return observe_at(alert, event, &upn, ObservableKind::User, Some(role));
    }
    let name = format!("{base}/accountName");
    let Some(account) = opt_str(event, &name)? else {
        return Ok(());
    };
    let value = match opt_str(event, &format!("{base}/domainName"))? {
        Some(domain) => format!("{}\\{}", domain.trim(), account.trim()),
        None => account,
    };
    fields::observe(alert, ObservableKind::User, &value, Some(role), &name)
}

/// A Graph `fileDetails`: its hashes and its file name.
fn observe_file(alert: &mut NewAlert, event: &Value, base: &str) -> Result<(), NormalizeError> {
    let related = Some(ObservableRole::Related);
    for (field, kind) in [
        ("sha256", ObservableKind::Sha256),
        ("sha1", ObservableKind::Sha1),
        ("md5", ObservableKind::Md5),
        ("fileName", ObservableKind::File),
    ] {
        observe_at(alert, event, &format!("{base}/{field}"), kind, related)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn severity_follows_graph_levels() {
        assert_eq!(severity(Some("high")), Severity::High);
        assert_eq!(severity(Some("Medium")), Severity::Medium);
        assert_eq!(severity(Some("low")), Severity::Low);
        assert_eq!(severity(Some("informational")), Severity::Informational);
        assert_eq!(severity(Some("unknown")), Severity::Unknown);
        assert_eq!(severity(Some("unknownFutureValue")), Severity::Unknown);
        assert_eq!(severity(Some("critical")), Severity::Unknown);
        assert_eq!(severity(None), Severity::Unknown);
    }

    #[test]
    fn roles_pick_the_side() {
        let v = json!({ "e": { "roles": ["contextual", "compromised", "attacker"] },
                        "v": { "roles": ["destination"] }, "n": { "roles": [] } });
        assert_eq!(side(&v, "/e").unwrap(), Side::Attacker);
        assert_eq!(side(&v, "/v").unwrap(), Side::Victim);
        assert_eq!(side(&v, "/n").unwrap(), Side::Unknown);
        assert_eq!(side(&v, "/missing").unwrap(), Side::Unknown);
    }

    #[test]
    fn evidence_roles_decide_observable_roles() {
        let event = json!({ "title": "t", "evidence": [
            { "@odata.type": "#microsoft.graph.security.ipEvidence",
              "ipAddress": "203.0.113.5", "roles": ["attacker", "source"] },
            { "@odata.type": "#microsoft.graph.security.ipEvidence",
              "ipAddress": "10.0.0.4", "roles": ["destination"] },
            { "@odata.type": "#microsoft.graph.security.userEvidence",
              "userAccount": { "accountName": "Bob", "domainName": "CORP" } },
            { "@odata.type": "#microsoft.graph.security.registryKeyEvidence",
              "registryKey": "SYSTEM\\X" }
        ]});
        let alert = normalize(&event, DETECTION).unwrap();
        let got: Vec<_> = alert
            .observables
            .iter()
            .map(|o| (o.kind, o.value.as_str(), o.role))
            .collect();
        assert_eq!(
            got,
            vec![
                (ObservableKind::Ip, "203.0.113.5", Some(ObservableRole::Src)),
                (ObservableKind::Ip, "10.0.0.4", Some(ObservableRole::Dst)),
                (
                    ObservableKind::User,
                    "corp\\bob",
                    Some(ObservableRole::Target)
                ),
            ]
        );
    }

    #[test]
    fn bad_evidence_names_the_field() {
        let event = json!({ "title": "t", "evidence": [
            { "@odata.type": "#microsoft.graph.security.fileEvidence",
              "fileDetails": { "sha256": "not-a-hash" } }
        ]});
        let err = normalize(&event, DETECTION).unwrap_err();
        assert_eq!(err.field, "evidence.0.fileDetails.sha256");
        let err = normalize(&json!({ "title": "t", "evidence": [3] }), DETECTION).unwrap_err();
        assert_eq!(err.field, "evidence.0");
    }

    #[test]
    fn product_from_product_name_or_service_source() {
        let alert = normalize(
            &json!({ "title": "t", "serviceSource": "microsoftDefenderForIdentity" }),
            DETECTION,
        )
        .unwrap();
        assert_eq!(alert.product, "Microsoft Defender for Identity");
        let alert = normalize(&json!({ "title": "t", "serviceSource": "new" }), DETECTION).unwrap();
        assert_eq!(alert.product, DEFAULT_PRODUCT);
        let alert = normalize(
            &json!({ "title": "t", "productName": "Microsoft Defender for Endpoint",
                     "serviceSource": "microsoftDefenderForIdentity" }),
            DETECTION,
        )
        .unwrap();
        assert_eq!(alert.product, "Microsoft Defender for Endpoint");
    }
}
