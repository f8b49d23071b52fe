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
//! A link proves membership first ([`super::handshake`]): until the peer has proven that
//! it holds the cluster secret, at most [`MAX_HANDSHAKE_FRAME`] bytes are read from it and
//! nothing is written to it (an acceptor) or nothing but the hello (a dialer). After that,
//! frames are length-delimited and sealed: `seal([kind u8][id u64][payload])`, each kind
//! bounded ([`max_payload`]). A frame that fails to open or breaks its kind's bound closes
//! the link.

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

use super::handshake::{
    ClusterSecret, Hello, ReplayGuard, SessionKeys, Welcome, MAX_HANDSHAKE_FRAME, SEAL_OVERHEAD,
};
use super::types::NodeId;

/// A link that hears nothing for this long is considered dead.
pub const IDLE: Duration = Duration::from_secs(5);
/// How long one attempt to dial a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How often an otherwise quiet link is pinged.
pub const PING: Duration = Duration::from_secs(1);
/// Largest payload: a chunk of a snapshot, or a batch of entries.
const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
/// Largest one-way payload: one live change (a product's state with its holds).
const MAX_TELL: usize = 4 * 1024 * 1024;
/// How long a peer has to prove itself.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections allowed to be proving themselves at once; more are closed at once, so
/// strangers cannot hold this node's tasks and sockets.
const MAX_HANDSHAKES: usize = 32;
/// Of those, from one source address.
const MAX_HANDSHAKES_PER_SOURCE: usize = 4;
/// How long an accepted connection has to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(1);
/// kind and id, before the payload.
const HEADER: usize = 9;

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
    #[error("a message of {0} bytes is over the link's bound")]
    TooLarge(usize),
}

/// The most payload a frame of `kind` may carry (None: no such kind).
fn max_payload(kind: u8) -> Option<usize> {
    match kind {
        REQUEST | RESPONSE => Some(MAX_PAYLOAD),
        TELL => Some(MAX_TELL),
        PING_FRAME => Some(0),
        _ => None,
    }
}

struct Link {
    out: mpsc::UnboundedSender<BytesMut>,
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
    secret: ClusterSecret,
    replay: ReplayGuard,
    handshakes: Arc<tokio::sync::Semaphore>,
    /// Handshakes under way per source address.
    handshaking: Arc<Mutex<HashMap<std::net::IpAddr, usize>>>,
}

/// One handshake's place among its source address's.
struct HandshakeSlot {
    all: Arc<Mutex<HashMap<std::net::IpAddr, usize>>>,
    source: std::net::IpAddr,
}

impl HandshakeSlot {
    fn take(
        all: &Arc<Mutex<HashMap<std::net::IpAddr, usize>>>,
        source: std::net::IpAddr,
    ) -> Option<Self> {
        let mut map = all.lock();
        let n = map.entry(source).or_default();
        if *n >= MAX_HANDSHAKES_PER_SOURCE {
            return None;
        }
        *n += 1;
        Some(HandshakeSlot {
            all: all.clone(),
            source,
        })
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut map = self.all.lock();
        if let Some(n) = map.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.source);
            }
        }
    }
}

/// A frame before sealing, with room for its tag.
fn frame(kind: u8, id: u64, payload: &[u8]) -> BytesMut {
    let mut b = BytesMut::with_capacity(HEADER + payload.len() + SEAL_OVERHEAD);
    b.put_u8(kind);
    b.put_u64(id);
    b.put_slice(payload);
    b
}

/// The framing of a link before its peer has proven itself.
fn handshake_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_HANDSHAKE_FRAME)
        .new_codec()
}

type Wire = Framed<TcpStream, LengthDelimitedCodec>;

fn refused(from: &dyn std::fmt::Display, e: &super::handshake::Refused) {
    tracing::warn!(peer = %from, reason = %e, "peer link refused");
    metrics::counter!("ecommesh_cluster_links_refused_total", "reason" => e.reason()).increment(1);
}

