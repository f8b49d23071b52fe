//! Node configuration: compiled-in defaults, then an optional TOML file, then `ECOMMESH_*`
//! environment variables, then command-line flags, each layer overriding the one before.
//! `validate` then checks every value with a precise error.
//!
//! Every setting is defined once, in [`settings`]: its section of the file, its name (the
//! same in the file, as `ECOMMESH_NAME` and as `--name`), type, default and
//! documentation. The file is nested by section (`[http]`, `[storage]`, ...);
//! [`template`] writes the documented file with every default, which is
//! `config/ecommesh.toml` (a test keeps them equal). A file written before sections
//! existed (every key at the top) still loads, with a warning per key.

pub mod settings;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use ecommesh_actors::RuntimeConfig;
use figment::providers::Serialized;
use figment::Figment;
use serde::{Deserialize, Serialize};

use settings::{
    Auth, AuthFlags, Cluster, ClusterFlags, Doc, Http, HttpFlags, Log, LogFlags, Runtime,
    RuntimeFlags, Shop, ShopFlags, Storage, StorageFlags, Websocket, WebsocketFlags,
};
#[cfg(feature = "test-hooks")]
use settings::{Testing, TestingFlags};

/// The full configuration of a node, section by section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: Http,
    pub storage: Storage,
    pub runtime: Runtime,
    pub log: Log,
    pub auth: Auth,
    pub shop: Shop,
    pub websocket: Websocket,
    pub cluster: Cluster,
    #[cfg(feature = "test-hooks")]
    pub testing: Testing,
}

/// Every section: its name, documentation and settings, in the file's order. (Not the
/// `[testing]` section of a test build, which a shipped binary would refuse.)
fn sections() -> Vec<(&'static str, &'static [&'static str], &'static [Doc])> {
    vec![
        (Http::NAME, Http::DOC, Http::SETTINGS),
        (Storage::NAME, Storage::DOC, Storage::SETTINGS),
        (Runtime::NAME, Runtime::DOC, Runtime::SETTINGS),
        (Log::NAME, Log::DOC, Log::SETTINGS),
        (Auth::NAME, Auth::DOC, Auth::SETTINGS),
        (Shop::NAME, Shop::DOC, Shop::SETTINGS),
        (Websocket::NAME, Websocket::DOC, Websocket::SETTINGS),
        (Cluster::NAME, Cluster::DOC, Cluster::SETTINGS),
    ]
}

/// The section of setting `name`, if it is one.
fn section_of(name: &str) -> Option<&'static str> {
    let mut all = sections();
    #[cfg(feature = "test-hooks")]
    all.push((Testing::NAME, Testing::DOC, Testing::SETTINGS));
    all.into_iter()
        .find(|(_, _, settings)| settings.iter().any(|s| s.name == name))
        .map(|(section, _, _)| section)
}

/// The settings given as flags; unset ones leave the lower layers be.
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct Overrides {
    #[command(flatten)]
    pub http: HttpFlags,
    #[command(flatten)]
    pub storage: StorageFlags,
    #[command(flatten)]
    pub runtime: RuntimeFlags,
    #[command(flatten)]
    pub log: LogFlags,
    #[command(flatten)]
    pub auth: AuthFlags,
    #[command(flatten)]
    pub shop: ShopFlags,
    #[command(flatten)]
    pub websocket: WebsocketFlags,
    #[command(flatten)]
    pub cluster: ClusterFlags,
    #[cfg(feature = "test-hooks")]
    #[command(flatten)]
    pub testing: TestingFlags,
    /// Short for `--demo-catalog false`.
    #[arg(long = "no-demo", global = true, action = clap::ArgAction::SetTrue)]
    #[serde(skip)]
    pub no_demo: bool,
}

