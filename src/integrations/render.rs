//! Turns an action's templates into the request it sends, and judges the answer by the
//! action's `success` test. Domain logic only: no HTTP, no I/O.
//!
//! # What templates see
//!
//! An action's `path`, `query`, `headers` and `body` are templates (see
//! [`crate::playbooks::expr`]) over this context:
//!
//! | key        | contents                                                              |
//! |------------|-----------------------------------------------------------------------|
//! | `inputs`   | the step's rendered `with:` values                                     |
//! | `settings` | the integration's `settings:`, each from `TOCSIN_INTEGRATION_<ID>_<NAME>` or its default |
//! | `secrets`  | `$.secrets.<NAME>`: a configured secret, in `headers` and `body` only  |
//!
//! Names are written as `.name` (`$.inputs.hash`, `$.settings.tenant`), so what an action
//! reads is known when it is loaded: an input it names must be in its `inputs:`, a setting
//! must be declared under `settings:`, and a path that names no key (`$..x`, `$[*]`) is
//! refused. Only the secrets an action names are placed in its context.
//!
//! Secrets are for integration definitions only: playbook templates cannot name
//! `secrets` (nor `settings`), and a value passed in `with:` is data, never parsed as a
//! template, so a `${{ $.secrets.X }}` inside an alert stays that text. Not in `path` or
//! `query`, which end up in access logs. Whatever a secret renders into is sent to the
//! vendor only; results and errors pass through [`super::secrets::Secrets::redact`],
//! which knows secret values as they are (and URL-encoded), not transformed by a filter
//! (`| base64`): encoded credentials belong in `auth` (`basic` remembers its encoding).
//!
//! # How each part renders
//!
//! - `path`: split at `/` outside placeholders; a segment with a placeholder renders to
//!   text and is percent-encoded as one segment (`/`, `?`, `#`, `%`, spaces and non-ASCII
//!   encoded; letters, digits, `-._~` and `!$'()*,;=:@` kept), so an e-mail address stays
//!   readable and a hash cannot add segments. A templated segment rendering to nothing,
//!   `.` or `..` is refused.
//! - `query`: each value as text; `null` leaves the parameter out; an array repeats it
//!   once per element (`ids=a&ids=b`).
//! - `headers`: each value as text; `null` leaves the header out.
//! - `body`: a JSON structure. **An object member whose template renders to `null` is
//!   left out** (a `null` written literally stays), so an optional value that a step could
//!   not fill is absent rather than an explicit `null`, which typed vendor APIs refuse.
//!   Array elements are never dropped (that would shift positions).
//!
//! "As text" is the template rule: strings as they are, `null` as nothing, anything else
//! as compact JSON.
//!
//! Every input named in the action's `inputs:` must be present in the step's values
//! (`null` is a value); one that is missing fails the call before anything is sent.
//!
//! # Token URL
//!
//! An OAuth2 `token_url` is a template over `$.settings` only; one starting with `/` is a
//! path under the base URL (CrowdStrike: `/oauth2/token`, so a regional base URL moves
//! both).
//!
//! # Success
//!
//! `success: { condition, message }` is a condition over `{"response": <body>, "status":
//! <HTTP status>}` checked after the status was accepted (2xx or `accept_status`); false
//! fails the call with the vendor's error text found at the JSONPath `message`.

use super::definition::{Auth, Integration};
use super::executor::RenderedCall;
use super::secrets::Secrets;
use crate::playbooks::expr::{self, Condition, Template, TemplateValue};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Top-level keys an action's templates may name.
pub const ACTION_ROOTS: [&str; 3] = ["inputs", "settings", "secrets"];
/// Top-level keys an OAuth2 `token_url` may name.
pub const TOKEN_URL_ROOTS: [&str; 1] = ["settings"];
/// Top-level keys a `success` condition may name.
pub const SUCCESS_ROOTS: [&str; 2] = ["response", "status"];

/// Setting names that would collide with other `TOCSIN_INTEGRATION_<ID>_*` variables.
const RESERVED_SETTINGS: [&str; 2] = ["base_url", "rate_per_minute"];

