//! A websocket client of the node's live-update protocol, for tests.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use super::Node;

/// One websocket connection, with the messages read but not yet asked for.
pub struct Ws {
    pub ws: WebSocket<MaybeTlsStream<TcpStream>>,
    /// Messages read but not yet asked for.
    pub seen: Vec<Value>,
}

impl Ws {
    pub fn connect(node: &Node) -> Ws {
        Ws::connect_to(&node.base)
    }

    /// Connects to the node serving at `base` (`http://host:port`).
    pub fn connect_to(base: &str) -> Ws {
        let url = format!("{base}/api/v1/ws").replacen("http://", "ws://", 1);
        let (ws, _) = tungstenite::connect(url).expect("websocket handshake");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
        }
        let mut ws = Ws {
            ws,
            seen: Vec::new(),
        };
        let hello = ws.expect(|m| m["type"] == "welcome");
        assert_eq!(hello["protocol"], 1);
        ws
    }

    pub fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).unwrap();
    }

    /// Reads one message if one arrives within the read timeout.
    pub fn poll(&mut self) -> Option<Message> {
        match self.ws.read() {
            Ok(m) => Some(m),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("websocket failed: {e}; seen: {:?}", self.seen),
        }
    }

    /// Reads a message only if one is already there.
    pub fn poll_now(&mut self) -> Option<Message> {
        self.set_timeout(Some(Duration::from_millis(1)));
        let m = self.poll();
        self.set_timeout(Some(Duration::from_millis(100)));
        m
    }

    pub fn set_timeout(&mut self, t: Option<Duration>) {
        if let MaybeTlsStream::Plain(s) = self.ws.get_ref() {
            s.set_read_timeout(t).unwrap();
        }
    }

    /// The first message (seen before or arriving within 5 s) that `pred` accepts.
    pub fn expect(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        self.expect_within(Duration::from_secs(5), pred)
    }

    pub fn expect_within(&mut self, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(Message::Text(t)) = self.poll() {
                let v: Value = serde_json::from_str(&t).expect("server sends JSON");
                if pred(&v) {
                    return v;
                }
                self.seen.push(v);
            }
        }
        panic!(
            "no matching message within {limit:?}; seen: {:#?}",
            self.seen
        );
    }

    /// Reads the raw socket to its end and returns the server's close frame (code and
    /// reason). Raw, because a websocket library answers the pings it meets on the way,
    /// and a write to a connection the server already closed fails before the close
    /// frame is returned. Server frames are unmasked: opcode byte, length, payload.
    pub fn close_frame(&mut self) -> (u16, String) {
        use std::io::Read;
        let MaybeTlsStream::Plain(tcp) = self.ws.get_mut() else {
            panic!("plain TCP expected")
        };
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut raw = Vec::new();
        let _ = tcp.read_to_end(&mut raw); // until the server closes, or the timeout
        let mut at = 0;
        while at + 2 <= raw.len() {
            let opcode = raw[at] & 0x0f;
            let (len, header) = match raw[at + 1] & 0x7f {
                126 => (u16::from_be_bytes([raw[at + 2], raw[at + 3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(raw[at + 2..at + 10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            let payload = &raw[(at + header).min(raw.len())..(at + header + len).min(raw.len())];
            if opcode == 0x8 && payload.len() >= 2 {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                return (code, String::from_utf8_lossy(&payload[2..]).into_owned());
            }
            at += header + len;
        }
        panic!("no close frame in {} bytes", raw.len());
    }

    pub fn subscribe(&mut self, topic: &str) -> Value {
        self.send(json!({"type": "subscribe", "topic": topic}));
        let t = topic.to_owned();
        self.expect(move |m| {
            m["topic"] == t.as_str() && (m["type"] == "snapshot" || m["type"] == "error")
        })
    }
}
