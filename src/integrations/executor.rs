//! Makes the outbound HTTP calls that playbook steps ask for.
//!
//! [`Executor::invoke`] renders an action's templates (path, query, headers, body) from a
//! step's inputs into a [`RenderedCall`] (see [`super::render`]) and sends it;
//! [`Executor::call`] sends an already rendered call: it adds authentication, sends it
//! within the connector's limits (timeout per attempt, retries, concurrency, rate),
//! applies the action's `success` test, and maps the response to the action's outputs.
//!
//! Retry policy: only 429, 502, 503, 504, timeouts and transport errors are retried, at
//! most `limits.retries` times, and only when repeating the call is harmless: the action
//! is idempotent ([`Action::is_idempotent`]) or the call carries an `Idempotency-Key`
//! header. A refused connection is retried for every action, since the request never
//! left. The wait is the response's `Retry-After` (seconds or an HTTP date) when present,
//! else exponential backoff with jitter; a `Retry-After` longer than
//! [`ExecutorConfig::max_retry_after`] is not waited out but returned to the caller.
//!
//! Secrets never appear in results or errors: response bodies, error excerpts and
//! transport messages all pass through [`Secrets::redact`], and OAuth tokens and encoded
//! credentials are added to what it redacts.

use super::definition::{Action, Auth, Integration, Method};
use super::render::{self, Compiled, RenderError};
use super::secrets::{SecretValue, Secrets};
use crate::jsonpath::Query;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Semaphore};
use url::Url;

/// An action's request after the engine rendered its templates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderedCall {
    /// Appended to the integration's base URL.
    pub path: String,
    /// Query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Extra headers (authentication is added by the executor).
    pub headers: Vec<(String, String)>,
    /// JSON body, or form fields when the action has `form: true`.
    pub body: Option<Value>,
}

/// A successful call (2xx or one of the action's `accept_status`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallResult {
    /// HTTP status of the final response.
    pub status: u16,
    /// The action's outputs, each its JSONPath evaluated against `body`: a singular path
    /// (names and indexes only) gives the value or null, any other path an array of every
    /// match (possibly empty), as in templates.
    pub output: Map<String, Value>,
    /// The response JSON (redacted), `{"text": ...}` for other content, null when empty.
    pub body: Value,
    /// Requests sent to the action's endpoint, retries and the 401 refresh included.
    pub attempts: u32,
    /// Time from the call to its result, waits included.
    #[serde(with = "duration_ms")]
    pub duration: Duration,
}

mod duration_ms {
    //! `Duration` as whole milliseconds in JSON.
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// Why a call failed. Messages never contain secret values.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No integration with this id is loaded.
    #[error("unknown integration {integration:?}")]
    UnknownIntegration { integration: String },
    /// The integration has no such action.
    #[error("integration {integration:?} has no action {action:?}")]
    UnknownAction { integration: String, action: String },
    /// The step did not give an input the action declares.
    #[error("{integration}.{action}: input {name:?} is missing (the action needs {needs})")]
    MissingInput {
        integration: String,
        action: String,
        name: String,
        needs: String,
    },
    /// A setting the call needs has neither a value nor a default.
    #[error("integration {integration:?}: setting {name:?} is not set (set {env_var})")]
    MissingSetting {
        integration: String,
        name: String,
        env_var: String,
    },
    /// A secret the auth method needs is not configured.
    #[error(
        "secret {name} is not configured (set TOCSIN_SECRET_{name} or add it to the secrets file)"
    )]
    MissingSecret { name: String },
    /// The base URL (from the definition or an override) is unusable.
    #[error("integration {integration:?}: bad base URL: {message}")]
    BadBaseUrl {
        integration: String,
        message: String,
    },
    /// The integration's definition cannot be used as written (limits, outputs, auth).
    #[error("integration {integration:?}: {message}")]
    BadDefinition {
        integration: String,
        message: String,
    },
    /// The rendered call cannot be sent (bad path, header or form body).
    #[error("invalid request: {message}")]
    BadRequest { message: String },
    /// No complete response within the per-attempt timeout.
    #[error("no response within {timeout:?} ({attempts} attempt(s))")]
    Timeout { timeout: Duration, attempts: u32 },
    /// The connection could not be made.
    #[error("cannot connect: {message} ({attempts} attempt(s))")]
    Connect { message: String, attempts: u32 },
    /// The request failed on the way (connection reset, malformed response).
    #[error("request failed: {message} ({attempts} attempt(s))")]
    Transport { message: String, attempts: u32 },
    /// The vendor answered with an error status.
    #[error("HTTP {status} ({attempts} attempt(s)): {body_excerpt}")]
    Http {
        status: u16,
        body_excerpt: String,
        attempts: u32,
    },
    /// The vendor answered 429 and retrying was not allowed, exhausted or too far off.
    #[error("rate limited by the vendor (HTTP 429, {attempts} attempt(s)){}", .retry_after.map(|d| format!("; retry after {d:?}")).unwrap_or_default())]
    RateLimited {
        retry_after: Option<Duration>,
        attempts: u32,
    },
    /// Getting an OAuth2 access token failed.
    #[error("OAuth token request failed: {message}")]
    OAuth {
        status: Option<u16>,
        message: String,
    },
    /// The response passed on its status but failed the action's `success` test: the
    /// vendor reported an error in the body (Slack's `{"ok": false, "error": ...}`).
    #[error("the vendor reported a failure (HTTP {status}, {attempts} attempt(s)): {message}")]
    Rejected {
        status: u16,
        /// The vendor's error text (redacted), or an excerpt of the body.
        message: String,
        attempts: u32,
    },
    /// An output's JSONPath could not be evaluated.
    #[error("output {name:?}: {message}")]
    Output { name: String, message: String },
    /// The response body exceeded [`ExecutorConfig::max_response_bytes`].
    #[error("response larger than {limit} bytes")]
    ResponseTooLarge { limit: usize },
}

impl CallError {
    /// Whether trying the same call later may succeed (vendor or network trouble).
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Timeout { .. }
            | CallError::Connect { .. }
            | CallError::Transport { .. }
            | CallError::RateLimited { .. } => true,
            CallError::Http { status, .. } => retryable_status(*status),
            _ => false,
        }
    }
}

/// Tuning that is not part of a connector's definition.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// First backoff between retries; doubles each retry.
    pub backoff_base: Duration,
    /// Longest backoff between retries.
    pub backoff_cap: Duration,
    /// Longest `Retry-After` waited out; a longer one ends the call with the error.
    pub max_retry_after: Duration,
    /// An OAuth token is renewed this long before it expires (at most half its life).
    pub token_refresh_margin: Duration,
    /// Lifetime assumed for an OAuth token whose response gives no `expires_in`.
    pub token_default_lifetime: Duration,
    /// Larger response bodies fail the call.
    pub max_response_bytes: usize,
    /// Characters of a non-JSON body kept in `{"text": ...}`.
    pub max_text_chars: usize,
    /// Characters of an error response kept in `CallError::Http`.
    pub max_error_excerpt_chars: usize,
    /// Same-origin redirects followed; redirects to another origin are never followed,
    /// so credentials in custom headers cannot be sent elsewhere.
    pub max_redirects: usize,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            token_refresh_margin: Duration::from_secs(60),
            token_default_lifetime: Duration::from_secs(300),
            max_response_bytes: 10 * 1024 * 1024,
            max_text_chars: 64 * 1024,
            max_error_excerpt_chars: 512,
            max_redirects: 5,
        }
    }
}

/// Sends connector calls; one per process, shared by all playbook runs.
pub struct Executor {
    client: reqwest::Client,
    config: ExecutorConfig,
    secrets: Secrets,
    connectors: BTreeMap<String, Connector>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("integrations", &self.connectors.keys().collect::<Vec<_>>())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One integration prepared for calls.
struct Connector {
    def: Integration,
    base: Url,
    /// Every template, parsed once.
    compiled: Compiled,
    /// Values of the integration's settings (environment, else default).
    settings: BTreeMap<String, String>,
    timeout: Duration,
    /// Bounds requests in flight (`limits.concurrency`).
    slots: Arc<Semaphore>,
    /// Spaces request starts (`limits.rate_per_minute`); none when unlimited.
    rate: Option<DefaultDirectRateLimiter>,
    /// The current OAuth token; the lock also makes concurrent calls share one fetch.
    token: Mutex<Option<CachedToken>>,
    /// Parsed output paths per action.
    outputs: BTreeMap<String, Vec<(String, Query)>>,
}

struct CachedToken {
    value: SecretValue,
    renew_at: Instant,
}

/// What one attempt came back with.
struct Response {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Why one attempt got no response.
enum AttemptError {
    Timeout,
    Connect(String),
    Transport(String),
    TooLarge,
}

/// The `Authorization` (or API key) header for one attempt.
enum AuthHeader {
    None,
    Static(HeaderName, HeaderValue),
    OAuth,
}

impl Executor {
    /// Prepares every integration with default tuning; `overrides` maps integration ids to
    /// base URLs and wins over `TOCSIN_INTEGRATION_<ID>_BASE_URL` and the definition.
    pub fn new(
        integrations: BTreeMap<String, Integration>,
        secrets: Secrets,
        overrides: BTreeMap<String, String>,
    ) -> Result<Executor, CallError> {
        Executor::with_config(integrations, secrets, overrides, ExecutorConfig::default())
    }