/// Why an action could not be rendered. Messages never contain secret values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// An input the action declares is not among the step's values.
    #[error("input {name:?} is missing (the action needs {needs})")]
    MissingInput { name: String, needs: String },
    /// A setting the templates read has no value and no default.
    #[error("setting {name:?} is not set (set {env_var})")]
    MissingSetting { name: String, env_var: String },
    /// A secret the templates read is not configured.
    #[error("secret {name} is not configured")]
    MissingSecret { name: String },
    /// A template could not be evaluated or rendered into something sendable.
    #[error("{0}")]
    Invalid(String),
}

/// Something wrong with a definition, found when it is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionProblem {
    /// The action it is about, if any.
    pub action: Option<String>,
    /// Where (`query.ipAddress`, `auth.token_url`, `settings.tenant`) and what.
    pub message: String,
}

/// Every template of an integration, parsed and checked once.
#[derive(Debug)]
pub struct Compiled {
    /// Per action name.
    pub actions: BTreeMap<String, CompiledAction>,
    /// The OAuth2 token URL, when the auth method has one.
    pub token_url: Option<CompiledText>,
}

/// A template plus the settings it reads.
#[derive(Debug, Clone)]
pub struct CompiledText {
    template: Template,
    settings: BTreeSet<String>,
}

impl CompiledText {
    /// Renders against the deployment's settings.
    pub fn render(
        &self,
        integration: &str,
        settings: &BTreeMap<String, String>,
    ) -> Result<String, RenderError> {
        check_settings(integration, &self.settings, settings)?;
        let ctx = serde_json::json!({ "settings": settings });
        let v = self
            .template
            .render(&ctx)
            .map_err(|e| RenderError::Invalid(format!("token_url: {e}")))?;
        Ok(text(&v))
    }
}

/// One segment of a path: as written, or a template rendered and encoded as one segment.
#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Template(Template),
}

/// An action's request templates, parsed, with what they read.
#[derive(Debug, Clone)]
pub struct CompiledAction {
    segments: Vec<Segment>,
    query: Vec<(String, Template)>,
    headers: Vec<(String, Template)>,
    body: Option<TemplateValue>,
    inputs: Vec<String>,
    settings: BTreeSet<String>,
    secrets: BTreeSet<String>,
    success: Option<CompiledSuccess>,
}

/// An action's `success` test.
#[derive(Debug, Clone)]
pub struct CompiledSuccess {
    condition: Condition,
    message: Option<crate::jsonpath::Query>,
}

/// The environment variable that sets integration `id`'s setting `name`.
pub fn setting_env_var(id: &str, name: &str) -> String {
    format!(
        "TOCSIN_INTEGRATION_{}_{}",
        id.to_ascii_uppercase(),
        name.to_ascii_uppercase()
    )
}

