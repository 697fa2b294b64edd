//! Keeping PostgreSQL's hot tables fit, whatever autovacuum does.
//!
//! The delivery queue churns: every delivery is inserted, leased and deleted
//! within seconds. Each of those leaves a dead row version, and the queue's
//! indexes keep pointing at dead versions until a vacuum clears them; claims
//! then walk ever more dead entries. With autovacuum off (as some
//! installations run it, and as a burst can outrun it anyway), a run of
//! 100,000 deliveries left 80,000 dead rows in the queue and single claims
//! taking up to 2 s.
//!
//! A table never analysed is as harmful: PostgreSQL plans a statement a
//! connection runs often once, from what it knew then, and keeps that plan
//! until the table's statistics change. A fresh database's first plans see
//! empty tables, and with no analysis since, a check that an attempt's
//! delivery exists (the foreign key) kept walking an index on the tenant alone
//! over every delivery the tenant had: 330 ms for 64 attempts once the
//! history held 30,000, and delivery fell to half the publishing rate.
//!
//! So Weft watches its own hot tables: [`Store::maintain`] vacuums (and
//! analyses) each one whose dead rows outnumber its live ones (and a few
//! thousand), and analyses each one that changed by a tenth since it was last
//! analysed (and a few hundred rows), which makes every connection plan its
//! statements on them anew. `weft serve` calls it every few seconds. One node
//! of a cluster does it at a time (an advisory lock), and SQLite, which
//! updates in place and plans each statement from its indexes alone, needs
//! none of it.

use super::Store;
use super::database::{Dialect, Statement};
use super::error::StoreError;

/// The tables capture and delivery write all the time.
const HOT_TABLES: [&str; 4] = ["delivery_queue", "deliveries", "events", "attempts"];

/// A table is vacuumed once its dead rows pass this many, and its live ones.
const DEAD_ROWS_BEFORE_VACUUM: i64 = 5_000;

/// A table is analysed once the rows written since its last analysis reach
/// this many plus a tenth of its live ones: autovacuum's rule, with a larger
/// base. An analysis samples at most 30,000 rows, so its cost stays bounded
/// as a table grows, and a table growing from empty to a million rows is
/// analysed about 80 times on the way.
const CHANGED_ROWS_BEFORE_ANALYSIS: i64 = 500;
const CHANGED_SHARE_BEFORE_ANALYSIS: i64 = 10;

/// The advisory lock that makes one node at a time maintain the tables of
/// one schema (several Weft databases may share a PostgreSQL database).
const MAINTENANCE_LOCK: &str = "hashtext('weft maintenance of ' || current_schema())";

/// What one round of maintenance did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// The tables vacuumed and analysed, with the dead rows each had.
    pub vacuumed: Vec<(String, i64)>,
    /// The tables analysed only, with the rows written since their last analysis.
    pub analysed: Vec<(String, i64)>,
}

/// What a table needs, from its statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Care {
    Vacuum,
    Analyse,
    Nothing,
}

fn care_for(dead: i64, live: i64, changed_since_analysis: i64) -> Care {
    if dead >= DEAD_ROWS_BEFORE_VACUUM && dead >= live {
        Care::Vacuum
    } else if changed_since_analysis
        >= CHANGED_ROWS_BEFORE_ANALYSIS + live / CHANGED_SHARE_BEFORE_ANALYSIS
    {
        Care::Analyse
    } else {
        Care::Nothing
    }
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
    /// ones (and [`DEAD_ROWS_BEFORE_VACUUM`]), and analyses each one that
    /// changed enough since its last analysis. Nothing on SQLite, nor while
    /// another node maintains the same database.
    pub async fn maintain(&self) -> Result<Maintenance, StoreError> {
        let mut done = Maintenance::default();
        if self.backend.dialect() != Dialect::Postgres {
            return Ok(done);
        }
        let doing = "maintaining the delivery tables";
        let Some(mut locked) = self
            .backend
            .try_advisory_lock(MAINTENANCE_LOCK)
            .await
            .map_err(StoreError::database(doing))?
        else {
            return Ok(done);
        };
        let connection = locked.session();
        let result = async {
            for table in HOT_TABLES {
                let stats = connection
                    .fetch_optional(
                        Statement::new(
                            "SELECT n_dead_tup, n_live_tup, n_mod_since_analyze \
                             FROM pg_stat_user_tables WHERE relid = to_regclass($1)",
                        )
                        .bind(table),
                    )
                    .await
                    .map_err(StoreError::database(doing))?;
                let Some(stats) = stats else { continue };
                let dead: i64 = stats.get("n_dead_tup")?;
                let changed: i64 = stats.get("n_mod_since_analyze")?;
                // Not truncating the emptied end of a vacuumed table: that
                // takes a lock that holds up every capture and claim on it,
                // and the queue grows back within seconds. The table name is
                // one of ours, not input.
                let (statement, doing, record, count) =
                    match care_for(dead, stats.get("n_live_tup")?, changed) {
                        Care::Vacuum => (
                            format!("VACUUM (ANALYZE, TRUNCATE false) {table}"),
                            "vacuuming",
                            &mut done.vacuumed,
                            dead,
                        ),
                        Care::Analyse => (
                            format!("ANALYZE {table}"),
                            "analysing",
                            &mut done.analysed,
                            changed,
                        ),
                        Care::Nothing => continue,
                    };
                connection
                    .execute(Statement::once(statement))
                    .await
                    .map_err(StoreError::database(format!("{doing} {table}")))?;
                record.push((table.to_owned(), count));
            }
            Ok::<_, StoreError>(())
        }
        .await;
        let unlocked = locked.unlock().await;
        result?;
        unlocked.map_err(StoreError::database(doing))?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::{Care, care_for};

    #[test]
    fn a_table_is_vacuumed_once_its_dead_rows_pass_the_base_and_its_live_ones() {
        assert_eq!(care_for(5_000, 4_000, 0), Care::Vacuum);
        assert_eq!(care_for(5_000, 5_000, 0), Care::Vacuum);
        assert_eq!(care_for(4_999, 0, 0), Care::Nothing);
        assert_eq!(care_for(6_000, 6_001, 0), Care::Nothing);
    }

    #[test]
    fn a_table_is_analysed_once_a_tenth_of_it_and_the_base_changed() {
        // Never analysed and growing: the first analysis at 555 rows
        // (500 and a tenth of them).
        assert_eq!(care_for(0, 554, 554), Care::Nothing);
        assert_eq!(care_for(0, 555, 555), Care::Analyse);
        // A million rows: after 100,500 more.
        assert_eq!(care_for(0, 1_000_000, 100_499), Care::Nothing);
        assert_eq!(care_for(0, 1_000_000, 100_500), Care::Analyse);
        // A vacuum analyses too, so it is the one chosen.
        assert_eq!(care_for(5_000, 0, 5_000), Care::Vacuum);
    }
}
