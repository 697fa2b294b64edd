//! The store's tests. Every test runs its body twice, against SQLite (a
//! temporary file) and against PostgreSQL (a schema of its own, so tests run in
//! parallel), because both backends must behave the same.

mod admission;
mod backends;
mod batches;
mod config;
mod connect;
mod fixtures;
mod group_commit;
mod health;
mod ingest;
mod plugins;
mod queue;
mod retention;
mod sealing;
mod search;
