//! Secrets the connectors authenticate with, looked up by name.
//!
//! A secret `NAME` is read from the environment variable `TOCSIN_SECRET_NAME`, else from
//! the secrets file. The secrets file is TOML with one string per secret at the top level:
//!
//! ```toml
//! # /etc/tocsin/secrets.toml (readable by the service only)
//! ABUSEIPDB_API_KEY = "0123abcd"
//! VT_API_KEY = "..."
//! ```
//!
//! Both sources are read once, when the store is made, so the set of values that
//! [`Secrets::redact`] knows is complete and a lookup never races a change of the
//! environment. Values never leave through `Debug`, `Display` or errors: [`SecretValue`]
//! prints `****`, and errors name secrets, never their contents.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Prefix of the environment variables that carry secrets.
pub const ENV_PREFIX: &str = "TOCSIN_SECRET_";

/// What replaces a secret value in redacted text.
pub const MASK: &str = "****";

/// How many values learned at run time (OAuth tokens, encoded credentials) are kept for
/// redaction; tokens rotate, so the oldest are forgotten rather than kept forever.
const LEARNED_MAX: usize = 256;

/// A secret's value; `Debug` and `Display` print `****`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> SecretValue {
        SecretValue(value.into())
    }

    /// The value itself, for putting on the wire; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Why the secrets file could not be loaded (never includes a value).
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The file could not be read.
    #[error("cannot read secrets file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not TOML; the parser's message is left out because it quotes the text.
    #[error("secrets file {path} is not valid TOML (line {line})")]
    Parse { path: PathBuf, line: usize },
    /// A key whose value is not a string.
    #[error("secrets file {path}: {name} must be a string")]
    NotString { path: PathBuf, name: String },
}

