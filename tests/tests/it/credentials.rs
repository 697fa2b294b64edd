//! Who Weft is to receivers: each endpoint authentication method as a real
//! receiver sees it, OAuth tokens cached and refreshed on 401, token URLs
//! under the SSRF guard, and credentials shown to nobody.

use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use weft_engine::delivery::NetworkPolicy;
use weft_tests::receiver::{Receiver, Reply};
use weft_tests::token_server::TokenServer;
use weft_tests::weft::{Api, BACKENDS, Backend, TestWeft};

const WAIT: Duration = Duration::from_secs(10);
const HS256_KEY: &str = "the receiver's shared JWT secret, 32+ bytes";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// An endpoint for `url` authenticating with `auth`, and a subscription of
/// `event_type` to it. Returns the endpoint as the API answered.
async fn authenticated_endpoint(weft: &Api, url: &str, auth: Value, event_type: &str) -> Value {
    let (status, endpoint) = weft
        .post(
            "/v1/endpoints",
            &json!({
                "name": format!("{} receiver", auth["type"].as_str().unwrap()),
                "url": url, "auth": auth, "timeout_ms": 2000,
                "retry": { "max_attempts": 3, "backoff": { "type": "fixed", "delay_ms": 50 } }
            }),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    weft.subscription(
        endpoint["id"].as_str().unwrap(),
        json!({ "event_types": [event_type] }),
    )
    .await;
    endpoint
}

fn rs256_key(half: &str) -> String {
    let path =
        weft_tests::repo_root().join(format!("tests/fixtures/token-issuer-rs256.{half}.pem"));
    std::fs::read_to_string(path).unwrap()
}

fn decoded_jwt(
    token: &str,
    key: jsonwebtoken::DecodingKey,
    algorithm: jsonwebtoken::Algorithm,
) -> Value {
    let mut validation = jsonwebtoken::Validation::new(algorithm);
    validation.set_audience(&["erp-receiver"]);
    validation.set_issuer(&["weft"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap_or_else(|error| panic!("{token}: {error}"))
        .claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_authentication_method_reaches_the_receiver_and_stays_hidden() {
    let weft = TestWeft::start(Backend::Sqlite).await;
    let claims = json!({ "iss": "weft", "aud": "erp-receiver", "sub": "tenant-default" });
    let methods = [
        (
            json!({ "type": "api_key", "header": "X-Partner-Key", "value": "pk_live_4f1b2c9d8e7a6b5c" }),
            "x-partner-key",
        ),
        (
            json!({ "type": "basic", "username": "weft", "password": "correct horse battery staple" }),
            "authorization",
        ),
        (
            json!({ "type": "bearer", "token": "static-token-0123456789abcdef" }),
            "authorization",
        ),
        (
            json!({ "type": "jwt", "algorithm": "HS256", "key": HS256_KEY, "claims": claims, "expires_in_seconds": 120 }),
            "authorization",
        ),
        (
            json!({ "type": "jwt", "algorithm": "RS256", "key": rs256_key("key"), "claims": claims, "header": "X-Weft-Assertion" }),
            "x-weft-assertion",
        ),
    ];
    let mut receivers = Vec::new();
    for (index, (auth, _)) in methods.iter().enumerate() {
        let receiver = Receiver::start().await;
        let endpoint =
            authenticated_endpoint(&weft, &receiver.url, auth.clone(), "stock.updated").await;
        // Shown as hints, never in clear.
        let shown = endpoint["auth"].to_string();
        for (_, secret) in secrets_of(auth) {
            assert!(!shown.contains(&secret), "method {index}: {shown}");
        }
        receivers.push((receiver, endpoint));
    }
    let event = weft.publish_sample("stock.updated", |_| {}).await;

    for ((receiver, endpoint), (auth, header)) in receivers.iter().zip(&methods) {
        let received = receiver.wait_for(1, WAIT).await;
        let value = received[0].header(header).unwrap_or_else(|| {
            panic!(
                "{}: no {header} header in {:?}",
                auth["type"], received[0].headers
            )
        });
        let now = weft_engine::model::now_millis() / 1000;
        match auth["type"].as_str().unwrap() {
            "api_key" => assert_eq!(value, "pk_live_4f1b2c9d8e7a6b5c"),
            "basic" => assert_eq!(value, "Basic d2VmdDpjb3JyZWN0IGhvcnNlIGJhdHRlcnkgc3RhcGxl"),
            "bearer" => assert_eq!(value, "Bearer static-token-0123456789abcdef"),
            "jwt" if auth["algorithm"] == "HS256" => {
                let token = value.strip_prefix("Bearer ").unwrap();
                let claims = decoded_jwt(
                    token,
                    jsonwebtoken::DecodingKey::from_secret(HS256_KEY.as_bytes()),
                    jsonwebtoken::Algorithm::HS256,
                );
                assert_eq!(claims["sub"], "tenant-default");
                let exp = claims["exp"].as_i64().unwrap();
                assert!(
                    (now + 100..=now + 121).contains(&exp),
                    "exp {exp}, now {now}"
                );
            }
            "jwt" => {
                let public = rs256_key("pub");
                let claims = decoded_jwt(
                    value,
                    jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).unwrap(),
                    jsonwebtoken::Algorithm::RS256,
                );
                let exp = claims["exp"].as_i64().unwrap();
                assert!(
                    (now + 40..=now + 61).contains(&exp),
                    "default lifetime 60 s: {exp}"
                );
                assert!(claims["jti"].is_string());
            }
            other => unreachable!("{other}"),
        }

        // The attempt history records the header, not the credential.
        let deliveries = weft
            .wait_for_deliveries(&event, WAIT, |d| {
                d.iter()
                    .any(|d| d["endpoint_id"] == endpoint["id"] && d["status"] == "succeeded")
            })
            .await;
        let delivery = deliveries
            .iter()
            .find(|d| d["endpoint_id"] == endpoint["id"])
            .unwrap();
        let (_, attempts) = weft
            .get(&format!(
                "/v1/deliveries/{}/attempts",
                delivery["id"].as_str().unwrap()
            ))
            .await;
        let recorded = &attempts["attempts"][0]["request_headers"];
        assert_eq!(recorded[*header], "[redacted]", "{recorded}");
    }
    weft.stop().await;
}

/// The secret fields of an `auth` document, by name.
fn secrets_of(auth: &Value) -> Vec<(&'static str, String)> {
    ["value", "password", "token", "client_secret", "key"]
        .into_iter()
        .filter_map(|field| {
            auth[field]
                .as_str()
                .map(|secret| (field, secret.to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_token_is_fetched_once_cached_and_refreshed_once_on_401() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let tokens =
            TokenServer::start(LOOPBACK, "weft-client", "client-secret-9f8e7d6c5b4a", 3600).await;
        let receiver = Receiver::start().await;
        let auth = json!({
            "type": "oauth2_client_credentials", "token_url": tokens.url,
            "client_id": "weft-client", "client_secret": "client-secret-9f8e7d6c5b4a",
            "scopes": ["inventory.write", "orders.read"], "audience": "https://erp-receiver.example"
        });
        let endpoint = authenticated_endpoint(&weft, &receiver.url, auth, "stock.updated").await;

        for _ in 0..3 {
            weft.publish_sample("stock.updated", |_| {}).await;
        }
        let received = receiver.wait_for(3, WAIT).await;
        for request in &received {
            assert_eq!(request.header("authorization"), Some("Bearer token-1"));
        }
        let requests = tokens.requests();
        assert_eq!(
            requests.len(),
            1,
            "one token serves every delivery: {requests:?}"
        );
        let grant = &requests[0];
        assert_eq!(grant.form["grant_type"], "client_credentials");
        assert_eq!(grant.form["scope"], "inventory.write orders.read");
        assert_eq!(grant.form["audience"], "https://erp-receiver.example");
        assert!(
            grant
                .authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Basic ")),
            "client authentication by Basic unless asked otherwise: {grant:?}"
        );
        assert!(!grant.form.contains_key("client_secret"));

        // The receiver revokes token-1: Weft fetches token-2 and sends again,
        // within the same attempt.
        receiver.script_for(
            |request| request.header("authorization") == Some("Bearer token-1"),
            [Reply::status(401)],
        );
        let event = weft.publish_sample("stock.updated", |_| {}).await;
        let received = receiver.wait_for(5, WAIT).await;
        assert_eq!(received[3].header("authorization"), Some("Bearer token-1"));
        assert_eq!(received[4].header("authorization"), Some("Bearer token-2"));
        let deliveries = weft
            .wait_for_deliveries(&event, WAIT, |d| {
                d.iter().all(|d| d["status"] == "succeeded")
            })
            .await;
        assert_eq!(deliveries[0]["attempts"], 1, "{deliveries:?}");
        assert_eq!(tokens.requests().len(), 2);

        // A 401 that a fresh token does not cure is an ordinary failure:
        // one refresh per attempt, no loop.
        receiver.script([Reply::status(401), Reply::status(401)]);
        let event = weft.publish_sample("stock.updated", |_| {}).await;
        let deliveries = weft
            .wait_for_deliveries(&event, WAIT, |d| {
                d.iter().all(|d| d["attempts"].as_u64() >= Some(1))
            })
            .await;
        assert!(tokens.requests().len() <= 4, "{:?}", tokens.requests());
        assert!(!deliveries.is_empty());

        // The client secret is bound to the token URL's origin too: moved
        // elsewhere with only the secret's hint, the change is refused; with
        // the secret given again, it is saved.
        let path = format!("/v1/endpoints/{}", endpoint["id"].as_str().unwrap());
        let (_, shown) = weft.get(&path).await;
        let other_tokens =
            TokenServer::start(LOOPBACK, "weft-client", "client-secret-9f8e7d6c5b4a", 3600).await;
        let mut moved = as_input(&shown);
        moved["auth"]["token_url"] = json!(other_tokens.url);
        let detail = refused_as_unbound(&weft, backend, &path, &moved).await;
        assert!(
            detail.contains("auth.token_url") && detail.contains("auth.client_secret"),
            "{detail}"
        );
        moved["auth"]["client_secret"] = json!("client-secret-9f8e7d6c5b4a");
        let (status, updated) = weft.call("PUT", &path, Some(&moved), &[]).await;
        assert_eq!(status, 200, "{backend:?}: {updated}");
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_and_a_guarded_token_url_fail_the_delivery_with_the_reason() {
    let mut weft = TestWeft::start_without_workers(Backend::Sqlite).await;
    // The receiver's address is allowed, the token server's (127.0.0.2) is not.
    weft.set_network_policy(
        NetworkPolicy::allowing(&["127.0.0.1/32".to_owned()])
            .unwrap()
            .with_plain_http(true),
    );
    weft.start_workers(1);
    let receiver = Receiver::start().await;
    let guarded = TokenServer::start("127.0.0.2".parse().unwrap(), "c", "s-0123456789", 60).await;
    let allowed = TokenServer::start(LOOPBACK, "weft-client", "right-secret-0123", 60).await;
    let cases = [
        (
            json!({ "type": "oauth2_client_credentials", "token_url": guarded.url,
                    "client_id": "c", "client_secret": "s-0123456789" }),
            "127.0.0.2 is a loopback address",
        ),
        (
            json!({ "type": "oauth2_client_credentials", "token_url": allowed.url,
                    "client_id": "weft-client", "client_secret": "wrong-secret-0123",
                    "client_authentication": "request_body" }),
            "the server answered invalid_client (client authentication failed)",
        ),
    ];
    for (auth, reason) in cases {
        let endpoint = authenticated_endpoint(&weft, &receiver.url, auth, "stock.updated").await;
        let event = weft.publish_sample("stock.updated", |_| {}).await;
        let deliveries = weft
            .wait_for_deliveries(&event, WAIT, |d| {
                d.iter()
                    .any(|d| d["endpoint_id"] == endpoint["id"] && d["status"] == "failed")
            })
            .await;
        let failed = deliveries
            .iter()
            .find(|d| d["endpoint_id"] == endpoint["id"])
            .unwrap();
        let error = failed["last_error"].as_str().unwrap();
        assert!(error.contains("the OAuth token request to"), "{error}");
        assert!(error.contains(reason), "{error}");
        assert!(
            !error.contains("s-0123456789") && !error.contains("wrong-secret"),
            "{error}"
        );
        // Delete the subscription so the next case's event has one delivery.
        let (_, subscriptions) = weft.get("/v1/subscriptions").await;
        for subscription in subscriptions["subscriptions"].as_array().unwrap() {
            let path = format!("/v1/subscriptions/{}", subscription["id"].as_str().unwrap());
            weft.call("DELETE", &path, None, &[]).await;
        }
    }
    assert_eq!(receiver.count(), 0, "nothing is sent unauthenticated");
    assert!(
        guarded.requests().is_empty(),
        "the guarded token URL is never reached"
    );
    let requests = allowed.requests();
    assert_eq!(requests[0].form["client_id"], "weft-client");
    assert!(requests[0].authorization.is_none());
    weft.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_that_sends_back_hints_keeps_the_stored_credentials() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let endpoint = authenticated_endpoint(
            &weft,
            &receiver.url,
            json!({ "type": "basic", "username": "weft", "password": "a long enough password" }),
            "stock.updated",
        )
        .await;
        let id = endpoint["id"].as_str().unwrap();
        let (status, mut shown) = weft.get(&format!("/v1/endpoints/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(shown["auth"]["password"], "…word");

        // Bad auth is refused naming the field, and changes nothing.
        let mut bad = json!({ "name": "x", "url": receiver.url, "auth": { "type": "jwt", "algorithm": "HS256", "key": "short" } });
        let (status, problem) = weft
            .call("PUT", &format!("/v1/endpoints/{id}"), Some(&bad), &[])
            .await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["field"], "auth.key");
        bad["auth"] = json!({ "type": "basic", "username": "weft" });
        let (status, problem) = weft
            .call("PUT", &format!("/v1/endpoints/{id}"), Some(&bad), &[])
            .await;
        assert_eq!(status, 400, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("password"),
            "{problem}"
        );

        // GET, change the name, PUT back: the password is kept.
        for field in [
            "id",
            "tenant",
            "secret",
            "created_at",
            "updated_at",
            "disabled_reason",
            "health",
        ] {
            shown.as_object_mut().unwrap().remove(field);
        }
        shown["name"] = json!("renamed");
        let (status, updated) = weft
            .call("PUT", &format!("/v1/endpoints/{id}"), Some(&shown), &[])
            .await;
        assert_eq!(status, 200, "{updated}");
        weft.publish_sample("stock.updated", |_| {}).await;
        let received = receiver.wait_for(1, WAIT).await;
        assert_eq!(
            received[0].header("authorization"),
            Some("Basic d2VmdDphIGxvbmcgZW5vdWdoIHBhc3N3b3Jk")
        );
        weft.stop().await;
    }
}

/// What a GET shows, as a PUT body: the fields the API adds removed.
/// Puts `input` at `path`, expecting it refused for sending stored
/// credentials to another origin; returns the problem's detail.
async fn refused_as_unbound(weft: &Api, backend: Backend, path: &str, input: &Value) -> String {
    let (status, problem) = weft.call("PUT", path, Some(input), &[]).await;
    assert_eq!(status, 422, "{backend:?}: {problem}");
    assert_eq!(problem["type"], "credentials_unbound", "{problem}");
    problem["detail"].as_str().unwrap().to_owned()
}

fn as_input(shown: &Value) -> Value {
    let mut input = shown.clone();
    for field in [
        "id",
        "tenant",
        "secret",
        "created_at",
        "updated_at",
        "disabled_reason",
        "health",
    ] {
        input.as_object_mut().unwrap().remove(field);
    }
    input
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_credentials_go_only_to_the_origin_they_were_given_for() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let receiver = Receiver::start().await;
        let elsewhere = Receiver::start().await;
        let (status, endpoint) = weft
            .post(
                "/v1/endpoints",
                &json!({
                    "name": "crm",
                    "url": format!("{}?token=url-token-0123456789&team=ops", receiver.url),
                    "headers": { "x-api-key": "header key 0123456789", "x-tenant-code": "tenant code 0123456789", "x-source": "erp" },
                    "secret_headers": ["X-Tenant-Code"],
                    "auth": { "type": "basic", "username": "weft", "password": "a long enough password" },
                    "timeout_ms": 2000
                }),
            )
            .await;
        assert_eq!(status, 201, "{endpoint}");
        let id = endpoint["id"].as_str().unwrap().to_owned();
        weft.subscription(&id, json!({ "event_types": ["stock.updated"] }))
            .await;
        let path = format!("/v1/endpoints/{id}");
        let (_, shown) = weft.get(&path).await;
        assert_eq!(shown["headers"]["x-tenant-code"], "…6789", "{shown}");
        assert_eq!(shown["headers"]["x-source"], "erp");
        assert!(
            shown["url"]
                .as_str()
                .unwrap()
                .ends_with("?token=[redacted]&team=ops"),
            "{shown}"
        );

        // Pointed elsewhere with the hints: refused, naming what to give again.
        let mut moved = as_input(&shown);
        moved["url"] = json!(elsewhere.url);
        let detail = refused_as_unbound(&weft, backend, &path, &moved).await;
        for field in [
            "auth.password",
            "headers.x-api-key",
            "headers.x-tenant-code",
        ] {
            assert!(detail.contains(field), "{field}: {detail}");
        }
        let (_, audit) = weft
            .get("/v1/audit?action=endpoint.update&outcome=refused")
            .await;
        let entries = audit["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{audit}");
        assert!(
            entries[0]["detail"]
                .as_str()
                .unwrap()
                .contains("auth.password"),
            "{audit}"
        );
        let (_, unchanged) = weft.get(&path).await;
        assert_eq!(unchanged["url"], shown["url"]);

        // The same origin, another path: the stored credentials stay.
        let mut same_origin = as_input(&shown);
        same_origin["url"] = json!(format!("{}/v2?token=url-token-0123456789", receiver.url));
        let (status, updated) = weft.call("PUT", &path, Some(&same_origin), &[]).await;
        assert_eq!(status, 200, "{backend:?}: {updated}");
        let event = weft.publish_sample("stock.updated", |_| {}).await;
        let received = receiver.wait_for(1, WAIT).await;
        assert_eq!(
            received[0].header("authorization"),
            Some("Basic d2VmdDphIGxvbmcgZW5vdWdoIHBhc3N3b3Jk")
        );
        assert_eq!(
            received[0].header("x-tenant-code"),
            Some("tenant code 0123456789")
        );
        // The receiver has the request a moment before its outcome is recorded.
        let delivered = weft
            .wait_for_deliveries(&event, WAIT, |d| {
                d.first().is_some_and(|d| d["status"] == "succeeded")
            })
            .await;
        let delivery = delivered[0]["id"].as_str().unwrap().to_owned();
        let (_, detail) = weft.get(&format!("/v1/deliveries/{delivery}")).await;
        let attempt = &detail["attempts"][0];
        assert_eq!(
            attempt["request_headers"]["x-tenant-code"], "[redacted]",
            "{attempt}"
        );
        assert!(
            attempt["request_url"]
                .as_str()
                .unwrap()
                .ends_with("?token=[redacted]"),
            "{attempt}"
        );

        // Given again, the credentials may go elsewhere.
        let mut given_again = as_input(&shown);
        given_again["url"] = json!(elsewhere.url);
        given_again["auth"]["password"] = json!("a long enough password");
        given_again["headers"]["x-api-key"] = json!("header key 0123456789");
        given_again["headers"]["x-tenant-code"] = json!("tenant code 0123456789");
        let (status, moved) = weft.call("PUT", &path, Some(&given_again), &[]).await;
        assert_eq!(status, 200, "{backend:?}: {moved}");
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_headers_and_urls_that_could_misdirect_a_request_are_refused() {
    let weft = TestWeft::start(Backend::Sqlite).await;
    let many: serde_json::Map<String, Value> = (0..40)
        .map(|n| (format!("x-header-{n}"), json!("1")))
        .collect();
    let cases = [
        (json!({ "Host": "evil.example" }), None, "headers.Host"),
        (
            json!({ "content-length": "5" }),
            None,
            "headers.content-length",
        ),
        (
            json!({ "Transfer-Encoding": "chunked" }),
            None,
            "headers.Transfer-Encoding",
        ),
        (json!({ "webhook-id": "msg_1" }), None, "headers.webhook-id"),
        (Value::Object(many), None, "headers"),
        (json!({ "x-big": "v".repeat(20_000) }), None, "headers"),
        (
            json!({}),
            Some("https://user:secret@crm.example/hooks"),
            "url",
        ),
        (
            json!({ "x-one": "1" }),
            Some("NOT-A-HEADER"),
            "secret_headers[0]",
        ),
    ];
    for (headers, url_or_secret, field) in cases {
        let mut spec =
            json!({ "name": "x", "url": "https://crm.example/hooks", "headers": headers });
        match url_or_secret {
            Some(url) if url.starts_with("https://") => spec["url"] = json!(url),
            Some(name) => spec["secret_headers"] = json!([name]),
            None => {}
        }
        let (status, problem) = weft.post("/v1/endpoints", &spec).await;
        assert_eq!(status, 422, "{field}: {problem}");
        assert_eq!(problem["field"], field, "{problem}");
        assert!(
            !problem["detail"].as_str().unwrap().contains("secret@"),
            "{problem}"
        );
    }
    weft.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_and_subscription_lists_come_in_pages() {
    for backend in BACKENDS {
        let weft = TestWeft::start(backend).await;
        let mut created = Vec::new();
        for n in 0..5 {
            let (id, _) = weft
                .endpoint(&format!("https://crm{n}.example/hooks"), 1)
                .await;
            weft.subscription(&id, json!({ "event_types": ["*"] }))
                .await;
            created.push(id);
        }
        for (collection, key) in [
            ("/v1/endpoints", "endpoints"),
            ("/v1/subscriptions", "subscriptions"),
        ] {
            let mut seen = Vec::new();
            let mut query = format!("{collection}?limit=2");
            loop {
                let (status, page) = weft.get(&query).await;
                assert_eq!(status, 200, "{page}");
                let items = page[key].as_array().unwrap();
                assert!(items.len() <= 2);
                seen.extend(items.iter().map(|item| item["id"].clone()));
                match page["next_after"].as_str() {
                    Some(after) => query = format!("{collection}?limit=2&after={after}"),
                    None => break,
                }
            }
            assert_eq!(seen.len(), 5, "{backend:?} {collection}: {seen:?}");
            if key == "endpoints" {
                let ids: Vec<Value> = created.iter().map(|id| json!(id)).collect();
                assert_eq!(seen, ids, "oldest first");
            }
        }
        let (status, problem) = weft.get("/v1/endpoints?limit=0").await;
        assert_eq!((status, problem["field"].as_str()), (400, Some("limit")));
        let (status, problem) = weft.get("/v1/subscriptions?after=nope").await;
        assert_eq!((status, problem["field"].as_str()), (400, Some("after")));
        weft.stop().await;
    }
}
