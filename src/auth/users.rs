//! User accounts. Every change appends its audit event in the caller's transaction.

use super::{AuthError, Role};
use crate::audit::{self, Actor, NewEvent};
use crate::db::schema::{sessions, users};
use crate::db::{last_insert_id, now, DbConn};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

/// A user as the rest of Tocsin sees it (never with the password hash).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: Option<String>,
    pub role: Role,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub updated_at: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub disabled_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "crate::db::utc::serialize_opt")]
    pub last_login_at: Option<NaiveDateTime>,
}

impl User {
    /// Whether the account may sign in.
    pub fn is_active(&self) -> bool {
        self.disabled_at.is_none()
    }
}

/// The stored row, including the password hash.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub email: Option<String>,
    pub role: String,
    pub password_hash: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub disabled_at: Option<NaiveDateTime>,
    pub last_login_at: Option<NaiveDateTime>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> User {
        User {
            id: row.id,
            username: row.username,
            email: row.email,
            // The column has a CHECK constraint; should a row hold something else anyway,
            // it gets the least privilege rather than an error on every request.
            role: row.role.parse().unwrap_or(Role::Viewer),
            created_at: row.created_at,
            updated_at: row.updated_at,
            disabled_at: row.disabled_at,
            last_login_at: row.last_login_at,
        }
    }
}

/// `password` meets the password policy, or the error naming the form or API `field`.
pub fn check_password(field: &'static str, password: &str) -> Result<(), AuthError> {
    super::password::check_policy(password)
        .map_err(|reason| AuthError::InvalidInput { field, reason })
}

/// Normalizes and checks a username: 1–64 of `a-z 0-9 . _ - @`, compared lower-case.
pub fn normalize_username(raw: &str) -> Result<String, AuthError> {
    let name = raw.trim().to_lowercase();
    let bad = |reason: &str| AuthError::InvalidInput {
        field: "username",
        reason: reason.to_string(),
    };
    if name.is_empty() || name.len() > 64 {
        return Err(bad("must be 1 to 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-@".contains(c))
    {
        return Err(bad("may hold only letters, digits, '.', '_', '-' and '@'"));
    }
    Ok(name)
}

/// Checks an optional email address loosely (an `@` with text on both sides).
pub fn normalize_email(raw: Option<&str>) -> Result<Option<String>, AuthError> {
    let Some(email) = raw.map(str::trim).filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && email.len() <= 254
                && !email.contains(char::is_whitespace) =>
        {
            Ok(Some(email.to_string()))
        }
        _ => Err(AuthError::InvalidInput {
            field: "email",
            reason: format!("{email:?} is not an email address"),
        }),
    }
}

/// A user to create; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub role: Role,
    pub password_hash: String,
}

/// Creates a user and records `user.created`.
pub fn create(conn: &mut DbConn, actor: &Actor, new: NewUser) -> Result<User, AuthError> {
    if find_row(conn, &new.username)?.is_some() {
        return Err(AuthError::UserExists(new.username));
    }
    let t = now();
    diesel::insert_into(users::table)
        .values((
            users::username.eq(&new.username),
            users::email.eq(&new.email),
            users::role.eq(new.role.as_str()),
            users::password_hash.eq(&new.password_hash),
            users::created_at.eq(t),
            users::updated_at.eq(t),
        ))
        .execute(conn)?;
    let id = last_insert_id(conn)?;
    audit::append(
        conn,
        NewEvent::new(
            actor,
            "user.created",
            format!("user:{}", new.username),
            json!({ "role": new.role, "email": new.email }),
        ),
    )?;
    find_by_id(conn, id)?.ok_or_else(|| AuthError::UserNotFound(new.username))
}

/// All users, by name.
pub fn list(conn: &mut DbConn) -> Result<Vec<User>, AuthError> {
    Ok(users::table
        .order(users::username.asc())
        .select(UserRow::as_select())
        .load(conn)?
        .into_iter()
        .map(User::from)
        .collect())
}

/// How many users exist.
pub fn count(conn: &mut DbConn) -> Result<i64, AuthError> {
    Ok(users::table.count().get_result(conn)?)
}

