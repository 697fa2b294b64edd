//! Keeping PostgreSQL's hot tables fit, whatever autovacuum does.
//!
//! The delivery queue churns: every delivery is inserted, leased and deleted
//! within seconds. Each of those leaves a dead row version, and the queue's
//! indexes keep pointing at dead versions until a vacuum clears them; claims
//! then walk ever more dead entries, and a table never analysed gets bad
//! plans. With autovacuum off (as some installations run it, and as a burst
//! can outrun it anyway), a run of 100,000 deliveries left 80,000 dead rows
//! in the queue and single claims taking up to 2 s. So Weft watches its own
//! hot tables: [`Store::maintain`] vacuums and analyses each one whose dead
//! rows outnumber its live ones (and a few thousand), and `weft serve` calls
//! it every few seconds. One node of a cluster does it at a time (an advisory
//! lock), and SQLite, which updates in place, needs none of it.

use super::Store;
use super::database::{Dialect, Statement};
use super::error::StoreError;

/// The tables capture and delivery rewrite all the time.
const HOT_TABLES: [&str; 3] = ["delivery_queue", "deliveries", "events"];

/// A table is vacuumed once its dead rows pass this many, and its live ones.
const DEAD_ROWS_BEFORE_VACUUM: i64 = 5_000;

/// The advisory lock that makes one node at a time maintain the tables of
/// one schema (several Weft databases may share a PostgreSQL database).
const MAINTENANCE_LOCK: &str = "hashtext('weft maintenance of ' || current_schema())";

/// What one round of maintenance did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// The tables vacuumed and analysed, with the dead rows each had.
    pub vacuumed: Vec<(String, i64)>,
}

impl Store {
    /// Whether the database's autovacuum is off (PostgreSQL; SQLite has none
    /// and needs none).
    pub async fn autovacuum_is_off(&self) -> Result<bool, StoreError> {
        if self.backend.dialect() != Dialect::Postgres {
            return Ok(false);
        }
        let row = self
            .backend
            .fetch_optional(Statement::new(
                "SELECT current_setting('autovacuum') AS autovacuum",
            ))
            .await
            .map_err(StoreError::database("reading the autovacuum setting"))?;
        let setting: String = match row {
            Some(row) => row.get("autovacuum")?,
            None => return Ok(false),
        };
        Ok(setting == "off")
    }

    /// Vacuums and analyses each hot table whose dead rows outnumber its live
    /// ones (and [`DEAD_ROWS_BEFORE_VACUUM`]). Nothing on SQLite, nor while
    /// another node maintains the same database.
    pub async fn maintain(&self) -> Result<Maintenance, StoreError> {
        let mut done = Maintenance::default();
        if self.backend.dialect() != Dialect::Postgres {
            return Ok(done);
        }
        let doing = "maintaining the delivery tables";
        let mut connection = self
            .backend
            .dedicated()
            .await
            .map_err(StoreError::database(doing))?;
        let locked = connection
            .fetch_optional(Statement::once(format!(
                "SELECT pg_try_advisory_lock({MAINTENANCE_LOCK}) AS locked"
            )))
            .await
            .map_err(StoreError::database(doing))?
            .map(|row| row.get::<bool>("locked"))
            .transpose()?
            .unwrap_or(false);
        if !locked {
            return Ok(done);
        }
        let result = async {
            for table in HOT_TABLES {
                let stats = connection
                    .fetch_optional(
                        Statement::new(
                            "SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables \
                             WHERE relid = to_regclass($1)",
                        )
                        .bind(table),
                    )
                    .await
                    .map_err(StoreError::database(doing))?;
                let Some(stats) = stats else { continue };
                let (dead, live): (i64, i64) = (stats.get("n_dead_tup")?, stats.get("n_live_tup")?);
                if dead < DEAD_ROWS_BEFORE_VACUUM || dead < live {
                    continue;
                }
                // The table name is one of ours, not input.
                connection
                    .execute(Statement::once(format!("VACUUM (ANALYZE) {table}")))
                    .await
                    .map_err(StoreError::database(format!("vacuuming {table}")))?;
                done.vacuumed.push((table.to_owned(), dead));
            }
            Ok::<_, StoreError>(())
        }
        .await;
        let unlocked = connection
            .execute(Statement::once(format!(
                "SELECT pg_advisory_unlock({MAINTENANCE_LOCK})"
            )))
            .await;
        result?;
        unlocked.map_err(StoreError::database(doing))?;
        Ok(done)
    }
}
