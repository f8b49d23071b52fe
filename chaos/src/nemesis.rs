//! The nemesis: faults on a schedule, one at a time (quiet, fault, heal, quiet, …), the
//! kinds taken in turn so that each kind runs at least once in a short run. Every fault
//! and its end are recorded in the history (process `nemesis`, type `info`), so the
//! report can shade when it was active.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};

use crate::api::{Answer, Api};
use crate::docker::Cluster;
use crate::history::{Kind, Op, Process, Recorder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` a node, start it again on its volume.
    Kill,
    /// SIGSTOP a node (`docker pause`), then SIGCONT.
    Pause,
    /// Cut the nodes into two sides with iptables DROP: alternately random halves and the
    /// current leader of the busiest shard alone.
    Partition,
    /// Drop a share of the packets between all nodes (`iptables -m statistic`).
    Loss,
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "kill" => Ok(Fault::Kill),
            "pause" => Ok(Fault::Pause),
            "partition" => Ok(Fault::Partition),
            "loss" => Ok(Fault::Loss),
            other => Err(format!(
                "unknown nemesis {other:?}: expected kill, pause, partition or loss"
            )),
        }
    }
}

pub struct Schedule {
    pub faults: Vec<Fault>,
    /// How long each fault lasts.
    pub fault_for: Duration,
    /// Quiet time before each fault.
    pub quiet_for: Duration,
}

pub struct Nemesis {
    pub cluster: Arc<std::sync::Mutex<Cluster>>,
    pub api: Api,
    pub admin_token: String,
    pub history: Recorder,
}

impl Nemesis {
    fn record(&self, kind: Kind, f: &str, value: Value, node: Option<String>) {
        self.history.record(Op {
            kind,
            f: f.to_owned(),
            value,
            process: Process::Named("nemesis".into()),
            time: 0,
            node,
            idempotency_key: None,
            error: None,
        });
    }

    fn with_cluster<T>(&self, f: impl FnOnce(&Cluster) -> anyhow::Result<T>) -> anyhow::Result<T> {
        // Docker commands block: let the runtime move the clients off this thread.
        tokio::task::block_in_place(|| {
            let guard = self.cluster.lock().expect("cluster lock");
            f(&guard)
        })
    }

    /// The leader of the shard whose log grew most, as some node sees it.
    async fn busiest_leader(&self) -> Option<u64> {
        let nodes = self.with_cluster(|c| Ok(c.nodes.clone())).ok()?;
        for node in nodes {
            if let Answer::Ok(v) = self
                .api
                .get(&node, "/admin/cluster", Some(&self.admin_token))
                .await
            {
                let shards = v["shards"].as_array()?;
                let busiest = shards
                    .iter()
                    .filter(|s| s["leader"].is_u64())
                    .max_by_key(|s| s["last_log_index"].as_u64().unwrap_or(0))?;
                return busiest["leader"].as_u64();
            }
        }
        None
    }

    /// Strikes one node until `end`, then undoes it; both recorded.
    async fn node_fault(
        &self,
        node: u64,
        (strike, undo): (&str, &str),
        start: fn(&Cluster, u64) -> anyhow::Result<()>,
        stop: fn(&Cluster, u64) -> anyhow::Result<()>,
        end: Instant,
    ) -> anyhow::Result<()> {
        let name = Some(format!("n{node}"));
        self.record(Kind::Info, strike, json!({"node": node}), name.clone());
        self.with_cluster(|c| start(c, node))?;
        tokio::time::sleep_until(end.into()).await;
        self.with_cluster(|c| stop(c, node))?;
        self.record(Kind::Info, undo, json!({"node": node}), name);
        Ok(())
    }

    /// Runs faults until `until`, then undoes the last one.
    pub async fn run(&self, schedule: &Schedule, until: Instant) -> anyhow::Result<()> {
        let node_ids: Vec<u64> =
            self.with_cluster(|c| Ok(c.nodes.iter().map(|n| n.id).collect()))?;
        let mut turn = 0usize;
        let mut partitions = 0usize;
        loop {
            let quiet_end = Instant::now() + schedule.quiet_for;
            if quiet_end + schedule.fault_for / 2 > until {
                return Ok(());
            }
            tokio::time::sleep_until(quiet_end.into()).await;
            let fault = schedule.faults[turn % schedule.faults.len()];
            turn += 1;
            let victim = *node_ids
                .choose(&mut rand::thread_rng())
                .expect("at least one node");
            let end = (Instant::now() + schedule.fault_for).min(until);
            match fault {
                Fault::Kill => {
                    let target = self.busiest_leader().await.unwrap_or(victim);
                    let names = ("kill", "start");
                    self.node_fault(target, names, Cluster::kill, Cluster::restart, end)
                        .await?;
                }
                Fault::Pause => {
                    let names = ("pause", "resume");
                    self.node_fault(victim, names, Cluster::pause, Cluster::resume, end)
                        .await?;
                }
                Fault::Partition => {
                    partitions += 1;
                    let (side, how) = if partitions.is_multiple_of(2) {
                        match self.busiest_leader().await {
                            Some(l) => (vec![l], "isolate the leader of the busiest shard"),
                            None => (vec![victim], "isolate a node (no leader known)"),
                        }
                    } else {
                        let mut ids = node_ids.clone();
                        ids.shuffle(&mut rand::thread_rng());
                        let cut = rand::thread_rng().gen_range(1..=ids.len() / 2);
                        (ids[..cut].to_vec(), "random halves")
                    };
                    let other: Vec<u64> = node_ids
                        .iter()
                        .copied()
                        .filter(|n| !side.contains(n))
                        .collect();
                    self.record(
                        Kind::Info,
                        "partition",
                        json!({"sides": [side, other], "how": how}),
                        None,
                    );
                    self.with_cluster(|c| c.partition(&side))?;
                    tokio::time::sleep_until(end.into()).await;
                    self.with_cluster(|c| c.heal())?;
                    self.record(Kind::Info, "heal", json!({}), None);
                }
                Fault::Loss => {
                    self.record(Kind::Info, "loss", json!({"percent": 30}), None);
                    self.with_cluster(|c| c.lossy(30))?;
                    tokio::time::sleep_until(end.into()).await;
                    self.with_cluster(|c| c.heal())?;
                    self.record(Kind::Info, "heal", json!({}), None);
                }
            }
        }
    }
}

/// The intervals during which faults were active, from the history: (start s, end s, f).
pub fn intervals(ops: &[Op]) -> Vec<(f64, f64, String)> {
    let mut out = Vec::new();
    let mut open: Option<(f64, String)> = None;
    let last = ops
        .iter()
        .map(|o| o.time)
        .filter(|t| *t != u64::MAX)
        .max()
        .unwrap_or(0);
    for op in ops.iter().filter(|o| !o.is_client()) {
        let t = op.time as f64 / 1e9;
        match op.f.as_str() {
            "kill" | "pause" | "partition" | "loss" => open = Some((t, op.f.clone())),
            _ => {
                if let Some((start, f)) = open.take() {
                    out.push((start, t, f));
                }
            }
        }
    }
    if let Some((start, f)) = open {
        out.push((start, last as f64 / 1e9, f));
    }
    out
}