    /// Like [`Executor::new`] with explicit tuning.
    pub fn with_config(
        integrations: BTreeMap<String, Integration>,
        secrets: Secrets,
        overrides: BTreeMap<String, String>,
        config: ExecutorConfig,
    ) -> Result<Executor, CallError> {
        let env = |key: &str| std::env::var(key).ok();
        Executor::build(integrations, secrets, &overrides, config, &env)
    }

    /// Like [`Executor::with_config`], reading base URLs and settings
    /// (`TOCSIN_INTEGRATION_<ID>_*`) from `env` instead of the process environment, so
    /// tests and tools can give a deployment's variables without setting them process-wide.
    pub fn with_env(
        integrations: BTreeMap<String, Integration>,
        secrets: Secrets,
        env: &BTreeMap<String, String>,
        config: ExecutorConfig,
    ) -> Result<Executor, CallError> {
        let env = |key: &str| env.get(key).cloned();
        Executor::build(integrations, secrets, &BTreeMap::new(), config, &env)
    }

    fn build(
        integrations: BTreeMap<String, Integration>,
        secrets: Secrets,
        overrides: &BTreeMap<String, String>,
        config: ExecutorConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Executor, CallError> {
        let mut connectors = BTreeMap::new();
        for (id, mut def) in integrations {
            let base = base_url_for(&def, overrides, env)?;
            if let Some(rate) = env(&rate_env_var(&def.id)).filter(|s| !s.trim().is_empty()) {
                def.limits.rate_per_minute =
                    rate.trim().parse().map_err(|_| CallError::BadDefinition {
                        integration: def.id.clone(),
                        message: format!(
                            "{} must be a whole number of requests a minute (0: unlimited)",
                            rate_env_var(&def.id)
                        ),
                    })?;
            }
            let settings = render::resolve_settings(&def, env);
            connectors.insert(id, Connector::new(def, base, settings)?);
        }
        let max_redirects = config.max_redirects;
        let client = reqwest::Client::builder()
            .user_agent(concat!("tocsin/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                let same_origin = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.origin() == attempt.url().origin());
                if same_origin && attempt.previous().len() <= max_redirects {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .build()
            .map_err(|e| CallError::Transport {
                message: format!("cannot create the HTTP client: {}", error_chain(&e)),
                attempts: 0,
            })?;
        Ok(Executor {
            client,
            config,
            secrets,
            connectors,
        })
    }

    /// The secrets store, e.g. to redact what the engine stores.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The loaded definition of integration `id`.
    pub fn integration(&self, id: &str) -> Option<&Integration> {
        self.connectors.get(id).map(|c| &c.def)
    }

    /// The base URL calls to integration `id` go to, after overrides.
    pub fn base_url(&self, id: &str) -> Option<&Url> {
        self.connectors.get(id).map(|c| &c.base)
    }

    /// Every loaded integration, by id.
    pub fn integrations(&self) -> impl Iterator<Item = &Integration> {
        self.connectors.values().map(|c| &c.def)
    }

    /// The secret names integration `id` needs: its auth method's and those its actions'
    /// templates read, sorted. Names only; values stay in [`Secrets`].
    pub fn secret_names(&self, id: &str) -> Vec<String> {
        let Some(c) = self.connectors.get(id) else {
            return Vec::new();
        };
        let mut names: std::collections::BTreeSet<String> = c
            .def
            .auth
            .secrets()
            .into_iter()
            .map(str::to_string)
            .collect();
        for action in c.compiled.actions.values() {
            names.extend(action.secrets().map(str::to_string));
        }
        names.into_iter().collect()
    }

    /// Renders `action`'s templates with `inputs` (the step's rendered `with:` values) as
    /// `$.inputs`, and sends it. `idempotency_key`, when given, is sent as the
    /// `Idempotency-Key` header, which also makes the call safe to retry.
    pub async fn invoke(
        &self,
        integration: &str,
        action: &str,
        inputs: &Map<String, Value>,
        idempotency_key: Option<&str>,
    ) -> Result<CallResult, CallError> {
        let mut call = self.render(integration, action, inputs)?;
        if let Some(key) = idempotency_key {
            call.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("idempotency-key"));
            call.headers
                .push(("Idempotency-Key".into(), key.to_string()));
        }
        self.call(integration, action, call).await
    }

    /// The request `invoke` sends for these inputs (authentication not included). Not
    /// public: it holds the values of any secrets the action's templates name.
    fn render(
        &self,
        integration: &str,
        action: &str,
        inputs: &Map<String, Value>,
    ) -> Result<RenderedCall, CallError> {
        let conn = self.connector(integration)?;
        let compiled =
            conn.compiled
                .actions
                .get(action)
                .ok_or_else(|| CallError::UnknownAction {
                    integration: integration.to_string(),
                    action: action.to_string(),
                })?;
        compiled
            .render(integration, inputs, &conn.settings, &self.secrets)
            .map_err(|e| match e {
                RenderError::MissingInput { name, needs } => CallError::MissingInput {
                    integration: integration.to_string(),
                    action: action.to_string(),
                    name,
                    needs,
                },
                other => self.render_error(integration, other),
            })
    }

    fn render_error(&self, integration: &str, e: RenderError) -> CallError {
        match e {
            RenderError::MissingSetting { name, env_var } => CallError::MissingSetting {
                integration: integration.to_string(),
                name,
                env_var,
            },
            RenderError::MissingSecret { name } => CallError::MissingSecret { name },
            RenderError::MissingInput { name, .. } => CallError::BadRequest {
                message: format!("input {name:?} is missing"),
            },
            RenderError::Invalid(message) => CallError::BadRequest {
                message: self.secrets.redact(&message),
            },
        }
    }

    fn connector(&self, integration: &str) -> Result<&Connector, CallError> {
        self.connectors
            .get(integration)
            .ok_or_else(|| CallError::UnknownIntegration {
                integration: integration.to_string(),
            })
    }

    /// Sends `call` as `integration`'s `action`, retrying within its limits.
    pub async fn call(
        &self,
        integration: &str,
        action_name: &str,
        call: RenderedCall,
    ) -> Result<CallResult, CallError> {
        let started = Instant::now();
        let conn = self.connector(integration)?;
        let action = conn
            .def
            .actions
            .get(action_name)
            .ok_or_else(|| CallError::UnknownAction {
                integration: integration.to_string(),
                action: action_name.to_string(),
            })?;
        let url = self.join(&conn.base, &call.path)?;
        let retry_allowed = action.is_idempotent()
            || call
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("idempotency-key"));
        let mut headers = self.headers(&call.headers)?;
        let body = self.body(action, call.body.as_ref(), &mut headers)?;
        if !headers.contains_key(ACCEPT) {
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        }
        // Secrets are resolved before the first request, so a missing one sends nothing.
        let auth = self.auth_header(&conn.def.auth)?;
        // The connector's auth is authoritative: a rendered header of the same name is
        // dropped rather than sent twice.
        match &auth {
            AuthHeader::None => {}
            AuthHeader::Static(name, _) => {
                headers.remove(name);
            }
            AuthHeader::OAuth => {
                headers.remove(AUTHORIZATION);
            }
        }
        let mut token = match auth {
            AuthHeader::OAuth => Some(self.token(conn, None).await?),
            _ => None,
        };

        let limits = &conn.def.limits;
        let mut attempts: u32 = 0;
        let mut retries: u32 = 0;
        let mut refreshed = false;
        loop {
            attempts += 1;
            let mut request = self
                .client
                .request(method(action.method), url.clone())
                .headers(headers.clone());
            if !call.query.is_empty() {
                request = request.query(&call.query);
            }
            if let Some(bytes) = &body {
                request = request.body(bytes.clone());
            }
            match &auth {
                AuthHeader::None => {}
                AuthHeader::Static(name, value) => request = request.header(name, value),
                AuthHeader::OAuth => {
                    if let Some(t) = &token {
                        request = request.header(AUTHORIZATION, bearer(t)?);
                    }
                }
            }
            let outcome = self.attempt(conn, request).await;
            tracing::debug!(
                integration,
                action = action_name,
                attempt = attempts,
                status = outcome.as_ref().ok().map(|r| r.status),
                "integration call"
            );

            // The delay before the next attempt, or the error that ends the call.
            let wait = match outcome {
                Ok(response) => {
                    let status = response.status;
                    if (200..300).contains(&status) || action.accept_status.contains(&status) {
                        let body = self.parse_body(&response.body);
                        let success = conn
                            .compiled
                            .actions
                            .get(action_name)
                            .and_then(|a| a.success());
                        if let Some(Err(vendor)) = success.map(|s| s.check(status, &body)) {
                            return Err(CallError::Rejected {
                                status,
                                // `body` is redacted already; the excerpt redacts itself.
                                message: vendor.unwrap_or_else(|| self.excerpt(&response.body)),
                                attempts,
                            });
                        }
                        let output = evaluate_outputs(conn, action_name, &body)?;
                        return Ok(CallResult {
                            status,
                            output,
                            body,
                            attempts,
                            duration: started.elapsed(),
                        });
                    }
                    if status == 401 && !refreshed {
                        if let Some(old) = token.take() {
                            // The token may have been revoked early; a 401 means the
                            // request was refused unprocessed, so one repeat is harmless.
                            refreshed = true;
                            token = Some(self.token(conn, Some(&old)).await?);
                            continue;
                        }
                    }
                    let retry_after = retry_after(&response.headers);
                    let excerpt = || self.excerpt(&response.body);
                    let fail = || {
                        if status == 429 {
                            CallError::RateLimited {
                                retry_after,
                                attempts,
                            }
                        } else {
                            CallError::Http {
                                status,
                                body_excerpt: excerpt(),
                                attempts,
                            }
                        }
                    };
                    if !(retryable_status(status) && retry_allowed && retries < limits.retries) {
                        return Err(fail());
                    }
                    match retry_after {
                        Some(d) if d > self.config.max_retry_after => return Err(fail()),
                        Some(d) => d,
                        None => self.backoff(retries),
                    }
                }
                Err(AttemptError::Timeout) => {
                    if !(retry_allowed && retries < limits.retries) {
                        return Err(CallError::Timeout {
                            timeout: conn.timeout,
                            attempts,
                        });
                    }
                    self.backoff(retries)
                }
                Err(AttemptError::Connect(message)) => {
                    // No connection means the request never left: safe for any action.
                    if retries >= limits.retries {
                        return Err(CallError::Connect { message, attempts });
                    }
                    self.backoff(retries)
                }
                Err(AttemptError::Transport(message)) => {
                    if !(retry_allowed && retries < limits.retries) {
                        return Err(CallError::Transport { message, attempts });
                    }
                    self.backoff(retries)
                }
                Err(AttemptError::TooLarge) => {
                    return Err(CallError::ResponseTooLarge {
                        limit: self.config.max_response_bytes,
                    })
                }
            };
            retries += 1;
            tracing::info!(
                integration,
                action = action_name,
                attempt = attempts,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "retrying integration call"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends one request within the connector's concurrency, rate and timeout.
    async fn attempt(
        &self,
        conn: &Connector,
        request: reqwest::RequestBuilder,
    ) -> Result<Response, AttemptError> {
        // The slot is taken before the rate token, so waiting for a slot cannot bank
        // rate tokens that would later be spent in a burst. The slot is released before
        // any backoff, so a call waiting to retry does not block others.
        let _slot = conn
            .slots
            .acquire()
            .await
            .map_err(|_| AttemptError::Transport("executor is shutting down".into()))?;
        if let Some(rate) = &conn.rate {
            rate.until_ready().await;
        }
        let send = async {
            let mut response = request.send().await.map_err(|e| self.classify(&e))?;
            let status = response.status().as_u16();
            let headers = std::mem::take(response.headers_mut());
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(&e))? {
                if body.len() + chunk.len() > self.config.max_response_bytes {
                    return Err(AttemptError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Response {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(conn.timeout, send)
            .await
            .unwrap_or(Err(AttemptError::Timeout))
    }

    /// Sorts a transport error into timeout, connect or other, with a redacted message.
    fn classify(&self, e: &reqwest::Error) -> AttemptError {
        if e.is_timeout() {
            AttemptError::Timeout
        } else if e.is_connect() {
            AttemptError::Connect(self.secrets.redact(&error_chain(e)))
        } else {
            AttemptError::Transport(self.secrets.redact(&error_chain(e)))
        }
    }

    /// An access token for `conn`: the cached one, or a new one if it is due for renewal
    /// or is `stale` (refused by the vendor).
    async fn token(
        &self,
        conn: &Connector,
        stale: Option<&SecretValue>,
    ) -> Result<SecretValue, CallError> {
        let mut cached = conn.token.lock().await;
        if let Some(t) = cached.as_ref() {
            // Another call may have renewed the refused token already; use its one.
            let refused = stale.is_some_and(|s| s == &t.value);
            if !refused && Instant::now() < t.renew_at {
                return Ok(t.value.clone());
            }
        }
        let fresh = self.fetch_token(conn).await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    /// Asks the token endpoint for a client-credentials token.
    async fn fetch_token(&self, conn: &Connector) -> Result<CachedToken, CallError> {
        let Auth::Oauth2ClientCredentials {
            client_id_secret,
            client_secret_secret,
            scope,
            ..
        } = &conn.def.auth
        else {
            return Err(CallError::BadDefinition {
                integration: conn.def.id.clone(),
                message: "auth is not oauth2_client_credentials".into(),
            });
        };
        let token_url = self.token_url(conn)?;
        let client_id = self.secret(client_id_secret)?;
        let client_secret = self.secret(client_secret_secret)?;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id.expose()),
            ("client_secret", client_secret.expose()),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let oauth = |status: Option<u16>, message: String| CallError::OAuth {
            status,
            message: self.secrets.redact(&message),
        };
        let send = async {
            let response = self
                .client
                .post(token_url.clone())
                .header(ACCEPT, "application/json")
                .form(&form)
                .send()
                .await
                .map_err(|e| oauth(None, error_chain(&e)))?;
            let status = response.status().as_u16();
            let body = response
                .bytes()
                .await
                .map_err(|e| oauth(Some(status), error_chain(&e)))?;
            Ok::<_, CallError>((status, body))
        };
        let (status, body) = tokio::time::timeout(conn.timeout, send)
            .await
            .map_err(|_| oauth(None, format!("no response within {:?}", conn.timeout)))??;
        if !(200..300).contains(&status) {
            return Err(oauth(
                Some(status),
                format!("HTTP {status}: {}", self.excerpt(&body)),
            ));
        }
        let json: Value = serde_json::from_slice(&body)
            .map_err(|_| oauth(Some(status), "token response is not JSON".into()))?;
        let access = json
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| oauth(Some(status), "token response has no access_token".into()))?;
        self.secrets.remember(access);
        // `expires_in` is a number in the RFC, but some vendors send a string.
        let lifetime = match json.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .map(Duration::from_secs)
        .unwrap_or(self.config.token_default_lifetime)
        // Bounded, so an absurd `expires_in` cannot overflow the clock arithmetic below.
        .min(Duration::from_secs(24 * 3600));
        let margin = self.config.token_refresh_margin.min(lifetime / 2);
        Ok(CachedToken {
            value: SecretValue::new(access),
            renew_at: Instant::now() + (lifetime - margin),
        })
    }

    /// The token URL: rendered over the settings, relative ones under the base URL.
    fn token_url(&self, conn: &Connector) -> Result<Url, CallError> {
        let id = &conn.def.id;
        let bad = |message: String| CallError::BadDefinition {
            integration: id.clone(),
            message: format!("token_url: {message}"),
        };
        let template = conn
            .compiled
            .token_url
            .as_ref()
            .ok_or_else(|| bad("none".into()))?;
        let text = template
            .render(id, &conn.settings)
            .map_err(|e| self.render_error(id, e))?;
        if text.starts_with('/') {
            return join_url(&conn.base, &text).map_err(bad);
        }
        let url = Url::parse(text.trim()).map_err(|e| bad(format!("{text:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(bad(format!("{text:?} is not an http(s) URL")));
        }
        Ok(url)
    }

    /// A configured secret, or the error naming it.
    fn secret(&self, name: &str) -> Result<&SecretValue, CallError> {
        self.secrets
            .get(name)
            .ok_or_else(|| CallError::MissingSecret {
                name: name.to_string(),
            })
    }

    /// The authentication header the integration's auth method asks for.
    fn auth_header(&self, auth: &Auth) -> Result<AuthHeader, CallError> {
        Ok(match auth {
            Auth::None => AuthHeader::None,
            Auth::ApiKeyHeader {
                header,
                secret,
                prefix,
            } => {
                let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                    CallError::BadRequest {
                        message: format!("auth header name {header:?} is not valid"),
                    }
                })?;
                let value = self.secret(secret)?;
                let value = format!("{}{}", prefix.as_deref().unwrap_or(""), value.expose());
                AuthHeader::Static(name, sensitive(&value, secret)?)
            }
            Auth::Bearer { secret } => {
                let value = self.secret(secret)?;
                AuthHeader::Static(AUTHORIZATION, bearer(value)?)
            }
            Auth::Basic {
                username_secret,
                password_secret,
            } => {
                use base64::Engine as _;
                let user = self.secret(username_secret)?;
                let password = self.secret(password_secret)?;
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    user.expose(),
                    password.expose()
                ));
                // The encoded pair is as good as the password; redact it too.
                self.secrets.remember(&encoded);
                AuthHeader::Static(
                    AUTHORIZATION,
                    sensitive(&format!("Basic {encoded}"), password_secret)?,
                )
            }
            Auth::Oauth2ClientCredentials {
                client_id_secret,
                client_secret_secret,
                ..
            } => {
                self.secret(client_id_secret)?;
                self.secret(client_secret_secret)?;
                AuthHeader::OAuth
            }
        })
    }

    /// The rendered headers as a header map.
    fn headers(&self, pairs: &[(String, String)]) -> Result<HeaderMap, CallError> {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| CallError::BadRequest {
                    message: format!("header name {:?} is not valid", self.secrets.redact(name)),
                })?;
            // The value is left out of the message: it may carry a rendered secret.
            let value = HeaderValue::from_str(value).map_err(|_| CallError::BadRequest {
                message: format!("header {name} has a value that is not valid in HTTP"),
            })?;
            map.append(name, value);
        }
        Ok(map)
    }

    /// The encoded request body, setting `Content-Type` unless the call set one.
    fn body(
        &self,
        action: &Action,
        body: Option<&Value>,
        headers: &mut HeaderMap,
    ) -> Result<Option<Vec<u8>>, CallError> {
        let Some(body) = body else { return Ok(None) };
        let (bytes, content_type) = if action.form {
            let Value::Object(fields) = body else {
                return Err(CallError::BadRequest {
                    message: "a form body must be an object of fields".into(),
                });
            };
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (key, value) in fields {
                match value {
                    Value::Null => {}
                    // Repeated keys, the usual form encoding of a list.
                    Value::Array(items) => {
                        for item in items {
                            form.append_pair(key, &form_value(item));
                        }
                    }
                    other => {
                        form.append_pair(key, &form_value(other));
                    }
                }
            }
            (
                form.finish().into_bytes(),
                "application/x-www-form-urlencoded",
            )
        } else {
            let bytes = serde_json::to_vec(body).map_err(|e| CallError::BadRequest {
                message: format!("body cannot be encoded as JSON: {e}"),
            })?;
            (bytes, "application/json")
        };
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        Ok(Some(bytes))
    }

    /// `base` with `path` appended; refuses a path that would leave the base URL.
    fn join(&self, base: &Url, path: &str) -> Result<Url, CallError> {
        join_url(base, path).map_err(|message| CallError::BadRequest {
            message: self.secrets.redact(&message),
        })
    }

    /// The response as JSON, `{"text": ...}` when it is not JSON, null when empty; redacted.
    fn parse_body(&self, bytes: &[u8]) -> Value {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Value::Null;
        }
        // Parsed whatever the Content-Type says: vendors mislabel JSON as text/plain.
        let mut value = match serde_json::from_slice::<Value>(bytes) {
            Ok(v) => v,
            Err(_) => {
                let text = String::from_utf8_lossy(bytes);
                let mut map = Map::new();
                map.insert(
                    "text".into(),
                    Value::String(truncate(&text, self.config.max_text_chars)),
                );
                Value::Object(map)
            }
        };
        self.secrets.redact_json(&mut value);
        value
    }

    /// A short, redacted excerpt of an error response for messages.
    fn excerpt(&self, bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(bytes);
        // Redact before truncating, so a secret cut in half cannot slip through.
        let redacted = self.secrets.redact(text.trim());
        truncate(&redacted, self.config.max_error_excerpt_chars)
    }

    /// Exponential backoff with jitter before retry number `retry` (0-based).
    fn backoff(&self, retry: u32) -> Duration {
        use rand::Rng as _;
        let full = self
            .config
            .backoff_base
            .saturating_mul(2u32.saturating_pow(retry.min(30)))
            .min(self.config.backoff_cap);
        // "Equal jitter": half fixed, half random, so retries of many calls spread out
        // but never come back immediately.
        let half = full / 2;
        let extra =
            rand::thread_rng().gen_range(0..=u64::try_from(half.as_micros()).unwrap_or(u64::MAX));
        half + Duration::from_micros(extra)
    }
}

impl Connector {
    /// Checks limits and output paths and builds the connector's limiters.
    fn new(
        def: Integration,
        base: Url,
        settings: BTreeMap<String, String>,
    ) -> Result<Connector, CallError> {
        let bad = |message: String| CallError::BadDefinition {
            integration: def.id.clone(),
            message,
        };
        let compiled = render::compile(&def).map_err(|problems| {
            bad(problems
                .iter()
                .map(|p| match &p.action {
                    Some(a) => format!("action {a:?} {}", p.message),
                    None => p.message.clone(),
                })
                .collect::<Vec<_>>()
                .join("; "))
        })?;
        let timeout = humantime::parse_duration(def.limits.timeout.trim())
            .map_err(|e| bad(format!("limits.timeout {:?}: {e}", def.limits.timeout)))?;
        if timeout.is_zero() {
            return Err(bad("limits.timeout must be more than zero".into()));
        }
        let mut outputs = BTreeMap::new();
        for (name, action) in &def.actions {
            let mut parsed = Vec::new();
            for (out, path) in &action.outputs {
                let query = Query::parse(path)
                    .map_err(|e| bad(format!("action {name:?} output {out:?}: {e}")))?;
                parsed.push((out.clone(), query));
            }
            outputs.insert(name.clone(), parsed);
        }
        // Evenly spaced starts (a burst of one), so no window of any length sees more
        // than the vendor's rate, whichever way the vendor counts it.
        let rate = NonZeroU32::new(def.limits.rate_per_minute)
            .map(|n| RateLimiter::direct(Quota::per_minute(n).allow_burst(NonZeroU32::MIN)));
        let slots = usize::try_from(def.limits.concurrency.max(1)).unwrap_or(1);
        Ok(Connector {
            base,
            compiled,
            settings,
            timeout,
            slots: Arc::new(Semaphore::new(slots.min(Semaphore::MAX_PERMITS))),
            rate,
            token: Mutex::new(None),
            outputs,
            def,
        })
    }
}

/// The environment variable that overrides integration `id`'s base URL.
pub fn base_url_env_var(id: &str) -> String {
    format!("TOCSIN_INTEGRATION_{}_BASE_URL", id.to_ascii_uppercase())
}

/// The environment variable that overrides integration `id`'s `limits.rate_per_minute`
/// (a premium API key allows more; tests lift the limit with 0).
pub fn rate_env_var(id: &str) -> String {
    format!(
        "TOCSIN_INTEGRATION_{}_RATE_PER_MINUTE",
        id.to_ascii_uppercase()
    )
}

/// The base URL for `def`: explicit override, else environment, else the definition.
fn base_url_for(
    def: &Integration,
    overrides: &BTreeMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Url, CallError> {
    let text = overrides
        .get(&def.id)
        .cloned()
        .or_else(|| env(&base_url_env_var(&def.id)).filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| def.base_url.clone());
    let bad = |message: String| CallError::BadBaseUrl {
        integration: def.id.clone(),
        message,
    };
    let url = Url::parse(text.trim()).map_err(|e| bad(format!("{text:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad(format!("{text:?} is not an http(s) URL")));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad(format!(
            "{:?} must not carry a query, fragment or user name",
            url.origin().ascii_serialization()
        )));
    }
    Ok(url)
}

/// `base` with `path` appended (one slash between); the result must stay under `base`.
fn join_url(base: &Url, path: &str) -> Result<Url, String> {
    let mut text = base.as_str().trim_end_matches('/').to_string();
    if !path.is_empty() && !path.starts_with('/') {
        text.push('/');
    }
    text.push_str(path);
    let url = Url::parse(&text).map_err(|e| format!("path {path:?}: {e}"))?;
    // Rendered paths carry alert data; a crafted value such as `@evil.example/` or
    // `/../../admin` must not send the integration's credentials elsewhere.
    let prefix = base.path().trim_end_matches('/');
    let under = url.path() == prefix
        || url.path().starts_with(&format!("{prefix}/"))
        || (prefix.is_empty() && url.path() == "/");
    if url.origin() != base.origin() || !under {
        return Err(format!("path {path:?} leaves the integration's base URL"));
    }
    Ok(url)
}

/// Whether a status is worth retrying (rate limited or a gateway/availability problem).
fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// The `Retry-After` header as a delay: delta-seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let delta = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    // A date in the past means "now".
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Each output's JSONPath against `body`: a singular path gives its value or null, any
/// other path an array of every match, so an output's type never depends on how many
/// matches a response happens to have.
fn evaluate_outputs(
    conn: &Connector,
    action: &str,
    body: &Value,
) -> Result<Map<String, Value>, CallError> {
    let mut output = Map::new();
    for (name, query) in conn.outputs.get(action).map(Vec::as_slice).unwrap_or(&[]) {
        let found: Vec<Value> = query
            .find(body)
            .map_err(|e| CallError::Output {
                name: name.clone(),
                message: e.to_string(),
            })?
            .into_iter()
            .map(|r| r.val().clone())
            .collect();
        let value = if query.is_singular() {
            found.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::Array(found)
        };
        output.insert(name.clone(), value);
    }
    Ok(output)
}

fn method(m: Method) -> reqwest::Method {
    match m {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
    }
}

/// `Bearer <token>` as a header value marked sensitive.
fn bearer(token: &SecretValue) -> Result<HeaderValue, CallError> {
    sensitive(&format!("Bearer {}", token.expose()), "access token")
}

/// A header value marked sensitive (hidden from the HTTP stack's debug output).
fn sensitive(value: &str, what: &str) -> Result<HeaderValue, CallError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| CallError::BadRequest {
        message: format!("secret {what} is not valid in an HTTP header"),
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// A JSON value as a form field: strings as they are, other scalars as text, the rest as JSON.
fn form_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// At most `max` characters of `text`, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// An error and its causes, without the URL (queries may carry rendered data).
fn error_chain(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut parts = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    let head = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else if e.is_redirect() {
        "redirect refused"
    } else {
        "request failed"
    };
    if parts.is_empty() {
        head.to_string()
    } else {
        format!("{head}: {}", parts.join(": "))
    }
}

#[cfg(test)]
mod tests {
    //! Calls against a real HTTP server on a free loopback port that behaves like a
    //! vendor API (auth checks, throttling, flaky gateways, slow answers).

    use super::*;
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    use serde_json::json;
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
    use std::sync::Mutex as StdMutex;

    const API_KEY: &str = "sk-live-7f3a9c41e2";

    /// One request the vendor saw.
    #[derive(Debug, Clone)]
    struct Hit {
        method: String,
        path: String,
        headers: HashMap<String, String>,
        at: Instant,
    }

    #[derive(Default)]
    struct VendorState {
        hits: StdMutex<Vec<Hit>>,
        counts: StdMutex<HashMap<String, u32>>,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        tokens_issued: AtomicU32,
        valid_token: StdMutex<String>,
    }

    impl VendorState {
        fn hits(&self, path: &str) -> Vec<Hit> {
            let hits = self.hits.lock().unwrap();
            hits.iter().filter(|h| h.path == path).cloned().collect()
        }
    }

    fn json_response(status: u16, body: Value) -> HttpResponse {
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(body)
    }

    async fn vendor(
        req: HttpRequest,
        body: web::Bytes,
        state: web::Data<VendorState>,
    ) -> HttpResponse {
        let path = req
            .path()
            .strip_prefix("/api")
            .unwrap_or(req.path())
            .to_string();
        let headers: HashMap<String, String> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let hit = Hit {
            method: req.method().to_string(),
            path: path.clone(),
            headers: headers.clone(),
            at: Instant::now(),
        };
        state.hits.lock().unwrap().push(hit);
        let n = {
            let mut counts = state.counts.lock().unwrap();
            let c = counts.entry(path.clone()).or_default();
            *c += 1;
            *c
        };
        let header = |name: &str| headers.get(name).cloned().unwrap_or_default();
        let authorized = |ok: bool| {
            if ok {
                json_response(200, json!({"ok": true}))
            } else {
                json_response(401, json!({"error": "unauthorized"}))
            }
        };
        match path.as_str() {
            "/apikey" => authorized(header("x-apikey") == API_KEY),
            "/bearer" => authorized(header("authorization") == "Bearer tok-abc"),
            "/basic" => {
                use base64::Engine as _;
                let expected = base64::engine::general_purpose::STANDARD.encode("alice:pw-xyz");
                authorized(header("authorization") == format!("Basic {expected}"))
            }
            "/oauth/token" => {
                let form: HashMap<String, String> =
                    url::form_urlencoded::parse(&body).into_owned().collect();
                let good = req.method() == actix_web::http::Method::POST
                    && form.get("grant_type").map(String::as_str) == Some("client_credentials")
                    && form.get("client_id").map(String::as_str) == Some("cid")
                    && form.get("client_secret").map(String::as_str) == Some("csecret")
                    && form.get("scope").map(String::as_str) == Some("read");
                if !good {
                    return json_response(401, json!({"error": "invalid_client"}));
                }
                let n = state.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
                let token = format!("at-{n}-{}", "x".repeat(8));
                *state.valid_token.lock().unwrap() = token.clone();
                json_response(
                    200,
                    json!({"access_token": token, "token_type": "bearer", "expires_in": 3600}),
                )
            }
            "/oauth/api" => {
                let valid = state.valid_token.lock().unwrap().clone();
                authorized(header("authorization") == format!("Bearer {valid}"))
            }
            "/retry429" if n == 1 => HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", "1"))
                .json(json!({"error": "slow down"})),
            "/limited" => HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", "3600"))
                .finish(),
            "/flaky503" if n <= 2 => json_response(503, json!({"error": "unavailable"})),
            "/always503" => json_response(503, json!({"error": "unavailable"})),
            "/slow" => {
                actix_web::rt::time::sleep(Duration::from_millis(600)).await;
                json_response(200, json!({"late": true}))
            }
            "/busy" => {
                let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                state.max_in_flight.fetch_max(now, Ordering::SeqCst);
                actix_web::rt::time::sleep(Duration::from_millis(100)).await;
                state.in_flight.fetch_sub(1, Ordering::SeqCst);
                json_response(200, json!({"ok": true}))
            }
            "/data" => json_response(
                200,
                json!({"data": {"score": 87, "tags": ["a", "b"], "owner": {"name": "x"}}}),
            ),
            "/text" => HttpResponse::Ok()
                .content_type("text/plain")
                .body("hello, world"),
            "/echo" => json_response(
                200,
                json!({
                    "content_type": header("content-type"),
                    "body": String::from_utf8_lossy(&body),
                    "query": req.query_string(),
                    "you_sent": header("x-apikey"),
                    "keys_sent": req.headers().get_all("x-apikey").count(),
                }),
            ),
            "/echo-key" => {
                HttpResponse::Forbidden().body(format!("key {} is revoked", header("x-apikey")))
            }
            "/redirect" => {
                let to = url::form_urlencoded::parse(req.query_string().as_bytes())
                    .find(|(k, _)| k == "to")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                HttpResponse::Found()
                    .insert_header(("Location", to))
                    .finish()
            }
            _ => json_response(
                if path == "/missing" { 404 } else { 200 },
                json!({"path": path}),
            ),
        }
    }

    struct Vendor {
        addr: SocketAddr,
        state: web::Data<VendorState>,
        handle: actix_web::dev::ServerHandle,
    }

    impl Vendor {
        fn start() -> Vendor {
            let state = web::Data::new(VendorState::default());
            let shared = state.clone();
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(shared.clone())
                    .default_service(web::to(vendor))
            })
            .workers(1)
            .disable_signals()
            .shutdown_timeout(0)
            .bind(("127.0.0.1", 0))
            .unwrap();
            let addr = server.addrs()[0];
            let server = server.run();
            let handle = server.handle();
            actix_web::rt::spawn(server);
            Vendor {
                addr,
                state,
                handle,
            }
        }

        /// The base URL, with a path prefix and trailing slash to exercise joining.
        fn base(&self) -> String {
            format!("http://{}/api/", self.addr)
        }

        async fn stop(self) {
            self.handle.stop(false).await;
        }
    }

    fn fast() -> ExecutorConfig {
        ExecutorConfig {
            backoff_base: Duration::from_millis(10),
            backoff_cap: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(5),
            ..ExecutorConfig::default()
        }
    }

    /// An integration `vendor` whose definition points nowhere (tests override it).
    fn integration(auth: Value, limits: Value, actions: Value) -> Integration {
        serde_json::from_value(json!({
            "id": "vendor",
            "name": "Vendor",
            "base_url": "http://127.0.0.1:9/unused",
            "auth": auth,
            "limits": limits,
            "actions": actions,
        }))
        .unwrap()
    }

    fn action(method: &str, path: &str) -> Value {
        json!({"kind": "enrichment", "method": method, "path": path})
    }

    fn executor_at(
        base: &str,
        i: Integration,
        secrets: Secrets,
        config: ExecutorConfig,
    ) -> Executor {
        let overrides = BTreeMap::from([(i.id.clone(), base.to_string())]);
        Executor::with_config(
            BTreeMap::from([(i.id.clone(), i)]),
            secrets,
            overrides,
            config,
        )
        .unwrap()
    }

    fn executor(v: &Vendor, i: Integration, secrets: Secrets) -> Executor {
        executor_at(&v.base(), i, secrets, fast())
    }

    fn get(path: &str) -> RenderedCall {
        RenderedCall {
            path: path.into(),
            ..RenderedCall::default()
        }
    }

    fn secrets() -> Secrets {
        Secrets::from_pairs([
            ("VENDOR_KEY", API_KEY),
            ("VENDOR_TOKEN", "tok-abc"),
            ("VENDOR_USER", "alice"),
            ("VENDOR_PASSWORD", "pw-xyz"),
            ("VENDOR_CLIENT_ID", "cid"),
            ("VENDOR_CLIENT_SECRET", "csecret"),
        ])
    }

    #[actix_web::test]
    async fn static_auth_methods_send_their_headers() {
        let v = Vendor::start();
        let limits = json!({});
        let cases = [
            (
                json!({"type": "api_key_header", "header": "x-apikey", "secret": "VENDOR_KEY"}),
                "/apikey",
            ),
            (
                json!({"type": "bearer", "secret": "VENDOR_TOKEN"}),
                "/bearer",
            ),
            (
                json!({"type": "basic", "username_secret": "VENDOR_USER", "password_secret": "VENDOR_PASSWORD"}),
                "/basic",
            ),
        ];
        for (auth, path) in cases {
            let i = integration(auth, limits.clone(), json!({"a": action("GET", path)}));
            let ex = executor(&v, i, secrets());
            let r = ex.call("vendor", "a", get(path)).await.unwrap();
            assert_eq!((r.status, r.attempts), (200, 1), "{path}");
        }
        // No auth sends no Authorization header.
        let i = integration(
            json!({"type": "none"}),
            limits,
            json!({"a": action("GET", "/bearer")}),
        );
        let err = executor(&v, i, secrets())
            .call("vendor", "a", get("/bearer"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                CallError::Http {
                    status: 401,
                    attempts: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!v
            .state
            .hits("/bearer")
            .last()
            .unwrap()
            .headers
            .contains_key("authorization"));
        // The encoded basic credentials count as a secret from now on.
        let i = integration(
            json!({"type": "basic", "username_secret": "VENDOR_USER", "password_secret": "VENDOR_PASSWORD"}),
            json!({}),
            json!({"a": action("GET", "/basic")}),
        );
        let ex = executor(&v, i, secrets());
        ex.call("vendor", "a", get("/basic")).await.unwrap();
        let sent = v.state.hits("/basic").last().unwrap().headers["authorization"].clone();
        assert_eq!(ex.secrets().redact(&sent), "Basic ****");
        v.stop().await;
    }

    #[actix_web::test]
    async fn oauth_token_is_fetched_once_reused_and_refreshed_after_401() {
        let v = Vendor::start();
        let auth = json!({
            "type": "oauth2_client_credentials",
            "token_url": format!("http://{}/oauth/token", v.addr),
            "client_id_secret": "VENDOR_CLIENT_ID",
            "client_secret_secret": "VENDOR_CLIENT_SECRET",
            "scope": "read",
        });
        let i = integration(
            auth.clone(),
            json!({}),
            json!({"a": action("GET", "/oauth/api")}),
        );
        let ex = executor(&v, i, secrets());
        for _ in 0..3 {
            let r = ex.call("vendor", "a", get("/oauth/api")).await.unwrap();
            assert_eq!((r.status, r.attempts), (200, 1));
        }
        assert_eq!(
            v.state.tokens_issued.load(Ordering::SeqCst),
            1,
            "token reused"
        );

        // The vendor revokes the token early: one 401, a new token, the same request again.
        *v.state.valid_token.lock().unwrap() = "revoked".into();
        let r = ex.call("vendor", "a", get("/oauth/api")).await.unwrap();
        assert_eq!((r.status, r.attempts), (200, 2));
        assert_eq!(v.state.tokens_issued.load(Ordering::SeqCst), 2);
        let token = v.state.valid_token.lock().unwrap().clone();
        assert_eq!(ex.secrets().redact(&format!("t={token}")), "t=****");

        // A token refused even after renewal is an error, not a loop (`/bearer` accepts
        // only a static token, so it refuses every issued one).
        let i = integration(
            auth.clone(),
            json!({}),
            json!({"a": action("GET", "/bearer")}),
        );
        let ex2 = executor(&v, i, secrets());
        let err = ex2.call("vendor", "a", get("/bearer")).await.unwrap_err();
        assert!(
            matches!(
                err,
                CallError::Http {
                    status: 401,
                    attempts: 2,
                    ..
                }
            ),
            "{err:?}"
        );

        // Wrong client credentials: an OAuth error that does not quote them.
        let wrong = Secrets::from_pairs([
            ("VENDOR_CLIENT_ID", "cid"),
            ("VENDOR_CLIENT_SECRET", "wrong-secret-99"),
        ]);
        let i = integration(auth, json!({}), json!({"a": action("GET", "/oauth/api")}));
        let err = executor(&v, i, wrong)
            .call("vendor", "a", get("/oauth/api"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                CallError::OAuth {
                    status: Some(401),
                    ..
                }
            ),
            "{err:?}"
        );
        let text = format!("{err} {err:?}");
        assert!(
            text.contains("invalid_client") && !text.contains("wrong-secret-99"),
            "{text}"
        );
        v.stop().await;
    }

    #[actix_web::test]
    async fn retries_429_after_retry_after_and_gives_up_on_long_waits() {
        let v = Vendor::start();
        // Backoff far longer than the Retry-After, so a fast success proves it was honoured.
        let config = ExecutorConfig {
            backoff_base: Duration::from_secs(20),
            backoff_cap: Duration::from_secs(20),
            ..fast()
        };
        let i = integration(
            json!({"type": "none"}),
            json!({"retries": 2}),
            json!({"a": action("GET", "/retry429"), "b": action("GET", "/limited")}),
        );
        let ex = executor_at(&v.base(), i, Secrets::default(), config);
        let started = Instant::now();
        let r = ex.call("vendor", "a", get("/retry429")).await.unwrap();
        let took = started.elapsed();
        assert_eq!((r.status, r.attempts), (200, 2));
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "{took:?}"
        );

        // Retry-After beyond max_retry_after: handed back at once.
        let started = Instant::now();
        let err = ex.call("vendor", "b", get("/limited")).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        match err {
            CallError::RateLimited {
                retry_after,
                attempts,
            } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3600)));
                assert_eq!(attempts, 1);
            }
            other => panic!("{other:?}"),
        }
        v.stop().await;
    }

