//! Stage 2, route: finds the route for the canonical path and method. The table holds path
//! templates (`/api/patients/{patient_id}/records`); what matches nothing is answered 404 and
//! never forwarded, which is what makes the gateway deny by default.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderValue, Method};

use super::cors::Cors;
use super::Rejection;
use crate::config::{AuthMode, Config, Durability, Invalid, NonJsonBody, ValueFrom, ValueSource};
use crate::crypto::fields::FieldRules;
use crate::crypto::json_path::JsonPath;
use crate::policy::Question;
use crate::proxy::upstream::{Upstream, Upstreams};

/// One configured route, ready to serve.
pub struct Route {
    pub name: String,
    pub template: String,
    pub methods: Vec<Method>,
    pub upstream: Arc<Upstream>,
    pub max_body_size: u64,
    pub websocket: bool,
    pub cors: Option<Cors>,
    pub auth: AuthMode,
    pub resource: Option<String>,
    /// The configured action; when absent the method decides (see `action_for`).
    pub action: Option<String>,
    pub patient: Option<ValueSource>,
    pub department: Option<ValueSource>,
    pub durability: Durability,
    /// Sensitive JSON fields of the route's bodies (empty: bodies stream untouched).
    pub fields: FieldRules,
    pub non_json_body: NonJsonBody,
    /// Rate limit policies by name; `None`: `rate_limits.default`.
    pub rate_limits: Option<Vec<String>>,
    /// Whether the patient or department comes from the path: only then are the template's
    /// parameters copied out of the path for the request.
    pub reads_path_params: bool,
}

impl Route {
    /// The action a request with this method performs on the route's resource.
    pub fn action_for(&self, method: &Method) -> &str {
        self.action
            .as_deref()
            .unwrap_or_else(|| super::authorize::action_for_method(method))
    }

    /// Every (resource, action) this route can ask the policy about.
    pub fn questions(&self) -> Vec<Question> {
        let Some(resource) = &self.resource else {
            return Vec::new();
        };
        let actions: Vec<&str> = match &self.action {
            Some(action) => vec![action.as_str()],
            None => self
                .methods
                .iter()
                .map(super::authorize::action_for_method)
                .collect(),
        };
        let reveals = self.fields.fields().iter().map(|field| Question {
            resource: format!("field:{field}"),
            action: "reveal".to_owned(),
        });
        actions
            .into_iter()
            .map(|action| Question {
                resource: resource.clone(),
                action: action.to_owned(),
            })
            .chain(reveals)
            .collect()
    }
}

/// The matched route and the template's parameters (`patient_id` -> `p-1001`), or no
/// parameters when the route reads none of them.
pub struct Matched {
    pub route: Arc<Route>,
    pub params: Vec<(String, String)>,
}

