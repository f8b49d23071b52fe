//! The types a shard's Raft group is made of: what an entry carries, what applying it
//! answers, and how a node is addressed.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Cursor;

use ecommesh_persistence::{Append, AppendOutcome};
use serde::{Deserialize, Serialize};

/// A node's id in the cluster: stable for the life of its data directory.
pub type NodeId = u64;

/// Where a node listens: `rpc` for its peers (Raft and forwarded requests), `http` for
/// clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    pub rpc: String,
    pub http: String,
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rpc {} http {}", self.rpc, self.http)
    }
}

/// The payload of a shard's log entry: the appends of many entities, batched by the
/// shard's leader (group commit across the network).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub appends: Vec<Append>,
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} appends", self.appends.len())
    }
}

/// What applying a [`Proposal`] answers: one outcome per append, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub outcomes: Vec<AppendOutcome>,
}

openraft::declare_raft_types!(
    /// The Raft types of a shard group.
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = NodeId,
        Node = NodeAddr,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeAddr>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeAddr>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<NodeId, E>;
pub type RpcError<E = openraft::error::Infallible> =
    openraft::error::RPCError<NodeId, NodeAddr, RaftError<E>>;

/// One step of a placement change, run by the leader of a shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Step {
    AddLearner { id: NodeId, addr: NodeAddr },
    SetVoters { voters: BTreeSet<NodeId> },
    RemoveNode { id: NodeId },
}

/// What the leader answered to a step.
#[derive(Debug, Serialize, Deserialize)]
pub enum StepOutcome {
    Done,
    NotLeader,
    Failed(String),
}
