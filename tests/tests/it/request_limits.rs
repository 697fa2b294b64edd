//! Request limits at the HTTP level: oversized or too many headers get 431,
//! JSON nested deeper than the parser allows gets 400, and nothing is stored.

use serde_json::{Value, json};
use weft_tests::weft::{Backend, TestWeft};

/// `{"level": {"level": … {"end": true} … }}`, `depth` objects deep.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!({ "end": true }), |inner, _| json!({ "level": inner }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_past_the_limits_get_431_naming_the_limit() {
    let weft = TestWeft::start(Backend::Sqlite).await;
    let padding = "a".repeat(40 << 10);
    let (status, problem) = weft
        .call("GET", "/v1/endpoints", None, &[("x-padding", &padding)])
        .await;
    assert_eq!(status, 431, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("at most 32768"),
        "{problem}"
    );

    let names: Vec<String> = (0..80).map(|n| format!("x-header-{n}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), "1")).collect();
    let (status, problem) = weft.call("GET", "/v1/endpoints", None, &many).await;
    assert_eq!(status, 431, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("at most 64 are accepted"),
        "{problem}"
    );

    // Within the limits, the same request passes.
    let (status, _) = weft
        .call(
            "GET",
            "/v1/endpoints",
            None,
            &[("x-padding", &padding[..1024])],
        )
        .await;
    assert_eq!(status, 200);
    weft.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nested_past_the_parsers_limit_is_refused_and_not_stored() {
    let weft = TestWeft::start(Backend::Sqlite).await;
    let event = |data: Value| json!({ "type": "custom.deep", "data": data });
    let (status, _) = weft
        .post(
            "/v1/event-types",
            &json!({ "name": "custom.deep", "description": "nesting", "schema": { "type": "object" } }),
        )
        .await;
    assert_eq!(status, 201);

    let (status, accepted) = weft.post("/v1/events", &event(nested(100))).await;
    assert_eq!(status, 202, "{accepted}");

    let mut deep = event(nested(300));
    deep["id"] = json!("evt_toodeep");
    let too_deep = serde_json::to_vec(&deep).unwrap();
    let (status, problem) = weft.call_raw("POST", "/v1/events", too_deep, &[]).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "invalid_json", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("recursion limit"),
        "{problem}"
    );

    let (status, _) = weft.get("/v1/events/evt_toodeep").await;
    assert_eq!(status, 404, "the refused event was not stored");
    weft.stop().await;
}
