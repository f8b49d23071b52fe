//! The REST calls the suite makes, and how their answers map onto Jepsen's outcomes.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::docker::Node;

/// What became of one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A 2xx and its body.
    Ok(Value),
    /// The server refused it: it certainly did not happen. The problem's `code`.
    Refused(StatusCode, String, Value),
    /// Nobody knows: a timeout, a broken connection, a 5xx (which this server uses for
    /// "may or may not have been made").
    Unknown(String),
    /// The connection was never made: the request certainly did not reach the server.
    NotSent(String),
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
}

/// Longer than the server's own wait for a leader (3 s), so its 503 arrives first.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(6);

impl Api {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Api {
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .connect_timeout(Duration::from_secs(2))
                .pool_idle_timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    pub async fn call(
        &self,
        node: &Node,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", node.url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Answer::NotSent(describe(&e)),
            Err(e) => return Answer::Unknown(describe(&e)),
        };
        let status = resp.status();
        let body: Value = match resp.bytes().await {
            Ok(b) if b.is_empty() => Value::Null,
            Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
            Err(e) => return Answer::Unknown(describe(&e)),
        };
        let code = body
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if status.is_success() {
            Answer::Ok(body)
        } else if status.is_client_error() {
            Answer::Refused(status, code, body)
        } else {
            Answer::Unknown(format!("{} {code}", status.as_u16()))
        }
    }

    /// Whether the node answers `/readyz` with 200.
    pub async fn ready(&self, node: &Node) -> bool {
        match self.http.get(format!("{}/readyz", node.url())).send().await {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        }
    }

    pub async fn get(&self, node: &Node, path: &str, token: Option<&str>) -> Answer {
        self.call(node, Method::GET, path, token, None, None).await
    }

    pub async fn post(&self, node: &Node, path: &str, token: Option<&str>, body: &Value) -> Answer {
        self.call(node, Method::POST, path, token, Some(body), None)
            .await
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_connect() {
        if e.is_timeout() {
            "connect timed out".into()
        } else {
            "connect failed".into()
        }
    } else if e.is_timeout() {
        "timeout".into()
    } else {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(inner) = src {
            s = format!("{s}: {inner}");
            src = inner.source();
        }
        s
    }
}
