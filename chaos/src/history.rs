//! The history: every operation as Jepsen records it, an `invoke` and then its completion
//! (`ok`, `fail` or `info`), one JSON object per line.
//!
//! `fail` means the operation certainly did not happen (the server refused it). `info`
//! means nobody knows (a timeout, a reset connection, a 5xx): the checker must allow both.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// Who ran an operation: a client (a logical process, renumbered after an `info`, as
/// Jepsen does, because the old one may still be running) or the nemesis.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    Client(u64),
    Named(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Op {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub f: String,
    pub value: Value,
    pub process: Process,
    /// Nanoseconds since the workload started.
    pub time: u64,
    /// The node the request went to (`n1`…), or the node a fault hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Why an operation failed or is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Op {
    pub fn is_client(&self) -> bool {
        matches!(self.process, Process::Client(_))
    }
}

/// Appends operations to `history.jsonl` as they happen (a crash of the suite keeps
/// what was recorded) and keeps them for the checker.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
    start: Instant,
}

struct Inner {
    file: std::io::BufWriter<std::fs::File>,
    ops: Vec<Op>,
}

impl Recorder {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Recorder {
            inner: Arc::new(Mutex::new(Inner {
                file: std::io::BufWriter::new(file),
                ops: Vec::new(),
            })),
            start: Instant::now(),
        })
    }

    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Records `op`, stamping its time.
    pub fn record(&self, mut op: Op) -> Op {
        op.time = self.now();
        let mut inner = self.inner.lock().expect("history lock");
        let line = serde_json::to_string(&op).expect("an op serializes");
        // A history that cannot be written is reported by `finish`.
        let _ = writeln!(inner.file, "{line}");
        inner.ops.push(op.clone());
        op
    }

    /// Flushes the file and hands back every operation in the order recorded.
    pub fn finish(&self) -> anyhow::Result<Vec<Op>> {
        let mut inner = self.inner.lock().expect("history lock");
        inner.file.flush().context("writing the history")?;
        Ok(inner.ops.clone())
    }
}

/// Reads a history written by [`Recorder`].
pub fn load(path: &Path) -> anyhow::Result<Vec<Op>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

/// Pairs every invocation with its completion (the next op of the same process). An
/// invocation without one (the run ended first) completes as `info`.
pub fn pairs(ops: &[Op]) -> Vec<(Op, Op)> {
    let mut open: std::collections::BTreeMap<Process, Op> = Default::default();
    let mut out = Vec::new();
    for op in ops {
        match op.kind {
            Kind::Invoke => {
                open.insert(op.process.clone(), op.clone());
            }
            _ => {
                if let Some(inv) = open.remove(&op.process) {
                    out.push((inv, op.clone()));
                }
            }
        }
    }
    for (_, inv) in open {
        let mut done = inv.clone();
        done.kind = Kind::Info;
        done.time = u64::MAX;
        done.error = Some("never completed".into());
        out.push((inv, done));
    }
    out.sort_by_key(|(inv, _)| inv.time);
    out
}
