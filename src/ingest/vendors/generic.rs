//! Any JSON event, mapped to an alert by JSONPath expressions (RFC 9535 syntax, evaluated
//! with the `jsonpath-rust` crate) given in the source's configuration.
//!
//! A mapping is the `mapping` object of a generic source's configuration:
//!
//! ```json
//! {
//!   "mapping": {
//!     "title": "$.alert.name",
//!     "description": "$.alert.details",
//!     "severity": "$.alert.priority",
//!     "severity_map": { "P1": "critical", "P2": "high", "P3": "medium" },
//!     "time": "$.alert.created_at",
//!     "rule_id": "$.alert.rule.id",
//!     "rule_name": "$.alert.rule.name",
//!     "external_id": "$.alert.id",
//!     "fingerprint": "$.alert.dedup_key",
//!     "tags": "$.alert.labels[*]",
//!     "class": "detection_finding",
//!     "vendor": "Acme",
//!     "product": "Sentry IDS",
//!     "observables": [
//!       { "path": "$.alert.src_ip", "type": "ip", "role": "src" },
//!       { "path": "$.alert.iocs.hashes[*]", "type": "sha256" }
//!     ]
//!   }
//! }
//! ```
//!
//! Only `title` is required. Every expression is checked when the configuration is
//! validated, and parsed once per mapping rather than once per event.
//!
//! - `title`, `description`, `time`, `rule_id`, `rule_name`, `external_id`,
//!   `fingerprint`, `severity`: the first non-null value the expression yields; a string,
//!   number or boolean. An event where `title` yields nothing is refused, naming the
//!   expression.
//! - `severity`: looked up in `severity_map` (vendor value → Tocsin severity name:
//!   `unknown`, `informational`, `low`, `medium`, `high`, `critical`, `fatal`; exact
//!   match first, then ignoring case), otherwise read as a severity word
//!   ([`Severity::from_word`]: `info`, `warning`, `crit`...) or as an OCSF `severity_id`
//!   number (0–6); anything else, or no value, is `unknown`.
//! - `time`: RFC 3339 and the other forms [`fields::parse_time`] reads, or Unix seconds
//!   or milliseconds.
//! - `tags`: every value yielded; an array yields its elements and an object yields
//!   `key=value` for each member. Sorted, without duplicates.
//! - `class`: an alert class name (`detection_finding`, `incident_finding`,
//!   `email_activity`, `security_finding`); default `detection_finding`.
//! - `vendor`, `product`: literal names; default `Generic` and `Webhook`.
//! - `observables`: each `path` may yield several values (an array yields its
//!   elements); each becomes an observable of `type` (an observable kind: `ip`, `domain`,
//!   `url`, `md5`, `sha1`, `sha256`, `email`, `user`, `host`, `file`, `process`,
//!   `message_id`, `other`) with the optional `role` (`src`, `dst`, `sender`,
//!   `recipient`, `target`, `actor`, `related`). A value invalid for its type is refused,
//!   naming where it was found (e.g. `alert.iocs.hashes.1`).
//!
//! Unknown keys in a mapping are refused, so a misspelt key is not silently ignored.

use super::fields;
use super::NormalizeError;
use crate::alert::{AlertClass, NewAlert, ObservableKind, ObservableRole, Severity};
use crate::jsonpath::Query;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// The JSONPath mapping of a generic source (see the module documentation).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericMapping {
    title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    severity: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    severity_map: BTreeMap<String, Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rule_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tags: Option<String>,
    #[serde(default = "default_class")]
    class: AlertClass,
    #[serde(default = "default_vendor")]
    vendor: String,
    #[serde(default = "default_product")]
    product: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    observables: Vec<ObservableMapping>,
    /// The parsed expressions, made on first use; the fields above are private so that
    /// they cannot change after it.
    #[serde(skip)]
    compiled: OnceLock<Result<Arc<Compiled>, NormalizeError>>,
}

/// One `observables` entry of a mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservableMapping {
    /// JSONPath to the value or values.
    pub path: String,
    /// The observable kind of every value.
    #[serde(rename = "type")]
    pub kind: ObservableKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<ObservableRole>,
}

fn default_class() -> AlertClass {
    AlertClass::DetectionFinding
}

fn default_vendor() -> String {
    "Generic".into()
}

fn default_product() -> String {
    "Webhook".into()
}

