//! The playbooks and integrations shipped in `playbooks/` and `integrations/` load under the
//! default policy (no approval waivers, no approve-on-timeout), and every containment step
//! in them is gated by an approval, so CI refuses broken shipped content.

use std::path::Path;
use tocsin::integrations::definition::{ActionKind, Integration};
use tocsin::playbooks::builtins;
use tocsin::playbooks::definition::{OnTimeout, Step};
use tocsin::playbooks::library::{self, Library};
use tocsin::playbooks::validate::Policy;

const PLAYBOOKS: [&str; 4] = ["phishing-triage", "edr-malware", "brute-force", "it-outage"];

const INTEGRATIONS: [&str; 11] = [
    "virustotal",
    "abuseipdb",
    "urlscan",
    "crowdstrike",
    "msgraph",
    "firewall",
    "slack",
    "jira",
    "pagerduty",
    "pagerduty_events",
    "diagnostics",
];

/// Generic contracts of Tocsin's own making, with no vendor documentation to point at.
const GENERIC: [&str; 2] = ["firewall", "diagnostics"];

fn shipped() -> Library {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match library::load(
        &root.join("playbooks"),
        &root.join("integrations"),
        Policy::default(),
    ) {
        Ok(lib) => lib,
        Err(problems) => {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            panic!("shipped content does not load:\n{}", list.join("\n"));
        }
    }
}

/// Whether a step's action changes something outside Tocsin.
fn is_containment(
    step: &Step,
    integrations: &std::collections::BTreeMap<String, Integration>,
) -> bool {
    if builtins::find(&step.uses).is_some() {
        let method = step.with.get("method").and_then(|v| v.as_str());
        return builtins::is_containment(&step.uses, method);
    }
    let (integration, action) = step
        .uses
        .split_once('.')
        .unwrap_or_else(|| panic!("step {:?} uses {:?}", step.id, step.uses));
    integrations[integration].actions[action].kind == ActionKind::Containment
}

#[test]
fn shipped_content_loads_under_the_default_policy() {
    let lib = shipped();
    for id in PLAYBOOKS {
        let (pb, _) = lib
            .playbooks
            .get(id)
            .unwrap_or_else(|| panic!("playbook {id} is not shipped"));
        assert!(pb.version >= 1, "{id}");
        assert!(
            pb.description.as_deref().is_some_and(|d| !d.is_empty()),
            "{id} has no description"
        );
    }
    for id in INTEGRATIONS {
        let integration = lib
            .integrations
            .get(id)
            .unwrap_or_else(|| panic!("integration {id} is not shipped"));
        assert!(
            integration.description.is_some(),
            "integration {id} has no description"
        );
        if !GENERIC.contains(&id) {
            assert!(
                integration
                    .docs
                    .as_deref()
                    .is_some_and(|d| d.starts_with("https://")),
                "integration {id} does not link the vendor's documentation"
            );
        }
    }
}

#[test]
fn every_shipped_containment_step_has_an_approval_gate() {
    let lib = shipped();
    let mut gated = 0;
    for (id, (pb, _)) in &lib.playbooks {
        for step in &pb.steps {
            if !is_containment(step, &lib.integrations) {
                continue;
            }
            assert!(
                !step.waive_approval,
                "{id}/{}: shipped content may not waive approval",
                step.id
            );
            let approval = step
                .approval
                .as_ref()
                .unwrap_or_else(|| panic!("{id}/{}: containment without approval", step.id));
            assert!(
                !approval.roles.is_empty() || !approval.users.is_empty(),
                "{id}/{}: nobody may approve",
                step.id
            );
            assert_ne!(
                approval.on_timeout,
                OnTimeout::Approve,
                "{id}/{}: silence must not approve containment",
                step.id
            );
            assert!(
                approval.message.contains("$.case.id"),
                "{id}/{}: the approval message must name the case",
                step.id
            );
            gated += 1;
        }
    }
    // phishing: quarantine, block sender; edr: contain; brute force: block, revoke,
    // disable; outage: restart, rollback.
    assert_eq!(gated, 8, "containment steps in shipped playbooks");
    let (edr, _) = &lib.playbooks["edr-malware"];
    let contain = edr.steps.iter().find(|s| s.id == "contain").unwrap();
    assert_eq!(
        contain.approval.as_ref().map(|a| a.required),
        Some(2),
        "host isolation needs four eyes"
    );
}

#[test]
fn every_shipped_containment_action_declares_whether_it_is_idempotent() {
    let lib = shipped();
    for (id, integration) in &lib.integrations {
        for (name, action) in &integration.actions {
            if action.kind == ActionKind::Containment {
                assert!(
                    action.idempotent.is_some(),
                    "{id}.{name}: containment actions must say whether a repeat is safe"
                );
            }
        }
    }
}

#[test]
fn shipped_integrations_build_an_executor_and_document_required_settings() {
    use tocsin::integrations::executor::{Executor, ExecutorConfig};
    use tocsin::integrations::render::setting_env_var;
    use tocsin::integrations::secrets::Secrets;
    let lib = shipped();
    // Every template, success test and output path compiles for calls, not only for
    // validation, with no deployment variables set.
    Executor::with_env(
        lib.integrations.clone(),
        Secrets::default(),
        &Default::default(),
        ExecutorConfig::default(),
    )
    .unwrap_or_else(|e| panic!("shipped integrations do not build an executor: {e}"));
    for (id, integration) in &lib.integrations {
        let description = integration.description.as_deref().unwrap_or("");
        for (name, setting) in &integration.settings {
            assert!(!setting.description.is_empty(), "{id}.settings.{name}");
            if setting.default.is_none() {
                let var = setting_env_var(id, name);
                assert!(
                    description.contains(&var),
                    "{id}: the description must tell deployments to set {var}"
                );
            }
        }
        // No placeholder left for a deployment to edit by hand.
        if let tocsin::integrations::definition::Auth::Oauth2ClientCredentials {
            token_url, ..
        } = &integration.auth
        {
            assert!(!token_url.contains("TENANT_ID"), "{id}: {token_url}");
        }
    }
}
