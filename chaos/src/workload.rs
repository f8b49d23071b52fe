//! The shoppers: a fixed catalog with little stock (so checkouts compete for the last
//! units), one customer per client, and clients that each keep one operation in flight,
//! sending every operation to a node picked at random.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{Answer, Api};
use crate::docker::Node;
use crate::history::{Kind, Op, Process, Recorder};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Product {
    pub id: String,
    pub sku: String,
    /// Units it was created with (not in the history: created before the workload).
    pub initial: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub email: String,
    #[serde(skip_serializing, default)]
    pub token: String,
}

/// What the workload set up before the first operation: the checker's starting point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Setup {
    pub run: String,
    pub nodes: Vec<String>,
    pub products: Vec<Product>,
    pub customers: Vec<Customer>,
}

pub struct Ctx {
    pub api: Api,
    pub nodes: Vec<Node>,
    pub admin_token: String,
    pub setup: Setup,
    pub history: Recorder,
    pub clients: usize,
}

const SHIPPING: &str = r#"{"name":"Chaos Monkey","line1":"1 Fault Line","city":"Partition","postal_code":"10101","country":"US"}"#;

/// The id the catalog derives from a SKU.
fn product_id(sku: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("ecommesh-product:{}", sku.trim().to_lowercase()));
    format!("p_{}", &hex::encode(digest)[..20])
}

