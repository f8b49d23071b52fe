//! `ecommesh bench load`: HTTP load against a node, scenario by scenario, each compared
//! with `ping` (a trivial JSON endpoint of the same server) measured in the same run.
//!
//! - Closed loop (`--rate 0`): `--connections` clients, each sending its next request as
//!   soon as the last one is answered. Open loop (`--rate R`): requests are scheduled at a
//!   fixed total rate and latency counts from the scheduled time, so a stalled server shows
//!   as latency instead of as fewer requests (coordinated omission, as wrk2 avoids it).
//! - Scenarios: `ping`, `product_get`, `catalog_search`, `add_to_cart` (durable),
//!   `checkout` (durable; carts prepared before the timed phase) and `mix` (browse product
//!   10 : view cart 3 : add to cart 2 : home 1 : checkout 1).
//! - Checks results, not only statuses: paid orders equal the checkouts answered 201, and
//!   every product's stock adds up (`available + reserved + sold == received`, units sold
//!   equal units checked out).
//!
//! Customers are not registered (each registration is a deliberately slow password hash):
//! the benchmark knows the node's token secret and mints their access tokens.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};

use super::node::Node;
use super::report::{Check, PhaseReport, Report, SecondFigures, COLUMNS};
use super::{machine, now_utc, BenchArgs};
use ecommesh::auth::tokens::{random_id, Tokens};

const SCENARIOS: &[&str] = &[
    "ping",
    "product_get",
    "catalog_search",
    "add_to_cart",
    "checkout",
    "mix",
];
/// Products the benchmark creates, with stock that cannot run out during a run.
const PRODUCTS: usize = 64;
const STOCK: u64 = 1_000_000_000;
/// Customers per connection in `add_to_cart`: many carts, as in a shop.
const CUSTOMERS_PER_CONNECTION: usize = 8;
/// Distinct products a cart in `add_to_cart` holds: a shop's cart has a handful of lines.
/// Picking from all 64 products grew every cart to 64 lines, and the answer (the priced
/// cart) to ~12 KB, so the figure measured cart rendering more than the durable add.
const CART_LINES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Ping,
    ProductGet,
    CatalogSearch,
    AddToCart,
    Checkout,
    Mix,
}

impl Scenario {
    fn parse(s: &str) -> anyhow::Result<Scenario> {
        Ok(match s {
            "ping" => Scenario::Ping,
            "product_get" => Scenario::ProductGet,
            "catalog_search" => Scenario::CatalogSearch,
            "add_to_cart" => Scenario::AddToCart,
            "checkout" => Scenario::Checkout,
            "mix" => Scenario::Mix,
            other => bail!(
                "unknown scenario {other:?}; the scenarios are {}",
                SCENARIOS.join(", ")
            ),
        })
    }

    fn name(self) -> &'static str {
        SCENARIOS[self as usize]
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let mut scenarios = vec![Scenario::Ping];
    for s in &args.scenarios {
        let s = Scenario::parse(s.trim())?;
        if !scenarios.contains(&s) {
            scenarios.push(s);
        }
    }
    anyhow::ensure!(
        (1..=10_000).contains(&args.connections),
        "--connections must be 1 to 10000"
    );
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_all(args, &scenarios))
}

/// What every request of a run needs.
struct Ctx {
    http: reqwest::Client,
    base: String,
    /// `host:port` of the node, for the load connections.
    addr: String,
    tokens: Tokens,
    admin: String,
    products: Vec<String>,
    words: Vec<String>,
    /// Access tokens of customers with a prepared cart, taken one per checkout.
    carts: Vec<String>,
    next_cart: AtomicUsize,
    /// Distinguishes this run's customers from an earlier run's on the same node.
    run: String,
    /// Units in carts that checkout answered 201 for.
    units_sold: AtomicU64,
    orders_paid: AtomicU64,
}

impl Ctx {
    fn customer(&self, name: &str) -> String {
        let id = format!("bench-{}-{name}", self.run);
        self.tokens
            .issue("access", &id, "customer", &id, &random_id())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        anyhow::ensure!(status.is_success(), "{path}: {status}: {text}");
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }
}

