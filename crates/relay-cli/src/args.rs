//! The command line, as DESIGN's CLI contract names it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "relay", version, about = "Webhook relay: receive, verify, queue and fan out webhooks")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Local store directory (SQLite), used unless --aws is given.
    #[arg(long, global = true, default_value = ".relay", env = "RELAY_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Work on a deployed stack's table and queues instead of the local store.
    #[arg(long, global = true)]
    pub aws: bool,
    /// With --aws: the stack whose outputs name the table and queues.
    #[arg(long, global = true)]
    pub stack: Option<String>,
    #[arg(long, global = true, env = "RELAY_TABLE")]
    pub table: Option<String>,
    #[arg(long, global = true, env = "RELAY_EVENTS_QUEUE_URL")]
    pub events_queue_url: Option<String>,
    #[arg(long, global = true, env = "RELAY_DELIVERIES_QUEUE_URL")]
    pub deliveries_queue_url: Option<String>,
    /// Print one JSON document on stdout (errors as {"error": {...}} on stderr).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run receiver and fanout in one process on the local store.
    Dev(DevArgs),
    /// Inbound endpoints: POST /{name}.
    #[command(subcommand)]
    Sources(SourcesCommand),
    /// Where events go.
    #[command(subcommand)]
    Subscriptions(SubscriptionsCommand),
    /// Accepted events and their delivery attempts.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Deliver a stored event again (to every matching subscription, or one).
    Replay {
        id: String,
        #[arg(long)]
        subscription: Option<String>,
    },
    /// Move dead-lettered messages back to their queue (both DLQs when no queue is named).
    Redrive {
        #[arg(long, value_enum)]
        queue: Option<RedriveQueue>,
    },
}

#[derive(Debug, Args)]
pub struct DevArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Delays between delivery attempts, e.g. 1s,5s,30s.
    #[arg(long, default_value = relay_core::retry::DEFAULT_SCHEDULE)]
    pub retry_schedule: String,
    /// Refuse loopback and private destinations, as the Lambdas do.
    #[arg(long)]
    pub deny_private_destinations: bool,
    /// Seconds a subscriber has to answer.
    #[arg(long, default_value_t = 15)]
    pub delivery_timeout: u64,
    #[arg(long, default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RedriveQueue {
    Events,
    Deliveries,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ProviderName {
    Github,
    Standard,
    Hmac,
}

#[derive(Debug, Subcommand)]
pub enum SourcesCommand {
    Add {
        name: String,
        #[arg(long, value_enum)]
        provider: ProviderName,
        /// Repeat for several secrets during rotation.
        #[arg(long = "secret", required = true)]
        secrets: Vec<String>,
        /// Seconds a signed timestamp may be off.
        #[arg(long, default_value_t = relay_core::model::DEFAULT_TOLERANCE_SECS)]
        tolerance: u64,
        /// hmac: the signature header.
        #[arg(long)]
        header: Option<String>,
        /// hmac: sha1, sha256 or sha512.
        #[arg(long, default_value = "sha256")]
        algorithm: String,
        /// hmac: hex or base64.
        #[arg(long, default_value = "hex")]
        encoding: String,
        /// hmac: text before the signature, e.g. sha256=.
        #[arg(long, default_value = "")]
        prefix: String,
        /// hmac: header naming the event type.
        #[arg(long)]
        type_header: Option<String>,
        /// hmac: header carrying the sender's delivery id.
        #[arg(long)]
        id_header: Option<String>,
    },
    List,
    Remove {
        name: String,
    },
    Update {
        name: String,
        #[arg(long)]
        add_secret: Vec<String>,
        #[arg(long)]
        remove_secret: Vec<String>,
        #[arg(long)]
        tolerance: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    Add {
        #[arg(long)]
        source: String,
        #[arg(long)]
        url: String,
        /// Event-type patterns: *, an exact type, or prefix.*, comma-separated.
        #[arg(long, default_value = "*")]
        events: String,
        /// whsec_ + base64; generated when not given.
        #[arg(long)]
        secret: Option<String>,
        /// Extra header for every delivery, 'Name: value' (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    List {
        #[arg(long)]
        source: Option<String>,
    },
    Remove {
        id: String,
    },
    Disable {
        id: String,
    },
    Enable {
        id: String,
    },
    /// New signing secret; the old one keeps signing too for --keep-old.
    RotateSecret {
        id: String,
        #[arg(long, default_value = "24h")]
        keep_old: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    Show {
        id: String,
    },
}
