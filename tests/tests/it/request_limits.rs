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

/// Sends `head` (ending in a blank line) and then `body` in chunks of
/// `chunk` bytes, over a connection of its own; returns the status and the
/// problem document of the answer.
async fn exchange_raw(url: &str, head: &str, body: &[u8], chunk: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(chunk.max(1)) {
        // The server may answer and close before the whole body is sent.
        if stream
            .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
            .await
            .is_err()
            || stream.write_all(piece).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut response),
    )
    .await;
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_a_problem_document() {
    let weft = TestWeft::start(Backend::Sqlite).await;
    let key = weft.key.clone().unwrap();
    let names: Vec<String> = (0..150).map(|n| format!("x-header-{n}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), "1")).collect();
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: Vec<(&str, &str, Headers, u16, &str)> = vec![
        ("GET", "/v1/no-such-thing", &[], 404, "not_found"),
        ("DELETE", "/v1/events", &[], 405, "method_not_allowed"),
        ("GET", "/v1/deliveries?limit=many", &[], 400, "bad_request"),
        ("GET", "/v1/audit?since=yesterday", &[], 400, "bad_request"),
        // More headers than the HTTP parser's own default of 100.
        ("GET", "/v1/endpoints", &many, 431, "headers_too_large"),
    ];
    for (method, path, headers, status, code) in cases {
        let (got, problem) = weft.call(method, path, None, headers).await;
        assert_eq!(got, status, "{method} {path}: {problem}");
        assert_eq!(problem["type"], code, "{method} {path}: {problem}");
        assert!(
            !problem["detail"].as_str().unwrap_or_default().is_empty(),
            "{method} {path}: {problem}"
        );
    }

    // A chunked body that runs past the limit, which no Content-Length announced.
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: weft\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let oversize = vec![b' '; weft_engine::api::MAX_BODY_BYTES + 1];
    let (status, problem) = exchange_raw(&weft.url, &head, &oversize, 1 << 20).await;
    assert_eq!(status, 413, "{problem}");
    assert_eq!(problem["type"], "payload_too_large", "{problem}");
    weft.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabytes_is_the_most_a_body_may_be() {
    let weft = TestWeft::start(Backend::Sqlite).await;
    let (status, _) = weft
        .post(
            "/v1/event-types",
            &json!({ "name": "archive.exported", "description": "a large document", "schema": { "type": "object" } }),
        )
        .await;
    assert_eq!(status, 201);
    // A body of exactly 10,000,000 bytes, then one byte more.
    let envelope = json!({ "type": "archive.exported", "data": { "document": "" } }).to_string();
    let padding = weft_engine::api::MAX_BODY_BYTES - envelope.len();
    let largest = envelope.replace(
        "\"document\":\"\"",
        &format!("\"document\":\"{}\"", "x".repeat(padding)),
    );
    assert_eq!(largest.len(), 10_000_000);
    let (status, accepted) = weft
        .call_raw("POST", "/v1/events", largest.clone().into_bytes(), &[])
        .await;
    assert_eq!(status, 202, "{accepted}");
    // One byte more is refused as soon as it is announced, before it is sent.
    let (status, problem) = weft.post_announcing("/v1/events", 10_000_001).await;
    assert_eq!(status, 413, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("at most 10000000"),
        "{problem}"
    );
    weft.stop().await;
}