async fn run_all(args: &BenchArgs, scenarios: &[Scenario]) -> anyhow::Result<()> {
    let date = now_utc();
    let machine = machine();
    let (node, base, secret) = match &args.target {
        Some(url) => {
            anyhow::ensure!(
                url.starts_with("http://127.") || url.starts_with("http://localhost"),
                "--target must be a loopback URL (http://127.x or http://localhost)"
            );
            let secret = args
                .target_secret
                .clone()
                .context("--target needs --target-secret (the node's jwt_secret)")?;
            (None, url.trim_end_matches('/').to_owned(), secret)
        }
        None => {
            let node = Node::start(&[])?;
            let (base, secret) = (node.base.clone(), node.secret.clone());
            (Some(node), base, secret)
        }
    };
    let mode = if args.rate > 0 {
        format!("open loop, {} requests/s", args.rate)
    } else {
        "closed loop".to_owned()
    };
    println!(
        "ecommesh bench load - {date}\nmachine: {machine}\ntarget: {base}{}\n{mode}, {} connections, {:.0} s per scenario\n",
        if node.is_some() { " (started for this run)" } else { "" },
        args.connections,
        args.seconds
    );
    let tokens = Tokens::new(
        secret.as_bytes(),
        Duration::from_secs(24 * 3600),
        Duration::from_secs(24 * 3600),
    );
    let admin = tokens.issue(
        "access",
        "bench-admin",
        "admin",
        "bench-admin",
        &random_id(),
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        // Below actix's 5 s keep-alive: a connection idle while the scenarios ran must not
        // be reused just as the server closes it ("connection closed before message
        // completed" at the result checks, seen once in CI).
        .pool_idle_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let addr = base
        .strip_prefix("http://")
        .context("the target must be an http:// URL")?
        .trim_end_matches('/')
        .to_owned();
    let mut ctx = Ctx {
        http,
        addr,
        base,
        tokens,
        admin,
        products: Vec::new(),
        words: Vec::new(),
        carts: Vec::new(),
        next_cart: AtomicUsize::new(0),
        run: random_id()[..8].to_owned(),
        units_sold: AtomicU64::new(0),
        orders_paid: AtomicU64::new(0),
    };
    prepare_catalog(&mut ctx).await?;
    let paid_before = paid_orders(&ctx).await?;
    if scenarios.contains(&Scenario::Checkout) {
        prepare_carts(&mut ctx, args.checkout_carts, args.connections).await?;
    }
    let ctx = Arc::new(ctx);

    let phases = measure(&ctx, scenarios, args).await;
    print_table(&phases);

    let checks = check(&ctx, paid_before).await?;
    for c in &checks {
        println!(
            "check {}: {} ({})",
            c.what,
            if c.passed { "ok" } else { "FAILED" },
            c.detail
        );
    }
    let report = Report {
        machine,
        date,
        mode,
        connections: args.connections,
        phases,
        checks,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("\nresults written to {}", path.display());
    }
    if let Some(dir) = &args.report {
        super::report::write(dir, &report)?;
        println!(
            "report written to {}/load.md (with load.json and load.svg)",
            dir.display()
        );
    }
    drop(node);
    if let Some(c) = report.checks.iter().find(|c| !c.passed) {
        bail!("check failed: {}: {}", c.what, c.detail);
    }
    Ok(())
}

/// Creates the benchmark's products and picks search words from the catalog.
async fn prepare_catalog(ctx: &mut Ctx) -> anyhow::Result<()> {
    for i in 0..PRODUCTS {
        let p = ctx
            .call(
                Method::POST,
                "/api/v1/products",
                &ctx.admin,
                Some(json!({
                    "sku": format!("bench-{}-{i}", ctx.run), "name": format!("Bench item {i}"),
                    "category": "bench", "brand": "Bench", "description": "A product of the benchmark",
                    "price": {"amount": 1000 + i as i64, "currency": "USD"}, "stock": STOCK
                })),
            )
            .await
            .context("creating the benchmark's products (is the target's currency USD?)")?;
        ctx.products
            .push(p["id"].as_str().context("no product id")?.to_owned());
    }
    let list = ctx
        .call(
            Method::GET,
            "/api/v1/products?per_page=100",
            &ctx.admin,
            None,
        )
        .await?;
    let mut words: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .flat_map(|n| {
            n.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .filter(|w| w.len() > 3)
        .collect();
    words.sort();
    words.dedup();
    if words.is_empty() {
        words.push("bench".into());
    }
    ctx.words = words;
    Ok(())
}

/// Gives `n` new customers a cart of one unit each, before the timed phase.
async fn prepare_carts(ctx: &mut Ctx, n: usize, connections: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let tokens: Vec<String> = (0..n).map(|i| ctx.customer(&format!("cart-{i}"))).collect();
    let bar = progress(n as u64, "preparing carts");
    let next = AtomicUsize::new(0);
    let ctx_ref = &*ctx;
    let work = (0..connections.min(n.max(1))).map(|_| async {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                return anyhow::Ok(());
            }
            let product = &ctx_ref.products[i % PRODUCTS];
            ctx_ref
                .call(
                    Method::POST,
                    "/api/v1/cart/items",
                    &tokens[i],
                    Some(json!({"product_id": product, "quantity": 1})),
                )
                .await?;
            bar.inc(1);
        }
    });
    for r in futures_util::future::join_all(work).await {
        r?;
    }
    bar.finish_and_clear();
    println!(
        "prepared {n} carts in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    ctx.carts = tokens;
    Ok(())
}

fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>16} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// A request of a scenario, and what to do with a success.
struct Request {
    method: Method,
    path: String,
    token: Option<String>,
    body: Option<Value>,
    idempotency_key: Option<String>,
    on_success: Success,
}

#[derive(Clone, Copy, PartialEq)]
enum Success {
    Nothing,
    /// An add to the worker's mix cart.
    Added,
    /// A checkout of this many units.
    CheckedOut(u64),
}

/// A worker's own state: its customers and what its mix cart holds.
struct Worker {
    id: usize,
    n: u64,
    rng: rand::rngs::StdRng,
    customers: Vec<String>,
    mix_customer: String,
    mix_units: u64,
    mix_round: u64,
}

impl Worker {
    fn new(ctx: &Ctx, id: usize, scenario: Scenario) -> Worker {
        let customers = if scenario == Scenario::AddToCart {
            (0..CUSTOMERS_PER_CONNECTION)
                .map(|k| ctx.customer(&format!("add-{id}-{k}")))
                .collect()
        } else {
            Vec::new()
        };
        Worker {
            id,
            n: 0,
            rng: rand::rngs::StdRng::seed_from_u64(id as u64),
            customers,
            mix_customer: ctx.customer(&format!("mix-{id}-0")),
            mix_units: 0,
            mix_round: 0,
        }
    }

    fn product<'a>(&mut self, ctx: &'a Ctx) -> &'a str {
        &ctx.products[self.rng.gen_range(0..ctx.products.len())]
    }

    /// The next request, or `None` when the scenario has run out of work.
    fn next(&mut self, ctx: &Ctx, scenario: Scenario) -> Option<Request> {
        self.n += 1;
        let get = |path: String| Request {
            method: Method::GET,
            path,
            token: None,
            body: None,
            idempotency_key: None,
            on_success: Success::Nothing,
        };
        Some(match scenario {
            Scenario::Ping => get("/healthz".into()),
            Scenario::ProductGet => get(format!("/api/v1/products/{}", self.product(ctx))),
            Scenario::CatalogSearch => {
                let word = &ctx.words[self.rng.gen_range(0..ctx.words.len())];
                get(format!("/api/v1/products?q={word}&per_page=20"))
            }
            Scenario::AddToCart => {
                let k = self.n as usize % self.customers.len();
                let token = self.customers[k].clone();
                // Customer k of connection id shops among its own CART_LINES products.
                let first = (self.id * CUSTOMERS_PER_CONNECTION + k) * CART_LINES;
                let line = self.rng.gen_range(0..CART_LINES);
                let product = ctx.products[(first + line) % ctx.products.len()].clone();
                Request {
                    method: Method::POST,
                    path: "/api/v1/cart/items".into(),
                    token: Some(token),
                    body: Some(json!({"product_id": product, "quantity": 1})),
                    idempotency_key: None,
                    on_success: Success::Nothing,
                }
            }
            Scenario::Checkout => {
                let i = ctx.next_cart.fetch_add(1, Ordering::Relaxed);
                let token = ctx.carts.get(i)?.clone();
                checkout(token, format!("bench-{i}"), 1)
            }
            Scenario::Mix => {
                let pick = self.rng.gen_range(0..17);
                match pick {
                    0..=9 => get(format!("/api/v1/products/{}", self.product(ctx))),
                    10..=12 => Request {
                        token: Some(self.mix_customer.clone()),
                        ..get("/api/v1/cart".into())
                    },
                    13 => get("/api/v1/products?per_page=20".into()),
                    14 if self.mix_units > 0 => {
                        let key = format!("mix-{}-{}", self.id, self.mix_round);
                        checkout(self.mix_customer.clone(), key, self.mix_units)
                    }
                    _ => {
                        let product = self.product(ctx).to_owned();
                        Request {
                            method: Method::POST,
                            path: "/api/v1/cart/items".into(),
                            token: Some(self.mix_customer.clone()),
                            body: Some(json!({"product_id": product, "quantity": 1})),
                            idempotency_key: None,
                            on_success: Success::Added,
                        }
                    }
                }
            }
        })
    }

    fn succeeded(&mut self, ctx: &Ctx, s: Success) {
        match s {
            Success::Nothing => {}
            Success::Added => self.mix_units += 1,
            Success::CheckedOut(units) => {
                ctx.units_sold.fetch_add(units, Ordering::Relaxed);
                ctx.orders_paid.fetch_add(1, Ordering::Relaxed);
                if self.mix_units > 0 {
                    // A new shopper takes over this connection's mix.
                    self.mix_round += 1;
                    self.mix_units = 0;
                    self.mix_customer =
                        ctx.customer(&format!("mix-{}-{}", self.id, self.mix_round));
                }
            }
        }
    }
}

