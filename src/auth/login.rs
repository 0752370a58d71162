//! The password login flow: throttle, verify off the async workers, then start a session
//! and audit the outcome (success or failure) in one transaction.

use super::sessions::{self, NewSession};
use super::throttle::LoginThrottle;
use super::users::{self, User, UserRow};
use super::{password, AuthError};
use crate::audit::{self, Actor, NewEvent};
use crate::db::schema::users as users_table;
use crate::db::{now, Db, DbError};
use chrono::Duration;
use diesel::prelude::*;
use serde_json::json;

/// Where a login attempt came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Tries a username and password; on success returns the user and a new session.
/// Every outcome, including throttling, is audited.
pub async fn login(
    db: &Db,
    throttle: &LoginThrottle,
    username: &str,
    password: String,
    origin: Origin,
    lifetime: Duration,
) -> Result<(User, NewSession), AuthError> {
    let attempted = username.trim().to_lowercase();
    let address = origin.ip.clone().unwrap_or_default();
    if let Err(err) = throttle.check(&address, &attempted) {
        let details =
            json!({ "username": attempted, "ip": origin.ip, "user_agent": origin.user_agent });
        db.write(move |conn| {
            audit::append(
                conn,
                NewEvent::new(
                    &Actor::system("login"),
                    "auth.login_throttled",
                    format!("user:{attempted}"),
                    details,
                ),
            )
        })
        .await?;
        return Err(err);
    }

    let lookup_name = users::normalize_username(&attempted).ok();
    let row: Option<UserRow> = match lookup_name.clone() {
        Some(name) => db.read(move |conn| users::find_row(conn, &name)).await?,
        None => None,
    };
    let stored_hash = row.as_ref().map(|r| r.password_hash.clone());
    let password_ok = tokio::task::spawn_blocking(move || match stored_hash {
        Some(hash) => password::verify(&hash, &password),
        None => {
            password::verify_dummy(&password);
            false
        }
    })
    .await
    .map_err(|e| AuthError::Db(DbError::Task(e.to_string())))?;

    let failure = match &row {
        None => Some("unknown_user"),
        Some(_) if !password_ok => Some("wrong_password"),
        Some(r) if r.disabled_at.is_some() => Some("disabled_user"),
        Some(_) => None,
    };
    let ip = origin.ip.clone();
    let user_agent = origin.user_agent.clone();
    match (failure, row) {
        (None, Some(row)) => {
            let user = User::from(row);
            db.write(move |conn| {
                let session =
                    sessions::create(conn, &user, lifetime, ip.as_deref(), user_agent.as_deref())?;
                diesel::update(users_table::table.find(user.id))
                    .set(users_table::last_login_at.eq(now()))
                    .execute(conn)?;
                audit::append(
                    conn,
                    NewEvent::new(
                        &Actor::user(&user.username),
                        "auth.login",
                        format!("user:{}", user.username),
                        json!({ "ip": ip, "user_agent": user_agent, "method": "password" }),
                    ),
                )?;
                Ok::<_, AuthError>((user, session))
            })
            .await
        }
        (reason, _) => {
            let reason = reason.unwrap_or("unknown_user");
            db.write(move |conn| {
                audit::append(
                    conn,
                    NewEvent::new(
                        &Actor::system("login"),
                        "auth.login_failed",
                        format!("user:{attempted}"),
                        json!({ "username": attempted, "reason": reason, "ip": ip, "user_agent": user_agent }),
                    ),
                )
            })
            .await?;
            Err(AuthError::InvalidCredentials)
        }
    }
}

/// Ends a session and records `auth.logout`.
pub async fn logout(db: &Db, cookie_value: String, user: &User) -> Result<(), AuthError> {
    let username = user.username.clone();
    db.write(move |conn| {
        if sessions::delete(conn, &cookie_value)? {
            audit::append(
                conn,
                NewEvent::new(
                    &Actor::user(&username),
                    "auth.logout",
                    format!("user:{username}"),
                    json!({}),
                ),
            )?;
        }
        Ok(())
    })
    .await
}
