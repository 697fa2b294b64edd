//! The schema migrations, embedded in the binary so `weft serve` needs no files
//! beside it, and applied on every connect (applied ones are skipped).

use super::database::Dialect;
use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;

/// `(version, description, SQL)`, oldest first. Never edit a released file:
/// add the next version instead (sqlx refuses a database whose applied
/// migrations changed).
type MigrationFile = (i64, &'static str, &'static str);

const SQLITE: &[MigrationFile] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "batching",
        include_str!("../../migrations/sqlite/0002_batching.sql"),
    ),
    // Version 3 (room for claims) is PostgreSQL's alone.
    (
        4,
        "delivery queue",
        include_str!("../../migrations/sqlite/0004_delivery_queue.sql"),
    ),
    (
        5,
        "api keys",
        include_str!("../../migrations/sqlite/0005_api_keys.sql"),
    ),
    (
        6,
        "audit log",
        include_str!("../../migrations/sqlite/0006_audit_log.sql"),
    ),
    (
        7,
        "secret rotation",
        include_str!("../../migrations/sqlite/0007_secret_rotation.sql"),
    ),
    (
        8,
        "outbound",
        include_str!("../../migrations/sqlite/0008_outbound.sql"),
    ),
    (
        9,
        "subscription pause",
        include_str!("../../migrations/sqlite/0009_subscription_pause.sql"),
    ),
    (
        10,
        "secret headers",
        include_str!("../../migrations/sqlite/0010_secret_headers.sql"),
    ),
    (
        11,
        "endpoint health",
        include_str!("../../migrations/sqlite/0011_endpoint_health.sql"),
    ),
    (
        12,
        "history retention",
        include_str!("../../migrations/sqlite/0012_history_retention.sql"),
    ),
    (
        13,
        "cluster limits",
        include_str!("../../migrations/sqlite/0013_cluster_limits.sql"),
    ),
];

const POSTGRES: &[MigrationFile] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "batching",
        include_str!("../../migrations/postgres/0002_batching.sql"),
    ),
    (
        3,
        "room for claims",
        include_str!("../../migrations/postgres/0003_room_for_claims.sql"),
    ),
    (
        4,
        "delivery queue",
        include_str!("../../migrations/postgres/0004_delivery_queue.sql"),
    ),
    (
        5,
        "api keys",
        include_str!("../../migrations/postgres/0005_api_keys.sql"),
    ),
    (
        6,
        "audit log",
        include_str!("../../migrations/postgres/0006_audit_log.sql"),
    ),
    (
        7,
        "secret rotation",
        include_str!("../../migrations/postgres/0007_secret_rotation.sql"),
    ),
    (
        8,
        "outbound",
        include_str!("../../migrations/postgres/0008_outbound.sql"),
    ),
    (
        9,
        "subscription pause",
        include_str!("../../migrations/postgres/0009_subscription_pause.sql"),
    ),
    (
        10,
        "secret headers",
        include_str!("../../migrations/postgres/0010_secret_headers.sql"),
    ),
    (
        11,
        "endpoint health",
        include_str!("../../migrations/postgres/0011_endpoint_health.sql"),
    ),
    (
        12,
        "history retention",
        include_str!("../../migrations/postgres/0012_history_retention.sql"),
    ),
    (
        13,
        "cluster limits",
        include_str!("../../migrations/postgres/0013_cluster_limits.sql"),
    ),
];

/// The migrations of `dialect`.
pub(super) fn migrator(dialect: Dialect) -> Migrator {
    let files = match dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    };
    let migrations = files
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                SqlStr::from_static(sql),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}