/// The integration's settings with a value: from `env` (by [`setting_env_var`]), else the
/// default. A setting with neither is absent.
pub fn resolve_settings(
    i: &Integration,
    env: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, String> {
    i.settings
        .iter()
        .filter_map(|(name, s)| {
            let value = env(&setting_env_var(&i.id, name))
                .filter(|v| !v.trim().is_empty())
                .or_else(|| s.default.clone())?;
            Some((name.clone(), value))
        })
        .collect()
}

/// Parses and checks every template of `i` (actions, token URL, success tests).
pub fn compile(i: &Integration) -> Result<Compiled, Vec<DefinitionProblem>> {
    let mut problems = Vec::new();
    for name in i.settings.keys() {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            problems.push(DefinitionProblem {
                action: None,
                message: format!("settings.{name}: a setting name is 1 to 64 of a-z, 0-9 and '_'"),
            });
        } else if RESERVED_SETTINGS.contains(&name.as_str()) {
            problems.push(DefinitionProblem {
                action: None,
                message: format!(
                    "settings.{name}: reserved ({} is an override of the definition)",
                    setting_env_var(&i.id, name)
                ),
            });
        }
    }
    let token_url = match &i.auth {
        Auth::Oauth2ClientCredentials { token_url, .. } => match compile_token_url(i, token_url) {
            Ok(t) => Some(t),
            Err(message) => {
                problems.push(DefinitionProblem {
                    action: None,
                    message: format!("auth.token_url: {message}"),
                });
                None
            }
        },
        _ => None,
    };
    let mut actions = BTreeMap::new();
    for (name, action) in &i.actions {
        let mut c = ActionCompiler {
            integration: i,
            inputs: &action.inputs,
            problems: Vec::new(),
            settings: BTreeSet::new(),
            secrets: BTreeSet::new(),
        };
        let mut segments = Vec::new();
        for (n, seg) in split_path(&action.path).into_iter().enumerate() {
            if seg.contains("${{") {
                if let Some(t) = c.template(&format!("path segment {}", n), seg, false) {
                    segments.push(Segment::Template(t));
                }
            } else {
                segments.push(Segment::Literal(seg.to_string()));
            }
        }
        let query = action
            .query
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), c.template(&format!("query.{k}"), v, false)?)))
            .collect();
        let headers = action
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), c.template(&format!("headers.{k}"), v, true)?)))
            .collect();
        let body = action.body.as_ref().and_then(|b| {
            match expr::parse_value_with_roots(b, &ACTION_ROOTS) {
                Ok(t) => {
                    c.check_reads("body", &t.references(), &b.to_string(), true);
                    Some(t)
                }
                Err(e) => {
                    c.problems.push(format!("body: {e}"));
                    None
                }
            }
        });
        let success = i.success_of(action).and_then(|s| match compile_success(s) {
            Ok(s) => Some(s),
            Err(e) => {
                c.problems.push(e);
                None
            }
        });
        let ActionCompiler {
            problems: found,
            settings,
            secrets,
            ..
        } = c;
        if found.is_empty() {
            actions.insert(
                name.clone(),
                CompiledAction {
                    segments,
                    query,
                    headers,
                    body,
                    inputs: action.inputs.clone(),
                    settings,
                    secrets,
                    success,
                },
            );
        }
        problems.extend(found.into_iter().map(|message| DefinitionProblem {
            action: Some(name.clone()),
            message,
        }));
    }
    if problems.is_empty() {
        Ok(Compiled { actions, token_url })
    } else {
        Err(problems)
    }
}

fn compile_token_url(i: &Integration, source: &str) -> Result<CompiledText, String> {
    let template =
        Template::parse_with_roots(source, &TOKEN_URL_ROOTS).map_err(|e| e.to_string())?;
    let settings: BTreeSet<String> = names_after(source, "settings").into_iter().collect();
    if template
        .references()
        .iter()
        .any(|r| r.root.is_none() || (settings.is_empty() && r.root.is_some()))
    {
        return Err("name settings as $.settings.<name>".into());
    }
    if let Some(s) = settings.iter().find(|s| !i.settings.contains_key(*s)) {
        return Err(format!(
            "uses setting {s:?}, which is not declared under `settings:`"
        ));
    }
    if template.is_literal() && !source.starts_with('/') {
        match url::Url::parse(source) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => return Err(format!("{source:?} is not an http(s) URL or a path")),
        }
    }
    Ok(CompiledText { template, settings })
}

fn compile_success(s: &super::definition::Success) -> Result<CompiledSuccess, String> {
    let condition = Condition::parse_with_roots(&s.condition, &SUCCESS_ROOTS)
        .map_err(|e| format!("success.condition: {e}"))?;
    let message = s
        .message
        .as_deref()
        .map(|m| crate::jsonpath::Query::parse(m.trim()))
        .transpose()
        .map_err(|e| format!("success.message: {e}"))?;
    Ok(CompiledSuccess { condition, message })
}

struct ActionCompiler<'a> {
    integration: &'a Integration,
    inputs: &'a [String],
    problems: Vec<String>,
    settings: BTreeSet<String>,
    secrets: BTreeSet<String>,
}

