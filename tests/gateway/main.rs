//! Integration tests: the real gateway on loopback, a real upstream HTTP server, and a real
//! TLS client speaking HTTP/1.1 and HTTP/2. One module per area.

#![allow(clippy::unwrap_used)]

mod support;

mod abuse;
mod access;
mod audit;
mod config;
mod cors;
mod demo;
mod erasure;
mod fields;
mod lifecycle;
mod limits;
mod metrics;
mod normalize;
mod policy_reload;
mod postgres;
mod proxy;
mod recovery;
mod review;
mod selfcheck;
mod shared_store;
mod tls;
mod tokens;
mod upstream;
mod websocket;
