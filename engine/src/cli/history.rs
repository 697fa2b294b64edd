//! `weft history prune`: deletes old history straight in the database, by
//! whoever runs Weft, as `weft serve` does in the background by each
//! tenant's retention. Pending deliveries and their events are kept.

use super::endpoints::time;
use crate::model::{TenantId, UnixMillis, now_millis};
use crate::store::{Prune, Pruned};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::time::Duration;

/// How long `prune` waits for a round another node is running to end.
const WAIT_FOR_OTHER_NODE: Duration = Duration::from_secs(120);

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Delete events, deliveries, attempts and audit entries older than a
    /// given age, whatever the tenants' retention (never a pending delivery).
    Prune {
        /// The database `weft serve` uses.
        #[arg(long, default_value = "sqlite://weft.db", env = "WEFT_DATABASE_URL")]
        database_url: String,
        /// What is older than this goes: `30d`, `12h`, `90m`, `1d 12h`.
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Duration,
        /// Only this tenant's history (default: every tenant's).
        #[arg(long)]
        tenant: Option<String>,
    },
}

fn parse_age(text: &str) -> Result<Duration, String> {
    let age = humantime::parse_duration(text)
        .map_err(|error| format!("{error}: write an age such as 30d, 12h or 90m"))?;
    if age.is_zero() {
        return Err("the age must be more than 0".into());
    }
    Ok(age)
}

pub fn run(command: HistoryCommand) -> Result<()> {
    let HistoryCommand::Prune {
        database_url,
        older_than,
        tenant,
    } = command;
    let tenant = tenant
        .map(|name| TenantId::parse(&name))
        .transpose()
        .context("--tenant")?;
    let now = now_millis();
    let before = now.saturating_sub(UnixMillis::try_from(older_than.as_millis()).unwrap_or(now));
    let prune = Prune::Before {
        before,
        tenant: tenant.as_ref(),
    };
    let pruned = super::with_store(&database_url, None, async |store| {
        let waiting_since = std::time::Instant::now();
        loop {
            if let Some(pruned) = store.prune_history(prune, now).await? {
                return Ok(pruned);
            }
            // A node of the cluster is in a round of its own: wait for it.
            if waiting_since.elapsed() > WAIT_FOR_OTHER_NODE {
                bail!(
                    "another Weft node has been pruning this database's history for over {} s; \
                     try again once it is done",
                    WAIT_FOR_OTHER_NODE.as_secs()
                )
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })?;
    println!("{}", summary(&pruned, before));
    Ok(())
}

fn summary(pruned: &Pruned, before: UnixMillis) -> String {
    format!(
        "pruned {} {} ({} {}), {} {} and {} audit {} from before {}",
        pruned.deliveries,
        plural(pruned.deliveries, "delivery", "deliveries"),
        pruned.attempts,
        plural(pruned.attempts, "attempt", "attempts"),
        pruned.events,
        plural(pruned.events, "event", "events"),
        pruned.audit_entries,
        plural(pruned.audit_entries, "entry", "entries"),
        time(before),
    )
}

fn plural<'a>(count: u64, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_written_as_people_write_them() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("1d 12h"), Ok(Duration::from_secs(36 * 3_600)));
        assert_eq!(parse_age("90m"), Ok(Duration::from_secs(5_400)));
        for wrong in ["", "30", "thirty days", "0s", "-1d"] {
            assert!(parse_age(wrong).is_err(), "{wrong:?} was accepted");
        }
        assert!(parse_age("30").unwrap_err().contains("such as 30d"));
    }

    #[test]
    fn the_summary_counts_what_went() {
        let pruned = Pruned {
            events: 1,
            deliveries: 2,
            attempts: 1,
            audit_entries: 0,
        };
        assert_eq!(
            summary(&pruned, 1_700_000_000_000),
            "pruned 2 deliveries (1 attempt), 1 event and 0 audit entries from before \
             2023-11-14T22:13:20Z"
        );
    }
}