    #[actix_web::test]
    async fn retries_503_only_when_repeating_is_safe() {
        let v = Vendor::start();
        let i = integration(
            json!({"type": "none"}),
            json!({"retries": 3}),
            json!({
                "flaky": action("GET", "/flaky503"),
                "post": {"kind": "containment", "method": "POST", "path": "/always503"},
                "get404": action("GET", "/missing"),
            }),
        );
        let ex = executor(&v, i, Secrets::default());
        let r = ex.call("vendor", "flaky", get("/flaky503")).await.unwrap();
        assert_eq!((r.status, r.attempts), (200, 3));
        assert_eq!(v.state.hits("/flaky503").len(), 3);

        // A non-idempotent POST is sent once.
        let post = RenderedCall {
            path: "/always503".into(),
            body: Some(json!({"host": "h1"})),
            ..RenderedCall::default()
        };
        let err = ex.call("vendor", "post", post.clone()).await.unwrap_err();
        assert!(
            matches!(
                err,
                CallError::Http {
                    status: 503,
                    attempts: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.is_transient());
        assert_eq!(v.state.hits("/always503").len(), 1);

        // ... unless it carries an idempotency key: then up to `retries` more times.
        let keyed = RenderedCall {
            headers: vec![("Idempotency-Key".into(), "run-1-step-2".into())],
            ..post
        };
        let err = ex.call("vendor", "post", keyed).await.unwrap_err();
        assert!(
            matches!(
                err,
                CallError::Http {
                    status: 503,
                    attempts: 4,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(v.state.hits("/always503").len(), 5);
        assert!(v.state.hits("/always503")[1..]
            .iter()
            .all(|h| h.method == "POST" && h.headers["idempotency-key"] == "run-1-step-2"));

        // Other errors are not retried, even for GET.
        let err = ex
            .call("vendor", "get404", get("/missing"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                CallError::Http {
                    status: 404,
                    attempts: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.is_transient());
        v.stop().await;
    }

    #[actix_web::test]
    async fn timeouts_are_per_attempt_and_retried_only_when_safe() {
        let v = Vendor::start();
        let i = integration(
            json!({"type": "none"}),
            json!({"timeout": "150ms", "retries": 1}),
            json!({
                "get": action("GET", "/slow"),
                "post": {"kind": "notification", "method": "POST", "path": "/slow"},
            }),
        );
        let ex = executor(&v, i, Secrets::default());
        let started = Instant::now();
        let err = ex.call("vendor", "get", get("/slow")).await.unwrap_err();
        assert!(
            matches!(err, CallError::Timeout { timeout, attempts: 2 } if timeout == Duration::from_millis(150)),
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(550),
            "{:?}",
            started.elapsed()
        );
        let err = ex.call("vendor", "post", get("/slow")).await.unwrap_err();
        assert!(
            matches!(err, CallError::Timeout { attempts: 1, .. }),
            "{err:?}"
        );
        assert_eq!(v.state.hits("/slow").len(), 3);
        v.stop().await;
    }

    #[actix_web::test]
    async fn connection_refused_is_retried_then_reported() {
        // Port 1 on loopback has nothing listening: the connection is refused at once.
        let i = integration(
            json!({"type": "none"}),
            json!({"retries": 2}),
            json!({"post": {"kind": "containment", "method": "POST", "path": "/x"}}),
        );
        let ex = executor_at("http://127.0.0.1:1", i, Secrets::default(), fast());
        let err = ex.call("vendor", "post", get("/x")).await.unwrap_err();
        assert!(
            matches!(err, CallError::Connect { attempts: 3, .. }),
            "{err:?}"
        );
        assert!(!format!("{err}").contains("127.0.0.1:1/x"), "{err}");
    }

    #[actix_web::test]
    async fn concurrency_limit_is_honoured() {
        let v = Vendor::start();
        let i = integration(
            json!({"type": "none"}),
            json!({"concurrency": 2}),
            json!({"a": action("GET", "/busy")}),
        );
        let ex = Arc::new(executor(&v, i, Secrets::default()));
        let started = Instant::now();
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let ex = ex.clone();
                actix_web::rt::spawn(async move { ex.call("vendor", "a", get("/busy")).await })
            })
            .collect();
        for c in calls {
            assert_eq!(c.await.unwrap().unwrap().status, 200);
        }
        assert_eq!(v.state.max_in_flight.load(Ordering::SeqCst), 2);
        // Six calls of 100 ms, two at a time: at least three rounds.
        assert!(
            started.elapsed() >= Duration::from_millis(290),
            "{:?}",
            started.elapsed()
        );
        v.stop().await;
    }

    #[actix_web::test]
    async fn rate_limit_spaces_request_starts() {
        let v = Vendor::start();
        // 600 a minute: one every 100 ms.
        let i = integration(
            json!({"type": "none"}),
            json!({"concurrency": 4, "rate_per_minute": 600}),
            json!({"a": action("GET", "/data")}),
        );
        let ex = Arc::new(executor(&v, i, Secrets::default()));
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let ex = ex.clone();
                actix_web::rt::spawn(async move { ex.call("vendor", "a", get("/data")).await })
            })
            .collect();
        for c in calls {
            c.await.unwrap().unwrap();
        }
        let mut at: Vec<Instant> = v.state.hits("/data").iter().map(|h| h.at).collect();
        at.sort();
        assert_eq!(at.len(), 4);
        for pair in at.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= Duration::from_millis(70), "requests {gap:?} apart");
        }
        v.stop().await;
    }

    #[actix_web::test]
    async fn outputs_are_mapped_and_bodies_shaped() {
        let v = Vendor::start();
        let mut data = action("GET", "/data");
        data["outputs"] = json!({
            "score": "$.data.score",
            "tags": "$.data.tags[*]",
            "owner": "$.data.owner.name",
            "absent": "$.data.nothing",
        });
        let mut missing = action("GET", "/missing");
        missing["accept_status"] = json!([404]);
        missing["outputs"] = json!({"path": "$.path"});
        let form = json!({"kind": "notification", "method": "POST", "path": "/echo", "form": true});
        let i = integration(
            json!({"type": "none"}),
            json!({}),
            json!({
                "data": data,
                "text": action("GET", "/text"),
                "missing": missing,
                "form": form,
                "json": {"kind": "notification", "method": "POST", "path": "echo"},
            }),
        );
        let ex = executor(&v, i, Secrets::default());

        let r = ex.call("vendor", "data", get("/data")).await.unwrap();
        assert_eq!(
            Value::Object(r.output),
            json!({"score": 87, "tags": ["a", "b"], "owner": "x", "absent": null})
        );
        assert_eq!(r.body["data"]["score"], 87);

        let r = ex.call("vendor", "text", get("/text")).await.unwrap();
        assert_eq!(r.body, json!({"text": "hello, world"}));

        let r = ex.call("vendor", "missing", get("/missing")).await.unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.output["path"], "/missing");

        let call = RenderedCall {
            path: "/echo".into(),
            query: vec![("q".into(), "a b".into()), ("n".into(), "1".into())],
            body: Some(json!({"text": "x y", "n": 5, "list": ["1", "2"], "skip": null})),
            ..RenderedCall::default()
        };
        let r = ex.call("vendor", "form", call.clone()).await.unwrap();
        assert_eq!(r.body["content_type"], "application/x-www-form-urlencoded");
        assert_eq!(r.body["body"], "list=1&list=2&n=5&text=x+y");
        assert_eq!(r.body["query"], "q=a+b&n=1");

        // Path without a leading slash still lands under the base path.
        let r = ex
            .call(
                "vendor",
                "json",
                RenderedCall {
                    path: "echo".into(),
                    ..call
                },
            )
            .await
            .unwrap();
        assert_eq!(r.body["content_type"], "application/json");
        let sent: Value = serde_json::from_str(r.body["body"].as_str().unwrap()).unwrap();
        assert_eq!(sent["n"], 5);
        v.stop().await;
    }