/// The documented configuration file with every default: `config/ecommesh.toml`.
pub fn template() -> String {
    let defaults = toml::Table::try_from(Config::default()).expect("the defaults serialize");
    let mut out = String::from(
        "# EcomMesh node configuration: every setting, with its default.\n\
         #\n\
         # Every setting can also be given as an environment variable (ECOMMESH_ and its name\n\
         # in upper case, e.g. ECOMMESH_DATA_DIR) or a flag (--data-dir). Flags beat the\n\
         # environment, which beats this file, which beats the built-in defaults. The values\n\
         # below ARE the built-in defaults: `ecommesh config` writes this file (a test keeps\n\
         # them equal). Use it with: ecommesh --config config/ecommesh.toml\n",
    );
    for (section, doc, settings) in sections() {
        out.push('\n');
        for line in doc {
            out.push_str(&format!("#{}\n", line.trim_end()));
        }
        out.push_str(&format!("[{section}]\n"));
        let values = defaults[section].as_table().expect("a section is a table");
        for setting in settings {
            for line in setting.lines {
                out.push_str(&format!("#{}\n", line.trim_end()));
            }
            let value = toml::Value::to_string(&values[setting.name]);
            out.push_str(&format!("{} = {value}\n", setting.name));
        }
    }
    out
}

/// The settings `ECOMMESH_<NAME>` variables give, by section; other `ECOMMESH_*` variables
/// (`ECOMMESH_CONFIG`, ...) are not settings. A value is read as its setting's type: a
/// password of digits stays a string, a count must be a number.
fn environment(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> anyhow::Result<toml::Table> {
    let defaults = toml::Table::try_from(Config::default()).expect("the defaults serialize");
    let mut out = toml::Table::new();
    for (var, value) in vars {
        let (Some(var), Some(value)) = (var.to_str(), value.to_str()) else {
            continue;
        };
        let Some(name) = var.strip_prefix("ECOMMESH_") else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        let Some(section) = section_of(&name) else {
            continue;
        };
        let wrong = |what: &str| {
            anyhow::anyhow!("invalid configuration: {var} must be {what}, got {value:?}")
        };
        let value = match &defaults[section][&name] {
            toml::Value::Integer(_) => {
                toml::Value::Integer(value.trim().parse().map_err(|_| wrong("a whole number"))?)
            }
            toml::Value::Boolean(_) => {
                toml::Value::Boolean(value.trim().parse().map_err(|_| wrong("true or false"))?)
            }
            _ => toml::Value::String(value.to_owned()),
        };
        if let toml::Value::Table(t) = out
            .entry(section)
            .or_insert_with(|| toml::Value::Table(Default::default()))
        {
            t.insert(name, value);
        }
    }
    Ok(out)
}

/// A configuration file's settings, as read and nested: errors name the file.
struct File {
    path: std::path::PathBuf,
    table: toml::Table,
}

impl figment::Provider for File {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("config file").source(self.path.as_path())
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Serialized::defaults(&self.table).data()
    }
}

