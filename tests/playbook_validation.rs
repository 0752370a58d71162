//! `tocsin playbook validate`: every kind of broken playbook is refused with its file, line
//! and reason, through the real binary.

mod common;

use common::{Backend, TestDb};
use std::path::PathBuf;

const INTEGRATION: &str = r#"
id: fw
name: Test firewall
base_url: https://fw.example.org/api
auth: { type: bearer, secret: FW_TOKEN }
actions:
  lookup:
    kind: enrichment
    method: GET
    path: /ip/${{ $.inputs.ip }}
    inputs: [ip]
    outputs: { score: "$.score" }
  block:
    kind: containment
    method: POST
    path: /blocks
    body: { value: "${{ $.inputs.ip }}", reason: "${{ $.inputs.reason }}" }
    inputs: [ip, reason]
"#;

const GOOD: &str = r#"
id: good
version: 1
description: A valid playbook.
trigger: { on: case.created }
condition: "$.case.severity_id >= 3"
steps:
  - id: lookup
    uses: fw.lookup
    with: { ip: "${{ $.alerts[0].observables[0].value }}" }
    retry: { attempts: 3, backoff: 2s }
    timeout: 30s
    on_failure: continue
  - id: comment
    uses: case.comment
    with: { body: "Score ${{ $.steps.lookup.output.score }}" }
  - id: block
    uses: fw.block
    if: "$.steps.lookup.output.score > 80"
    with: { ip: "${{ $.alerts[0].observables[0].value }}", reason: "case ${{ $.case.id }}" }
    approval:
      roles: [responder]
      timeout: 30m
      message: "Block ${{ $.alerts[0].observables[0].value }} for case ${{ $.case.id }}?"
"#;

struct Dir {
    db: TestDb,
}

impl Dir {
    fn new() -> Option<Dir> {
        let db = TestDb::new(Backend::Sqlite)?;
        let root = db.dir.path();
        std::fs::create_dir_all(root.join("playbooks")).unwrap();
        std::fs::create_dir_all(root.join("integrations")).unwrap();
        std::fs::write(root.join("integrations/fw.yaml"), INTEGRATION).unwrap();
        Some(Dir { db })
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.db.dir.path().join("playbooks").join(name);
        std::fs::write(&path, text.trim_start()).unwrap();
        path
    }

    /// Validates one file; returns (exit code, output lines).
    fn validate(&self, path: &PathBuf) -> (i32, String) {
        let out = self
            .db
            .tocsin()
            .args(["playbook", "validate"])
            .arg(path)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    }

    /// Asserts the file is refused with a line naming `line` and containing `needle`.
    fn refused(&self, name: &str, text: &str, line: usize, needle: &str) {
        let path = self.write(name, text);
        let (code, out) = self.validate(&path);
        assert_eq!(code, 1, "{name} should be refused: {out}");
        let expected = format!("{}:{line}: ", path.display());
        assert!(
            out.lines()
                .any(|l| l.starts_with(&expected) && l.contains(needle)),
            "{name}: expected `{expected}...{needle}` in:\n{out}"
        );
        std::fs::remove_file(path).unwrap();
    }
}

fn with_step(extra: &str) -> String {
    format!(
        "id: t\nversion: 1\ntrigger: {{ on: manual }}\nsteps:\n  - id: first\n    uses: noop\n{extra}"
    )
}

#[test]
fn a_valid_playbook_passes_and_the_folder_loads() {
    let Some(d) = Dir::new() else { return };
    let path = d.write("good.yaml", GOOD);
    let (code, out) = d.validate(&path);
    assert_eq!(code, 0, "{out}");
    let all = d.db.run_ok(&["playbook", "validate"]);
    assert!(
        all.contains("1 playbooks and 1 integrations are valid"),
        "{all}"
    );
}