    #[actix_web::test]
    async fn secrets_stay_out_of_errors_and_results() {
        let v = Vendor::start();
        let auth = json!({"type": "api_key_header", "header": "x-apikey", "secret": "VENDOR_KEY"});
        let i = integration(
            auth.clone(),
            json!({}),
            json!({"revoked": action("GET", "/echo-key"), "echo": action("GET", "/echo")}),
        );
        let ex = executor(&v, i, secrets());
        // The vendor quotes the key back in its error body.
        let err = ex
            .call("vendor", "revoked", get("/echo-key"))
            .await
            .unwrap_err();
        let text = format!("{err} | {err:?} | {ex:?}");
        assert!(!text.contains(API_KEY), "{text}");
        assert!(text.contains("key **** is revoked"), "{text}");
        // ... and in a successful body.
        let spoofed = RenderedCall {
            headers: vec![("X-ApiKey".into(), "from-template".into())],
            ..get("/echo")
        };
        let r = ex.call("vendor", "echo", spoofed).await.unwrap();
        assert_eq!(r.body["you_sent"], "****");
        assert_eq!(r.body["keys_sent"], 1);
        assert!(!format!("{r:?}").contains(API_KEY));
        assert_eq!(v.state.hits("/echo")[0].headers["x-apikey"], API_KEY);

        // A missing secret names the secret and sends nothing.
        let i = integration(
            json!({"type": "bearer", "secret": "VENDOR_OTHER_TOKEN"}),
            json!({}),
            json!({"a": action("GET", "/nothing")}),
        );
        let err = executor(&v, i, secrets())
            .call("vendor", "a", get("/nothing"))
            .await
            .unwrap_err();
        assert!(matches!(&err, CallError::MissingSecret { name } if name == "VENDOR_OTHER_TOKEN"));
        assert!(format!("{err}").contains("TOCSIN_SECRET_VENDOR_OTHER_TOKEN"));
        assert!(v.state.hits("/nothing").is_empty());
        v.stop().await;
    }

