//! The links between nodes: one TCP connection per pair of nodes, carrying requests and
//! responses of every Raft group and every forwarded request both ways, matched by id.
//!
//! The node with the lower id dials, the other accepts; the dialer introduces itself
//! first. Each connection has one writer task that takes everything queued for the peer
//! and writes it with one flush, so the heartbeats of 64 groups leave in one segment
//! rather than 64. A link that hears nothing for [`IDLE`] is dropped and dialled again
//! (each side pings every [`PING`] while idle), which also notices a silent partition;
//! requests in flight on a dropped link fail at once.
//!
//! Frames are length-delimited: `[kind u8][id u64][payload]`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::types::NodeId;

/// A link that hears nothing for this long is considered dead.
pub const IDLE: Duration = Duration::from_secs(5);
/// How long one attempt to dial a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How often an otherwise quiet link is pinged.
pub const PING: Duration = Duration::from_secs(1);
/// Largest frame: a chunk of a snapshot, or a batch of entries.
const MAX_FRAME: usize = 64 * 1024 * 1024;

const HELLO: u8 = 0;
const REQUEST: u8 = 1;
const RESPONSE: u8 = 2;
const PING_FRAME: u8 = 3;
/// A one-way message: handled in arrival order, never answered.
const TELL: u8 = 4;

/// Answers requests from peers: gets the sender's id and the payload, returns the reply.
pub type Handler =
    Arc<dyn Fn(NodeId, Bytes) -> Pin<Box<dyn Future<Output = Bytes> + Send>> + Send + Sync>;

/// Why a call to a peer got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    #[error("no link to node {0}")]
    NotConnected(NodeId),
    #[error("the link to node {0} broke before the answer came")]
    Broken(NodeId),
    #[error("node {0} did not answer within {1:?}")]
    Timeout(NodeId, Duration),
}

struct Link {
    out: mpsc::UnboundedSender<Bytes>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Bytes>>>>,
    /// Tells apart a link from the one that replaced it.
    serial: u64,
}

/// This node's links to its peers.
pub struct Transport {
    me: NodeId,
    links: Mutex<HashMap<NodeId, Link>>,
    addrs: Mutex<HashMap<NodeId, String>>,
    handler: Handler,
    next_id: AtomicU64,
    serials: AtomicU64,
}