impl PartialEq for GenericMapping {
    fn eq(&self, other: &Self) -> bool {
        // The compiled form follows from the rest.
        self.title == other.title
            && self.description == other.description
            && self.severity == other.severity
            && self.severity_map == other.severity_map
            && self.time == other.time
            && self.rule_id == other.rule_id
            && self.rule_name == other.rule_name
            && self.external_id == other.external_id
            && self.fingerprint == other.fingerprint
            && self.tags == other.tags
            && self.class == other.class
            && self.vendor == other.vendor
            && self.product == other.product
            && self.observables == other.observables
    }
}

impl fmt::Debug for GenericMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenericMapping")
            .field("title", &self.title)
            .field("description", &self.description)
            .field("severity", &self.severity)
            .field("severity_map", &self.severity_map)
            .field("time", &self.time)
            .field("rule_id", &self.rule_id)
            .field("rule_name", &self.rule_name)
            .field("external_id", &self.external_id)
            .field("fingerprint", &self.fingerprint)
            .field("tags", &self.tags)
            .field("class", &self.class)
            .field("vendor", &self.vendor)
            .field("product", &self.product)
            .field("observables", &self.observables)
            .finish()
    }
}

/// A mapping with every expression parsed.
#[derive(Debug)]
struct Compiled {
    title: Query,
    description: Option<Query>,
    severity: Option<Query>,
    time: Option<Query>,
    rule_id: Option<Query>,
    rule_name: Option<Query>,
    external_id: Option<Query>,
    fingerprint: Option<Query>,
    tags: Option<Query>,
    observables: Vec<(Query, ObservableKind, Option<ObservableRole>)>,
}

/// Parses the expression configured under `key` (a dotted config path).
fn compile(key: &str, text: &str) -> Result<Query, NormalizeError> {
    let error = |reason: String| NormalizeError {
        field: format!("config.mapping.{key}"),
        reason,
    };
    if text.trim().is_empty() {
        return Err(error(
            "must be a JSONPath expression such as $.alert.name".into(),
        ));
    }
    Query::parse(text).map_err(|e| error(format!("{text:?} is not a valid JSONPath: {e}")))
}

fn compile_opt(key: &str, text: &Option<String>) -> Result<Option<Query>, NormalizeError> {
    text.as_deref().map(|t| compile(key, t)).transpose()
}

impl GenericMapping {
    /// Checks every expression compiles and the literal names are usable.
    pub fn validate(&self) -> Result<(), NormalizeError> {
        self.compiled().map(|_| ())
    }

    /// The parsed form, made once.
    fn compiled(&self) -> Result<Arc<Compiled>, NormalizeError> {
        self.compiled
            .get_or_init(|| self.compile().map(Arc::new))
            .clone()
    }

    fn compile(&self) -> Result<Compiled, NormalizeError> {
        for (key, value) in [("vendor", &self.vendor), ("product", &self.product)] {
            if value.trim().is_empty() {
                return Err(NormalizeError {
                    field: format!("config.mapping.{key}"),
                    reason: "must not be empty".into(),
                });
            }
        }
        Ok(Compiled {
            title: compile("title", &self.title)?,
            description: compile_opt("description", &self.description)?,
            severity: compile_opt("severity", &self.severity)?,
            time: compile_opt("time", &self.time)?,
            rule_id: compile_opt("rule_id", &self.rule_id)?,
            rule_name: compile_opt("rule_name", &self.rule_name)?,
            external_id: compile_opt("external_id", &self.external_id)?,
            fingerprint: compile_opt("fingerprint", &self.fingerprint)?,
            tags: compile_opt("tags", &self.tags)?,
            observables: self
                .observables
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    Ok((
                        compile(&format!("observables.{i}.path"), &o.path)?,
                        o.kind,
                        o.role,
                    ))
                })
                .collect::<Result<_, NormalizeError>>()?,
        })
    }

    /// Reads a severity value: `severity_map`, then a word, then an OCSF id.
    fn severity_of(&self, value: &str) -> Severity {
        let value = value.trim();
        if let Some(s) = self.severity_map.get(value) {
            return *s;
        }
        if let Some((_, s)) = self
            .severity_map
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(value))
        {
            return *s;
        }
        if let Some(s) = Severity::from_word(value) {
            return s;
        }
        match value.parse::<i64>() {
            Ok(id @ 0..=6) => Severity::from_id(id),
            _ => Severity::Unknown,
        }
    }
}

/// A value the query found, with the dotted name of where it was.
struct Found<'a> {
    value: &'a Value,
    field: String,
}

