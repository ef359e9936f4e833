//! Why a request could not be authenticated. The reason is specific for logs, metrics and the
//! audit trail; the client only learns "missing" or "invalid" (RFC 6750).

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials were presented")]
    Missing,
    #[error("the Authorization header is not a bearer token")]
    NotBearer,
    #[error("the token is larger than the configured maximum")]
    TooLarge,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is none")]
    AlgorithmNone,
    #[error("the token's algorithm {0} is not accepted")]
    AlgorithmNotAccepted(String),
    #[error("the token header carries {0}, which is refused")]
    ForbiddenHeader(&'static str),
    #[error("no key matches the token's key id")]
    UnknownKey,
    #[error("the token's algorithm does not match its key")]
    AlgorithmMismatch,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    #[error("the token's audience is not accepted")]
    WrongAudience,
    #[error("the token lacks the claim {0}")]
    MissingClaim(String),
    #[error("the token's claim {0} is not a plain value")]
    BadClaim(String),
    #[error("no signing keys are available")]
    KeysUnavailable,
}

impl AuthError {
    /// The `reason` label of `wardgate_authn_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::NotBearer => "not_bearer",
            AuthError::TooLarge => "too_large",
            AuthError::Malformed => "malformed",
            AuthError::AlgorithmNone => "alg_none",
            AuthError::AlgorithmNotAccepted(_) => "algorithm_not_accepted",
            AuthError::ForbiddenHeader(_) => "forbidden_header",
            AuthError::UnknownKey => "unknown_key",
            AuthError::AlgorithmMismatch => "algorithm_mismatch",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::BadClaim(_) => "bad_claim",
            AuthError::KeysUnavailable => "keys_unavailable",
        }
    }

    /// The `WWW-Authenticate` challenge: no error code when nothing was sent, `invalid_token`
    /// for anything presented and refused.
    pub fn challenge(&self) -> &'static str {
        match self {
            AuthError::Missing => r#"Bearer realm="wardgate""#,
            _ => r#"Bearer realm="wardgate", error="invalid_token""#,
        }
    }

    /// What the client is told.
    pub fn public_message(&self) -> &'static str {
        match self {
            AuthError::Missing => "authentication required",
            _ => "invalid or expired credentials",
        }
    }
}
