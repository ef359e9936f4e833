//! Connectors: how one system's patient data is deleted (an HTTP call) and shown to be gone
//! (a probe: an expected status, and optionally a JSON path that must select nothing). Both
//! are idempotent by design: a deletion answered 404 counts as done, so a step repeated
//! after a crash neither fails nor counts twice.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{ErasureSystem, Invalid};
use crate::crypto::json_path::JsonPath;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for connector calls, trusting the system roots when one of them is `https`.
pub fn client(https: bool) -> Result<HttpClient, Vec<Invalid>> {
    let tls = if https {
        crate::tls::ca_client_config(
            "erasure",
            None,
            "the https:// systems are verified against the system roots: install the host's CA bundle",
        )?
    } else {
        crate::tls::plaintext_only_client_config("erasure")?
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

struct Call {
    method: Method,
    url: String,
    headers: HeaderMap,
    timeout: Duration,
}

pub struct Connector {
    pub system: String,
    pub data_class: String,
    delete: Call,
    success: Vec<u16>,
    verify: Option<(Call, u16, Option<JsonPath>)>,
}

impl Connector {
    /// Whether one of its calls may go over TLS: any URL not plainly `http://`.
    pub fn uses_https(&self) -> bool {
        std::iter::once(&self.delete)
            .chain(self.verify.as_ref().map(|(call, ..)| call))
            .any(|call| !call.url.starts_with("http://"))
    }

    pub fn build(system: &str, config: &ErasureSystem) -> Result<Connector, Vec<Invalid>> {
        let key = format!("erasure.systems.{system}");
        let headers = |at: &str,
                       headers: &std::collections::BTreeMap<String, String>,
                       token: Option<&std::path::PathBuf>|
         -> Result<HeaderMap, Vec<Invalid>> {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) else {
                    return Err(vec![Invalid::new(
                        format!("{at}.headers.{name}"),
                        "not a valid header",
                    )]);
                };
                map.insert(name, value);
            }
            if let Some(path) = token {
                let token = crate::identity::read_secret(path, 8)
                    .map_err(|msg| vec![Invalid::new(format!("{at}.bearer_token_file"), msg)])?;
                let text = String::from_utf8_lossy(&token).trim().to_owned();
                let mut value = HeaderValue::from_str(&format!("Bearer {text}")).map_err(|_| {
                    vec![Invalid::new(
                        format!("{at}.bearer_token_file"),
                        "the token is not header-safe text",
                    )]
                })?;
                value.set_sensitive(true);
                map.insert(AUTHORIZATION, value);
            }
            Ok(map)
        };
        let check_url = |at: &str, url: &str| -> Result<(), Vec<Invalid>> {
            let sample = url.replace("{patient_id}", "p-1");
            match sample.parse::<http::Uri>() {
                Ok(uri) if uri.scheme().is_some() && uri.authority().is_some() => Ok(()),
                _ => Err(vec![Invalid::new(
                    format!("{at}.url"),
                    "an http:// or https:// URL; {patient_id} is replaced by the patient's id",
                )]),
            }
        };
        let delete_key = format!("{key}.delete");
        check_url(&delete_key, &config.delete.url)?;
        let delete = Call {
            method: config.delete.method.0.clone(),
            url: config.delete.url.clone(),
            headers: headers(
                &delete_key,
                &config.delete.headers,
                config.delete.bearer_token_file.as_ref(),
            )?,
            timeout: config.delete.timeout.0,
        };
        let verify = match &config.verify {
            None => None,
            Some(probe) => {
                let verify_key = format!("{key}.verify");
                check_url(&verify_key, &probe.url)?;
                let absent = probe
                    .absent
                    .as_deref()
                    .map(JsonPath::parse)
                    .transpose()
                    .map_err(|err| {
                        vec![Invalid::new(
                            format!("{verify_key}.absent"),
                            err.to_string(),
                        )]
                    })?;
                Some((
                    Call {
                        method: probe.method.0.clone(),
                        url: probe.url.clone(),
                        headers: headers(
                            &verify_key,
                            &probe.headers,
                            probe.bearer_token_file.as_ref(),
                        )?,
                        timeout: probe.timeout.0,
                    },
                    probe.expect_status,
                    absent,
                ))
            }
        };
        Ok(Connector {
            system: system.to_owned(),
            data_class: config.data_class.clone(),
            delete,
            success: config.delete.success_status.clone(),
            verify,
        })
    }

    pub fn has_probe(&self) -> bool {
        self.verify.is_some()
    }

    /// Deletes; `Ok(status)` when the system answered a success status.
    pub async fn delete(&self, client: &HttpClient, patient_id: &str) -> Result<u16, String> {
        let (status, _) = send(client, &self.delete, patient_id).await?;
        if self.success.contains(&status) {
            Ok(status)
        } else {
            Err(format!("the deletion was answered {status}"))
        }
    }

    /// Probes; `Ok(what was seen)` when the data is shown to be gone.
    pub async fn verify(&self, client: &HttpClient, patient_id: &str) -> Result<String, String> {
        let Some((call, expect, absent)) = &self.verify else {
            return Ok("no probe configured".to_owned());
        };
        let (status, body) = send(client, call, patient_id).await?;
        if status != *expect {
            return Err(format!(
                "the probe was answered {status}, expected {expect}"
            ));
        }
        if let Some(path) = absent {
            let value: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|_| "the probe's answer is not JSON".to_owned())?;
            if path.selects_in(&value) {
                return Err(format!("{path} is still present"));
            }
            return Ok(format!("{} {status}; {path} absent", call.method));
        }
        Ok(format!("{} {status}", call.method))
    }
}

/// Sends one call; the status and body, or why there is none (never the URL's secrets).
async fn send(client: &HttpClient, call: &Call, patient_id: &str) -> Result<(u16, Bytes), String> {
    let encoded: String =
        form_urlencoded::byte_serialize(patient_id.as_bytes()).collect::<String>();
    let url = call.url.replace("{patient_id}", &encoded);
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.method_mut() = call.method.clone();
    *request.uri_mut() = url.parse().map_err(|_| "invalid URL".to_owned())?;
    *request.headers_mut() = call.headers.clone();
    let response = tokio::time::timeout(call.timeout, client.request(request))
        .await
        .map_err(|_| format!("no answer within {:?}", call.timeout))?
        .map_err(|err| {
            if err.is_connect() {
                "the system refused the connection".to_owned()
            } else {
                "the connection failed mid-request".to_owned()
            }
        })?;
    let status = response.status().as_u16();
    let body = tokio::time::timeout(call.timeout, response.into_body().collect())
        .await
        .map_err(|_| "the answer's body did not arrive in time".to_owned())?
        .map_err(|_| "the answer's body could not be read".to_owned())?
        .to_bytes();
    Ok((status, body))
}
