//! `weft endpoints list|show|disable|enable|recover`: endpoint health at a
//! glance, and what an administrator does about a receiver that fails.

use super::client::ApiClient;
use super::remote::{Remote, runtime};
use anyhow::Result;
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub enum EndpointsCommand {
    /// The tenant's endpoints and their health, one line each.
    List {
        /// Only endpoints in this state: healthy, degraded, failing, disabled.
        #[arg(long)]
        health: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One endpoint's health: circuit, success rate and latency over 5 min,
    /// 1 h and 24 h, last success and failure, backlog.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop delivering to an endpoint: its pending deliveries are kept as
    /// skipped.
    Disable {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deliver to an endpoint again, its circuit closed.
    Enable { id: String },
    /// Deliver what an endpoint skipped while disabled, in capture order.
    Recover {
        id: String,
        /// Only deliveries captured at or after this time (RFC 3339 or unix
        /// milliseconds).
        #[arg(long)]
        since: Option<String>,
    },
}

pub fn run(remote: &Remote, command: &EndpointsCommand) -> Result<()> {
    let client = ApiClient::new(&remote.api_url, remote.api_key.clone())?;
    runtime()?.block_on(async {
        match command {
            EndpointsCommand::List { health, json } => {
                let mut endpoints = Vec::new();
                let mut after: Option<String> = None;
                loop {
                    let mut query = vec![("limit", "100".to_owned())];
                    query.extend(health.clone().map(|state| ("health", state)));
                    query.extend(after.take().map(|id| ("after", id)));
                    let path = format!("/v1/endpoints?{}", serde_urlencoded::to_string(&query)?);
                    let page = client.call("GET", &path, None).await?;
                    endpoints.extend(page["endpoints"].as_array().cloned().unwrap_or_default());
                    match page["next_after"].as_str() {
                        Some(next) => after = Some(next.to_owned()),
                        None => break,
                    }
                }
                if *json {
                    println!("{}", serde_json::to_string_pretty(&endpoints)?);
                } else {
                    print!("{}", table(&endpoints));
                }
            }
            EndpointsCommand::Show { id, json } => {
                let endpoint = client
                    .call("GET", &format!("/v1/endpoints/{id}"), None)
                    .await?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&endpoint)?);
                } else {
                    print!("{}", details(&endpoint));
                }
            }
            EndpointsCommand::Disable { id, reason } => {
                let body = reason.as_ref().map(|reason| json!({ "reason": reason }));
                let endpoint = client
                    .call(
                        "POST",
                        &format!("/v1/endpoints/{id}/disable"),
                        body.as_ref(),
                    )
                    .await?;
                println!(
                    "disabled {id}: {}",
                    endpoint["disabled_reason"].as_str().unwrap_or_default()
                );
            }
            EndpointsCommand::Enable { id } => {
                client
                    .call("POST", &format!("/v1/endpoints/{id}/enable"), None)
                    .await?;
                println!("enabled {id}; deliver what it skipped with: weft endpoints recover {id}");
            }
            EndpointsCommand::Recover { id, since } => {
                let mut path = format!("/v1/endpoints/{id}/recover");
                if let Some(since) = since {
                    path.push_str(&format!(
                        "?{}",
                        serde_urlencoded::to_string([("since", since)])?
                    ));
                }
                let recovered = client.call("POST", &path, None).await?;
                println!(
                    "{} skipped deliveries of {id} are pending again",
                    recovered["recovered"]
                );
            }
        }
        Ok(())
    })
}

