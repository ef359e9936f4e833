//! The mechanics of proxying that the pipeline's stages share: body types and limits,
//! header rewriting in both directions, upstream clients and their connection pool, and the WebSocket relay.

pub mod body;
pub mod headers;
pub mod identity_headers;
mod pool;
pub mod upstream;
pub mod websocket;
