//! Who Weft may reach: the SSRF guard refuses internal addresses unless an
//! operator allows them, after resolving names, and says so in the history.

use serde_json::json;
use std::time::Duration;
use weft_engine::delivery::NetworkPolicy;
use weft_tests::receiver::Receiver;
use weft_tests::weft::{Backend, TestWeft};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_to_internal_addresses_are_refused_and_dead_lettered() {
    let mut weft = TestWeft::start_without_workers(Backend::Sqlite).await;
    weft.set_network_policy(NetworkPolicy::default());
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
