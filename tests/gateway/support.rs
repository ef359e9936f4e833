//! Test parts, all real and on loopback: a certificate authority, an upstream HTTP server that
//! records what reached it, the gateway started from a YAML config, and a TLS client speaking
//! HTTP/1.1 or HTTP/2 (negotiated with ALPN, like any browser or app).

#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use wardgate::config;
use wardgate::demo::pki::{CertificateAuthority, IssuedFiles};
use wardgate::proxy::body::{full, BoxError, ProxyBody};
use wardgate::RunningGateway;

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: CertificateAuthority,
    pub ca_cert: PathBuf,
    pub server: IssuedFiles,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::new("wardgate test CA").unwrap();
        let ca_cert = ca.write_cert(&dir.path().join("ca.pem")).unwrap();
        let server = ca
            .issue_server(dir.path(), "server", &["localhost", "127.0.0.1"])
            .unwrap();
        wardgate::audit::keys::generate(dir.path()).unwrap();
        Pki {
            dir,
            ca,
            ca_cert,
            server,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The config lines for the data directory and the audit trail, with this test's keys.
    pub fn audit_section(&self) -> String {
        let dir = self.dir.path().display();
        format!(
            "data_dir: {dir}/data\naudit:\n  pseudonym_key_file: {dir}/audit-pseudonym.key\n  signing_key_file: {dir}/audit-signing.pem\n  checkpoint_every: 50\n  checkpoint_interval: 1s\n"
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The upstream: a real HTTP server that records each request head it receives
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
}

pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
}

impl Upstream {
    /// Serves every connection with `handler`, over plain HTTP/1.1.
    pub async fn start<H, F>(handler: H) -> Upstream
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<ProxyBody>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (recorder, counter) = (seen.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                serve_upstream_connection(TokioIo::new(stream), handler.clone(), recorder.clone());
            }
        });
        Upstream {
            addr,
            seen,
            connections,
        }
    }

    /// An upstream that answers every request with [`echo`].
    pub async fn echo() -> Upstream {
        Upstream::start(echo).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until the upstream has received `count` requests in all (a request in flight
    /// has reached it), for at most 20 s.
    pub async fn wait_for(&self, count: usize) {
        let seen = poll_until(
            2000,
            Duration::from_millis(10),
            async || self.seen.lock().unwrap().len(),
            |&seen| seen >= count,
        )
        .await;
        assert!(
            seen >= count,
            "the upstream received {seen} of {count} requests in 20 s"
        );
    }

    /// How many TCP connections the upstream has accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn last(&self) -> Seen {
        self.seen()
            .last()
            .cloned()
            .expect("the upstream saw no request")
    }
}

