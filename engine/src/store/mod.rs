//! Durable state: events, their deliveries and attempts, and the configuration
//! they follow (endpoints, subscriptions, plugins, custom event types), in an
//! embedded SQLite file or in PostgreSQL. The only module that knows sqlx.
//!
//! Every object belongs to a tenant; every operation on a tenant's object takes
//! the tenant and never returns another tenant's rows, whatever id it is given.
//! Times are unix milliseconds, passed in by the caller where they decide
//! something (what is due, when a lease ends), so behaviour is testable.
//!
//! The delivery history lives in the `deliveries` table, and the queue of
//! pending deliveries beside it, in `delivery_queue`. Workers claim due
//! deliveries with a lease ([`Store::claim_due_deliveries`]) and report back
//! in batches ([`Store::finish_deliveries`]); a worker that dies loses its
//! lease, and the deliveries fall due again when it ends. Deliveries of batching subscriptions take
//! a lane of their own: they are claimed a whole batch at a time
//! ([`Store::due_batches`], [`Store::claim_new_batch`],
//! [`Store::claim_formed_batch`]). Several Weft nodes may share one
//! PostgreSQL database: a row is leased to one of them at a time.

mod admission;
mod api_keys;
mod attempts;
mod audit;
mod batches;
mod database;
mod deliveries;
mod endpoints;
mod error;
mod event_types;
mod events;
mod group_commit;
mod health;
mod history;
mod json;
mod maintenance;
mod migrations;
mod plugins;
mod queue;
mod retention;
mod subscriptions;

#[cfg(test)]
mod tests;

pub use admission::{CLUSTER_CONCURRENCY_RETRY, EndpointRefusal};
pub use audit::{AuditQuery, MAX_AUDIT_PAGE};
pub use batches::DueBatch;
pub use deliveries::DeliveryUpdate;
pub use error::StoreError;
pub use event_types::EventTypeRecord;
pub use events::{IngestOutcome, NewEvent};
pub use group_commit::GroupCommit;
pub use health::{CircuitChange, EndpointCall};
pub use history::{DEFAULT_PAGE_SIZE, DeliveryQuery, MAX_PAGE_SIZE};
pub use maintenance::Maintenance;
pub use plugins::StoredPlugin;
pub use retention::{DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS, Prune, Pruned};

/// A page of a tenant's configuration objects, oldest first: those created
/// after the object `after` (none: from the first), `limit` of them at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page<'a> {
    pub after: Option<&'a str>,
    pub limit: u32,
}

impl Page<'_> {
    /// The first `limit`.
    pub fn first(limit: u32) -> Self {
        Self { after: None, limit }
    }
}

use database::Backend;
use std::fmt;

/// A handle on the database: cheap to clone, shared by every task.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Seals and opens endpoints' secrets (see [`crate::secrets`]); without
    /// it, endpoints can be neither read nor written.
    keyring: Option<std::sync::Arc<crate::secrets::Keyring>>,
    /// Recorded with the change made through this handle: see [`Store::audited`].
    audit: Option<std::sync::Arc<crate::model::AuditEntry>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.backend.dialect())
            .finish()
    }
}

impl Store {
    /// How many writing transactions can make progress at once: one on
    /// SQLite, a few on PostgreSQL.
    pub fn concurrent_writers(&self) -> usize {
        self.backend.concurrent_writers()
    }

    /// Opens the database at `url` and brings its schema up to date.
    ///
    /// - `sqlite:weft.db`, `sqlite://weft.db`, `sqlite:///var/lib/weft.db`: a
    ///   file, created if missing, in WAL mode with `synchronous=FULL` (`sqlite::memory:` for a
    ///   throwaway database);
    /// - `postgres://user:password@host:port/database`; add
    ///   `?options[search_path]=schema` to keep Weft's tables in a schema of their own.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::connect(url).await?,
            keyring: None,
            audit: None,
        })
    }

    /// This store, sealing and opening secrets with `keyring`.
    pub fn with_keyring(self, keyring: std::sync::Arc<crate::secrets::Keyring>) -> Store {
        Store {
            keyring: Some(keyring),
            ..self
        }
    }

    /// Closes the connections (every clone of this store shares them).
    pub async fn close(&self) {
        self.backend.close().await;
    }
}
