//! The audit log: every change made through the API, by whom and from where,
//! with the object before and after (secrets as hints); every access refused
//! to a known credential; readable by admins through the API and `weft audit`.

use serde_json::{Value, json};
use weft_tests::receiver::Receiver;
use weft_tests::weft::{Api, BACKENDS, Backend, TestWeft};

/// The actions of `tenant`'s audit log, newest first, as `weft`'s admin reads them.
async fn actions(api: &Api, query: &str) -> Vec<String> {
    let (status, log) = api.get(&format!("/v1/audit{query}")).await;
    assert_eq!(status, 200, "{log}");
    log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_recorded_with_who_what_and_the_object_before_and_after() {
    for backend in BACKENDS {
        let weft = TestWeft::start_without_workers(backend).await;
        let receiver = Receiver::start().await;
        let integrator = weft.api_as("default", "integration-admin").await;
        let secret = "whsec_dGhpcyBzZWNyZXQgbXVzdCBuZXZlciBiZSBzaG93bg==";
        let (status, endpoint) = integrator
            .post(
                "/v1/endpoints",
                &json!({ "name": "crm", "url": receiver.url, "secret": secret,
                         "headers": { "Authorization": "Bearer crm-token-never-logged", "X-Tenant": "eu" } }),
            )
            .await;
        assert_eq!(status, 201, "{endpoint}");
        let endpoint = endpoint["id"].as_str().unwrap().to_owned();
        let renamed = json!({ "name": "crm (eu)", "url": receiver.url });
        let path = format!("/v1/endpoints/{endpoint}");
        assert_eq!(
            integrator.call("PUT", &path, Some(&renamed), &[]).await.0,
            200
        );
        let (status, subscription) = integrator
            .post(
                "/v1/subscriptions",
                &json!({ "name": "stock", "endpoint_id": endpoint, "event_types": ["stock.updated"] }),
            )
            .await;
        assert_eq!(status, 201, "{subscription}");
        let subscription = subscription["id"].as_str().unwrap().to_owned();
        let event_type = json!({ "name": "service_ticket.opened", "schema": { "type": "object" } });
        assert_eq!(integrator.post("/v1/event-types", &event_type).await.0, 201);
        let sample = weft_tests::sample_event_json("stock.updated");
        let (_, event) = weft
            .post(
                "/v1/events",
                &json!({ "type": "stock.updated", "data": sample["data"] }),
            )
            .await;
        let delivery = weft
            .wait_for_deliveries(event["id"].as_str().unwrap(), super::access::WAIT, |d| {
                d.len() == 1
            })
            .await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let replay = format!("/v1/deliveries/{delivery}/replay");
        assert_eq!(integrator.call("POST", &replay, None, &[]).await.0, 202);
        let subscription_path = format!("/v1/subscriptions/{subscription}");
        assert_eq!(
            integrator
                .call("DELETE", &subscription_path, None, &[])
                .await
                .0,
            204
        );
        assert_eq!(integrator.call("DELETE", &path, None, &[]).await.0, 204);
        let (_, key) = weft
            .post(
                "/v1/api-keys",
                &json!({ "name": "ci", "role": "publisher" }),
            )
            .await;
        let key_id = key["id"].as_str().unwrap().to_owned();
        let key_secret = key["key"].as_str().unwrap().to_owned();
        let revoke = format!("/v1/api-keys/{key_id}");
        assert_eq!(weft.call("DELETE", &revoke, None, &[]).await.0, 200);
        // A change that is refused records nothing.
        let (status, _) = integrator
            .post(
                "/v1/subscriptions",
                &json!({ "name": "x", "endpoint_id": "ep_01nosuchendpoint", "event_types": ["*"] }),
            )
            .await;
        assert_eq!(status, 422);

        assert_eq!(
            actions(&weft, "").await,
            [
                "api_key.revoke",
                "api_key.create",
                "endpoint.delete",
                "subscription.delete",
                "delivery.replay",
                "event_type.put",
                "subscription.create",
                "endpoint.update",
                "endpoint.create",
            ]
        );
        let (_, log) = weft.get(&format!("/v1/audit?object={endpoint}")).await;
        let entries = log["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 3, "{log}");
        let (_, keys) = weft.get("/v1/api-keys").await;
        let integrator_key = keys["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["role"] == "integration-admin")
            .unwrap()["id"]
            .clone();
        let update = &entries[1];
        assert_eq!(update["action"], "endpoint.update");
        assert_eq!(update["actor"], integrator_key);
        assert_eq!(update["role"], "integration-admin");
        assert_eq!(update["source"], "127.0.0.1");
        assert_eq!(update["outcome"], "done");
        assert_eq!(update["before"]["name"], "crm");
        assert_eq!(update["after"]["name"], "crm (eu)");
        assert!(update["at"].is_i64());
        assert_eq!(entries[2]["before"], Value::Null);
        assert_eq!(entries[0]["after"], Value::Null);
        let whole = weft.get("/v1/audit").await.1.to_string();
        assert!(!whole.contains(secret), "the endpoint secret is in the log");
        assert!(
            !whole.contains("crm-token-never-logged"),
            "a credential header is in the log"
        );
        assert_eq!(
            entries[2]["after"]["headers"]["X-Tenant"], "eu",
            "{}",
            entries[2]
        );
        assert!(!whole.contains(&key_secret), "an API key is in the log");

        assert_eq!(
            actions(&weft, "?action=endpoint.update").await,
            ["endpoint.update"]
        );
        let (_, page) = weft.get("/v1/audit?limit=4").await;
        let next = page["next_before"].as_str().unwrap();
        assert_eq!(
            actions(&weft, &format!("?before={next}&limit=100"))
                .await
                .len(),
            5
        );
        let (status, problem) = weft.get("/v1/audit?outcome=maybe").await;
        assert_eq!((status, &problem["field"]), (400, &json!("outcome")));
        weft.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_refused_to_a_known_key_is_recorded_in_its_tenant() {
    let weft = TestWeft::start_without_workers(Backend::Sqlite).await;
    let viewer = weft.api_as("default", "viewer").await;
    let (status, _) = viewer
        .post(
            "/v1/endpoints",
            &json!({ "name": "x", "url": "https://example.com" }),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(viewer.get("/v1/audit").await.0, 403);
    let elsewhere = weft.key("default", "admin", &["192.0.2.0/24"]).await;
    let (status, _) = Api::new(weft.url.clone())
        .with_key(elsewhere)
        .get("/v1/endpoints")
        .await;
    assert_eq!(status, 403);
    let (_, created) = weft
        .post("/v1/api-keys", &json!({ "name": "old", "role": "viewer" }))
        .await;
    let old = Api::new(weft.url.clone()).with_key(created["key"].as_str().unwrap());
    let revoke = format!("/v1/api-keys/{}", created["id"].as_str().unwrap());
    weft.call("DELETE", &revoke, None, &[]).await;
    assert_eq!(old.get("/v1/endpoints").await.0, 401);
    // A credential of no known tenant has no log to go in.
    let stranger =
        Api::new(weft.url.clone()).with_key("weft_neverIssuedToAnyoneAtAll00000000000000");
    assert_eq!(stranger.get("/v1/endpoints").await.0, 401);

    let (_, log) = weft.get("/v1/audit?outcome=refused").await;
    let details: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            assert_eq!(entry["action"], "access.refused");
            entry["detail"].as_str().unwrap()
        })
        .collect();
    assert_eq!(details.len(), 4, "{log}");
    assert!(
        details[0].contains("was revoked: GET /v1/endpoints"),
        "{details:?}"
    );
    assert!(
        details[1].contains("may not be used from 127.0.0.1"),
        "{details:?}"
    );
    assert!(
        details[2].contains(
            "the viewer role may not manage API keys or read the audit log: GET /v1/audit"
        ),
        "{details:?}"
    );
    assert!(
        details[3].contains(
            "the viewer role may not change this tenant's configuration: POST /v1/endpoints"
        ),
        "{details:?}"
    );
    weft.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_audit_prints_the_log_to_admins() {
    let weft = TestWeft::start_without_workers(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = weft.endpoint(&receiver.url, 1).await;
    let (url, key) = (weft.url.clone(), weft.key.clone().unwrap());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(weft_tests::weft_binary())
            .args(["audit", "--action", "endpoint.create", "--limit", "5"])
            .env("WEFT_API_URL", url)
            .env("WEFT_API_KEY", key)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["entries"].as_array().unwrap().len(), 1, "{printed}");
    assert_eq!(printed["entries"][0]["object"], endpoint.as_str());
    weft.stop().await;
}