/// Every non-null value `query` yields in `event`.
fn find<'a>(query: &Query, event: &'a Value) -> Result<Vec<Found<'a>>, NormalizeError> {
    let refs = query.find(event).map_err(|e| NormalizeError {
        field: query.text().to_string(),
        reason: format!("could not be evaluated: {e}"),
    })?;
    Ok(refs
        .into_iter()
        .filter(|r| !r.val.is_null())
        .map(|r| Found {
            value: r.val,
            field: dotted(&r.path).unwrap_or(r.path),
        })
        .collect())
}

/// The text of a scalar; `None` for empty strings, an error for arrays and objects.
fn scalar(found: &Found<'_>) -> Result<Option<String>, NormalizeError> {
    match found.value {
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Null => Ok(None),
        _ => Err(NormalizeError {
            field: found.field.clone(),
            reason: "must be a string".into(),
        }),
    }
}

/// The first usable value of an optional single-valued field.
fn first(query: Option<&Query>, event: &Value) -> Result<Option<String>, NormalizeError> {
    let Some(query) = query else {
        return Ok(None);
    };
    for found in find(query, event)? {
        if let Some(text) = scalar(&found)? {
            return Ok(Some(text));
        }
    }
    Ok(None)
}

/// The values an observable or tag path yields, an array's elements taken one by one.
fn flatten<'a>(found: Vec<Found<'a>>) -> Vec<Found<'a>> {
    let mut out = Vec::new();
    for f in found {
        match f.value {
            Value::Array(items) => out.extend(
                items
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(i, v)| Found {
                        value: v,
                        field: format!("{}.{i}", f.field),
                    }),
            ),
            _ => out.push(f),
        }
    }
    out
}

