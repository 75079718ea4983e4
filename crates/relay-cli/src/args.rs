//! The command line, as DESIGN's CLI contract names it.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::ffi::OsStr;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand, ValueEnum};
use relay_core::providers::{self, GivenOptions, Provider};

use crate::when::When;

#[derive(Debug, Parser)]
#[command(
    name = "relay",
    version,
    about = "Webhook relay: receive, verify, queue and fan out webhooks"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The heading the backend flags are listed under in every `--help`.
const BACKEND: &str = "Backend (local store, or a deployed stack with --aws)";

#[derive(Debug, Args)]
pub struct Global {
    /// Local store directory (SQLite), used unless --aws is given.
    #[arg(long, global = true, default_value = ".relay", env = "RELAY_DATA_DIR", help_heading = BACKEND)]
    pub data_dir: PathBuf,
    /// Work on a deployed stack's table and queues instead of the local store.
    #[arg(long, global = true, help_heading = BACKEND)]
    pub aws: bool,
    /// With --aws: the stack whose outputs name the table and queues.
    #[arg(long, global = true, help_heading = BACKEND)]
    pub stack: Option<String>,
    /// With --aws: the DynamoDB table (instead of --stack).
    #[arg(long, global = true, env = "RELAY_TABLE", help_heading = BACKEND)]
    pub table: Option<String>,
    /// With --aws: the events queue's URL (instead of --stack).
    #[arg(long, global = true, env = "RELAY_EVENTS_QUEUE_URL", help_heading = BACKEND)]
    pub events_queue_url: Option<String>,
    /// With --aws: the deliveries queue's URL (instead of --stack).
    #[arg(long, global = true, env = "RELAY_DELIVERIES_QUEUE_URL", help_heading = BACKEND)]
    pub deliveries_queue_url: Option<String>,
    /// With --aws: the failing deliveries lane's URL (instead of --stack).
    #[arg(long, global = true, env = "RELAY_FAILING_DELIVERIES_QUEUE_URL", help_heading = BACKEND)]
    pub failing_deliveries_queue_url: Option<String>,
    /// Print one JSON document on stdout (errors as {"error": {...}} on stderr).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run receiver and fanout in one process on the local store.
    Dev(DevArgs),
    /// A browser view of events, deliveries and subscriptions over either backend.
    Console(ConsoleArgs),
    /// Inbound endpoints: POST /{name}.
    #[command(subcommand)]
    Sources(SourcesCommand),
    /// Where events go.
    #[command(subcommand)]
    Subscriptions(SubscriptionsCommand),
    /// Accepted events and their delivery attempts.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Deliver a stored event again (to every matching subscription, or one); without an
    /// event id, deliver again what a subscription (or each of a source's) missed: every
    /// event since --since in the --status state, queued as one delivery each.
    Replay(ReplayArgs),
    /// Move dead-lettered messages back to their queue (both DLQs when no queue is named).
    Redrive {
        /// Only this queue's dead letters.
        #[arg(long, value_enum)]
        queue: Option<RedriveQueue>,
    },
    /// Queue depths and the oldest message's age, failing and disabled subscriptions, and the
    /// last hour's accepted, delivered and failed counts.
    Status,
    /// Ask the provider's API what it sent SOURCE, and recover what never reached the relay
    /// (github: redelivered; stripe: ingested from the API). Exits 1 when something is left.
    Reconcile {
        /// The source to reconcile (github or stripe, with reconcile settings).
        source: String,
        /// How far back to look, e.g. 24h, 90m, 3d.
        #[arg(long, default_value = "24h")]
        since: String,
        /// Only report what is missing; recover nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a shell completion script: `relay completions bash > /etc/bash_completion.d/relay`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `relay man > relay.1 && man ./relay.1`.
    Man,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Address to serve providers, /healthz and /metrics on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Delays between delivery attempts, e.g. 1s,5s,30s.
    #[arg(long, default_value = relay_core::domain::retry::DEFAULT_SCHEDULE)]
    pub retry_schedule: String,
    /// Refuse loopback and private destinations, as the Lambdas do.
    #[arg(long)]
    pub deny_private_destinations: bool,
    /// Seconds a subscriber has to answer [default: RELAY_DELIVERY_TIMEOUT_SECS, else 15].
    #[arg(long)]
    pub delivery_timeout: Option<u64>,
    /// Seconds the first attempt (made while the event's batch waits) may take; a slower
    /// subscriber gets its retry with the full delivery timeout [default:
    /// RELAY_FIRST_ATTEMPT_TIMEOUT_SECS, else 5, as the template].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub first_attempt_timeout: Option<u64>,
    /// Largest request body accepted; larger ones get 413.
    #[arg(long, default_value_t = relay_core::receive::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Seconds a client has to send a request's headers, counted from connecting (or, on a
    /// kept-alive connection, from the request's first byte); slower connections are closed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_secs: u64,
    /// Seconds a request's whole body has to arrive in; slower requests get 408.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request before it is closed.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,
    /// Connections served at once; further ones wait to be accepted until a slot frees. Lowered
    /// to fit the open-file limit, keeping descriptors for the store and deliveries.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Address to serve the console on; any address but loopback requires the access token
    /// printed at start.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RedriveQueue {
    Events,
    Deliveries,
}

/// Parses `--provider` into its registry entry; the choices and their help are the registry's.
#[derive(Debug, Clone, Copy)]
pub struct ProviderParser;

impl ProviderParser {
    fn choices() -> impl Iterator<Item = PossibleValue> {
        providers::PROVIDERS
            .iter()
            .map(|provider| PossibleValue::new(provider.name).help(provider.help))
    }
}

impl TypedValueParser for ProviderParser {
    type Value = &'static Provider;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let name = PossibleValuesParser::new(Self::choices()).parse_ref(cmd, arg, value)?;
        providers::find(&name)
            .ok_or_else(|| clap::Error::new(ErrorKind::InvalidValue).with_cmd(cmd))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(Self::choices()))
    }
}

