//! The checker: what the history and the final reads must satisfy. Every check allows
//! both outcomes of an operation whose outcome is unknown (`info`), and names the
//! operations that break it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::history::{pairs, Kind, Op};
use crate::linear::{check_counter, Call, CounterOp, Outcome};
use crate::workload::Setup;

/// A product's stock as an admin reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
    pub received: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub customer: String,
    pub status: String,
    pub lines: BTreeMap<String, u64>,
    pub charge: Option<String>,
}

/// What one node answered after the faults were healed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeFinal {
    pub node: String,
    /// Reads this node could not answer.
    pub errors: Vec<String>,
    /// Per product, from the product entity (its shard leader).
    pub stock: BTreeMap<String, Stock>,
    /// Per product, units available in this node's own catalog listing.
    pub catalog: BTreeMap<String, u64>,
    /// Every order, from this node's own order list, with lines and charge.
    pub orders: BTreeMap<String, Order>,
    /// Per customer, the cart's lines.
    pub carts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per shard, the leader this node knows of.
    pub leaders: BTreeMap<u32, Option<u64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub summary: String,
    /// The offending operations or reads (at most [`MAX_SHOWN`]).
    pub violations: Vec<Value>,
    pub violation_count: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub valid: bool,
    pub checks: Vec<Check>,
}

const MAX_SHOWN: usize = 20;

struct Found {
    name: &'static str,
    summary: String,
    violations: Vec<Value>,
}

impl Found {
    fn new(name: &'static str) -> Self {
        Found {
            name,
            summary: String::new(),
            violations: Vec::new(),
        }
    }

    fn into_check(self) -> Check {
        Check {
            name: self.name.to_owned(),
            ok: self.violations.is_empty(),
            summary: self.summary,
            violation_count: self.violations.len(),
            violations: self.violations.into_iter().take(MAX_SHOWN).collect(),
        }
    }
}

