//! Building and running a node: bind, open the journal, start the entity runtime, serve
//! HTTP, and shut down gracefully.
//!
//! Start-up checks run before anything is written, and each failure is one line that says
//! what is wrong and what to do: port in use, data directory not writable or in use by
//! another process, shard count different from the one the directory was created with.

use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use anyhow::{anyhow, Context};
use ecommesh_actors::Runtime;
use ecommesh_persistence::{Engine, EventStore, StoreError, StoreOptions};
use metrics_exporter_prometheus::PrometheusHandle;

use ecommesh_commerce::workflow::account::{ensure_admin, AdminError};

use crate::app::{auth, AppState};
use crate::auth::Auth;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::http;

/// Connections the kernel completes and queues before the server accepts them (capped
/// by `net.core.somaxconn`). `std`'s `TcpListener::bind` asks for 128: a burst of more
/// new connections (clients reconnecting after a restart, a sale opening) had its
/// excess SYNs dropped, and those clients waited 1 s for their retry (found in the
/// load benchmark at 256 connections: max latency 1,012 ms). actix-web's own default.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Binds the HTTP port, with a clear error when it is taken.
pub fn bind(config: &Config) -> anyhow::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr = config.listen_addr()?;
    let listen = || -> std::io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        // As `std` does: a restarted node can bind while old connections linger.
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        Ok(socket.into())
    };
    listen().map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            anyhow!("cannot listen on {addr}: the address is already in use; stop the other process or choose another with --listen")
        }
        _ => anyhow!("cannot listen on {addr}: {e}"),
    })
}

/// Creates the data directory if needed and proves it is writable.
pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    let shown = dir.display();
    // Everything the node creates is its own alone: journal, snapshots, read models and
    // secrets hold password hashes, addresses and orders.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    std::fs::create_dir_all(dir).map_err(|e| {
        anyhow!("data directory {shown} cannot be created: {e}; choose another with --data-dir")
    })?;
    restrict(dir);
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"ok")
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| anyhow!("data directory {shown} is not writable: {e}; fix its permissions or choose another with --data-dir"))
}

/// Takes group and other permissions off `dir` and everything in it (a data directory
/// made by an older build, or copied in): directories 0700, files 0600. A path this user
/// may not change (a volume's root owned by root) is left as it is, with a warning.
fn restrict(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            let tight = if meta.is_dir() { 0o700 } else { 0o600 };
            if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(tight))
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot take group and other permissions off a data path");
            }
        }
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
}

/// Opens the journal, turning storage errors into instructions.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn EventStore>> {
    open_with(config, ecommesh_persistence::open_store)
}

fn open_with<T>(
    config: &Config,
    open: impl FnOnce(&StoreOptions) -> Result<T, StoreError>,
) -> anyhow::Result<T> {
    let mut opts = StoreOptions::new(
        config.storage.data_dir.join("journal"),
        config.storage.shards,
    );
    opts.cache_capacity = config.storage.cache_capacity_mb * 1024 * 1024;
    opts.reserve = config.storage.journal_reserve_mb * 1024 * 1024;
    opts.engine = match config.storage.journal_engine.as_str() {
        "sled" => Engine::Sled,
        _ => Engine::Log,
    };
    let dir = config.storage.data_dir.display();
    match open(&opts) {
        Ok(s) => Ok(s),
        Err(StoreError::ShardCountMismatch { stored, requested }) => Err(anyhow!(
            "data directory {dir} was created with {stored} shards, not {requested}; start with --shards {stored} \
             (the shard count is fixed per data directory)"
        )),
        Err(StoreError::Locked { .. }) => {
            Err(anyhow!("data directory {dir} is in use by another ecommesh process; stop it or choose another --data-dir"))
        }
        Err(e) => Err(anyhow!("cannot open the journal in {dir}: {e}")),
    }
}

/// `ecommesh create-admin`: creates (or promotes) an admin account in a stopped node's
/// data directory. The password is read from standard input, never from the command line.
pub fn create_admin(config: &Config, email: &str) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_owned();
    if config.cluster.node_id != 0 {
        return Err(anyhow!(
            "create-admin writes to a stopped single node's journal; in a cluster, start the nodes with ECOMMESH_ADMIN_EMAIL and ECOMMESH_ADMIN_PASSWORD instead"
        ));
    }
    prepare_data_dir(&config.storage.data_dir)?;
    let store = open_store(config)?;
    let auth = auth(config)?;
    actix_web::rt::System::new().block_on(async {
        let runtime = Runtime::start(store, config.runtime_config());
        let node = AppState::new(&runtime, config, auth, None, None)?;
        let outcome = ensure_admin(&node.shop, &node.auth.hasher, email, &password).await;
        runtime.shutdown()?;
        println!("admin {email}: {}", outcome?);
        Ok(())
    })
}

