//! Weft's end-to-end tests: real components built from source, loaded and run by
//! the real runtime and the real `weft` binary. One module per feature.

mod access;
mod api;
mod audit;
mod bad_input;
mod batching;
mod cli;
mod cluster;
mod connections;
mod credentials;
mod endpoint_health;
mod expressions;
mod isolation;
mod languages;
mod limits;
mod loading;
mod observability;
mod outbound;
mod pacing;
mod pausing;
mod pipeline;
mod request_limits;
mod retention;
mod secrets_at_rest;
mod serve;
mod templates;
mod tls;
