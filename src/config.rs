//! Node configuration: compiled-in defaults, then an optional TOML file, then `ECOMMESH_*`
//! environment variables and command-line flags (both parsed by clap), each layer
//! overriding the one before. `validate` then checks every value with a precise error.
//!
//! Every key has the same name everywhere: `data_dir` in the file, `ECOMMESH_DATA_DIR` in
//! the environment, `--data-dir` on the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use ecommesh_actors::RuntimeConfig;
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The full configuration of a node. See `config/ecommesh.toml` for every key explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub metrics_listen: String,
    pub data_dir: PathBuf,
    pub shards: u32,
    pub snapshot_every: u32,
    pub idle_timeout_secs: u64,
    pub max_live_entities: usize,
    pub mailbox_capacity: usize,
    pub crash_limit: u32,
    pub crash_window_secs: u64,
    pub quarantine_secs: u64,
    pub arbiters: usize,
    pub commit_delay_us: u64,
    pub http_workers: usize,
    pub max_body_bytes: usize,
    pub shutdown_timeout_secs: u64,
    pub journal_engine: String,
    pub cache_capacity_mb: u64,
    pub journal_reserve_mb: u64,
    pub log_format: String,
    pub log_level: String,
    pub jwt_secret: String,
    pub cluster_secret: String,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub admin_email: String,
    pub admin_password: String,
    pub login_max_failures: u32,
    pub login_lockout_secs: u64,
    pub password_hash_concurrency: usize,
    pub password_hash_wait_ms: u64,
    pub auth_rate_per_minute: u32,
    pub auth_burst: u32,
    pub currency: String,
    pub demo_catalog: bool,
    pub reservation_ttl_secs: u64,
    pub checkout_timeout_secs: u64,
    pub max_pending_checkouts: usize,
    pub ws_heartbeat_secs: u64,
    pub ws_idle_timeout_secs: u64,
    pub ws_send_buffer: usize,
    pub ws_max_subscriptions: usize,
    pub ws_max_failed_subscriptions: usize,
    pub ws_max_connections_per_ip: usize,
    pub ws_max_subscriptions_per_ip: usize,
    pub trusted_proxies: String,
    pub low_stock_threshold: u64,
    pub node_id: u64,
    pub rpc_listen: String,
    pub peers: String,
    pub replication_factor: usize,
    pub raft_heartbeat_ms: u64,
    pub raft_election_timeout_ms: u64,
    pub leader_wait_ms: u64,
    pub join: bool,
    pub raft_snapshot_every: u64,
    pub node_id_from_hostname: bool,
    /// TEST ONLY, never in production: acknowledge cluster writes before Raft commits
    /// them. A deliberately broken build, so the chaos suite can prove its checker
    /// catches lost writes. Only in a build with the `test-hooks` feature: the shipped
    /// binary has no such key (a config file naming it is refused) and no such variable.
    #[cfg(feature = "test-hooks")]
    #[serde(default)]
    pub test_ack_before_commit: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            metrics_listen: String::new(),
            data_dir: PathBuf::from("./data"),
            shards: 64,
            snapshot_every: 100,
            idle_timeout_secs: 300,
            max_live_entities: 1_000_000,
            mailbox_capacity: 1024,
            crash_limit: 3,
            crash_window_secs: 60,
            quarantine_secs: 60,
            arbiters: 0,
            commit_delay_us: 300,
            http_workers: 0,
            max_body_bytes: 64 * 1024,
            shutdown_timeout_secs: 30,
            journal_engine: "log".into(),
            cache_capacity_mb: 256,
            journal_reserve_mb: 8,
            log_format: "text".into(),
            log_level: "info".into(),
            jwt_secret: String::new(),
            cluster_secret: String::new(),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            admin_email: String::new(),
            admin_password: String::new(),
            login_max_failures: 5,
            login_lockout_secs: 900,
            password_hash_concurrency: 0,
            password_hash_wait_ms: 1000,
            auth_rate_per_minute: 30,
            auth_burst: 10,
            currency: "USD".into(),
            demo_catalog: true,
            reservation_ttl_secs: 900,
            checkout_timeout_secs: 60,
            max_pending_checkouts: 3,
            ws_heartbeat_secs: 15,
            ws_idle_timeout_secs: 60,
            ws_send_buffer: 1024,
            ws_max_subscriptions: 256,
            ws_max_failed_subscriptions: 32,
            ws_max_connections_per_ip: 64,
            ws_max_subscriptions_per_ip: 4096,
            trusted_proxies: String::new(),
            low_stock_threshold: 5,
            node_id: 0,
            rpc_listen: "127.0.0.1:7100".into(),
            peers: String::new(),
            replication_factor: 3,
            raft_heartbeat_ms: 200,
            raft_election_timeout_ms: 500,
            leader_wait_ms: 3000,
            join: false,
            raft_snapshot_every: 20_000,
            node_id_from_hostname: false,
            #[cfg(feature = "test-hooks")]
            test_ack_before_commit: false,
        }
    }
}

