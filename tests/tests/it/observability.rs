//! What an operator sees of a running Weft: request ids and log lines.

use serde_json::Value;
use weft_tests::process::{BOOTSTRAP_KEY, WeftProcess};
use weft_tests::weft::Api;

/// The `x-request-id` of an answer.
fn request_id(headers: &hyper::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .unwrap_or_else(|| panic!("no x-request-id in {headers:?}"))
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_names_its_request_and_its_log_lines_carry_the_same_id() {
    let workdir = tempfile::tempdir().unwrap();
    let log = workdir.path().join("weft.log");
    let weft = {
        let (dir, log) = (workdir.path().to_owned(), log.clone());
        tokio::task::spawn_blocking(move || {
            WeftProcess::start_logging(&dir, &["--log-format", "json"], &log)
        })
        .await
        .unwrap()
    };
    let admin = Api::new(weft.url.clone()).with_key(BOOTSTRAP_KEY);

    // A gateway's id follows the request through.
    let (status, headers, _) = admin
        .exchange(
            "GET",
            "/v1/endpoints",
            Vec::new(),
            &[("x-request-id", "gateway-7f3a")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(request_id(&headers), "gateway-7f3a");
    // One that cannot be logged as it is gets replaced; errors are named too.
    let (status, headers, _) = admin
        .exchange(
            "GET",
            "/v1/endpoints/ep_missing",
            Vec::new(),
            &[("x-request-id", "two words")],
        )
        .await;
    assert_eq!(status, 404);
    let replaced = request_id(&headers);
    assert!(replaced.starts_with("req_"), "{replaced}");
    // Without one (and without a key), each answer gets its own.
    let (status, headers, _) = Api::new(weft.url.clone())
        .exchange("GET", "/v1/endpoints", Vec::new(), &[])
        .await;
    assert_eq!(status, 401);
    let made = request_id(&headers);
    assert!(made.starts_with("req_") && made != replaced, "{made}");

    // Each request's log line, as JSON, names its id, method, path and status.
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    for (id, path, status) in [
        ("gateway-7f3a", "/v1/endpoints", 200),
        (replaced.as_str(), "/v1/endpoints/ep_missing", 404),
        (made.as_str(), "/v1/endpoints", 401),
    ] {
        let answered = lines
            .iter()
            .find(|line| {
                line["span"]["request_id"] == id && line["fields"]["message"] == "answered"
            })
            .unwrap_or_else(|| panic!("no log line of request {id} among {} lines", lines.len()));
        assert_eq!(answered["span"]["path"], path, "{answered}");
        assert_eq!(answered["span"]["method"], "GET", "{answered}");
        assert_eq!(answered["fields"]["status"], status, "{answered}");
    }
}