fn checkout(token: String, key: String, units: u64) -> Request {
    Request {
        method: Method::POST,
        path: "/api/v1/checkout".into(),
        token: Some(token),
        body: Some(json!({
            "payment": {"token": "tok_visa"},
            "shipping_address": {"name": "Bench Shopper", "line1": "1 Loop Road", "city": "Localhost",
                                 "postal_code": "12345", "country": "US"}
        })),
        idempotency_key: Some(key),
        on_success: Success::CheckedOut(units),
    }
}

type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

/// One keep-alive HTTP/1.1 connection of a worker, opened on first use and again after
/// an error. Lighter than a pooled client: the generator shares the cores with the node.
#[derive(Default)]
struct Connection {
    sender: Option<Sender>,
}

impl Connection {
    async fn open(ctx: &Ctx) -> anyhow::Result<Sender> {
        let stream = tokio::net::TcpStream::connect(&ctx.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// Sends `req` and reads the whole answer; its status, or 0 when none came.
    async fn send(&mut self, ctx: &Ctx, req: &Request) -> u16 {
        match self.try_send(ctx, req).await {
            Ok(status) => status,
            Err(_) => {
                self.sender = None;
                0
            }
        }
    }

    async fn try_send(&mut self, ctx: &Ctx, req: &Request) -> anyhow::Result<u16> {
        use http_body_util::BodyExt;
        if self.sender.is_none() {
            self.sender = Some(Self::open(ctx).await?);
        }
        let sender = self.sender.as_mut().expect("opened above");
        sender.ready().await?;
        let mut r = hyper::Request::builder()
            .method(req.method.as_str())
            .uri(&req.path)
            .header("host", &ctx.addr);
        if let Some(t) = &req.token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        if let Some(key) = &req.idempotency_key {
            r = r.header("idempotency-key", key);
        }
        let body = match &req.body {
            Some(b) => {
                r = r.header("content-type", "application/json");
                bytes::Bytes::from(serde_json::to_vec(b)?)
            }
            None => bytes::Bytes::new(),
        };
        let resp = sender
            .send_request(r.body(http_body_util::Full::new(body))?)
            .await?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await?;
        Ok(status)
    }
}

/// A worker's measurements.
struct Recorder {
    all: Histogram<u64>,
    /// Per second of the phase: latencies (coarser, for the plot).
    seconds: Vec<Histogram<u64>>,
    errors: BTreeMap<u16, u64>,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            all: Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds"),
            seconds: Vec::new(),
            errors: BTreeMap::new(),
        }
    }

