//! Loopback ports for the peer links of clusters started on one machine, by tests and
//! benchmarks (a node's own `rpc_listen` comes from its configuration).

/// Loopback ports for nodes' peer links that stay free while a node is down: taken below
/// the kernel's ephemeral range (where outgoing connections get their local ports, and
/// one could take a killed node's port before it restarts), and never handed out twice
/// in one process (parallel tests each start clusters).
pub fn peer_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    use rand::Rng;
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN
        .lock()
        .map_err(|_| anyhow::anyhow!("port registry poisoned"))?;
    let mut ports = Vec::with_capacity(n);
    let mut rng = rand::thread_rng();
    for _ in 0..10_000 {
        if ports.len() == n {
            return Ok(ports);
        }
        let port = rng.gen_range(20_000..32_000);
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            ports.push(port);
        }
    }
    Err(anyhow::anyhow!(
        "no {n} free loopback ports in 20000..32000"
    ))
}
