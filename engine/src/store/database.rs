//! The two backends behind one small interface, so the rest of the store writes
//! each statement once. Fixed statements use `$n` placeholders, which
//! PostgreSQL and SQLite both read as "the n-th parameter"; statements built
//! row by row use [`SqlBuilder`]. The few places where the dialects differ ask
//! for the [`Dialect`].

use super::error::StoreError;
use super::migrations::migrator;
use crate::model::InvalidId;
use sqlx::database::HasStatementCache;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Database, Decode, Encode, Row as _, Transaction, Type};
use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

/// SQLite lets one connection write at a time. Writers on other connections
/// would wait for the lock by sleeping and polling; with a single writer
/// connection they queue on the pool instead and are served in order.
const SQLITE_WRITERS: u32 = 1;

/// Readers run beside the writer under WAL. A few cover the API's concurrent
/// history queries on a 2-core machine; more would only contend for the cores.
const SQLITE_READERS: u32 = 4;

/// How long a SQLite statement waits for a lock held by another process (a
/// `weft` command on the same file, say) before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// PostgreSQL connections per Weft node. A connection is held only while its
/// statement or transaction runs, so a handful serve ingest, workers and the
/// API on a 2-core node at once (four concurrent ingest batches reach 25,000+
/// events/s); more would mostly add lock contention and per-connection memory
/// on the server, which several nodes share.
const POSTGRES_CONNECTIONS: u32 = 8;

/// How long an operation waits for a pooled connection, or for the database to
/// answer at all, before it fails instead of hanging its caller.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQL dialect, for the statements that cannot be written once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

/// The connection pools of one database.
#[derive(Clone)]
pub(super) enum Backend {
    /// Reads go to `reader`, so they never queue behind writes.
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    Postgres(PgPool),
}

impl Backend {
    /// Connects to `url` (`sqlite:path`, `sqlite://path`, `postgres://…`) and
    /// applies the migrations the database lacks.
    pub(super) async fn connect(url: &str) -> Result<Self, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            connect_sqlite(url).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            connect_postgres(url).await?
        } else {
            return Err(StoreError::Invalid(format!(
                "unsupported database URL {}: expected sqlite:<path> or postgres://…",
                redacted(url)
            )));
        };
        let migrations = migrator(backend.dialect());
        let applied = match &backend {
            Self::Sqlite { writer, .. } => migrations.run(writer).await,
            Self::Postgres(pool) => migrations.run(pool).await,
        };
        applied.map_err(|error| {
            StoreError::Database(format!(
                "applying the migrations to {}: {error}",
                redacted(url)
            ))
        })?;
        Ok(backend)
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub(super) async fn close(&self) {
        match self {
            Self::Sqlite { writer, reader } => {
                writer.close().await;
                reader.close().await;
            }
            Self::Postgres(pool) => pool.close().await,
        }
    }

    pub(super) fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite { .. } => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// How many writing transactions can make progress at once.
    pub(super) fn concurrent_writers(&self) -> usize {
        match self {
            Self::Sqlite { .. } => SQLITE_WRITERS as usize,
            // Leave connections for the workers and the readers.
            Self::Postgres(_) => (POSTGRES_CONNECTIONS / 2) as usize,
        }
    }

    /// Starts a read-write transaction. On SQLite it takes the write lock at
    /// once, so a transaction that reads before it writes cannot fail halfway
    /// because another process wrote in between.
    /// The time it takes (mostly waiting for a connection, or on SQLite
    /// for the write lock) is counted in the process's metrics.
    pub(super) async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let started = std::time::Instant::now();
        let tx = match self {
            Self::Sqlite { writer, .. } => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        };
        crate::metrics::metrics()
            .transaction_start_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(tx)
    }

    /// Runs a read-only statement.
    pub(super) async fn fetch_all(&self, statement: Statement) -> Result<Vec<Row>, sqlx::Error> {
        Ok(match self {
            Self::Sqlite { reader, .. } => rows(bind(statement).fetch_all(reader).await?),
            Self::Postgres(pool) => rows(bind(statement).fetch_all(pool).await?),
        })
    }

    /// Runs a read-only statement that yields at most one row.
    pub(super) async fn fetch_optional(
        &self,
        statement: Statement,
    ) -> Result<Option<Row>, sqlx::Error> {
        Ok(match self {
            Self::Sqlite { reader, .. } => {
                bind(statement).fetch_optional(reader).await?.map(Row::from)
            }
            Self::Postgres(pool) => bind(statement).fetch_optional(pool).await?.map(Row::from),
        })
    }

    /// Runs one writing statement on its own (it commits by itself) and returns
    /// the rows of its `RETURNING` clause.
    pub(super) async fn write_returning(
        &self,
        statement: Statement,
    ) -> Result<Vec<Row>, sqlx::Error> {
        Ok(match self {
            Self::Sqlite { writer, .. } => rows(bind(statement).fetch_all(writer).await?),
            Self::Postgres(pool) => rows(bind(statement).fetch_all(pool).await?),
        })
    }

    /// Runs one writing statement on its own and returns how many rows it changed.
    pub(super) async fn write(&self, statement: Statement) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Self::Sqlite { writer, .. } => bind(statement).execute(writer).await?.rows_affected(),
            Self::Postgres(pool) => bind(statement).execute(pool).await?.rows_affected(),
        })
    }
}

