//! Checks what parsing cannot: identifiers, actions and their inputs, expressions,
//! references between steps, cycles, durations, cron schedules and approval rules.

use super::builtins;
use super::definition::{OnFailure, OnTimeout, Playbook, Step, TriggerKind};
use crate::auth::Role;
use crate::integrations::definition::{ActionKind, Integration};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One problem, with the line it is on when it can be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub message: String,
}

/// Deployment policy that playbooks must respect.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    /// Whether `waive_approval: true` is allowed.
    pub allow_approval_waivers: bool,
    /// Whether `on_timeout: approve` is allowed.
    pub allow_approve_on_timeout: bool,
}

/// What playbooks may refer to.
pub struct Catalog<'a> {
    pub integrations: &'a BTreeMap<String, Integration>,
    pub playbook_ids: &'a BTreeSet<String>,
    pub policy: Policy,
}

/// Whether `s` is a valid identifier: 1–64 of `a-z 0-9 - _`.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Parses a duration such as `500ms`, `30s`, `5m`, `2h`, `1d`.
pub fn duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration such as 30s, 5m or 2h ({e})"))
}

/// Finds the line of `key: value` at or after `from_line` (1-based), for pointing at a step.
fn find_line(text: &str, key: &str, value: &str, from_line: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from_line.saturating_sub(1))
        .find_map(|(i, line)| {
            let l = line.trim_start().trim_start_matches("- ").trim_start();
            let rest = l.strip_prefix(key)?.trim_start().strip_prefix(':')?.trim();
            let rest = rest.trim_matches(|c| c == '"' || c == '\'');
            (rest == value).then_some(i + 1)
        })
}

struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn at(&mut self, line: Option<usize>, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            message: message.into(),
        });
    }

    fn top(&mut self, key: &str, message: impl Into<String>) {
        let line = self
            .text
            .lines()
            .position(|l| l.starts_with(&format!("{key}:")))
            .map(|i| i + 1);
        self.at(line, message);
    }
}

/// Validates a parsed playbook against its source text and the catalog.
pub fn playbook(pb: &Playbook, text: &str, catalog: &Catalog) -> Vec<Problem> {
    let mut c = Checker {
        text,
        problems: Vec::new(),
    };
    if !is_identifier(&pb.id) {
        c.top(
            "id",
            format!("id {:?} must be 1 to 64 of a-z, 0-9, '-' and '_'", pb.id),
        );
    }
    if pb.version == 0 {
        c.top("version", "version must be 1 or more");
    }
    match (pb.trigger.on, &pb.trigger.schedule) {
        (TriggerKind::Schedule, None) => c.top(
            "trigger",
            "trigger `on: schedule` needs a `schedule` (cron, 5 fields, UTC)",
        ),
        (TriggerKind::Schedule, Some(cron)) => {
            if let Err(e) = croner::Cron::new(cron).parse() {
                c.top(
                    "trigger",
                    format!("schedule {cron:?} is not a cron expression: {e}"),
                );
            }
        }
        (_, Some(_)) => c.top("trigger", "`schedule` is only for `on: schedule`"),
        (_, None) => {}
    }
    if let Some(cond) = &pb.condition {
        match exprs::condition_refs(cond) {
            Err(e) => c.top("condition", format!("condition: {e}")),
            Ok(refs) if !refs.steps.is_empty() => c.top(
                "condition",
                "the playbook condition cannot refer to steps; it is checked before any step runs",
            ),
            Ok(_) => {}
        }
    }
    let mut input_names = BTreeSet::new();
    for input in &pb.inputs {
        if !is_identifier(&input.name) {
            c.top(
                "inputs",
                format!(
                    "input name {:?} must be 1 to 64 of a-z, 0-9, '-' and '_'",
                    input.name
                ),
            );
        }
        if !input_names.insert(input.name.as_str()) {
            c.top(
                "inputs",
                format!("input {:?} is declared twice", input.name),
            );
        }
    }
    if pb.steps.is_empty() {
        c.top("steps", "a playbook needs at least one step");
    }

    // Step lines, found in order so a repeated id points at its own occurrence.
    let steps_line = text
        .lines()
        .position(|l| l.starts_with("steps:"))
        .map_or(1, |i| i + 1);
    let mut lines = HashMap::new();
    let mut from = steps_line;
    let mut ids: Vec<&str> = Vec::new();
    for step in &pb.steps {
        let line = find_line(text, "id", &step.id, from);
        if let Some(l) = line {
            from = l + 1;
        }
        if ids.contains(&step.id.as_str()) {
            c.at(line, format!("step id {:?} is used twice", step.id));
        }
        ids.push(&step.id);
        lines.entry(step.id.as_str()).or_insert(line);
    }
    let known: BTreeSet<&str> = ids.iter().copied().collect();

    // Dependencies: explicit `needs`, else the previous step.
    let mut deps: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (i, step) in pb.steps.iter().enumerate() {
        let line = lines.get(step.id.as_str()).copied().flatten();
        let d: Vec<&str> = match &step.needs {
            Some(needs) => needs.iter().map(String::as_str).collect(),
            None if i > 0 => vec![pb.steps[i - 1].id.as_str()],
            None => vec![],
        };
        for n in &d {
            if *n == step.id {
                c.at(line, format!("step {:?} needs itself", step.id));
            } else if !known.contains(n) {
                c.at(
                    line,
                    format!(
                        "step {:?} needs {n:?}, which is not a step of this playbook",
                        step.id
                    ),
                );
            }
        }
        deps.insert(step.id.as_str(), d);
    }
    if let Some(cycle) = find_cycle(&deps) {
        let line = lines.get(cycle[0]).copied().flatten();
        c.at(line, format!("steps form a cycle: {}", cycle.join(" → ")));
    }

    for step in &pb.steps {
        let line = lines.get(step.id.as_str()).copied().flatten();
        check_step(&mut c, step, line, &known, &deps, catalog, &input_names);
    }
    c.problems
}

