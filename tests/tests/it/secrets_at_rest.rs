//! Secrets at rest, with the real `weft` binary: after endpoints with every
//! kind of secret have delivered, neither the SQLite files nor the debug logs
//! hold any of them; `weft secrets rotate` moves them to a new master key, and
//! a server without that key refuses to start rather than run half-blind.

use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weft_tests::process::{BOOTSTRAP_KEY, WeftProcess};
use weft_tests::receiver::Receiver;
use weft_tests::token_server::TokenServer;
use weft_tests::weft::Api;

const WAIT: Duration = Duration::from_secs(15);
const SIGNING_SECRET: &str = "whsec_c2lnbmluZyBzZWNyZXQgYXQgcmVzdCAxMjM0NTY=";
const HEADER_SECRET: &str = "header-secret-7c1d0e9f8a2b";
const CLIENT_SECRET: &str = "client-secret-3e5f7a9b1c2d";
const PASSWORD: &str = "basic-password-6b8d0f2a4c";
const JWT_KEY: &str = "jwt-shared-key-at-rest-0123456789abcdef";

fn run_weft(workdir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(weft_tests::weft_binary())
        .args(args)
        .current_dir(workdir)
        .env_remove("WEFT_MASTER_KEY")
        .env_remove("WEFT_MASTER_KEY_FILE")
        .output()
        .unwrap()
}

/// Starts `weft serve` expecting it to fail; returns what it said.
fn serve_refusing_to_start(workdir: &Path) -> String {
    let mut child = Command::new(weft_tests::weft_binary())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(workdir)
        .env_remove("WEFT_MASTER_KEY")
        .env_remove("WEFT_MASTER_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("weft serve started without the key that sealed its secrets");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every file of the SQLite database (main file, WAL, shared memory), read whole.
fn database_files(workdir: &Path) -> Vec<(String, Vec<u8>)> {
    ["weft.db", "weft.db-wal", "weft.db-shm"]
        .into_iter()
        .filter_map(|name| {
            std::fs::read(workdir.join(name))
                .ok()
                .map(|bytes| (name.to_owned(), bytes))
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_database_file_or_the_logs_and_a_new_master_key_takes_over() {
    let workdir = tempfile::tempdir().unwrap();
    let dir = workdir.path().to_owned();
    let log = dir.join("weft.log");
    let weft = {
        let (dir, log) = (dir.clone(), log.clone());
        tokio::task::spawn_blocking(move || WeftProcess::start_logging(&dir, &[], &log))
            .await
            .unwrap()
    };
    let api = Api::new(weft.url.clone()).with_key(BOOTSTRAP_KEY);
    let tokens =
        TokenServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST), "weft", CLIENT_SECRET, 3600).await;
    let receiver = Receiver::start().await;
    let endpoints = [
        json!({
            "name": "oauth", "url": receiver.url, "secret": SIGNING_SECRET,
            "headers": { "X-Api-Key": HEADER_SECRET },
            "auth": { "type": "oauth2_client_credentials", "token_url": tokens.url,
                      "client_id": "weft", "client_secret": CLIENT_SECRET }
        }),
        json!({ "name": "basic", "url": receiver.url,
                "auth": { "type": "basic", "username": "weft", "password": PASSWORD } }),
        json!({ "name": "jwt", "url": receiver.url,
                "auth": { "type": "jwt", "algorithm": "HS256", "key": JWT_KEY } }),
    ];
    for endpoint in &endpoints {
        let (status, created) = api.post("/v1/endpoints", endpoint).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap();
        api.subscription(id, json!({ "event_types": ["stock.updated"] }))
            .await;
    }
    api.publish_sample("stock.updated", |_| {}).await;
    let received = receiver.wait_for(3, WAIT).await;
    assert!(
        received
            .iter()
            .any(|r| r.header("x-api-key") == Some(HEADER_SECRET))
    );
    assert!(
        received
            .iter()
            .any(|r| r.header("authorization") == Some("Bearer token-1"))
    );
    let (_, listed) = api.get("/v1/endpoints").await;
    let (_, audit) = api.get("/v1/audit").await;
    let stopped = tokio::task::spawn_blocking(move || weft.terminate(WAIT))
        .await
        .unwrap();
    assert!(stopped);

    let secrets = [
        SIGNING_SECRET,
        HEADER_SECRET,
        CLIENT_SECRET,
        PASSWORD,
        JWT_KEY,
        "token-1",
    ];
    let logged = std::fs::read(&log).unwrap();
    assert!(
        contains(&logged, "DEBUG"),
        "the log holds debug lines, so the check below means something"
    );
    let mut files = database_files(&dir);
    assert!(files.iter().any(|(name, _)| name == "weft.db"));
    files.push(("weft.log".into(), logged));
    files.push(("GET /v1/endpoints".into(), listed.to_string().into_bytes()));
    files.push(("GET /v1/audit".into(), audit.to_string().into_bytes()));
    for (name, bytes) in &files {
        for secret in secrets {
            assert!(!contains(bytes, secret), "{secret} is in {name}");
        }
    }
    assert!(
        files
            .iter()
            .any(|(_, bytes)| contains(bytes, "weft-sealed:v1:")),
        "the database holds the sealed values"
    );
    assert!(dir.join("weft.db.master-key").exists());

    // A new master key: re-seal under it, the old one given as previous.
    let generated = run_weft(&dir, &["secrets", "generate-key"]);
    assert!(generated.status.success());
    std::fs::write(dir.join("new.key"), &generated.stdout).unwrap();
    let rotated = run_weft(
        &dir,
        &[
            "secrets",
            "rotate",
            "--master-key-file",
            "new.key",
            "--previous-master-key-file",
            "weft.db.master-key",
        ],
    );
    let said = String::from_utf8_lossy(&rotated.stdout);
    assert!(
        rotated.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    // Three endpoints, each with a URL, a signing secret, headers and auth.
    assert!(
        said.starts_with("re-sealed 12 secrets under master key "),
        "{said}"
    );

    // The old key alone no longer opens them: weft serve says so and stops.
    let refusal = serve_refusing_to_start(&dir);
    assert!(
        refusal.contains("which this process does not have"),
        "{refusal}"
    );

    // Keys are made straight in the database without the master key.
    let made = run_weft(
        &dir,
        &[
            "keys", "create", "--tenant", "acme", "--role", "viewer", "--name", "auditors",
        ],
    );
    let printed = String::from_utf8_lossy(&made.stdout);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let viewer_key = printed
        .split_whitespace()
        .find(|word| word.starts_with("weft_"))
        .unwrap_or_else(|| panic!("no key in {printed}"))
        .to_owned();

    // The new key alone serves, and signs with the same secret as before.
    let weft = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            WeftProcess::start_with(None, &dir, &["--master-key-file", "new.key"])
        })
        .await
        .unwrap()
    };
    let viewer = Api::new(weft.url.clone()).with_key(viewer_key);
    let (status, listed) = viewer.get("/v1/endpoints").await;
    assert_eq!(
        (status, &listed["endpoints"]),
        (200, &json!([])),
        "acme has none"
    );
    let api = Api::new(weft.url.clone()).with_key(BOOTSTRAP_KEY);
    api.publish_sample("stock.updated", |_| {}).await;
    let received = receiver.wait_for(6, WAIT).await;
    let signed = received[3..]
        .iter()
        .filter(|r| r.header("x-api-key") == Some(HEADER_SECRET))
        .all(|r| r.signed_with(SIGNING_SECRET));
    assert!(signed);
    let stopped = tokio::task::spawn_blocking(move || weft.terminate(WAIT))
        .await
        .unwrap();
    assert!(stopped);
}
