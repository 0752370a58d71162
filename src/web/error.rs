//! The one place module errors become HTTP statuses. API errors are JSON
//! `{"error": {"code", "message"}}`; console pages render the same error as HTML.

use crate::approvals::ApprovalError;
use crate::audit::AuditError;
use crate::auth::AuthError;
use crate::cases::CaseError;
use crate::db::DbError;
use crate::ingest::IngestError;
use crate::playbooks::engine::EngineError;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError, UrlencodedError};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

/// An error on its way to an HTTP client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable snake_case kind for programs.
    pub code: &'static str,
    /// A sentence for people that names the problem.
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
    /// Structured detail, such as which events of a batch were refused.
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            details: None,
        }
    }

    /// 400: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500, with the cause logged but not shown.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// The same error with another message.
    pub fn with_message(mut self, message: impl Into<String>) -> ApiError {
        self.message = message.into();
        self
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        match &self.details {
            Some(details) => {
                json!({ "error": { "code": self.code, "message": self.message, "details": details } })
            }
            None => json!({ "error": { "code": self.code, "message": self.message } }),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"tocsin\""));
        }
        response.json(self.body())
    }
}

impl ApiError {
    /// `503` with `Retry-After`: the database cannot be reached just now.
    pub fn database_unavailable() -> ApiError {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is unavailable; retry shortly",
        );
        e.retry_after = Some(5);
        e
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> ApiError {
        match err {
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::database_unavailable()
            }
            DbError::Query(diesel::result::Error::NotFound) => ApiError::not_found("not found"),
            other => ApiError::internal(&other),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(err: AuditError) -> ApiError {
        match err {
            AuditError::Db(db) => db.into(),
            AuditError::BadTime { .. } => ApiError::bad_request(err.to_string()),
            other => ApiError::internal(&other),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> ApiError {
        use StatusCode as S;
        let message = err.to_string();
        match err {
            AuthError::Unauthenticated => {
                ApiError::new(S::UNAUTHORIZED, "unauthenticated", message)
            }
            AuthError::InvalidCredentials => {
                ApiError::new(S::UNAUTHORIZED, "invalid_credentials", message)
            }
            AuthError::Forbidden { .. } => ApiError::new(S::FORBIDDEN, "forbidden", message),
            AuthError::Csrf => ApiError::new(S::FORBIDDEN, "csrf", message),
            AuthError::Throttled { retry_after_secs } => {
                let mut e = ApiError::new(S::TOO_MANY_REQUESTS, "throttled", message);
                e.retry_after = Some(retry_after_secs);
                e
            }
            AuthError::UserExists(_) => ApiError::new(S::CONFLICT, "conflict", message),
            AuthError::Conflict(_) => ApiError::new(S::CONFLICT, "conflict", message),
            AuthError::UserNotFound(_) | AuthError::TokenNotFound(_) => {
                ApiError::not_found(message)
            }
            AuthError::InvalidInput { .. } => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid", message)
            }
            AuthError::SetupLinkInvalid => ApiError::new(S::GONE, "setup_link_invalid", message),
            AuthError::Hash(_) => ApiError::internal(&message),
            AuthError::Db(db) => db.into(),
            AuthError::Audit(a) => a.into(),
        }
    }
}

impl From<CaseError> for ApiError {
    fn from(err: CaseError) -> ApiError {
        use StatusCode as S;
        let message = err.to_string();
        match err {
            CaseError::NotFound(_) | CaseError::AlertNotFound(_) => ApiError::not_found(message),
            CaseError::Invalid { .. } => ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid", message),
            CaseError::Conflict(_) => ApiError::new(S::CONFLICT, "conflict", message),
            CaseError::Db(db) => db.into(),
            CaseError::Audit(a) => a.into(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> ApiError {
        use StatusCode as S;
        let message = err.to_string();
        match err {
            EngineError::RunNotFound(_) | EngineError::PlaybookNotFound(_) => {
                ApiError::not_found(message)
            }
            EngineError::Invalid { .. } => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid", message)
            }
            EngineError::Conflict(_) | EngineError::LeaseLost(_) => {
                ApiError::new(S::CONFLICT, "conflict", message)
            }
            EngineError::Internal(_) => ApiError::internal(&message),
            EngineError::Db(db) => db.into(),
            EngineError::Audit(a) => a.into(),
            EngineError::Approval(a) => a.into(),
            EngineError::Case(c) => c.into(),
            EngineError::PlaybookDisabled(_) => {
                ApiError::new(S::CONFLICT, "playbook_disabled", message)
            }
        }
    }
}

impl From<ApprovalError> for ApiError {
    fn from(err: ApprovalError) -> ApiError {
        use StatusCode as S;
        let message = err.to_string();
        match err {
            ApprovalError::NotFound(_) => ApiError::not_found(message),
            ApprovalError::AlreadySettled { .. }
            | ApprovalError::AlreadyDecided(_)
            | ApprovalError::LinkSpent => ApiError::new(S::CONFLICT, "already_decided", message),
            ApprovalError::DeadlinePassed(_) => {
                ApiError::new(S::CONFLICT, "deadline_passed", message)
            }
            ApprovalError::NotAllowed(_) => ApiError::new(S::FORBIDDEN, "forbidden", message),
            ApprovalError::CommentRequired => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid", message)
            }
            ApprovalError::Db(db) => db.into(),
            ApprovalError::Audit(a) => a.into(),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> ApiError {
        use StatusCode as S;
        let message = err.to_string();
        match err {
            IngestError::Unauthorized => ApiError::new(S::UNAUTHORIZED, "unauthenticated", message),
            IngestError::SourceNotFound(_) => ApiError::not_found(message),
            IngestError::SourceDisabled(_) => {
                ApiError::new(S::FORBIDDEN, "source_disabled", message)
            }
            IngestError::BadSignature => ApiError::new(S::FORBIDDEN, "bad_signature", message),
            IngestError::Body { .. } => ApiError::bad_request(message),
            IngestError::Rejected { entries, .. } => {
                let mut e = ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid", message);
                e.details = Some(json!({ "entries": entries }));
                e
            }
            IngestError::Invalid { .. } => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid", message)
            }
            IngestError::Conflict(_) => ApiError::new(S::CONFLICT, "conflict", message),
            IngestError::Overloaded => {
                let mut e = ApiError::new(S::SERVICE_UNAVAILABLE, "overloaded", message);
                e.retry_after = Some(1);
                e
            }
            IngestError::Internal(_) => ApiError::internal(&message),
            IngestError::Db(db) => db.into(),
            IngestError::Audit(a) => a.into(),
            IngestError::Case(c) => c.into(),
        }
    }
}

/// Turns body-parsing failures into errors that name the problem.
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::OverflowKnownLength { length, limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request body of {length} bytes is over the limit of {limit} bytes"),
        ),
        JsonPayloadError::Overflow { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request body is over the limit of {limit} bytes"),
        ),
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("invalid request body: {e}"),
        ),
        JsonPayloadError::Deserialize(e) => ApiError::bad_request(format!("malformed JSON: {e}")),
        other => ApiError::bad_request(format!("cannot read request body: {other}")),
    };
    api.into()
}

/// Path-segment parsing failures.
pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("invalid path parameter: {err}")).into()
}

/// Query-string parsing failures.
pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("invalid query string: {err}")).into()
}

/// Form-body failures on console pages.
pub fn form_error(err: UrlencodedError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        UrlencodedError::Overflow { size, limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("form of {size} bytes is over the limit of {limit} bytes"),
        ),
        other => ApiError::bad_request(format!("invalid form: {other}")),
    };
    api.into()
}
