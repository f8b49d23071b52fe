//! One websocket connection: its subscriptions, its bounded send buffer, heartbeat and
//! idle timeout.
//!
//! One task per connection reads the client's messages and its subscriptions' frames,
//! queues what is to be sent in a bounded buffer, and writes the buffer's head to the
//! socket whenever the socket can take it. Nothing ever waits for a client: one that reads
//! too slowly fills its own buffer and is closed, and nobody else notices. (A separate
//! writer task would cost one more task wake-up and channel hop per message.)

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Session};
use bytestring::ByteString;
use futures_util::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamMap;

use super::hub::Frame;
use super::limits::ClientSlot;
use super::protocol::{Access, ClientMessage, ServerMessage, Topic, PROTOCOL_VERSION, TOPICS};
use crate::app::AppState;
use crate::auth::extract::Caller;

/// How long a closing socket may take to take its close frame before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Serves one upgraded websocket until it closes, on a task of its own; `slot` is its
/// share of its client address's allowance, given back when it ends.
pub fn spawn(
    node: web::Data<AppState>,
    slot: ClientSlot,
    session: Session,
    stream: actix_ws::AggregatedMessageStream,
) {
    actix_web::rt::spawn(async move {
        metrics::gauge!("ecommesh_ws_connections").increment(1.0);
        Connection::new(node, slot).run(session, stream).await;
        metrics::gauge!("ecommesh_ws_connections").decrement(1.0);
    });
}

#[derive(Clone)]
enum Out {
    Text(ByteString),
    Ping,
    Pong(web::Bytes),
}

struct Subscription {
    topic: Topic,
    /// Per entity, the sequence number its snapshot showed: frames up to it are skipped.
    shown: HashMap<Box<str>, u64>,
}

struct Connection {
    node: web::Data<AppState>,
    caller: Option<(Caller, u64)>,
    subs: HashMap<String, Subscription>,
    frames: StreamMap<String, BroadcastStream<Arc<Frame>>>,
    /// The send buffer: at most `send_buffer` messages.
    out: VecDeque<Out>,
    /// Set when the send buffer overflowed: the connection is closed as a slow consumer.
    overflowed: bool,
    /// This socket's share of its client address's allowance.
    slot: ClientSlot,
    /// Subscribe attempts refused so far; past the limit the socket is closed.
    refused: usize,
}

fn reason(code: CloseCode, text: &str) -> CloseReason {
    CloseReason {
        code,
        description: Some(text.to_owned()),
    }
}

impl Connection {
    fn new(node: web::Data<AppState>, slot: ClientSlot) -> Self {
        Connection {
            node,
            caller: None,
            subs: HashMap::new(),
            frames: StreamMap::new(),
            out: VecDeque::new(),
            overflowed: false,
            slot,
            refused: 0,
        }
    }

    /// Answers a refused subscribe attempt; each one counts toward the socket's limit.
    fn refuse(&mut self, code: &'static str, message: String, topic: &str) {
        self.refused += 1;
        metrics::counter!("ecommesh_ws_subscriptions_refused_total").increment(1);
        self.error(code, message, Some(topic));
    }

    /// True once the client has had more subscribe attempts refused than it may.
    fn abusive(&self) -> bool {
        self.refused > self.node.live_settings.max_failed_subscriptions
    }

    /// Ends the subscription on `channel`, giving back what it held.
    fn drop_subscription(&mut self, channel: &str) -> bool {
        if self.subs.remove(channel).is_none() {
            return false;
        }
        self.frames.remove(channel);
        self.slot.give_back_subscription();
        self.node.live.hub.release(channel);
        true
    }

    /// Queues a message; a full buffer marks the client as too slow.
    fn send(&mut self, out: Out) {
        if self.out.len() >= self.node.live_settings.send_buffer {
            self.overflowed = true;
        } else {
            self.out.push_back(out);
        }
    }

    fn reply(&mut self, msg: ServerMessage<'_>) {
        self.send(Out::Text(msg.render()));
    }

