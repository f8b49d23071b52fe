//! The cluster as the runtime's [`Router`]: which node leads each shard (openraft's view),
//! and the peer links that carry an entity call to it (`ecommesh_actors::routing` does the
//! rest: forwarding, retries, the wait for a leader).

use std::time::Duration;

use ecommesh_actors::routing::{BoxFuture, ForwardError, NodeId, Router};
use ecommesh_persistence::ShardId;

use super::network::{encode, PeerRequest};
use super::transport::LinkError;
use super::Cluster;

impl Router for Cluster {
    fn leader_wait(&self) -> Duration {
        self.settings.leader_wait
    }

    fn serves(&self, shard: ShardId) -> bool {
        Cluster::serves(self, shard)
    }

    fn confirm_lead(&self, shard: ShardId) -> BoxFuture<'_, bool> {
        Box::pin(Cluster::confirm_lead(self, shard))
    }

    fn leader(&self, shard: ShardId) -> Option<NodeId> {
        Cluster::leader(self, shard)
    }

    fn me(&self) -> NodeId {
        Cluster::me(self)
    }

    fn forward<'a>(
        &'a self,
        node: NodeId,
        kind: &'static str,
        call: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<u8>, ForwardError>> {
        Box::pin(async move {
            let request = encode(&PeerRequest::Entity {
                kind: kind.to_owned(),
                payload: call,
            });
            match self.transport.call(node, &request, timeout).await {
                Ok(answer) => Ok(answer.to_vec()),
                Err(e @ LinkError::NotConnected(_)) => Err(ForwardError::NotSent(e.to_string())),
                Err(e) => Err(ForwardError::Unknown(e.to_string())),
            }
        })
    }
}
