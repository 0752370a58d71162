//! Ingestion sources: a name (the URL segment), a kind (which normalizer), a token shown
//! once and stored hashed, an optional HMAC-SHA256 secret, and kind-specific settings.

use super::vendors::{SourceConfig, SourceKind};
use super::IngestError;
use crate::audit::{self, Actor, NewEvent};
use crate::auth::{random_secret, secret_hash, secrets_equal};
use crate::db::schema::sources;
use crate::db::{last_insert_id, now, DbConn};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

/// Every ingestion token starts with this.
pub const TOKEN_PREFIX: &str = "tis_";

/// A source as the rest of Tocsin sees it (never its token hash or HMAC secret).
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub id: i64,
    pub name: String,
    pub kind: SourceKind,
    pub config: SourceConfig,
    /// Whether requests must carry an HMAC-SHA256 signature of the body.
    pub signed: bool,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub disabled_at: Option<NaiveDateTime>,
    #[serde(skip)]
    pub token_hash: String,
    #[serde(skip)]
    pub hmac_secret: Option<String>,
}

impl Source {
    /// Whether `token` is this source's ingestion token.
    pub fn token_matches(&self, token: &str) -> bool {
        secrets_equal(&secret_hash(token), &self.token_hash)
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = sources)]
struct SourceRow {
    id: i64,
    name: String,
    kind: String,
    token_hash: String,
    hmac_secret: Option<String>,
    config: String,
    created_at: NaiveDateTime,
    disabled_at: Option<NaiveDateTime>,
}

impl TryFrom<SourceRow> for Source {
    type Error = IngestError;

    fn try_from(r: SourceRow) -> Result<Source, IngestError> {
        let kind: SourceKind = r.kind.parse().map_err(|e: super::vendors::UnknownKind| {
            IngestError::Internal(format!("source {}: {e}", r.name))
        })?;
        let config: SourceConfig = serde_json::from_str(&r.config)
            .map_err(|e| IngestError::Internal(format!("source {} config: {e}", r.name)))?;
        Ok(Source {
            id: r.id,
            name: r.name,
            kind,
            config,
            signed: r.hmac_secret.is_some(),
            created_at: r.created_at,
            disabled_at: r.disabled_at,
            token_hash: r.token_hash,
            hmac_secret: r.hmac_secret,
        })
    }
}

/// A source just created or re-keyed, with the secrets shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct SourceSecrets {
    #[serde(flatten)]
    pub source: Source,
    pub token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac_secret: Option<String>,
}

/// Checks a source name: 1–64 of `a-z 0-9 - _`, used as a URL segment.
pub fn check_name(name: &str) -> Result<(), IngestError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(IngestError::invalid(
            "name",
            "must be 1 to 64 of a-z, 0-9, '-' and '_'",
        ));
    }
    Ok(())
}

/// Unit tests' source: `s`, an Alertmanager source created through [`create`] on `db`.
#[cfg(test)]
pub fn scratch(db: &crate::db::Db) -> Source {
    db.write_sync(|conn| {
        create(
            conn,
            &Actor::system("test"),
            "s",
            SourceKind::Alertmanager,
            SourceConfig::default(),
            false,
        )
    })
    .expect("create a source")
    .source
}

/// Creates a source and records `source.created`.
pub fn create(
    conn: &mut DbConn,
    actor: &Actor,
    name: &str,
    kind: SourceKind,
    config: SourceConfig,
    signed: bool,
) -> Result<SourceSecrets, IngestError> {
    check_name(name)?;
    config
        .validate(kind)
        .map_err(|e| IngestError::invalid_config(e.field, e.reason))?;
    if find(conn, name)?.is_some() {
        return Err(IngestError::Conflict(format!(
            "source {name:?} already exists"
        )));
    }
    let token = format!("{TOKEN_PREFIX}{}", random_secret());
    let hmac_secret = signed.then(random_secret);
    let t = now();
    let config_text =
        serde_json::to_string(&config).map_err(|e| IngestError::Internal(e.to_string()))?;
    diesel::insert_into(sources::table)
        .values((
            sources::name.eq(name),
            sources::kind.eq(kind.as_str()),
            sources::token_hash.eq(secret_hash(&token)),
            sources::hmac_secret.eq(&hmac_secret),
            sources::config.eq(&config_text),
            sources::created_at.eq(t),
            sources::updated_at.eq(t),
        ))
        .execute(conn)?;
    let id = last_insert_id(conn)?;
    audit::append(
        conn,
        NewEvent::new(
            actor,
            "source.created",
            format!("source:{name}"),
            json!({ "kind": kind, "signed": signed, "config": config }),
        ),
    )?;
    let source = get_by_id(conn, id)?;
    Ok(SourceSecrets {
        source,
        token,
        hmac_secret,
    })
}

