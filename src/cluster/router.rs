//! [`Entities`]: the entity registry as request handlers see it. On a single node it is
//! the local registry. In a cluster, a command goes to the local shard actor when this
//! node leads the shard and has caught up, and otherwise over the link to the node that
//! leads it; while the shard has no leader the command waits up to `leader_wait`, then
//! fails with [`StoreError::Unavailable`] (503 + Retry-After).
//!
//! A forwarded command is retried on another node only when it certainly did not run:
//! the link was not up, or the other node answered that it does not lead the shard. A
//! link that broke or timed out leaves the outcome unknown, and the caller is told so;
//! a read, having no effect, is simply asked again until `leader_wait` runs out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ecommesh_actors::shard::Outcome;
use ecommesh_actors::{Entity, EntityError, Registry};
use ecommesh_persistence::{ShardId, StoreError};
use serde::{Deserialize, Serialize};

use super::network::{decode, encode, PeerRequest};
use super::transport::LinkError;
use super::{Cluster, EntityHandler};

/// How long a forwarded read may wait for its answer before it is asked again (of the
/// leader known then): a read has no effect, so a leader that stopped answering (paused,
/// cut off) holds it only until the shard has failed over.
const READ_FORWARD_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a forwarded write may take beyond `leader_wait`, the longest the leader itself
/// waits for it to commit.
const WRITE_FORWARD_SLACK: Duration = Duration::from_secs(2);

#[derive(Serialize, Deserialize)]
enum Call<C> {
    Execute {
        id: String,
        command: C,
        expected_seq: Option<u64>,
    },
    Read {
        id: String,
    },
}

impl<C> Call<C> {
    fn id(&self) -> &str {
        match self {
            Call::Execute { id, .. } | Call::Read { id } => id,
        }
    }
}

/// The answer to a forwarded call.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "Outcome<E>: Serialize",
    deserialize = "Outcome<E>: serde::de::DeserializeOwned"
))]
enum Forwarded<E: Entity> {
    Done(Outcome<E>),
    /// This node does not lead the shard (any more): the command did not run.
    NotLeader,
}

/// The entities of kind `E`, wherever their shards are led.
pub struct Entities<E: Entity> {
    local: Registry<E>,
    cluster: Option<Arc<Cluster>>,
}

impl<E: Entity> Clone for Entities<E> {
    fn clone(&self) -> Self {
        Entities {
            local: self.local.clone(),
            cluster: self.cluster.clone(),
        }
    }
}

fn unavailable<R>(shard: ShardId, reason: String) -> EntityError<R> {
    EntityError::Storage(StoreError::Unavailable { shard, reason })
}

impl<E: Entity> Entities<E> {
    pub fn new(local: Registry<E>, cluster: Option<Arc<Cluster>>) -> Self {
        Entities { local, cluster }
    }

    /// The registry of this node's own shard actors.
    pub fn local(&self) -> &Registry<E> {
        &self.local
    }

    pub fn shard_of(&self, id: &str) -> ShardId {
        self.local.shard_of(id)
    }

    /// Runs `command` on entity `id`; resolves once its events are durable (committed by
    /// the shard's group, in a cluster).
    pub async fn execute(
        &self,
        id: impl Into<String>,
        command: E::Command,
        expected_seq: Option<u64>,
    ) -> Outcome<E> {
        self.call(Call::Execute {
            id: id.into(),
            command,
            expected_seq,
        })
        .await
    }

    /// Reads entity `id` on the node that leads its shard; shows only what is durable.
    pub async fn read(&self, id: impl Into<String>) -> Outcome<E> {
        self.call(Call::Read { id: id.into() }).await
    }

    /// [`Registry::execute_unsynced`] on a single node; in a cluster, where nothing is
    /// final before a majority has it, [`Entities::execute`].
    pub async fn execute_unsynced(
        &self,
        id: impl Into<String>,
        command: E::Command,
        expected_seq: Option<u64>,
    ) -> Outcome<E> {
        match self.cluster {
            None => self.local.execute_unsynced(id, command, expected_seq).await,
            Some(_) => self.execute(id, command, expected_seq).await,
        }
    }

    /// [`Registry::read_unsynced`] on a single node; [`Entities::read`] in a cluster.
    pub async fn read_unsynced(&self, id: impl Into<String>) -> Outcome<E> {
        match self.cluster {
            None => self.local.read_unsynced(id).await,
            Some(_) => self.read(id).await,
        }
    }