    fn error(&mut self, code: &'static str, message: String, topic: Option<&str>) {
        self.reply(ServerMessage::Error {
            code,
            message,
            topic,
        });
    }

    async fn run(mut self, mut session: Session, mut stream: actix_ws::AggregatedMessageStream) {
        let settings = self.node.live_settings;
        self.reply(ServerMessage::Welcome {
            protocol: PROTOCOL_VERSION,
            heartbeat_secs: settings.heartbeat.as_secs(),
            idle_timeout_secs: settings.idle_timeout.as_secs(),
            send_buffer: settings.send_buffer,
            topics: TOPICS,
        });
        let mut heartbeat = actix_web::rt::time::interval(settings.heartbeat);
        heartbeat.tick().await;
        let mut last_heard = Instant::now();
        let mut client_closed = false;
        let close = loop {
            tokio::select! {
                msg = stream.next() => {
                    last_heard = Instant::now();
                    match msg {
                        None => break None,
                        Some(Ok(AggregatedMessage::Text(text))) => self.on_text(&text).await,
                        Some(Ok(AggregatedMessage::Binary(_))) => self.error(
                            "malformed",
                            "binary messages are not understood; send JSON text".into(),
                            None,
                        ),
                        Some(Ok(AggregatedMessage::Ping(b))) => self.send(Out::Pong(b)),
                        Some(Ok(AggregatedMessage::Pong(_))) => {}
                        Some(Ok(AggregatedMessage::Close(_))) => {
                            client_closed = true;
                            break Some(reason(CloseCode::Normal, "goodbye"))
                        }
                        Some(Err(e)) => {
                            break Some(reason(CloseCode::Protocol, &format!("protocol error: {e}")))
                        }
                    }
                }
                Some((channel, frame)) = self.frames.next(), if !self.frames.is_empty() => {
                    match frame {
                        Ok(frame) => self.forward(&channel, frame),
                        Err(_lagged) => self.overflowed = true,
                    }
                }
                // Cancel-safe: a write that loses the race is not sent and is retried.
                sent = write(&mut session, self.out.front().cloned()), if !self.out.is_empty() => {
                    if sent.is_err() {
                        break None; // the socket is gone
                    }
                    self.out.pop_front();
                }
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > settings.idle_timeout {
                        break Some(reason(CloseCode::Normal, "idle timeout: nothing heard from the client"));
                    }
                    self.expire().await;
                    self.send(Out::Ping);
                }
            }
            if self.overflowed {
                break Some(self.slow_consumer());
            }
            if self.abusive() {
                metrics::counter!("ecommesh_ws_refused_total", "reason" => "failed_subscriptions")
                    .increment(1);
                break Some(reason(
                    CloseCode::Policy,
                    &format!(
                        "more than {} subscribe attempts refused; fix the topics and reconnect",
                        settings.max_failed_subscriptions
                    ),
                ));
            }
        };
        drop(self.frames);
        for channel in self.subs.keys() {
            self.node.live.hub.release(channel);
        }
        if self.overflowed {
            // Whatever is queued is dropped; the close frame goes after what the socket
            // already holds, if the client reads within the grace period.
            metrics::counter!("ecommesh_ws_slow_consumer_closes_total").increment(1);
            self.out.clear();
        }
        let out = std::mem::take(&mut self.out);
        let closing = close.is_some() && !client_closed;
        let _ = tokio::time::timeout(CLOSE_GRACE, async move {
            for msg in out {
                write(&mut session, Some(msg)).await?;
            }
            session.close(close).await?;
            // The closing handshake: keep reading (and so keep the connection) until the
            // client answers with its own close, so that it gets to read ours.
            if closing {
                loop {
                    match stream.next().await {
                        Some(Ok(AggregatedMessage::Close(_))) | Some(Err(_)) | None => break,
                        Some(Ok(_)) => {}
                    }
                }
            }
            Ok::<(), actix_ws::Closed>(())
        })
        .await;
    }

    fn slow_consumer(&self) -> CloseReason {
        reason(
            CloseCode::Policy,
            &format!(
                "slow consumer: more than {} messages waiting; reconnect and re-subscribe",
                self.node.live_settings.send_buffer
            ),
        )
    }

    /// Sends a frame on, unless the subscriber's snapshot already showed it.
    fn forward(&mut self, channel: &str, frame: Arc<Frame>) {
        if let (Some(sub), Some(entity)) = (self.subs.get_mut(channel), &frame.entity) {
            if let Some(&shown) = sub.shown.get(entity) {
                if frame.seq <= shown {
                    return;
                }
                sub.shown.remove(entity);
            }
        }
        self.send(Out::Text(frame.text.clone()));
    }

    async fn on_text(&mut self, text: &str) {
        let msg = match serde_json::from_str::<ClientMessage>(text) {
            Ok(m) => m,
            Err(e) => {
                return self.error(
                    "malformed",
                    format!("not a valid message: {e}; expected e.g. {{\"type\":\"subscribe\",\"topic\":\"catalog\"}}"),
                    None,
                )
            }
        };
        match msg {
            ClientMessage::Auth { token } => self.auth(&token).await,
            ClientMessage::Subscribe { topic } => self.subscribe(&topic).await,
            ClientMessage::Unsubscribe { topic } => self.unsubscribe(&topic),
            ClientMessage::Ping => self.reply(ServerMessage::Pong),
        }
    }

    async fn auth(&mut self, token: &str) {
        let claims = match self.node.auth.tokens.verify(token.trim(), "access") {
            Ok(c) => c,
            Err(e) => {
                return self.error("unauthorized", format!("invalid access token: {e}"), None)
            }
        };
        match crate::auth::extract::session_stands(&self.node, &claims.fam, &claims.sub).await {
            Ok(true) => {}
            Ok(false) => {
                return self.error(
                    "unauthorized",
                    "this access token's session was ended (logout or revocation)".into(),
                    None,
                )
            }
            Err(e) => return self.error(e.code, e.detail, None),
        }
        if let Some((before, _)) = &self.caller {
            if before.id != claims.sub {
                return self.error(
                    "forbidden",
                    "this connection is signed in as someone else; open a new one".into(),
                    None,
                );
            }
        }
        let exp = claims.exp;
        let Some(caller) = Caller::of(claims) else {
            self.error(
                "unauthorized",
                "this token names an unknown role".into(),
                None,
            );
            return;
        };
        self.reply(ServerMessage::Authenticated {
            customer_id: &caller.id,
            role: caller.role.as_str(),
            expires_at: exp,
        });
        self.caller = Some((caller, exp));
    }

    /// Ends private subscriptions once the token they were made with has expired, or its
    /// session was ended.
    async fn expire(&mut self) {
        let Some((caller, exp)) = &self.caller else {
            return;
        };
        // The session's standing as the gate knows it, read again when the gate's
        // verdict is stale (on a cluster node that does not lead the session's shard);
        // an unreadable session keeps the subscriptions until the next heartbeat.
        let revoked =
            !crate::auth::extract::session_stands(&self.node, &caller.session, &caller.id)
                .await
                .unwrap_or(true);
        if *exp > ecommesh_persistence::now_ms() / 1000 && !revoked {
            return;
        }
        self.caller = None;
        let private: Vec<String> = self
            .subs
            .iter()
            .filter(|(_, s)| s.topic.access() != Access::Public)
            .map(|(c, _)| c.clone())
            .collect();
        for channel in private {
            self.drop_subscription(&channel);
        }
        if revoked {
            self.error(
                "session_ended",
                "the session of this connection's token was ended (logout or revocation): private subscriptions ended".into(),
                None,
            );
        } else {
            self.error(
                "token_expired",
                "the access token expired: private subscriptions ended; send a fresh token and subscribe again".into(),
                None,
            );
        }
    }

    async fn subscribe(&mut self, name: &str) {
        let topic = match Topic::parse(name) {
            Ok(t) => t,
            Err(e) => return self.refuse("unknown_topic", e, name),
        };
        let caller = self.caller.as_ref().map(|(c, _)| c.clone());
        match (topic.access(), &caller) {
            (Access::SignedIn | Access::Admin, None) => {
                return self.refuse(
                    "unauthorized",
                    format!("{name} needs a signed-in connection: send {{\"type\":\"auth\",\"token\":\"<access token>\"}} first"),
                    name,
                )
            }
            (Access::Admin, Some(c)) if !c.is_admin() => {
                return self.refuse("forbidden", format!("{name} needs the admin role"), name)
            }
            _ => {}
        }
        let channel = topic.channel(caller.as_ref().map(|c| c.id.as_str()));
        let settings = self.node.live_settings;
        let again = self.subs.contains_key(&channel);
        if !again && self.subs.len() >= settings.max_subscriptions {
            return self.refuse(
                "too_many_subscriptions",
                format!(
                    "at most {} topics per connection; unsubscribe from one first",
                    settings.max_subscriptions
                ),
                name,
            );
        }
        // Only a topic that exists gets a channel: a made-up product id costs nothing
        // but this check (and counts as a refused attempt).
        if let Topic::Product(id) = &topic {
            if let Err(e) = self.product_exists(id).await {
                return self.refuse(e.code, e.detail, name);
            }
        }
        if !again
            && !self
                .slot
                .take_subscription(settings.max_subscriptions_per_ip)
        {
            return self.refuse(
                "too_many_subscriptions",
                format!(
                    "at most {} subscriptions at once from one address",
                    settings.max_subscriptions_per_ip
                ),
                name,
            );
        }
        // Listen first, then read the state: nothing that happens in between is missed,
        // and frames the snapshot already covers are skipped by sequence number.
        let rx = self.node.live.hub.subscribe(&channel);
        let snapshot =
            super::snapshot::of(&self.node, &topic, caller.as_ref().map(|c| c.id.as_str())).await;
        match snapshot {
            Ok(snap) => {
                self.frames
                    .insert(channel.clone(), BroadcastStream::new(rx));
                self.subs.insert(
                    channel,
                    Subscription {
                        topic,
                        shown: snap.shown,
                    },
                );
                self.reply(ServerMessage::Snapshot {
                    topic: name,
                    seq: snap.seq,
                    data: snap.data,
                });
            }
            Err(e) => {
                if !again {
                    drop(rx);
                    self.slot.give_back_subscription();
                    self.node.live.hub.release(&channel);
                }
                self.refuse(e.code, e.detail, name)
            }
        }
    }

    /// Whether product `id` exists: the catalog answers for every product it has
    /// projected; one created a moment ago is read from its shard.
    async fn product_exists(&self, id: &str) -> Result<(), crate::http::errors::ApiError> {
        if self.node.catalog.read().get(id).is_some() {
            return Ok(());
        }
        let reply = self.node.shop.product(id).await?;
        if reply.state.details.is_none() {
            return Err(crate::http::errors::ApiError::not_found(format!(
                "product {id} does not exist"
            )));
        }
        Ok(())
    }

    fn unsubscribe(&mut self, name: &str) {
        let topic = match Topic::parse(name) {
            Ok(t) => t,
            Err(e) => return self.error("unknown_topic", e, Some(name)),
        };
        let channel = topic.channel(self.caller.as_ref().map(|(c, _)| c.id.as_str()));
        if !self.drop_subscription(&channel) {
            return self.error(
                "not_subscribed",
                format!("not subscribed to {name}"),
                Some(name),
            );
        }
        self.reply(ServerMessage::Unsubscribed { topic: name });
    }
}

/// Writes one message to the socket.
async fn write(session: &mut Session, msg: Option<Out>) -> Result<(), actix_ws::Closed> {
    match msg {
        Some(Out::Text(t)) => session.text(t).await,
        Some(Out::Ping) => session.ping(b"").await,
        Some(Out::Pong(b)) => session.pong(&b).await,
        None => Ok(()),
    }
}