#[test]
fn each_kind_of_broken_playbook_is_refused_with_file_line_and_reason() {
    let Some(d) = Dir::new() else { return };
    // Unknown keys, at any depth, are parse errors with their line.
    d.refused(
        "unknown.yaml",
        &GOOD.replace("description:", "descripton:"),
        3,
        "unknown field `descripton`",
    );
    d.refused(
        "unknown-step-key.yaml",
        &GOOD.replace("    timeout: 30s", "    timeout: 30s\n    retires: 2"),
        12,
        "unknown field `retires`",
    );
    // Unknown actions and integrations.
    d.refused(
        "bare.yaml",
        &with_step("  - id: b\n    uses: explode\n"),
        7,
        "neither a built-in",
    );
    d.refused(
        "action.yaml",
        &with_step("  - id: b\n    uses: case.explode\n"),
        7,
        "no such built-in",
    );
    d.refused(
        "integration.yaml",
        &with_step("  - id: b\n    uses: nosuch.lookup\n"),
        7,
        "no integration \"nosuch\"",
    );
    d.refused(
        "missing-action.yaml",
        &with_step("  - id: b\n    uses: fw.delete\n"),
        7,
        "has no action \"delete\"",
    );
    // Inputs an action needs, and inputs it does not take.
    d.refused(
        "needs-input.yaml",
        &with_step("  - id: b\n    uses: fw.lookup\n"),
        7,
        "needs `with.ip`",
    );
    d.refused(
        "extra-input.yaml",
        &with_step("  - id: b\n    uses: case.comment\n    with: { body: x, colour: red }\n"),
        7,
        "takes no input `colour`",
    );
    // References to steps that do not exist, or that have not run yet.
    d.refused(
        "missing-ref.yaml",
        &with_step("  - id: b\n    uses: case.comment\n    with: { body: \"${{ $.steps.ghost.output }}\" }\n"),
        7,
        "refers to step \"ghost\", which does not exist",
    );
    d.refused(
        "later-ref.yaml",
        &with_step("    with: { value: \"${{ $.steps.b.output }}\" }\n  - id: b\n    uses: noop\n"),
        5,
        "does not run before it",
    );
    d.refused(
        "needs-missing.yaml",
        &with_step("  - id: b\n    uses: noop\n    needs: [nope]\n"),
        7,
        "needs \"nope\"",
    );
    // Cycles.
    d.refused(
        "cycle.yaml",
        "id: t\nversion: 1\ntrigger: { on: manual }\nsteps:\n  - id: a\n    uses: noop\n    needs: [c]\n  - id: b\n    uses: noop\n    needs: [a]\n  - id: c\n    uses: noop\n    needs: [b]\n",
        5,
        "cycle",
    );
    d.refused(
        "goto-back.yaml",
        &with_step("  - id: b\n    uses: noop\n    on_failure: goto:first\n"),
        7,
        "would loop",
    );
    d.refused(
        "dup.yaml",
        &with_step("  - id: first\n    uses: noop\n"),
        7,
        "used twice",
    );
    // Durations, schedules, retry bounds.
    d.refused(
        "duration.yaml",
        &with_step("    timeout: soon\n"),
        5,
        "not a duration",
    );
    d.refused(
        "retry.yaml",
        &with_step("    retry: { attempts: 0 }\n"),
        5,
        "retry.attempts",
    );
    d.refused(
        "cron.yaml",
        "id: t\nversion: 1\ntrigger: { on: schedule, schedule: \"every tuesday\" }\nsteps:\n  - id: a\n    uses: noop\n",
        3,
        "not a cron expression",
    );
    d.refused(
        "no-cron.yaml",
        "id: t\nversion: 1\ntrigger: { on: schedule }\nsteps:\n  - id: a\n    uses: noop\n",
        3,
        "needs a `schedule`",
    );
    d.refused(
        "trigger.yaml",
        "id: t\nversion: 1\ntrigger: { on: case.deleted }\nsteps:\n  - id: a\n    uses: noop\n",
        3,
        "unknown variant `case.deleted`",
    );
    // Bad expressions.
    d.refused(
        "template.yaml",
        &with_step(
            "  - id: b\n    uses: case.comment\n    with: { body: \"${{ $.case.title \" }\n",
        ),
        7,
        "with.body",
    );
    d.refused(
        "condition.yaml",
        &with_step("  - id: b\n    uses: noop\n    if: \"$.case.severity_id >>> 3\"\n"),
        7,
        "position",
    );
    d.refused(
        "typo-root.yaml",
        &with_step(
            "  - id: b\n    uses: case.comment\n    with: { body: \"${{ $.csae.title }}\" }\n",
        ),
        7,
        "csae",
    );
    d.refused(
        "output-outside.yaml",
        &with_step(
            "  - id: b\n    uses: case.comment\n    with: { body: \"${{ $.output.x }}\" }\n",
        ),
        7,
        "only `outputs:` may read",
    );
    // Containment is gated; waivers need policy; approvers must be responders.
    let block = "  - id: b\n    uses: fw.block\n    with: { ip: 1.2.3.4, reason: test }\n";
    d.refused(
        "ungated.yaml",
        &with_step(block),
        7,
        "needs an `approval:` gate",
    );
    d.refused(
        "waived.yaml",
        &with_step(&format!("{block}    waive_approval: true\n")),
        7,
        "allow_approval_waivers is off",
    );
    d.refused(
        "viewer-approves.yaml",
        &with_step(&format!(
            "{block}    approval: {{ roles: [viewer], timeout: 10m, message: ok }}\n"
        )),
        7,
        "must be responder or admin",
    );
    d.refused(
        "approve-on-timeout.yaml",
        &with_step(&format!("{block}    approval: {{ roles: [responder], timeout: 10m, on_timeout: approve, message: ok }}\n")),
        7,
        "allow_approve_on_timeout is off",
    );
    d.refused(
        "gated-enrichment.yaml",
        &with_step("  - id: b\n    uses: fw.lookup\n    with: { ip: 1.2.3.4 }\n    approval: { roles: [responder], timeout: 10m, message: ok }\n"),
        7,
        "only for containment",
    );
    d.refused(
        "http-post.yaml",
        &with_step("  - id: b\n    uses: http.request\n    with: { method: POST, url: \"https://x.example/\" }\n"),
        7,
        "containment action",
    );
}

