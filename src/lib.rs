//! wardgate: a privacy and security gateway for hospital online-consultation services.
//!
//! A TLS-terminating reverse proxy that stands in front of a consultation backend. The map of
//! the code follows the request path of `DESIGN.md`:
//!
//! - [`config`]: the YAML config, checked with `file:line:col` errors;
//! - [`server`]: listeners, connections, reload and graceful shutdown;
//! - [`pipeline`]: the request stages, in order, in `pipeline/mod.rs`;
//! - [`proxy`]: bodies, headers, upstream clients and the WebSocket relay the stages use;
//! - [`tls`]: server and upstream TLS configs;
//! - [`admin`] and [`metrics`]: health, readiness and Prometheus metrics;
//! - [`demo`]: the built-in demo consultation backend behind `wardgate demo`.

pub mod admin;
pub mod audit;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod erasure;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod proxy;
pub mod ratelimit;
pub mod review;
pub mod runtime;
pub mod selfcheck;
pub mod server;
pub mod store;
pub mod tls;

pub use server::{RunningGateway, StartError};