impl Transport {
    /// Starts accepting peers on `listener` and dialling every peer in `addrs` with a
    /// higher id than `me`. Must run inside a tokio runtime.
    pub fn start(
        me: NodeId,
        listener: TcpListener,
        addrs: HashMap<NodeId, String>,
        handler: Handler,
        secret: ClusterSecret,
    ) -> Arc<Self> {
        let t = Arc::new(Transport {
            me,
            links: Mutex::new(HashMap::new()),
            // Known before the listener accepts anyone: a peer is checked against them.
            addrs: Mutex::new(
                addrs
                    .iter()
                    .filter(|(id, _)| **id != me)
                    .map(|(id, a)| (*id, a.clone()))
                    .collect(),
            ),
            handler,
            next_id: AtomicU64::new(1),
            serials: AtomicU64::new(1),
            secret,
            replay: ReplayGuard::default(),
            handshakes: Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES)),
            handshaking: Arc::default(),
        });
        let accepting = t.clone();
        tokio::spawn(async move { accepting.accept(listener).await });
        for (id, addr) in addrs {
            if id > me {
                let t = t.clone();
                tokio::spawn(async move { t.dial(id, addr).await });
            }
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
            if payload.len() > MAX_PAYLOAD {
                link.pending.lock().remove(&id);
                return Err(LinkError::TooLarge(payload.len()));
            }
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
        if payload.len() > MAX_TELL {
            return Err(LinkError::TooLarge(payload.len()));
        }
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
                    match self.introduce(peer, stream).await {
                        Ok((framed, keys)) => {
                            tracing::info!(peer, addr, "link up (dialled)");
                            self.clone().serve(peer, framed, keys).await;
                            tracing::info!(peer, addr, "link down");
                        }
                        Err(Some(e)) => refused(&addr, &e),
                        Err(None) => tracing::debug!(peer, addr, "peer closed the handshake"),
                    }
                }
                Err(e) => tracing::debug!(peer, addr, error = %e, "cannot reach peer"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// The dialer's side of the handshake: hello, then the peer's welcome must prove it
    /// holds the secret. `Err(None)`: the peer closed or timed out.
    async fn introduce(
        &self,
        peer: NodeId,
        stream: TcpStream,
    ) -> Result<(Wire, SessionKeys), Option<super::handshake::Refused>> {
        let mut framed = Framed::new(stream, handshake_codec());
        let hello = Hello::sealed(&self.secret, self.me, peer);
        framed
            .send(Bytes::from(hello.clone()))
            .await
            .map_err(|_| None)?;
        let welcome = match tokio::time::timeout(HANDSHAKE_TIMEOUT, framed.next()).await {
            Ok(Some(Ok(w))) => w,
            _ => return Err(None),
        };
        Welcome::check(&welcome, &self.secret, &hello).map_err(Some)?;
        let keys = SessionKeys::derive(&self.secret, &hello, &welcome, true);
        Ok((framed, keys))
    }

    async fn accept(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, from)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            // One source address may hold a few handshakes at once, all sources together
            // MAX_HANDSHAKES: idle strangers cannot keep the node's peers out.
            let source = from.ip().to_canonical();
            let Some(per_source) = HandshakeSlot::take(&self.handshaking, source) else {
                metrics::counter!("ecommesh_cluster_links_refused_total", "reason" => "busy")
                    .increment(1);
                continue;
            };
            let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
                tracing::warn!(%from, "too many peer handshakes at once; connection closed");
                metrics::counter!("ecommesh_cluster_links_refused_total", "reason" => "busy")
                    .increment(1);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let t = self.clone();
            tokio::spawn(async move {
                let proven = tokio::time::timeout(HANDSHAKE_TIMEOUT, t.welcome(stream)).await;
                drop((permit, per_source));
                match proven {
                    Ok(Ok((peer, framed, keys))) => {
                        tracing::info!(peer, %from, "link up (accepted)");
                        t.serve(peer, framed, keys).await;
                        tracing::info!(peer, %from, "link down");
                    }
                    Ok(Err(Some(e))) => refused(&from, &e),
                    Ok(Err(None)) => tracing::debug!(%from, "peer closed the handshake"),
                    Err(_) => tracing::warn!(%from, "peer handshake timed out"),
                }
            });
        }
    }

    /// The acceptor's side: the hello must prove itself before anything is written back;
    /// the link counts only once the dialer's first sealed frame opened.
    async fn welcome(
        &self,
        stream: TcpStream,
    ) -> Result<(NodeId, Wire, SessionKeys), Option<super::handshake::Refused>> {
        let mut framed = Framed::new(stream, handshake_codec());
        // A peer says hello at once; a connection that stays silent is let go soon.
        let Ok(hello) = tokio::time::timeout(HELLO_TIMEOUT, framed.next()).await else {
            return Err(None);
        };
        let hello = match hello {
            Some(Ok(h)) => h,
            // A frame over the handshake's bound is an error of the codec: refused.
            Some(Err(_)) => {
                return Err(Some(super::handshake::Refused::Malformed(
                    "frame too large before authentication",
                )))
            }
            None => return Err(None),
        };
        let is_member = |id| self.addrs.lock().contains_key(&id);
        let peer = Hello::check(&hello, &self.secret, self.me, is_member, &self.replay)
            .map_err(Some)?
            .from;
        let welcome = Welcome::sealed(&self.secret, &hello);
        framed
            .send(Bytes::from(welcome.clone()))
            .await
            .map_err(|_| None)?;
        let mut keys = SessionKeys::derive(&self.secret, &hello, &welcome, false);
        let mut first = match framed.next().await {
            Some(Ok(f)) => f,
            _ => return Err(None),
        };
        keys.receive.open(&mut first).map_err(Some)?;
        if first.first() != Some(&PING_FRAME) {
            return Err(Some(super::handshake::Refused::Malformed(
                "first frame is not a ping",
            )));
        }
        Ok((peer, framed, keys))
    }

    /// Runs one established link until it breaks or goes idle.
    async fn serve(self: Arc<Self>, peer: NodeId, mut framed: Wire, keys: SessionKeys) {
        framed
            .codec_mut()
            .set_max_frame_length(HEADER + MAX_PAYLOAD + SEAL_OVERHEAD);
        let SessionKeys {
            send: mut sealer,
            receive: mut opener,
        } = keys;
        let (mut sink, mut stream) = framed.split();
        let (out, mut queue) = mpsc::unbounded_channel::<BytesMut>();
        // The dialer's first sealed frame proves it holds the keys; the acceptor waits
        // for it before it counts the link (see `welcome`).
        let _ = out.send(frame(PING_FRAME, 0, &[]));
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
            let mut seal = move |mut f: BytesMut| sealer.seal(&mut f).map(|()| f.freeze());
            loop {
                let first = match tokio::time::timeout(PING, queue.recv()).await {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(_) => frame(PING_FRAME, 0, &[]),
                };
                let Ok(first) = seal(first) else { break };
                if sink.feed(first).await.is_err() {
                    break;
                }
                // Everything else already queued goes out with the same flush.
                let mut batched = 1u64;
                while let Ok(more) = queue.try_recv() {
                    batched += 1;
                    let Ok(more) = seal(more) else { return };
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
            if let Err(e) = opener.open(&mut f) {
                refused(&peer, &e);
                break;
            }
            if f.len() < HEADER {
                break;
            }
            let kind = f.get_u8();
            let id = f.get_u64();
            if max_payload(kind).is_none_or(|max| f.len() > max) {
                tracing::warn!(
                    peer,
                    kind,
                    len = f.len(),
                    "frame over its kind's bound; link dropped"
                );
                break;
            }
            let payload = f.freeze();
            match kind {
                REQUEST => {
                    let (handler, out) = (self.handler.clone(), out.clone());
                    tokio::spawn(async move {
                        let answer = handler(peer, payload).await;
                        if answer.len() <= MAX_PAYLOAD {
                            let _ = out.send(frame(RESPONSE, id, &answer));
                        } else {
                            tracing::error!(
                                peer,
                                len = answer.len(),
                                "an answer over the frame bound was not sent"
                            );
                        }
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