async fn connect_sqlite(url: &str) -> Result<Backend, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|error| StoreError::Invalid(format!("invalid SQLite URL {url}: {error}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: every commit reaches the disk before it returns, so a 202 holds
        // through a power cut too. Concurrent publishes share a commit (group
        // commit), which keeps the fsyncs few.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true);
    let open = |connections: u32| {
        SqlitePoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
    };
    let failed = |error| StoreError::Database(format!("opening {url}: {error}"));
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if in_memory {
        // An in-memory database lives in its connections: one pool, one
        // connection that never closes, or the data would vanish.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(failed)?;
        return Ok(Backend::Sqlite {
            writer: pool.clone(),
            reader: pool,
        });
    }
    // The writer first: it creates the file the readers open.
    let writer = open(SQLITE_WRITERS).await.map_err(failed)?;
    let reader = open(SQLITE_READERS).await.map_err(failed)?;
    Ok(Backend::Sqlite { writer, reader })
}

async fn connect_postgres(url: &str) -> Result<Backend, StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|error| {
        StoreError::Invalid(format!("invalid PostgreSQL URL {}: {error}", redacted(url)))
    })?;
    let pool = PgPoolOptions::new()
        .max_connections(POSTGRES_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|error| {
            StoreError::Database(format!("connecting to {}: {error}", redacted(url)))
        })?;
    Ok(Backend::Postgres(pool))
}

/// `url` without its password, fit for an error message or a log line.
pub(super) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// Whether `error` is a unique constraint refusing a duplicate key.
pub(super) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_unique_violation())
}

/// A transaction on either backend. Dropped without [`Tx::commit`], it rolls back.
pub(super) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// One PostgreSQL connection held for statements that must share a session
/// (advisory locks), outside any transaction (`VACUUM` cannot run in one).
pub(super) struct Session(sqlx::pool::PoolConnection<Postgres>);

impl Backend {
    /// A connection of PostgreSQL's pool of its own; SQLite has no use for one.
    pub(super) async fn dedicated(&self) -> Result<Session, sqlx::Error> {
        match self {
            Self::Postgres(pool) => Ok(Session(pool.acquire().await?)),
            Self::Sqlite { .. } => Err(sqlx::Error::Configuration(
                "SQLite has no sessions to hold".into(),
            )),
        }
    }
}

/// A [`Session`] holding one of PostgreSQL's advisory locks, so that one
/// node of a cluster at a time does a piece of housekeeping.
pub(super) struct LockedSession {
    /// `None` once unlocked.
    session: Option<Session>,
    lock: &'static str,
}

impl Backend {
    /// A session holding the advisory lock `lock` (an SQL expression of a
    /// `bigint`), or `None` while another session holds it. PostgreSQL only.
    pub(super) async fn try_advisory_lock(
        &self,
        lock: &'static str,
    ) -> Result<Option<LockedSession>, sqlx::Error> {
        let mut session = self.dedicated().await?;
        let locked = session
            .fetch_optional(Statement::once(format!(
                "SELECT pg_try_advisory_lock({lock}) AS locked"
            )))
            .await?
            .is_some_and(|row| matches!(row.get::<bool>("locked"), Ok(true)));
        Ok(locked.then_some(LockedSession {
            session: Some(session),
            lock,
        }))
    }
}

