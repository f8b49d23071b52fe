//! Attacks on a public shop, each against the real binary, each named for the attack it
//! tries (issue 19). Every one of them succeeded against the build before the hardening.

mod common;

use std::time::Duration;

use common::ws::Ws;
use common::{client, temp, Node};
use serde_json::json;
use tungstenite::Message;

/// Sends `n` subscriptions to made-up products on a fresh socket and returns the close
/// code the node ends it with (None: still open after the last refusal).
fn subscribe_to_made_up_products(base: &str, tag: &str, n: usize) -> Option<u16> {
    let mut ws = Ws::connect_to(base);
    for i in 0..n {
        let topic = format!("product:made-up-{tag}-{i}");
        if ws
            .ws
            .send(Message::text(
                json!({"type": "subscribe", "topic": topic}).to_string(),
            ))
            .is_err()
        {
            break;
        }
    }
    ws.set_timeout(Some(Duration::from_secs(10)));
    loop {
        match ws.ws.read() {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

#[test]
fn websocket_flood_of_made_up_topics_is_cut_off_and_memory_stays_flat() {
    let (_dir, data) = temp();
    let node = Node::start(&data, &["--no-demo"]);
    let http = client();
    let pid = node.child.id();
    // Warm up the paths the attack takes, then measure.
    assert_eq!(
        subscribe_to_made_up_products(&node.base, "warm", 33),
        Some(1008)
    );
    let before = common::rss_mib(pid);

    // 8 attackers at once, each reconnecting 25 times and asking for 33 made-up topics
    // each time (32 refusals are allowed, the 33rd closes the socket): 6,600 topics. The
    // build before this one made a 128 KiB channel for each (~825 MiB).
    let attackers: Vec<_> = (0..8)
        .map(|a| {
            let base = node.base.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|round| subscribe_to_made_up_products(&base, &format!("{a}-{round}"), 33))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for a in attackers {
        for code in a.join().unwrap() {
            assert_eq!(
                code,
                Some(1008),
                "a socket asking for made-up topics is closed with 1008"
            );
        }
    }
    let after = common::rss_mib(pid);
    assert!(
        after - before < 48.0,
        "memory grew from {before:.1} MiB to {after:.1} MiB under the flood"
    );
    assert_eq!(
        common::metric(&http, &node, "ecommesh_ws_topics").unwrap_or(0.0),
        0.0,
        "no channel exists for a topic that does not exist"
    );

    // A real product still subscribes, and the socket that does so is not hurt by
    // a few refusals.
    let mut ws = Ws::connect(&node);
    let refused = ws.subscribe("product:nope");
    assert_eq!(refused["code"], "not_found");
    ws.send(json!({"type": "subscribe", "topic": "catalog"}));
    ws.expect(|m| m["type"] == "snapshot" && m["topic"] == "catalog");
}

#[test]
fn websocket_connection_flood_from_one_address_is_refused() {
    let (_dir, data) = temp();
    let node = Node::start(&data, &["--no-demo", "--ws-max-connections-per-ip", "4"]);
    let open: Vec<Ws> = (0..4).map(|_| Ws::connect(&node)).collect();
    let url = node.url("/api/v1/ws").replacen("http://", "ws://", 1);
    match tungstenite::connect(&url) {
        Err(tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 429);
            let body: serde_json::Value =
                serde_json::from_slice(r.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["code"], "rate_limited");
        }
        other => panic!("a fifth socket from one address must get 429, got {other:?}"),
    }
    // Closing one gives its place back.
    drop(open);
    let mut again = None;
    for _ in 0..50 {
        if let Ok(ws) = tungstenite::connect(&url) {
            again = Some(ws);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(again.is_some(), "a closed socket's place is given back");
}
