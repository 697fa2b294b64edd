//! History retention as an operator runs it: `weft serve` prunes history
//! past each tenant's retention in the background, `weft history prune`
//! by hand, and a pending delivery is never pruned. History is made old by
//! moving its capture time back in the database, as days passing would.

use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};
use weft_tests::process::{BOOTSTRAP_KEY, WeftProcess};
use weft_tests::receiver::{Receiver, Reply};
use weft_tests::weft::{Api, BACKENDS, TestDatabase};

const WAIT: Duration = Duration::from_secs(30);
const DAY_MS: i64 = 86_400_000;

/// Moves every event and delivery of `database_url` `days` back in time.
async fn age_history(database_url: &str, days: i64) {
    let shift = days * DAY_MS;
    let statements = [
        format!("UPDATE events SET received_at = received_at - {shift}"),
        format!("UPDATE deliveries SET created_at = created_at - {shift}"),
    ];
    if database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
        for statement in statements {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(database_url).await.unwrap();
        for statement in statements {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    }
}

/// Runs the `weft` command line; its standard output, or the failure.
fn run_weft(args: &[&str]) -> Result<String, String> {
    let output = Command::new(weft_tests::weft_binary())
        .args(args)
        .env("WEFT_MASTER_KEY", weft_tests::process::MASTER_KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout}{stderr}"))
    }
}

/// An admin key of `tenant`, made as an operator makes a tenant's first.
fn admin_of(tenant: &str, database_url: &str) -> String {
    let printed = run_weft(&[
        "keys",
        "create",
        "--database-url",
        database_url,
        "--tenant",
        tenant,
        "--role",
        "admin",
        "--name",
        "admins",
    ])
    .unwrap();
    printed
        .split_whitespace()
        .find(|word| word.starts_with("weft_"))
        .unwrap_or_else(|| panic!("no key in {printed:?}"))
        .to_owned()
}

/// A tenant's endpoint to `ok` and one to a receiver that always fails (a
/// long retry policy: its deliveries stay pending), with a subscription each.
async fn configure(api: &Api, ok: &Receiver, failing: &Receiver) {
    let (delivered, _) = api.endpoint(&ok.url, 3).await;
    api.subscription(
        &delivered,
        json!({ "event_types": ["sales_order.created"] }),
    )
    .await;
    let (stuck, _) = api.endpoint(&failing.url, 50).await;
    api.subscription(&stuck, json!({ "event_types": ["payment.received"] }))
        .await;
}

/// Publishes one event that is delivered and one that stays pending; waits
/// for the first to succeed and the second to be tried.
async fn publish_both(api: &Api) -> (String, String) {
    let delivered = api.publish_sample("sales_order.created", |_| {}).await;
    let pending = api.publish_sample("payment.received", |_| {}).await;
    api.wait_for_deliveries(&delivered, WAIT, |d| {
        d.len() == 1 && d[0]["status"] == "succeeded"
    })
    .await;
    // Attempted, or parked once the endpoint's circuit opened.
    api.wait_for_deliveries(&pending, WAIT, |d| {
        d.len() == 1
            && d[0]["status"] == "pending"
            && (d[0]["attempts"].as_u64() >= Some(1) || d[0]["last_error"].is_string())
    })
    .await;
    (delivered, pending)
}

async fn event_status(api: &Api, event: &str) -> u16 {
    api.get(&format!("/v1/events/{event}")).await.0
}