    fn record(&mut self, second: usize, micros: u64) {
        let micros = micros.clamp(1, 120_000_000);
        let _ = self.all.record(micros);
        while self.seconds.len() <= second {
            self.seconds
                .push(Histogram::new_with_bounds(1, 120_000_000, 2).expect("valid bounds"));
        }
        let _ = self.seconds[second].record(micros);
    }

    /// Adds `other`'s measurements, its seconds counted from `offset`.
    fn merge(&mut self, other: Recorder, offset: usize) {
        let _ = self.all.add(&other.all);
        for (i, h) in other.seconds.into_iter().enumerate() {
            let i = i + offset;
            while self.seconds.len() < i {
                self.seconds
                    .push(Histogram::new_with_bounds(1, 120_000_000, 2).expect("valid bounds"));
            }
            if i < self.seconds.len() {
                let _ = self.seconds[i].add(&h);
            } else {
                self.seconds.push(h);
            }
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

/// What some slices of one scenario measured.
struct Measured {
    rec: Recorder,
    requests: u64,
    seconds: f64,
}

impl Measured {
    fn new() -> Measured {
        Measured {
            rec: Recorder::new(),
            requests: 0,
            seconds: 0.0,
        }
    }

    fn add(&mut self, other: Measured) {
        self.rec.merge(other.rec, self.seconds.ceil() as usize);
        self.requests += other.requests;
        self.seconds += other.seconds;
    }

    fn per_sec(&self) -> f64 {
        self.requests as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }
}

/// Runs every scenario for `--seconds`, each in one-second slices that alternate with
/// slices of `ping`, and compares each with the ping slices that ran between its own.
///
/// This host's speed changes by up to 1.8x for seconds to minutes at a time (ping served
/// ~133k/s or ~240k/s on 2026-12-03, with nothing else running): a ping measured once,
/// before the other scenarios, made ratios of 0.18 or 1.5 depending on when the host
/// switched. Interleaved, both see the same host.
async fn measure(ctx: &Arc<Ctx>, scenarios: &[Scenario], args: &BenchArgs) -> Vec<PhaseReport> {
    let length = args.seconds.clamp(0.1, 3600.0);
    let slices = (length.round() as usize).max(1);
    let slice = Duration::from_secs_f64(length / slices as f64);
    let workers = |scenario| -> Vec<Worker> {
        (0..args.connections)
            .map(|w| Worker::new(ctx, w, scenario))
            .collect()
    };
    let mut all_pings = Measured::new();
    let mut phases = Vec::new();
    for &scenario in scenarios.iter().filter(|s| **s != Scenario::Ping) {
        let (mut pings, mut measured) = (Measured::new(), Measured::new());
        let (mut pingers, mut shoppers) = (workers(Scenario::Ping), workers(scenario));
        for _ in 0..slices {
            let (m, w) = phase(ctx, Scenario::Ping, args, slice, pingers).await;
            pings.add(m);
            pingers = w;
            let (m, w) = phase(ctx, scenario, args, slice, shoppers).await;
            measured.add(m);
            shoppers = w;
        }
        let ping = pings.per_sec();
        phases.push(summarize(scenario, measured, ping));
        all_pings.add(pings);
    }
    if all_pings.requests == 0 {
        // Only ping was asked for.
        let mut pingers = workers(Scenario::Ping);
        for _ in 0..slices {
            let (m, w) = phase(ctx, Scenario::Ping, args, slice, pingers).await;
            all_pings.add(m);
            pingers = w;
        }
    }
    let ping = all_pings.per_sec();
    phases.insert(0, summarize(Scenario::Ping, all_pings, ping));
    phases
}

/// The figures of a scenario's slices, against `ping` requests/s.
fn summarize(scenario: Scenario, m: Measured, ping: f64) -> PhaseReport {
    let Measured {
        rec: total,
        requests,
        seconds,
    } = m;
    let ms = |us: u64| us as f64 / 1000.0;
    let h = &total.all;
    let per_sec = requests as f64 / seconds.max(f64::MIN_POSITIVE);
    PhaseReport {
        scenario: scenario.name().to_owned(),
        seconds,
        requests,
        errors: total.errors,
        per_sec,
        vs_ping: per_sec / ping.max(f64::MIN_POSITIVE),
        ping_per_sec: ping,
        p50_ms: ms(h.value_at_quantile(0.5)),
        p90_ms: ms(h.value_at_quantile(0.9)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        timeline: total
            .seconds
            .iter()
            .enumerate()
            .map(|(second, h)| SecondFigures {
                second,
                requests: h.len(),
                per_sec: h.len() as f64 / (seconds - second as f64).clamp(0.05, 1.0),
                p99_ms: ms(h.value_at_quantile(0.99)),
            })
            .collect(),
    }
}

/// Runs one scenario for `length` (or until it runs out of work).
/// Runs one scenario's `workers` (one per connection) for `length`, or until they run out
/// of work; gives them back, so that the next slice goes on where this one stopped.
async fn phase(
    ctx: &Arc<Ctx>,
    scenario: Scenario,
    args: &BenchArgs,
    length: Duration,
    workers: Vec<Worker>,
) -> (Measured, Vec<Worker>) {
    let connections = workers.len();
    let done = Arc::new(AtomicU64::new(0));
    let bar = progress(length.as_millis() as u64, scenario.name());
    let started = Instant::now();
    let deadline = started + length;
    // Open loop: connection w sends at started + (w + k * connections) / rate.
    let interval = (args.rate > 0).then(|| Duration::from_secs_f64(1.0 / args.rate as f64));
    let mut tasks = Vec::with_capacity(connections);
    for (w, mut me) in workers.into_iter().enumerate() {
        let (ctx, done) = (ctx.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::new();
            let mut conn = Connection::default();
            let mut k = 0u64;
            loop {
                let scheduled = match interval {
                    Some(i) => started + i * (w as u32) + i * (connections as u32) * (k as u32),
                    None => Instant::now(),
                };
                k += 1;
                if scheduled >= deadline || Instant::now() >= deadline {
                    break;
                }
                let Some(req) = me.next(&ctx, scenario) else {
                    break;
                };
                // Only when ahead of schedule: tokio's timer has millisecond ticks, so
                // even a sleep until now would cost up to a millisecond.
                if scheduled > Instant::now() {
                    tokio::time::sleep_until(scheduled.into()).await;
                }
                let status = conn.send(&ctx, &req).await;
                let now = Instant::now();
                rec.record(
                    now.duration_since(started).as_secs() as usize,
                    now.duration_since(scheduled).as_micros() as u64,
                );
                if (200..300).contains(&status) {
                    me.succeeded(&ctx, req.on_success);
                } else {
                    *rec.errors.entry(status).or_default() += 1;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (rec, me)
        }));
    }
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                bar.set_position(started.elapsed().as_millis() as u64);
            }
        })
    };
    let mut total = Recorder::new();
    let mut workers = Vec::with_capacity(connections);
    for task in tasks {
        if let Ok((rec, me)) = task.await {
            total.merge(rec, 0);
            workers.push(me);
        }
    }
    ticker.abort();
    bar.finish_and_clear();
    let measured = Measured {
        rec: total,
        requests: done.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
    };
    (measured, workers)
}