/// One line per endpoint, in columns.
fn table(endpoints: &[Value]) -> String {
    let header = [
        "ID",
        "NAME",
        "STATE",
        "CIRCUIT",
        "OK 5M",
        "P50/P99 5M",
        "BACKLOG",
        "OLDEST",
        "LAST ERROR",
    ];
    let rows: Vec<[String; 9]> = endpoints
        .iter()
        .map(|endpoint| {
            let health = &endpoint["health"];
            let recent = &health["periods"]["5m"];
            [
                text(&endpoint["id"]),
                text(&endpoint["name"]),
                text(&health["state"]),
                text(&health["circuit"]["state"]),
                rate(&recent["success_rate"]),
                latency(recent),
                health["backlog"]["pending"].to_string(),
                age(&health["backlog"]["oldest_age_ms"]),
                health["last_failure"]["error"]
                    .as_str()
                    .map(|error| shortened(error, 60))
                    .unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut line = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ");
        line.truncate(line.trim_end().len());
        line + "\n"
    };
    let mut shown = line(header.to_vec());
    for row in &rows {
        shown.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    shown
}

/// One endpoint's health, a section each.
fn details(endpoint: &Value) -> String {
    let health = &endpoint["health"];
    let circuit = &health["circuit"];
    let mut shown = format!(
        "{} {} ({})\n  url        {}\n  state      {}{}\n  circuit    {}, {} failed in a row",
        text(&endpoint["id"]),
        text(&endpoint["name"]),
        if endpoint["enabled"] == true {
            "enabled"
        } else {
            "disabled"
        },
        text(&endpoint["url"]),
        text(&health["state"]),
        endpoint["disabled_reason"]
            .as_str()
            .map(|reason| format!(" ({reason})"))
            .unwrap_or_default(),
        text(&circuit["state"]),
        circuit["consecutive_failures"],
    );
    if let Some(at) = circuit["next_probe_at"].as_i64() {
        shown.push_str(&format!(", next probe at {}", time(at)));
    }
    shown.push('\n');
    shown.push_str("  period     attempts  ok        p50      p99\n");
    for period in ["5m", "1h", "24h"] {
        let tally = &health["periods"][period];
        shown.push_str(&format!(
            "  {period:<9}  {:<8}  {:<8}  {:<7}  {}\n",
            tally["attempts"].to_string(),
            rate(&tally["success_rate"]),
            milliseconds(&tally["latency_p50_ms"]),
            milliseconds(&tally["latency_p99_ms"]),
        ));
    }
    shown.push_str(&format!(
        "  last ok    {}\n",
        health["last_success_at"].as_i64().map_or("-".into(), time)
    ));
    let failure = &health["last_failure"];
    if let Some(at) = failure["at"].as_i64() {
        let status = failure["status"]
            .as_u64()
            .map(|status| format!("{status}: "))
            .unwrap_or_default();
        shown.push_str(&format!(
            "  last error {} {status}{}\n",
            time(at),
            text(&failure["error"])
        ));
    }
    if let Some(since) = health["failing_since"].as_i64() {
        shown.push_str(&format!("  failing    since {}\n", time(since)));
    }
    let backlog = &health["backlog"];
    shown.push_str(&format!(
        "  backlog    {} pending ({} waiting for the circuit), oldest {}\n",
        backlog["pending"],
        backlog["waiting_for_circuit"],
        age(&backlog["oldest_age_ms"]),
    ));
    shown
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or("-").to_owned()
}

fn rate(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "-".to_owned(), |rate| format!("{:.1}%", rate * 100.0))
}

fn milliseconds(value: &Value) -> String {
    value
        .as_u64()
        .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"))
}

fn latency(period: &Value) -> String {
    match (
        period["latency_p50_ms"].as_u64(),
        period["latency_p99_ms"].as_u64(),
    ) {
        (Some(p50), Some(p99)) => format!("{p50}/{p99} ms"),
        _ => "-".to_owned(),
    }
}

/// A duration in milliseconds as an operator reads it: 45s, 12m, 3h, 2d.
fn age(value: &Value) -> String {
    let Some(ms) = value.as_i64() else {
        return "-".to_owned();
    };
    let seconds = ms / 1_000;
    match seconds {
        ..60 => format!("{seconds}s"),
        60..3_600 => format!("{}m", seconds / 60),
        3_600..86_400 => format!("{}h", seconds / 3_600),
        _ => format!("{}d", seconds / 86_400),
    }
}

pub(super) fn time(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis).map_or_else(
        || millis.to_string(),
        |time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

fn shortened(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max - 1).collect();
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, state: &str, error: Option<&str>) -> Value {
        json!({
            "id": format!("ep_{name}"),
            "name": name,
            "enabled": state != "disabled",
            "url": "https://example.com/hook",
            "health": {
                "state": state,
                "circuit": { "state": "closed", "consecutive_failures": 0 },
                "periods": {
                    "5m": { "attempts": 200, "success_rate": 0.995, "latency_p50_ms": 42, "latency_p99_ms": 880 },
                    "1h": { "attempts": 0, "success_rate": null },
                    "24h": { "attempts": 0, "success_rate": null }
                },
                "last_failure": error.map(|error| json!({ "at": 1_800_000_000_000_i64, "status": 503, "error": error })),
                "backlog": { "pending": 3, "waiting_for_circuit": 0, "oldest_age_ms": 125_000 }
            }
        })
    }

    #[test]
    fn the_table_lines_up_its_columns() {
        let shown = table(&[
            endpoint("crm", "healthy", None),
            endpoint(
                "warehouse-sync",
                "degraded",
                Some("the endpoint answered 503"),
            ),
        ]);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 3, "{shown}");
        assert!(lines[0].starts_with("ID"), "{shown}");
        let state_column = lines[0].find("STATE").unwrap();
        assert_eq!(&lines[1][state_column..state_column + 7], "healthy");
        assert_eq!(&lines[2][state_column..state_column + 8], "degraded");
        assert!(lines[2].contains("99.5%") && lines[2].contains("42/880 ms"));
        assert!(lines[2].contains("2m") && lines[2].ends_with("the endpoint answered 503"));
    }

    #[test]
    fn details_show_every_period_and_the_last_failure() {
        let shown = details(&endpoint("crm", "degraded", Some("connection refused")));
        for expected in [
            "ep_crm crm (enabled)",
            "state      degraded",
            "5m         200       99.5%     42 ms    880 ms",
            "1h         0         -",
            "last error 2027-01-15T08:00:00Z 503: connection refused",
            "3 pending (0 waiting for the circuit), oldest 2m",
        ] {
            assert!(shown.contains(expected), "{expected:?} in\n{shown}");
        }
    }

    #[test]
    fn ages_read_as_an_operator_says_them() {
        let ages: Vec<String> = [0, 59_999, 60_000, 3_600_000, 2 * 86_400_000]
            .iter()
            .map(|&ms| age(&json!(ms)))
            .collect();
        assert_eq!(ages, ["0s", "59s", "1m", "1h", "2d"]);
        assert_eq!(age(&Value::Null), "-");
    }
}
