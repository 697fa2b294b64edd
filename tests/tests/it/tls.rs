//! TLS to receivers, against real TLS receivers on loopback with a test CA:
//! certificates verified by default, an endpoint's own CA bundle, mutual TLS,
//! verification off only where the operator allows it, plain http refused by
//! default; and the Salesforce and Shopify templates delivering over HTTPS
//! with OAuth and an access token.

use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use weft_engine::delivery::NetworkPolicy;
use weft_tests::pki::TestPki;
use weft_tests::receiver::Receiver;
use weft_tests::token_server::TokenServer;
use weft_tests::weft::{Backend, TestWeft, loopback_allowed};

const WAIT: Duration = Duration::from_secs(10);

/// Creates an endpoint from `spec` (one attempt, short timeout) subscribed to
/// `stock.updated`; returns its id.
async fn endpoint_for_stock(weft: &TestWeft, mut spec: Value) -> String {
    spec["timeout_ms"] = json!(3000);
    spec["retry"] = json!({ "max_attempts": 1, "backoff": { "type": "fixed", "delay_ms": 50 } });
    let (status, endpoint) = weft.post("/v1/endpoints", &spec).await;
    assert_eq!(status, 201, "{endpoint}");
    let id = endpoint["id"].as_str().unwrap().to_owned();
    weft.subscription(&id, json!({ "event_types": ["stock.updated"] }))
        .await;
    id
}