impl ActionCompiler<'_> {
    fn template(&mut self, what: &str, source: &str, secrets_allowed: bool) -> Option<Template> {
        match Template::parse_with_roots(source, &ACTION_ROOTS) {
            Ok(t) => {
                self.check_reads(what, &t.references(), source, secrets_allowed);
                Some(t)
            }
            Err(e) => {
                self.problems.push(format!("{what}: {e}"));
                None
            }
        }
    }

    /// Checks what a template reads against what the integration and action declare.
    fn check_reads(
        &mut self,
        what: &str,
        refs: &[expr::Reference],
        source: &str,
        secrets_allowed: bool,
    ) {
        for r in refs {
            let Some(root) = r.root.as_deref() else {
                self.problems.push(format!(
                    "{what}: a path must name inputs, settings or secrets ($..x and $[*] are refused)"
                ));
                continue;
            };
            if names_after(source, root).is_empty() {
                self.problems
                    .push(format!("{what}: name {root} as $.{root}.<name>"));
            }
            if root == "secrets" && !secrets_allowed {
                self.problems.push(format!(
                    "{what}: secrets may be used only in headers and body (a path or query ends up in access logs)"
                ));
            }
        }
        for name in names_after(source, "inputs") {
            if !self.inputs.contains(&name) {
                self.problems.push(format!(
                    "{what} uses input {name:?}, which is not in its `inputs`"
                ));
            }
        }
        for name in names_after(source, "settings") {
            if !self.integration.settings.contains_key(&name) {
                self.problems.push(format!(
                    "{what} uses setting {name:?}, which is not declared under `settings:`"
                ));
            }
            self.settings.insert(name);
        }
        for name in names_after(source, "secrets") {
            if !name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                self.problems.push(format!(
                    "{what}: secret name {name:?} must be UPPER_SNAKE_CASE"
                ));
            }
            self.secrets.insert(name);
        }
    }
}

impl CompiledAction {
    /// The secret names the action's templates read.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(String::as_str)
    }

    /// The setting names the action's templates read.
    pub fn settings(&self) -> impl Iterator<Item = &str> {
        self.settings.iter().map(String::as_str)
    }

    /// The action's success test, if it has one.
    pub fn success(&self) -> Option<&CompiledSuccess> {
        self.success.as_ref()
    }

    /// Renders the request for `inputs` (the step's `with:` values).
    pub fn render(
        &self,
        integration: &str,
        inputs: &Map<String, Value>,
        settings: &BTreeMap<String, String>,
        secrets: &Secrets,
    ) -> Result<RenderedCall, RenderError> {
        if let Some(name) = self.inputs.iter().find(|n| !inputs.contains_key(*n)) {
            return Err(RenderError::MissingInput {
                name: name.clone(),
                needs: self.inputs.join(", "),
            });
        }
        check_settings(integration, &self.settings, settings)?;
        let mut secret_values = Map::new();
        for name in &self.secrets {
            let value = secrets
                .get(name)
                .ok_or_else(|| RenderError::MissingSecret { name: name.clone() })?;
            secret_values.insert(name.clone(), Value::String(value.expose().to_string()));
        }
        let ctx = serde_json::json!({
            "inputs": inputs,
            "settings": settings,
            "secrets": secret_values,
        });
        // Evaluation errors carry positions and messages, never rendered values.
        let eval = |what: &str, t: &Template| {
            t.render(&ctx)
                .map_err(|e| RenderError::Invalid(format!("{what}: {e}")))
        };

        let mut path = String::new();
        for (n, segment) in self.segments.iter().enumerate() {
            if n > 0 {
                path.push('/');
            }
            match segment {
                Segment::Literal(s) => path.push_str(s),
                Segment::Template(t) => {
                    let value = text(&eval("path", t)?);
                    if matches!(value.as_str(), "" | "." | "..") {
                        return Err(RenderError::Invalid(format!(
                            "path segment {:?} renders to {value:?}, which is not a usable path segment",
                            t.source()
                        )));
                    }
                    encode_segment(&value, &mut path);
                }
            }
        }

        let mut query = Vec::new();
        for (k, t) in &self.query {
            match eval(&format!("query.{k}"), t)? {
                Value::Null => {}
                Value::Array(items) => {
                    query.extend(items.iter().map(|item| (k.clone(), text(item))));
                }
                other => query.push((k.clone(), text(&other))),
            }
        }
        let mut headers = Vec::new();
        for (k, t) in &self.headers {
            match eval(&format!("headers.{k}"), t)? {
                Value::Null => {}
                other => headers.push((k.clone(), text(&other))),
            }
        }
        let body = match &self.body {
            None => None,
            Some(b) => {
                render_body(b, &ctx).map_err(|e| RenderError::Invalid(format!("body: {e}")))?
            }
        };
        Ok(RenderedCall {
            path,
            query,
            headers,
            body,
        })
    }
}