fn print_table(phases: &[PhaseReport]) {
    const WIDTHS: [usize; 11] = [15, 9, 7, 10, 7, 8, 8, 8, 8, 8, 8];
    let line = |cells: &[String]| {
        let mut out = format!("{:<w$}", cells[0], w = WIDTHS[0]);
        for (c, w) in cells.iter().zip(WIDTHS).skip(1) {
            out.push_str(&format!(" {c:>w$}"));
        }
        println!("{out}");
    };
    line(&COLUMNS.map(String::from));
    for p in phases {
        line(&p.cells());
        if p.errors.values().sum::<u64>() > 0 {
            println!("{:<15} errors by status: {:?}", "", p.errors);
        }
    }
}

async fn paid_orders(ctx: &Ctx) -> anyhow::Result<u64> {
    let v = ctx
        .call(
            Method::GET,
            "/api/v1/admin/orders?status=paid&per_page=1",
            &ctx.admin,
            None,
        )
        .await?;
    v["total"].as_u64().context("no order total")
}

/// Checks that what the node says matches what the benchmark was told.
async fn check(ctx: &Ctx, paid_before: u64) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let expected = paid_before + ctx.orders_paid.load(Ordering::Relaxed);
    // The order list is a projection: give it a moment to catch up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut paid = paid_orders(ctx).await?;
    while paid != expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        paid = paid_orders(ctx).await?;
    }
    checks.push(Check {
        what: "paid orders == checkouts answered 201".into(),
        passed: paid == expected,
        detail: format!(
            "{} paid, {} answered 201",
            paid - paid_before.min(paid),
            expected - paid_before
        ),
    });
    let (mut sold, mut broken) = (0u64, Vec::new());
    for id in &ctx.products {
        let p = ctx
            .call(
                Method::GET,
                &format!("/api/v1/products/{id}"),
                &ctx.admin,
                None,
            )
            .await?;
        let s = &p["stock"];
        let n = |k: &str| s[k].as_u64().unwrap_or(u64::MAX);
        if n("available")
            .checked_add(n("reserved"))
            .and_then(|x| x.checked_add(n("sold")))
            != Some(n("received"))
        {
            broken.push(format!("{id}: {s}"));
        }
        sold += n("sold");
    }
    checks.push(Check {
        what: "stock adds up on every product".into(),
        passed: broken.is_empty(),
        detail: if broken.is_empty() {
            format!(
                "available + reserved + sold == received on {} products",
                ctx.products.len()
            )
        } else {
            broken.join("; ")
        },
    });
    let units = ctx.units_sold.load(Ordering::Relaxed);
    checks.push(Check {
        what: "units sold == units checked out".into(),
        passed: sold == units,
        detail: format!("{sold} sold, {units} in carts checked out"),
    });
    Ok(checks)
}