/// `ecommesh check`: opens the journal (which drops a torn, never-acknowledged tail left
/// by a crash) and verifies it; fails listing every inconsistency.
pub fn check(config: &Config) -> anyhow::Result<()> {
    if !config.storage.data_dir.join("journal").is_dir() {
        return Err(anyhow!(
            "data directory {} holds no journal",
            config.storage.data_dir.display()
        ));
    }
    // A check reads: no reserve of zeros written ahead of the records.
    let mut reading = config.clone();
    reading.storage.journal_reserve_mb = 0;
    let store = open_store(&reading)?;
    let v = ecommesh_persistence::verify(&*store)?;
    for p in &v.problems {
        println!("problem: {p}");
    }
    println!(
        "checked {} shards, {} entities, {} events: {} problems",
        v.shards,
        v.entities,
        v.events,
        v.problems.len()
    );
    if v.problems.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "the journal in {} is inconsistent",
            config.storage.data_dir.display()
        ))
    }
}

/// Runs a node until SIGTERM or SIGINT, then drains, flushes and returns.
pub fn run(config: Config) -> anyhow::Result<()> {
    // Every websocket holds a file descriptor: take the most the system allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(open_files = n, "open-files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
    }
    let listener = bind(&config)?;
    prepare_data_dir(&config.storage.data_dir)?;
    let auth = auth(&config)?;
    let metrics = crate::telemetry::init_metrics().ok();
    let http = listener.local_addr()?.to_string();
    enum Journal {
        Single(Arc<dyn EventStore>),
        Cluster(Arc<dyn EventStore>, ecommesh_persistence::GroupCommit),
    }
    let (journal, cluster) = match config.cluster_settings(http)? {
        None => (Journal::Single(open_store(&config)?), None),
        Some(settings) => {
            let (store, log) = open_with(&config, ecommesh_persistence::open_replicated_store)?;
            let commit = ecommesh_persistence::GroupCommit::with_delay(
                store.clone(),
                std::time::Duration::from_micros(config.storage.commit_delay_us),
            );
            tracing::info!(node = settings.node_id, rpc = %settings.rpc_listen, peers = ?settings.peers, "joining the cluster");
            let cluster = Cluster::start(
                settings,
                config.storage.shards,
                store.clone(),
                log,
                commit.clone(),
            )?;
            (Journal::Cluster(store, commit), Some(cluster))
        }
    };
    actix_web::rt::System::new().block_on(async move {
        // The shard actors start here, inside the actix system.
        let runtime = match journal {
            Journal::Single(store) => Runtime::start(store, config.runtime_config()),
            Journal::Cluster(store, commit) => {
                let raft = cluster.as_ref().expect("a cluster journal").journal.clone();
                Runtime::with_journal(store, commit, raft, config.runtime_config())
            }
        };
        serve(config, listener, runtime, cluster, auth, metrics).await
    })
}