/// Normalizes one event with `mapping`.
pub fn normalize(mapping: &GenericMapping, event: &Value) -> Result<Vec<NewAlert>, NormalizeError> {
    let c = mapping.compiled()?;
    let title = first(Some(&c.title), event)?.ok_or_else(|| NormalizeError {
        field: c.title.text().to_string(),
        reason: "is required (the title expression found no value)".into(),
    })?;
    let severity =
        first(c.severity.as_ref(), event)?.map_or(Severity::Unknown, |v| mapping.severity_of(&v));

    let mut alert = NewAlert::new(
        mapping.class,
        severity,
        title,
        &mapping.vendor,
        &mapping.product,
    );
    alert.description = first(c.description.as_ref(), event)?;
    alert.rule_id = first(c.rule_id.as_ref(), event)?;
    alert.rule_name = first(c.rule_name.as_ref(), event)?;
    alert.external_id = first(c.external_id.as_ref(), event)?;
    alert.fingerprint = first(c.fingerprint.as_ref(), event)?;
    if let Some(query) = &c.time {
        for found in find(query, event)? {
            if let Some(text) = scalar(&found)? {
                let time = fields::parse_time(&text).ok_or_else(|| NormalizeError {
                    field: found.field.clone(),
                    reason: format!("{text:?} is not a time"),
                })?;
                alert.event_time = Some(time);
                break;
            }
        }
    }

    for (query, kind, role) in &c.observables {
        for found in flatten(find(query, event)?) {
            if let Some(text) = scalar(&found)? {
                let observable =
                    crate::alert::Observable::new(*kind, &text, *role).map_err(|e| {
                        NormalizeError {
                            field: found.field.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                alert.observe(observable);
            }
        }
    }

    if let Some(query) = &c.tags {
        let mut tags = Vec::new();
        for found in flatten(find(query, event)?) {
            if let Value::Object(members) = found.value {
                for (key, value) in members {
                    let member = Found {
                        value,
                        field: format!("{}.{key}", found.field),
                    };
                    if let Some(text) = scalar(&member)? {
                        tags.push(format!("{key}={}", text.trim()));
                    }
                }
            } else if let Some(text) = scalar(&found)? {
                tags.push(text.trim().to_string());
            }
        }
        tags.sort();
        tags.dedup();
        alert.tags = tags;
    }
    Ok(vec![alert])
}

/// The dotted field name of a normalized path such as `$['alert']['iocs'][1]`
/// (`alert.iocs.1`), or `None` when the path is not in that form.
fn dotted(path: &str) -> Option<String> {
    let mut rest = path.strip_prefix('$')?;
    let mut parts: Vec<String> = Vec::new();
    while !rest.is_empty() {
        rest = rest.strip_prefix('[')?;
        if let Some(quoted) = rest.strip_prefix('\'') {
            let mut name = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '\'') => break i,
                    (_, '\\') => name.push(chars.next()?.1),
                    (_, c) => name.push(c),
                }
            };
            rest = quoted.get(end + 1..)?.strip_prefix(']')?;
            parts.push(name);
        } else {
            let (index, after) = rest.split_once(']')?;
            index.parse::<usize>().ok()?;
            parts.push(index.to_string());
            rest = after;
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(v: Value) -> GenericMapping {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn dotted_paths() {
        assert_eq!(dotted("$['a']['b'][0]").as_deref(), Some("a.b.0"));
        assert_eq!(dotted("$['it\\'s']").as_deref(), Some("it's"));
        assert_eq!(dotted("$"), None);
        assert_eq!(dotted("$['a'"), None);
        assert_eq!(dotted("nonsense"), None);
    }

    #[test]
    fn bad_expressions_name_the_config_key() {
        let m = mapping(json!({ "title": "$.a", "observables": [
            { "path": "$.b", "type": "ip" },
            { "path": "$[?(", "type": "ip" }
        ]}));
        assert_eq!(
            m.validate().unwrap_err().field,
            "config.mapping.observables.1.path"
        );
        let m = mapping(json!({ "title": "a.b" }));
        assert_eq!(m.validate().unwrap_err().field, "config.mapping.title");
        let m = mapping(json!({ "title": "$.a", "severity": "" }));
        assert_eq!(m.validate().unwrap_err().field, "config.mapping.severity");
        let m = mapping(json!({ "title": "$.a", "vendor": " " }));
        assert_eq!(m.validate().unwrap_err().field, "config.mapping.vendor");
        // The same error again from normalize, from the cached compilation.
        assert_eq!(
            normalize(&m, &json!({})).unwrap_err().field,
            "config.mapping.vendor"
        );
    }

    #[test]
    fn unknown_keys_and_names_are_refused() {
        for bad in [
            json!({ "title": "$.a", "titel": "$.b" }),
            json!({ "title": "$.a", "class": "nope" }),
            json!({ "title": "$.a", "severity_map": { "P1": "urgent" } }),
            json!({ "title": "$.a", "observables": [{ "path": "$.b", "type": "ipv4" }] }),
            json!({ "title": "$.a", "observables": [{ "path": "$.b", "type": "ip", "x": 1 }] }),
        ] {
            assert!(
                serde_json::from_value::<GenericMapping>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn severity_lookup_order() {
        let m = mapping(
            json!({ "title": "$.a", "severity_map": { "P1": "critical", "warning": "low" } }),
        );
        assert_eq!(m.severity_of("P1"), Severity::Critical);
        assert_eq!(m.severity_of("p1"), Severity::Critical);
        assert_eq!(m.severity_of("warning"), Severity::Low);
        assert_eq!(m.severity_of("high"), Severity::High);
        assert_eq!(m.severity_of("4"), Severity::High);
        assert_eq!(m.severity_of("99"), Severity::Unknown);
        assert_eq!(m.severity_of("P7"), Severity::Unknown);
    }

    #[test]
    fn values_and_errors() {
        let m = mapping(json!({
            "title": "$.name",
            "time": "$.ts",
            "tags": "$.labels",
            "observables": [{ "path": "$.iocs[*]", "type": "ip", "role": "src" }]
        }));
        let event = json!({ "name": "n", "ts": 1795600800, "labels": { "b": 2, "a": "x" },
            "iocs": ["192.0.2.1", null, "192.0.2.1"] });
        let alert = normalize(&m, &event).unwrap().remove(0);
        assert_eq!(alert.tags, vec!["a=x", "b=2"]);
        assert_eq!(alert.observables.len(), 1);
        assert!(alert.event_time.is_some());
        assert_eq!(alert.class, AlertClass::DetectionFinding);
        assert_eq!(
            (alert.vendor.as_str(), alert.product.as_str()),
            ("Generic", "Webhook")
        );

        let err = normalize(&m, &json!({ "iocs": [] })).unwrap_err();
        assert_eq!(err.field, "$.name");
        let err =
            normalize(&m, &json!({ "name": "n", "iocs": ["192.0.2.1", "nope"] })).unwrap_err();
        assert_eq!(err.field, "iocs.1");
        let err = normalize(&m, &json!({ "name": "n", "ts": "soon" })).unwrap_err();
        assert_eq!(err.field, "ts");
        let err = normalize(&m, &json!({ "name": { "x": 1 } })).unwrap_err();
        assert_eq!(err.field, "name");
    }

    #[test]
    fn mappings_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<GenericMapping>();
    }

    #[test]
    fn round_trips_through_serde() {
        let m =
            mapping(json!({ "title": "$.a", "observables": [{ "path": "$.b", "type": "ip" }] }));
        m.validate().unwrap();
        let again: GenericMapping =
            serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(again, m);
    }
}