impl CompiledSuccess {
    /// `Ok` when the response passes the test, else the vendor's error text (if the
    /// `message` path finds one).
    pub fn check(&self, status: u16, body: &Value) -> Result<(), Option<String>> {
        let ctx = serde_json::json!({ "response": body, "status": status });
        // A condition that cannot be evaluated did not pass.
        if self.condition.eval(&ctx).unwrap_or(false) {
            return Ok(());
        }
        let message = self.message.as_ref().and_then(|q| {
            let found: Vec<Value> = q
                .find(body)
                .ok()?
                .into_iter()
                .map(|r| r.val().clone())
                .collect();
            let v = match found.len() {
                0 => return None,
                1 => found.into_iter().next()?,
                _ => Value::Array(found),
            };
            Some(text(&v)).filter(|s| !s.is_empty())
        });
        Err(message)
    }
}

/// Fails when a setting the templates read has no value.
fn check_settings(
    integration: &str,
    needed: &BTreeSet<String>,
    settings: &BTreeMap<String, String>,
) -> Result<(), RenderError> {
    match needed.iter().find(|n| !settings.contains_key(*n)) {
        Some(name) => Err(RenderError::MissingSetting {
            name: name.clone(),
            env_var: setting_env_var(integration, name),
        }),
        None => Ok(()),
    }
}

