//! CORS for browser clients, per route: preflight `OPTIONS` requests are answered by the
//! gateway itself (never forwarded), and responses to allowed origins carry the
//! `Access-Control-*` headers. An origin that is not listed gets no CORS headers at all.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use super::Rejection;
use crate::config::{CorsConfig, Invalid};
use crate::proxy::body::{empty, ProxyBody};

pub struct Cors {
    any_origin: bool,
    origins: Vec<HeaderValue>,
    methods: Vec<Method>,
    allow_methods: HeaderValue,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    credentials: bool,
    max_age: HeaderValue,
}

impl Cors {
    pub fn build(
        key: &str,
        config: &CorsConfig,
        route_methods: &[Method],
    ) -> Result<Cors, Vec<Invalid>> {
        let methods: Vec<Method> = if config.allowed_methods.is_empty() {
            route_methods.to_vec()
        } else {
            config.allowed_methods.iter().map(|m| m.0.clone()).collect()
        };
        let join = |items: Vec<&str>, field: &str| -> Result<Option<HeaderValue>, Invalid> {
            if items.is_empty() {
                return Ok(None);
            }
            HeaderValue::from_str(&items.join(", "))
                .map(Some)
                .map_err(|_| Invalid::new(format!("{key}.{field}"), "not valid in a header"))
        };
        let method_names: Vec<&str> = methods.iter().map(Method::as_str).collect();
        let header_names: Vec<&str> = config.allowed_headers.iter().map(String::as_str).collect();
        let exposed: Vec<&str> = config.exposed_headers.iter().map(String::as_str).collect();
        let results = (
            join(method_names, "allowed_methods"),
            join(header_names, "allowed_headers"),
            join(exposed, "exposed_headers"),
        );
        let (Ok(allow_methods), Ok(allow_headers), Ok(expose_headers)) = results else {
            let (a, b, c) = results;
            return Err([a.err(), b.err(), c.err()].into_iter().flatten().collect());
        };
        let origins = config
            .allowed_origins
            .iter()
            .filter(|origin| origin.as_str() != "*")
            .filter_map(|origin| HeaderValue::from_str(origin).ok())
            .collect();
        Ok(Cors {
            any_origin: config.allowed_origins.iter().any(|o| o == "*"),
            origins,
            methods,
            allow_methods: allow_methods.unwrap_or_else(|| HeaderValue::from_static("")),
            allow_headers,
            expose_headers,
            credentials: config.allow_credentials,
            max_age: HeaderValue::from(config.max_age.0.as_secs()),
        })
    }

    fn allows_origin(&self, origin: &HeaderValue) -> bool {
        self.any_origin || self.origins.iter().any(|allowed| allowed == origin)
    }

    fn allow_origin_value(&self, origin: &HeaderValue) -> HeaderValue {
        if self.any_origin && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }

    /// Adds the CORS headers to a (non-preflight) response for an allowed origin.
    pub fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        let Some(origin) = origin.filter(|origin| self.allows_origin(origin)) else {
            return;
        };
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin_value(origin),
        );
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(exposed) = &self.expose_headers {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed.clone());
        }
    }

    fn preflight_response(&self, origin: &HeaderValue) -> Response<ProxyBody> {
        let mut response = Response::new(empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin_value(origin),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            self.allow_methods.clone(),
        );
        if let Some(allowed) = &self.allow_headers {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed.clone());
        }
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        response
    }
}

/// For a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`), the method
/// the browser intends to use: the request is routed as if it were that method.
pub fn preflight_method<B>(request: &Request<B>) -> Option<Method> {
    if request.method() != Method::OPTIONS || !request.headers().contains_key(header::ORIGIN) {
        return None;
    }
    let requested = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    Method::from_bytes(requested.as_bytes()).ok()
}

/// Answers a preflight for the matched route: 204 with the route's CORS policy when the
/// origin and method are allowed, 403 otherwise (including routes without CORS).
pub fn answer_preflight<B>(
    cors: Option<&Cors>,
    request: &Request<B>,
    method: &Method,
) -> Result<Response<ProxyBody>, Rejection> {
    let origin = request.headers().get(header::ORIGIN);
    match (cors, origin) {
        (Some(cors), Some(origin))
            if cors.allows_origin(origin) && cors.methods.contains(method) =>
        {
            Ok(cors.preflight_response(origin))
        }
        _ => Err(Rejection::CorsDenied),
    }
}
