//! Every way a stage can end a request early, and the one place where each becomes a status
//! code and a JSON body. The `match`es have no `_` arm: a new variant must be given a status.

use http::{header, HeaderValue, Response, StatusCode};

use super::normalize::PathError;
use crate::config::ValueFrom;
use crate::identity::AuthError;
use crate::proxy::body::{full, ProxyBody};
use crate::proxy::upstream::UpstreamError;
use crate::ratelimit::Limited;

#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("invalid request path: {0}")]
    BadPath(#[from] PathError),
    #[error("no route matches the request")]
    NoRoute,
    #[error("the route does not accept this method")]
    MethodNotAllowed { allow: HeaderValue },
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("the request is not allowed by the route's CORS policy")]
    CorsDenied,
    #[error(transparent)]
    Upstream(UpstreamError),
    #[error("{}", .0.public_message())]
    Unauthenticated(AuthError),
    #[error("access denied")]
    Forbidden,
    #[error("a break-glass reason must be at least {min} characters")]
    BreakGlassReason { min: usize },
    #[error("the audit trail is unavailable; try again shortly")]
    AuditUnavailable,
    #[error("the request does not name the {what} ({} {name})", from_name(*.from))]
    MissingScope {
        what: &'static str,
        from: ValueFrom,
        name: String,
    },
    /// A body the field rules cannot apply to safely: the reason names what and where.
    #[error("invalid request body: {0}")]
    BadBody(String),
    #[error("unsupported request body: {0}")]
    UnsupportedBody(String),
    /// The patient's data key was destroyed (erasure): nothing new is stored for them.
    #[error("this patient's data has been erased")]
    PatientErased,
    #[error("field protection is unavailable; try again shortly")]
    KeysUnavailable,
    /// The upstream's response on a protected route could not be checked (the specific
    /// reason is logged): it is not released.
    #[error("the upstream response could not be processed")]
    UnprocessableResponse(&'static str),
    #[error("rate limit exceeded ({}); retry in {}s", .0.policy, retry_secs(.0.retry_after))]
    RateLimited(Limited),
    /// Too many requests in progress (`scope`: global or upstream): shed before the backend.
    #[error("the service is overloaded; retry shortly")]
    Overloaded(&'static str),
    #[error("the request body stopped arriving")]
    BodyTimeout,
}

/// Whole seconds to wait, rounded up (a client retrying early would be refused again).
fn retry_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

fn from_name(from: ValueFrom) -> &'static str {
    match from {
        ValueFrom::Path => "path parameter",
        ValueFrom::Query => "query parameter",
        ValueFrom::Header => "header from a service account",
    }
}

impl From<UpstreamError> for Rejection {
    fn from(err: UpstreamError) -> Self {
        match err {
            UpstreamError::RequestBodyTooLarge { limit } => Rejection::BodyTooLarge { limit },
            UpstreamError::RequestBodyTimeout => Rejection::BodyTimeout,
            UpstreamError::Overloaded => Rejection::Overloaded("upstream"),
            other => Rejection::Upstream(other),
        }
    }
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::BadPath(_) => StatusCode::BAD_REQUEST,
            Rejection::NoRoute => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::CorsDenied => StatusCode::FORBIDDEN,
            Rejection::Upstream(err) => match err {
                UpstreamError::ConnectTimeout | UpstreamError::ResponseTimeout => {
                    StatusCode::GATEWAY_TIMEOUT
                }
                UpstreamError::Connect | UpstreamError::Broken => StatusCode::BAD_GATEWAY,
                UpstreamError::RequestBodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                UpstreamError::RequestBodyTimeout => StatusCode::REQUEST_TIMEOUT,
                UpstreamError::Overloaded | UpstreamError::OutOfFiles => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            },
            Rejection::BadBody(_) => StatusCode::BAD_REQUEST,
            Rejection::UnsupportedBody(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::PatientErased => StatusCode::GONE,
            Rejection::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::UnprocessableResponse(_) => StatusCode::BAD_GATEWAY,
            Rejection::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Rejection::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Rejection::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Rejection::Forbidden | Rejection::BreakGlassReason { .. } => StatusCode::FORBIDDEN,
            Rejection::MissingScope { .. } => StatusCode::BAD_REQUEST,
            Rejection::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The audit record's decision for a request this ended.
    pub fn outcome(&self) -> &'static str {
        match self {
            Rejection::BadPath(_)
            | Rejection::BodyTooLarge { .. }
            | Rejection::MissingScope { .. }
            | Rejection::BadBody(_)
            | Rejection::UnsupportedBody(_)
            | Rejection::PatientErased
            | Rejection::BodyTimeout => "rejected",
            Rejection::RateLimited(_) => "rate_limited",
            Rejection::NoRoute | Rejection::MethodNotAllowed { .. } => "unmatched",
            Rejection::CorsDenied | Rejection::Forbidden | Rejection::BreakGlassReason { .. } => {
                "deny"
            }
            Rejection::Unauthenticated(_) => "unauthenticated",
            // Authorized, then the upstream failed: the status tells.
            Rejection::Upstream(_) | Rejection::UnprocessableResponse(_) => "allow",
            Rejection::AuditUnavailable | Rejection::KeysUnavailable | Rejection::Overloaded(_) => {
                "unavailable"
            }
        }
    }

