//! `regkeep subscription add|list|del` (tag watching) and `regkeep event list`.

use std::process::ExitCode;

use clap::Subcommand;
use regkeep_domain::wire::{EventsList, Subscription, SubscriptionRequest, SubscriptionUpdate};
use reqwest::Method;

use super::client::{segment, Client};
use super::{output, GlobalArgs};

#[derive(Subcommand, Debug)]
pub enum SubscriptionCommand {
    /// Watch a tag: regkeep polls it and records each new digest as an image and an event.
    ///
    /// Example: `regkeep subscription add registry.example.com:5000/team/app:latest`
    Add {
        /// The tag to watch, `[host[:port]/]repository[:tag]`.
        tag: String,
        /// Create it switched off.
        #[arg(long)]
        inactive: bool,
    },
    /// List the account's subscriptions with what the poller last saw.
    List,
    /// Pause a subscription (kept, not polled). Example: `regkeep subscription deactivate 3f2a...`
    Deactivate {
        /// The subscription id.
        id: String,
    },
    /// Resume a paused subscription; it is polled at once and the answer shows what that poll
    /// found. Example: `regkeep subscription activate 3f2a...`
    Activate {
        /// The subscription id.
        id: String,
    },
    /// Poll a watched tag now (instead of at its next interval) and show what it found. Example:
    /// `regkeep subscription poll 3f2a...`
    Poll {
        /// The subscription id.
        id: String,
    },
    /// Stop watching. Example: `regkeep subscription del 3f2a...` (the id `subscription list` shows)
    Del {
        /// The subscription id.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum EventCommand {
    /// List events, newest first. Example: `regkeep event list --type user.checks.tag_update`
    List {
        /// Only events whose type starts with this, e.g. `user.checks.tag_update`.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        /// Only INFO or ERROR events.
        #[arg(long, value_name = "LEVEL")]
        level: Option<String>,
        /// Only events at or after this RFC 3339 time, e.g. 2026-11-29T00:00:00Z.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// How many (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

pub async fn run_subscription(
    client: &Client,
    global: &GlobalArgs,
    command: SubscriptionCommand,
) -> anyhow::Result<ExitCode> {
    let answer = match command {
        SubscriptionCommand::Add { tag, inactive } => {
            let request = SubscriptionRequest {
                subscription_type: "tag_update".into(),
                subscription_key: tag,
                subscription_value: None,
                active: Some(!inactive),
            };
            client
                .call::<Vec<Subscription>, _>(Method::POST, "/subscriptions", Some(&request))
                .await?
        }
        SubscriptionCommand::List => {
            client
                .call::<Vec<Subscription>, ()>(Method::GET, "/subscriptions", None)
                .await?
        }
        SubscriptionCommand::Activate { id } => set_active(client, &id, true).await?,
        SubscriptionCommand::Deactivate { id } => set_active(client, &id, false).await?,
        SubscriptionCommand::Poll { id } => {
            let path = format!("/subscriptions/{}/poll", segment(&id));
            client
                .call::<Vec<Subscription>, ()>(Method::POST, &path, None)
                .await?
        }
        SubscriptionCommand::Del { id } => {
            let path = format!("/subscriptions/{}", segment(&id));
            let answer = client
                .call::<serde_json::Value, ()>(Method::DELETE, &path, None)
                .await?;
            return output::deleted(answer, global.json, "subscription", &id);
        }
    };
    output::finish(answer, global.json, |records: &Vec<Subscription>| {
        if records.is_empty() {
            return output::line("No subscriptions: watch a tag with `regkeep subscription add`");
        }
        let rows = records
            .iter()
            .map(|s| {
                vec![
                    s.subscription_id.clone(),
                    s.subscription_type.clone(),
                    s.subscription_key.clone(),
                    if s.active { "active" } else { "inactive" }.to_owned(),
                    s.last_digest.clone().unwrap_or_else(|| "-".into()),
                    s.last_polled_at
                        .map_or_else(|| "never".to_owned(), |t| t.to_string()),
                    s.last_error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        output::table(
            &[
                "Id",
                "Type",
                "Key",
                "State",
                "Digest",
                "Polled",
                "Last error",
            ],
            rows,
        )
    })
}

async fn set_active(
    client: &Client,
    id: &str,
    active: bool,
) -> anyhow::Result<Result<Vec<Subscription>, super::client::Refusal>> {
    let body = SubscriptionUpdate {
        active,
        subscription_value: None,
    };
    client
        .call::<Vec<Subscription>, _>(
            Method::PUT,
            &format!("/subscriptions/{}", segment(id)),
            Some(&body),
        )
        .await
}

pub async fn run_event(
    client: &Client,
    global: &GlobalArgs,
    command: EventCommand,
) -> anyhow::Result<ExitCode> {
    let EventCommand::List {
        event_type,
        level,
        since,
        limit,
    } = command;
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("limit", &limit.to_string());
    for (name, value) in [
        ("event_type", event_type),
        ("level", level),
        ("since", since),
    ] {
        if let Some(v) = value {
            query.append_pair(name, &v);
        }
    }
    let path = format!("/events?{}", query.finish());
    let answer = client
        .call::<EventsList, ()>(Method::GET, &path, None)
        .await?;
    output::finish(answer, global.json, |list| {
        if list.results.is_empty() {
            return output::line("No events");
        }
        let rows = list
            .results
            .iter()
            .map(|e| {
                vec![
                    e.created_at.to_string(),
                    e.event.level.clone(),
                    e.event.event_type.clone(),
                    e.event.resource.id.clone(),
                    e.event.message.clone(),
                ]
            })
            .collect();
        output::table(&["Time", "Level", "Type", "Resource", "Message"], rows)
    })
}
