//! The demo consultation backend: a small in-memory JSON REST service shaped like a real
//! hospital consultation app (patients, their records, consultations and messages), so the
//! gateway has something real to stand in front of. It knows nothing about wardgate: it
//! stores what it is sent, ciphertexts included, and hands it back. `GET /debug/raw-store`
//! (demo only, on the backend's own port) shows what it holds, to see that protected fields
//! arrive encrypted.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::proxy::body::{full, ProxyBody};

/// The largest request body the demo backend reads.
const MAX_BODY: usize = 1024 * 1024;

/// A running demo backend; stops when [`DemoBackend::stop`] is called.
pub struct DemoBackend {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl DemoBackend {
    pub async fn start(addr: SocketAddr) -> std::io::Result<DemoBackend> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let store = Arc::new(Mutex::new(Store::seeded()));
        tokio::spawn(serve(listener, store, stop.clone()));
        Ok(DemoBackend { addr, stop })
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

async fn serve(listener: TcpListener, store: Arc<Mutex<Store>>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let store = store.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let store = store.clone();
                async move { Ok::<_, Infallible>(handle(&store, request).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

/// The demo's data: patients, their records, consultations and their messages.
struct Store {
    patients: BTreeMap<String, Value>,
    records: BTreeMap<String, Vec<Value>>,
    prescriptions: BTreeMap<String, Vec<Value>>,
    appointments: BTreeMap<String, Vec<Value>>,
    consultations: BTreeMap<String, Value>,
    messages: BTreeMap<String, Vec<Value>>,
    next_id: u64,
}

impl Store {
    fn seeded() -> Store {
        let mut store = Store {
            patients: BTreeMap::new(),
            records: BTreeMap::new(),
            prescriptions: BTreeMap::new(),
            appointments: BTreeMap::new(),
            consultations: BTreeMap::new(),
            messages: BTreeMap::new(),
            next_id: 3000,
        };
        for patient in [
            json!({"id": "p-1001", "name": "Li Wei", "id_number": "110101199003071234",
                   "phone": "13812345678", "date_of_birth": "1990-03-07", "department": "cardiology"}),
            json!({"id": "p-1002", "name": "Zhang Min", "id_number": "310104198511200021",
                   "phone": "13998765432", "date_of_birth": "1985-11-20", "department": "dermatology"}),
        ] {
            let id = patient["id"].as_str().unwrap_or_default().to_owned();
            store.patients.insert(id, patient);
        }
        store.records.insert(
            "p-1001".into(),
            vec![json!({"id": "r-1", "patient_id": "p-1001", "date": "2026-10-02",
                        "diagnosis": "stable angina", "prescription": "nitroglycerin 0.5mg as needed"})],
        );
        store.records.insert(
            "p-1002".into(),
            vec![json!({"id": "r-2", "patient_id": "p-1002", "date": "2026-09-14",
                        "diagnosis": "atopic dermatitis", "prescription": "hydrocortisone cream 1%"})],
        );
        store.prescriptions.insert(
            "p-1001".into(),
            vec![json!({"id": "rx-1", "patient_id": "p-1001", "drug": "nitroglycerin", "dose": "0.5mg sublingual", "prescriber": "dr-chen"})],
        );
        store.prescriptions.insert(
            "p-1002".into(),
            vec![json!({"id": "rx-2", "patient_id": "p-1002", "drug": "hydrocortisone 1% cream", "dose": "twice daily", "prescriber": "dr-zhou"})],
        );
        store.appointments.insert(
            "p-1001".into(),
            vec![json!({"id": "a-1", "patient_id": "p-1001", "department": "cardiology", "time": "2026-12-01T09:30:00+08:00"})],
        );
        store.consultations.insert(
            "c-2001".into(),
            json!({"id": "c-2001", "patient_id": "p-1001", "doctor": "dr-chen",
                   "department": "cardiology", "kind": "text", "status": "open"}),
        );
        store.messages.insert(
            "c-2001".into(),
            vec![json!({"id": "m-1", "author": "patient", "text": "My chest feels tight after climbing stairs."}),
                 json!({"id": "m-2", "author": "dr-chen", "text": "How long does it last? Please avoid exertion until we talk."})],
        );
        store
    }

    /// Records, prescriptions or appointments, by patient.
    fn items(&mut self, kind: &str) -> &mut BTreeMap<String, Vec<Value>> {
        match kind {
            "prescriptions" => &mut self.prescriptions,
            "appointments" => &mut self.appointments,
            _ => &mut self.records,
        }
    }

    /// Everything the backend holds, as stored.
    fn raw(&self) -> Value {
        json!({
            "patients": self.patients,
            "records": self.records,
            "prescriptions": self.prescriptions,
            "appointments": self.appointments,
            "consultations": self.consultations,
            "messages": self.messages,
        })
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }
}

async fn handle(store: &Mutex<Store>, request: Request<Incoming>) -> Response<ProxyBody> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "body too large"}),
            )
        }
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let Ok(mut store) = store.lock() else {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "store unavailable"}),
        );
    };
    match segments.as_slice() {
        ["api", "hospital", "info"] if method == Method::GET => reply(
            StatusCode::OK,
            json!({"name": "Demo People's Hospital", "departments": ["cardiology", "dermatology"],
                   "consultation_hours": "08:00-20:00"}),
        ),
        ["debug", "raw-store"] if method == Method::GET => reply(StatusCode::OK, store.raw()),
        ["debug", "raw-store", "patients", id] if method == Method::GET => {
            match store.patients.get(*id) {
                Some(patient) => reply(
                    StatusCode::OK,
                    json!({"patient": patient, "records": store.records.get(*id)}),
                ),
                None => not_found("patient"),
            }
        }
        ["api", "reports", "consultations"] if method == Method::GET => reply(
            StatusCode::OK,
            json!({"open_consultations": store.consultations.len(),
                   "messages": store.messages.values().map(Vec::len).sum::<usize>(),
                   "patients": store.patients.len()}),
        ),
        ["api", "patients"] => match method {
            Method::GET => reply(
                StatusCode::OK,
                Value::Array(store.patients.values().cloned().collect()),
            ),
            Method::POST => with_json(&body, |mut patient| {
                let id = store.new_id("p");
                patient["id"] = json!(id);
                store.patients.insert(id, patient.clone());
                reply(StatusCode::CREATED, patient)
            }),
            _ => not_found("resource"),
        },
        // A department's view of a patient: only patients of that department are found there.
        ["api", "departments", department, "patients", id, rest @ ..] => {
            let in_department = store
                .patients
                .get(*id)
                .is_some_and(|patient| patient["department"] == *department);
            if !in_department {
                return not_found("patient in this department");
            }
            patient_resource(&mut store, &method, id, rest, &body)
        }
        ["api", "patients", id, rest @ ..] => {
            patient_resource(&mut store, &method, id, rest, &body)
        }
        _ => not_found("resource"),
    }
}

