//! The upstream of `bench/run.sh`: plain HTTP/1.1 with keep-alive on one address, as cheap as
//! hyper makes it, so the proxies in front of it are what the load run measures. `GET` answers
//! the stored patient record (a fixed ~1 KB JSON document at start), `PUT` replaces it (the
//! bench writes it once through wardgate, so the record then holds `wg1:` ciphertexts, as a
//! real backend behind wardgate would), and `POST` echoes its body.
//!
//! ```text
//! cargo run --release --example bench_upstream -- 127.0.0.1:18080
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The record served before anything is written: a patient with five sensitive fields.
const RECORD: &str = r#"{"id":"p-1001","name":"Li Wei","sex":"female","birth_date":"1990-03-07","id_number":"110101199003071234","phone":"13812345678","address":"12 Jianguo Road, Chaoyang District, Beijing 100022","insurance_number":"BJ-2026-0088-1234-5678","diagnosis":"Type 2 diabetes mellitus without complications; hypertension, stage 1","department":"endocrinology","attending":"dr-wang","allergies":["penicillin"],"medications":[{"name":"metformin","dose":"500 mg","frequency":"twice daily"},{"name":"amlodipine","dose":"5 mg","frequency":"once daily"}],"visits":[{"date":"2026-09-14","type":"video","summary":"HbA1c 7.1%, dose unchanged"},{"date":"2026-10-20","type":"text","summary":"blood pressure log reviewed"}],"emergency_contact":{"name":"Li Ming","relation":"brother"},"lab_results":[{"test":"HbA1c","value":"7.1%","date":"2026-09-10"},{"test":"LDL","value":"2.9 mmol/L","date":"2026-09-10"}],"notes":"Prefers morning appointments. Follow-up in three months with fasting glucose and lipid panel."}"#;

/// The largest body read from a request.
const MAX_BODY: usize = 1024 * 1024;

type Record = Arc<RwLock<Bytes>>;

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".to_owned())
        .parse()
        .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr))
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let record: Record = Arc::new(RwLock::new(Bytes::from_static(RECORD.as_bytes())));
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let record = record.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(record.clone(), request));
            // A client that goes away mid-request is not the upstream's problem.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    record: Record,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().clone();
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, Bytes::new())),
    };
    Ok(match method {
        Method::GET | Method::HEAD => {
            let stored = record.read().map(|r| r.clone()).unwrap_or_default();
            reply(StatusCode::OK, stored)
        }
        Method::PUT => {
            if let Ok(mut stored) = record.write() {
                *stored = body.clone();
            }
            reply(StatusCode::OK, body)
        }
        Method::POST => reply(StatusCode::OK, body),
        _ => reply(StatusCode::METHOD_NOT_ALLOWED, Bytes::new()),
    })
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