/// All steps that `id` transitively waits for.
fn ancestors<'a>(id: &'a str, deps: &BTreeMap<&'a str, Vec<&'a str>>) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![id];
    while let Some(s) = stack.pop() {
        for d in deps.get(s).into_iter().flatten() {
            if seen.insert(*d) {
                stack.push(d);
            }
        }
    }
    seen
}

fn find_cycle<'a>(deps: &BTreeMap<&'a str, Vec<&'a str>>) -> Option<Vec<&'a str>> {
    // Depth-first search with colours; returns the first cycle found as a path.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour: BTreeMap<&str, Colour> = deps.keys().map(|k| (*k, Colour::White)).collect();
    fn visit<'a>(
        node: &'a str,
        deps: &BTreeMap<&'a str, Vec<&'a str>>,
        colour: &mut BTreeMap<&'a str, Colour>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        colour.insert(node, Colour::Grey);
        path.push(node);
        for next in deps.get(node).into_iter().flatten() {
            match colour.get(next).copied() {
                Some(Colour::Grey) => {
                    let start = path.iter().position(|p| p == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next);
                    return Some(cycle);
                }
                Some(Colour::White) => {
                    if let Some(c) = visit(next, deps, colour, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        colour.insert(node, Colour::Black);
        None
    }
    let nodes: Vec<&str> = deps.keys().copied().collect();
    for node in nodes {
        if colour.get(node) == Some(&Colour::White) {
            if let Some(c) = visit(node, deps, &mut colour, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[allow(clippy::too_many_arguments)]
fn check_step(
    c: &mut Checker,
    step: &Step,
    line: Option<usize>,
    known: &BTreeSet<&str>,
    deps: &BTreeMap<&str, Vec<&str>>,
    catalog: &Catalog,
    inputs: &BTreeSet<&str>,
) {
    let id = &step.id;
    if !is_identifier(id) {
        c.at(
            line,
            format!("step id {id:?} must be 1 to 64 of a-z, 0-9, '-' and '_'"),
        );
    }
    let before = ancestors(id, deps);
    let check_refs = |c: &mut Checker,
                      what: &str,
                      refs: Result<exprs::Refs, String>,
                      allow_self: bool| match refs {
        Err(e) => c.at(line, format!("step {id:?} {what}: {e}")),
        Ok(refs) => {
            if refs.output && !allow_self {
                c.at(
                    line,
                    format!("step {id:?} {what} uses `$.output`, which only `outputs:` may read"),
                );
            }
            for r in refs.steps {
                if !known.contains(r.as_str()) {
                    c.at(
                        line,
                        format!("step {id:?} {what} refers to step {r:?}, which does not exist"),
                    );
                } else if r == *id && !allow_self {
                    c.at(
                        line,
                        format!("step {id:?} {what} refers to its own output before it has any"),
                    );
                } else if r != *id && !before.contains(r.as_str()) {
                    c.at(line, format!("step {id:?} {what} refers to step {r:?}, which does not run before it (add it to `needs`)"));
                }
            }
            for name in refs.inputs {
                if !inputs.contains(name.as_str()) {
                    c.at(line, format!("step {id:?} {what} refers to input {name:?}, which the playbook does not declare"));
                }
            }
        }
    };

    // The action and its inputs.
    let mut containment = false;
    if let Some(b) = builtins::find(&step.uses) {
        for r in b.required {
            if !step.with.contains_key(*r) {
                c.at(line, format!("step {id:?}: {} needs `with.{r}`", b.name));
            }
        }
        if !b.one_of.is_empty() && !b.one_of.iter().any(|k| step.with.contains_key(*k)) {
            c.at(
                line,
                format!(
                    "step {id:?}: {} needs one of {}",
                    b.name,
                    b.one_of
                        .iter()
                        .map(|k| format!("`with.{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        for k in step.with.keys() {
            if !b.required.contains(&k.as_str()) && !b.optional.contains(&k.as_str()) {
                c.at(
                    line,
                    format!("step {id:?}: {} takes no input `{k}`", b.name),
                );
            }
        }
        if b.name == "playbook.run" {
            if let Some(Value::String(target)) = step.with.get("playbook") {
                if !target.contains("${{") && !catalog.playbook_ids.contains(target) {
                    c.at(line, format!("step {id:?}: playbook.run names playbook {target:?}, which does not exist"));
                }
            }
        }
        if b.name == crate::playbooks::engine::ack::BUILTIN {
            check_acknowledgement(c, step, line, catalog);
        }
        let method = step.with.get("method").and_then(Value::as_str);
        containment = builtins::is_containment(b.name, method);
    } else if let Some((integration, action)) = step.uses.split_once('.') {
        match catalog
            .integrations
            .get(integration)
            .map(|i| (i, i.actions.get(action)))
        {
            None if ["case", "notify", "http", "playbook"].contains(&integration) => c.at(
                line,
                format!(
                    "step {id:?} uses {:?}: no such built-in; built-ins are {}",
                    step.uses,
                    builtins::BUILTINS
                        .iter()
                        .map(|b| b.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            None => c.at(
                line,
                format!(
                    "step {id:?} uses {:?}: no integration {integration:?}",
                    step.uses
                ),
            ),
            Some((_, None)) => c.at(
                line,
                format!(
                    "step {id:?} uses {:?}: integration {integration:?} has no action {action:?}",
                    step.uses
                ),
            ),
            Some((_, Some(a))) => {
                for r in &a.inputs {
                    if !step.with.contains_key(r) {
                        c.at(line, format!("step {id:?}: {} needs `with.{r}`", step.uses));
                    }
                }
                for k in step.with.keys() {
                    if !a.inputs.contains(k) {
                        c.at(
                            line,
                            format!("step {id:?}: {} takes no input `{k}`", step.uses),
                        );
                    }
                }
                containment = a.kind == ActionKind::Containment;
            }
        }
    } else {
        c.at(
            line,
            format!(
                "step {id:?} uses {:?}, which is neither a built-in nor <integration>.<action>",
                step.uses
            ),
        );
    }

    for (key, value) in &step.with {
        check_refs(c, &format!("with.{key}"), exprs::value_refs(value), false);
    }
    if let Some(Value::String(cond)) = step
        .with
        .get("check")
        .and_then(|ch| ch.get("acknowledged"))
        .filter(|_| step.uses == crate::playbooks::engine::ack::BUILTIN)
    {
        // `$.output` here is the check's answer.
        check_refs(
            c,
            "with.check.acknowledged",
            exprs::condition_refs(cond),
            true,
        );
    }
    if let Some(cond) = &step.condition {
        check_refs(c, "if", exprs::condition_refs(cond), false);
    }
    if let Some(f) = &step.foreach {
        check_refs(c, "foreach", exprs::foreach_refs(f), false);
    }
    if let Some(k) = &step.idempotency_key {
        check_refs(c, "idempotency_key", exprs::template_refs(k), false);
    }
    for (name, t) in &step.outputs {
        check_refs(c, &format!("outputs.{name}"), exprs::template_refs(t), true);
    }
    if let Some(r) = &step.retry {
        if r.attempts == 0 || r.attempts > 20 {
            c.at(line, format!("step {id:?}: retry.attempts must be 1 to 20"));
        }
        if let Err(e) = duration(&r.backoff) {
            c.at(line, format!("step {id:?}: retry.backoff: {e}"));
        }
        if let Some(Err(e)) = r.max_backoff.as_deref().map(duration) {
            c.at(line, format!("step {id:?}: retry.max_backoff: {e}"));
        }
    }
    if let Some(Err(e)) = step.timeout.as_deref().map(duration) {
        c.at(line, format!("step {id:?}: timeout: {e}"));
    }
    if let OnFailure::Goto(target) = &step.on_failure {
        if !known.contains(target.as_str()) {
            c.at(
                line,
                format!("step {id:?}: on_failure goes to {target:?}, which is not a step"),
            );
        } else if target == id || before.contains(target.as_str()) {
            c.at(line, format!("step {id:?}: on_failure goes back to {target:?}, which would loop; use retry instead"));
        }
    }

    // Containment needs a gate unless explicitly waived where policy allows.
    match (&step.approval, containment, step.waive_approval) {
        (Some(_), false, _) => c.at(line, format!("step {id:?}: approval is only for containment actions")),
        (None, true, false) => c.at(
            line,
            format!("step {id:?}: {} is a containment action and needs an `approval:` gate (or `waive_approval: true` where policy allows)", step.uses),
        ),
        (None, true, true) if !catalog.policy.allow_approval_waivers => c.at(
            line,
            format!("step {id:?}: waive_approval is refused: playbooks.allow_approval_waivers is off"),
        ),
        (Some(_), true, true) => c.at(line, format!("step {id:?}: has both approval and waive_approval")),
        (_, false, true) => c.at(line, format!("step {id:?}: waive_approval is only for containment actions")),
        _ => {}
    }
    if let Some(a) = &step.approval {
        if a.roles.is_empty() && a.users.is_empty() {
            c.at(
                line,
                format!("step {id:?}: approval needs `roles` or `users`"),
            );
        }
        if a.roles.iter().any(|r| *r < Role::Responder) {
            c.at(line, format!("step {id:?}: approval roles must be responder or admin; viewers and analysts may not approve containment"));
        }
        if a.required == 0 || a.required > 5 {
            c.at(
                line,
                format!("step {id:?}: approval.required must be 1 to 5"),
            );
        }
        if let Err(e) = duration(&a.timeout) {
            c.at(line, format!("step {id:?}: approval.timeout: {e}"));
        }
        if let Err(e) = exprs::template_refs(&a.message) {
            c.at(line, format!("step {id:?}: approval.message: {e}"));
        }
        match (a.on_timeout, &a.escalate_to) {
            (OnTimeout::Escalate, None) => c.at(line, format!("step {id:?}: on_timeout escalate needs `escalate_to`")),
            (OnTimeout::Escalate, Some(e)) => {
                if let Err(err) = duration(&e.timeout) {
                    c.at(line, format!("step {id:?}: approval.escalate_to.timeout: {err}"));
                }
                if e.roles.is_empty() && e.users.is_empty() {
                    c.at(line, format!("step {id:?}: escalate_to needs `roles` or `users`"));
                }
                if e.roles.iter().any(|r| *r < Role::Responder) {
                    c.at(line, format!("step {id:?}: escalate_to roles must be responder or admin"));
                }
                match e.on_timeout {
                    OnTimeout::Escalate => c.at(line, format!("step {id:?}: escalate_to.on_timeout must be reject or approve (one escalation)")),
                    OnTimeout::Approve if !catalog.policy.allow_approve_on_timeout => c.at(line, format!("step {id:?}: escalate_to.on_timeout approve is refused: playbooks.allow_approve_on_timeout is off")),
                    _ => {}
                }
            }
            (OnTimeout::Approve, _) if !catalog.policy.allow_approve_on_timeout => {
                c.at(line, format!("step {id:?}: on_timeout approve is refused: playbooks.allow_approve_on_timeout is off"))
            }
            (_, Some(_)) => c.at(line, format!("step {id:?}: escalate_to is only for on_timeout escalate")),
            _ => {}
        }
    }
}

/// The parts of an `acknowledgement` step that can be checked before it runs (values
/// written as templates are checked when rendered).
fn check_acknowledgement(c: &mut Checker, step: &Step, line: Option<usize>, catalog: &Catalog) {
    let id = &step.id;
    fn literal(v: &Value) -> Option<&str> {
        v.as_str().filter(|s| !s.contains("${{"))
    }
    if step.foreach.is_some() {
        c.at(
            line,
            format!("step {id:?}: an acknowledgement takes no foreach"),
        );
    }
    if let Some(t) = step.with.get("timeout").and_then(literal) {
        if let Err(e) = duration(t) {
            c.at(line, format!("step {id:?}: with.timeout: {e}"));
        }
    }
    let check_roles = |c: &mut Checker, v: Option<&Value>, what: &str| {
        for r in v
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(literal)
        {
            match r.parse::<Role>() {
                Ok(role) if role < crate::playbooks::engine::ack::DEFAULT_ROLE => c.at(
                    line,
                    format!(
                        "step {id:?}: {what}: {role} may not acknowledge; analysts and above may"
                    ),
                ),
                Ok(_) => {}
                Err(_) => c.at(line, format!("step {id:?}: {what}: {r:?} is not a role")),
            }
        }
    };
    check_roles(c, step.with.get("roles"), "with.roles");
    match step.with.get("escalate_to") {
        None => {}
        Some(Value::Object(e)) => {
            check_roles(c, e.get("roles"), "with.escalate_to.roles");
            match e.get("timeout") {
                None => c.at(
                    line,
                    format!("step {id:?}: with.escalate_to needs `timeout`"),
                ),
                Some(t) => {
                    if let Some(Err(err)) = literal(t).map(duration) {
                        c.at(
                            line,
                            format!("step {id:?}: with.escalate_to.timeout: {err}"),
                        );
                    }
                }
            }
            if e.get("roles").is_none() && e.get("users").is_none() {
                c.at(
                    line,
                    format!("step {id:?}: with.escalate_to needs `roles` or `users`"),
                );
            }
        }
        Some(_) => c.at(
            line,
            format!("step {id:?}: with.escalate_to must be a mapping"),
        ),
    }
    let Some(check) = step.with.get("check") else {
        return;
    };
    let Some(check) = check.as_object() else {
        c.at(line, format!("step {id:?}: with.check must be a mapping"));
        return;
    };
    for k in check.keys() {
        if !["uses", "with", "acknowledged", "by", "every"].contains(&k.as_str()) {
            c.at(line, format!("step {id:?}: with.check takes no key `{k}`"));
        }
    }
    match check.get("uses").and_then(Value::as_str) {
        None => c.at(
            line,
            format!("step {id:?}: with.check needs `uses` (an enrichment action)"),
        ),
        Some(uses) => {
            let action = uses
                .split_once('.')
                .and_then(|(i, a)| catalog.integrations.get(i)?.actions.get(a));
            match action {
                None => c.at(line, format!("step {id:?}: with.check.uses {uses:?} is not an integration action")),
                Some(a) if a.kind != ActionKind::Enrichment => c.at(
                    line,
                    format!("step {id:?}: with.check.uses {uses:?} must be an enrichment action (it is called repeatedly)"),
                ),
                Some(a) => {
                    let given = check.get("with").and_then(Value::as_object);
                    for r in &a.inputs {
                        if !given.is_some_and(|g| g.contains_key(r)) {
                            c.at(line, format!("step {id:?}: with.check: {uses} needs `with.{r}`"));
                        }
                    }
                    for k in given.into_iter().flat_map(|g| g.keys()) {
                        if !a.inputs.contains(k) {
                            c.at(line, format!("step {id:?}: with.check: {uses} takes no input `{k}`"));
                        }
                    }
                }
            }
        }
    }
    if !check.get("acknowledged").is_some_and(Value::is_string) {
        c.at(
            line,
            format!("step {id:?}: with.check needs `acknowledged` (a condition over $.output)"),
        );
    }
    if let Some(by) = check.get("by") {
        if by
            .as_str()
            .is_none_or(|b| crate::jsonpath::Query::parse(b).is_err())
        {
            c.at(
                line,
                format!("step {id:?}: with.check.by must be a JSONPath into the check's output"),
            );
        }
    }
    if let Some(every) = check.get("every").and_then(literal) {
        match duration(every) {
            Err(e) => c.at(line, format!("step {id:?}: with.check.every: {e}")),
            Ok(d) if d < std::time::Duration::from_secs(1) => c.at(
                line,
                format!("step {id:?}: with.check.every must be at least 1s"),
            ),
            Ok(_) => {}
        }
    }
}

/// Validates a parsed integration.
pub fn integration(i: &Integration, text: &str) -> Vec<Problem> {
    let mut c = Checker {
        text,
        problems: Vec::new(),
    };
    if !is_identifier(&i.id) || i.id.contains('-') {
        c.top(
            "id",
            format!(
                "integration id {:?} must be 1 to 64 of a-z, 0-9 and '_'",
                i.id
            ),
        );
    }
    match url::Url::parse(&i.base_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => c.top(
            "base_url",
            format!("base_url {:?} is not an http(s) URL", i.base_url),
        ),
    }
    for secret in i.auth.secrets() {
        if secret.is_empty()
            || !secret
                .chars()
                .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_')
        {
            c.top(
                "auth",
                format!("secret name {secret:?} must be UPPER_SNAKE_CASE"),
            );
        }
    }
    // Templates (paths, queries, headers, bodies, the token URL) and success tests, checked
    // by the same code that renders them for calls.
    if let Err(problems) = crate::integrations::render::compile(i) {
        for p in problems {
            match &p.action {
                Some(a) => {
                    let line = find_line(text, a, "", 1);
                    c.at(line, format!("action {a:?} {}", p.message));
                }
                None => {
                    let key = p.message.split(['.', ':']).next().unwrap_or("").to_string();
                    c.top(&key, p.message);
                }
            }
        }
    }
    if let Err(e) = duration(&i.limits.timeout) {
        c.top("limits", format!("limits.timeout: {e}"));
    }
    if i.limits.concurrency == 0 {
        c.top("limits", "limits.concurrency must be at least 1");
    }
    if i.actions.is_empty() {
        c.top("actions", "an integration needs at least one action");
    }
    for (name, a) in &i.actions {
        let line = find_line(text, name, "", 1);
        if !is_identifier(name) {
            c.at(
                line,
                format!("action name {name:?} must be 1 to 64 of a-z, 0-9, '-' and '_'"),
            );
        }
        for (out, path) in &a.outputs {
            if let Err(e) = exprs::json_path(path) {
                c.at(line, format!("action {name:?} outputs.{out}: {e}"));
            }
        }
        if !a.path.starts_with('/') && !a.path.is_empty() {
            c.at(line, format!("action {name:?}: path must start with '/'"));
        }
    }
    c.problems
}

/// Adapter between validation and the expression language: parse, and list which steps
/// and inputs an expression refers to.
mod exprs {
    use crate::playbooks::expr::{self, Condition, Reference, Template};
    use serde_json::Value;

    /// What an expression refers to.
    #[derive(Default)]
    pub struct Refs {
        pub steps: Vec<String>,
        pub inputs: Vec<String>,
        /// Uses `$.output`, the step's own result, which only `outputs:` may read.
        pub output: bool,
    }

    fn collect(refs: Vec<Reference>, source: &str) -> Refs {
        let mut out = Refs::default();
        for r in refs {
            if r.root.as_deref() == Some("output") {
                out.output = true;
            }
            if let (Some("steps"), Some(step)) = (r.root.as_deref(), r.step) {
                out.steps.push(step);
            }
        }
        // Input names are read from the text: references only name the root for them.
        let mut rest = source;
        while let Some(i) = rest.find("$.inputs.") {
            rest = &rest[i + "$.inputs.".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            if !name.is_empty() {
                out.inputs.push(name);
            }
        }
        out
    }

    /// Parses a template and lists its references.
    pub fn template_refs(s: &str) -> Result<Refs, String> {
        let t = Template::parse(s).map_err(|e| e.to_string())?;
        Ok(collect(t.references(), s))
    }

    /// Parses a `foreach` (a bare JSONPath or a template) and lists its references.
    pub fn foreach_refs(s: &str) -> Result<Refs, String> {
        let t = expr::parse_foreach(s).map_err(|e| e.to_string())?;
        Ok(collect(t.references(), s))
    }

    /// Parses a condition and lists its references.
    pub fn condition_refs(s: &str) -> Result<Refs, String> {
        let c = Condition::parse(s).map_err(|e| e.to_string())?;
        Ok(collect(c.references(), s))
    }

    /// Parses every template inside a JSON value and lists their references.
    pub fn value_refs(v: &Value) -> Result<Refs, String> {
        let t = expr::parse_value(v).map_err(|e| e.to_string())?;
        Ok(collect(t.references(), &v.to_string()))
    }

    /// Parses a bare JSONPath (integration outputs, evaluated over a response).
    pub fn json_path(s: &str) -> Result<(), String> {
        crate::jsonpath::Query::parse(s)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<Problem> {
        let i: Integration = serde_norway::from_str(text).unwrap();
        integration(&i, text)
    }

    #[test]
    fn integration_templates_settings_and_success_tests_are_checked_with_lines() {
        let text = r#"id: vendor
name: Vendor
base_url: https://api.example.com
settings:
  tenant: { description: "the tenant" }
auth:
  type: oauth2_client_credentials
  token_url: "https://login.example/${{ $.settings.region }}/token"
  client_id_secret: ID
  client_secret_secret: SECRET
actions:
  good:
    kind: enrichment
    method: GET
    path: /t/${{ $.settings.tenant }}/${{ $.inputs.x | base64url }}
    inputs: [x]
  leaky:
    kind: notification
    method: POST
    path: /x
    query: { key: "${{ $.secrets.API_KEY }}" }
    body: { who: "${{ $.case.id }}", n: "${{ $.inputs.undeclared }}" }
    success: { condition: "$.ok == true" }
"#;
        let found = problems(text);
        let shown: Vec<String> = found
            .iter()
            .map(|p| format!("{:?}: {}", p.line, p.message))
            .collect();
        let has = |line: usize, needle: &str| {
            found
                .iter()
                .any(|p| p.line == Some(line) && p.message.contains(needle))
        };
        assert!(has(6, "auth.token_url"), "{shown:?}");
        assert!(
            has(
                17,
                "query.key: secrets may be used only in headers and body"
            ),
            "{shown:?}"
        );
        assert!(has(17, "unknown context key 'case'"), "{shown:?}");
        assert!(has(17, "success.condition"), "{shown:?}");
        assert!(!found.iter().any(|p| p.line == Some(12)), "{shown:?}");
        // What is fine raises nothing.
        let fine = text.replace("region", "tenant");
        let fine = &fine[..fine.find("  leaky:").unwrap()];
        assert_eq!(problems(fine), vec![]);
    }
}