#[derive(Debug, Subcommand)]
pub enum SourcesCommand {
    /// Add an inbound endpoint: providers POST to /NAME.
    Add {
        /// The source's name: providers POST to /NAME.
        name: String,
        /// Who signs the requests, and so how they are verified.
        #[arg(long, value_parser = ProviderParser)]
        provider: &'static Provider,
        /// The provider's signing secret (token: the shared token). Repeat for several during
        /// rotation; any one that verifies passes.
        #[arg(long = "secret", required = true)]
        secrets: Vec<String>,
        /// Seconds a signed timestamp may be off, either way (stripe, slack, standard, hmac).
        #[arg(long, default_value_t = relay_core::domain::model::DEFAULT_TOLERANCE_SECS)]
        tolerance: u64,
        /// The provider's options, one flag each, made from the provider registry.
        #[command(flatten)]
        options: ProviderFlags,
        /// Accept a secret weaker than the provider issues today (one set years ago, a
        /// provider's test secret); `relay status` then warns about the source.
        #[arg(long)]
        allow_weak_secret: bool,
    },
    /// Sources with their provider options; secrets only counted.
    List,
    /// Remove a source: POST /NAME is then 404.
    Remove {
        /// The source to remove.
        name: String,
        /// Remove the source's subscriptions with it (without this, a source that has any is refused).
        #[arg(long)]
        cascade: bool,
    },
    /// Rotate secrets, change the tolerance or the Twilio public URL.
    Update {
        /// The source to change.
        name: String,
        /// Add a secret (repeatable); during rotation any secret that verifies passes.
        #[arg(long)]
        add_secret: Vec<String>,
        /// Remove a secret (repeatable); a source keeps at least one.
        #[arg(long)]
        remove_secret: Vec<String>,
        /// Seconds a signed timestamp may be off, either way.
        #[arg(long)]
        tolerance: Option<u64>,
        /// twilio: the URL Twilio calls, without the query; an empty value goes back to
        /// rebuilding it from each request.
        #[arg(long)]
        public_url: Option<String>,
        #[command(flatten)]
        reconcile: ReconcileArgs,
        /// Accept added secrets weaker than the provider issues today (see sources add).
        #[arg(long)]
        allow_weak_secret: bool,
    },
}