/// The stored row for a username, if any.
pub fn find_row(conn: &mut DbConn, username: &str) -> Result<Option<UserRow>, AuthError> {
    Ok(users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// A user by name.
pub fn find(conn: &mut DbConn, username: &str) -> Result<Option<User>, AuthError> {
    Ok(find_row(conn, username)?.map(User::from))
}

/// A user by id.
pub fn find_by_id(conn: &mut DbConn, id: i64) -> Result<Option<User>, AuthError> {
    Ok(users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .map(User::from))
}

fn get(conn: &mut DbConn, username: &str) -> Result<User, AuthError> {
    find(conn, username)?.ok_or_else(|| AuthError::UserNotFound(username.to_string()))
}

fn active_admins(conn: &mut DbConn) -> Result<i64, AuthError> {
    Ok(users::table
        .filter(users::role.eq(Role::Admin.as_str()))
        .filter(users::disabled_at.is_null())
        .count()
        .get_result(conn)?)
}

/// Refuses a change that would leave no active admin, since nobody could then manage users.
fn keep_one_admin(conn: &mut DbConn, user: &User) -> Result<(), AuthError> {
    if user.role == Role::Admin && user.is_active() && active_admins(conn)? <= 1 {
        return Err(AuthError::Conflict(format!(
            "{} is the last active admin; make another admin first",
            user.username
        )));
    }
    Ok(())
}

/// Changes a user's role and records `user.role_changed`.
pub fn set_role(
    conn: &mut DbConn,
    actor: &Actor,
    username: &str,
    role: Role,
) -> Result<User, AuthError> {
    let user = get(conn, username)?;
    if user.role == role {
        return Ok(user);
    }
    if role != Role::Admin {
        keep_one_admin(conn, &user)?;
    }
    diesel::update(users::table.find(user.id))
        .set((users::role.eq(role.as_str()), users::updated_at.eq(now())))
        .execute(conn)?;
    audit::append(
        conn,
        NewEvent::new(
            actor,
            "user.role_changed",
            format!("user:{username}"),
            json!({ "from": user.role, "to": role }),
        ),
    )?;
    get(conn, username)
}

/// Disables or re-enables an account. Disabling ends its sessions at once; its API tokens
/// stop working because every request checks the owner is active.
pub fn set_disabled(
    conn: &mut DbConn,
    actor: &Actor,
    username: &str,
    disabled: bool,
) -> Result<User, AuthError> {
    let user = get(conn, username)?;
    if user.is_active() != disabled {
        return Ok(user);
    }
    if disabled {
        keep_one_admin(conn, &user)?;
        diesel::delete(sessions::table.filter(sessions::user_id.eq(user.id))).execute(conn)?;
    }
    let t = now();
    diesel::update(users::table.find(user.id))
        .set((
            users::disabled_at.eq(if disabled { Some(t) } else { None }),
            users::updated_at.eq(t),
        ))
        .execute(conn)?;
    audit::append(
        conn,
        NewEvent::new(
            actor,
            if disabled {
                "user.disabled"
            } else {
                "user.enabled"
            },
            format!("user:{username}"),
            json!({}),
        ),
    )?;
    get(conn, username)
}

/// Replaces a user's password hash, ends their console sessions, records `user.password_changed`.
pub fn set_password(
    conn: &mut DbConn,
    actor: &Actor,
    username: &str,
    password_hash: &str,
) -> Result<(), AuthError> {
    let user = get(conn, username)?;
    diesel::update(users::table.find(user.id))
        .set((
            users::password_hash.eq(password_hash),
            users::updated_at.eq(now()),
        ))
        .execute(conn)?;
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user.id))).execute(conn)?;
    audit::append(
        conn,
        NewEvent::new(
            actor,
            "user.password_changed",
            format!("user:{username}"),
            json!({}),
        ),
    )?;
    Ok(())
}

/// Changes a user's email address and records `user.updated`.
pub fn set_email(
    conn: &mut DbConn,
    actor: &Actor,
    username: &str,
    email: Option<String>,
) -> Result<User, AuthError> {
    let user = get(conn, username)?;
    if user.email == email {
        return Ok(user);
    }
    diesel::update(users::table.find(user.id))
        .set((users::email.eq(&email), users::updated_at.eq(now())))
        .execute(conn)?;
    audit::append(
        conn,
        NewEvent::new(
            actor,
            "user.updated",
            format!("user:{username}"),
            json!({ "email": { "from": user.email, "to": email } }),
        ),
    )?;
    get(conn, username)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalized_and_checked() {
        assert_eq!(normalize_username("  Alice.Smith ").unwrap(), "alice.smith");
        assert_eq!(
            normalize_username("soc@example.org").unwrap(),
            "soc@example.org"
        );
        assert!(normalize_username("").is_err());
        assert!(normalize_username("a b").is_err());
        assert!(normalize_username("robert'); drop").is_err());
        assert!(normalize_username(&"a".repeat(65)).is_err());
    }

    #[test]
    fn emails_are_checked() {
        assert_eq!(normalize_email(None).unwrap(), None);
        assert_eq!(normalize_email(Some(" ")).unwrap(), None);
        assert_eq!(
            normalize_email(Some("a@example.org")).unwrap().as_deref(),
            Some("a@example.org")
        );
        assert!(normalize_email(Some("nobody")).is_err());
        assert!(normalize_email(Some("a b@example.org")).is_err());
    }
}