/// Issues a new token (and HMAC secret, for signed sources); the old ones stop working.
pub fn rotate(conn: &mut DbConn, actor: &Actor, name: &str) -> Result<SourceSecrets, IngestError> {
    let source = find(conn, name)?.ok_or_else(|| IngestError::SourceNotFound(name.to_string()))?;
    let token = format!("{TOKEN_PREFIX}{}", random_secret());
    let hmac_secret = source.signed.then(random_secret);
    diesel::update(sources::table.find(source.id))
        .set((
            sources::token_hash.eq(secret_hash(&token)),
            sources::hmac_secret.eq(&hmac_secret),
            sources::updated_at.eq(now()),
        ))
        .execute(conn)?;
    audit::append(
        conn,
        NewEvent::new(actor, "source.rotated", format!("source:{name}"), json!({})),
    )?;
    Ok(SourceSecrets {
        source: get_by_id(conn, source.id)?,
        token,
        hmac_secret,
    })
}

/// Disables or re-enables a source and records it.
pub fn set_disabled(
    conn: &mut DbConn,
    actor: &Actor,
    name: &str,
    disabled: bool,
) -> Result<Source, IngestError> {
    let source = find(conn, name)?.ok_or_else(|| IngestError::SourceNotFound(name.to_string()))?;
    if source.disabled_at.is_some() == disabled {
        return Ok(source);
    }
    diesel::update(sources::table.find(source.id))
        .set((
            sources::disabled_at.eq(if disabled { Some(now()) } else { None }),
            sources::updated_at.eq(now()),
        ))
        .execute(conn)?;
    let action = if disabled {
        "source.disabled"
    } else {
        "source.enabled"
    };
    audit::append(
        conn,
        NewEvent::new(actor, action, format!("source:{name}"), json!({})),
    )?;
    get_by_id(conn, source.id)
}

/// A source by name.
pub fn find(conn: &mut DbConn, name: &str) -> Result<Option<Source>, IngestError> {
    sources::table
        .filter(sources::name.eq(name))
        .select(SourceRow::as_select())
        .first(conn)
        .optional()?
        .map(Source::try_from)
        .transpose()
}

/// The source whose token hashes to `token_hash` (TheHive-compatible senders only send a key).
pub fn find_by_token(conn: &mut DbConn, token: &str) -> Result<Option<Source>, IngestError> {
    sources::table
        .filter(sources::token_hash.eq(secret_hash(token)))
        .select(SourceRow::as_select())
        .first(conn)
        .optional()?
        .map(Source::try_from)
        .transpose()
}

fn get_by_id(conn: &mut DbConn, id: i64) -> Result<Source, IngestError> {
    Source::try_from(
        sources::table
            .find(id)
            .select(SourceRow::as_select())
            .first(conn)?,
    )
}

/// All sources, by name.
pub fn list(conn: &mut DbConn) -> Result<Vec<Source>, IngestError> {
    sources::table
        .order(sources::name.asc())
        .select(SourceRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Source::try_from)
        .collect()
}

/// Sources by name, cached for a few seconds so each ingestion request does not read
/// the database; a changed or revoked token takes effect within `ttl`.
pub struct SourceCache {
    ttl: std::time::Duration,
    entries:
        std::sync::Mutex<std::collections::HashMap<String, (Option<Source>, std::time::Instant)>>,
}

impl SourceCache {
    /// A cache whose entries live `ttl`.
    pub fn new(ttl: std::time::Duration) -> SourceCache {
        SourceCache {
            ttl,
            entries: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The cached entry for `name`, if fresh (`Some(None)` caches "no such source").
    pub fn get(&self, name: &str) -> Option<Option<Source>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(name)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(s, _)| s.clone())
    }

    /// Remembers a lookup; the cache is bounded by clearing it when it grows large, which
    /// only costs re-reads.
    pub fn put(&self, name: &str, source: Option<Source>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() > 10_000 {
            entries.clear();
        }
        entries.insert(name.to_string(), (source, std::time::Instant::now()));
    }

    /// Forgets a source after an administrative change in this process.
    pub fn forget(&self, name: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}