/// Overrides from flags and environment variables; unset ones leave the lower layers be.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct Overrides {
    /// Address to serve HTTP on (port 0 picks a free port).
    #[arg(long, global = true, env = "ECOMMESH_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Serve /metrics apart, on this address (ip:port) only, and not on the shop's port (empty: on the shop's port, public). Set it wherever the shop port faces the internet.
    #[arg(long, global = true, env = "ECOMMESH_METRICS_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// Directory of the journal; created if missing.
    #[arg(long, global = true, env = "ECOMMESH_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Number of shards; fixed when the data directory is created.
    #[arg(long, global = true, env = "ECOMMESH_SHARDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    /// Snapshot an entity every this many events.
    #[arg(long, global = true, env = "ECOMMESH_SNAPSHOT_EVERY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_every: Option<u32>,
    /// Passivate an entity after this many idle seconds.
    #[arg(long, global = true, env = "ECOMMESH_IDLE_TIMEOUT_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u64>,
    /// Most live entities of one kind; past it the least recently used are passivated.
    #[arg(long, global = true, env = "ECOMMESH_MAX_LIVE_ENTITIES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_live_entities: Option<usize>,
    /// Commands queued per shard before callers get 503.
    #[arg(long, global = true, env = "ECOMMESH_MAILBOX_CAPACITY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox_capacity: Option<usize>,
    /// Crashes within the crash window that quarantine an entity.
    #[arg(long, global = true, env = "ECOMMESH_CRASH_LIMIT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash_limit: Option<u32>,
    #[arg(long, global = true, env = "ECOMMESH_CRASH_WINDOW_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash_window_secs: Option<u64>,
    #[arg(long, global = true, env = "ECOMMESH_QUARANTINE_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine_secs: Option<u64>,
    /// Threads for shard actors (0: one per core).
    #[arg(long, global = true, env = "ECOMMESH_ARBITERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arbiters: Option<usize>,
    /// Under load, microseconds a journal flush may wait for its batch to fill (0: never).
    #[arg(long, global = true, env = "ECOMMESH_COMMIT_DELAY_US")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_delay_us: Option<u64>,
    /// HTTP worker threads (0: one per core).
    #[arg(long, global = true, env = "ECOMMESH_HTTP_WORKERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_workers: Option<usize>,
    /// Largest accepted request body, in bytes.
    #[arg(long, global = true, env = "ECOMMESH_MAX_BODY_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// Seconds to drain in-flight requests on shutdown.
    #[arg(long, global = true, env = "ECOMMESH_SHUTDOWN_TIMEOUT_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout_secs: Option<u64>,
    /// The storage engine of a new single node's journal: `log` or `sled`.
    #[arg(long, global = true, env = "ECOMMESH_JOURNAL_ENGINE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_engine: Option<String>,
    /// sled's page cache (cluster nodes, or `journal_engine = "sled"`), in MiB.
    #[arg(long, global = true, env = "ECOMMESH_CACHE_CAPACITY_MB")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_capacity_mb: Option<u64>,
    /// Zeros the log-file journal keeps written ahead of its end, in MiB (0: none): a
    /// flush over them changes no file metadata, so it is faster.
    #[arg(long, global = true, env = "ECOMMESH_JOURNAL_RESERVE_MB")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_reserve_mb: Option<u64>,
    /// `text` or `json`.
    #[arg(long, global = true, env = "ECOMMESH_LOG_FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// A tracing filter such as `info` or `ecommesh=debug,info`.
    #[arg(long, global = true, env = "ECOMMESH_LOG_LEVEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Secret that signs tokens (32+ bytes); empty: generated once into the data directory.
    #[arg(
        long,
        global = true,
        env = "ECOMMESH_JWT_SECRET",
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
    /// Secret every node of a cluster holds (32+ bytes, the same on every node, not the
    /// `jwt_secret`): peers prove it before a link carries anything. Required in a cluster.
    #[arg(
        long,
        global = true,
        env = "ECOMMESH_CLUSTER_SECRET",
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_secret: Option<String>,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, global = true, env = "ECOMMESH_ACCESS_TOKEN_TTL_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_ttl_secs: Option<u64>,
    /// Lifetime of a sign-in session (its refresh tokens), in seconds.
    #[arg(long, global = true, env = "ECOMMESH_REFRESH_TOKEN_TTL_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token_ttl_secs: Option<u64>,
    /// With `admin_password`: an admin account made (or promoted) at start.
    #[arg(long, global = true, env = "ECOMMESH_ADMIN_EMAIL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_email: Option<String>,
    #[arg(
        long,
        global = true,
        env = "ECOMMESH_ADMIN_PASSWORD",
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
    /// Login attempts per account and client address before each further one backs off.
    #[arg(long, global = true, env = "ECOMMESH_LOGIN_MAX_FAILURES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_max_failures: Option<u32>,
    /// The longest backoff between login attempts of one account and address.
    #[arg(long, global = true, env = "ECOMMESH_LOGIN_LOCKOUT_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_lockout_secs: Option<u64>,
    /// Password hashes (argon2id, 19 MiB each) computed at once; 0: one per core. Sign-ins beyond it wait up to password_hash_wait_ms, then get 503 busy.
    #[arg(long, global = true, env = "ECOMMESH_PASSWORD_HASH_CONCURRENCY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash_concurrency: Option<usize>,
    /// How long a sign-in waits for a free hashing slot before 503 busy (with Retry-After).
    #[arg(long, global = true, env = "ECOMMESH_PASSWORD_HASH_WAIT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash_wait_ms: Option<u64>,
    /// Requests to /auth/* (register, login, refresh) one client address may make per minute, after a burst of auth_burst; more get 429.
    #[arg(long, global = true, env = "ECOMMESH_AUTH_RATE_PER_MINUTE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_rate_per_minute: Option<u32>,
    /// Requests to /auth/* one client address may make at once before the per-minute rate applies.
    #[arg(long, global = true, env = "ECOMMESH_AUTH_BURST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_burst: Option<u32>,
    /// The currency of every price in the shop (ISO 4217).
    #[arg(long, global = true, env = "ECOMMESH_CURRENCY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Seed the demo catalog on first start with an empty data directory.
    #[arg(long, global = true, env = "ECOMMESH_DEMO_CATALOG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demo_catalog: Option<bool>,
    /// How long checkout holds stock; an interrupted checkout's hold expires after it.
    #[arg(long, global = true, env = "ECOMMESH_RESERVATION_TTL_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_ttl_secs: Option<u64>,
    /// A checkout still pending after this long is taken as interrupted and finished by
    /// the reconciler (resumed if charged, compensated if not).
    #[arg(long, global = true, env = "ECOMMESH_CHECKOUT_TIMEOUT_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkout_timeout_secs: Option<u64>,
    /// Checkouts one customer may have running at once on a node (each holds its cart's stock while it runs); more get 429 too_many_pending_checkouts.
    #[arg(long, global = true, env = "ECOMMESH_MAX_PENDING_CHECKOUTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pending_checkouts: Option<usize>,
    /// Seconds between the pings a node sends on every websocket.
    #[arg(long, global = true, env = "ECOMMESH_WS_HEARTBEAT_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_heartbeat_secs: Option<u64>,
    /// A websocket that sends nothing (not even a pong) for this long is closed.
    #[arg(long, global = true, env = "ECOMMESH_WS_IDLE_TIMEOUT_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_idle_timeout_secs: Option<u64>,
    /// Messages that may wait for one slow websocket client before it is disconnected.
    #[arg(long, global = true, env = "ECOMMESH_WS_SEND_BUFFER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_send_buffer: Option<usize>,
    /// Most topics one websocket may subscribe to.
    #[arg(long, global = true, env = "ECOMMESH_WS_MAX_SUBSCRIPTIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_max_subscriptions: Option<usize>,
    /// Subscribe attempts one websocket may have refused (unknown topic or product, no access, over a limit) before it is closed with 1008.
    #[arg(long, global = true, env = "ECOMMESH_WS_MAX_FAILED_SUBSCRIPTIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_max_failed_subscriptions: Option<usize>,
    /// Websockets open at once from one client address; more are refused with 429.
    #[arg(long, global = true, env = "ECOMMESH_WS_MAX_CONNECTIONS_PER_IP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_max_connections_per_ip: Option<usize>,
    /// Subscriptions held at once by all websockets of one client address.
    #[arg(long, global = true, env = "ECOMMESH_WS_MAX_SUBSCRIPTIONS_PER_IP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_max_subscriptions_per_ip: Option<usize>,
    /// Addresses of reverse proxies (comma-separated IPs) whose X-Forwarded-For names the client; from anyone else the TCP peer is the client.
    #[arg(long, global = true, env = "ECOMMESH_TRUSTED_PROXIES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<String>,
    /// A product with this many units available or fewer is reported as low on stock.
    #[arg(long, global = true, env = "ECOMMESH_LOW_STOCK_THRESHOLD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_stock_threshold: Option<u64>,
    /// This node's id in a cluster; 0 runs a single node.
    #[arg(long, global = true, env = "ECOMMESH_NODE_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
    /// Where this node listens for its cluster peers.
    #[arg(long, global = true, env = "ECOMMESH_RPC_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc_listen: Option<String>,
    /// The cluster's nodes: `id=host:port,...` (peer addresses, this node included).
    #[arg(long, global = true, env = "ECOMMESH_PEERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<String>,
    /// Replicas of each shard (at most the number of nodes).
    #[arg(long, global = true, env = "ECOMMESH_REPLICATION_FACTOR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<usize>,
    #[arg(long, global = true, env = "ECOMMESH_RAFT_HEARTBEAT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_heartbeat_ms: Option<u64>,
    #[arg(long, global = true, env = "ECOMMESH_RAFT_ELECTION_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_election_timeout_ms: Option<u64>,
    /// How long a request waits for a shard with no leader before answering 503.
    #[arg(long, global = true, env = "ECOMMESH_LEADER_WAIT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_wait_ms: Option<u64>,
    /// This node joins a running cluster (added with `ecommesh cluster join`); it never
    /// forms shard groups itself.
    #[arg(long, global = true, env = "ECOMMESH_JOIN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<bool>,
    /// A shard's Raft group snapshots itself every this many entries.
    #[arg(long, global = true, env = "ECOMMESH_RAFT_SNAPSHOT_EVERY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_snapshot_every: Option<u64>,
    /// Take node_id from the host name's ordinal plus one (`ecommesh-0` is node 1): for
    /// Kubernetes StatefulSet pods.
    #[arg(long, global = true, env = "ECOMMESH_NODE_ID_FROM_HOSTNAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id_from_hostname: Option<bool>,
    /// TEST ONLY: acknowledge cluster writes before they commit (breaks durability on
    /// purpose, for the chaos suite's broken-build run).
    #[arg(
        long,
        global = true,
        hide = true,
        env = "ECOMMESH_TEST_ACK_BEFORE_COMMIT"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg(feature = "test-hooks")]
    pub test_ack_before_commit: Option<bool>,
    /// Short for `--demo-catalog false`.
    #[arg(long = "no-demo", global = true, action = clap::ArgAction::SetTrue)]
    #[serde(skip)]
    pub no_demo: bool,
}