    /// Waits until every unsynced step so far is durable ([`Registry::sync`]).
    pub async fn sync(&self) -> Result<(), StoreError> {
        match self.cluster {
            None => self.local.sync().await,
            Some(_) => Ok(()),
        }
    }

    pub async fn live_entities(&self) -> usize {
        self.local.live_entities().await
    }

    async fn run_here(local: &Registry<E>, call: Call<E::Command>) -> Outcome<E> {
        match call {
            Call::Execute {
                id,
                command,
                expected_seq,
            } => local.execute(id, command, expected_seq).await,
            Call::Read { id } => local.read(id).await,
        }
    }

    async fn call(&self, call: Call<E::Command>) -> Outcome<E> {
        let Some(cluster) = &self.cluster else {
            return Self::run_here(&self.local, call).await;
        };
        let shard = self.shard_of(call.id());
        let deadline = Instant::now() + cluster.settings.leader_wait;
        let mut request: Option<Vec<u8>> = None;
        loop {
            // Writes need no lease: a leader cut off from its quorum cannot commit them.
            let here = match &call {
                Call::Read { .. } => cluster.serves(shard) && cluster.confirm_lead(shard).await,
                Call::Execute { .. } => cluster.serves(shard),
            };
            if here {
                return Self::run_here(&self.local, call).await;
            }
            let leader = cluster.leader(shard).filter(|l| *l != cluster.me());
            if let Some(leader) = leader {
                let bytes = request.get_or_insert_with(|| {
                    encode(&PeerRequest::Entity {
                        kind: E::KIND.to_owned(),
                        payload: encode(&call),
                    })
                });
                metrics::counter!("ecommesh_cluster_forwarded_total", "kind" => E::KIND)
                    .increment(1);
                let timeout = match &call {
                    Call::Read { .. } => READ_FORWARD_TIMEOUT,
                    Call::Execute { .. } => cluster.settings.leader_wait + WRITE_FORWARD_SLACK,
                };
                match cluster.transport.call(leader, bytes, timeout).await {
                    // Nothing: the node is still starting and answers no commands yet.
                    Ok(answer) if answer.is_empty() => {}
                    Ok(answer) => match decode::<Forwarded<E>>(&answer) {
                        Ok(Forwarded::Done(outcome)) => return outcome,
                        Ok(Forwarded::NotLeader) => {}
                        Err(e) => {
                            return Err(unavailable(
                                shard,
                                format!("node {leader} answered something unreadable: {e}"),
                            ))
                        }
                    },
                    Err(LinkError::NotConnected(_)) => {}
                    // A read changed nothing, whatever became of it: ask again.
                    Err(_) if matches!(call, Call::Read { .. }) => {}
                    Err(e) => {
                        return Err(unavailable(
                            shard,
                            format!("{e}; the command may or may not have run"),
                        ))
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(unavailable(
                    shard,
                    match cluster.leader(shard) {
                        Some(l) => format!("its leader, node {l}, cannot be reached"),
                        None => "it has no leader (an election is under way, or too few of its replicas are up)".into(),
                    },
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Answers commands other nodes forward for this kind: runs them only if this node
    /// leads the entity's shard.
    pub fn handler(&self) -> (&'static str, EntityHandler) {
        let this = self.clone();
        let handler: EntityHandler = Arc::new(move |_kind, payload| {
            let this = this.clone();
            Box::pin(async move {
                let call: Call<E::Command> = match decode(&payload) {
                    Ok(c) => c,
                    Err(e) => {
                        let shard = 0;
                        return encode(&Forwarded::<E>::Done(Err(unavailable(
                            shard,
                            format!("cannot read the forwarded command: {e}"),
                        ))));
                    }
                };
                let shard = this.shard_of(call.id());
                let serves = match (&this.cluster, &call) {
                    (None, _) => false,
                    (Some(c), Call::Read { .. }) => c.serves(shard) && c.confirm_lead(shard).await,
                    (Some(c), Call::Execute { .. }) => c.serves(shard),
                };
                if !serves {
                    return encode(&Forwarded::<E>::NotLeader);
                }
                encode(&Forwarded::<E>::Done(
                    Self::run_here(&this.local, call).await,
                ))
            })
        });
        (E::KIND, handler)
    }
}
