//! openraft's network traits on the node's [`Transport`]: every group's messages to a
//! peer travel on the one link to that peer, tagged with the group.

use std::sync::Arc;
use std::time::Duration;

use ecommesh_persistence::{Codec, DefaultCodec};
use openraft::error::{InstallSnapshotError, NetworkError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::transport::{LinkError, Transport};
use super::types::{NodeAddr, NodeId, RaftError, RpcError, TypeConfig};

/// A request from one node to another.
#[derive(Serialize, Deserialize)]
pub enum PeerRequest {
    Append {
        group: u32,
        rpc: AppendEntriesRequest<TypeConfig>,
    },
    Vote {
        group: u32,
        rpc: VoteRequest<NodeId>,
    },
    Snapshot {
        group: u32,
        rpc: InstallSnapshotRequest<TypeConfig>,
    },
    /// A command or read for an entity whose shard this node does not lead.
    Entity { kind: String, payload: Vec<u8> },
    /// A step of a node-set change, for the shard's leader.
    Place {
        group: u32,
        step: super::types::Step,
    },
    /// Durable changes made on the sending node, for this node's live subscribers.
    Changes { payload: Vec<u8> },
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    DefaultCodec::default()
        .encode(value)
        .expect("cluster messages always encode")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ecommesh_persistence::CodecError> {
    DefaultCodec::default().decode(bytes)
}

/// Makes the clients of one group.
#[derive(Clone)]
pub struct GroupNetwork {
    pub group: u32,
    pub transport: Arc<Transport>,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, _node: &NodeAddr) -> Self::Network {
        PeerClient {
            group: self.group,
            target,
            transport: self.transport.clone(),
        }
    }
}

/// One group's client of one peer.
pub struct PeerClient {
    group: u32,
    target: NodeId,
    transport: Arc<Transport>,
}

impl PeerClient {
    async fn call<R, E>(&self, request: &PeerRequest, ttl: Duration) -> Result<R, RpcError<E>>
    where
        R: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer = self
            .transport
            .call(self.target, &encode(request), ttl)
            .await
            .map_err(|e| match e {
                LinkError::Timeout(..) => RpcError::Network(NetworkError::new(&e)),
                _ => RpcError::Unreachable(Unreachable::new(&e)),
            })?;
        let answer: Result<R, RaftError<E>> =
            decode(&answer).map_err(|e| RpcError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RpcError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        let group = self.group;
        self.call(&PeerRequest::Append { group, rpc }, option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        let group = self.group;
        self.call(&PeerRequest::Snapshot { group, rpc }, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        let group = self.group;
        self.call(&PeerRequest::Vote { group, rpc }, option.hard_ttl())
            .await
    }
}