impl LockedSession {
    pub(super) fn session(&mut self) -> &mut Session {
        self.session
            .as_mut()
            .expect("a session is held until unlocked")
    }

    /// Releases the lock (and the session, back to the pool).
    pub(super) async fn unlock(mut self) -> Result<(), sqlx::Error> {
        let mut session = self.session.take().expect("unlocked once");
        session
            .execute(Statement::once(format!(
                "SELECT pg_advisory_unlock({})",
                self.lock
            )))
            .await
            .map(drop)
    }
}

impl Drop for LockedSession {
    /// Dropped still locked (its work was cancelled), the connection is
    /// closed rather than pooled: PostgreSQL releases the lock with it, where
    /// a pooled connection would hold it for good.
    fn drop(&mut self) {
        if let Some(Session(connection)) = self.session.take() {
            drop(connection.detach());
        }
    }
}

impl Session {
    pub(super) async fn fetch_optional(
        &mut self,
        statement: Statement,
    ) -> Result<Option<Row>, sqlx::Error> {
        Ok(bind(statement)
            .fetch_optional(&mut *self.0)
            .await?
            .map(Row::from))
    }

    pub(super) async fn execute(&mut self, statement: Statement) -> Result<u64, sqlx::Error> {
        Ok(bind(statement).execute(&mut *self.0).await?.rows_affected())
    }
}

impl Tx {
    pub(super) async fn fetch_all(
        &mut self,
        statement: Statement,
    ) -> Result<Vec<Row>, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(tx) => rows(bind(statement).fetch_all(&mut **tx).await?),
            Self::Postgres(tx) => rows(bind(statement).fetch_all(&mut **tx).await?),
        })
    }

    pub(super) async fn fetch_optional(
        &mut self,
        statement: Statement,
    ) -> Result<Option<Row>, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(tx) => bind(statement)
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::from),
            Self::Postgres(tx) => bind(statement)
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::from),
        })
    }

    pub(super) fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs `statement` and returns how many rows it changed.
    pub(super) async fn execute(&mut self, statement: Statement) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(tx) => bind(statement).execute(&mut **tx).await?.rows_affected(),
            Self::Postgres(tx) => bind(statement).execute(&mut **tx).await?.rows_affected(),
        })
    }

    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(tx) => tx.commit().await,
            Self::Postgres(tx) => tx.commit().await,
        }
    }

    /// Ends the transaction, changing nothing. Dropping it would too, but only
    /// when its connection is next used: until then, the rows it locked stay
    /// locked for everyone else.
    pub(super) async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(tx) => tx.rollback().await,
            Self::Postgres(tx) => tx.rollback().await,
        }
    }
}

/// A parameter of a statement.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Text(Option<String>),
    Integer(Option<i64>),
    Boolean(bool),
    Bytes(Vec<u8>),
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Self::Text(Some(text))
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Self::Text(Some(text.to_owned()))
    }
}

impl From<Option<String>> for Value {
    fn from(text: Option<String>) -> Self {
        Self::Text(text)
    }
}

impl From<Option<&str>> for Value {
    fn from(text: Option<&str>) -> Self {
        Self::Text(text.map(str::to_owned))
    }
}

impl From<i64> for Value {
    fn from(integer: i64) -> Self {
        Self::Integer(Some(integer))
    }
}

impl From<u32> for Value {
    fn from(integer: u32) -> Self {
        Self::Integer(Some(integer.into()))
    }
}

impl From<Option<i64>> for Value {
    fn from(integer: Option<i64>) -> Self {
        Self::Integer(integer)
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Self::Boolean(flag)
    }
}

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Bytes(bytes)
    }
}

/// SQL and its parameters, `$1` first.
#[derive(Debug, Clone)]
pub(super) struct Statement {
    sql: Cow<'static, str>,
    parameters: Vec<Value>,
    /// Whether each connection keeps it prepared for the next run.
    cached: bool,
}

