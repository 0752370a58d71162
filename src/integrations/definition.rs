//! Declarative connector definitions (`integrations/<id>.yaml`): where the product's API
//! lives, how to authenticate, limits for outbound calls, and the actions playbooks may use.
//!
//! ```yaml
//! id: abuseipdb
//! name: AbuseIPDB
//! base_url: https://api.abuseipdb.com/api/v2
//! auth: { type: api_key_header, header: Key, secret: ABUSEIPDB_API_KEY }
//! limits: { timeout: 10s, retries: 3, concurrency: 2, rate_per_minute: 60 }
//! actions:
//!   check_ip:
//!     kind: enrichment
//!     method: GET
//!     path: /check
//!     query: { ipAddress: "${{ $.inputs.ip }}", maxAgeInDays: "90" }
//!     headers: { Accept: application/json }
//!     inputs: [ip]
//!     outputs: { score: "$.data.abuseConfidenceScore" }
//! ```
//!
//! Secrets are named, never written here: a secret `ABUSEIPDB_API_KEY` is read from the
//! environment variable `TOCSIN_SECRET_ABUSEIPDB_API_KEY` or the secrets file.
//!
//! Templates in actions (`path`, `query`, `headers`, `body`) read `$.inputs.<name>` (the
//! step's `with:` values), `$.settings.<name>` (non-secret per-deployment values declared
//! under `settings:`) and, in `headers` and `body` only, `$.secrets.<NAME>`; see
//! [`super::render`]. A `success:` condition reads `$.response` (the response body) and
//! `$.status`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One connector.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    /// Identifier used in playbooks: `uses: <id>.<action>`.
    pub id: String,
    /// Product name for people.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The vendor's documentation this connector follows.
    #[serde(default)]
    pub docs: Option<String>,
    /// API root; a deployment overrides it with `TOCSIN_INTEGRATION_<ID>_BASE_URL`.
    pub base_url: String,
    pub auth: Auth,
    #[serde(default)]
    pub limits: Limits,
    /// Non-secret per-deployment values (a tenant, a project key), read by templates as
    /// `$.settings.<name>`; each from `TOCSIN_INTEGRATION_<ID>_<NAME>` or its default.
    #[serde(default)]
    pub settings: BTreeMap<String, Setting>,
    /// The success test of every action that declares none of its own.
    #[serde(default)]
    pub success: Option<Success>,
    pub actions: BTreeMap<String, Action>,
}

/// A non-secret value a deployment sets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    /// What it is and where to find it, for whoever deploys the connector.
    pub description: String,
    /// Used when the environment variable is not set; without one the setting is required
    /// by every call whose templates read it.
    #[serde(default)]
    pub default: Option<String>,
}

/// A test of a response that passed on its HTTP status, for APIs that report failure in
/// the body (Slack answers 200 with `{"ok": false, "error": "channel_not_found"}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Success {
    /// A condition over `$.response` (the body) and `$.status`; false means failure.
    pub condition: String,
    /// JSONPath into the body naming the vendor's error, quoted in the failure.
    #[serde(default)]
    pub message: Option<String>,
}

/// How requests authenticate. Every `*secret` field names a secret, not its value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// No authentication (e.g. an incoming-webhook URL that is itself the secret).
    None,
    /// A header carrying an API key, e.g. `x-apikey: <key>`, or with `prefix`
    /// `Authorization: SSWS <key>` (the prefix is sent as written, space included).
    ApiKeyHeader {
        header: String,
        secret: String,
        #[serde(default)]
        prefix: Option<String>,
    },
    /// `Authorization: Bearer <token>`.
    Bearer { secret: String },
    /// HTTP basic authentication.
    Basic {
        username_secret: String,
        password_secret: String,
    },
    /// OAuth 2.0 client credentials: a token from `token_url`, cached until it expires.
    /// `token_url` is a template over `$.settings` (a tenant in the URL), and a path
    /// starting with `/` is relative to the base URL, so overriding the base URL moves it.
    Oauth2ClientCredentials {
        token_url: String,
        client_id_secret: String,
        client_secret_secret: String,
        #[serde(default)]
        scope: Option<String>,
    },
}

impl Auth {
    /// The secret names this auth method needs.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            Auth::None => vec![],
            Auth::ApiKeyHeader { secret, .. } | Auth::Bearer { secret } => vec![secret],
            Auth::Basic {
                username_secret,
                password_secret,
            } => vec![username_secret, password_secret],
            Auth::Oauth2ClientCredentials {
                client_id_secret,
                client_secret_secret,
                ..
            } => vec![client_id_secret, client_secret_secret],
        }
    }
}

/// Bounds on outbound calls to one product.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Per request, e.g. `10s`.
    pub timeout: String,
    /// Retries after the first attempt on 429, 5xx and connection errors (with backoff,
    /// honouring `Retry-After`).
    pub retries: u32,
    /// Requests in flight at once.
    pub concurrency: u32,
    /// Requests started per minute; 0 means unlimited.
    pub rate_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: "10s".into(),
            retries: 3,
            concurrency: 4,
            rate_per_minute: 0,
        }
    }
}

/// What an action does, which decides whether it needs an approval gate.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Reads information (reputation, lookups); safe to retry.
    Enrichment,
    /// Tells people or systems something (chat, paging, tickets).
    Notification,
    /// Changes the world (block, isolate, disable, delete); gated by approval.
    Containment,
}

/// HTTP methods actions may use.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// One API call a playbook step can make.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub kind: ActionKind,
    #[serde(default)]
    pub description: Option<String>,
    pub method: Method,
    /// Appended to `base_url`; a template (`/files/${{ $.inputs.hash }}`).
    pub path: String,
    /// Query parameters; values are templates.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Extra headers; values are templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body; strings inside are templates.
    #[serde(default)]
    pub body: Option<Value>,
    /// Send `body` as `application/x-www-form-urlencoded` instead of JSON.
    #[serde(default)]
    pub form: bool,
    /// Inputs a step must give in `with:`.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Output name → JSONPath into the response body.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// Safe to send twice (reads, or writes the vendor de-duplicates). Non-idempotent
    /// actions caught mid-flight by a crash are not repeated without an idempotency key.
    #[serde(default)]
    pub idempotent: Option<bool>,
    /// Responses with these statuses count as success besides 2xx (e.g. 404 "not found"
    /// for a reputation lookup).
    #[serde(default)]
    pub accept_status: Vec<u16>,
    /// Overrides the integration's `success` test for this action.
    #[serde(default)]
    pub success: Option<Success>,
}

impl Integration {
    /// The success test that applies to `action`: its own, else the integration's.
    pub fn success_of<'a>(&'a self, action: &'a Action) -> Option<&'a Success> {
        action.success.as_ref().or(self.success.as_ref())
    }
}

impl Action {
    /// Whether repeating the call is harmless: declared, else true for GET.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent.unwrap_or(self.method == Method::Get)
    }
}
