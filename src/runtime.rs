//! The runtime: everything a request needs that is built from the config (route table,
//! upstream clients, header values, path rules). It is built whole, then swapped in whole on
//! reload; a request holds one snapshot from start to end.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::config::{Config, Invalid, PathRules};
use crate::pipeline::RouteTable;
use crate::proxy::headers::ResponseHeaders;
use crate::proxy::upstream;

pub struct Runtime {
    pub routes: RouteTable,
    pub paths: PathRules,
    pub trusted_proxies: Vec<IpNet>,
    pub response_headers: ResponseHeaders,
    pub idle_timeout: Duration,
}

impl Runtime {
    pub fn build(config: &Config) -> Result<Runtime, Vec<Invalid>> {
        let mut problems = Vec::new();
        let upstreams =
            upstream::build_all(&config.upstreams).map_err(|mut p| problems.append(&mut p));
        let response_headers = ResponseHeaders::build(&config.security_headers)
            .map_err(|mut p| problems.append(&mut p));
        let routes = match &upstreams {
            Ok(upstreams) => {
                RouteTable::build(config, upstreams).map_err(|mut p| problems.append(&mut p))
            }
            Err(()) => Err(()),
        };
        match (routes, response_headers) {
            (Ok(routes), Ok(response_headers)) if problems.is_empty() => Ok(Runtime {
                routes,
                paths: config.server.paths.clone(),
                trusted_proxies: config.server.trusted_proxies.clone(),
                response_headers,
                idle_timeout: config.server.limits.idle_timeout.0,
            }),
            _ => Err(problems),
        }
    }

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}
