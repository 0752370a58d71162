//! What every console page shares: the signed-in user (or a redirect to sign in), the
//! role check rendered as a page, the form CSRF check, and the layout's context.

use super::Pages;
use crate::auth::sessions::ActiveSession;
use crate::auth::{secrets_equal, AuthError, Permission};
use crate::web::error::ApiError;
use crate::web::extract::MaybeSession;
use crate::web::AppState;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;

/// A console request from a signed-in user; without a session the request is answered
/// with a redirect to the sign-in page that comes back here.
pub struct SignedIn(pub ActiveSession);

impl FromRequest for SignedIn {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let maybe = MaybeSession::from_request(req, payload);
        let next = return_path(req);
        Box::pin(async move {
            match maybe.await {
                Ok(MaybeSession(Some(session))) => Ok(SignedIn(session)),
                Ok(MaybeSession(None)) => Err(actix_web::error::InternalError::from_response(
                    "sign-in required",
                    to_login(&next),
                )
                .into()),
                Err(err) => Err(err.into()),
            }
        })
    }
}

/// Where to come back to after signing in: this page for GETs, else the home page (a
/// form POST cannot be replayed after a redirect).
fn return_path(req: &HttpRequest) -> String {
    if req.method() == actix_web::http::Method::GET {
        req.uri()
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string())
    } else {
        "/".to_string()
    }
}

/// A redirect to the sign-in page that returns to `next` (a local path).
pub fn to_login(next: &str) -> HttpResponse {
    if next == "/" {
        return see_other("/login");
    }
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    see_other(&format!("/login?next={next}"))
}

/// A 303 to a local path, the answer to every successful console form.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

impl SignedIn {
    /// The session's user may do `permission`, or the 403 page saying what is missing.
    pub fn require(&self, pages: &Pages, permission: Permission) -> actix_web::Result<()> {
        if self.0.user.role.allows(permission) {
            Ok(())
        } else {
            let err = AuthError::Forbidden {
                role: self.0.user.role,
                permission: permission.name(),
            };
            Err(fail(pages, err))
        }
    }

    /// A submitted form's CSRF token is the session's, or the 403 page.
    pub fn check_csrf(&self, pages: &Pages, submitted: &str) -> actix_web::Result<()> {
        if secrets_equal(submitted, &self.0.csrf_token) {
            Ok(())
        } else {
            Err(fail(pages, AuthError::Csrf))
        }
    }

    /// The layout's part of a page's context: who is signed in, what they may do, which
    /// section is open.
    pub fn layout(&self, section: &'static str) -> Layout<'_> {
        let role = self.0.user.role;
        Layout {
            user: &self.0.user,
            csrf_token: &self.0.csrf_token,
            section,
            can: Can {
                work: role.allows(Permission::WorkCases),
                approve: role.allows(Permission::ApproveContainment),
                audit: role.allows(Permission::ReadAudit),
                admin: role.allows(Permission::Administer),
            },
        }
    }
}

/// The context every signed-in page's layout reads (`base.html`).
#[derive(Serialize)]
pub struct Layout<'a> {
    pub user: &'a crate::auth::users::User,
    pub csrf_token: &'a str,
    /// The navigation entry to mark as current.
    pub section: &'static str,
    pub can: Can,
}

/// What the signed-in role may do, so templates show only what would be allowed (the
/// handlers check again: hiding a button is not the control).
#[derive(Serialize, Clone, Copy)]
pub struct Can {
    pub work: bool,
    pub approve: bool,
    pub audit: bool,
    pub admin: bool,
}

/// Renders `template` with the layout context merged under the page's own values.
pub fn render(
    state: &AppState,
    session: &SignedIn,
    section: &'static str,
    template: &str,
    ctx: minijinja::Value,
) -> HttpResponse {
    render_status(
        state,
        session,
        section,
        actix_web::http::StatusCode::OK,
        template,
        ctx,
    )
}

/// As [`render`], with a status other than 200 (a form sent back with its error).
pub fn render_status(
    state: &AppState,
    session: &SignedIn,
    section: &'static str,
    status: actix_web::http::StatusCode,
    template: &str,
    ctx: minijinja::Value,
) -> HttpResponse {
    let layout = minijinja::Value::from_serialize(session.layout(section));
    let merged = minijinja::context! { ..ctx, ..layout };
    state.pages.render(status, template, merged)
}

/// A domain error as the error page, ready to return with `?` from a handler whose
/// result is `actix_web::Result<HttpResponse>`.
pub fn fail(pages: &Pages, err: impl Into<ApiError>) -> actix_web::Error {
    let err: ApiError = err.into();
    let page = pages.error(&err);
    actix_web::error::InternalError::from_response(err.message, page).into()
}
