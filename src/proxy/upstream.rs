//! Upstreams: one client per configured backend, over plain HTTP or verified TLS (optionally
//! mTLS): HTTP/1.1 through the project's connection pool (`pool.rs`, a bounded number of
//! connections), HTTP/2 through hyper-util's client (one multiplexed connection). Connect and
//! response timeouts, and failures sorted into the kinds operations act on (refused, timed
//! out, broken).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, HOST};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::body::{streaming, BodyTimeout, BodyTooLarge, ProxyBody};
use super::pool::{Connector, Http1Pool, PoolError};
use crate::config::{Invalid, UpstreamConfig};

/// Why an upstream call failed; each maps to a status in one place (`pipeline::rejection`).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream refused or dropped the connection")]
    Connect,
    /// Not the upstream's fault: the gateway could not open a socket.
    #[error("no file descriptor left to connect to the upstream (the open-files limit)")]
    OutOfFiles,
    #[error("connecting to the upstream timed out")]
    ConnectTimeout,
    #[error("the upstream did not answer in time")]
    ResponseTimeout,
    #[error("the upstream closed or reset the connection mid-request")]
    Broken,
    #[error("the request body is larger than {limit} bytes")]
    RequestBodyTooLarge { limit: u64 },
    #[error("the client stopped sending the request body")]
    RequestBodyTimeout,
    #[error("too many requests in progress to the upstream")]
    Overloaded,
}

impl UpstreamError {
    /// The `kind` label of `wardgate_upstream_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::OutOfFiles => "out_of_files",
            UpstreamError::ConnectTimeout => "connect_timeout",
            UpstreamError::ResponseTimeout => "response_timeout",
            UpstreamError::Broken => "broken",
            UpstreamError::RequestBodyTooLarge { .. } => "request_body_too_large",
            UpstreamError::RequestBodyTimeout => "request_body_timeout",
            UpstreamError::Overloaded => "overloaded",
        }
    }
}

pub struct Upstream {
    pub name: String,
    scheme: Scheme,
    authority: Authority,
    /// `Host` for HTTP/1.1: the authority without the scheme's default port.
    host: HeaderValue,
    /// Prepended to the canonical request path; empty or without a trailing `/`.
    path_prefix: String,
    response_timeout: Duration,
    transport: Transport,
    /// Requests in progress to this upstream, at most `max_in_flight`.
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl Upstream {
    pub fn build(name: &str, config: &UpstreamConfig) -> Result<Upstream, Vec<Invalid>> {
        let key = format!("upstreams.{name}");
        let uri: Uri = config.url.parse().map_err(|err| {
            vec![Invalid::new(
                format!("{key}.url"),
                format!("invalid URL: {err}"),
            )]
        })?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(vec![Invalid::new(
                format!("{key}.url"),
                "the URL needs a scheme and a host",
            )]);
        };
        let host = host_header(&uri).ok_or_else(|| {
            vec![Invalid::new(
                format!("{key}.url"),
                "the host is not valid in a Host header",
            )]
        })?;
        let tls = if scheme == Scheme::HTTPS {
            crate::tls::upstream_client_config(&format!("{key}.tls"), config.tls.as_ref())?
        } else {
            crate::tls::plaintext_only_client_config(&key)?
        };

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout.0));
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let builder = match config.tls.as_ref().and_then(|tls| tls.server_name.clone()) {
            Some(server_name) => {
                let name = rustls::pki_types::ServerName::try_from(server_name).map_err(|_| {
                    vec![Invalid::new(
                        format!("{key}.tls.server_name"),
                        "not a valid DNS name or IP address",
                    )]
                })?;
                builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let pool = &config.pool;
        let transport = if config.http2 {
            let connector = builder.enable_all_versions().wrap_connector(http);
            let client = Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(pool.idle_timeout.0)
                .pool_max_idle_per_host(pool.max_idle_per_host)
                .http2_only(true)
                .build(connector);
            Transport::Http2(Box::new(client))
        } else {
            let connector = builder.enable_http1().wrap_connector(http);
            Transport::Http1(Http1Pool::new(
                connector,
                pool.max_connections,
                pool.max_idle_per_host,
                pool.idle_timeout.0,
            ))
        };
        Ok(Upstream {
            name: name.to_owned(),
            scheme,
            authority,
            host,
            path_prefix: uri.path().trim_end_matches('/').to_owned(),
            response_timeout: config.response_timeout.0,
            transport,
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight)),
        })
    }

    /// The upstream URI for a request's (canonical) path and query: under the upstream's
    /// path prefix, if it has one.
    pub fn uri_for(&self, target: &PathAndQuery) -> Result<Uri, http::Error> {
        let path_and_query = if self.path_prefix.is_empty() {
            target.clone()
        } else {
            let mut prefixed =
                String::with_capacity(self.path_prefix.len() + target.as_str().len());
            prefixed.push_str(&self.path_prefix);
            prefixed.push_str(target.as_str());
            PathAndQuery::try_from(prefixed)?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }

    /// Connections open and of those idle, for an HTTP/1.1 upstream (HTTP/2 multiplexes
    /// over hyper-util's one connection, which the gateway does not count).
    pub fn pool_counts(&self) -> Option<(usize, usize)> {
        match &self.transport {
            Transport::Http1(pool) => Some(pool.counts()),
            Transport::Http2(_) => None,
        }
    }

    /// Sends a request and waits for the response head within the response timeout (which
    /// includes waiting for a free connection when all are busy).
    pub async fn send(
        &self,
        request: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        // Past the cap, shed rather than queue: the backend is already as busy as allowed.
        let Ok(_permit) = self.in_flight.clone().try_acquire_owned() else {
            return Err(UpstreamError::Overloaded);
        };
        let exchange = async {
            match &self.transport {
                Transport::Http1(pool) => {
                    let mut request = request;
                    request.headers_mut().insert(HOST, self.host.clone());
                    pool.send(request).await.map_err(|err| match err {
                        PoolError::Connect(cause) => classify(&*cause, true),
                        PoolError::Request(cause) => classify(&cause, false),
                    })
                }
                Transport::Http2(client) => match client.request(request).await {
                    Ok(response) => Ok(response.map(streaming)),
                    Err(err) => Err(classify(&err, err.is_connect())),
                },
            }
        };
        match tokio::time::timeout(self.response_timeout, exchange).await {
            Err(_elapsed) => Err(UpstreamError::ResponseTimeout),
            Ok(result) => result,
        }
    }
}

