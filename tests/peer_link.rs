//! The cluster peer port, tried as an attacker on the cluster network would: a real node
//! (node 1 of a two-node membership whose node 2 is this test) must give no link and no
//! frame to anyone who does not prove the cluster secret, refuse a replayed handshake, and
//! read at most 1 KiB before a peer proved itself.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use common::Node;
use ecommesh::cluster::handshake::{ClusterSecret, Hello, SessionKeys, Welcome, HELLO_LEN};

const CLUSTER_SECRET: &str = "peer-link-test-secret-0123456789abcdef";

/// Node 1 of the membership {1, 2}; the test plays node 2 and dials node 1 (node 1's own
/// dialling of node 2, at a port nobody listens on, fails and retries: harmless here).
fn start() -> (Node, String, tempfile::TempDir) {
    let (dir, data) = common::temp();
    let ports = ecommesh::cluster::ports::peer_ports(2).unwrap();
    let rpc = format!("127.0.0.1:{}", ports[0]);
    let peers = format!("1={rpc},2=127.0.0.1:{}", ports[1]);
    let mut cmd = common::command(
        &data,
        &[
            "--no-demo",
            "--node-id",
            "1",
            "--rpc-listen",
            &rpc,
            "--peers",
            &peers,
            "--shards",
            "4",
            "--replication-factor",
            "1",
        ],
    );
    cmd.env(
        "ECOMMESH_JWT_SECRET",
        "peer-link-test-jwt-secret-0123456789abcdef",
    )
    .env("ECOMMESH_CLUSTER_SECRET", CLUSTER_SECRET);
    (Node::spawn(cmd), rpc, dir)
}

fn secret() -> ClusterSecret {
    ClusterSecret::new(CLUSTER_SECRET.as_bytes()).unwrap()
}

fn connect(rpc: &str) -> TcpStream {
    let s = TcpStream::connect(rpc).expect("the peer port listens");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn send_frame(s: &mut TcpStream, body: &[u8]) {
    let mut b = (body.len() as u32).to_be_bytes().to_vec();
    b.extend_from_slice(body);
    s.write_all(&b).unwrap();
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

/// The node closes the connection without having written a single byte.
fn closed_without_a_byte(mut s: TcpStream, what: &str) {
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => assert!(got.is_empty(), "{what}: the node wrote {} bytes", got.len()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            assert!(got.is_empty(), "{what}: the node wrote {} bytes", got.len())
        }
        Err(e) => panic!("{what}: the connection was not closed ({e})"),
    }
}

#[test]
fn an_unauthenticated_peer_gets_no_link_and_no_frame() {
    let (node, rpc, _dir) = start();

    // Today's protocol was a hello frame with a node id: [0u8][id u64]. It now gets nothing.
    let mut s = connect(&rpc);
    let mut old_hello = vec![0u8];
    old_hello.extend_from_slice(&2u64.to_be_bytes());
    send_frame(&mut s, &old_hello);
    closed_without_a_byte(s, "an old-style hello");

    // A well-formed hello under the wrong secret.
    let mut s = connect(&rpc);
    let wrong = ClusterSecret::new(&[7u8; 32]).unwrap();
    send_frame(&mut s, &Hello::sealed(&wrong, 2, 1));
    closed_without_a_byte(s, "a hello under a wrong secret");

    // The right secret, but an id that is not a member, or a hello for another node.
    for (from, to) in [(9, 1), (2, 3)] {
        let mut s = connect(&rpc);
        send_frame(&mut s, &Hello::sealed(&secret(), from, to));
        closed_without_a_byte(s, "a hello from a stranger or for another node");
    }

    // A frame larger than the handshake's 1 KiB is not read: the length alone closes it.
    let mut s = connect(&rpc);
    s.write_all(&(64u32 << 20).to_be_bytes()).unwrap();
    let _ = s.write_all(&[0u8; 4096]);
    closed_without_a_byte(s, "a 64 MiB frame before authentication");

    // Nothing of the above became a link: the node says so in its metrics.
    let metrics = reqwest::blocking::get(node.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let links = metrics
        .lines()
        .find(|l| l.starts_with("ecommesh_cluster_links "))
        .map(|l| l.rsplit(' ').next().unwrap().trim().to_owned());
    assert!(
        links.is_none() || links.as_deref() == Some("0"),
        "no link may be up: {links:?}"
    );
    for reason in ["malformed", "bad_proof", "not_member", "not_for_me"] {
        assert!(
            metrics.contains(&format!(
                "ecommesh_cluster_links_refused_total{{reason=\"{reason}\"}}"
            )),
            "a refusal counted as {reason}:\n{metrics}"
        );
    }
}

#[test]
fn a_member_links_and_a_replayed_handshake_is_refused() {
    let (_node, rpc, _dir) = start();

    // The real handshake: the welcome proves the node holds the secret, and the link
    // carries sealed frames both ways.
    let mut s = connect(&rpc);
    let hello = Hello::sealed(&secret(), 2, 1);
    assert_eq!(hello.len(), HELLO_LEN);
    send_frame(&mut s, &hello);
    let welcome = read_frame(&mut s).expect("a member is welcomed");
    Welcome::check(&welcome, &secret(), &hello).expect("the welcome proves the secret");
    let mut keys = SessionKeys::derive(&secret(), &hello, &welcome, true);
    let mut ping = BytesMut::from(&[3u8, 0, 0, 0, 0, 0, 0, 0, 0][..]);
    keys.send.seal(&mut ping).unwrap();
    send_frame(&mut s, &ping);
    // The node pings an idle link every second: its frame opens under the session key.
    let mut from_node = BytesMut::from(&read_frame(&mut s).expect("a frame from the node")[..]);
    keys.receive
        .open(&mut from_node)
        .expect("the node's frame is sealed under the link's key");
    assert_eq!(from_node[0], 3, "a ping");

    // The same hello again, byte for byte, on a new connection: refused, nothing written.
    let mut replay = connect(&rpc);
    send_frame(&mut replay, &hello);
    closed_without_a_byte(replay, "a replayed hello");

    // A forged frame on the live link closes it.
    send_frame(&mut s, &[1u8; 64]);
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    // Whatever was in flight before the forged frame is sealed; after it, the node closed.
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        matches!(s.read(&mut [0u8; 1]), Ok(0) | Err(_)),
        "the link is closed after a forged frame"
    );
}