    #[actix_web::test]
    async fn redirects_to_another_origin_are_not_followed() {
        let v = Vendor::start();
        let i = integration(
            json!({"type": "api_key_header", "header": "x-apikey", "secret": "VENDOR_KEY"}),
            json!({"retries": 0}),
            json!({"a": action("GET", "/redirect"), "b": action("GET", "/redirect")}),
        );
        let ex = executor(&v, i, secrets());
        // Elsewhere (another port is another origin): answered with the 302 itself.
        let away = RenderedCall {
            path: "/redirect".into(),
            query: vec![("to".into(), "http://127.0.0.1:1/steal".into())],
            ..RenderedCall::default()
        };
        let err = ex.call("vendor", "a", away).await.unwrap_err();
        assert!(
            matches!(err, CallError::Http { status: 302, .. }),
            "{err:?}"
        );
        // Same origin: followed, with the key.
        let home = RenderedCall {
            path: "/redirect".into(),
            query: vec![("to".into(), format!("{}data", v.base()))],
            ..RenderedCall::default()
        };
        let r = ex.call("vendor", "b", home).await.unwrap();
        assert_eq!(r.body["data"]["score"], 87);
        assert_eq!(v.state.hits("/data")[0].headers["x-apikey"], API_KEY);
        v.stop().await;
    }

