//! One transform, many failures: `{"mode": "…"}` picks what it does, so a test can
//! break the runtime every way a plugin can and then check a healthy call still works.

use serde::Deserialize;
use weft_sdk::{Error, Event, PluginInfo, Request, Transform};

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    /// Echo the payload: the healthy call.
    Ok,
    /// Never return.
    Loop,
    /// Allocate until something gives.
    Hog,
    /// Panic with a message.
    Panic,
    /// Declare a JSON body and send something else.
    BadJson,
    /// Return more bytes than the output limit.
    Flood,
    /// Log and print far more than the host keeps.
    Chatty,
    /// Reach for what a sandbox withholds (files, the environment, the
    /// network) and report what came of each try.
    Escape,
    /// Report each plugin-error variant.
    InvalidEvent,
    Transient,
}

#[derive(Deserialize)]
struct Config {
    mode: Mode,
}

struct Misbehave;

impl Transform for Misbehave {
    fn info() -> PluginInfo {
        PluginInfo::new("misbehave", "0.1.0").config_schema(serde_json::json!({
            "type": "object",
            "required": ["mode"],
            "properties": { "mode": { "type": "string" } }
        }))
    }

    fn transform(event: Event) -> Result<Vec<Request>, Error> {
        let config: Config = weft_sdk::config()?;
        match config.mode {
            Mode::Ok => Ok(vec![
                Request::bytes(event.data).header("content-type", "application/json"),
            ]),
            Mode::Loop => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Mode::Hog => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Mode::Panic => panic!("the order total was negative"),
            Mode::BadJson => Ok(vec![
                Request::bytes("{\"order\": ").header("content-type", "application/json"),
            ]),
            Mode::Flood => Ok(vec![Request::bytes(vec![b'x'; 12 << 20])]),
            Mode::Chatty => {
                for line in 0..1000 {
                    weft_sdk::log::info(format!("line {line}"));
                    println!("stdout line {line} {}", "-".repeat(100));
                }
                Ok(vec![])
            }
            Mode::Escape => Ok(vec![Request::json(&escape_attempts())?]),
            Mode::InvalidEvent => Err(Error::invalid_event("order.total is missing")),
            Mode::Transient => Err(Error::Transient("the rate card service is down".into())),
        }
    }
}

/// What came of reading files, the environment and the network, as text a
/// test can check: `"denied: …"` or what was found.
fn escape_attempts() -> serde_json::Value {
    fn outcome<T: std::fmt::Debug>(result: std::io::Result<T>) -> String {
        match result {
            Ok(found) => format!("found: {found:?}"),
            Err(error) => format!("denied: {error}"),
        }
    }
    let listing = std::fs::read_dir("/").map(|entries| entries.count());
    let file = std::fs::read_to_string("/etc/passwd").map(|text| text.len());
    let cwd_listing = std::fs::read_dir(".").map(|entries| entries.count());
    let connect = std::net::TcpStream::connect("127.0.0.1:5432").map(|_| "connected");
    let resolve =
        std::net::ToSocketAddrs::to_socket_addrs("localhost:80").map(|addresses| addresses.count());
    serde_json::json!({
        "read_dir_root": outcome(listing),
        "read_file": outcome(file),
        "read_dir_cwd": outcome(cwd_listing),
        "environment": std::env::vars().count(),
        "arguments": std::env::args().count(),
        "tcp_connect": outcome(connect),
        "dns_lookup": outcome(resolve),
    })
}

weft_sdk::transformer!(Misbehave);
