//! Users, roles, console sessions, API tokens, CSRF, login throttling and first-admin setup.

pub mod login;
pub mod password;
pub mod roles;
pub mod sessions;
pub mod setup;
pub mod throttle;
pub mod tokens;
pub mod users;

use crate::audit::{Actor, AuditError};
use crate::db::DbError;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub use roles::{Permission, Role};
pub use users::User;

/// Authentication and user-management failures.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("your role ({role}) may not {permission}")]
    Forbidden {
        role: Role,
        permission: &'static str,
    },
    #[error("missing or invalid CSRF token")]
    Csrf,
    #[error("too many login attempts; try again in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error("user {0:?} already exists")]
    UserExists(String),
    #[error("no user {0:?}")]
    UserNotFound(String),
    #[error("no API token {0}")]
    TokenNotFound(i64),
    #[error("`{field}` {reason}")]
    InvalidInput { field: &'static str, reason: String },
    #[error("{0}")]
    Conflict(String),
    #[error("the setup link is invalid, used or expired")]
    SetupLinkInvalid,
    #[error("cannot hash password: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<diesel::result::Error> for AuthError {
    fn from(err: diesel::result::Error) -> Self {
        AuthError::Db(DbError::Query(err))
    }
}

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// A console session cookie; state-changing requests must echo its CSRF token.
    Session { csrf_token: String },
    /// A bearer API token.
    Token { id: i64, name: String },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub method: AuthMethod,
}

impl Principal {
    /// Refuses unless the caller's role holds `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), AuthError> {
        if self.user.role.allows(permission) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                role: self.user.role,
                permission: permission.name(),
            })
        }
    }

    /// The actor recorded in audit events for this caller.
    pub fn actor(&self) -> Actor {
        match &self.method {
            AuthMethod::Session { .. } => Actor::user(&self.user.username),
            AuthMethod::Token { id, .. } => Actor::api_token(&self.user.username, *id),
        }
    }
}

/// A fresh random secret: 32 bytes (256 bits), URL-safe base64 without padding.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How secrets (session ids, tokens, setup links) are stored: their SHA-256. The secrets
/// carry 256 random bits, so a fast hash is enough; a slow one would only cost latency.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two secrets in constant time.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hash_stably() {
        let a = random_secret();
        let b = random_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(secret_hash(&a), secret_hash(&a));
        assert_ne!(secret_hash(&a), secret_hash(&b));
        assert!(secrets_equal(&a, &a.clone()));
        assert!(!secrets_equal(&a, &b));
        assert!(!secrets_equal(&a, &a[1..]));
    }
}