    #[actix_web::test]
    async fn invoke_renders_inputs_sends_keys_and_applies_success_tests() {
        let v = Vendor::start();
        let i = integration(
            json!({"type": "api_key_header", "header": "x-apikey", "prefix": "Key ", "secret": "VENDOR_KEY"}),
            json!({"retries": 3}),
            json!({
                "echo": {"kind": "notification", "method": "POST", "path": "/echo",
                         "query": {"q": "${{ $.inputs.q }}"},
                         "body": {"text": "${{ $.inputs.text }}", "none": "${{ $.inputs.none }}"},
                         "inputs": ["q", "text", "none"]},
                "flaky": {"kind": "notification", "method": "POST", "path": "/flaky503",
                          "inputs": []},
                "judged": {"kind": "enrichment", "method": "GET", "path": "/data",
                           "success": {"condition": "$.response.data.score < 50",
                                       "message": "$.data.owner.name"}},
            }),
        );
        let ex = executor(&v, i, secrets());
        let inputs = |v: Value| v.as_object().unwrap().clone();
        let r = ex
            .invoke(
                "vendor",
                "echo",
                &inputs(json!({"q": "a b", "text": "hi", "none": null})),
                None,
            )
            .await
            .unwrap();
        assert_eq!(r.body["query"], "q=a+b");
        assert_eq!(r.body["body"], r#"{"text":"hi"}"#);
        // The prefix is sent before the key (and the pair is redacted in results).
        assert_eq!(r.body["you_sent"], "Key ****");
        assert_eq!(
            v.state.hits("/echo")[0].headers["x-apikey"],
            format!("Key {API_KEY}")
        );

        // A missing input sends nothing.
        let err = ex
            .invoke("vendor", "echo", &inputs(json!({"q": "x"})), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CallError::MissingInput { name, .. } if name == "text"),
            "{err:?}"
        );
        assert_eq!(v.state.hits("/echo").len(), 1);

        // A POST that is not idempotent is retried when it carries an idempotency key.
        let r = ex
            .invoke("vendor", "flaky", &Map::new(), Some("key-1"))
            .await
            .unwrap();
        assert_eq!(r.attempts, 3);
        assert!(v
            .state
            .hits("/flaky503")
            .iter()
            .all(|h| h.headers["idempotency-key"] == "key-1"));

        // A 200 that fails the success test is a failure quoting the vendor's text.
        let err = ex
            .invoke("vendor", "judged", &Map::new(), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CallError::Rejected { status: 200, message, attempts: 1 } if message == "x"),
            "{err:?}"
        );
        assert!(!err.is_transient());
        v.stop().await;
    }