async fn serve(
    config: Config,
    listener: TcpListener,
    runtime: Runtime,
    cluster: Option<Arc<Cluster>>,
    auth: Auth,
    metrics: Option<PrometheusHandle>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let first = cluster
        .as_ref()
        .is_none_or(|c| c.settings.peers.keys().next() == Some(&c.me()));
    let node = web::Data::new(AppState::new(
        &runtime,
        &config,
        auth,
        metrics,
        cluster.clone(),
    )?);
    let fresh = (0..node.shards).all(|s| {
        runtime
            .store()
            .read_shard(s, 1, 1)
            .is_ok_and(|e| e.is_empty())
    });
    // The admin account exists before HTTP serves, so nobody can register its email
    // first (registration refuses it anyway: `AppState::reserved_admin`). A fresh cluster
    // waits for a quorum (over the peer links, not HTTP); a node restarting with data, or
    // joining a running cluster, finds the admin there already and checks it in the
    // background, so a shard without a quorum never keeps a restarted node's HTTP down.
    let joins = cluster.as_ref().is_some_and(|c| c.settings.join);
    let before_http = cluster.is_none() || fresh;
    if !config.auth.admin_email.is_empty() && !joins && !before_http {
        let (node, email, password) = (
            node.clone(),
            config.auth.admin_email.clone(),
            config.auth.admin_password.clone(),
        );
        actix_web::rt::spawn(async move {
            loop {
                match ensure_admin(&node.shop, &node.auth.hasher, &email, &password).await {
                    Ok(outcome) => {
                        tracing::info!(email = %email, outcome, "admin account");
                        break;
                    }
                    Err(AdminError::Unavailable(e)) => {
                        tracing::info!(error = %e, "the admin account check waits for the cluster");
                        actix_web::rt::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "admin account");
                        break;
                    }
                }
            }
        });
    }
    if !config.auth.admin_email.is_empty() && !joins && before_http {
        loop {
            match ensure_admin(
                &node.shop,
                &node.auth.hasher,
                &config.auth.admin_email,
                &config.auth.admin_password,
            )
            .await
            {
                Ok(outcome) => {
                    tracing::info!(email = %config.auth.admin_email, outcome, "admin account");
                    break;
                }
                Err(AdminError::Unavailable(e)) if cluster.is_some() => {
                    tracing::info!(error = %e, "the admin account waits for the cluster");
                    actix_web::rt::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    if cluster.is_none() {
        if fresh && config.shop.demo_catalog {
            let created = crate::demo::seed(&node).await?;
            tracing::info!(created, "seeded the demo catalog");
        }
    } else if fresh && first && config.shop.demo_catalog {
        // Seeding needs a quorum too; it is not a guard, so HTTP need not wait for it.
        let node = node.clone();
        actix_web::rt::spawn(async move {
            loop {
                match crate::demo::seed(&node).await {
                    Ok(seeded) => {
                        tracing::info!(seeded, "seeded the demo catalog");
                        break;
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "seeding the demo catalog waits for the cluster");
                        actix_web::rt::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
    let caught_up = node
        .catalog
        .catch_up(&**runtime.store(), runtime.group_commit())
        .await?;
    tracing::info!(
        events = caught_up,
        products = node.catalog.read().len(),
        "catalog projection built"
    );
    actix_web::rt::spawn(
        node.catalog
            .clone()
            .follow(runtime.store().clone(), runtime.group_commit().clone()),
    );
    let orders = node
        .order_book
        .catch_up(&**runtime.store(), runtime.group_commit())
        .await?;
    tracing::info!(events = orders, "order book projection built");
    actix_web::rt::spawn(
        node.order_book
            .clone()
            .follow(runtime.store().clone(), runtime.group_commit().clone()),
    );
    crate::live::feed::spawn(node.clone());
    actix_web::rt::spawn(ecommesh_commerce::workflow::reconcile::run(
        node.shop.clone(),
        node.order_book.clone(),
        std::time::Duration::from_secs(config.shop.checkout_timeout_secs),
    ));
    let max_body = config.http.max_body_bytes;
    let app_node = node.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap_fn(http::request_metrics)
            .configure(http::configure(app_node.clone(), max_body))
    })
    .workers(config.http_workers())
    .shutdown_timeout(config.http.shutdown_timeout_secs)
    .disable_signals()
    .listen(listener)
    .with_context(|| format!("cannot serve on {addr}"))?
    .run();

    let metrics_server = metrics_apart(&config, node.clone())?;
    let handle = server.handle();
    let signal_node = node.clone();
    let signal = shutdown_signal()?;
    actix_web::rt::spawn(async move {
        let signal = signal.await;
        signal_node.ready.store(false, Ordering::Release);
        tracing::info!(signal, "shutting down: draining in-flight requests");
        handle.stop(true).await;
    });

    node.ready.store(true, Ordering::Release);
    tracing::info!(%addr, shards = node.shards, data_dir = %config.storage.data_dir.display(), "ecommesh ready");
    // Machine-readable for scripts and tests that start the node on port 0.
    println!("listening on http://{addr}");

    server.await.context("http server failed")?;
    if let Some(metrics) = metrics_server {
        metrics.stop(false).await;
    }
    if let Some(cluster) = &cluster {
        cluster.shutdown().await;
    }
    runtime.shutdown().context("final flush failed")?;
    tracing::info!("stopped cleanly; every acknowledged write is on disk");
    Ok(())
}

/// Serves /metrics (and the probes) on `metrics_listen`, if set, with one worker: the
/// shop's port then answers 404 there, so a public shop does not publish its internals.
fn metrics_apart(
    config: &Config,
    node: web::Data<AppState>,
) -> anyhow::Result<Option<actix_web::dev::ServerHandle>> {
    if config.http.metrics_listen.is_empty() {
        return Ok(None);
    }
    let listener = std::net::TcpListener::bind(&config.http.metrics_listen).with_context(|| {
        format!(
            "cannot serve metrics on {} (`metrics_listen`)",
            config.http.metrics_listen
        )
    })?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(node.clone())
            .route("/metrics", web::get().to(http::ops::metrics_apart))
            .route("/healthz", web::get().to(http::ops::healthz))
            .route("/readyz", web::get().to(http::ops::readyz))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .with_context(|| format!("cannot serve metrics on {addr}"))?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    tracing::info!(%addr, "metrics served apart");
    Ok(Some(handle))
}

/// Installs the SIGTERM and SIGINT handlers now, so that a signal that arrives as soon
/// as the node says it is ready already stops it gracefully, and returns a future that
/// resolves with the first signal's name.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot install a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install a SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;
    use std::time::Duration;

    #[test]
    fn a_burst_of_connections_is_queued_not_dropped() {
        let mut config = Config::default();
        config.http.listen = "127.0.0.1:0".into();
        let listener = bind(&config).unwrap();
        let addr = listener.local_addr().unwrap();
        // Nothing accepts: the kernel completes each handshake only while the queue has
        // room, and drops the SYN once it is full (the client would retry after 1 s).
        let (burst, cap) = (512, somaxconn());
        if cap <= burst {
            eprintln!("skipped: net.core.somaxconn {cap} caps every backlog");
            return;
        }
        // Held open, so that each one keeps its place in the queue.
        let _queued: Vec<_> = (0..burst)
            .map(|i| {
                TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                    .unwrap_or_else(|e| panic!("connection {i} of {burst} was not queued: {e}"))
            })
            .collect();
    }

    fn somaxconn() -> usize {
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4096)
    }
}