/// A file's table with every setting at its top moved into its section (a file written
/// before sections existed), and a warning for each. Anything else is left where it is,
/// for the unknown-key error to name it.
fn nest_flat_keys(file: &Path, mut table: toml::Table) -> toml::Table {
    let flat: Vec<(String, &'static str)> = table
        .iter()
        .filter(|(_, v)| !v.is_table())
        .filter_map(|(k, _)| section_of(k).map(|s| (k.clone(), s)))
        .collect();
    for (key, section) in flat {
        let value = table.remove(&key).expect("listed above");
        eprintln!(
            "warning: {}: `{key}` belongs under [{section}]; keys outside their section are deprecated",
            file.display()
        );
        if let toml::Value::Table(t) = table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(Default::default()))
        {
            t.entry(key).or_insert(value);
        }
    }
    table
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
            given.shop.demo_catalog = Some(false);
        }
        let Ok(serde_json::Value::Object(sections)) = serde_json::to_value(given) else {
            return Vec::new();
        };
        sections
            .into_iter()
            .filter_map(|(_, settings)| match settings {
                serde_json::Value::Object(settings) => Some(settings),
                _ => None,
            })
            .flatten()
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
    /// Layers defaults, the file at `file` (if any), the `ECOMMESH_*` environment and
    /// `overrides`, then validates.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                bail!("config file {} does not exist", path.display());
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("invalid configuration: {}: {e}", path.display()))?;
            fig = fig.merge(File {
                path: path.to_path_buf(),
                table: nest_flat_keys(path, table),
            });
        }
        fig = fig.merge(Serialized::defaults(environment(std::env::vars_os())?));
        let mut overrides = overrides.clone();
        if overrides.no_demo {
            overrides.shop.demo_catalog = Some(false);
        }
        let mut config: Config = fig
            .merge(Serialized::defaults(&overrides))
            .extract()
            .map_err(|e| {
                // figment's message names the key and the layer it came from.
                anyhow::anyhow!("invalid configuration: {e}")
            })?;
        if config.cluster.node_id_from_hostname {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                .unwrap_or_default();
            config.cluster.node_id = node_id_of_host(host.trim())?;
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
        if !self.http.metrics_listen.is_empty()
            && self.http.metrics_listen.parse::<SocketAddr>().is_err()
        {
            bail!(
                "invalid configuration: `metrics_listen` must be ip:port or empty, got {:?}",
                self.http.metrics_listen
            );
        }
        crate::http::client_ip::ClientIp::parse(&self.http.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        range("shards", self.storage.shards, 1, 4096)?;
        range("snapshot_every", self.runtime.snapshot_every, 1, 1_000_000)?;
        range(
            "idle_timeout_secs",
            self.runtime.idle_timeout_secs,
            1,
            30 * 24 * 3600,
        )?;
        range(
            "max_live_entities",
            self.runtime.max_live_entities,
            1,
            1 << 32,
        )?;
        range(
            "mailbox_capacity",
            self.runtime.mailbox_capacity,
            1,
            1 << 20,
        )?;
        range("crash_limit", self.runtime.crash_limit, 1, 1000)?;
        range(
            "crash_window_secs",
            self.runtime.crash_window_secs,
            1,
            24 * 3600,
        )?;
        range(
            "quarantine_secs",
            self.runtime.quarantine_secs,
            1,
            24 * 3600,
        )?;
        range("arbiters", self.runtime.arbiters, 0, 256)?;
        range("commit_delay_us", self.storage.commit_delay_us, 0, 100_000)?;
        range("http_workers", self.http.http_workers, 0, 256)?;
        range("max_body_bytes", self.http.max_body_bytes, 256, 64 << 20)?;
        range(
            "shutdown_timeout_secs",
            self.http.shutdown_timeout_secs,
            0,
            3600,
        )?;
        range(
            "cache_capacity_mb",
            self.storage.cache_capacity_mb,
            1,
            1 << 20,
        )?;
        range(
            "journal_reserve_mb",
            self.storage.journal_reserve_mb,
            0,
            4096,
        )?;
        if !matches!(self.storage.journal_engine.as_str(), "log" | "sled") {
            bail!(
                "invalid configuration: `journal_engine` must be \"log\" or \"sled\", got {:?}",
                self.storage.journal_engine
            );
        }
        if !matches!(self.log.log_format.as_str(), "text" | "json") {
            bail!(
                "invalid configuration: `log_format` must be \"text\" or \"json\", got {:?}",
                self.log.log_format
            );
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.log_level).is_err() {
            bail!(
                "invalid configuration: `log_level` {:?} is not a valid filter (try \"info\")",
                self.log.log_level
            );
        }
        if !self.auth.jwt_secret.is_empty() && self.auth.jwt_secret.len() < 32 {
            bail!("invalid configuration: `jwt_secret` must be at least 32 bytes (or empty to generate one)");
        }
        range(
            "access_token_ttl_secs",
            self.auth.access_token_ttl_secs,
            10,
            24 * 3600,
        )?;
        range(
            "refresh_token_ttl_secs",
            self.auth.refresh_token_ttl_secs,
            60,
            365 * 24 * 3600,
        )?;
        range("login_max_failures", self.auth.login_max_failures, 1, 1000)?;
        range(
            "login_lockout_secs",
            self.auth.login_lockout_secs,
            1,
            24 * 3600,
        )?;
        if self.auth.admin_email.is_empty() != self.auth.admin_password.is_empty() {
            bail!("invalid configuration: set both `admin_email` and `admin_password`, or neither");
        }
        self.shop_currency()?;
        range(
            "reservation_ttl_secs",
            self.shop.reservation_ttl_secs,
            1,
            24 * 3600,
        )?;
        range(
            "ws_heartbeat_secs",
            self.websocket.ws_heartbeat_secs,
            1,
            3600,
        )?;
        range(
            "ws_idle_timeout_secs",
            self.websocket.ws_idle_timeout_secs,
            2,
            24 * 3600,
        )?;
        if self.websocket.ws_idle_timeout_secs <= self.websocket.ws_heartbeat_secs {
            bail!("invalid configuration: `ws_idle_timeout_secs` must be longer than `ws_heartbeat_secs`, or idle clients that answer every ping are closed");
        }
        range(
            "ws_send_buffer",
            self.websocket.ws_send_buffer,
            1,
            1_000_000,
        )?;
        range(
            "ws_max_subscriptions",
            self.websocket.ws_max_subscriptions,
            1,
            100_000,
        )?;
        if self.cluster.node_id != 0 {
            self.cluster_peers()?;
            if self.auth.jwt_secret.is_empty() {
                bail!("invalid configuration: a cluster node needs `jwt_secret` (the same on every node), or a token signed by one node is refused by the others");
            }
            if self.cluster.cluster_secret.len() < crate::cluster::handshake::MIN_SECRET_LEN {
                bail!("invalid configuration: a cluster node needs `cluster_secret` (ECOMMESH_CLUSTER_SECRET), 32 bytes or more and the same on every node: peers prove it before a link carries anything");
            }
            if self.cluster.cluster_secret == self.auth.jwt_secret {
                bail!("invalid configuration: `cluster_secret` must differ from `jwt_secret` (a leaked token secret must not open the peer port)");
            }
        }
        range("replication_factor", self.cluster.replication_factor, 1, 7)?;
        range(
            "raft_heartbeat_ms",
            self.cluster.raft_heartbeat_ms,
            10,
            10_000,
        )?;
        range(
            "raft_election_timeout_ms",
            self.cluster.raft_election_timeout_ms,
            50,
            60_000,
        )?;
        if self.cluster.raft_election_timeout_ms < 2 * self.cluster.raft_heartbeat_ms {
            bail!("invalid configuration: `raft_election_timeout_ms` must be at least 2 x `raft_heartbeat_ms`, or followers start elections between heartbeats");
        }
        range("leader_wait_ms", self.cluster.leader_wait_ms, 0, 60_000)?;
        range(
            "raft_snapshot_every",
            self.cluster.raft_snapshot_every,
            10,
            100_000_000,
        )?;
        range(
            "ws_max_failed_subscriptions",
            self.websocket.ws_max_failed_subscriptions,
            1,
            100000,
        )?;
        range(
            "ws_max_connections_per_ip",
            self.websocket.ws_max_connections_per_ip,
            1,
            1000000,
        )?;
        range(
            "ws_max_subscriptions_per_ip",
            self.websocket.ws_max_subscriptions_per_ip,
            1,
            100000000,
        )?;
        range(
            "password_hash_concurrency",
            self.auth.password_hash_concurrency,
            0,
            1024,
        )?;
        range(
            "password_hash_wait_ms",
            self.auth.password_hash_wait_ms,
            0,
            60000,
        )?;
        range(
            "auth_rate_per_minute",
            self.auth.auth_rate_per_minute,
            1,
            10000000,
        )?;
        range("auth_burst", self.auth.auth_burst, 1, 10000000)?;
        range(
            "max_pending_checkouts",
            self.shop.max_pending_checkouts,
            1,
            1000,
        )?;
        if self.storage.data_dir.as_os_str().is_empty() {
            bail!("invalid configuration: `data_dir` must not be empty");
        }
        Ok(())
    }

    /// The nodes of `peers`, which must include this node.
    pub fn cluster_peers(&self) -> anyhow::Result<std::collections::BTreeMap<u64, String>> {
        let mut out = std::collections::BTreeMap::new();
        for part in self
            .cluster
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
        if !out.contains_key(&self.cluster.node_id) {
            bail!(
                "invalid configuration: `peers` must include this node ({}=<rpc_listen>), got {:?}",
                self.cluster.node_id,
                self.cluster.peers
            );
        }
        Ok(out)
    }

    /// The cluster settings, or None for a single node.
    pub fn cluster_settings(
        &self,
        http: String,
    ) -> anyhow::Result<Option<crate::cluster::ClusterSettings>> {
        if self.cluster.node_id == 0 {
            return Ok(None);
        }
        Ok(Some(crate::cluster::ClusterSettings {
            node_id: self.cluster.node_id,
            rpc_listen: self.cluster.rpc_listen.clone(),
            peers: self.cluster_peers()?,
            replication_factor: self.cluster.replication_factor,
            heartbeat: Duration::from_millis(self.cluster.raft_heartbeat_ms),
            election_timeout: Duration::from_millis(self.cluster.raft_election_timeout_ms),
            leader_wait: Duration::from_millis(self.cluster.leader_wait_ms),
            http,
            join: self.cluster.join,
            snapshot_every: self.cluster.raft_snapshot_every,
            secret: crate::cluster::handshake::ClusterSecret::new(
                self.cluster.cluster_secret.as_bytes(),
            )
            .map_err(|e| anyhow::anyhow!("invalid configuration: `cluster_secret`: {e}"))?,
            #[cfg(feature = "test-hooks")]
            ack_before_commit: self.testing.test_ack_before_commit,
            #[cfg(not(feature = "test-hooks"))]
            ack_before_commit: false,
        }))
    }

    pub fn shop_currency(&self) -> anyhow::Result<ecommesh_commerce::Currency> {
        ecommesh_commerce::Currency::parse(&self.shop.currency).ok_or_else(|| {
            anyhow::anyhow!("invalid configuration: `currency` must be a 3-letter ISO 4217 code such as USD, got {:?}", self.shop.currency)
        })
    }

    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.http.listen.parse().with_context(|| {
            format!(
                "invalid configuration: `listen` must be ip:port, got {:?}",
                self.http.listen
            )
        })
    }

    fn cores() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    pub fn http_workers(&self) -> usize {
        if self.http.http_workers == 0 {
            Self::cores()
        } else {
            self.http.http_workers
        }
    }

    pub fn live(&self) -> crate::live::LiveSettings {
        crate::live::LiveSettings {
            heartbeat: Duration::from_secs(self.websocket.ws_heartbeat_secs),
            idle_timeout: Duration::from_secs(self.websocket.ws_idle_timeout_secs),
            send_buffer: self.websocket.ws_send_buffer,
            max_subscriptions: self.websocket.ws_max_subscriptions,
            max_failed_subscriptions: self.websocket.ws_max_failed_subscriptions,
            max_connections_per_ip: self.websocket.ws_max_connections_per_ip,
            max_subscriptions_per_ip: self.websocket.ws_max_subscriptions_per_ip,
            low_stock_threshold: self.shop.low_stock_threshold,
        }
    }

    /// The entity runtime's settings.
    pub fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig {
            snapshot_every: self.runtime.snapshot_every,
            idle_timeout: Duration::from_secs(self.runtime.idle_timeout_secs),
            max_live_entities: self.runtime.max_live_entities,
            mailbox_capacity: self.runtime.mailbox_capacity,
            crash_limit: self.runtime.crash_limit,
            crash_window: Duration::from_secs(self.runtime.crash_window_secs),
            quarantine: Duration::from_secs(self.runtime.quarantine_secs),
            arbiters: if self.runtime.arbiters == 0 {
                Self::cores()
            } else {
                self.runtime.arbiters
            },
            commit_delay: Duration::from_micros(self.storage.commit_delay_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/ecommesh.toml");

    fn load(path: &str, o: &Overrides) -> anyhow::Result<Config> {
        Config::load(Some(Path::new(path)), o)
    }

    #[test]
    fn the_shipped_file_is_the_template_and_its_defaults() {
        let shipped = std::fs::read_to_string(SHIPPED).unwrap();
        assert!(
            shipped == template(),
            "config/ecommesh.toml is not what `ecommesh config` writes: regenerate it with `cargo run -- config > config/ecommesh.toml`"
        );
        assert_eq!(
            load(SHIPPED, &Overrides::default()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn every_setting_has_one_section_and_documentation() {
        let mut names = std::collections::BTreeSet::new();
        for (section, doc, settings) in sections() {
            assert!(!doc.is_empty(), "[{section}] has no documentation");
            for s in settings {
                assert!(names.insert(s.name), "`{}` is in two sections", s.name);
                assert!(!s.lines.is_empty(), "`{}` has no documentation", s.name);
            }
        }
    }

    #[test]
    fn a_benchmark_passes_the_settings_it_was_given_to_its_node() {
        let mut given = Overrides {
            no_demo: true,
            ..Overrides::default()
        };
        given.http.http_workers = Some(1);
        given.storage.journal_engine = Some("sled".into());
        given.http.listen = Some("127.0.0.1:9".into());
        given.auth.jwt_secret = Some("s".repeat(32));
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

    fn secrets() -> Overrides {
        let mut o = Overrides::default();
        o.auth.jwt_secret = Some("x".repeat(32));
        o.cluster.cluster_secret = Some("c".repeat(32));
        o
    }

    #[test]
    fn the_shipped_cluster_files_form_one_cluster() {
        let mut rpcs = Vec::new();
        for i in 1..=3u64 {
            let path = format!("{}/config/cluster/node{i}.toml", env!("CARGO_MANIFEST_DIR"));
            let c = load(&path, &secrets()).unwrap();
            assert_eq!(c.cluster.node_id, i);
            assert_eq!(c.cluster_peers().unwrap()[&i], c.cluster.rpc_listen);
            rpcs.push(c.cluster_peers().unwrap());
        }
        assert!(
            rpcs.windows(2).all(|w| w[0] == w[1]),
            "same peers everywhere"
        );
        // Without a shared secret a cluster node refuses to start.
        let path = format!("{}/config/cluster/node1.toml", env!("CARGO_MANIFEST_DIR"));
        let e = load(&path, &Overrides::default()).unwrap_err().to_string();
        assert!(e.contains("jwt_secret"), "{e}");
        // Nor without the cluster secret, nor with the token secret as the cluster's.
        for cluster_secret in [None, Some("short".to_owned()), Some("x".repeat(32))] {
            let mut given = secrets();
            given.cluster.cluster_secret = cluster_secret;
            let e = load(&path, &given).unwrap_err().to_string();
            assert!(e.contains("cluster_secret"), "{e}");
        }
    }

    #[test]
    fn a_file_with_every_key_at_the_top_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.toml");
        std::fs::write(
            &p,
            "listen = \"127.0.0.1:0\"\nshards = 8\n[shop]\ncurrency = \"EUR\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&p), &Overrides::default()).unwrap();
        assert_eq!(
            (
                c.http.listen.as_str(),
                c.storage.shards,
                c.shop.currency.as_str()
            ),
            ("127.0.0.1:0", 8, "EUR")
        );
    }

    #[test]
    fn environment_values_are_read_as_their_settings_type() {
        let vars = |pairs: &[(&str, &str)]| {
            environment(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())))
        };
        let t = vars(&[
            ("ECOMMESH_ADMIN_PASSWORD", "12345678"),
            ("ECOMMESH_SHARDS", "8"),
            ("ECOMMESH_JOIN", "true"),
            ("ECOMMESH_CONFIG", "x.toml"),
            ("OTHER", "1"),
        ])
        .unwrap();
        assert_eq!(t["auth"]["admin_password"].as_str(), Some("12345678"));
        assert_eq!(t["storage"]["shards"].as_integer(), Some(8));
        assert_eq!(t["cluster"]["join"].as_bool(), Some(true));
        assert_eq!(t.len(), 3, "{t:?}");
        let e = vars(&[("ECOMMESH_SHARDS", "many")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ECOMMESH_SHARDS") && e.contains("whole number"),
            "{e}"
        );
    }

    #[test]
    fn a_pod_name_gives_the_node_id() {
        assert_eq!(node_id_of_host("ecommesh-0").unwrap(), 1);
        assert_eq!(node_id_of_host("shop-ecommesh-12").unwrap(), 13);
        assert!(node_id_of_host("ecommesh").is_err());
    }

    #[test]
    fn bad_cluster_settings_name_their_key() {
        let mut c = Config::default();
        c.cluster.node_id = 2;
        c.auth.jwt_secret = "y".repeat(32);
        c.cluster.cluster_secret = "z".repeat(32);
        c.cluster.peers = "1=127.0.0.1:7101,3=127.0.0.1:7103".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("must include this node"));
        c.cluster.peers = "1=a:1,x=b:2".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`peers` entry"));
        c.cluster.peers = "1=a:1,2=b:2,2=c:3".into();
        assert!(c.validate().unwrap_err().to_string().contains("twice"));
        c.cluster.peers = "1=a:1,2=b:2".into();
        c.validate().unwrap();
        c.cluster.raft_election_timeout_ms = 100;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("raft_election_timeout_ms"));
    }

    #[test]
    fn overrides_beat_the_file() {
        let mut o = Overrides::default();
        o.storage.shards = Some(8);
        o.http.listen = Some("127.0.0.1:0".into());
        let c = load(SHIPPED, &o).unwrap();
        assert_eq!(
            (c.storage.shards, c.http.listen.as_str()),
            (8, "127.0.0.1:0")
        );
    }

    #[test]
    fn no_demo_turns_the_demo_catalog_off() {
        let o = Overrides {
            no_demo: true,
            ..Default::default()
        };
        assert!(!Config::load(None, &o).unwrap().shop.demo_catalog);
        assert!(
            Config::load(None, &Overrides::default())
                .unwrap()
                .shop
                .demo_catalog
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut shards = Overrides::default();
        shards.storage.shards = Some(0);
        let mut listen = Overrides::default();
        listen.http.listen = Some("nope".into());
        let mut log = Overrides::default();
        log.log.log_format = Some("xml".into());
        for (o, key) in [(shards, "shards"), (listen, "listen"), (log, "log_format")] {
            let err = Config::load(None, &o).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn unknown_and_mistyped_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        for (text, key) in [
            ("shardz = 3\n", "shardz"),
            ("[storage]\nshardz = 3\n", "shardz"),
            ("[storage]\nshards = \"many\"\n", "shards"),
            ("shards = \"many\"\n", "shards"),
            ("[nope]\nshards = 3\n", "nope"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = Config::load(Some(&p), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{text:?}: {e}");
            assert!(e.contains(p.to_str().unwrap()), "the file is named: {e}");
        }
        assert!(Config::load(
            Some(&dir.path().join("missing.toml")),
            &Overrides::default()
        )
        .is_err());
    }
}
