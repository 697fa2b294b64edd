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
    let directory = tempfile::tempdir().expect("creating a temporary directory");
    let sqlite_url = format!("sqlite://{}", directory.path().join("weft.db").display());
    run_reporting("SQLite", test(sqlite_url)).await;

    let schema = TestSchema::create().await;
    let outcome = tokio::spawn(test(schema.url())).await;
    schema.drop().await;
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

/// A PostgreSQL schema that lives as long as one test.
struct TestSchema {
    server: String,
    name: String,
}

impl TestSchema {
    async fn create() -> Self {
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
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("creating schema {name} on {server}: {error}"));
        Self { server, name }
    }

    /// The server's URL, with this schema as the search path.
    fn url(&self) -> String {
        let separator = if self.server.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options[search_path]={}",
            self.server, self.name
        )
    }

    async fn drop(self) {
        let Self { server, name } = self;
        let dropped = async {
            let mut connection = PgConnection::connect(&server).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {name} CASCADE")))
                .execute(&mut connection)
                .await
        };
        if let Err(error) = dropped.await {
            eprintln!("could not drop test schema {name} on {server}: {error}");
        }
    }
}