pub fn serve_upstream_connection<I, H, F>(io: I, handler: H, seen: Arc<Mutex<Vec<Seen>>>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    tokio::spawn(async move {
        let service = service_fn(move |request: Request<Incoming>| {
            seen.lock().unwrap().push(Seen {
                method: request.method().clone(),
                path_and_query: request
                    .uri()
                    .path_and_query()
                    .map(|pq| pq.to_string())
                    .unwrap_or_default(),
                headers: request.headers().clone(),
            });
            let response = handler(request);
            async move { Ok::<_, Infallible>(response.await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .with_upgrades()
            .await;
    });
}

/// Answers with what arrived: method, path and query, headers, body length and body text.
pub async fn echo(request: Request<Incoming>) -> Response<ProxyBody> {
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map(|pq| pq.to_string())
        .unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                serde_json::Value::from(v.to_str().unwrap_or("<binary>")),
            )
        })
        .collect();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let reply = serde_json::json!({
        "method": method,
        "path": path,
        "headers": headers,
        "body_len": body.len(),
        "body": String::from_utf8_lossy(&body[..body.len().min(4096)]),
    });
    let mut response = Response::new(full(reply.to_string()));
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
        .headers_mut()
        .insert("server", "backend/1.0 (internal)".parse().unwrap());
    response
}

/// A port that nothing listens on (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The gateway
// ---------------------------------------------------------------------------------------------

/// The config most tests use: the routes of a consultation app in front of `upstream_url`.
pub fn standard_config(pki: &Pki, upstream_url: &str) -> String {
    format!(
        r#"
{audit}
server:
  listen: 127.0.0.1:0
  tls:
    cert: {cert}
    key: {key}
  limits:
    max_body_size: 64KiB
    idle_timeout: 30s
  shutdown_grace_period: 5s
admin:
  listen: 127.0.0.1:0
log:
  level: warn
reload:
  watch: false
upstreams:
  backend:
    url: {upstream_url}
    connect_timeout: 1s
    response_timeout: 2s
routes:
  - name: patient
    path: /api/patients/{{patient_id}}
    methods: [GET, PUT]
    upstream: backend
    auth: none
  - name: patient-records
    path: /api/patients/{{patient_id}}/records
    methods: [GET, POST]
    upstream: backend
    auth: none
  - name: uploads
    path: /api/uploads
    methods: [POST]
    upstream: backend
    auth: none
    max_body_size: 16MiB
  - name: events
    path: /api/events/{{*rest}}
    methods: [GET]
    upstream: backend
    auth: none
  - name: chat
    path: /ws/consultations/{{consultation_id}}
    methods: [GET]
    upstream: backend
    auth: none
    websocket: true
  - name: messages
    path: /api/consultations/{{consultation_id}}/messages
    methods: [GET, POST]
    upstream: backend
    auth: none
    cors:
      allowed_origins: ["https://consult.example-hospital.cn"]
      allowed_headers: [content-type, authorization]
      exposed_headers: [x-request-id]
      allow_credentials: true
"#,
        audit = pki.audit_section(),
        cert = pki.server.cert.display(),
        key = pki.server.key.display(),
    )
}

/// Writes `yaml` next to the certificates and starts the gateway from that file.
pub async fn start_gateway(pki: &Pki, yaml: &str) -> RunningGateway {
    let path = write_config(pki, yaml);
    let loaded =
        config::load(&path).unwrap_or_else(|errors| panic!("test config is invalid:\n{errors}"));
    RunningGateway::start(loaded).await.unwrap()
}

pub fn write_config(pki: &Pki, yaml: &str) -> PathBuf {
    let path = pki.path("wardgate.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// A real TLS client
// ---------------------------------------------------------------------------------------------

pub type ClientBody = BoxBody<Bytes, BoxError>;

pub fn body(bytes: impl Into<Bytes>) -> ClientBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn no_body() -> ClientBody {
    body(Bytes::new())
}

/// A body of `bytes` that arrives 200 ms after the request head: a client slower than the
/// gateway's answer.
pub fn late_body(bytes: &'static [u8]) -> ClientBody {
    let late = futures_util::stream::once(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok::<_, BoxError>(hyper::body::Frame::data(Bytes::from_static(bytes)))
    });
    http_body_util::StreamBody::new(late).boxed()
}

/// Runs `script` with `sh -c`, as a user pastes it into a shell.
pub async fn run_shell(script: &str) -> std::process::Output {
    tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .await
        .unwrap()
}

pub fn tls_connector(ca: &Path, alpn: &[&[u8]], client: Option<&IssuedFiles>) -> TlsConnector {
    let roots = wardgate::tls::load_roots(ca).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(wardgate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some(files) => builder
            .with_client_auth_cert(
                wardgate::tls::load_certs(&files.cert).unwrap(),
                wardgate::tls::load_private_key(&files.key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

pub async fn tls_stream(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// A TLS connection to the gateway's proxy listener offering one ALPN protocol, for tests
/// that write raw bytes or drive a client by hand.
pub async fn gateway_tls(
    gateway: &RunningGateway,
    ca: &Path,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    tls_stream(gateway.proxy_addr, &tls_connector(ca, &[alpn], None))
        .await
        .unwrap()
}

/// One client connection, HTTP/1.1 or HTTP/2.
pub enum Client {
    H1(hyper::client::conn::http1::SendRequest<ClientBody>),
    H2(hyper::client::conn::http2::SendRequest<ClientBody>),
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

impl Client {
    pub async fn h1(gateway: &RunningGateway, ca: &Path) -> Client {
        Client::h1_at(gateway.proxy_addr, ca, None).await
    }

    /// An HTTP/1.1 connection to `addr`, presenting a client certificate when given.
    pub async fn h1_at(addr: SocketAddr, ca: &Path, client: Option<&IssuedFiles>) -> Client {
        let tls = tls_stream(addr, &tls_connector(ca, &[b"http/1.1"], client))
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(connection.with_upgrades());
        Client::H1(sender)
    }

    pub async fn h2(gateway: &RunningGateway, ca: &Path) -> Client {
        let tls = tls_stream(gateway.proxy_addr, &tls_connector(ca, &[b"h2"], None))
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(connection);
        Client::H2(sender)
    }

    pub async fn send(&mut self, request: Request<ClientBody>) -> Response<Incoming> {
        self.try_send(request).await.unwrap()
    }

    pub async fn try_send(
        &mut self,
        mut request: Request<ClientBody>,
    ) -> hyper::Result<Response<Incoming>> {
        match self {
            Client::H1(sender) => {
                if !request.headers().contains_key("host") {
                    request
                        .headers_mut()
                        .insert("host", "localhost".parse().unwrap());
                }
                sender.ready().await?;
                sender.send_request(request).await
            }
            Client::H2(sender) => {
                if request.uri().authority().is_none() {
                    let uri = format!("https://localhost{}", request.uri());
                    *request.uri_mut() = uri.parse().unwrap();
                }
                sender.ready().await?;
                sender.send_request(request).await
            }
        }
    }

    /// Sends and reads the whole reply.
    pub async fn fetch(&mut self, request: Request<ClientBody>) -> Reply {
        let response = self.send(request).await;
        let (parts, incoming) = response.into_parts();
        let body = incoming.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.fetch(Request::get(path).body(no_body()).unwrap())
            .await
    }
}

/// Sends raw bytes over TLS (for request lines no well-behaved client would send) and
/// returns everything the gateway answered until it closed the connection.
/// `n` clients, each on its own HTTP/1.1 connection to `addr`, GET `/api/patients/p-{i}` at
/// once; their statuses in order.
pub async fn get_concurrently(addr: SocketAddr, ca: &Path, n: usize) -> Vec<StatusCode> {
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(Client::h1_at(addr, ca, None).await);
    }
    let requests = clients
        .iter_mut()
        .enumerate()
        .map(|(i, client)| async move { client.get(&format!("/api/patients/p-{i}")).await.status });
    futures_util::future::join_all(requests).await
}

pub async fn raw_exchange(addr: SocketAddr, ca: &Path, request: &[u8]) -> String {
    raw_exchange_offering(addr, ca, &[b"http/1.1"], request).await
}

/// [`raw_exchange`] over a TLS connection that offers `alpn` (none when empty).
pub async fn raw_exchange_offering(
    addr: SocketAddr,
    ca: &Path,
    alpn: &[&[u8]],
    request: &[u8],
) -> String {
    let tls = tls_stream(addr, &tls_connector(ca, alpn, None))
        .await
        .unwrap();
    if alpn.is_empty() {
        assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    }
    exchange(tls, request).await
}

/// [`raw_exchange`] through `connector`, whose session store a later connection through it may
/// resume from: how the handshake went, and the response. Reading to the end also takes in the
/// session tickets the gateway sends after the handshake.
pub async fn raw_exchange_through(
    addr: SocketAddr,
    connector: &TlsConnector,
    request: &[u8],
) -> (rustls::HandshakeKind, String) {
    let tls = tls_stream(addr, connector).await.unwrap();
    let kind = tls.get_ref().1.handshake_kind().unwrap();
    (kind, exchange(tls, request).await)
}

/// Writes `request` and reads until the gateway closes (5 s at most).
async fn exchange(mut tls: tokio_rustls::client::TlsStream<TcpStream>, request: &[u8]) -> String {
    tls.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP/1.1 response.
pub fn raw_status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

// ---------------------------------------------------------------------------------------------
// The admin listener
// ---------------------------------------------------------------------------------------------

/// Runs `probe` until `done` holds of its result, at most `tries` times, `every` apart, and
/// returns the last result for the caller to assert on. For what the gateway does in the
/// background (a commit, a reload, a replica's poll): waited for, not slept on a guess.
pub async fn poll_until<T>(
    tries: u32,
    every: Duration,
    mut probe: impl AsyncFnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let mut last = probe().await;
    for _ in 1..tries {
        if done(&last) {
            break;
        }
        tokio::time::sleep(every).await;
        last = probe().await;
    }
    last
}

/// Every record of the gateway's embedded audit trail, oldest first.
pub fn audit_trail(pki: &Pki) -> Vec<wardgate::audit::AuditRecord> {
    wardgate::audit::store::AuditReader::open(&pki.path("data"))
        .unwrap()
        .query(&wardgate::audit::store::QueryFilter::default())
        .unwrap()
}

/// GET over plain HTTP from the admin listener.
pub async fn admin_get(gateway: &RunningGateway, path: &str) -> Reply {
    let tcp = TcpStream::connect(gateway.admin_addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get(path)
        .header("host", "localhost")
        .body(no_body())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let (parts, incoming) = response.into_parts();
    let body = incoming.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// The value of one sample in the Prometheus text, such as
/// `wardgate_requests_total{method="GET",route="patient",status_class="2xx"}`; 0 if absent.
pub async fn metric(gateway: &RunningGateway, sample: &str) -> f64 {
    let text = admin_get(gateway, "/metrics").await;
    let text = String::from_utf8_lossy(&text.body).into_owned();
    text.lines()
        .find_map(|line| {
            line.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// Identity and policy: test keys (tests/fixtures), a JWKS, the shipped policies
// ---------------------------------------------------------------------------------------------

pub const ISSUER: &str = "https://idp.test.invalid";
pub const AUDIENCE: &str = "wardgate-test";
pub const UPSTREAM_SIGNING_KEY: &str = "0123456789abcdef0123456789abcdef-test";
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The test identity provider's keys, by kid.
pub fn signing_key(kid: &str) -> wardgate::demo::tokens::SigningKey {
    let file = match kid {
        "rsa-1" => "jwt-rsa.pem",
        "ec-1" => "jwt-ec.pem",
        "ed-1" => "jwt-ed25519.pem",
        "ed-other" => "jwt-other-ed25519.pem",
        other => panic!("no test key {other}"),
    };
    wardgate::demo::tokens::SigningKey::from_file(&fixture(file), kid).unwrap()
}

/// A JWKS with the public halves of the given test keys.
pub fn jwks(kids: &[&str]) -> String {
    let keys: Vec<serde_json::Value> = kids
        .iter()
        .map(|kid| {
            let one: serde_json::Value =
                serde_json::from_str(&signing_key(kid).jwks().unwrap()).unwrap();
            one["keys"][0].clone()
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

/// Claims for a test token: issuer and audience right, valid for an hour.
pub fn claims(subject: &str, roles: &[&str]) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": subject, "roles": roles,
        "iat": now, "nbf": now, "exp": now + 3600,
    })
}

pub fn token(kid: &str, claims: &serde_json::Value) -> String {
    signing_key(kid).sign(claims).unwrap()
}

/// Writes the JWKS, the shipped policies and the secrets next to the certificates, and
/// returns a config with the demo's shape of routes, authorized, in front of `upstream_url`.
pub fn authz_config(pki: &Pki, upstream_url: &str) -> String {
    std::fs::write(pki.path("jwks.json"), jwks(&["rsa-1", "ec-1", "ed-1"])).unwrap();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    std::fs::copy(policies.join("model.conf"), pki.path("model.conf")).unwrap();
    std::fs::copy(policies.join("policy.csv"), pki.path("policy.csv")).unwrap();
    std::fs::write(pki.path("upstream-signing.key"), UPSTREAM_SIGNING_KEY).unwrap();
    std::fs::write(pki.path("admin-token"), ADMIN_TOKEN).unwrap();
    let dir = pki.dir.path().display();
    format!(
        r#"
{audit}
server:
  listen: 127.0.0.1:0
  tls:
    cert: {cert}
    key: {key}
    client_ca: {ca}
    client_auth: optional
  shutdown_grace_period: 5s
admin:
  listen: 127.0.0.1:0
  token_file: {dir}/admin-token
log:
  level: warn
reload:
  watch: false
identity:
  jwt:
    issuer: {ISSUER}
    audiences: [{AUDIENCE}]
    jwks_file: {dir}/jwks.json
    leeway: 5s
  mtls:
    - name: scheduling.internal
      subject: svc-scheduling
      roles: [service_scheduling]
  upstream_signing_key_file: {dir}/upstream-signing.key
policy:
  model: {dir}/model.conf
  policy: {dir}/policy.csv
break_glass:
  header: X-Break-Glass
  roles: [doctor, nurse]
  min_reason_length: 15
  duration: 1h
upstreams:
  backend:
    url: {upstream_url}
    connect_timeout: 1s
    response_timeout: 2s
routes:
  - name: hospital-info
    path: /api/hospital/info
    methods: [GET]
    upstream: backend
    auth: none
  - name: patient
    path: /api/patients/{{patient_id}}
    methods: [GET, PUT]
    upstream: backend
    resource: patient_profile
    patient: {{ from: path, name: patient_id }}
  - name: patient-records
    path: /api/patients/{{patient_id}}/records
    methods: [GET, POST]
    upstream: backend
    resource: medical_record
    patient: {{ from: path, name: patient_id }}
  - name: patient-prescriptions
    path: /api/patients/{{patient_id}}/prescriptions
    methods: [GET]
    upstream: backend
    resource: prescription
    patient: {{ from: path, name: patient_id }}
  - name: patient-appointments
    path: /api/patients/{{patient_id}}/appointments
    methods: [GET, POST]
    upstream: backend
    resource: appointment
    patient: {{ from: path, name: patient_id }}
  - name: department-records
    path: /api/departments/{{department}}/patients/{{patient_id}}/records
    methods: [GET, POST]
    upstream: backend
    resource: medical_record
    patient: {{ from: path, name: patient_id }}
    department: {{ from: path, name: department }}
  - name: department-prescriptions
    path: /api/departments/{{department}}/patients/{{patient_id}}/prescriptions
    methods: [GET, POST]
    upstream: backend
    resource: prescription
    patient: {{ from: path, name: patient_id }}
    department: {{ from: path, name: department }}
  - name: appointments-by-service
    path: /api/appointments
    methods: [GET, POST]
    upstream: backend
    resource: appointment
    patient: {{ from: header, name: x-patient-id }}
  - name: appointments-by-query
    path: /api/appointment-search
    methods: [GET]
    upstream: backend
    resource: appointment
    patient: {{ from: query, name: patient }}
  - name: consultation-report
    path: /api/reports/consultations
    methods: [GET]
    upstream: backend
    resource: statistics
"#,
        audit = pki.audit_section(),
        cert = pki.server.cert.display(),
        key = pki.server.key.display(),
        ca = pki.ca_cert.display(),
    )
}

/// A test config with the log at `info` as JSON lines: what the spawned binary's
/// "wardgate is serving" event (its addresses) is read from.
pub fn with_json_log(config: &str) -> String {
    config.replace("  level: warn", "  level: info\n  format: json")
}

/// A child process killed (and reaped) when the test ends, however it ends.
pub struct KilledOnDrop(pub std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The 1-based number of the first line of `yaml` that contains `needle`.
pub fn line_of(yaml: &str, needle: &str) -> usize {
    yaml.lines().position(|line| line.contains(needle)).unwrap() + 1
}

/// `wardgate check --config CONFIG`, the real binary, ready to run.
pub fn wardgate_check(config: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wardgate"));
    command.args(["check", "--config"]).arg(config);
    command
}

/// Asserts that a command run to its end exited 0, showing its stderr when it did not.
pub fn assert_succeeded(output: &std::process::Output) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The environment of a host without a CA bundle: where rustls-native-certs looks first.
pub const NO_CA_BUNDLE: [(&str, &str); 2] = [
    ("SSL_CERT_FILE", "/nonexistent/ca-certificates.crt"),
    ("SSL_CERT_DIR", "/nonexistent/certs"),
];

/// Runs the real `wardgate run` binary on a config that logs JSON at info level; returns the
/// child and the proxy and admin addresses from its "wardgate is serving" event.
pub fn spawn_binary(config: &Path) -> (std::process::Child, SocketAddr, SocketAddr) {
    let (child, events) = spawn_binary_by(
        std::process::Command::new(env!("CARGO_BIN_EXE_wardgate")),
        config,
    );
    let serving = events.last().unwrap();
    let addr = |name: &str| serving[name].as_str().unwrap().parse().unwrap();
    (child, addr("proxy_addr"), addr("admin_addr"))
}

/// Runs the binary allowed on CPU 0 only (`taskset`), as a container with a one-CPU quota or
/// a pinned benchmark runs it; returns the child and its "wardgate is serving" event.
pub fn spawn_binary_on_one_cpu(config: &Path) -> (std::process::Child, serde_json::Value) {
    let mut taskset = std::process::Command::new("taskset");
    taskset.args(["-c", "0", env!("CARGO_BIN_EXE_wardgate")]);
    let (child, mut events) = spawn_binary_by(taskset, config);
    (child, events.pop().unwrap())
}

/// Runs the binary from `sh` after `setup` (such as `ulimit -S -n 256`), as a shell or a
/// service manager with those settings starts it; returns the child and its log events up to
/// and including "wardgate is serving".
pub fn spawn_binary_after(
    setup: &str,
    config: &Path,
) -> (std::process::Child, Vec<serde_json::Value>) {
    let mut shell = std::process::Command::new("sh");
    shell.args([
        "-c",
        &format!("{setup} && exec \"$0\" \"$@\""),
        env!("CARGO_BIN_EXE_wardgate"),
    ]);
    spawn_binary_by(shell, config)
}

/// The child and its JSON log events up to and including "wardgate is serving".
fn spawn_binary_by(
    mut command: std::process::Command,
    config: &Path,
) -> (std::process::Child, Vec<serde_json::Value>) {
    use std::io::BufRead;
    let mut child = command
        .args(["run", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut events = Vec::new();
    loop {
        let line = lines.next().expect("the gateway exited").unwrap();
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let serving = event["message"] == "wardgate is serving";
        events.push(event);
        if serving {
            break;
        }
    }
    // Keep reading its log, so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, events)
}

/// The soft and hard open-files limits of a process (`self` or a pid), from `/proc`.
pub fn open_files_limits(pid: &str) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// A token for a subject with one role, and optionally a department and a patient id.
pub fn principal(
    subject: &str,
    role: &str,
    department: Option<&str>,
    patient: Option<&str>,
) -> String {
    let mut claims = claims(subject, &[role]);
    if let Some(department) = department {
        claims["department"] = department.into();
    }
    if let Some(patient) = patient {
        claims["patient_id"] = patient.into();
    }
    token("ed-1", &claims)
}

/// A request with a bearer token.
pub fn with_token(method: Method, path: &str, token: &str) -> Request<ClientBody> {
    let body_bytes = if method == Method::POST || method == Method::PUT {
        body("{}")
    } else {
        no_body()
    };
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body_bytes)
        .unwrap()
}

/// The test's policy without the lines of one role (`p, pharmacist`), as policy text.
pub fn policy_without(pki: &Pki, prefix: &str) -> String {
    std::fs::read_to_string(pki.path("policy.csv"))
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with(prefix))
        .map(|line| format!("{line}\n"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Erasure requests through the real admin API client
// ---------------------------------------------------------------------------------------------

/// Submits an erasure request for the patient through the admin API; returns its id.
pub async fn submit_erasure(
    client: &wardgate::admin::client::AdminClient,
    patient: &str,
) -> String {
    let body = serde_json::json!({"patient_id": patient, "requester": "the patient", "channel": "app",
                      "reason": "withdrew consent", "verification_ref": "ID card, ticket 17",
                      "submitted_by": "clerk-liu"});
    let answer = client
        .call(Method::POST, "/admin/erasure-requests", Some(body))
        .await
        .unwrap();
    let request: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(request["state"], "received");
    assert!(
        request.get("patient_id").is_none(),
        "the plain id is never shown"
    );
    request["id"].as_str().unwrap().to_owned()
}

/// Approves it as a second person.
pub async fn approve_erasure(client: &wardgate::admin::client::AdminClient, id: &str) {
    client
        .call(
            Method::POST,
            &format!("/admin/erasure-requests/{id}/approve"),
            Some(serde_json::json!({"approver": "officer-sun"})),
        )
        .await
        .unwrap();
}

/// Polls until the erasure request has finished; returns it.
pub async fn erasure_finished(
    client: &wardgate::admin::client::AdminClient,
    id: &str,
) -> serde_json::Value {
    for _ in 0..200 {
        let answer = client
            .call(Method::GET, &format!("/admin/erasure-requests/{id}"), None)
            .await
            .unwrap();
        let request: serde_json::Value = serde_json::from_str(&answer).unwrap();
        if request["finished_at"].is_number() {
            return request;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("erasure request {id} did not finish");
}