/// Renders a body, leaving out object members whose template rendered to null.
fn render_body(t: &TemplateValue, ctx: &Value) -> Result<Option<Value>, expr::ExprError> {
    fn walk(t: &TemplateValue, ctx: &Value) -> Result<Value, expr::ExprError> {
        Ok(match t {
            TemplateValue::Object(members) => {
                let mut out = Map::new();
                for (k, member) in members {
                    let v = walk(member, ctx)?;
                    let from_template = matches!(member, TemplateValue::Template(_));
                    if !(from_template && v.is_null()) {
                        out.insert(k.clone(), v);
                    }
                }
                Value::Object(out)
            }
            TemplateValue::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| walk(i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            other => other.render(ctx)?,
        })
    }
    let v = walk(t, ctx)?;
    Ok((!v.is_null() || matches!(t, TemplateValue::Literal(_))).then_some(v))
}

/// A value as text: strings as they are, null as nothing, the rest as compact JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Appends `value` percent-encoded as one path segment.
fn encode_segment(value: &str, out: &mut String) {
    for b in value.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~!$'()*,;=:@".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Splits a path template at `/` outside `${{ ... }}` placeholders.
fn split_path(path: &str) -> Vec<&str> {
    let bytes = path.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut in_placeholder = false;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if in_placeholder {
            match (quote, bytes[i]) {
                (Some(q), b'\\') if q != 0 => i += 1,
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, c @ (b'\'' | b'"')) => quote = Some(c),
                (None, _) if rest.starts_with(b"}}") => {
                    in_placeholder = false;
                    i += 1;
                }
                _ => {}
            }
        } else if rest.starts_with(b"$${{") {
            i += 3;
        } else if rest.starts_with(b"${{") {
            in_placeholder = true;
            i += 2;
        } else if bytes[i] == b'/' {
            parts.push(&path[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    parts.push(&path[start..]);
    parts
}

/// Names after `$.<root>.` in a template's text, in order, each once.
fn names_after(source: &str, root: &str) -> Vec<String> {
    let needle = format!("$.{root}.");
    let mut out: Vec<String> = Vec::new();
    let mut rest = source;
    while let Some(i) = rest.find(&needle) {
        rest = &rest[i + needle.len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn integration(extra: Value, action: Value) -> Integration {
        let mut def = json!({
            "id": "vendor",
            "name": "Vendor",
            "base_url": "https://api.example.com/v1",
            "auth": {"type": "none"},
            "actions": {"a": action},
        });
        if let (Value::Object(d), Value::Object(e)) = (&mut def, extra) {
            d.extend(e);
        }
        serde_json::from_value(def).unwrap()
    }

    fn inputs(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn render_with(
        i: &Integration,
        with: Value,
        settings: &[(&str, &str)],
        secrets: &Secrets,
    ) -> Result<RenderedCall, RenderError> {
        let compiled = compile(i).unwrap_or_else(|p| panic!("{p:?}"));
        let settings = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        compiled.actions["a"].render(&i.id, &inputs(with), &settings, secrets)
    }

    fn problems(i: &Integration) -> Vec<String> {
        compile(i)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.message)
            .collect()
    }

    #[test]
    fn path_query_headers_and_body_render_from_inputs() {
        let i = integration(
            json!({}),
            json!({
                "kind": "enrichment", "method": "POST",
                "path": "/users/${{ $.inputs.user }}/files/${{ $.inputs.hash | lower }}/x",
                "query": {"q": "id:'${{ $.inputs.hash }}'", "ids": "${{ $.inputs.ids }}",
                          "opt": "${{ $.inputs.none }}", "n": "${{ $.inputs.n }}"},
                "headers": {"From": "${{ $.inputs.user }}", "X-Opt": "${{ $.inputs.none }}"},
                "body": {"ids": ["${{ $.inputs.hash }}"], "n": "${{ $.inputs.n }}",
                         "drop": "${{ $.inputs.none }}", "keep": null,
                         "nested": {"text": "user ${{ $.inputs.user }}"}},
                "inputs": ["user", "hash", "ids", "n", "none"],
            }),
        );
        let call = render_with(
            &i,
            json!({"user": "ann.lee+x@contoso.com", "hash": "ABC", "ids": ["a", "b"],
                   "n": 3, "none": null}),
            &[],
            &Secrets::default(),
        )
        .unwrap();
        assert_eq!(call.path, "/users/ann.lee%2Bx@contoso.com/files/abc/x");
        assert_eq!(
            call.query,
            vec![
                ("ids".to_string(), "a".to_string()),
                ("ids".into(), "b".into()),
                ("n".into(), "3".into()),
                ("q".into(), "id:'ABC'".into()),
            ]
        );
        assert_eq!(
            call.headers,
            vec![("From".to_string(), "ann.lee+x@contoso.com".to_string())]
        );
        assert_eq!(
            call.body,
            Some(json!({"ids": ["ABC"], "n": 3, "keep": null,
                        "nested": {"text": "user ann.lee+x@contoso.com"}}))
        );
    }

    #[test]
    fn path_segments_are_encoded_and_cannot_traverse() {
        let i = integration(
            json!({}),
            json!({"kind": "enrichment", "method": "GET",
                   "path": "/files/${{ $.inputs.id }}", "inputs": ["id"]}),
        );
        let path = |id: &str| {
            render_with(&i, json!({ "id": id }), &[], &Secrets::default()).map(|c| c.path)
        };
        assert_eq!(path("a/../../admin").unwrap(), "/files/a%2F..%2F..%2Fadmin");
        assert_eq!(path("x?y#z %").unwrap(), "/files/x%3Fy%23z%20%25");
        assert_eq!(path("%2e%2e").unwrap(), "/files/%252e%252e");
        assert_eq!(path("é\\").unwrap(), "/files/%C3%A9%5C");
        for bad in ["..", ".", ""] {
            assert!(matches!(path(bad), Err(RenderError::Invalid(_))), "{bad:?}");
        }
        // A number renders as its text.
        let call = render_with(&i, json!({"id": 7}), &[], &Secrets::default()).unwrap();
        assert_eq!(call.path, "/files/7");
    }

    #[test]
    fn split_path_ignores_slashes_inside_placeholders() {
        assert_eq!(
            split_path("/a/${{ $.inputs.x | join('/') }}/b$${{c/d"),
            vec!["", "a", "${{ $.inputs.x | join('/') }}", "b$${{c", "d"]
        );
        assert_eq!(split_path("/p"), vec!["", "p"]);
        assert_eq!(split_path(""), vec![""]);
    }

    #[test]
    fn missing_inputs_settings_and_secrets_are_clear_errors() {
        let i = integration(
            json!({"settings": {"tenant": {"description": "tenant id"},
                                "region": {"description": "r", "default": "eu"}}}),
            json!({"kind": "notification", "method": "POST",
                   "path": "/t/${{ $.settings.tenant }}/${{ $.settings.region }}",
                   "headers": {"X-Key": "${{ $.secrets.VENDOR_KEY }}"},
                   "body": {"routing_key": "${{ $.secrets.VENDOR_ROUTING }}", "x": "${{ $.inputs.x }}"},
                   "inputs": ["x"]}),
        );
        let secrets = Secrets::from_pairs([("VENDOR_KEY", "k-1"), ("VENDOR_ROUTING", "r-2")]);
        let err = render_with(&i, json!({}), &[("tenant", "t1")], &secrets).unwrap_err();
        assert_eq!(
            err,
            RenderError::MissingInput {
                name: "x".into(),
                needs: "x".into()
            }
        );
        // Defaults are applied by resolve_settings, not here.
        let env = |k: &str| (k == "TOCSIN_INTEGRATION_VENDOR_TENANT").then(|| "t9".to_string());
        let resolved = resolve_settings(&i, &env);
        assert_eq!(resolved["tenant"], "t9");
        assert_eq!(resolved["region"], "eu");
        let none = resolve_settings(&i, &|_| None);
        assert!(!none.contains_key("tenant"));
        let compiled = compile(&i).unwrap();
        let err = compiled.actions["a"]
            .render("vendor", &inputs(json!({"x": 1})), &none, &secrets)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "setting \"tenant\" is not set (set TOCSIN_INTEGRATION_VENDOR_TENANT)"
        );
        let err = render_with(
            &i,
            json!({"x": 1}),
            &[("tenant", "t1"), ("region", "eu")],
            &Secrets::from_pairs([("VENDOR_KEY", "k-1")]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            RenderError::MissingSecret {
                name: "VENDOR_ROUTING".into()
            }
        );
        let call = render_with(
            &i,
            json!({"x": 1}),
            &[("tenant", "t1"), ("region", "eu")],
            &secrets,
        )
        .unwrap();
        assert_eq!(call.path, "/t/t1/eu");
        assert_eq!(call.headers, vec![("X-Key".into(), "k-1".into())]);
        assert_eq!(call.body, Some(json!({"routing_key": "r-2", "x": 1})));
        assert_eq!(
            compiled.actions["a"].secrets().collect::<Vec<_>>(),
            vec!["VENDOR_KEY", "VENDOR_ROUTING"]
        );
    }

    #[test]
    fn input_values_are_data_never_templates() {
        let i = integration(
            json!({}),
            json!({"kind": "notification", "method": "POST", "path": "/m",
                   "headers": {"X-Key": "${{ $.secrets.VENDOR_KEY }}"},
                   "body": {"text": "${{ $.inputs.text }}", "t2": "say ${{ $.inputs.text }}"},
                   "inputs": ["text"]}),
        );
        let secrets = Secrets::from_pairs([("VENDOR_KEY", "k-1")]);
        let call = render_with(
            &i,
            json!({"text": "${{ $.secrets.VENDOR_KEY }}"}),
            &[],
            &secrets,
        )
        .unwrap();
        assert_eq!(
            call.body,
            Some(json!({"text": "${{ $.secrets.VENDOR_KEY }}",
                        "t2": "say ${{ $.secrets.VENDOR_KEY }}"}))
        );
    }

    #[test]
    fn definitions_that_read_too_much_are_refused() {
        let cases = [
            (
                json!({"path": "/x/${{ $.inputs.nope }}"}),
                "uses input \"nope\"",
            ),
            (
                json!({"path": "/x/${{ $.settings.nope }}"}),
                "setting \"nope\", which is not declared",
            ),
            (
                json!({"path": "/x/${{ $.secrets.KEY }}"}),
                "only in headers and body",
            ),
            (
                json!({"path": "/x", "query": {"k": "${{ $.secrets.KEY }}"}}),
                "only in headers and body",
            ),
            (
                json!({"path": "/x", "body": {"k": "${{ $.secrets.lower }}"}}),
                "UPPER_SNAKE_CASE",
            ),
            (
                json!({"path": "/x", "body": {"k": "${{ $..x }}"}}),
                "must name inputs, settings or secrets",
            ),
            (
                json!({"path": "/x", "body": {"k": "${{ $.secrets['KEY'] }}"}}),
                "name secrets as $.secrets.<name>",
            ),
            (
                json!({"path": "/x", "body": {"k": "${{ $.case.id }}"}}),
                "unknown context key 'case'",
            ),
            (
                json!({"path": "/x", "success": {"condition": "$.inputs.ok"}}),
                "success.condition",
            ),
            (
                json!({"path": "/x", "success": {"condition": "$.response.ok", "message": "$.[x"}}),
                "success.message",
            ),
        ];
        for (action, expected) in cases {
            let mut a = json!({"kind": "enrichment", "method": "GET", "inputs": []});
            a.as_object_mut()
                .unwrap()
                .extend(action.as_object().unwrap().clone());
            let found = problems(&integration(json!({}), a));
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "{expected}: {found:?}"
            );
        }
        let i = integration(
            json!({"settings": {"base_url": {"description": "x"}, "Bad": {"description": "x"}}}),
            json!({"kind": "enrichment", "method": "GET", "path": "/x"}),
        );
        let found = problems(&i);
        assert!(
            found
                .iter()
                .any(|p| p.contains("settings.base_url: reserved")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.contains("settings.Bad")),
            "{found:?}"
        );
    }

    #[test]
    fn token_urls_are_templates_over_settings() {
        let oauth = |url: &str| {
            integration(
                json!({
                    "settings": {"tenant": {"description": "t"}},
                    "auth": {"type": "oauth2_client_credentials", "token_url": url,
                             "client_id_secret": "ID", "client_secret_secret": "SECRET"},
                }),
                json!({"kind": "enrichment", "method": "GET", "path": "/x"}),
            )
        };
        let i = oauth("https://login.example/${{ $.settings.tenant }}/token");
        let t = compile(&i).unwrap().token_url.unwrap();
        let settings = BTreeMap::from([("tenant".to_string(), "contoso".to_string())]);
        assert_eq!(
            t.render("vendor", &settings).unwrap(),
            "https://login.example/contoso/token"
        );
        assert!(matches!(
            t.render("vendor", &BTreeMap::new()),
            Err(RenderError::MissingSetting { .. })
        ));
        let rel = compile(&oauth("/oauth2/token")).unwrap().token_url.unwrap();
        assert_eq!(rel.render("vendor", &settings).unwrap(), "/oauth2/token");
        for (bad, expected) in [
            ("ftp://x", "not an http(s) URL"),
            ("https://x/${{ $.settings.other }}", "not declared"),
            (
                "https://x/${{ $.inputs.x }}",
                "unknown context key 'inputs'",
            ),
        ] {
            let found = problems(&oauth(bad));
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "{bad}: {found:?}"
            );
        }
    }

    #[test]
    fn success_tests_read_the_response_and_name_the_error() {
        let s = compile_success(&super::super::definition::Success {
            condition: "$.response.ok == true".into(),
            message: Some("$.error".into()),
        })
        .unwrap();
        assert_eq!(s.check(200, &json!({"ok": true})), Ok(()));
        assert_eq!(
            s.check(200, &json!({"ok": false, "error": "channel_not_found"})),
            Err(Some("channel_not_found".into()))
        );
        assert_eq!(s.check(200, &json!({"ok": false})), Err(None));
        assert_eq!(s.check(200, &Value::Null), Err(None));
        let by_status = compile_success(&super::super::definition::Success {
            condition: "$.status == 404 || $.response.ok".into(),
            message: None,
        })
        .unwrap();
        assert_eq!(by_status.check(404, &Value::Null), Ok(()));
    }
}
