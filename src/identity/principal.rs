//! The Principal: who is calling, as every later stage sees it. Its `Debug` leaves out the
//! patient id, so a principal can be logged without leaking patient data.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A JWT bearer token.
    Jwt,
    /// A verified client certificate (service accounts).
    Mtls,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Jwt => "jwt",
            AuthMethod::Mtls => "mtls",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub roles: Vec<String>,
    pub department: Option<String>,
    /// Set for patients: the patient id they are.
    pub patient_id: Option<String>,
    pub name: Option<String>,
    pub method: AuthMethod,
}

impl Principal {
    /// Service accounts (mTLS) are the only callers whose headers may name a patient.
    pub fn is_service(&self) -> bool {
        self.method == AuthMethod::Mtls
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.subject)
            .field("roles", &self.roles)
            .field("department", &self.department)
            .field(
                "patient_id",
                &self.patient_id.as_ref().map(|_| "<redacted>"),
            )
            .field("method", &self.method)
            .finish()
    }
}

/// Values that go into headers and logs must be plain visible ASCII of sane length; a token
/// whose claims are not is refused rather than mangled.
pub fn is_plain_value(value: &str) -> bool {
    !value.is_empty() && value.len() <= 256 && value.bytes().all(|b| (0x21..0x7f).contains(&b))
}