/// The `Host` header for an upstream URL: its host, and its port unless the scheme's default.
fn host_header(uri: &Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let text = match uri.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    HeaderValue::from_str(&text).ok()
}

enum Transport {
    Http1(Arc<Http1Pool>),
    Http2(Box<Client<Connector, ProxyBody>>),
}

fn classify(err: &(dyn std::error::Error + 'static), connecting: bool) -> UpstreamError {
    if let Some(limit) = BodyTooLarge::caused(err) {
        return UpstreamError::RequestBodyTooLarge { limit };
    }
    if BodyTimeout::caused(err) {
        return UpstreamError::RequestBodyTimeout;
    }
    let mut io_errors = std::iter::successors(Some(err), |e| e.source())
        .filter_map(|e| e.downcast_ref::<std::io::Error>());
    if connecting && io_errors.clone().any(crate::server::open_files::exhausted) {
        return UpstreamError::OutOfFiles;
    }
    let timed_out = io_errors.any(|io| io.kind() == std::io::ErrorKind::TimedOut);
    match (connecting, timed_out) {
        (true, true) => UpstreamError::ConnectTimeout,
        (true, false) => UpstreamError::Connect,
        (false, _) => UpstreamError::Broken,
    }
}

/// Every configured upstream by name.
pub type Upstreams = HashMap<String, Arc<Upstream>>;

pub fn build_all(
    configs: &std::collections::BTreeMap<String, UpstreamConfig>,
) -> Result<Upstreams, Vec<Invalid>> {
    let mut upstreams = HashMap::new();
    let mut problems = Vec::new();
    for (name, config) in configs {
        match Upstream::build(name, config) {
            Ok(upstream) => {
                upstreams.insert(name.clone(), Arc::new(upstream));
            }
            Err(mut found) => problems.append(&mut found),
        }
    }
    if problems.is_empty() {
        Ok(upstreams)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_the_port_only_when_it_is_not_the_schemes_default() {
        for (url, host) in [
            ("http://backend.internal", "backend.internal"),
            ("http://backend.internal:80/api", "backend.internal"),
            ("http://127.0.0.1:8080", "127.0.0.1:8080"),
            ("https://records.example:443", "records.example"),
            ("https://records.example:8443", "records.example:8443"),
            ("http://[::1]:9000", "[::1]:9000"),
        ] {
            let uri: Uri = url.parse().unwrap();
            assert_eq!(host_header(&uri).unwrap(), host, "{url}");
        }
    }

    /// An error with a cause, as the connector wraps the socket's `io::Error`.
    #[derive(Debug, thiserror::Error)]
    #[error("tcp connect error")]
    struct Wrapped(#[source] std::io::Error);

    #[test]
    fn a_connect_failing_for_want_of_descriptors_is_the_gateways_not_the_upstreams() {
        let cause = |errno| Wrapped(std::io::Error::from_raw_os_error(errno));
        // EMFILE (the process's limit) and ENFILE (the system's).
        for errno in [24, 23] {
            assert!(matches!(
                classify(&cause(errno), true),
                UpstreamError::OutOfFiles
            ));
        }
        // ECONNREFUSED and ETIMEDOUT keep their meaning.
        assert!(matches!(
            classify(&cause(111), true),
            UpstreamError::Connect
        ));
        assert!(matches!(
            classify(&cause(110), true),
            UpstreamError::ConnectTimeout
        ));
        // Mid-request, whatever the cause: broken.
        assert!(matches!(classify(&cause(24), false), UpstreamError::Broken));
        assert_eq!(UpstreamError::OutOfFiles.kind(), "out_of_files");
    }
}
