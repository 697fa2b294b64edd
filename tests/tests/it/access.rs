//! Who may do what: API keys and their roles, tenants kept apart, keys limited
//! to networks, revocation, and the bearer tokens of a trusted issuer.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::time::Duration;
use weft_engine::auth::{TokenIssuer, TokenKey};
use weft_tests::receiver::Receiver;
use weft_tests::weft::{Api, BACKENDS, Backend, TestWeft};

pub const WAIT: Duration = Duration::from_secs(10);

/// Every authenticated route, with a body where it takes one. The ids do not
/// exist: what matters is that nothing is looked at before the caller is known.
fn every_route() -> Vec<(&'static str, &'static str, Option<Value>)> {
    let event = json!({ "type": "stock.updated", "data": {} });
    vec![
        ("POST", "/v1/events", Some(event.clone())),
        (
            "POST",
            "/v1/events/batch",
            Some(json!({ "events": [event] })),
        ),
        ("GET", "/v1/events/evt_01", None),
        ("GET", "/v1/endpoints", None),
        (
            "POST",
            "/v1/endpoints",
            Some(json!({ "name": "x", "url": "http://127.0.0.1:9" })),
        ),
        ("GET", "/v1/endpoints/ep_01", None),
        (
            "PUT",
            "/v1/endpoints/ep_01",
            Some(json!({ "name": "x", "url": "http://127.0.0.1:9" })),
        ),
        ("DELETE", "/v1/endpoints/ep_01", None),
        ("POST", "/v1/endpoints/ep_01/replay-failed", Some(json!({}))),
        ("GET", "/v1/subscriptions", None),
        ("POST", "/v1/subscriptions", Some(json!({}))),
        ("GET", "/v1/subscriptions/sub_01", None),
        ("PUT", "/v1/subscriptions/sub_01", Some(json!({}))),
        ("DELETE", "/v1/subscriptions/sub_01", None),
        ("POST", "/v1/subscriptions/sub_01/preview", Some(event)),
        ("GET", "/v1/deliveries", None),
        ("GET", "/v1/deliveries/dlv_01", None),
        ("GET", "/v1/deliveries/dlv_01/attempts", None),
        ("POST", "/v1/deliveries/dlv_01/replay", None),
        ("GET", "/v1/event-types", None),
        (
            "POST",
            "/v1/event-types",
            Some(json!({ "name": "a.b", "schema": {} })),
        ),
        ("GET", "/v1/event-types/stock.updated", None),
        ("GET", "/v1/plugins", None),
        ("POST", "/v1/plugins", Some(json!({}))),
        ("GET", "/v1/plugins/slack", None),
        ("GET", "/v1/api-keys", None),
        (
            "POST",
            "/v1/api-keys",
            Some(json!({ "name": "x", "role": "admin" })),
        ),
        ("DELETE", "/v1/api-keys/key_01", None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_but_health_and_the_api_document_is_open_without_a_valid_key() {
    let weft = TestWeft::start_without_workers(Backend::Sqlite).await;
    let credentials = [
        (None, "no credential"),
        (Some("Basic YWRtaW46YWRtaW4="), "not a bearer credential"),
        (
            Some("Bearer weft_thisKeyWasNeverIssuedByThisServer000"),
            "not valid",
        ),
        (
            Some("Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln"),
            "no token issuer",
        ),
    ];
    for (authorization, why) in credentials {
        let headers: Vec<(&str, &str)> = authorization
            .map(|value| vec![("authorization", value)])
            .unwrap_or_default();
        let anonymous = Api::new(weft.url.clone());
        for (method, path, body) in every_route() {
            let (status, problem) = anonymous.call(method, path, body.as_ref(), &headers).await;
            assert_eq!(
                status, 401,
                "{method} {path} with {authorization:?}: {problem}"
            );
            assert!(
                problem["detail"].as_str().unwrap().contains(why),
                "{method} {path}: expected {why:?} in {problem}"
            );
        }
    }
    let anonymous = Api::new(weft.url.clone());
    assert_eq!(anonymous.get("/health").await.0, 200);
    assert_eq!(anonymous.get("/openapi.json").await.0, 200);
    weft.stop().await;
}

/// Something a caller tries, and which roles may.
struct Action {
    what: &'static str,
    method: &'static str,
    path: String,
    body: Option<Value>,
    /// The status it gets when allowed.
    allowed_status: u16,
    allowed: &'static [&'static str],
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_does_what_it_may_and_is_refused_the_rest() {
    // No workers: the delivery stays pending, so every replay of it is accepted.
    let weft = TestWeft::start_without_workers(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = weft.endpoint(&receiver.url, 1).await;
    weft.subscription(&endpoint, json!({ "event_types": ["stock.updated"] }))
        .await;
    let sample = weft_tests::sample_event_json("stock.updated");
    let event = json!({ "type": "stock.updated", "data": sample["data"] });
    let (_, published) = weft.post("/v1/events", &event).await;
    let delivery = weft
        .wait_for_deliveries(published["id"].as_str().unwrap(), WAIT, |d| d.len() == 1)
        .await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let actions = [
        Action {
            what: "read endpoints",
            method: "GET",
            path: "/v1/endpoints".into(),
            body: None,
            allowed_status: 200,
            allowed: &["admin", "integration-admin", "viewer"],
        },
        Action {
            what: "read deliveries",
            method: "GET",
            path: format!("/v1/deliveries/{delivery}/attempts"),
            body: None,
            allowed_status: 200,
            allowed: &["admin", "integration-admin", "viewer"],
        },
        Action {
            what: "publish",
            method: "POST",
            path: "/v1/events".into(),
            body: Some(event.clone()),
            allowed_status: 202,
            allowed: &["admin", "publisher"],
        },
        Action {
            what: "create an endpoint",
            method: "POST",
            path: "/v1/endpoints".into(),
            body: Some(json!({ "name": "more", "url": receiver.url })),
            allowed_status: 201,
            allowed: &["admin", "integration-admin"],
        },
        Action {
            what: "create a subscription",
            method: "POST",
            path: "/v1/subscriptions".into(),
            body: Some(json!({ "name": "more", "endpoint_id": endpoint, "event_types": ["x.y"] })),
            allowed_status: 201,
            allowed: &["admin", "integration-admin"],
        },
        Action {
            what: "replay",
            method: "POST",
            path: format!("/v1/deliveries/{delivery}/replay"),
            body: None,
            allowed_status: 202,
            allowed: &["admin", "integration-admin"],
        },
        Action {
            what: "list keys",
            method: "GET",
            path: "/v1/api-keys".into(),
            body: None,
            allowed_status: 200,
            allowed: &["admin"],
        },
        Action {
            what: "create a key",
            method: "POST",
            path: "/v1/api-keys".into(),
            body: Some(json!({ "name": "ci", "role": "publisher" })),
            allowed_status: 201,
            allowed: &["admin"],
        },
    ];
    for role in ["admin", "integration-admin", "publisher", "viewer"] {
        let caller = weft.api_as("default", role).await;
        for Action {
            what,
            method,
            path,
            body,
            allowed_status,
            allowed,
        } in &actions
        {
            let (status, answer) = caller.call(method, path, body.as_ref(), &[]).await;
            if allowed.contains(&role) {
                assert_eq!(status, *allowed_status, "{role} may {what}: {answer}");
            } else {
                assert_eq!(status, 403, "{role} may not {what}: {answer}");
                assert_eq!(answer["type"], "forbidden");
                let detail = answer["detail"].as_str().unwrap();
                assert!(
                    detail.contains(&format!("the {role} role may not")),
                    "{detail}"
                );
            }
        }
    }
    weft.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_see_each_others_objects() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let acme = weft.api_as("acme", "admin").await;
        let globex = weft.api_as("globex", "admin").await;
        let (_, endpoint) = acme
            .post(
                "/v1/endpoints",
                &json!({ "name": "acme hook", "url": receiver.url }),
            )
            .await;
        let endpoint = endpoint["id"].as_str().unwrap().to_owned();
        let (status, subscription) = acme
            .post(
                "/v1/subscriptions",
                &json!({ "name": "stock", "endpoint_id": endpoint, "event_types": ["stock.updated"] }),
            )
            .await;
        assert_eq!(status, 201, "{subscription}");
        let subscription = subscription["id"].as_str().unwrap().to_owned();
        let sample = weft_tests::sample_event_json("stock.updated");
        let (_, event) = acme
            .post(
                "/v1/events",
                &json!({ "type": "stock.updated", "data": sample["data"] }),
            )
            .await;
        let event = event["id"].as_str().unwrap().to_owned();
        let delivery = acme
            .wait_for_deliveries(&event, WAIT, |d| d.len() == 1)
            .await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, keys) = acme.get("/v1/api-keys").await;
        let acme_key = keys["api_keys"][0]["id"].as_str().unwrap().to_owned();

        let not_found = [
            ("GET", format!("/v1/endpoints/{endpoint}")),
            ("PUT", format!("/v1/endpoints/{endpoint}")),
            ("DELETE", format!("/v1/endpoints/{endpoint}")),
            ("POST", format!("/v1/endpoints/{endpoint}/replay-failed")),
            ("GET", format!("/v1/subscriptions/{subscription}")),
            ("DELETE", format!("/v1/subscriptions/{subscription}")),
            ("POST", format!("/v1/subscriptions/{subscription}/preview")),
            ("GET", format!("/v1/events/{event}")),
            ("GET", format!("/v1/deliveries/{delivery}")),
            ("GET", format!("/v1/deliveries/{delivery}/attempts")),
            ("POST", format!("/v1/deliveries/{delivery}/replay")),
            ("DELETE", format!("/v1/api-keys/{acme_key}")),
        ];
        let bodies =
            json!({ "name": "mine now", "url": receiver.url, "type": "stock.updated", "data": {} });
        for (method, path) in &not_found {
            let (status, problem) = globex.call(method, path, Some(&bodies), &[]).await;
            assert_eq!(status, 404, "{method} {path}: {problem}");
        }
        for (list, field) in [
            ("/v1/endpoints", "endpoints"),
            ("/v1/subscriptions", "subscriptions"),
            ("/v1/deliveries", "deliveries"),
        ] {
            let (_, listed) = globex.get(list).await;
            assert_eq!(listed[field], json!([]), "{list}");
        }
        let (_, keys) = globex.get("/v1/api-keys").await;
        assert_eq!(keys["api_keys"].as_array().unwrap().len(), 1);
        let (status, problem) = globex
            .post(
                "/v1/subscriptions",
                &json!({ "name": "steal", "endpoint_id": endpoint, "event_types": ["*"] }),
            )
            .await;
        assert_eq!(
            (status, problem["field"].clone()),
            (422, json!("endpoint_id"))
        );
        // Acme's objects are untouched.
        assert_eq!(acme.get(&format!("/v1/endpoints/{endpoint}")).await.0, 200);
        assert_eq!(acme.get("/v1/api-keys").await.0, 200);
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_shown_once_checked_and_stop_working_when_revoked() {
    for backend in BACKENDS {
        let weft = TestWeft::start_without_workers(backend).await;
        let (status, created) = weft
            .post(
                "/v1/api-keys",
                &json!({ "name": "dashboard", "role": "viewer", "allowed_networks": ["127.0.0.0/8"] }),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let secret = created["key"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("weft_"), "{created}");
        assert_eq!(created["hint"], secret[secret.len() - 4..]);
        let id = created["id"].as_str().unwrap().to_owned();
        let (_, listed) = weft.get("/v1/api-keys").await;
        let text = listed.to_string();
        assert!(!text.contains(&secret), "a listing shows the key: {text}");
        assert!(text.contains(&id) && text.contains("dashboard"), "{text}");

        let viewer = Api::new(weft.url.clone()).with_key(secret.clone());
        assert_eq!(viewer.get("/v1/endpoints").await.0, 200);
        let (status, revoked) = weft
            .call("DELETE", &format!("/v1/api-keys/{id}"), None, &[])
            .await;
        assert_eq!(status, 200, "{revoked}");
        assert!(revoked["revoked_at"].is_i64(), "{revoked}");
        let (status, problem) = viewer.get("/v1/endpoints").await;
        assert_eq!(status, 401, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("revoked"),
            "{problem}"
        );

        // The admin key in use cannot revoke itself.
        let (_, listed) = weft.get("/v1/api-keys").await;
        let own = listed["api_keys"][0]["id"].as_str().unwrap();
        let (status, problem) = weft
            .call("DELETE", &format!("/v1/api-keys/{own}"), None, &[])
            .await;
        assert_eq!(status, 409, "{problem}");

        let bad = [
            (json!({ "name": "x", "role": "root" }), "role", "not a role"),
            (json!({ "name": "", "role": "viewer" }), "name", "1 to 200"),
            (
                json!({ "name": "x", "role": "viewer", "allowed_networks": ["10.0.0.0/8", "ten/8"] }),
                "allowed_networks",
                "\"ten/8\"",
            ),
            (
                json!({ "name": "x", "role": "publisher", "ingest_per_second": 0 }),
                "ingest_per_second",
                "1 to",
            ),
            (
                json!({ "name": "x", "role": "viewer", "tenant": "other" }),
                "tenant",
                "unknown field",
            ),
        ];
        for (body, field, why) in bad {
            let (status, problem) = weft.post("/v1/api-keys", &body).await;
            assert_eq!(
                (status, &problem["field"]),
                (400, &json!(field)),
                "{problem}"
            );
            assert!(
                problem["detail"].as_str().unwrap().contains(why),
                "{problem}"
            );
        }
        let (_, listed) = weft.get("/v1/api-keys").await;
        assert_eq!(
            listed["api_keys"].as_array().unwrap().len(),
            2,
            "nothing half-made"
        );
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limited_to_networks_is_refused_from_elsewhere() {
    let weft = TestWeft::start_without_workers(Backend::Sqlite).await;
    let elsewhere = weft
        .key("default", "viewer", &["10.0.0.0/8", "2001:db8::/32"])
        .await;
    let (status, problem) = Api::new(weft.url.clone())
        .with_key(elsewhere)
        .get("/v1/endpoints")
        .await;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("may not be used from 127.0.0.1"),
        "{problem}"
    );
    let loopback = weft.key("default", "viewer", &["127.0.0.1/32"]).await;
    let (status, _) = Api::new(weft.url.clone())
        .with_key(loopback)
        .get("/v1/endpoints")
        .await;
    assert_eq!(status, 200);
    weft.stop().await;
}

fn token(claims: &Value, algorithm: Algorithm, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, key).unwrap()
}

fn claims(tenant: &str, role: &str, expires_in: i64) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    json!({ "iss": "https://login.example", "aud": "weft", "sub": "erp-sync",
            "exp": now + expires_in, "weft_tenant": tenant, "weft_role": role })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_the_trusted_issuer_act_for_the_tenant_and_role_they_name() {
    let fixtures = weft_tests::repo_root().join("tests/fixtures");
    let private = std::fs::read(fixtures.join("token-issuer-rs256.key.pem")).unwrap();
    let public = std::fs::read(fixtures.join("token-issuer-rs256.pub.pem")).unwrap();
    let shared = b"the issuer and weft share these 32+ bytes".to_vec();
    let issuers = [
        (
            TokenKey::Hs256(shared.clone()),
            Algorithm::HS256,
            EncodingKey::from_secret(&shared),
        ),
        (
            TokenKey::Rs256Pem(public),
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&private).unwrap(),
        ),
    ];
    for (verifying, algorithm, signing) in issuers {
        let issuer = TokenIssuer::new(
            &verifying,
            "weft",
            Some("https://login.example"),
            "weft_tenant",
            "weft_role",
        )
        .unwrap();
        let weft = TestWeft::start_trusting(Backend::Sqlite, issuer).await;
        let receiver = Receiver::start().await;
        let as_token = |claims: &Value| {
            Api::new(weft.url.clone()).with_key(token(claims, algorithm, &signing))
        };
        let acme_admin = as_token(&claims("acme", "integration-admin", 300));
        let (status, endpoint) = acme_admin
            .post(
                "/v1/endpoints",
                &json!({ "name": "acme", "url": receiver.url }),
            )
            .await;
        assert_eq!(status, 201, "{algorithm:?}: {endpoint}");
        let (_, listed) = as_token(&claims("acme", "viewer", 300))
            .get("/v1/endpoints")
            .await;
        assert_eq!(listed["endpoints"][0]["id"], endpoint["id"]);
        // Another tenant's token sees none of it; a viewer's cannot change it.
        let (_, listed) = as_token(&claims("globex", "admin", 300))
            .get("/v1/endpoints")
            .await;
        assert_eq!(listed["endpoints"], json!([]));
        let (status, _) = as_token(&claims("acme", "viewer", 300))
            .post(
                "/v1/endpoints",
                &json!({ "name": "x", "url": receiver.url }),
            )
            .await;
        assert_eq!(status, 403);

        let mut foreign = claims("acme", "admin", 300);
        foreign["aud"] = json!("another-service");
        let refused = [
            (claims("acme", "admin", -120), "expired"),
            (foreign, "another audience"),
            (claims("acme", "superuser", 300), "not a role"),
        ];
        for (claims, why) in refused {
            let (status, problem) = as_token(&claims).get("/v1/endpoints").await;
            assert_eq!(status, 401, "{problem}");
            assert!(
                problem["detail"].as_str().unwrap().contains(why),
                "{problem}"
            );
        }
        // API keys keep working beside tokens.
        assert_eq!(weft.get("/v1/endpoints").await.0, 200);
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_faster_than_a_keys_rate_gets_429_and_loses_nothing() {
    let weft = TestWeft::start_without_workers(Backend::Sqlite).await;
    let publisher =
        Api::new(weft.url.clone()).with_key(weft.key_limited("default", "publisher", 5).await);
    let sample = weft_tests::sample_event_json("stock.updated");
    let event = json!({ "type": "stock.updated", "data": sample["data"] });
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for _ in 0..20 {
        let (status, headers, body) = publisher.post_with_headers("/v1/events", &event).await;
        match status {
            202 => accepted.push(body["id"].as_str().unwrap().to_owned()),
            429 => {
                refused += 1;
                assert_eq!(body["type"], "rate_limited", "{body}");
                assert_eq!(headers["retry-after"], "1", "{body}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    // A burst of one second's worth, and whatever refilled while it ran.
    assert!(
        (5..=7).contains(&accepted.len()),
        "{} accepted",
        accepted.len()
    );
    assert_eq!(accepted.len() + refused, 20);
    let batch = json!({ "events": [event.clone(), event.clone()] });
    assert_eq!(publisher.post("/v1/events/batch", &batch).await.0, 429);
    // Other credentials keep their own allowance.
    assert_eq!(weft.post("/v1/events", &event).await.0, 202);
    // Every accepted event is stored; a refused one is sent again after the wait.
    for id in &accepted {
        assert_eq!(weft.get(&format!("/v1/events/{id}")).await.0, 200);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(publisher.post("/v1/events", &event).await.0, 202);
    weft.stop().await;
}