#[test]
fn policy_can_allow_waivers() {
    let Some(d) = Dir::new() else { return };
    let block = "  - id: b\n    uses: fw.block\n    with: { ip: 1.2.3.4, reason: test }\n    waive_approval: true\n";
    let path = d.write("waived.yaml", &with_step(block));
    assert_eq!(d.validate(&path).0, 1);
    std::fs::write(
        d.db.dir.path().join("tocsin.toml"),
        "[playbooks]\nallow_approval_waivers = true\n",
    )
    .unwrap();
    let (code, out) = d.validate(&path);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_broken_integration_refuses_the_folder() {
    let Some(d) = Dir::new() else { return };
    d.write("good.yaml", GOOD);
    std::fs::write(
        d.db.dir.path().join("integrations/bad.yaml"),
        "id: bad\nname: Bad\nbase_url: ftp://nope\nauth: { type: bearer, secret: lower_case }\nactions:\n  x:\n    kind: enrichment\n    method: GET\n    path: /x/${{ $.inputs.missing }}\n",
    )
    .unwrap();
    let out =
        d.db.tocsin()
            .args(["playbook", "validate"])
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bad.yaml:3: base_url"), "{text}");
    assert!(text.contains("UPPER_SNAKE_CASE"), "{text}");
    assert!(text.contains("uses input \"missing\""), "{text}");
}

#[test]
fn broken_acknowledgement_steps_are_refused() {
    let Some(d) = Dir::new() else { return };
    let ack = |with: &str| {
        with_step(&format!(
            "  - id: ack\n    uses: acknowledgement\n    with: {{ message: Ack?, {with} }}\n"
        ))
    };
    d.refused("ack-timeout.yaml", &ack("timeout: soon"), 7, "with.timeout");
    d.refused(
        "ack-missing.yaml",
        &with_step("  - id: ack\n    uses: acknowledgement\n    with: { message: Ack? }\n"),
        7,
        "needs `with.timeout`",
    );
    d.refused(
        "ack-viewer.yaml",
        &ack("timeout: 5m, roles: [viewer]"),
        7,
        "viewer may not acknowledge",
    );
    d.refused(
        "ack-escalate.yaml",
        &ack("timeout: 5m, escalate_to: { roles: [responder] }"),
        7,
        "escalate_to needs `timeout`",
    );
    d.refused(
        "ack-check-containment.yaml",
        &ack("timeout: 5m, check: { uses: fw.block, with: { ip: x, reason: y }, acknowledged: 'true' }"),
        7,
        "must be an enrichment action",
    );
    d.refused(
        "ack-check-input.yaml",
        &ack("timeout: 5m, check: { uses: fw.lookup, acknowledged: 'true' }"),
        7,
        "needs `with.ip`",
    );
    d.refused(
        "ack-check-condition.yaml",
        &ack("timeout: 5m, check: { uses: fw.lookup, with: { ip: x }, acknowledged: '$.output.score >' }"),
        7,
        "with.check.acknowledged",
    );
    d.refused(
        "ack-check-every.yaml",
        &ack("timeout: 5m, check: { uses: fw.lookup, with: { ip: x }, acknowledged: 'true', every: 10ms }"),
        7,
        "at least 1s",
    );
    d.refused(
        "ack-check-key.yaml",
        &ack("timeout: 5m, check: { uses: fw.lookup, with: { ip: x }, acknowledged: 'true', often: 1 }"),
        7,
        "takes no key `often`",
    );
    let good = d.write(
        "ack-good.yaml",
        &ack("timeout: \"${{ $.inputs.t }}\", check: { uses: fw.lookup, with: { ip: x }, acknowledged: \"$.output.score > 1\", by: $.who, every: 30s }")
            .replace("steps:", "inputs: [ { name: t, type: string, default: 5m } ]\nsteps:"),
    );
    let (code, out) = d.validate(&good);
    assert_eq!(code, 0, "{out}");
}