/// The reconcile settings of `sources update` (github and stripe sources).
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// reconcile: where the API credential is: env:NAME, file:NAME (in the data dir),
    /// ssm:NAME (SecureString) or secretsmanager:NAME.
    #[arg(long)]
    pub reconcile_credential: Option<String>,
    /// reconcile: the provider API's base URL (default the real one; empty to go back to it).
    #[arg(long)]
    pub reconcile_api_url: Option<String>,
    /// reconcile (github): repos/OWNER/REPO/hooks/ID, orgs/ORG/hooks/ID or app/hook.
    #[arg(long)]
    pub github_hook: Option<String>,
    /// reconcile (github, app/hook): the App's client ID or App ID; the credential is then the
    /// App's private key PEM, and each run signs its own JWT (empty to remove).
    #[arg(long)]
    pub github_app_id: Option<String>,
    /// reconcile (stripe): only these event types, comma-separated (empty: every type).
    #[arg(long)]
    pub stripe_event_types: Option<String>,
}

impl ReconcileArgs {
    pub fn change(self) -> relay_core::reconcile::ReconcileChange {
        relay_core::reconcile::ReconcileChange {
            credential: self.reconcile_credential,
            api_url: self.reconcile_api_url,
            github_hook: self.github_hook,
            github_app_id: self.github_app_id,
            event_types: self.stripe_event_types.map(|types| {
                types
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
        }
    }
}

/// The provider options of `sources add`: a flag for every option in the provider registry
/// (`relay_core::providers::registry_options`), so a provider's options come with its file.
/// The provider then takes what is its own and refuses the rest.
#[derive(Debug, Clone, Default)]
pub struct ProviderFlags(pub GivenOptions);

impl clap::FromArgMatches for ProviderFlags {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut given = GivenOptions::default();
        for (option, _) in providers::registry_options() {
            given.set(option.name, matches.get_one::<String>(option.name).cloned());
        }
        Ok(Self(given))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for ProviderFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        providers::registry_options()
            .into_iter()
            // Listed after the source's own flags, as the global ones are.
            .fold(cmd.next_display_order(100), |cmd, (option, owners)| {
                cmd.arg(
                    clap::Arg::new(option.name)
                        .long(option.name)
                        .value_name(option.name.to_uppercase().replace('-', "_"))
                        .help(format!("{}: {}.", owners.join(", "), option.help)),
                )
            })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// What `relay subscriptions add` takes.
#[derive(Debug, Args)]
pub struct AddSubscriptionArgs {
    /// The source whose events it takes.
    #[arg(long)]
    pub source: String,
    /// Where deliveries are POSTed.
    #[arg(long)]
    pub url: String,
    /// Event-type patterns: *, an exact type, or prefix.*, comma-separated.
    #[arg(long, default_value = "*")]
    pub events: String,
    /// whsec_ + base64; generated when not given.
    #[arg(long)]
    pub secret: Option<String>,
    /// Extra header for every delivery, 'Name: value' (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// Send a source's events to a URL, signed (Standard Webhooks); prints the id and secret.
    Add(AddSubscriptionArgs),
    /// Change a subscription's URL, event types, filter, headers or delivery policy, keeping its
    /// id and secret.
    Update {
        /// The subscription's id.
        id: String,
        /// Where deliveries are POSTed from now on (checked as `add` checks it).
        #[arg(long)]
        url: Option<String>,
        /// Event-type patterns: *, an exact type, or prefix.*, comma-separated.
        #[arg(long)]
        events: Option<String>,
        /// Extra header for every delivery, 'Name: value' (repeatable); replaces them all.
        #[arg(long = "header", conflicts_with = "no_headers")]
        headers: Vec<String>,
        /// Send no extra headers any more.
        #[arg(long)]
        no_headers: bool,
        #[command(flatten)]
        filter: FilterArgs,
        /// Remove the content filter.
        #[arg(long, conflicts_with_all = ["filter", "filter_file"])]
        no_filter: bool,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Subscriptions with their state (enabled, disabled and why); secrets only counted.
    List {
        /// Only this source's.
        #[arg(long)]
        source: Option<String>,
    },
    /// Remove a subscription; its waiting retries are dropped when due.
    Remove {
        /// The subscription's id.
        id: String,
    },
    /// Stop delivering to a subscription (its deliveries are dropped until enabled).
    Disable {
        /// The subscription's id.
        id: String,
    },
    /// Deliver to a subscription again, with a fresh health window.
    Enable {
        /// The subscription's id.
        id: String,
    },
    /// New signing secret; the old one keeps signing too for --keep-old.
    RotateSecret {
        /// The subscription's id.
        id: String,
        /// How long the old secret keeps signing beside the new one (24h, 1h30m, 2d).
        #[arg(long, default_value = "24h")]
        keep_old: String,
    },
    /// Whether a subscription takes a stored event or a body (its type patterns and content
    /// filter), and which part did not match.
    #[command(group(clap::ArgGroup::new("subject").required(true).args(["event", "body"])))]
    TestFilter {
        /// The subscription's id.
        id: String,
        /// A stored event's id.
        #[arg(long)]
        event: Option<String>,
        /// A file holding a body to try (the type patterns are not checked).
        #[arg(long, value_name = "FILE")]
        body: Option<std::path::PathBuf>,
    },
}

/// A subscription's content filter, as JSON (see docs/subscriptions.md).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Content filter on the JSON body and headers, e.g. '{"body":{"action":"opened"}}'.
    #[arg(long, value_name = "JSON", conflicts_with = "filter_file")]
    pub filter: Option<String>,
    /// The content filter, read from a file.
    #[arg(long, value_name = "FILE")]
    pub filter_file: Option<std::path::PathBuf>,
}

/// A subscription's delivery policy (see docs/subscriptions.md). Each flag takes the word
/// `default` to use the relay's setting again.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PolicyArgs {
    /// Its own retry schedule, as RELAY_RETRY_SCHEDULE ('10s,1m,10m'; '' for no retries).
    #[arg(long, value_name = "DELAYS")]
    pub retry_schedule: Option<String>,
    /// Timeout of each attempt (10s, 2m; 1s to 15m).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Attempts to it at once, per fanout process.
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<String>,
    /// Deliveries per second, per fanout process (0.5 is one every two seconds).
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Newest first, a page at a time; prints the cursor of the next page.
    List {
        /// Events per page (1 to 1000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
        /// Only events older than this cursor (the one a previous page printed).
        #[arg(long)]
        before: Option<relay_core::EventCursor>,
        /// Only events of this source.
        #[arg(long)]
        source: Option<String>,
        /// Only events whose type matches: an exact type, prefix.* or *, comma-separated.
        #[arg(long = "type", value_name = "PATTERN")]
        types: Option<String>,
        /// Only this subscription's events (its source, its event types), with its state.
        #[arg(long)]
        subscription: Option<String>,
        /// With --subscription: only events in this state for it (failed includes dead).
        #[arg(long, value_enum, requires = "subscription")]
        status: Option<StatusArg>,
        /// Only events received at or after: a duration back from now (90m, 1h30m, 2d) or an
        /// RFC 3339 time.
        #[arg(long, value_name = "WHEN")]
        since: Option<When>,
        /// Only events received before: a duration back from now or an RFC 3339 time.
        #[arg(long, value_name = "WHEN")]
        until: Option<When>,
    },
    /// One event: headers, body and its attempts per subscription.
    Show {
        /// The event's id (its webhook-id).
        id: String,
    },
}

/// A subscription's state for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    /// A 2xx attempt.
    Delivered,
    /// Attempted, not delivered: a retry waiting, or dead-lettered.
    Failed,
    /// Dead-lettered.
    Dead,
    /// Not attempted yet.
    Pending,
    /// Every state (replay only).
    Any,
}

impl StatusArg {
    /// The search's status filter; `None` for every state.
    pub fn filter(self) -> Option<relay_core::domain::search::StatusFilter> {
        use relay_core::domain::search::StatusFilter;
        match self {
            StatusArg::Delivered => Some(StatusFilter::Delivered),
            StatusArg::Failed => Some(StatusFilter::Failed),
            StatusArg::Dead => Some(StatusFilter::Dead),
            StatusArg::Pending => Some(StatusFilter::Pending),
            StatusArg::Any => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The event to deliver again. Without it: a bulk replay (--since, and --subscription or
    /// --source).
    pub id: Option<String>,
    /// Only this subscription (with an event id), or the subscription whose events a bulk
    /// replay sends again.
    #[arg(long)]
    pub subscription: Option<String>,
    /// Bulk: each enabled subscription of this source.
    #[arg(long, conflicts_with_all = ["subscription", "id"])]
    pub source: Option<String>,
    /// Bulk: events received at or after (90m, 1h30m, 2d, or an RFC 3339 time). Required.
    #[arg(long, value_name = "WHEN", conflicts_with = "id")]
    pub since: Option<When>,
    /// Bulk: events received before.
    #[arg(long, value_name = "WHEN", conflicts_with = "id")]
    pub until: Option<When>,
    /// Bulk: the state of the (event, subscription) pairs to send again.
    #[arg(long, value_enum, default_value = "failed", conflicts_with = "id")]
    pub status: StatusArg,
    /// Bulk: only events whose type matches (exact, prefix.* or *, comma-separated).
    #[arg(long = "type", value_name = "PATTERN", conflicts_with = "id")]
    pub types: Option<String>,
    /// Bulk: count what would be sent and show the first event ids; send nothing.
    #[arg(long, conflicts_with = "id")]
    pub dry_run: bool,
    /// Bulk: send more than 10,000 deliveries without asking.
    #[arg(long, conflicts_with = "id")]
    pub yes: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command and every flag says what it is for in `--help`.
    #[test]
    fn every_command_and_flag_has_a_help_line() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" || arg.is_hide_set() {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(sub_path.clone());
                }
                walk(sub, &sub_path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "relay", &mut missing);
        assert!(missing.is_empty(), "no help line: {missing:#?}");
    }

    /// `sources add` has a flag for every option of the registry, and hands what was given to
    /// the provider by option name.
    #[test]
    fn provider_options_become_flags_and_reach_the_provider() {
        let command = Cli::command();
        let add = command
            .find_subcommand("sources")
            .and_then(|s| s.find_subcommand("add"))
            .unwrap();
        for (option, owners) in providers::registry_options() {
            let flag = add
                .get_arguments()
                .find(|a| a.get_long() == Some(option.name))
                .unwrap_or_else(|| panic!("no --{}", option.name));
            let help = flag.get_help().unwrap().to_string();
            assert!(
                help.starts_with(&format!("{}: ", owners.join(", "))),
                "{help}"
            );
        }
        let cli = Cli::try_parse_from([
            "relay",
            "sources",
            "add",
            "s",
            "--provider",
            "hmac",
            "--secret",
            "k",
            "--header",
            "x-sig",
            "--type-pointer",
            "/type",
        ])
        .unwrap();
        let Command::Sources(SourcesCommand::Add { options, .. }) = cli.command else {
            panic!("not sources add");
        };
        assert_eq!(options.0.get("header"), Some("x-sig"));
        assert_eq!(options.0.get("type-pointer"), Some("/type"));
        assert_eq!(options.0.names().count(), 2);
    }
}