/// Waits until event `event` is gone (404) from `api`.
async fn wait_until_pruned(api: &Api, event: &str) {
    let deadline = Instant::now() + WAIT;
    while event_status(api, event).await != 404 {
        assert!(Instant::now() < deadline, "event {event} was never pruned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The only delivery of `event`, as the API shows it.
async fn delivery_of(api: &Api, event: &str) -> Value {
    let (_, body) = api.get(&format!("/v1/deliveries?event_id={event}")).await;
    let deliveries = body["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{body:#}");
    deliveries[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_past_each_tenants_retention_is_pruned_and_pending_deliveries_stay() {
    for backend in BACKENDS {
        let database = TestDatabase::create(backend).await;
        let workdir = tempfile::tempdir().unwrap();
        let (url, dir) = (database.url.clone(), workdir.path().to_owned());
        let weft = tokio::task::spawn_blocking(move || {
            WeftProcess::start_with(Some(&url), &dir, &["--history-prune-interval-seconds", "1"])
        })
        .await
        .unwrap();
        let ok = Receiver::start().await;
        let failing = Receiver::start().await;
        failing.answer_all(Reply::status(503));
        // `default` keeps the server's 90 days; `acme` chooses 200.
        let default = Api::new(weft.url.clone()).with_key(BOOTSTRAP_KEY);
        let acme = Api::new(weft.url.clone()).with_key(admin_of("acme", &database.url));
        let (status, settings) = default.get("/v1/settings").await;
        assert_eq!(status, 200, "{settings}");
        assert_eq!(
            settings,
            json!({ "history_retention_days": null, "effective_history_retention_days": 90 })
        );
        let (status, settings) = acme
            .call(
                "PUT",
                "/v1/settings",
                Some(&json!({ "history_retention_days": 200 })),
                &[],
            )
            .await;
        assert_eq!(status, 200, "{settings}");
        assert_eq!(settings["effective_history_retention_days"], 200);
        configure(&default, &ok, &failing).await;
        configure(&acme, &ok, &failing).await;
        let (default_delivered, default_pending) = publish_both(&default).await;
        let (acme_delivered, acme_pending) = publish_both(&acme).await;
        let delivery = delivery_of(&default, &default_delivered).await;

        // A hundred days pass.
        age_history(&database.url, 100).await;
        wait_until_pruned(&default, &default_delivered).await;
        let (status, _) = default
            .get(&format!(
                "/v1/deliveries/{}",
                delivery["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, 404, "{backend:?}: the delivery went with its event");
        // Still being retried: kept, with its event.
        assert_eq!(event_status(&default, &default_pending).await, 200);
        assert_eq!(
            delivery_of(&default, &default_pending).await["status"],
            "pending"
        );
        // Within acme's 200 days. A round prunes tenants in name order, so
        // the round that pruned `default` had looked at `acme` already.
        assert_eq!(
            event_status(&acme, &acme_delivered).await,
            200,
            "{backend:?}"
        );

        // acme shortens its retention: the next round prunes its history too.
        let (status, _) = acme
            .call(
                "PUT",
                "/v1/settings",
                Some(&json!({ "history_retention_days": 30 })),
                &[],
            )
            .await;
        assert_eq!(status, 200);
        wait_until_pruned(&acme, &acme_delivered).await;
        assert_eq!(event_status(&acme, &acme_pending).await, 200);
        let (_, audit) = acme.get("/v1/audit?action=settings.update").await;
        let entries = audit["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "{audit:#}");
        assert_eq!(entries[0]["after"]["history_retention_days"], 30);
        assert_eq!(entries[0]["before"]["history_retention_days"], 200);

        // By hand: whatever is older than a second, but what is pending.
        let (fresh, _) = publish_both(&default).await;
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let printed = run_weft(&[
            "history",
            "prune",
            "--older-than",
            "1s",
            "--tenant",
            "default",
            "--database-url",
            &database.url,
        ])
        .unwrap();
        assert!(
            printed.starts_with("pruned 1 delivery (1 attempt), 1 event and "),
            "{backend:?}: {printed}"
        );
        assert_eq!(event_status(&default, &fresh).await, 404);
        assert_eq!(event_status(&default, &default_pending).await, 200);
        drop(weft);
        database.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_settings_and_ages_out_of_range_are_refused_with_the_field_named() {
    let workdir = tempfile::tempdir().unwrap();
    let dir = workdir.path().to_owned();
    let weft = tokio::task::spawn_blocking(move || WeftProcess::start(None, &dir))
        .await
        .unwrap();
    let admin = Api::new(weft.url.clone()).with_key(BOOTSTRAP_KEY);
    for (body, status, detail) in [
        (
            json!({ "history_retention_days": 0 }),
            422,
            "1 to 3650 days",
        ),
        (
            json!({ "history_retention_days": 3651 }),
            422,
            "1 to 3650 days",
        ),
        (
            json!({ "history_retention_days": "30d" }),
            400,
            "history_retention_days",
        ),
        (json!({ "retention": 30 }), 400, "retention"),
    ] {
        let (got, problem) = admin.call("PUT", "/v1/settings", Some(&body), &[]).await;
        assert_eq!(got, status, "{body}: {problem}");
        let text = problem.to_string();
        assert!(text.contains(detail), "{body}: {problem}");
    }
    let (_, settings) = admin.get("/v1/settings").await;
    assert_eq!(
        settings["history_retention_days"],
        Value::Null,
        "nothing was stored"
    );

    // Only an admin may change how long a tenant's history is kept.
    let (_, key) = admin
        .post(
            "/v1/api-keys",
            &json!({ "name": "ops", "role": "integration-admin" }),
        )
        .await;
    let integrator = Api::new(weft.url.clone()).with_key(key["key"].as_str().unwrap());
    let (status, problem) = integrator
        .call(
            "PUT",
            "/v1/settings",
            Some(&json!({ "history_retention_days": 1 })),
            &[],
        )
        .await;
    assert_eq!(status, 403, "{problem}");

    let database_url = format!("sqlite://{}", workdir.path().join("weft.db").display());
    let refused = prune_by_hand(&database_url, "thirty days").unwrap_err();
    assert!(refused.contains("such as 30d"), "{refused}");
    let refused = prune_by_hand(&database_url, "0s").unwrap_err();
    assert!(refused.contains("more than 0"), "{refused}");
}

fn prune_by_hand(database_url: &str, age: &str) -> Result<String, String> {
    run_weft(&[
        "history",
        "prune",
        "--older-than",
        age,
        "--database-url",
        database_url,
    ])
}