impl Statement {
    /// A statement run often with the same text: prepared once per connection.
    pub(super) fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        Self {
            sql: sql.into(),
            parameters: Vec::new(),
            cached: true,
        }
    }

    /// A statement run now and then: not kept prepared (maintenance
    /// commands, which cannot be, among them).
    pub(super) fn once(sql: impl Into<Cow<'static, str>>) -> Self {
        Self {
            cached: false,
            ..Self::new(sql)
        }
    }

    pub(super) fn bind(mut self, value: impl Into<Value>) -> Self {
        self.push(value);
        self
    }

    pub(super) fn push(&mut self, value: impl Into<Value>) {
        self.parameters.push(value.into());
    }
}

/// Rows per multi-row statement, at most (see [`recurring_chunks`]): a hundred
/// rows keep the widest table's statement at 1,300 parameters, far under
/// SQLite's limit of 32,766, while a 1,000-event batch still takes only a few
/// dozen statements.
pub(super) const ROWS_PER_STATEMENT: usize = 100;

/// The row counts [`recurring_chunks`] cuts to, largest first.
const RECURRING_SIZES: [usize; 5] = [ROWS_PER_STATEMENT, 64, 16, 4, 1];

/// `rows` cut into chunks of a few fixed sizes, largest first, so that every
/// multi-row statement built from a chunk has a text that recurs and stays
/// prepared on its connection. PostgreSQL takes about a millisecond to plan a
/// statement of a hundred rows, as long as it takes to run it; a worker that
/// records 64 outcomes at a time, or a capture of the few publishes that
/// arrived together, would pay that on every transaction.
pub(super) fn recurring_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = RECURRING_SIZES
            .into_iter()
            .find(|&size| size <= rows.len())?;
        let (chunk, rest) = rows.split_at(size);
        rows = rest;
        Some(chunk)
    })
}

/// SQL assembled together with its parameters: each placeholder is written
/// where its value is bound, so text and parameters cannot drift apart.
///
/// On SQLite the placeholders are anonymous (`?`): SQLite finds a named one
/// (`$n`) by a linear search of those before it, which makes preparing and
/// binding a statement with a thousand of them quadratic.
pub(super) struct SqlBuilder {
    dialect: Dialect,
    sql: String,
    parameters: Vec<Value>,
}

impl SqlBuilder {
    pub(super) fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            sql: String::new(),
            parameters: Vec::new(),
        }
    }

    /// Appends SQL text.
    pub(super) fn sql(&mut self, text: &str) -> &mut Self {
        self.sql.push_str(text);
        self
    }

    /// Appends the placeholder of `value` and binds it.
    pub(super) fn parameter(&mut self, value: impl Into<Value>) -> &mut Self {
        self.parameters.push(value.into());
        match self.dialect {
            Dialect::Sqlite => self.sql.push('?'),
            Dialect::Postgres => {
                self.sql.push('$');
                self.sql.push_str(&self.parameters.len().to_string());
            }
        }
        self
    }

    /// Appends ` AND <condition> <placeholder>` for each filter, binding its
    /// value: `("status =", "failed".into())`.
    pub(super) fn and_each(&mut self, filters: Vec<(&str, Value)>) -> &mut Self {
        for (condition, value) in filters {
            self.sql(" AND ").sql(condition).sql(" ").parameter(value);
        }
        self
    }

    /// Appends `values` as a comma-separated list of placeholders.
    pub(super) fn list(&mut self, values: impl IntoIterator<Item = Value>) -> &mut Self {
        for (position, value) in values.into_iter().enumerate() {
            if position > 0 {
                self.sql.push_str(", ");
            }
            self.parameter(value);
        }
        self
    }

    /// Appends the rows of a `VALUES` clause: `(?, ?), (?, ?)`.
    pub(super) fn rows<R: IntoIterator<Item = Value>>(
        &mut self,
        rows: impl IntoIterator<Item = R>,
    ) -> &mut Self {
        for (position, row) in rows.into_iter().enumerate() {
            self.sql(if position > 0 { ", (" } else { "(" });
            self.list(row).sql(")");
        }
        self
    }

    /// The statement, kept prepared on each connection if `cached`: worth it
    /// only for a text that recurs. Leaves the builder empty.
    pub(super) fn build(&mut self, cached: bool) -> Statement {
        Statement {
            sql: Cow::Owned(std::mem::take(&mut self.sql)),
            parameters: std::mem::take(&mut self.parameters),
            cached,
        }
    }
}

