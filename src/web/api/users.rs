//! `/api/v1/users`: user management for admins.

use crate::auth::users::{self, NewUser};
use crate::auth::{password, AuthError, Permission, Role};
use crate::web::error::ApiError;
use crate::web::extract::Authenticated;
use crate::web::AppState;
use actix_web::{get, patch, post, web, HttpResponse};
use serde::Deserialize;

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(show)
        .service(update);
}

#[get("/users")]
async fn list(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageUsers)?;
    let all = state.db.read(users::list).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "users": all })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    username: String,
    password: String,
    role: Role,
    #[serde(default)]
    email: Option<String>,
}

#[post("/users")]
async fn create(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    body: web::Json<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageUsers)?;
    let body = body.into_inner();
    let username = users::normalize_username(&body.username)?;
    let email = users::normalize_email(body.email.as_deref())?;
    users::check_password("password", &body.password)?;
    let password_hash = hash_off_thread(body.password).await?;
    let actor = p.actor();
    let user = state
        .db
        .write(move |conn| {
            users::create(
                conn,
                &actor,
                NewUser {
                    username,
                    email,
                    role: body.role,
                    password_hash,
                },
            )
        })
        .await?;
    Ok(HttpResponse::Created().json(user))
}

#[get("/users/{username}")]
async fn show(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let username = path.into_inner();
    if p.user.username != username {
        p.require(Permission::ManageUsers)?;
    }
    let found = state
        .db
        .read({
            let username = username.clone();
            move |conn| users::find(conn, &username)
        })
        .await?
        .ok_or(AuthError::UserNotFound(username))?;
    Ok(HttpResponse::Ok().json(found))
}

/// Fields an admin may change; absent ones are left alone.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    role: Option<Role>,
    disabled: Option<bool>,
    #[serde(default, with = "double_option")]
    email: Option<Option<String>>,
    password: Option<String>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`) for clearable fields.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

#[patch("/users/{username}")]
async fn update(
    state: web::Data<AppState>,
    Authenticated(p): Authenticated,
    path: web::Path<String>,
    body: web::Json<UpdateUser>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageUsers)?;
    let username = path.into_inner();
    let body = body.into_inner();
    let email = match body.email {
        Some(e) => Some(users::normalize_email(e.as_deref())?),
        None => None,
    };
    let password_hash = match body.password {
        Some(pw) => {
            users::check_password("password", &pw)?;
            Some(hash_off_thread(pw).await?)
        }
        None => None,
    };
    let actor = p.actor();
    // One transaction: a refused part (say, demoting the last admin) leaves nothing changed.
    let user = state
        .db
        .write(move |conn| {
            let mut user = users::find(conn, &username)?
                .ok_or_else(|| AuthError::UserNotFound(username.clone()))?;
            if let Some(role) = body.role {
                user = users::set_role(conn, &actor, &username, role)?;
            }
            if let Some(disabled) = body.disabled {
                user = users::set_disabled(conn, &actor, &username, disabled)?;
            }
            if let Some(email) = email {
                user = users::set_email(conn, &actor, &username, email)?;
            }
            if let Some(hash) = password_hash {
                users::set_password(conn, &actor, &username, &hash)?;
            }
            Ok::<_, AuthError>(user)
        })
        .await?;
    Ok(HttpResponse::Ok().json(user))
}

/// argon2 takes tens of milliseconds; keep it off the async workers.
pub async fn hash_off_thread(password: String) -> Result<String, ApiError> {
    web::block(move || password::hash(&password))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::from(AuthError::Hash(e.to_string())))
}
