//! A small client for the admin API of a running gateway (plain HTTP/1.1 to the admin
//! listener, bearer token from a file), for the `wardgate erasure` commands.

use std::path::Path;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid admin URL {0:?}: use http://host:port")]
    Url(String),
    #[error("cannot read the admin token: {0}")]
    Token(String),
    #[error("cannot reach the admin listener at {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("the admin listener at {0} did not answer properly")]
    Broken(String),
    /// The API refused: its status and message.
    #[error("{status}: {message}")]
    Refused { status: StatusCode, message: String },
}

pub struct AdminClient {
    authority: String,
    token: String,
}

impl AdminClient {
    pub fn new(url: &str, token_file: &Path) -> Result<AdminClient, ClientError> {
        let uri: http::Uri = url.parse().map_err(|_| ClientError::Url(url.to_owned()))?;
        let (Some("http"), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(ClientError::Url(url.to_owned()));
        };
        let token = crate::identity::read_secret(token_file, 16).map_err(ClientError::Token)?;
        Ok(AdminClient {
            authority: authority.to_string(),
            token: String::from_utf8_lossy(&token).trim().to_owned(),
        })
    }

    /// Sends a request; the response body when the status is a success.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<String, ClientError> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|err| ClientError::Connect(self.authority.clone(), err))?;
        let broken = || ClientError::Broken(self.authority.clone());
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| broken())?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.authority)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|_| broken())?;
        let response = sender.send_request(request).await.map_err(|_| broken())?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|_| broken())?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if status.is_success() {
            Ok(text)
        } else {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or(text);
            Err(ClientError::Refused { status, message })
        }
    }
}
