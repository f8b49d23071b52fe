//! The settings, each defined once: its section, name, type, default and documentation.
//! [`section!`] turns each definition into the section's serde struct (the TOML file),
//! its `Default`, its clap flags (`--name`, with the documentation as help) and the
//! entries of [`super::template`], the documented `config/ecommesh.toml`.
//!
//! A setting's name is the same everywhere: `listen` under `[http]` in the file,
//! `ECOMMESH_LISTEN` in the environment, `--listen` on the command line. Names are unique
//! across sections, so the environment and the flags need no section.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One setting as the documentation shows it.
pub struct Doc {
    pub name: &'static str,
    pub lines: &'static [&'static str],
}

/// Defines one section: `Section, Flags, "name" { /// doc \n field: Type = default; ... }`.
macro_rules! section {
    (
        $(#[doc = $sdoc:literal])*
        $Section:ident, $Flags:ident, $name:literal {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty = $default:expr;
            )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $Section {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl Default for $Section {
            fn default() -> Self {
                $Section { $( $field: $default, )* }
            }
        }

        impl $Section {
            /// The section's name in the file.
            pub const NAME: &'static str = $name;
            /// The section's documentation, line by line.
            pub const DOC: &'static [&'static str] = &[$($sdoc),*];
            /// Every setting of the section, in order.
            pub const SETTINGS: &'static [Doc] = &[
                $( Doc { name: stringify!($field), lines: &[$($doc),*] }, )*
            ];
        }

        /// The flags of the section's settings; unset ones leave the lower layers be.
        #[derive(Debug, Clone, Default, clap::Args, Serialize)]
        pub struct $Flags {
            $(
                $(#[doc = $doc])*
                #[arg(long, global = true)]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }
    };
}

section! {
    /// Serving HTTP.
    Http, HttpFlags, "http" {
        /// Address to serve HTTP on. Port 0 picks a free port (printed at start).
        listen: String = "127.0.0.1:8080".into();
        /// Serve /metrics apart, on this address (ip:port) only, and not on the shop's port
        /// (empty: on the shop's port, public). Set it wherever the shop port faces the
        /// internet.
        metrics_listen: String = String::new();
        /// HTTP worker threads; 0 means one per CPU core.
        http_workers: usize = 0;
        /// Largest request body accepted, in bytes; larger bodies get 413.
        max_body_bytes: usize = 64 * 1024;
        /// On SIGTERM/SIGINT: stop accepting, then wait this long (seconds) for in-flight
        /// requests.
        shutdown_timeout_secs: u64 = 30;
        /// Reverse proxies (comma-separated addresses or networks such as 10.0.0.0/8) whose
        /// X-Forwarded-For names the client; from anyone else the TCP peer is the client.
        /// Behind an ingress, set it, or every client counts as the ingress for the
        /// per-client limits. (Limits count an IPv6 client by its /64.)
        trusted_proxies: String = String::new();
    }
}

section! {
    /// The journal: where events are kept, and how they are made durable.
    Storage, StorageFlags, "storage" {
        /// Where the event journal, snapshots and projection offsets live. Created if
        /// missing.
        data_dir: PathBuf = PathBuf::from("./data");
        /// Number of shards entities are spread over: shard = fnv1a64("kind/id") % shards.
        /// Fixed when the data directory is created; starting with another value is
        /// refused.
        shards: u32 = 64;
        /// The storage engine of a new single node's journal: "log" (one append-only file,
        /// indexed in memory) or "sled". An existing journal stays in the engine it was
        /// made in; cluster nodes always use sled (their consensus logs live next to the
        /// journal).
        journal_engine: String = "log".into();
        /// sled's page cache, in MiB (cluster nodes, or journal_engine = "sled").
        cache_capacity_mb: u64 = 256;
        /// Zeros the "log" journal keeps written ahead of its last record, in MiB (0:
        /// none). A flush of records written over them changes no file metadata, which
        /// made it ~25% faster on ext4; on a copy-on-write filesystem (btrfs, ZFS) it gains
        /// nothing: set 0.
        journal_reserve_mb: u64 = 8;
        /// Group commit: under load (the previous flush served 8 or more writes), a flush
        /// waits up to this many microseconds for as many writes to queue again. Fewer,
        /// larger fsyncs save CPU; a lone writer never waits. 0 flushes at once.
        commit_delay_us: u64 = 300;
    }
}

section! {
    /// The entity runtime: snapshots, passivation, mailboxes, supervision.
    Runtime, RuntimeFlags, "runtime" {
        /// Snapshot an entity every this many events, so that activation replays at most
        /// this many.
        snapshot_every: u32 = 100;
        /// Stop hosting an entity after this many seconds without commands (passivation).
        /// It comes back from snapshot + journal on its next command.
        idle_timeout_secs: u64 = 300;
        /// Most live entities of one kind on this node (per shard: this / shards). Past it
        /// the least recently used are passivated early, so memory stays bounded whatever
        /// the traffic.
        max_live_entities: usize = 1_000_000;
        /// Commands that may wait in one shard's mailbox; beyond it callers get 503 +
        /// Retry-After.
        mailbox_capacity: usize = 1024;
        /// An entity that crashes crash_limit times within crash_window_secs is
        /// quarantined for quarantine_secs: its commands get 503 instead of restarting it
        /// forever.
        crash_limit: u32 = 3;
        /// See crash_limit.
        crash_window_secs: u64 = 60;
        /// See crash_limit.
        quarantine_secs: u64 = 60;
        /// Threads that run the shard actors; 0 means one per CPU core.
        arbiters: usize = 0;
    }
}

section! {
    /// Logs, to stderr.
    Log, LogFlags, "log" {
        /// "text" for people, "json" for log shippers.
        log_format: String = "text".into();
        /// A tracing filter: "info", "debug", or per module such as "ecommesh=debug,info".
        log_level: String = "info".into();
    }
}

section! {
    /// Accounts, tokens and sign-in.
    Auth, AuthFlags, "auth" {
        /// Secret that signs access and refresh tokens (HS256), at least 32 bytes. Empty: a
        /// random one is generated on first start and kept in <data_dir>/jwt-secret (mode
        /// 0600).
        jwt_secret: String = String::new();
        /// How long an access token lasts, in seconds.
        access_token_ttl_secs: u64 = 900;
        /// How long a session (its rotating refresh tokens) lasts, in seconds.
        refresh_token_ttl_secs: u64 = 30 * 24 * 3600;
        /// Set both (best through ECOMMESH_ADMIN_EMAIL and ECOMMESH_ADMIN_PASSWORD) to have
        /// an admin account created, or promoted, at start. There is no default admin
        /// password. `ecommesh create-admin --email ...` does the same with the node
        /// stopped.
        admin_email: String = String::new();
        /// See admin_email.
        admin_password: String = String::new();
        /// Per account and client address: login_max_failures attempts pass, then each
        /// further one must wait twice as long as the one before (1 s, 2 s, 4 s, ... at most
        /// login_lockout_secs; 429 with Retry-After). Attempts are counted before the
        /// password is checked; a success clears them. The owner, signing in from another
        /// address, is not held back by an attacker's guesses.
        login_max_failures: u32 = 5;
        /// See login_max_failures.
        login_lockout_secs: u64 = 900;
        /// Password hashes (argon2id, 19 MiB each) computed at once; 0: one per core.
        /// Sign-ins beyond it wait up to password_hash_wait_ms, then get 503 busy.
        password_hash_concurrency: usize = 0;
        /// How long a sign-in waits for a free hashing slot before 503 busy (with
        /// Retry-After).
        password_hash_wait_ms: u64 = 1000;
        /// Requests to /auth/* (register, login, refresh) one client address may make per
        /// minute, after a burst of auth_burst; more get 429.
        auth_rate_per_minute: u32 = 30;
        /// Requests to /auth/* one client address may make at once before the per-minute
        /// rate applies.
        auth_burst: u32 = 10;
    }
}

section! {
    /// The shop: catalog and checkout.
    Shop, ShopFlags, "shop" {
        /// The currency of every price in the shop (ISO 4217 code; amounts are minor
        /// units).
        currency: String = "USD".into();
        /// On first start with an empty data directory, seed a fixed demo catalog of 300
        /// products (the `--no-demo` flag is short for demo_catalog = false).
        demo_catalog: bool = true;
        /// How long checkout holds stock for an order, in seconds. A checkout that dies
        /// midway (crash, lost client) leaves holds that expire after this, so no stock is
        /// held forever.
        reservation_ttl_secs: u64 = 900;
        /// A checkout still pending after this many seconds is taken as interrupted
        /// (crash, lost worker): the reconciler resumes it if the payment went through, or
        /// cancels it and releases its stock if not.
        checkout_timeout_secs: u64 = 60;
        /// Checkouts one customer may have running at once on a node (each holds its
        /// cart's stock while it runs); more get 429 too_many_pending_checkouts.
        max_pending_checkouts: usize = 3;
        /// A product with this many units available or fewer is reported on
        /// `admin:stock`.
        low_stock_threshold: u64 = 5;
    }
}

section! {
    /// Live updates: websockets at /api/v1/ws.
    Websocket, WebsocketFlags, "websocket" {
        /// The node pings every websocket this often (seconds); browsers answer with a
        /// pong.
        ws_heartbeat_secs: u64 = 15;
        /// A websocket that sends nothing, not even a pong, for this long (seconds) is
        /// closed.
        ws_idle_timeout_secs: u64 = 60;
        /// Messages that may wait for one client that reads too slowly; past it the node
        /// closes that socket (close code 1008, reason "slow consumer ...") instead of
        /// holding up anyone.
        ws_send_buffer: usize = 1024;
        /// Most topics one websocket may subscribe to at once.
        ws_max_subscriptions: usize = 256;
        /// Subscribe attempts one websocket may have refused (unknown topic or product, no
        /// access, over a limit) before it is closed with 1008.
        ws_max_failed_subscriptions: usize = 32;
        /// Websockets open at once from one client address; more are refused with 429.
        ws_max_connections_per_ip: usize = 64;
        /// Subscriptions held at once by all websockets of one client address.
        ws_max_subscriptions_per_ip: usize = 4096;
    }
}

section! {
    /// The cluster: one Raft group per shard, over authenticated peer links.
    Cluster, ClusterFlags, "cluster" {
        /// This node's id in a cluster (a number above 0, fixed for its data directory). 0
        /// runs a single node: no peers, no replication. See config/cluster/ for a 3-node
        /// cluster.
        node_id: u64 = 0;
        /// Take node_id from the host name's ordinal plus one (ecommesh-0 is node 1), for
        /// the pods of a Kubernetes StatefulSet (see docker/k8s/).
        node_id_from_hostname: bool = false;
        /// Where this node listens for its peers (Raft and forwarded requests).
        rpc_listen: String = "127.0.0.1:7100".into();
        /// The initial cluster, this node included: "id=host:port,..." (peer addresses).
        /// The node with the lowest id forms the shard groups on first start.
        peers: String = String::new();
        /// The secret every node of the cluster holds (32 bytes or more, the same on every
        /// node, different from jwt_secret; best through ECOMMESH_CLUSTER_SECRET). A peer
        /// proves it before its link carries anything, and every frame is sealed with keys
        /// derived from it. A cluster node refuses to start without it.
        cluster_secret: String = String::new();
        /// How many nodes hold each shard (at most the number of nodes). A write is
        /// acknowledged once a majority of them have it on disk.
        replication_factor: usize = 3;
        /// A shard's leader heartbeats its followers this often (ms). A follower that has
        /// heard from a leader waits a lease of twice the election timeout since the last
        /// heartbeat, plus a random time between the election timeout and twice it, before
        /// it starts an election (openraft's leader lease): with 500 ms a dead leader is
        /// replaced 1.5-2 s after it went silent, and a follower must miss 7+ heartbeats in
        /// a row first, so busy 2-core machines do not flap.
        raft_heartbeat_ms: u64 = 200;
        /// See raft_heartbeat_ms.
        raft_election_timeout_ms: u64 = 500;
        /// A request for a shard that has no leader waits this long (ms) for one, then
        /// gets 503 with Retry-After.
        leader_wait_ms: u64 = 3000;
        /// true for a node added to a running cluster: it never forms shard groups, it
        /// waits until `ecommesh cluster join` adds it (its `peers` must list the running
        /// nodes and itself).
        join: bool = false;
        /// A shard's Raft group takes a snapshot (an export of the whole shard) every this
        /// many log entries and purges its log behind it, keeping a tenth as much for
        /// followers that lag; a replica too far behind (or a node that joins) gets the
        /// snapshot instead.
        raft_snapshot_every: u64 = 20_000;
    }
}

#[cfg(feature = "test-hooks")]
section! {
    /// TEST ONLY: settings of a build with the `test-hooks` feature, never of a shipped
    /// binary (a file naming them is refused there).
    Testing, TestingFlags, "testing" {
        /// Acknowledge cluster writes before Raft commits them: a deliberately broken
        /// mode, so the chaos suite can prove its checker sees the loss.
        test_ack_before_commit: bool = false;
    }
}