    #[actix_web::test]
    async fn relative_token_urls_are_under_the_base_url() {
        let v = Vendor::start();
        // The base is `/api/`; the fake serves the token at `/api/oauth/token` too.
        let auth = json!({
            "type": "oauth2_client_credentials",
            "token_url": "/oauth/token",
            "client_id_secret": "VENDOR_CLIENT_ID",
            "client_secret_secret": "VENDOR_CLIENT_SECRET",
            "scope": "read",
        });
        let i = integration(auth, json!({}), json!({"a": action("GET", "/oauth/api")}));
        let ex = executor(&v, i, secrets());
        let r = ex.call("vendor", "a", get("/oauth/api")).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(v.state.hits("/oauth/token").len(), 1);
        v.stop().await;
    }

    #[test]
    fn rate_can_be_overridden_per_deployment() {
        let i = integration(
            json!({"type": "none"}),
            json!({"rate_per_minute": 4}),
            json!({"a": action("GET", "/")}),
        );
        let env = BTreeMap::from([(rate_env_var("vendor"), "soon".to_string())]);
        let err = Executor::with_env(
            BTreeMap::from([("vendor".into(), i.clone())]),
            Secrets::default(),
            &env,
            ExecutorConfig::default(),
        )
        .unwrap_err();
        assert!(
            format!("{err}").contains("TOCSIN_INTEGRATION_VENDOR_RATE_PER_MINUTE"),
            "{err}"
        );
        let env = BTreeMap::from([(rate_env_var("vendor"), "0".to_string())]);
        let ex = Executor::with_env(
            BTreeMap::from([("vendor".into(), i)]),
            Secrets::default(),
            &env,
            ExecutorConfig::default(),
        )
        .unwrap();
        assert!(ex.connectors["vendor"].rate.is_none());
    }

