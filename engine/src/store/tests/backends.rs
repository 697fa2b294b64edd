//! Runs a test body against each backend. PostgreSQL is not optional: if it is
//! unreachable the tests fail and say so, since skipping would let the
//! PostgreSQL half of the store go untested.

use crate::store::Store;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use std::future::Future;

/// Where the tests find PostgreSQL unless `WEFT_TEST_POSTGRES_URL` says otherwise.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs `test` on a fresh SQLite database, then on a fresh PostgreSQL schema.
pub(crate) async fn on_both_backends<Test, Run>(test: Test)
where
    Test: Fn(Store) -> Run + Send + Sync + 'static,
    Run: Future<Output = ()> + Send + 'static,
{
    let test = std::sync::Arc::new(test);
    on_both_databases(move |url| {
        let test = test.clone();
        async move { test(connect(&url).await).await }
    })
    .await;
}

/// Runs `test` with the URL of a fresh SQLite database, then of a fresh
/// PostgreSQL schema, for tests that connect themselves.
pub(crate) async fn on_both_databases<Test, Run>(test: Test)
where
    Test: Fn(String) -> Run,
    Run: Future<Output = ()> + Send + 'static,
{
    on_sqlite_then_postgres(Scope::Schema, test).await;
}

/// Like [`on_both_databases`], with a PostgreSQL database of the test's own:
/// for tests of what `VACUUM` reclaims, which any open transaction of a
/// neighbouring test in the same database would hold back.
pub(crate) async fn on_both_databases_alone<Test, Run>(test: Test)
where
    Test: Fn(String) -> Run,
    Run: Future<Output = ()> + Send + 'static,
{
    on_sqlite_then_postgres(Scope::Database, test).await;
}

async fn on_sqlite_then_postgres<Test, Run>(scope: Scope, test: Test)
where
    Test: Fn(String) -> Run,
    Run: Future<Output = ()> + Send + 'static,
{
    let directory = tempfile::tempdir().expect("creating a temporary directory");
    let sqlite_url = format!("sqlite://{}", directory.path().join("weft.db").display());
    run_reporting("SQLite", test(sqlite_url)).await;

    let scratch = Scratch::create(scope).await;
    let outcome = tokio::spawn(test(scratch.url())).await;
    scratch.drop().await;
    report("PostgreSQL", outcome);
}

/// Opens `url`, failing the test with the reason if it cannot.
pub(crate) async fn connect(url: &str) -> Store {
    Store::connect(url)
        .await
        .unwrap_or_else(|error| panic!("connecting the store to {url}: {error}"))
        .with_keyring(std::sync::Arc::new(crate::secrets::Keyring::ephemeral()))
}

async fn run_reporting(backend: &str, run: impl Future<Output = ()> + Send + 'static) {
    report(backend, tokio::spawn(run).await);
}

/// Re-raises a test body's panic after saying which backend it failed on.
fn report(backend: &str, outcome: Result<(), tokio::task::JoinError>) {
    if let Err(error) = outcome {
        eprintln!("the test failed on {backend}");
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("the test on {backend} did not finish: {error}"),
        }
    }
}

/// What a test gets of PostgreSQL to itself.
#[derive(Clone, Copy)]
enum Scope {
    /// A schema of the shared test database.
    Schema,
    /// A database of its own on the same server.
    Database,
}

/// A PostgreSQL schema or database that lives as long as one test.
struct Scratch {
    server: String,
    name: String,
    scope: Scope,
}

impl Scratch {
    async fn create(scope: Scope) -> Self {
        let server =
            std::env::var("WEFT_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
        let name = format!("weft_test_{}", ulid::Ulid::new().to_string().to_lowercase());
        let mut connection = PgConnection::connect(&server)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "PostgreSQL is unreachable at {server}: {error}. The store's tests run on \
                 PostgreSQL too: start it, or set WEFT_TEST_POSTGRES_URL to one that runs."
                )
            });
        let create = match scope {
            Scope::Schema => format!("CREATE SCHEMA {name}"),
            Scope::Database => format!("CREATE DATABASE {name}"),
        };
        sqlx::query(sqlx::AssertSqlSafe(create.clone()))
            .execute(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("{create} on {server}: {error}"));
        Self {
            server,
            name,
            scope,
        }
    }

    /// The server's URL, led to this schema or database.
    fn url(&self) -> String {
        let (base, query) = match self.server.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (self.server.as_str(), None),
        };
        match self.scope {
            Scope::Schema => {
                let separator = if query.is_some() { '&' } else { '?' };
                format!(
                    "{}{separator}options[search_path]={}",
                    self.server, self.name
                )
            }
            Scope::Database => {
                let (host, _database) = base.rsplit_once('/').unwrap_or((base, ""));
                let query = query.map(|query| format!("?{query}")).unwrap_or_default();
                format!("{host}/{}{query}", self.name)
            }
        }
    }

    async fn drop(self) {
        let Self {
            server,
            name,
            scope,
        } = self;
        let drop = match scope {
            Scope::Schema => format!("DROP SCHEMA {name} CASCADE"),
            Scope::Database => format!("DROP DATABASE {name} WITH (FORCE)"),
        };
        let dropped = async {
            let mut connection = PgConnection::connect(&server).await?;
            sqlx::query(sqlx::AssertSqlSafe(drop.clone()))
                .execute(&mut connection)
                .await
        };
        if let Err(error) = dropped.await {
            eprintln!("could not {drop} on {server}: {error}");
        }
    }
}
