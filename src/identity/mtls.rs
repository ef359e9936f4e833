//! Client certificates as identities for service accounts. The TLS layer has already verified
//! the certificate against `server.tls.client_ca`; here its subject common name or a DNS name
//! is looked up among the configured service accounts.

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

use super::principal::{AuthMethod, Principal};
use crate::config::MtlsIdentity;

pub struct ServiceAccounts {
    accounts: Vec<MtlsIdentity>,
}

impl ServiceAccounts {
    pub fn new(accounts: Vec<MtlsIdentity>) -> Self {
        ServiceAccounts { accounts }
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// The principal of a verified certificate, if it is a configured service account.
    pub fn principal(&self, cert: &CertificateDer<'_>) -> Option<Principal> {
        let names = certificate_names(cert);
        let account = self
            .accounts
            .iter()
            .find(|account| names.contains(&account.name))?;
        Some(Principal {
            subject: account
                .subject
                .clone()
                .unwrap_or_else(|| account.name.clone()),
            roles: account.roles.clone(),
            department: account.department.clone(),
            patient_id: None,
            name: None,
            method: AuthMethod::Mtls,
        })
    }
}

/// The subject common names and DNS subject-alternative names of a certificate.
fn certificate_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = parsed
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    names
}