/// The node id of a StatefulSet pod: its name's trailing ordinal plus one.
fn node_id_of_host(host: &str) -> anyhow::Result<u64> {
    host.rsplit_once('-')
        .and_then(|(_, n)| n.parse::<u64>().ok())
        .map(|n| n + 1)
        .with_context(|| {
            format!("invalid configuration: `node_id_from_hostname` needs a host name ending in -<ordinal> (like ecommesh-0), got {host:?}")
        })
}

impl Overrides {
    /// The settings given, as the `ECOMMESH_*` variables that give them to a node this
    /// process starts (a benchmark's), except those the starter sets itself: where it
    /// listens, its data, its token secret and its admin account.
    pub fn to_env(&self) -> Vec<(String, String)> {
        const OWN: [&str; 6] = [
            "listen",
            "data_dir",
            "jwt_secret",
            "cluster_secret",
            "admin_email",
            "admin_password",
        ];
        let mut given = self.clone();
        if given.no_demo {
            given.demo_catalog = Some(false);
        }
        let Ok(serde_json::Value::Object(given)) = serde_json::to_value(given) else {
            return Vec::new();
        };
        given
            .into_iter()
            .filter(|(key, _)| !OWN.contains(&key.as_str()))
            .map(|(key, value)| {
                let value = match value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (format!("ECOMMESH_{}", key.to_uppercase()), value)
            })
            .collect()
    }
}

