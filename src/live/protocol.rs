//! The websocket protocol's messages and topics (documented in `docs/websocket.md`).

use serde::{Deserialize, Serialize};

/// Bumped on an incompatible change; sent in `welcome`.
pub const PROTOCOL_VERSION: u32 = 1;

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Signs the connection in with an access token (again before it expires to extend).
    Auth {
        token: String,
    },
    Subscribe {
        topic: String,
    },
    Unsubscribe {
        topic: String,
    },
    /// An application-level ping, for clients that cannot see websocket pings.
    Ping,
}

/// What the server sends, besides `snapshot` and `update` (rendered by the feed).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<'a> {
    Welcome {
        protocol: u32,
        heartbeat_secs: u64,
        idle_timeout_secs: u64,
        send_buffer: usize,
        topics: &'static [&'static str],
    },
    Authenticated {
        customer_id: &'a str,
        role: &'a str,
        /// Unix seconds; private subscriptions end then unless a new token is sent.
        expires_at: u64,
    },
    Snapshot {
        topic: &'a str,
        seq: u64,
        data: serde_json::Value,
    },
    Unsubscribed {
        topic: &'a str,
    },
    Error {
        code: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        topic: Option<&'a str>,
    },
    Pong,
}

impl ServerMessage<'_> {
    pub fn render(&self) -> bytestring::ByteString {
        serde_json::to_string(self)
            .expect("server messages always serialize")
            .into()
    }
}

/// The topics, as listed in `welcome`.
pub const TOPICS: &[&str] = &[
    "product:{id}",
    "catalog",
    "cart",
    "orders",
    "admin:sales",
    "admin:stock",
];

/// A topic a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    Product(String),
    Catalog,
    /// The caller's own cart.
    Cart,
    /// The caller's own orders.
    Orders,
    AdminSales,
    AdminStock,
}

/// Who may subscribe to a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    SignedIn,
    Admin,
}

impl Topic {
    pub fn parse(s: &str) -> Result<Topic, String> {
        Ok(match s {
            "catalog" => Topic::Catalog,
            "cart" => Topic::Cart,
            "orders" => Topic::Orders,
            "admin:sales" => Topic::AdminSales,
            "admin:stock" => Topic::AdminStock,
            _ => match s.strip_prefix("product:") {
                Some(id) => {
                    crate::views::check_id("topic", id).map_err(|_| {
                        format!("{s:?}: a product id is 1 to 128 letters, digits, '-', '_' or '.'")
                    })?;
                    Topic::Product(id.to_owned())
                }
                None => {
                    return Err(format!(
                        "unknown topic {s:?}; the topics are {}",
                        TOPICS.join(", ")
                    ))
                }
            },
        })
    }

    pub fn access(&self) -> Access {
        match self {
            Topic::Product(_) | Topic::Catalog => Access::Public,
            Topic::Cart | Topic::Orders => Access::SignedIn,
            Topic::AdminSales | Topic::AdminStock => Access::Admin,
        }
    }

    /// The hub's channel: per customer for private topics, so nobody sees another's.
    pub fn channel(&self, customer: Option<&str>) -> String {
        match self {
            Topic::Product(id) => product_channel(id),
            Topic::Catalog => "catalog".into(),
            Topic::Cart => cart_channel(customer.unwrap_or_default()),
            Topic::Orders => orders_channel(customer.unwrap_or_default()),
            Topic::AdminSales => "admin:sales".into(),
            Topic::AdminStock => "admin:stock".into(),
        }
    }
}

pub fn product_channel(id: &str) -> String {
    format!("product:{id}")
}

pub fn cart_channel(customer: &str) -> String {
    format!("cart:{customer}")
}

pub fn orders_channel(customer: &str) -> String {
    format!("orders:{customer}")
}

/// An `update` message: the entity's state after a change, with its sequence numbers.
#[derive(Debug, Serialize)]
pub struct Update<'a, T: Serialize> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub topic: &'a str,
    /// What happened, e.g. `Reserved`, `paid`, `low_stock`, `tick`.
    pub event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    pub seq: u64,
    /// The entity's sequence number before this change: a client whose last `seq` for
    /// this entity differs has missed something and re-subscribes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_seq: Option<u64>,
    pub data: T,
}

impl<T: Serialize> Update<'_, T> {
    pub fn render(&self) -> bytestring::ByteString {
        serde_json::to_string(self)
            .expect("updates always serialize")
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_and_say_who_may_subscribe() {
        assert_eq!(
            Topic::parse("product:p-1").unwrap(),
            Topic::Product("p-1".into())
        );
        assert_eq!(Topic::parse("cart").unwrap().access(), Access::SignedIn);
        assert_eq!(Topic::parse("admin:sales").unwrap().access(), Access::Admin);
        assert!(Topic::parse("product:").is_err());
        assert!(Topic::parse("product:a/b").is_err());
        let e = Topic::parse("prices").unwrap_err();
        assert!(
            e.contains("unknown topic") && e.contains("admin:stock"),
            "{e}"
        );
        assert_eq!(Topic::Cart.channel(Some("c-1")), "cart:c-1");
    }

    #[test]
    fn client_messages_are_tagged_json() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"subscribe","topic":"catalog"}"#).unwrap();
        assert!(matches!(m, ClientMessage::Subscribe { topic } if topic == "catalog"));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"shout"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"auth"}"#).is_err());
    }
}