/// Signs in the admin, retrying while the cluster settles (the admin account is written
/// in the background once the cluster has a leader for it).
pub async fn admin_token(
    api: &Api,
    nodes: &[Node],
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let body = json!({"email": email, "password": password});
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for node in nodes {
            if let Answer::Ok(v) = api.post(node, "/auth/login", None, &body).await {
                if let Some(t) = v["access_token"].as_str() {
                    return Ok(t.to_owned());
                }
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("the admin could not sign in within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Retries a setup write until it succeeds (it is idempotent or checked).
async fn setup_post(
    api: &Api,
    nodes: &[Node],
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> anyhow::Result<Value> {
    let mut last = None;
    for attempt in 0..20 {
        let node = &nodes[attempt % nodes.len()];
        match api.post(node, path, token, body).await {
            Answer::Ok(v) => return Ok(v),
            // Made by an attempt whose answer was lost.
            Answer::Refused(StatusCode::CONFLICT, code, v)
                if code == "sku_taken" || code == "email_taken" =>
            {
                return Ok(v)
            }
            other => last = Some(other),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("setup POST {path} kept failing: {last:?}")
}

pub async fn setup(
    api: &Api,
    nodes: &[Node],
    admin: &str,
    run: &str,
    products: usize,
    stock: u64,
    customers: usize,
) -> anyhow::Result<Setup> {
    let mut made = Vec::new();
    for i in 0..products {
        let sku = format!("CHAOS-{run}-{i}");
        let body = json!({
            "sku": sku, "name": format!("Chaos item {i}"), "category": "chaos",
            "brand": "Jepsen", "price": {"amount": 500 + 100 * i as i64, "currency": "USD"},
            "stock": stock,
        });
        let created = setup_post(api, nodes, "/products", Some(admin), &body).await?;
        // The id is derived from the SKU (so a retried create finds the same product).
        let id = created["id"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| product_id(&sku));
        made.push(Product {
            id,
            sku,
            initial: stock,
        });
    }
    let mut people = Vec::new();
    for i in 0..customers {
        let email = format!("shopper{i}-{run}@chaos.test");
        let password = format!("chaos-password-{run}-{i}");
        let body = json!({"email": email, "password": password, "name": format!("Shopper {i}")});
        setup_post(api, nodes, "/auth/register", None, &body).await?;
        let login = json!({"email": email, "password": password});
        let session = setup_post(api, nodes, "/auth/login", None, &login).await?;
        people.push(Customer {
            id: session["user"]["id"]
                .as_str()
                .context("login answered no user id")?
                .to_owned(),
            email,
            token: session["access_token"]
                .as_str()
                .context("login answered no token")?
                .to_owned(),
        });
    }
    Ok(Setup {
        run: run.to_owned(),
        nodes: nodes.iter().map(Node::name).collect(),
        products: made,
        customers: people,
    })
}

/// One client's state: its customer, its logical process, what it may do next.
struct Client {
    ctx: Arc<Ctx>,
    index: usize,
    process: u64,
    rng: StdRng,
    checkouts: u64,
    /// Paid orders it may cancel.
    paid: Vec<String>,
    /// Whether an add may have filled the cart since its last checkout.
    cart_filled: bool,
    /// Whether the last operation did not succeed (the next one waits a little).
    last_failed: bool,
}

/// How an operation ended.
enum Done {
    Ok(Value),
    Fail(String),
    Info(String),
}

/// The end of a retried operation whose attempts all went unanswered: unknown if any
/// attempt may have reached a node, failed if none did.
fn exhausted(unknown: Option<String>, not_sent: Option<String>) -> Done {
    match (unknown, not_sent) {
        (Some(e), _) => Done::Info(e),
        (None, e) => Done::Fail(e.unwrap_or_else(|| "no answer".into())),
    }
}

impl Client {
    fn customer(&self) -> &Customer {
        &self.ctx.setup.customers[self.index]
    }

    /// The client's own node, as Jepsen binds each client to one: while a node is down,
    /// paused or cut off, its clients wait on it and the others go on. Retries of a
    /// checkout or a cancel go round the other nodes.
    fn node(&mut self) -> Node {
        self.node_after(0)
    }

    fn node_after(&self, attempt: usize) -> Node {
        let n = self.ctx.nodes.len();
        self.ctx.nodes[(self.index + attempt) % n].clone()
    }

    fn product(&mut self) -> String {
        let i = self.rng.gen_range(0..self.ctx.setup.products.len());
        self.ctx.setup.products[i].id.clone()
    }

    async fn run(mut self, until: Instant) {
        while Instant::now() < until {
            let roll = self.rng.gen_range(0..100);
            match roll {
                0..=29 => self.read().await,
                30..=54 => self.add().await,
                // Checking out an empty cart proves nothing: fill it first.
                55..=69 if self.cart_filled => self.checkout().await,
                55..=69 => self.add().await,
                70..=79 => self.browse().await,
                80..=95 => self.restock().await,
                _ => self.cancel().await,
            }
            let pause = self.rng.gen_range(0..20) + if self.last_failed { 100 } else { 0 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// Records the invocation, runs `body`, records the completion.
    async fn op<F>(&mut self, f: &str, value: Value, key: Option<String>, node: &Node, body: F)
    where
        F: std::future::Future<Output = Done>,
    {
        let h = &self.ctx.history;
        let invoke = Op {
            kind: Kind::Invoke,
            f: f.to_owned(),
            value: value.clone(),
            process: Process::Client(self.process),
            time: 0,
            node: Some(node.name()),
            idempotency_key: key,
            error: None,
        };
        let invoke = h.record(invoke);
        let done = body.await;
        let mut completion = invoke;
        match done {
            Done::Ok(v) => {
                completion.kind = Kind::Ok;
                completion.value = v;
            }
            Done::Fail(e) => {
                completion.kind = Kind::Fail;
                completion.error = Some(e);
            }
            Done::Info(e) => {
                completion.kind = Kind::Info;
                completion.error = Some(e);
            }
        }
        self.last_failed = completion.kind != Kind::Ok;
        let info = completion.kind == Kind::Info;
        match (f, completion.kind) {
            ("add", Kind::Ok | Kind::Info) => self.cart_filled = true,
            ("checkout", Kind::Ok) => self.cart_filled = false,
            _ => {}
        }
        h.record(completion);
        if info {
            // The operation may still be running: this client goes on as a new process.
            self.process += self.ctx.clients as u64;
        }
    }

    async fn read(&mut self) {
        let (node, product) = (self.node(), self.product());
        let api = self.ctx.api.clone();
        let token = self.ctx.admin_token.clone();
        let path = format!("/products/{product}");
        let value = json!({"product": product});
        self.op("read", value, None, &node, async {
            match api.get(&node, &path, Some(&token)).await {
                Answer::Ok(v) => Done::Ok(json!({
                    "product": product,
                    "available": v["stock"]["available"],
                    "reserved": v["stock"]["reserved"],
                    "sold": v["stock"]["sold"],
                    "received": v["stock"]["received"],
                })),
                // A read changes nothing: whatever went wrong, it did not happen.
                Answer::Refused(s, code, _) => Done::Fail(format!("{} {code}", s.as_u16())),
                Answer::NotSent(e) => Done::Fail(e),
                Answer::Unknown(e) => Done::Info(e),
            }
        })
        .await;
    }

    async fn browse(&mut self) {
        let node = self.node();
        let api = self.ctx.api.clone();
        self.op("browse", json!({"category": "chaos"}), None, &node, async {
            match api
                .get(
                    &node,
                    "/products?category=chaos&sort=price_asc&per_page=20",
                    None,
                )
                .await
            {
                Answer::Ok(v) => Done::Ok(json!({"found": v["total"]})),
                Answer::Refused(s, code, _) => Done::Fail(format!("{} {code}", s.as_u16())),
                Answer::NotSent(e) => Done::Fail(e),
                Answer::Unknown(e) => Done::Info(e),
            }
        })
        .await;
    }

    async fn add(&mut self) {
        let (node, product) = (self.node(), self.product());
        let quantity = self.rng.gen_range(1..=2u32);
        let api = self.ctx.api.clone();
        let token = self.customer().token.clone();
        let customer = self.customer().id.clone();
        let value = json!({"customer": customer, "product": product, "quantity": quantity});
        let body = json!({"product_id": product, "quantity": quantity});
        let v2 = value.clone();
        let target = node.clone();
        self.op("add", value, None, &node, async move {
            match api.post(&target, "/cart/items", Some(&token), &body).await {
                Answer::Ok(cart) => {
                    let mut v = v2;
                    v["cart_version"] = cart["version"].clone();
                    Done::Ok(v)
                }
                Answer::Refused(s, code, _) => Done::Fail(format!("{} {code}", s.as_u16())),
                Answer::NotSent(e) => Done::Fail(e),
                Answer::Unknown(e) => Done::Info(e),
            }
        })
        .await;
    }

    async fn checkout(&mut self) {
        self.checkouts += 1;
        let key = format!("{}-{}-{}", self.ctx.setup.run, self.index, self.checkouts);
        // Now and then a declined card: the order is cancelled and its stock freed.
        let card = if self.rng.gen_ratio(1, 20) {
            "tok_chargeDeclined"
        } else {
            "tok_visa"
        };
        let body: Value = json!({
            "payment": {"token": card},
            "shipping_address": serde_json::from_str::<Value>(SHIPPING).expect("valid JSON"),
        });
        let customer = self.customer().id.clone();
        let token = self.customer().token.clone();
        let value = json!({"customer": customer, "card": card});
        let nodes: Vec<Node> = (0..5).map(|k| self.node_after(k)).collect();
        let api = self.ctx.api.clone();
        let k = key.clone();
        let first = nodes[0].clone();
        let mut paid = None;
        self.op("checkout", value, Some(key), &first, async {
            // Retries of the same key, to any node, until the outcome is known.
            let (mut unknown, mut not_sent) = (None, None);
            for (attempt, node) in nodes.iter().enumerate() {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(300 * (1 << attempt))).await;
                }
                match api
                    .call(node, Method::POST, "/checkout", Some(&token), Some(&body), Some(&k))
                    .await
                {
                    Answer::Ok(order) => {
                        let lines: Vec<Value> = order["lines"]
                            .as_array()
                            .map(|ls| {
                                ls.iter()
                                    .map(|l| json!({"product": l["product_id"], "quantity": l["quantity"]}))
                                    .collect()
                            })
                            .unwrap_or_default();
                        paid = order["id"].as_str().map(str::to_owned);
                        return Done::Ok(json!({
                            "customer": customer, "order": order["id"], "status": order["status"],
                            "lines": lines, "attempts": attempt + 1,
                            "charge": order["payment"]["charge_id"],
                        }));
                    }
                    Answer::Refused(StatusCode::CONFLICT, code, _) if code == "checkout_in_progress" => {
                        unknown = Some("checkout still in progress".to_owned());
                    }
                    // Every attempt meets in the key's one order entity, so a refusal is
                    // the key's outcome even after attempts whose answers were lost.
                    Answer::Refused(s, code, _) => return Done::Fail(format!("{} {code}", s.as_u16())),
                    Answer::NotSent(e) => not_sent = Some(e),
                    Answer::Unknown(e) => unknown = Some(e),
                }
            }
            exhausted(unknown, not_sent)
        })
        .await;
        if let Some(order) = paid {
            if card == "tok_visa" {
                self.paid.push(order);
            }
        }
    }

    async fn cancel(&mut self) {
        if self.paid.is_empty() {
            return self.read().await;
        }
        let i = self.rng.gen_range(0..self.paid.len());
        let order = self.paid.swap_remove(i);
        let customer = self.customer().id.clone();
        let token = self.customer().token.clone();
        let nodes: Vec<Node> = (0..3).map(|k| self.node_after(k)).collect();
        let api = self.ctx.api.clone();
        let path = format!("/orders/{order}/cancel");
        let value = json!({"customer": customer, "order": order});
        let first = nodes[0].clone();
        self.op("cancel", value.clone(), None, &first, async {
            let (mut unknown, mut not_sent) = (None, None);
            for (attempt, node) in nodes.iter().enumerate() {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(500 * (1 << attempt))).await;
                }
                // Cancelling is idempotent: a retry finishes what an earlier one began.
                match api.post(node, &path, Some(&token), &json!({})).await {
                    Answer::Ok(v) => {
                        let mut value = value.clone();
                        value["status"] = v["status"].clone();
                        return Done::Ok(value);
                    }
                    // A retry after an attempt whose answer was lost finds the order
                    // already cancelled (and refunded) by that attempt: done.
                    Answer::Refused(_, code, v)
                        if unknown.is_some()
                            && code == "illegal_transition"
                            && matches!(v["status"].as_str(), Some("cancelled" | "refunded")) =>
                    {
                        let mut value = value.clone();
                        value["status"] = v["status"].clone();
                        return Done::Ok(value);
                    }
                    Answer::Refused(s, code, _) if unknown.is_some() => {
                        return Done::Info(format!(
                            "{} {code} after an attempt whose answer was lost",
                            s.as_u16()
                        ))
                    }
                    Answer::Refused(s, code, _) => {
                        return Done::Fail(format!("{} {code}", s.as_u16()))
                    }
                    Answer::NotSent(e) => not_sent = Some(e),
                    Answer::Unknown(e) => unknown = Some(e),
                }
            }
            exhausted(unknown, not_sent)
        })
        .await;
    }

    async fn restock(&mut self) {
        let (node, product) = (self.node(), self.product());
        let quantity = self.rng.gen_range(1..=5u64);
        let api = self.ctx.api.clone();
        let token = self.ctx.admin_token.clone();
        let path = format!("/products/{product}/restock");
        let value = json!({"product": product, "quantity": quantity});
        let v2 = value.clone();
        // Not idempotent, so never retried: an unknown outcome stays unknown.
        let target = node.clone();
        self.op("restock", value, None, &node, async move {
            match api
                .post(&target, &path, Some(&token), &json!({"quantity": quantity}))
                .await
            {
                Answer::Ok(p) => {
                    let mut v = v2;
                    v["received"] = p["stock"]["received"].clone();
                    Done::Ok(v)
                }
                Answer::Refused(s, code, _) => Done::Fail(format!("{} {code}", s.as_u16())),
                Answer::NotSent(e) => Done::Fail(e),
                Answer::Unknown(e) => Done::Info(e),
            }
        })
        .await;
    }
}

/// Runs every client until `until`; each keeps one operation in flight.
pub async fn run(ctx: Arc<Ctx>, until: Instant) {
    let mut tasks = Vec::new();
    for index in 0..ctx.clients {
        let client = Client {
            ctx: ctx.clone(),
            index,
            process: index as u64,
            rng: StdRng::from_entropy(),
            checkouts: 0,
            paid: Vec::new(),
            cart_filled: false,
            last_failed: false,
        };
        tasks.push(tokio::spawn(client.run(until)));
    }
    for t in tasks {
        let _ = t.await;
    }
}