/// The statement as a sqlx query for backend `DB`.
fn bind<'q, DB>(statement: Statement) -> Query<'q, DB, <DB as Database>::Arguments>
where
    DB: Database + HasStatementCache,
    Option<String>: for<'e> Encode<'e, DB> + Type<DB>,
    Option<i64>: for<'e> Encode<'e, DB> + Type<DB>,
    bool: for<'e> Encode<'e, DB> + Type<DB>,
    Vec<u8>: for<'e> Encode<'e, DB> + Type<DB>,
{
    let mut query = sqlx::query(AssertSqlSafe(statement.sql)).persistent(statement.cached);
    for value in statement.parameters {
        query = match value {
            Value::Text(text) => query.bind(text),
            Value::Integer(integer) => query.bind(integer),
            Value::Boolean(flag) => query.bind(flag),
            Value::Bytes(bytes) => query.bind(bytes),
        };
    }
    query
}

fn rows<R: Into<Row>>(rows: Vec<R>) -> Vec<Row> {
    rows.into_iter().map(Into::into).collect()
}

/// A result row of either backend.
pub(super) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl From<SqliteRow> for Row {
    fn from(row: SqliteRow) -> Self {
        Self::Sqlite(row)
    }
}

impl From<PgRow> for Row {
    fn from(row: PgRow) -> Self {
        Self::Postgres(row)
    }
}

impl Row {
    /// The value of `column`.
    pub(super) fn get<T>(&self, column: &str) -> Result<T, StoreError>
    where
        T: for<'r> Decode<'r, Sqlite>
            + Type<Sqlite>
            + for<'r> Decode<'r, Postgres>
            + Type<Postgres>,
    {
        let value = match self {
            Self::Sqlite(row) => row.try_get(column),
            Self::Postgres(row) => row.try_get(column),
        };
        value.map_err(|error| StoreError::Corrupt(format!("column {column}: {error}")))
    }

    /// An integer column that holds a `u32` (counts, durations).
    pub(super) fn get_u32(&self, column: &str) -> Result<u32, StoreError> {
        let value: i64 = self.get(column)?;
        u32::try_from(value)
            .map_err(|_| StoreError::Corrupt(format!("column {column}: {value} is out of range")))
    }

    /// A text column that holds an id of kind `T`.
    pub(super) fn get_id<T>(
        &self,
        column: &str,
        parse: fn(&str) -> Result<T, InvalidId>,
    ) -> Result<T, StoreError> {
        let text: String = self.get(column)?;
        parse(&text).map_err(|error| StoreError::Corrupt(format!("column {column}: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_dialect() {
        let build = |dialect| {
            let mut builder = SqlBuilder::new(dialect);
            builder
                .sql("INSERT INTO t (a, b) VALUES ")
                .rows([
                    [Value::from(1_i64), Value::from("x")],
                    [2_i64.into(), "y".into()],
                ])
                .sql(" RETURNING a WHERE a > ")
                .parameter(0_i64);
            builder.build(false)
        };
        let sqlite = build(Dialect::Sqlite);
        assert_eq!(
            sqlite.sql,
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) RETURNING a WHERE a > ?"
        );
        let postgres = build(Dialect::Postgres);
        assert_eq!(
            postgres.sql,
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) RETURNING a WHERE a > $5"
        );
        assert_eq!(postgres.parameters, sqlite.parameters);
        assert_eq!(postgres.parameters.len(), 5);
    }

    #[test]
    fn recurring_chunks_take_the_largest_sizes_first() {
        let sizes = |count: usize| {
            let rows = vec![(); count];
            recurring_chunks(&rows).map(<[()]>::len).collect::<Vec<_>>()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(64), [64]);
        assert_eq!(sizes(256), [100, 100, 16, 16, 16, 4, 4]);
        assert_eq!(sizes(87), [64, 16, 4, 1, 1, 1]);
        for count in 0..300 {
            assert_eq!(sizes(count).iter().sum::<usize>(), count);
        }
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redacted("postgres://weft:s3cret@db:5432/weft"),
            "postgres://weft:***@db:5432/weft"
        );
        assert_eq!(
            redacted("postgres://weft@db/weft"),
            "postgres://weft@db/weft"
        );
        assert_eq!(redacted("sqlite:weft.db"), "sqlite:weft.db");
    }
}