    #[test]
    fn base_url_comes_from_override_then_env_then_definition() {
        let i = integration(
            json!({"type": "none"}),
            json!({}),
            json!({"a": action("GET", "/")}),
        );
        let env_var = base_url_env_var("vendor");
        assert_eq!(env_var, "TOCSIN_INTEGRATION_VENDOR_BASE_URL");
        let env = |k: &str| {
            (k == "TOCSIN_INTEGRATION_VENDOR_BASE_URL").then(|| "http://env.test/v1".to_string())
        };
        let none = |_: &str| None;
        let overrides =
            BTreeMap::from([("vendor".to_string(), "http://explicit.test".to_string())]);
        assert_eq!(
            base_url_for(&i, &overrides, &env).unwrap().as_str(),
            "http://explicit.test/"
        );
        assert_eq!(
            base_url_for(&i, &BTreeMap::new(), &env).unwrap().as_str(),
            "http://env.test/v1"
        );
        assert_eq!(
            base_url_for(&i, &BTreeMap::new(), &none).unwrap().as_str(),
            "http://127.0.0.1:9/unused"
        );
        let bad = BTreeMap::from([("vendor".to_string(), "ftp://x".to_string())]);
        assert!(matches!(
            base_url_for(&i, &bad, &none),
            Err(CallError::BadBaseUrl { .. })
        ));
        let ex = Executor::new(
            BTreeMap::from([("vendor".into(), i)]),
            Secrets::default(),
            overrides,
        )
        .unwrap();
        assert_eq!(
            ex.base_url("vendor").unwrap().as_str(),
            "http://explicit.test/"
        );
    }

    #[test]
    fn paths_are_joined_under_the_base() {
        let base = Url::parse("https://api.example.com/v2/").unwrap();
        let ok = |p: &str| join_url(&base, p).unwrap().to_string();
        assert_eq!(ok("/check"), "https://api.example.com/v2/check");
        assert_eq!(ok("check"), "https://api.example.com/v2/check");
        assert_eq!(ok("/files/a%2Fb"), "https://api.example.com/v2/files/a%2Fb");
        assert_eq!(ok(""), "https://api.example.com/v2");
        for bad in ["/../admin", "/%2e%2e/admin", "/../../x", "/.."] {
            assert!(join_url(&base, bad).is_err(), "{bad}");
        }
        let root = Url::parse("https://api.example.com").unwrap();
        assert_eq!(
            join_url(&root, "@evil.example/x").unwrap().host_str(),
            Some("api.example.com")
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert("retry-after", HeaderValue::from_str(&soon).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let ex = Executor::with_config(
            BTreeMap::new(),
            Secrets::default(),
            BTreeMap::new(),
            ExecutorConfig {
                backoff_base: Duration::from_millis(100),
                backoff_cap: Duration::from_millis(1000),
                ..ExecutorConfig::default()
            },
        )
        .unwrap();
        for _ in 0..20 {
            let d0 = ex.backoff(0);
            assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
            let d2 = ex.backoff(2);
            assert!(d2 >= Duration::from_millis(200) && d2 <= Duration::from_millis(400));
            let big = ex.backoff(40);
            assert!(big >= Duration::from_millis(500) && big <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn bad_definitions_are_refused_up_front() {
        let mut a = action("GET", "/x");
        a["outputs"] = json!({"o": "$.[broken"});
        let i = integration(json!({"type": "none"}), json!({}), json!({"a": a}));
        let err = Executor::new(
            BTreeMap::from([("vendor".into(), i)]),
            Secrets::default(),
            BTreeMap::new(),
        )
        .unwrap_err();
        assert!(matches!(err, CallError::BadDefinition { .. }), "{err:?}");
        let i = integration(
            json!({"type": "none"}),
            json!({"timeout": "soon"}),
            json!({"a": action("GET", "/x")}),
        );
        let err = Executor::new(
            BTreeMap::from([("vendor".into(), i)]),
            Secrets::default(),
            BTreeMap::new(),
        )
        .unwrap_err();
        assert!(format!("{err}").contains("limits.timeout"), "{err}");
    }

    #[test]
    fn call_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let ex = Executor::new(BTreeMap::new(), Secrets::default(), BTreeMap::new()).unwrap();
        let fut = ex.call("x", "y", RenderedCall::default());
        assert_send(&fut);
    }
}