/// The settled delivery of `event` to `endpoint`.
async fn settled(weft: &TestWeft, event: &str, endpoint: &str) -> Value {
    let deliveries = weft
        .wait_for_deliveries(event, WAIT, |d| {
            d.iter().any(|d| {
                d["endpoint_id"] == endpoint
                    && ["succeeded", "failed"].contains(&d["status"].as_str().unwrap())
            })
        })
        .await;
    deliveries
        .into_iter()
        .find(|d| d["endpoint_id"] == endpoint)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receivers_certificate_is_verified_by_default_or_against_the_endpoints_ca() {
    let pki = TestPki::new("Weft test CA");
    let stranger = TestPki::new("Another CA");
    let receiver = Receiver::start_tls(pki.server_config(&["127.0.0.1"], None)).await;
    let weft = TestWeft::start_under(
        Backend::Sqlite,
        loopback_allowed().with_unverified_tls(true),
    )
    .await;
    let url = receiver.url.clone();
    let system_roots =
        endpoint_for_stock(&weft, json!({ "name": "system roots", "url": url })).await;
    let own_ca = endpoint_for_stock(
        &weft,
        json!({ "name": "own CA", "url": url, "tls": { "ca_certificates": pki.ca_pem } }),
    )
    .await;
    let wrong_ca = endpoint_for_stock(
        &weft,
        json!({ "name": "wrong CA", "url": url, "tls": { "ca_certificates": stranger.ca_pem } }),
    )
    .await;
    let unverified = endpoint_for_stock(
        &weft,
        json!({ "name": "unverified", "url": url, "tls": { "verify": false } }),
    )
    .await;
    let event = weft.publish_sample("stock.updated", |_| {}).await;

    for refused in [&system_roots, &wrong_ca] {
        let delivery = settled(&weft, &event, refused).await;
        assert_eq!(delivery["status"], "failed", "{delivery}");
        let error = delivery["last_error"].as_str().unwrap();
        assert!(error.contains("invalid peer certificate"), "{error}");
    }
    for accepted in [&own_ca, &unverified] {
        let delivery = settled(&weft, &event, accepted).await;
        assert_eq!(delivery["status"], "succeeded", "{delivery}");
    }
    assert_eq!(
        receiver.count(),
        2,
        "only the two verified-as-asked deliveries got through"
    );
    weft.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_presents_the_endpoints_client_certificate() {
    let server_pki = TestPki::new("Receiver CA");
    let client_pki = TestPki::new("Partner client CA");
    let receiver =
        Receiver::start_tls(server_pki.server_config(&["127.0.0.1"], Some(&client_pki))).await;
    let weft = TestWeft::start(Backend::Sqlite).await;
    let client = client_pki.client("weft.example");
    let without = endpoint_for_stock(
        &weft,
        json!({ "name": "no client certificate", "url": receiver.url,
                "tls": { "ca_certificates": server_pki.ca_pem } }),
    )
    .await;
    let with = endpoint_for_stock(
        &weft,
        json!({ "name": "client certificate", "url": receiver.url,
                "tls": { "ca_certificates": server_pki.ca_pem,
                         "client_certificate": client.certificate_pem,
                         "client_key": client.key_pem } }),
    )
    .await;
    let event = weft.publish_sample("stock.updated", |_| {}).await;
    let refused = settled(&weft, &event, &without).await;
    assert_eq!(refused["status"], "failed", "{refused}");
    assert!(receiver.failed_handshakes() >= 1);
    let accepted = settled(&weft, &event, &with).await;
    assert_eq!(accepted["status"], "succeeded", "{accepted}");
    assert_eq!(receiver.count(), 1);

    // The key is a secret: shown as a hint; the certificate is public.
    let (_, shown) = weft.get(&format!("/v1/endpoints/{with}")).await;
    assert_eq!(
        shown["tls"]["client_certificate"],
        json!(client.certificate_pem)
    );
    let key = shown["tls"]["client_key"].as_str().unwrap();
    assert!(
        !key.contains("PRIVATE KEY") && key.starts_with('…'),
        "{key}"
    );
    weft.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_and_unverified_tls_are_refused_unless_the_operator_allows_them() {
    let pki = TestPki::new("Weft test CA");
    let receiver = Receiver::start_tls(pki.server_config(&["127.0.0.1"], None)).await;
    let https_only = NetworkPolicy::allowing(&["127.0.0.0/8".into()]).unwrap();
    let weft = TestWeft::start_under(Backend::Sqlite, https_only).await;
    let refused = [
        (
            json!({ "name": "plain", "url": "http://127.0.0.1:9/hooks" }),
            "url",
            "--allow-http",
        ),
        (
            json!({ "name": "plain token URL", "url": receiver.url,
                    "auth": { "type": "oauth2_client_credentials", "token_url": "http://127.0.0.1:9/token",
                              "client_id": "c", "client_secret": "s" } }),
            "auth.token_url",
            "--allow-http",
        ),
        (
            json!({ "name": "unverified", "url": receiver.url, "tls": { "verify": false } }),
            "tls.verify",
            "--allow-unverified-tls",
        ),
        (
            json!({ "name": "bad CA", "url": receiver.url, "tls": { "ca_certificates": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" } }),
            "tls.ca_certificates",
            "certificate",
        ),
        (
            json!({ "name": "key without certificate", "url": receiver.url, "tls": { "client_key": "k" } }),
            "tls.client_certificate",
            "needs its certificate",
        ),
    ];
    for (spec, field, hint) in refused {
        let (status, problem) = weft.post("/v1/endpoints", &spec).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(hint),
            "{problem}"
        );
    }
    let (_, listed) = weft.get("/v1/endpoints").await;
    assert_eq!(listed["endpoints"], json!([]), "nothing was stored");

    let https = endpoint_for_stock(
        &weft,
        json!({ "name": "https", "url": receiver.url, "tls": { "ca_certificates": pki.ca_pem } }),
    )
    .await;
    let event = weft.publish_sample("stock.updated", |_| {}).await;
    assert_eq!(settled(&weft, &event, &https).await["status"], "succeeded");
    weft.stop().await;
}

fn example_config(template: &str) -> Value {
    let path = weft_tests::repo_root().join(format!("plugins/{template}/example-config.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_salesforce_and_shopify_templates_deliver_over_https_with_their_credentials() {
    const SALESFORCE: &str = "acme-water.my.salesforce.com";
    const SHOPIFY: &str = "acme-water.myshopify.com";
    let pki = TestPki::new("Weft test CA");
    let receiver = Receiver::start_tls(pki.server_config(&[SALESFORCE, SHOPIFY], None)).await;
    // Both APIs' names lead to the receiver, as DNS would lead to theirs.
    let at = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), receiver.port());
    let policy = loopback_allowed()
        .pinning(SALESFORCE, at)
        .pinning(SHOPIFY, at);
    let weft = TestWeft::start_under(Backend::Sqlite, policy).await;
    // The token server is on HTTPS too, under the same private CA: the
    // endpoint's CA bundle verifies both.
    let tokens = TokenServer::start_tls(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        "weft-connected-app",
        "sf-consumer-secret-0123",
        pki.server_config(&["127.0.0.1"], None),
    )
    .await;
    assert!(tokens.url.starts_with("https://"));

    let templates = [
        (
            "salesforce",
            "customer.created",
            json!({ "type": "oauth2_client_credentials", "token_url": tokens.url,
                    "client_id": "weft-connected-app", "client_secret": "sf-consumer-secret-0123",
                    "client_authentication": "request_body" }),
            SALESFORCE,
        ),
        (
            "shopify",
            "stock.updated",
            json!({ "type": "api_key", "header": "X-Shopify-Access-Token", "value": "shpat_0123456789abcdef" }),
            SHOPIFY,
        ),
    ];
    for (template, event_type, auth, host) in &templates {
        let (status, endpoint) = weft
            .post(
                "/v1/endpoints",
                &json!({ "name": template, "url": format!("https://{host}"), "auth": auth,
                         "tls": { "ca_certificates": pki.ca_pem }, "timeout_ms": 3000 }),
            )
            .await;
        assert_eq!(status, 201, "{endpoint}");
        weft.subscription(
            endpoint["id"].as_str().unwrap(),
            json!({ "event_types": [event_type],
                    "plugins": [{ "plugin": template, "version": "0.1.0", "config": example_config(template) }] }),
        )
        .await;
        weft.publish_sample(event_type, |_| {}).await;
    }
    let received = receiver.wait_for(2, WAIT).await;
    let salesforce = received
        .iter()
        .find(|r| r.header("host") == Some(SALESFORCE) || r.path.starts_with("/services/"))
        .expect("a request to Salesforce");
    assert_eq!(salesforce.method, "PATCH");
    assert_eq!(
        salesforce.path,
        "/services/data/v61.0/sobjects/Account/Weft_Customer_Id__c/CUST-01204"
    );
    assert_eq!(salesforce.header("authorization"), Some("Bearer token-1"));
    assert_eq!(salesforce.json()["Name"], "Borneo Aqua Systems Sdn Bhd");
    let grant = &tokens.requests()[0];
    assert_eq!(grant.form["client_id"], "weft-connected-app");

    let shopify = received
        .iter()
        .find(|r| r.path.starts_with("/admin/api/"))
        .expect("a request to Shopify");
    assert_eq!(shopify.path, "/admin/api/2025-07/graphql.json");
    assert_eq!(
        shopify.header("x-shopify-access-token"),
        Some("shpat_0123456789abcdef")
    );
    assert_eq!(shopify.header("authorization"), None);
    assert!(
        shopify.json()["query"]
            .as_str()
            .unwrap()
            .contains("inventorySetQuantities"),
        "{}",
        shopify.json()
    );
    weft.stop().await;
}