fn frame(kind: u8, id: u64, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(9 + payload.len());
    b.put_u8(kind);
    b.put_u64(id);
    b.put_slice(payload);
    b.freeze()
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

impl Transport {
    /// Starts accepting peers on `listener` and dialling every peer in `addrs` with a
    /// higher id than `me`. Must run inside a tokio runtime.
    pub fn start(
        me: NodeId,
        listener: TcpListener,
        addrs: HashMap<NodeId, String>,
        handler: Handler,
    ) -> Arc<Self> {
        let t = Arc::new(Transport {
            me,
            links: Mutex::new(HashMap::new()),
            addrs: Mutex::new(HashMap::new()),
            handler,
            next_id: AtomicU64::new(1),
            serials: AtomicU64::new(1),
        });
        let accepting = t.clone();
        tokio::spawn(async move { accepting.accept(listener).await });
        for (id, addr) in addrs {
            t.add_peer(id, addr);
        }
        t
    }

    /// Knows a (new) peer: dials it if this node is the one that dials.
    pub fn add_peer(self: &Arc<Self>, id: NodeId, addr: String) {
        if id == self.me {
            return;
        }
        let known = self.addrs.lock().insert(id, addr.clone());
        if known.as_deref() == Some(addr.as_str()) || id < self.me {
            return;
        }
        let t = self.clone();
        tokio::spawn(async move { t.dial(id, addr).await });
    }

    /// Forgets a peer and drops its link.
    pub fn remove_peer(&self, id: NodeId) {
        self.addrs.lock().remove(&id);
        self.links.lock().remove(&id);
    }

    /// True when a link to `peer` is up.
    pub fn is_connected(&self, peer: NodeId) -> bool {
        self.links.lock().contains_key(&peer)
    }

    /// Sends `payload` to `peer` and waits up to `timeout` for its answer.
    pub async fn call(
        &self,
        peer: NodeId,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Bytes, LinkError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let links = self.links.lock();
            let link = links.get(&peer).ok_or(LinkError::NotConnected(peer))?;
            link.pending.lock().insert(id, tx);
            if link.out.send(frame(REQUEST, id, payload)).is_err() {
                link.pending.lock().remove(&id);
                return Err(LinkError::Broken(peer));
            }
        }
        metrics::counter!("ecommesh_cluster_rpc_sent_total").increment(1);
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(LinkError::Broken(peer)),
            Err(_) => {
                if let Some(link) = self.links.lock().get(&peer) {
                    link.pending.lock().remove(&id);
                }
                Err(LinkError::Timeout(peer, timeout))
            }
        }
    }

    /// Sends `payload` to `peer` without waiting: one-way messages to a peer are handled
    /// in the order they were told. Lost if the link is down.
    pub fn tell(&self, peer: NodeId, payload: &[u8]) -> Result<(), LinkError> {
        let links = self.links.lock();
        let link = links.get(&peer).ok_or(LinkError::NotConnected(peer))?;
        link.out
            .send(frame(TELL, 0, payload))
            .map_err(|_| LinkError::Broken(peer))
    }

    /// The peers this node knows.
    pub fn peers(&self) -> Vec<NodeId> {
        self.addrs.lock().keys().copied().collect()
    }

    async fn dial(self: Arc<Self>, peer: NodeId, addr: String) {
        let mut backoff = Duration::from_millis(50);
        loop {
            if self.addrs.lock().get(&peer) != Some(&addr) {
                return; // removed, or dialled at another address now
            }
            // A dropped SYN is retried by the kernel for minutes: give up sooner.
            let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
            match connected {
                Ok(stream) => {
                    backoff = Duration::from_millis(50);
                    let _ = stream.set_nodelay(true);
                    let mut framed = Framed::new(stream, codec());
                    if framed.send(frame(HELLO, self.me, &[])).await.is_ok() {
                        tracing::info!(peer, addr, "link up (dialled)");
                        self.clone().serve(peer, framed).await;
                        tracing::info!(peer, addr, "link down");
                    }
                }
                Err(e) => tracing::debug!(peer, addr, error = %e, "cannot reach peer"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    async fn accept(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, from)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let t = self.clone();
            tokio::spawn(async move {
                let mut framed = Framed::new(stream, codec());
                let hello = tokio::time::timeout(IDLE, framed.next()).await;
                let Ok(Some(Ok(mut hello))) = hello else {
                    return;
                };
                if hello.len() < 9 || hello.get_u8() != HELLO {
                    tracing::warn!(%from, "a connection that did not introduce itself; dropped");
                    return;
                }
                let peer = hello.get_u64();
                tracing::info!(peer, %from, "link up (accepted)");
                t.serve(peer, framed).await;
                tracing::info!(peer, %from, "link down");
            });
        }
    }

    /// Runs one established link until it breaks or goes idle.
    async fn serve(self: Arc<Self>, peer: NodeId, framed: Framed<TcpStream, LengthDelimitedCodec>) {
        let (mut sink, mut stream) = framed.split();
        let (out, mut queue) = mpsc::unbounded_channel::<Bytes>();
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Bytes>>>> = Arc::default();
        let serial = self.serials.fetch_add(1, Ordering::Relaxed);
        self.links.lock().insert(
            peer,
            Link {
                out: out.clone(),
                pending: pending.clone(),
                serial,
            },
        );
        metrics::gauge!("ecommesh_cluster_links").increment(1.0);
        let writer = tokio::spawn(async move {
            loop {
                let first = match tokio::time::timeout(PING, queue.recv()).await {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(_) => frame(PING_FRAME, 0, &[]),
                };
                if sink.feed(first).await.is_err() {
                    break;
                }
                // Everything else already queued goes out with the same flush.
                let mut batched = 1u64;
                while let Ok(more) = queue.try_recv() {
                    batched += 1;
                    if sink.feed(more).await.is_err() {
                        return;
                    }
                }
                metrics::histogram!("ecommesh_cluster_frames_per_write").record(batched as f64);
                if sink.flush().await.is_err() {
                    break;
                }
            }
        });
        loop {
            let next = match tokio::time::timeout(IDLE, stream.next()).await {
                Ok(Some(Ok(f))) => f,
                Ok(Some(Err(e))) => {
                    tracing::warn!(peer, error = %e, "link read failed");
                    break;
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(peer, "link silent for {IDLE:?}; dropping it");
                    break;
                }
            };
            let mut f = next;
            if f.len() < 9 {
                break;
            }
            let kind = f.get_u8();
            let id = f.get_u64();
            let payload = f.freeze();
            match kind {
                REQUEST => {
                    let (handler, out) = (self.handler.clone(), out.clone());
                    tokio::spawn(async move {
                        let answer = handler(peer, payload).await;
                        let _ = out.send(frame(RESPONSE, id, &answer));
                    });
                }
                TELL => {
                    (self.handler)(peer, payload).await;
                }
                RESPONSE => {
                    if let Some(tx) = pending.lock().remove(&id) {
                        let _ = tx.send(payload);
                    }
                }
                _ => {} // ping
            }
        }
        writer.abort();
        {
            let mut links = self.links.lock();
            if links.get(&peer).is_some_and(|l| l.serial == serial) {
                links.remove(&peer);
            }
        }
        // Callers waiting on this link learn at once that it broke.
        pending.lock().clear();
        metrics::gauge!("ecommesh_cluster_links").decrement(1.0);
    }
}
