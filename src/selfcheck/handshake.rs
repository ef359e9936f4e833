//! A real TLS handshake against the running listener, once per protocol version, to see what
//! it negotiates. The probe pins the certificate the config names (it inspects our own
//! listener, so the presented certificate must be exactly that one) and checks handshake
//! signatures with the crypto provider's algorithms.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

#[derive(Debug)]
struct Pinned {
    leaf: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the listener presents another certificate than the one configured".to_owned(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// For TLS 1.3 and 1.2: the suite negotiated, or why the handshake failed.
pub async fn probe(
    addr: SocketAddr,
    leaf: CertificateDer<'static>,
) -> Vec<(&'static str, Result<String, String>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut results = Vec::new();
    for (name, version) in [
        ("TLS 1.3", &rustls::version::TLS13),
        ("TLS 1.2", &rustls::version::TLS12),
    ] {
        let result = async {
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[version])
                .map_err(|err| err.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    leaf: leaf.clone(),
                    provider: provider.clone(),
                }))
                .with_no_client_auth();
            let tcp = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            .map_err(|_| "no answer within 5s".to_owned())?
            .map_err(|err| err.to_string())?;
            let name = ServerName::try_from("localhost").map_err(|err| err.to_string())?;
            let tls = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
            )
            .await
            .map_err(|_| "the handshake did not finish within 5s".to_owned())?
            .map_err(|err| err.to_string())?;
            let suite = tls
                .get_ref()
                .1
                .negotiated_cipher_suite()
                .map(|suite| format!("{:?}", suite.suite()))
                .unwrap_or_default();
            Ok::<_, String>(suite)
        }
        .await;
        results.push((name, result));
    }
    results
}