impl Config {
    /// Layers defaults, the file at `file` (if any) and `overrides`, then validates.
    pub fn load(file: Option<&std::path::Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                bail!("config file {} does not exist", path.display());
            }
            fig = fig.merge(Toml::file(path));
        }
        let mut overrides = overrides.clone();
        if overrides.no_demo {
            overrides.demo_catalog = Some(false);
        }
        let mut config: Config = fig
            .merge(Serialized::defaults(&overrides))
            .extract()
            .map_err(|e| {
                // figment's message names the key and the layer it came from.
                anyhow::anyhow!("invalid configuration: {e}")
            })?;
        if config.node_id_from_hostname {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                .unwrap_or_default();
            config.node_id = node_id_of_host(host.trim())?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every value, naming the key that is wrong and what would be right.
    pub fn validate(&self) -> anyhow::Result<()> {
        fn range<T: PartialOrd + std::fmt::Display>(
            key: &str,
            v: T,
            min: T,
            max: T,
        ) -> anyhow::Result<()> {
            if v < min || v > max {
                bail!("invalid configuration: `{key}` must be between {min} and {max}, got {v}");
            }
            Ok(())
        }
        self.listen_addr()?;
        if !self.metrics_listen.is_empty() && self.metrics_listen.parse::<SocketAddr>().is_err() {
            bail!(
                "invalid configuration: `metrics_listen` must be ip:port or empty, got {:?}",
                self.metrics_listen
            );
        }
        crate::http::client_ip::ClientIp::parse(&self.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        range("shards", self.shards, 1, 4096)?;
        range("snapshot_every", self.snapshot_every, 1, 1_000_000)?;
        range(
            "idle_timeout_secs",
            self.idle_timeout_secs,
            1,
            30 * 24 * 3600,
        )?;
        range("max_live_entities", self.max_live_entities, 1, 1 << 32)?;
        range("mailbox_capacity", self.mailbox_capacity, 1, 1 << 20)?;
        range("crash_limit", self.crash_limit, 1, 1000)?;
        range("crash_window_secs", self.crash_window_secs, 1, 24 * 3600)?;
        range("quarantine_secs", self.quarantine_secs, 1, 24 * 3600)?;
        range("arbiters", self.arbiters, 0, 256)?;
        range("commit_delay_us", self.commit_delay_us, 0, 100_000)?;
        range("http_workers", self.http_workers, 0, 256)?;
        range("max_body_bytes", self.max_body_bytes, 256, 64 << 20)?;
        range("shutdown_timeout_secs", self.shutdown_timeout_secs, 0, 3600)?;
        range("cache_capacity_mb", self.cache_capacity_mb, 1, 1 << 20)?;
        range("journal_reserve_mb", self.journal_reserve_mb, 0, 4096)?;
        if !matches!(self.journal_engine.as_str(), "log" | "sled") {
            bail!(
                "invalid configuration: `journal_engine` must be \"log\" or \"sled\", got {:?}",
                self.journal_engine
            );
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            bail!(
                "invalid configuration: `log_format` must be \"text\" or \"json\", got {:?}",
                self.log_format
            );
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            bail!(
                "invalid configuration: `log_level` {:?} is not a valid filter (try \"info\")",
                self.log_level
            );
        }
        if !self.jwt_secret.is_empty() && self.jwt_secret.len() < 32 {
            bail!("invalid configuration: `jwt_secret` must be at least 32 bytes (or empty to generate one)");
        }
        range(
            "access_token_ttl_secs",
            self.access_token_ttl_secs,
            10,
            24 * 3600,
        )?;
        range(
            "refresh_token_ttl_secs",
            self.refresh_token_ttl_secs,
            60,
            365 * 24 * 3600,
        )?;
        range("login_max_failures", self.login_max_failures, 1, 1000)?;
        range("login_lockout_secs", self.login_lockout_secs, 1, 24 * 3600)?;
        if self.admin_email.is_empty() != self.admin_password.is_empty() {
            bail!("invalid configuration: set both `admin_email` and `admin_password`, or neither");
        }
        self.shop_currency()?;
        range(
            "reservation_ttl_secs",
            self.reservation_ttl_secs,
            1,
            24 * 3600,
        )?;
        range("ws_heartbeat_secs", self.ws_heartbeat_secs, 1, 3600)?;
        range(
            "ws_idle_timeout_secs",
            self.ws_idle_timeout_secs,
            2,
            24 * 3600,
        )?;
        if self.ws_idle_timeout_secs <= self.ws_heartbeat_secs {
            bail!("invalid configuration: `ws_idle_timeout_secs` must be longer than `ws_heartbeat_secs`, or idle clients that answer every ping are closed");
        }
        range("ws_send_buffer", self.ws_send_buffer, 1, 1_000_000)?;
        range(
            "ws_max_subscriptions",
            self.ws_max_subscriptions,
            1,
            100_000,
        )?;
        if self.node_id != 0 {
            self.cluster_peers()?;
            if self.jwt_secret.is_empty() {
                bail!("invalid configuration: a cluster node needs `jwt_secret` (the same on every node), or a token signed by one node is refused by the others");
            }
            if self.cluster_secret.len() < crate::cluster::handshake::MIN_SECRET_LEN {
                bail!("invalid configuration: a cluster node needs `cluster_secret` (ECOMMESH_CLUSTER_SECRET), 32 bytes or more and the same on every node: peers prove it before a link carries anything");
            }
            if self.cluster_secret == self.jwt_secret {
                bail!("invalid configuration: `cluster_secret` must differ from `jwt_secret` (a leaked token secret must not open the peer port)");
            }
        }
        range("replication_factor", self.replication_factor, 1, 7)?;
        range("raft_heartbeat_ms", self.raft_heartbeat_ms, 10, 10_000)?;
        range(
            "raft_election_timeout_ms",
            self.raft_election_timeout_ms,
            50,
            60_000,
        )?;
        if self.raft_election_timeout_ms < 2 * self.raft_heartbeat_ms {
            bail!("invalid configuration: `raft_election_timeout_ms` must be at least 2 x `raft_heartbeat_ms`, or followers start elections between heartbeats");
        }
        range("leader_wait_ms", self.leader_wait_ms, 0, 60_000)?;
        range(
            "raft_snapshot_every",
            self.raft_snapshot_every,
            10,
            100_000_000,
        )?;
        range(
            "ws_max_failed_subscriptions",
            self.ws_max_failed_subscriptions,
            1,
            100000,
        )?;
        range(
            "ws_max_connections_per_ip",
            self.ws_max_connections_per_ip,
            1,
            1000000,
        )?;
        range(
            "ws_max_subscriptions_per_ip",
            self.ws_max_subscriptions_per_ip,
            1,
            100000000,
        )?;
        range(
            "password_hash_concurrency",
            self.password_hash_concurrency,
            0,
            1024,
        )?;
        range(
            "password_hash_wait_ms",
            self.password_hash_wait_ms,
            0,
            60000,
        )?;
        range(
            "auth_rate_per_minute",
            self.auth_rate_per_minute,
            1,
            10000000,
        )?;
        range("auth_burst", self.auth_burst, 1, 10000000)?;
        range("max_pending_checkouts", self.max_pending_checkouts, 1, 1000)?;
        if self.data_dir.as_os_str().is_empty() {
            bail!("invalid configuration: `data_dir` must not be empty");
        }
        Ok(())
    }

    /// The nodes of `peers`, which must include this node.
    pub fn cluster_peers(&self) -> anyhow::Result<std::collections::BTreeMap<u64, String>> {
        let mut out = std::collections::BTreeMap::new();
        for part in self
            .peers
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (id, addr) = part.split_once('=').with_context(|| {
                format!("invalid configuration: `peers` entry {part:?} is not id=host:port")
            })?;
            let id: u64 = id.trim().parse().ok().filter(|&i| i > 0).with_context(|| {
                format!("invalid configuration: `peers` entry {part:?}: the id must be a number above 0")
            })?;
            if out.insert(id, addr.trim().to_owned()).is_some() {
                bail!("invalid configuration: `peers` names node {id} twice");
            }
        }
        if !out.contains_key(&self.node_id) {
            bail!(
                "invalid configuration: `peers` must include this node ({}=<rpc_listen>), got {:?}",
                self.node_id,
                self.peers
            );
        }
        Ok(out)
    }

    /// The cluster settings, or None for a single node.
    pub fn cluster(&self, http: String) -> anyhow::Result<Option<crate::cluster::ClusterSettings>> {
        if self.node_id == 0 {
            return Ok(None);
        }
        Ok(Some(crate::cluster::ClusterSettings {
            node_id: self.node_id,
            rpc_listen: self.rpc_listen.clone(),
            peers: self.cluster_peers()?,
            replication_factor: self.replication_factor,
            heartbeat: Duration::from_millis(self.raft_heartbeat_ms),
            election_timeout: Duration::from_millis(self.raft_election_timeout_ms),
            leader_wait: Duration::from_millis(self.leader_wait_ms),
            http,
            join: self.join,
            snapshot_every: self.raft_snapshot_every,
            secret: crate::cluster::handshake::ClusterSecret::new(self.cluster_secret.as_bytes())
                .map_err(|e| anyhow::anyhow!("invalid configuration: `cluster_secret`: {e}"))?,
            #[cfg(feature = "test-hooks")]
            ack_before_commit: self.test_ack_before_commit,
            #[cfg(not(feature = "test-hooks"))]
            ack_before_commit: false,
        }))
    }

    pub fn shop_currency(&self) -> anyhow::Result<ecommesh_commerce::Currency> {
        ecommesh_commerce::Currency::parse(&self.currency).ok_or_else(|| {
            anyhow::anyhow!("invalid configuration: `currency` must be a 3-letter ISO 4217 code such as USD, got {:?}", self.currency)
        })
    }

    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen.parse().with_context(|| {
            format!(
                "invalid configuration: `listen` must be ip:port, got {:?}",
                self.listen
            )
        })
    }

    fn cores() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    pub fn http_workers(&self) -> usize {
        if self.http_workers == 0 {
            Self::cores()
        } else {
            self.http_workers
        }
    }

    pub fn live(&self) -> crate::live::LiveSettings {
        crate::live::LiveSettings {
            heartbeat: Duration::from_secs(self.ws_heartbeat_secs),
            idle_timeout: Duration::from_secs(self.ws_idle_timeout_secs),
            send_buffer: self.ws_send_buffer,
            max_subscriptions: self.ws_max_subscriptions,
            max_failed_subscriptions: self.ws_max_failed_subscriptions,
            max_connections_per_ip: self.ws_max_connections_per_ip,
            max_subscriptions_per_ip: self.ws_max_subscriptions_per_ip,
            low_stock_threshold: self.low_stock_threshold,
        }
    }

    pub fn runtime(&self) -> RuntimeConfig {
        RuntimeConfig {
            snapshot_every: self.snapshot_every,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_live_entities: self.max_live_entities,
            mailbox_capacity: self.mailbox_capacity,
            crash_limit: self.crash_limit,
            crash_window: Duration::from_secs(self.crash_window_secs),
            quarantine: Duration::from_secs(self.quarantine_secs),
            arbiters: if self.arbiters == 0 {
                Self::cores()
            } else {
                self.arbiters
            },
            commit_delay: Duration::from_micros(self.commit_delay_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/ecommesh.toml");

    #[test]
    fn a_benchmark_passes_the_settings_it_was_given_to_its_node() {
        let given = Overrides {
            http_workers: Some(1),
            journal_engine: Some("sled".into()),
            no_demo: true,
            listen: Some("127.0.0.1:9".into()),
            jwt_secret: Some("s".repeat(32)),
            ..Overrides::default()
        };
        let mut env = given.to_env();
        env.sort();
        assert_eq!(
            env,
            [
                ("ECOMMESH_DEMO_CATALOG", "false"),
                ("ECOMMESH_HTTP_WORKERS", "1"),
                ("ECOMMESH_JOURNAL_ENGINE", "sled"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn the_shipped_file_parses_and_matches_the_defaults() {
        let c = Config::load(Some(std::path::Path::new(SHIPPED)), &Overrides::default()).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn the_shipped_cluster_files_form_one_cluster() {
        let secret = Overrides {
            jwt_secret: Some("x".repeat(32)),
            cluster_secret: Some("c".repeat(32)),
            ..Overrides::default()
        };
        let mut rpcs = Vec::new();
        for i in 1..=3u64 {
            let path = format!("{}/config/cluster/node{i}.toml", env!("CARGO_MANIFEST_DIR"));
            let c = Config::load(Some(std::path::Path::new(&path)), &secret).unwrap();
            assert_eq!(c.node_id, i);
            assert_eq!(c.cluster_peers().unwrap()[&i], c.rpc_listen);
            rpcs.push(c.cluster_peers().unwrap());
        }
        assert!(
            rpcs.windows(2).all(|w| w[0] == w[1]),
            "same peers everywhere"
        );
        // Without a shared secret a cluster node refuses to start.
        let path = format!("{}/config/cluster/node1.toml", env!("CARGO_MANIFEST_DIR"));
        let e = Config::load(Some(std::path::Path::new(&path)), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("jwt_secret"), "{e}");
        // Nor without the cluster secret, nor with the token secret as the cluster's.
        for cluster_secret in [None, Some("short".to_owned()), Some("x".repeat(32))] {
            let given = Overrides {
                cluster_secret,
                ..secret.clone()
            };
            let e = Config::load(Some(std::path::Path::new(&path)), &given)
                .unwrap_err()
                .to_string();
            assert!(e.contains("cluster_secret"), "{e}");
        }
    }

    #[test]
    fn a_pod_name_gives_the_node_id() {
        assert_eq!(node_id_of_host("ecommesh-0").unwrap(), 1);
        assert_eq!(node_id_of_host("shop-ecommesh-12").unwrap(), 13);
        assert!(node_id_of_host("ecommesh").is_err());
    }

    #[test]
    fn bad_cluster_settings_name_their_key() {
        let mut c = Config {
            node_id: 2,
            jwt_secret: "y".repeat(32),
            cluster_secret: "z".repeat(32),
            peers: "1=127.0.0.1:7101,3=127.0.0.1:7103".into(),
            ..Config::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("must include this node"));
        c.peers = "1=a:1,x=b:2".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`peers` entry"));
        c.peers = "1=a:1,2=b:2,2=c:3".into();
        assert!(c.validate().unwrap_err().to_string().contains("twice"));
        c.peers = "1=a:1,2=b:2".into();
        c.validate().unwrap();
        c.raft_election_timeout_ms = 100;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("raft_election_timeout_ms"));
    }

    #[test]
    fn overrides_beat_the_file() {
        let o = Overrides {
            shards: Some(8),
            listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        };
        let c = Config::load(Some(std::path::Path::new(SHIPPED)), &o).unwrap();
        assert_eq!((c.shards, c.listen.as_str()), (8, "127.0.0.1:0"));
    }

    #[test]
    fn no_demo_turns_the_demo_catalog_off() {
        let o = Overrides {
            no_demo: true,
            ..Default::default()
        };
        assert!(!Config::load(None, &o).unwrap().demo_catalog);
        assert!(
            Config::load(None, &Overrides::default())
                .unwrap()
                .demo_catalog
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        for (o, key) in [
            (
                Overrides {
                    shards: Some(0),
                    ..Default::default()
                },
                "shards",
            ),
            (
                Overrides {
                    listen: Some("nope".into()),
                    ..Default::default()
                },
                "listen",
            ),
            (
                Overrides {
                    log_format: Some("xml".into()),
                    ..Default::default()
                },
                "log_format",
            ),
        ] {
            let err = Config::load(None, &o).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn unknown_and_mistyped_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "shardz = 3\n").unwrap();
        assert!(Config::load(Some(&p), &Overrides::default())
            .unwrap_err()
            .to_string()
            .contains("shardz"));
        std::fs::write(&p, "shards = \"many\"\n").unwrap();
        assert!(Config::load(Some(&p), &Overrides::default())
            .unwrap_err()
            .to_string()
            .contains("shards"));
        assert!(Config::load(
            Some(&dir.path().join("missing.toml")),
            &Overrides::default()
        )
        .is_err());
    }
}
