//! Who Weft may reach: the SSRF guard refuses internal addresses unless an
//! operator allows them, after resolving names, and says so in the history.

use serde_json::json;
use std::time::Duration;
use weft_engine::delivery::NetworkPolicy;
use weft_tests::receiver::Receiver;
use weft_tests::weft::{Backend, TestWeft};

const WAIT: Duration = Duration::from_secs(10);
/// Workers re-read an endpoint at least this often.
const ENDPOINT_EDITS_APPLY: Duration = Duration::from_millis(1_200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_to_internal_addresses_are_refused_and_dead_lettered() {
    let mut weft = TestWeft::start_without_workers(Backend::Sqlite).await;
    // Plain http allowed, so that the guard, not the scheme, refuses.
    weft.set_network_policy(NetworkPolicy::default().with_plain_http(true));
    weft.start_workers(1);
    let receiver = Receiver::start().await;
    let port = receiver
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let targets = [
        (receiver.url.clone(), "127.0.0.1 is a loopback address"),
        (
            format!("http://localhost:{port}/"),
            "refused to connect to localhost",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "169.254.169.254 is a link-local address",
        ),
    ];
    for (url, why) in targets {
        let (endpoint, _) = weft.endpoint(&url, 5).await;
        weft.subscription(&endpoint, json!({ "event_types": ["stock.updated"] }))
            .await;
        let event = weft.publish_sample("stock.updated", |_| {}).await;
        let deliveries = weft
            .wait_for_deliveries(&event, WAIT, |d| {
                !d.is_empty() && d.iter().all(|d| d["status"] == "failed")
            })
            .await;
        for delivery in &deliveries {
            let error = delivery["last_error"].as_str().unwrap();
            assert!(
                error.contains("refused by the network policy"),
                "{url}: {error}"
            );
            assert_eq!(delivery["attempts"], 1, "{url}: a refusal is not retried");
        }
        let refused = deliveries
            .iter()
            .find(|d| d["endpoint_id"] == endpoint.as_str())
            .unwrap();
        assert!(
            refused["last_error"].as_str().unwrap().contains(why),
            "{refused}"
        );
        weft.call(
            "DELETE",
            &format!(
                "/v1/subscriptions/{}",
                refused["subscription_id"].as_str().unwrap()
            ),
            None,
            &[],
        )
        .await;
    }
    assert_eq!(receiver.count(), 0, "nothing reached the receiver");
    weft.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_signs_beside_the_new_one_until_its_grace_ends() {
    for backend in weft_tests::weft::BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let (endpoint, first) = weft.endpoint(&receiver.url, 1).await;
        weft.subscription(&endpoint, json!({ "event_types": ["stock.updated"] }))
            .await;
        let rotate = format!("/v1/endpoints/{endpoint}/rotate-secret");
        let (status, rotated) = weft
            .post(&rotate, &json!({ "grace_period_seconds": 3600 }))
            .await;
        assert_eq!(status, 200, "{rotated}");
        let second = rotated["secret"].as_str().unwrap().to_owned();
        assert!(second.starts_with("whsec_") && second != first, "{rotated}");
        let hint = rotated["previous_secret"]["secret"].as_str().unwrap();
        assert!(hint.ends_with(&first[first.len() - 4..]), "{rotated}");
        assert!(
            !rotated.to_string().contains(&first),
            "the old secret is shown"
        );
        let expires = rotated["previous_secret"]["expires_at"].as_i64().unwrap();
        let in_an_hour = weft_engine::model::now_millis() + 3_600_000;
        assert!(
            (in_an_hour - 5_000..=in_an_hour).contains(&expires),
            "{rotated}"
        );
        let (_, shown) = weft.get(&format!("/v1/endpoints/{endpoint}")).await;
        assert!(
            !shown.to_string().contains(&second),
            "GET shows the new secret"
        );

        // Workers re-read endpoints every second.
        tokio::time::sleep(ENDPOINT_EDITS_APPLY).await;
        // During the grace period both secrets sign: receivers on either verify.
        weft.publish_sample("stock.updated", |_| {}).await;
        let received = receiver.wait_for(1, WAIT).await;
        let signatures = received[0].header("webhook-signature").unwrap();
        assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
        assert!(received[0].signed_with(&first), "the old secret verifies");
        assert!(received[0].signed_with(&second), "the new secret verifies");

        // Without a grace period the old secret stops at once.
        let third = "whsec_dGhpcmQgc2VjcmV0IG9mIHRoaXJ0eS10d28gYnl0ZXM=";
        let (status, rotated) = weft
            .post(
                &rotate,
                &json!({ "secret": third, "grace_period_seconds": 0 }),
            )
            .await;
        assert_eq!(status, 200, "{rotated}");
        assert_eq!(rotated["secret"], third);
        tokio::time::sleep(ENDPOINT_EDITS_APPLY).await;
        weft.publish_sample("stock.updated", |_| {}).await;
        let received = receiver.wait_for(2, WAIT).await;
        assert_eq!(
            received[1]
                .header("webhook-signature")
                .unwrap()
                .split(' ')
                .count(),
            1
        );
        assert!(received[1].signed_with(third));
        assert!(!received[1].signed_with(&second));

        for (body, field) in [
            (json!({ "secret": "not-a-secret" }), "secret"),
            (
                json!({ "grace_period_seconds": 99_999_999 }),
                "grace_period_seconds",
            ),
        ] {
            let (status, problem) = weft.post(&rotate, &body).await;
            assert_eq!(
                (status, &problem["field"]),
                (422, &json!(field)),
                "{problem}"
            );
        }
        let (_, log) = weft.get("/v1/audit?action=endpoint.rotate_secret").await;
        assert_eq!(log["entries"].as_array().unwrap().len(), 2, "{log}");
        for secret in [first.as_str(), second.as_str(), third] {
            assert!(
                !log.to_string().contains(secret),
                "a secret is in the audit log"
            );
        }
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ed25519_endpoint_signs_v1a_that_its_public_key_verifies() {
    let weft = TestWeft::start(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    let (status, created) = weft
        .post(
            "/v1/endpoints",
            &json!({ "name": "erp", "url": receiver.url, "signature_scheme": "ed25519" }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let signing_key = created["secret"].as_str().unwrap().to_owned();
    assert!(signing_key.starts_with("whsk_"), "{created}");
    let public_key = created["public_key"].as_str().unwrap().to_owned();
    assert!(public_key.starts_with("whpk_"), "{created}");
    let endpoint = created["id"].as_str().unwrap().to_owned();
    let (_, shown) = weft.get(&format!("/v1/endpoints/{endpoint}")).await;
    assert_eq!(shown["public_key"], public_key.as_str());
    assert!(
        shown["secret"].as_str().unwrap().starts_with("whsk_…"),
        "{shown}"
    );
    assert!(
        !shown.to_string().contains(&signing_key),
        "GET shows the signing key"
    );

    weft.subscription(&endpoint, json!({ "event_types": ["stock.updated"] }))
        .await;
    weft.publish_sample("stock.updated", |_| {}).await;
    let received = receiver.wait_for(1, WAIT).await;
    let signature = received[0].header("webhook-signature").unwrap();
    assert!(signature.starts_with("v1a,"), "{signature}");
    assert!(
        received[0].signed_with(&public_key),
        "the public key verifies"
    );

    let (status, problem) = weft
        .post(
            "/v1/endpoints",
            &json!({ "name": "x", "url": receiver.url, "signature_scheme": "rsa" }),
        )
        .await;
    assert_eq!(
        (status, &problem["field"]),
        (422, &json!("signature_scheme")),
        "{problem}"
    );
    weft.stop().await;
}