/// The order id checkout derives from a customer and an Idempotency-Key.
pub fn order_id(customer: &str, key: &str) -> String {
    format!(
        "o_{}",
        &hex::encode(Sha256::digest(format!("order:{customer}:{key}")))[..20]
    )
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_owned()
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

const PAID: [&str; 3] = ["paid", "shipped", "delivered"];

pub fn check(setup: &Setup, history: &[Op], finals: &[NodeFinal]) -> Verdict {
    let ops = pairs(history);
    let client: Vec<&(Op, Op)> = ops.iter().filter(|(i, _)| i.is_client()).collect();
    let checks = vec![
        acknowledged(&client, finals),
        stock(setup, &client, finals),
        idempotency(setup, &client, finals),
        convergence(finals),
        linearizable(setup, &client),
    ];
    let checks: Vec<Check> = checks.into_iter().map(Found::into_check).collect();
    Verdict {
        valid: checks.iter().all(|c| c.ok),
        checks,
    }
}

fn op_json(pair: &(Op, Op)) -> Value {
    json!({"invoke": pair.0, "complete": pair.1})
}

/// A customer's cart as its operations allow it: per product the least and most units,
/// whether an add of unknown outcome may still land, and the operations since the cart
/// was last emptied.
type CartRange = (BTreeMap<String, (u64, u64)>, bool, Vec<Value>);

/// 1. Every acknowledged order and cart change is on every node.
fn acknowledged(ops: &[&(Op, Op)], finals: &[NodeFinal]) -> Found {
    let mut found = Found::new("acknowledged writes are on every node");
    // What cancels say about each order.
    let mut cancelled: BTreeMap<String, Kind> = BTreeMap::new();
    for (inv, done) in ops.iter().map(|p| (&p.0, &p.1)) {
        if inv.f == "cancel" && done.kind != Kind::Fail {
            let e = cancelled.entry(s(&inv.value, "order")).or_insert(done.kind);
            if done.kind == Kind::Ok {
                *e = Kind::Ok;
            }
        }
    }
    let mut orders = 0;
    for pair in ops
        .iter()
        .filter(|p| p.0.f == "checkout" && p.1.kind == Kind::Ok)
    {
        orders += 1;
        let id = s(&pair.1.value, "order");
        for n in finals {
            let allowed: &[&str] = match cancelled.get(&id) {
                // A paid order, once cancelled, is refunded.
                Some(Kind::Ok) => &["cancelled", "refunded"],
                Some(_) => &["paid", "cancelled", "refunded"],
                None => &["paid"],
            };
            match n.orders.get(&id) {
                None => found.violations.push(json!({
                    "problem": format!("acknowledged order {id} is missing on {}", n.node),
                    "op": op_json(pair),
                })),
                Some(o) if !allowed.contains(&o.status.as_str()) => {
                    found.violations.push(json!({
                        "problem": format!("order {id} is {} on {}, expected {}", o.status, n.node, allowed.join(" or ")),
                        "op": op_json(pair),
                    }))
                }
                Some(_) => {}
            }
        }
    }
    // Carts: per customer, per product, the range of units its own operations allow.
    let mut carts: BTreeMap<String, CartRange> = BTreeMap::new();
    for pair in ops {
        let (inv, done) = (&pair.0, &pair.1);
        if !matches!(inv.f.as_str(), "add" | "checkout") {
            continue;
        }
        let (lines, uncertain, recent) = carts.entry(s(&inv.value, "customer")).or_default();
        match (inv.f.as_str(), done.kind) {
            ("add", Kind::Ok | Kind::Info) => {
                let q = u(&inv.value, "quantity");
                let r = lines.entry(s(&inv.value, "product")).or_default();
                if done.kind == Kind::Ok {
                    r.0 += q;
                } else {
                    *uncertain = true;
                }
                r.1 += q;
                recent.push(op_json(pair));
            }
            // A checkout empties the cart it bought; one whose outcome is unknown may
            // have, and an add still in flight (unknown) may have kept it from clearing.
            // A 201 that took more than one attempt may be the replay of a saga that
            // died between payment and clearing: the cart may still be full.
            ("checkout", Kind::Ok) if !*uncertain && done.value["attempts"].as_u64() == Some(1) => {
                lines.clear();
                recent.clear();
            }
            ("checkout", Kind::Ok | Kind::Info) => {
                for r in lines.values_mut() {
                    r.0 = 0;
                }
            }
            _ => {}
        }
    }
    for (customer, (lines, _, recent)) in &carts {
        for n in finals {
            let Some(cart) = n.carts.get(customer) else {
                found.violations.push(
                    json!({"problem": format!("{}: no cart read for customer {customer}", n.node)}),
                );
                continue;
            };
            let products: BTreeSet<&String> = lines.keys().chain(cart.keys()).collect();
            for p in products {
                let have = cart.get(p).copied().unwrap_or(0);
                let (lo, hi) = lines.get(p).copied().unwrap_or((0, 0));
                if have < lo || have > hi {
                    found.violations.push(json!({
                        "problem": format!("{}: customer {customer}'s cart holds {have} of {p}; its acknowledged and unknown adds since the last checkout allow {lo}..={hi}", n.node),
                        "ops": recent.iter().rev().take(10).collect::<Vec<_>>(),
                    }));
                }
            }
        }
    }
    found.summary = format!(
        "{orders} acknowledged orders and {} customers' carts checked on {} nodes",
        carts.len(),
        finals.len()
    );
    found
}

/// 2. Per product: available + reserved + sold == received, received within what the
///    restocks allow, sold within what the orders allow: nothing lost, nothing oversold.
fn stock(setup: &Setup, ops: &[&(Op, Op)], finals: &[NodeFinal]) -> Found {
    let mut found = Found::new("stock is conserved and never oversold");
    let Some(first) = finals.iter().find(|n| !n.stock.is_empty()) else {
        found
            .violations
            .push(json!({"problem": "no node answered the final stock reads"}));
        return found;
    };
    for p in &setup.products {
        let (mut acked, mut unknown) = (0u64, 0u64);
        for pair in ops
            .iter()
            .filter(|x| x.0.f == "restock" && s(&x.0.value, "product") == p.id)
        {
            match pair.1.kind {
                Kind::Ok => acked += u(&pair.0.value, "quantity"),
                Kind::Info => unknown += u(&pair.0.value, "quantity"),
                _ => {}
            }
        }
        let Some(st) = first.stock.get(&p.id) else {
            found
                .violations
                .push(json!({"problem": format!("{}: no final read of {}", first.node, p.id)}));
            continue;
        };
        if st.available + st.reserved + st.sold != st.received {
            found.violations.push(json!({
                "problem": format!("{}: available {} + reserved {} + sold {} != received {}", p.id, st.available, st.reserved, st.sold, st.received),
            }));
        }
        let (lo, hi) = (p.initial + acked, p.initial + acked + unknown);
        if st.received < lo || st.received > hi {
            found.violations.push(json!({
                "problem": format!(
                    "{}: received {} but created with {} and restocked {} acknowledged + {} unknown units allow {lo}..={hi}{}",
                    p.id, st.received, p.initial, acked, unknown,
                    if st.received < lo { " (an acknowledged restock was lost)" } else { "" }
                ),
            }));
        }
        // Units in orders: paid ones are sold; pending ones may be.
        let (mut paid, mut pending) = (0u64, 0u64);
        for o in first.orders.values() {
            let q = o.lines.get(&p.id).copied().unwrap_or(0);
            if PAID.contains(&o.status.as_str()) {
                paid += q;
            } else if o.status == "pending_payment" {
                pending += q;
            }
        }
        if st.sold < paid || st.sold > paid + pending {
            found.violations.push(json!({
                "problem": format!(
                    "{}: sold {} but paid orders hold {paid} units and pending ones {pending}{}",
                    p.id, st.sold,
                    if st.sold < paid { " (oversold: paid units the stock does not count)" } else { " (units sold to no paid order)" }
                ),
            }));
        }
    }
    // Every read during the run was a consistent state.
    for pair in ops
        .iter()
        .filter(|x| x.0.f == "read" && x.1.kind == Kind::Ok)
    {
        let v = &pair.1.value;
        if u(v, "available") + u(v, "reserved") + u(v, "sold") != u(v, "received") {
            found.violations.push(json!({
                "problem": "a read whose available + reserved + sold != received",
                "op": op_json(pair),
            }));
        }
    }
    found.summary = format!(
        "{} products: conservation, restocks and sales against orders",
        setup.products.len()
    );
    found
}

/// 3. No Idempotency-Key made two orders or two charges; no paid order lacks a charge.
fn idempotency(setup: &Setup, ops: &[&(Op, Op)], finals: &[NodeFinal]) -> Found {
    let mut found = Found::new("one order and one charge per Idempotency-Key");
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    for pair in ops.iter().filter(|p| p.0.f == "checkout") {
        let (Some(key), customer) = (&pair.0.idempotency_key, s(&pair.0.value, "customer")) else {
            continue;
        };
        let id = order_id(&customer, key);
        keys.insert(id.clone(), key.clone());
        if pair.1.kind == Kind::Ok {
            if s(&pair.1.value, "order") != id {
                found.violations.push(json!({
                    "problem": format!("key {key} answered order {} instead of {id}", s(&pair.1.value, "order")),
                    "op": op_json(pair),
                }));
            }
            if pair.1.value["charge"].as_str().is_none() {
                found.violations.push(
                    json!({"problem": "a 201 checkout without a charge", "op": op_json(pair)}),
                );
            }
        }
    }
    let customers: BTreeSet<&str> = setup.customers.iter().map(|c| c.id.as_str()).collect();
    for n in finals {
        let mut charges: BTreeMap<&str, &str> = BTreeMap::new();
        for (id, o) in &n.orders {
            if !customers.contains(o.customer.as_str()) {
                continue;
            }
            if !keys.contains_key(id) {
                found.violations.push(json!({"problem": format!("{}: order {id} of customer {} belongs to no Idempotency-Key the workload used", n.node, o.customer)}));
            }
            if PAID.contains(&o.status.as_str()) && o.charge.is_none() {
                found.violations.push(json!({"problem": format!("{}: order {id} is {} without a charge", n.node, o.status)}));
            }
            if let Some(c) = &o.charge {
                if let Some(other) = charges.insert(c, id) {
                    found.violations.push(json!({"problem": format!("{}: orders {other} and {id} share charge {c}", n.node)}));
                }
            }
        }
    }
    found.summary = format!("{} keys used", keys.len());
    found
}

/// 4. Every node ends with the same reads, and every shard with one agreed leader.
fn convergence(finals: &[NodeFinal]) -> Found {
    let mut found = Found::new("nodes converge and every shard has a leader");
    for n in finals {
        for e in &n.errors {
            found
                .violations
                .push(json!({"problem": format!("{}: {e}", n.node)}));
        }
        for (shard, leader) in &n.leaders {
            if leader.is_none() {
                found
                    .violations
                    .push(json!({"problem": format!("{}: shard {shard} has no leader", n.node)}));
            }
        }
        for (p, st) in &n.stock {
            if n.catalog.get(p) != Some(&st.available) {
                found.violations.push(json!({"problem": format!("{}: catalog lists {:?} available of {p}, its entity says {}", n.node, n.catalog.get(p), st.available)}));
            }
        }
    }
    if let Some((first, rest)) = finals.split_first() {
        for n in rest {
            let diffs = [
                ("stock", first.stock != n.stock),
                ("catalog", first.catalog != n.catalog),
                ("orders", first.orders != n.orders),
                ("carts", first.carts != n.carts),
                ("shard leaders", first.leaders != n.leaders),
            ];
            for (what, differs) in diffs {
                if differs {
                    found.violations.push(json!({"problem": format!("{} and {} read different {what}", first.node, n.node)}));
                }
            }
            for (id, o) in &first.orders {
                match n.orders.get(id) {
                    Some(other) if other != o => found.violations.push(json!({"problem": format!("order {id}: {} reads {o:?}, {} reads {other:?}", first.node, n.node)})),
                    None => found.violations.push(json!({"problem": format!("order {id} is on {} but not on {}", first.node, n.node)})),
                    _ => {}
                }
            }
        }
    }
    found.summary = format!("{} nodes compared", finals.len());
    found
}

/// 5. Each product's stock reads are linearizable.
fn linearizable(setup: &Setup, ops: &[&(Op, Op)]) -> Found {
    let mut found = Found::new("stock reads are linearizable");
    let mut checked = 0;
    let mut undecided = Vec::new();
    for p in &setup.products {
        let mut calls = Vec::new();
        let mut source = Vec::new();
        for pair in ops.iter() {
            let (inv, done) = (&pair.0, &pair.1);
            if s(&inv.value, "product") != p.id {
                continue;
            }
            let ret = (done.kind != Kind::Info && done.time != u64::MAX).then_some(done.time);
            let op = match (inv.f.as_str(), done.kind) {
                ("restock", Kind::Ok | Kind::Info) => CounterOp::Add(u(&inv.value, "quantity")),
                ("read", Kind::Ok) => CounterOp::Read(u(&done.value, "received")),
                _ => continue,
            };
            calls.push(Call {
                invoke: inv.time,
                ret,
                op,
            });
            source.push(*pair);
        }
        checked += calls.len();
        match check_counter(p.initial, &calls, 20_000_000) {
            Outcome::Linearizable => {}
            Outcome::Unknown => undecided.push(p.id.clone()),
            Outcome::Violation { call } => {
                let bad = source[call];
                let concurrent: Vec<Value> = source
                    .iter()
                    .filter(|o| {
                        o.0.time <= bad.1.time
                            && o.1.time >= bad.0.time.saturating_sub(2_000_000_000)
                    })
                    .take(15)
                    .map(|o| op_json(o))
                    .collect();
                found.violations.push(json!({
                    "problem": format!("{}: no linearization explains this {} (started with {} units)", p.id, bad.0.f, p.initial),
                    "op": op_json(bad),
                    "around": concurrent,
                }));
            }
        }
    }
    found.summary = format!(
        "{checked} restocks and reads over {} products{}",
        setup.products.len(),
        if undecided.is_empty() {
            String::new()
        } else {
            format!("; search budget ran out for {}", undecided.join(", "))
        }
    );
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Process;
    use crate::workload::{Customer, Product};

    fn setup() -> Setup {
        Setup {
            run: "t".into(),
            nodes: vec!["n1".into()],
            products: vec![Product {
                id: "p".into(),
                sku: "P".into(),
                initial: 10,
            }],
            customers: vec![Customer {
                id: "c".into(),
                email: "c@t".into(),
                token: String::new(),
            }],
        }
    }

    fn op(kind: Kind, f: &str, value: Value, time: u64) -> Op {
        Op {
            kind,
            f: f.into(),
            value,
            process: Process::Client(0),
            time,
            node: None,
            idempotency_key: None,
            error: None,
        }
    }

    fn node(received: u64) -> NodeFinal {
        let mut n = NodeFinal {
            node: "n1".into(),
            ..NodeFinal::default()
        };
        n.stock.insert(
            "p".into(),
            Stock {
                available: received,
                reserved: 0,
                sold: 0,
                received,
            },
        );
        n.catalog.insert("p".into(), received);
        n.carts.insert("c".into(), BTreeMap::new());
        n.leaders.insert(0, Some(1));
        n
    }

    fn restock(kind: Kind) -> Vec<Op> {
        let v = json!({"product": "p", "quantity": 5});
        vec![
            op(Kind::Invoke, "restock", v.clone(), 1),
            op(kind, "restock", v, 2),
        ]
    }

    #[test]
    fn a_lost_acknowledged_restock_fails_the_run() {
        let v = check(&setup(), &restock(Kind::Ok), &[node(10)]);
        assert!(!v.valid);
        let stock = &v.checks[1];
        assert!(!stock.ok, "{stock:?}");
        assert!(stock.violations[0]["problem"]
            .as_str()
            .unwrap()
            .contains("acknowledged restock was lost"));
        assert!(check(&setup(), &restock(Kind::Ok), &[node(15)]).valid);
    }

    #[test]
    fn an_unknown_restock_may_or_may_not_have_happened() {
        assert!(check(&setup(), &restock(Kind::Info), &[node(10)]).valid);
        assert!(check(&setup(), &restock(Kind::Info), &[node(15)]).valid);
        assert!(!check(&setup(), &restock(Kind::Info), &[node(20)]).valid);
        // A failed restock certainly did not happen.
        assert!(!check(&setup(), &restock(Kind::Fail), &[node(15)]).valid);
    }

    #[test]
    fn nodes_that_disagree_do_not_converge() {
        let v = check(&setup(), &[], &[node(10), node(11)]);
        assert!(!v.checks[3].ok);
    }
}