/// Where secrets come from; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Secrets {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    values: BTreeMap<String, SecretValue>,
    /// Values derived at run time that must be redacted too, newest last.
    learned: RwLock<VecDeque<String>>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: which secrets are configured is not itself secret.
        f.debug_struct("Secrets")
            .field("names", &self.inner.values.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Secrets {
    /// Loads `TOCSIN_SECRET_*` from the process environment and, if given, the secrets file.
    pub fn load(file: Option<&Path>) -> Result<Secrets, SecretsError> {
        Secrets::from_sources(
            std::env::vars_os().filter_map(|(k, v)| {
                // A variable that is not UTF-8 cannot be one of ours (names are ASCII).
                Some((k.into_string().ok()?, v.into_string().ok()?))
            }),
            file,
        )
    }

    /// Like [`Secrets::load`] with the environment given as pairs (for tests and tools).
    pub fn from_sources(
        env: impl IntoIterator<Item = (String, String)>,
        file: Option<&Path>,
    ) -> Result<Secrets, SecretsError> {
        let mut values = BTreeMap::new();
        if let Some(path) = file {
            values = read_file(path)?;
        }
        // The environment wins over the file, so a deployment can override one secret.
        for (key, value) in env {
            if let Some(name) = key.strip_prefix(ENV_PREFIX) {
                if !name.is_empty() {
                    values.insert(name.to_string(), SecretValue(value));
                }
            }
        }
        Ok(Secrets {
            inner: Arc::new(Inner {
                values,
                learned: RwLock::new(VecDeque::new()),
            }),
        })
    }

    /// A store holding exactly these name → value pairs.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Secrets {
        Secrets {
            inner: Arc::new(Inner {
                values: pairs
                    .into_iter()
                    .map(|(n, v)| (n.into(), SecretValue(v.into())))
                    .collect(),
                learned: RwLock::new(VecDeque::new()),
            }),
        }
    }

    /// The value of secret `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&SecretValue> {
        self.inner.values.get(name)
    }

    /// Which of `names` are configured (for the console; never returns values).
    pub fn names_configured<'a>(&self, names: &[&'a str]) -> Vec<&'a str> {
        names
            .iter()
            .copied()
            .filter(|n| self.inner.values.contains_key(*n))
            .collect()
    }

    /// Adds a value derived at run time (an access token, encoded credentials) to those
    /// [`Secrets::redact`] replaces.
    pub fn remember(&self, value: &str) {
        if value.is_empty() {
            return;
        }
        // A poisoned lock only means another thread panicked mid-push; the queue is
        // still a valid queue, so carry on with it.
        let mut learned = self
            .inner
            .learned
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if learned.iter().any(|v| v == value) {
            return;
        }
        if learned.len() >= LEARNED_MAX {
            learned.pop_front();
        }
        learned.push_back(value.to_string());
    }

    /// `text` with every known secret value (and its URL-encoded form) replaced by `****`.
    pub fn redact(&self, text: &str) -> String {
        let learned = self.inner.learned.read().unwrap_or_else(|e| e.into_inner());
        let mut needles: Vec<String> = Vec::new();
        for value in self
            .inner
            .values
            .values()
            .map(|v| v.0.as_str())
            .chain(learned.iter().map(String::as_str))
        {
            if value.is_empty() {
                continue;
            }
            let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
            if encoded != value {
                needles.push(encoded);
            }
            needles.push(value.to_string());
        }
        drop(learned);
        // Longest first, so a value that contains another is replaced whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let mut out = text.to_string();
        for needle in &needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), MASK);
            }
        }
        out
    }

    /// Redacts every string (and object key) inside a JSON value.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => {
                let r = self.redact(s);
                if r != *s {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                let old = std::mem::take(map);
                for (k, mut v) in old {
                    self.redact_json(&mut v);
                    map.insert(self.redact(&k), v);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// Reads a TOML secrets file of top-level `NAME = "value"` pairs.
fn read_file(path: &Path) -> Result<BTreeMap<String, SecretValue>, SecretsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        // Only the line number: the parser's message may quote a value.
        let line = e
            .span()
            .map(|s| {
                let upto = &text.as_bytes()[..s.start.min(text.len())];
                upto.iter().filter(|b| **b == b'\n').count() + 1
            })
            .unwrap_or(0);
        SecretsError::Parse {
            path: path.to_path_buf(),
            line,
        }
    })?;
    let mut values = BTreeMap::new();
    for (name, value) in table {
        match value {
            toml::Value::String(s) => {
                values.insert(name, SecretValue(s));
            }
            _ => {
                return Err(SecretsError::NotString {
                    path: path.to_path_buf(),
                    name,
                })
            }
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_wins_over_file() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "# comment\nA_KEY = \"from-file\"\nB_KEY = \"only-file\"").unwrap();
        let s = Secrets::from_sources(
            env(&[
                ("TOCSIN_SECRET_A_KEY", "from-env"),
                ("PATH", "/bin"),
                ("TOCSIN_SECRET_", "ignored"),
            ]),
            Some(f.path()),
        )
        .unwrap();
        assert_eq!(s.get("A_KEY").unwrap().expose(), "from-env");
        assert_eq!(s.get("B_KEY").unwrap().expose(), "only-file");
        assert!(s.get("PATH").is_none());
        assert_eq!(
            s.names_configured(&["A_KEY", "C_KEY", "B_KEY"]),
            vec!["A_KEY", "B_KEY"]
        );
    }

    #[test]
    fn debug_and_display_never_show_values() {
        let s = Secrets::from_pairs([("API_KEY", "hunter2-value")]);
        let shown = format!("{s:?} {:?} {}", s.get("API_KEY"), s.get("API_KEY").unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("API_KEY"));
    }

    #[test]
    fn file_errors_do_not_quote_values() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "GOOD = \"x\"\nBAD = \"topsecret").unwrap();
        let err = Secrets::from_sources(vec![], Some(f.path())).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("topsecret"), "{text}");
        assert!(text.contains("line 2"), "{text}");

        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "NUM = 5").unwrap();
        let err = Secrets::from_sources(vec![], Some(f.path())).unwrap_err();
        assert!(format!("{err}").contains("NUM must be a string"));
    }

    #[test]
    fn redacts_values_encodings_and_learned_tokens() {
        let s = Secrets::from_pairs([("K", "abc+/def"), ("SHORT", "abc")]);
        s.remember("tok-123");
        let out = s.redact("k=abc+/def e=abc%2B%2Fdef s=abc t=Bearer tok-123");
        assert_eq!(out, "k=**** e=**** s=**** t=Bearer ****");
        let mut v = serde_json::json!({"abc+/def": ["tok-123", 1, {"x": "abc"}]});
        s.redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"****": ["****", 1, {"x": "****"}]}));
    }
}
