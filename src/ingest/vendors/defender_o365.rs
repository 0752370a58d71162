//! Microsoft Defender for Office 365 email alerts: the Graph security API alert v2
//! (`microsoft.graph.security.alert`) whose `serviceSource` is
//! `microsoftDefenderForOffice365` ("Email messages containing malicious URL removed after
//! delivery", "A potentially malicious URL click was detected", ...), as an Email Activity.
//!
//! Fields are read as for any Graph alert ([`super::graph_alert`]): `title` required,
//! `severity` one to one, `id` as external id and fingerprint, `status` `resolved` resolves.
//! The observables centre on the message, from the alert's `analyzedMessageEvidence`:
//! `internetMessageId` → message_id, `p1Sender`/`p2Sender` `emailAddress` → sender,
//! `recipientEmailAddress` → recipient, `senderIp` → src, `urls` → url; plus URL, file
//! (attachment hashes and names), mailbox (the recipient's mailbox, role recipient) and user
//! evidence.
//!
//! Another product's alert sent to a Defender for Office 365 source (its `serviceSource`
//! names another service and its `detectionSource` is not Defender for Office 365) is not
//! refused, so a misrouted alert is not lost: it is normalized exactly as a
//! `graph_security` source would, keeping its Detection Finding class and its own product.
//! An alert without `serviceSource` is taken to be what the source is for.

use super::fields::opt_str;
use super::{graph_alert, NormalizeError};
use crate::alert::{AlertClass, NewAlert, ObservableRole};
use serde_json::Value;

/// How Defender for Office 365 alerts are read.
const EMAIL: graph_alert::Flavor = graph_alert::Flavor {
    class: AlertClass::EmailActivity,
    product: Some("Microsoft Defender for Office 365"),
    mailbox_role: ObservableRole::Recipient,
};

/// Normalizes one Graph alert from Defender for Office 365.
pub fn normalize(event: &Value) -> Result<Vec<NewAlert>, NormalizeError> {
    let flavor = if is_mdo(event)? {
        EMAIL
    } else {
        graph_alert::DETECTION
    };
    Ok(vec![graph_alert::normalize(event, flavor)?])
}

/// Whether the alert comes from Defender for Office 365: its `serviceSource` or
/// `detectionSource` says so, or it names no service at all.
fn is_mdo(event: &Value) -> Result<bool, NormalizeError> {
    let mdo = |v: &Option<String>| {
        v.as_deref()
            .is_some_and(|s| s.trim().eq_ignore_ascii_case(graph_alert::MDO_SOURCE))
    };
    let service = opt_str(event, "/serviceSource")?;
    let detection = opt_str(event, "/detectionSource")?;
    Ok(service.is_none() || mdo(&service) || mdo(&detection))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_mdo_alerts_become_email_activity() {
        let class = |event: Value| normalize(&event).unwrap()[0].class;
        let mdo = json!({ "title": "t", "serviceSource": "microsoftDefenderForOffice365" });
        assert_eq!(class(mdo), AlertClass::EmailActivity);
        let unnamed = json!({ "title": "t" });
        assert_eq!(class(unnamed), AlertClass::EmailActivity);
        let via_xdr = json!({ "title": "t", "serviceSource": "microsoft365Defender",
                              "detectionSource": "microsoftDefenderForOffice365" });
        assert_eq!(class(via_xdr), AlertClass::EmailActivity);
        let mde = json!({ "title": "t", "serviceSource": "microsoftDefenderForEndpoint" });
        let alerts = normalize(&mde).unwrap();
        assert_eq!(alerts[0].class, AlertClass::DetectionFinding);
        assert_eq!(alerts[0].product, "Microsoft Defender for Endpoint");
    }

    #[test]
    fn mailbox_is_the_recipient() {
        let event = json!({ "title": "t", "serviceSource": "microsoftDefenderForOffice365",
            "evidence": [{ "@odata.type": "#microsoft.graph.security.mailboxEvidence",
                           "primaryAddress": "Ann@Contoso.com", "roles": [] }] });
        let alert = &normalize(&event).unwrap()[0];
        assert_eq!(alert.observables[0].value, "ann@contoso.com");
        assert_eq!(alert.observables[0].role, Some(ObservableRole::Recipient));
    }
}
