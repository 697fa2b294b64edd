//! Weft: a webhook engine whose transformations are sandboxed WebAssembly
//! components. The module list is the architecture; see ARCHITECTURE.md.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod health;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod runtime;
pub mod schema;
pub mod secrets;
pub mod store;
pub mod worker;

#[cfg(test)]
mod samples;