pub struct RouteTable {
    /// Template -> indexes into `routes` (one template may have a route per method).
    router: matchit::Router<Vec<usize>>,
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    pub fn build(config: &Config, upstreams: &Upstreams) -> Result<RouteTable, Vec<Invalid>> {
        let mut problems = Vec::new();
        let mut routes: Vec<Arc<Route>> = Vec::new();
        // Template -> (indexes into `routes`, config index of its first route).
        let mut by_template: Vec<(String, Vec<usize>, usize)> = Vec::new();
        for (i, route) in config.routes.iter().enumerate() {
            let key = format!("routes[{i}]");
            let Some(upstream) = upstreams.get(&route.upstream) else {
                problems.push(Invalid::new(format!("{key}.upstream"), "unknown upstream"));
                continue;
            };
            let methods: Vec<Method> = route.methods.iter().map(|m| m.0.clone()).collect();
            let cors = match &route.cors {
                Some(cors) => match Cors::build(&format!("{key}.cors"), cors, &methods) {
                    Ok(cors) => Some(cors),
                    Err(mut found) => {
                        problems.append(&mut found);
                        continue;
                    }
                },
                None => None,
            };
            if route.audit == Some(Durability::NotAudited)
                && (route.auth != AuthMode::None
                    || route.resource.is_some()
                    || route.patient.is_some()
                    || !route.fields.is_empty())
            {
                problems.push(Invalid::new(
                    format!("{key}.audit"),
                    "`none` is only for public routes (auth: none, with no resource, patient or fields): every access to patient data leaves a record",
                ));
            }
            let index = routes.len();
            match by_template
                .iter_mut()
                .find(|(template, ..)| *template == route.path)
            {
                Some((_, indexes, _)) => {
                    let overlap = indexes.iter().any(|&other: &usize| {
                        let other = &routes[other];
                        other.methods.iter().any(|m| methods.contains(m))
                    });
                    if overlap {
                        problems.push(Invalid::new(
                            format!("{key}.methods"),
                            format!(
                                "another route already serves {} for one of these methods",
                                route.path
                            ),
                        ));
                    }
                    indexes.push(index);
                }
                None => by_template.push((route.path.clone(), vec![index], i)),
            }
            routes.push(Arc::new(Route {
                name: route.name.clone(),
                template: route.path.clone(),
                methods,
                upstream: upstream.clone(),
                max_body_size: route
                    .max_body_size
                    .unwrap_or(config.server.limits.max_body_size)
                    .0,
                websocket: route.websocket,
                cors,
                auth: route.auth,
                resource: route.resource.clone(),
                action: route.action.clone(),
                patient: route.patient.clone(),
                department: route.department.clone(),
                // Routes that touch patient data wait for their audit record by default.
                durability: route.audit.unwrap_or(
                    if route.resource.is_some() || route.patient.is_some() {
                        Durability::Durable
                    } else {
                        Durability::Buffered
                    },
                ),
                fields: field_rules(&key, &route.fields, &mut problems),
                non_json_body: route.non_json_body,
                rate_limits: route.rate_limits.clone(),
                reads_path_params: [&route.patient, &route.department]
                    .into_iter()
                    .flatten()
                    .any(|source| source.from == ValueFrom::Path),
            }));
        }
        let mut router = matchit::Router::new();
        for (template, indexes, config_index) in by_template {
            if let Err(err) = router.insert(template, indexes) {
                problems.push(Invalid::new(
                    format!("routes[{config_index}].path"),
                    format!("invalid or conflicting path template: {err}"),
                ));
            }
        }
        if problems.is_empty() {
            Ok(RouteTable { router, routes })
        } else {
            Err(problems)
        }
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The route for a canonical path and method: 404 when no template matches, 405 (with
    /// the methods that would be served) when one matches but not for this method.
    pub fn select(&self, path: &str, method: &Method) -> Result<Matched, Rejection> {
        let found = self.router.at(path).map_err(|_| Rejection::NoRoute)?;
        let candidates = found.value.iter().map(|&i| &self.routes[i]);
        // HEAD is served wherever GET is, as every HTTP server does.
        let serves = |route: &Route| {
            route.methods.contains(method)
                || (method == Method::HEAD && route.methods.contains(&Method::GET))
        };
        if let Some(route) = candidates.clone().find(|route| serves(route)) {
            let params = if route.reads_path_params {
                found
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            } else {
                Vec::new()
            };
            return Ok(Matched {
                route: route.clone(),
                params,
            });
        }
        let allow: Vec<&str> = candidates
            .flat_map(|route| route.methods.iter().map(Method::as_str))
            .collect();
        Err(Rejection::MethodNotAllowed {
            allow: HeaderValue::from_str(&allow.join(", "))
                .unwrap_or_else(|_| HeaderValue::from_static("")),
        })
    }
}

fn field_rules(
    key: &str,
    fields: &BTreeMap<String, Vec<String>>,
    problems: &mut Vec<Invalid>,
) -> FieldRules {
    let mut parsed = Vec::new();
    for (name, paths) in fields {
        let mut compiled = Vec::new();
        for (j, path) in paths.iter().enumerate() {
            match JsonPath::parse(path) {
                Ok(path) => compiled.push(path),
                Err(err) => problems.push(Invalid::new(
                    format!("{key}.fields.{name}[{j}]"),
                    err.to_string(),
                )),
            }
        }
        parsed.push((name.as_str(), compiled));
    }
    FieldRules::new(parsed.iter().map(|(name, paths)| (*name, paths.as_slice())))
}