    /// A short stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::BadPath(err) => err.kind(),
            Rejection::NoRoute => "no_route",
            Rejection::MethodNotAllowed { .. } => "method_not_allowed",
            Rejection::BodyTooLarge { .. } => "body_too_large",
            Rejection::CorsDenied => "cors_denied",
            Rejection::Upstream(err) => err.kind(),
            Rejection::Unauthenticated(_) => "unauthenticated",
            Rejection::Forbidden => "forbidden",
            Rejection::BreakGlassReason { .. } => "break_glass_reason",
            Rejection::MissingScope { .. } => "missing_scope",
            Rejection::AuditUnavailable => "audit_unavailable",
            Rejection::BadBody(_) => "bad_body",
            Rejection::UnsupportedBody(_) => "unsupported_body",
            Rejection::PatientErased => "patient_erased",
            Rejection::KeysUnavailable => "keys_unavailable",
            Rejection::UnprocessableResponse(reason) => reason,
            Rejection::RateLimited(_) => "rate_limited",
            Rejection::Overloaded(_) => "shed",
            Rejection::BodyTimeout => "body_timeout",
        }
    }

    /// What the client is told: specific about its own request, silent about internals
    /// (no upstream address, no error chain).
    fn public_message(&self) -> String {
        match self {
            Rejection::Upstream(UpstreamError::ConnectTimeout | UpstreamError::ResponseTimeout) => {
                "the upstream service did not answer in time".to_owned()
            }
            Rejection::Upstream(_) => "the upstream service is unavailable".to_owned(),
            Rejection::BadPath(_)
            | Rejection::NoRoute
            | Rejection::MethodNotAllowed { .. }
            | Rejection::BodyTooLarge { .. }
            | Rejection::CorsDenied
            | Rejection::Unauthenticated(_)
            | Rejection::Forbidden
            | Rejection::BreakGlassReason { .. }
            | Rejection::MissingScope { .. }
            | Rejection::AuditUnavailable
            | Rejection::BadBody(_)
            | Rejection::UnsupportedBody(_)
            | Rejection::PatientErased
            | Rejection::KeysUnavailable
            | Rejection::UnprocessableResponse(_)
            | Rejection::RateLimited(_)
            | Rejection::Overloaded(_)
            | Rejection::BodyTimeout => self.to_string(),
        }
    }

    pub fn into_response(self, request_id: &HeaderValue) -> Response<ProxyBody> {
        let mut response = error_response(self.status(), &self.public_message(), request_id);
        match self {
            Rejection::MethodNotAllowed { allow } => {
                response.headers_mut().insert(header::ALLOW, allow);
            }
            Rejection::Unauthenticated(err) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(err.challenge()),
                );
            }
            Rejection::RateLimited(limited) => {
                // RFC 9110 Retry-After, and the IETF httpapi draft's RateLimit-Policy and
                // RateLimit fields (structured: the policy, its quota and window; what remains
                // and when it resets).
                let wait = retry_secs(limited.retry_after);
                let headers = response.headers_mut();
                headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
                let policy = format!(
                    "\"{}\";q={};w={}",
                    limited.policy, limited.quota, limited.window_secs
                );
                let state = format!("\"{}\";r=0;t={wait}", limited.policy);
                for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
                    if let Ok(value) = HeaderValue::from_str(&value) {
                        headers.insert(name, value);
                    }
                }
            }
            Rejection::Overloaded(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Rejection::BodyTimeout => {
                // The rest of the body may still trickle in: the connection cannot be reused.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// A gateway-made JSON error: `{"error": "...", "request_id": "..."}`.
pub fn error_response(
    status: StatusCode,
    message: &str,
    request_id: &HeaderValue,
) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "error": message,
        "request_id": request_id.to_str().unwrap_or_default(),
    });
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_descriptors_is_a_503_that_says_nothing_of_the_gateways_files() {
        let rejection = Rejection::from(UpstreamError::OutOfFiles);
        assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(rejection.outcome(), "allow");
        assert_eq!(rejection.kind(), "out_of_files");
        assert_eq!(
            rejection.public_message(),
            "the upstream service is unavailable"
        );
    }
}