/// `/api/patients/{id}/...` and its department-scoped twin.
fn patient_resource(
    store: &mut Store,
    method: &Method,
    id: &str,
    rest: &[&str],
    body: &Bytes,
) -> Response<ProxyBody> {
    if !store.patients.contains_key(id) {
        return not_found("patient");
    }
    match (method, rest) {
        (&Method::GET, []) => reply(StatusCode::OK, store.patients[id].clone()),
        (&Method::PUT, []) => with_json(body, |update| {
            let Some(patient) = store.patients.get_mut(id) else {
                return not_found("patient");
            };
            if let (Some(target), Some(fields)) = (patient.as_object_mut(), update.as_object()) {
                for (key, value) in fields {
                    if key != "id" {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
            reply(StatusCode::OK, patient.clone())
        }),
        (&Method::DELETE, []) => {
            store.patients.remove(id);
            store.records.remove(id);
            reply(StatusCode::OK, json!({"deleted": id}))
        }
        (&Method::GET, [kind @ ("records" | "prescriptions" | "appointments")]) => {
            let items: Vec<Value> = store.items(kind).get(id).cloned().unwrap_or_default();
            reply(StatusCode::OK, json!(items))
        }
        (&Method::POST, [kind @ ("records" | "prescriptions" | "appointments")]) => {
            with_json(body, |mut item| {
                item["id"] = json!(store.new_id(&kind[..1]));
                item["patient_id"] = json!(id);
                store
                    .items(kind)
                    .entry(id.to_owned())
                    .or_default()
                    .push(item.clone());
                reply(StatusCode::CREATED, item)
            })
        }
        (_, ["consultations", consultation, "messages"]) => {
            let belongs = store
                .consultations
                .get(*consultation)
                .is_some_and(|c| c["patient_id"] == *id);
            if !belongs {
                return not_found("consultation of this patient");
            }
            match *method {
                Method::GET => reply(
                    StatusCode::OK,
                    json!(store
                        .messages
                        .get(*consultation)
                        .cloned()
                        .unwrap_or_default()),
                ),
                Method::POST => with_json(body, |mut message| {
                    message["id"] = json!(store.new_id("m"));
                    store
                        .messages
                        .entry((*consultation).to_owned())
                        .or_default()
                        .push(message.clone());
                    reply(StatusCode::CREATED, message)
                }),
                _ => not_found("resource"),
            }
        }
        _ => not_found("resource"),
    }
}

fn with_json(body: &Bytes, then: impl FnOnce(Value) -> Response<ProxyBody>) -> Response<ProxyBody> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) if value.is_object() => then(value),
        Ok(_) => reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "expected a JSON object"}),
        ),
        Err(err) => reply(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("invalid JSON: {err}")}),
        ),
    }
}

fn not_found(what: &str) -> Response<ProxyBody> {
    reply(
        StatusCode::NOT_FOUND,
        json!({"error": format!("{what} not found")}),
    )
}

fn reply(status: StatusCode, body: Value) -> Response<ProxyBody> {
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
