//! What one client address may hold of the live-update service at once: websockets and
//! subscriptions. A socket takes a [`ClientSlot`] when it opens and gives everything back
//! when the slot is dropped, so a crashed or killed socket task cannot leak its share.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    connections: usize,
    subscriptions: usize,
}

/// Every client address's open websockets and subscriptions.
#[derive(Default)]
pub struct PerClient {
    usage: Mutex<HashMap<IpAddr, Usage>>,
}

impl PerClient {
    /// A slot for one more socket from `ip`, unless it already holds `max_connections`.
    pub fn connect(self: &Arc<Self>, ip: IpAddr, max_connections: usize) -> Option<ClientSlot> {
        let mut usage = self.usage.lock();
        let u = usage.entry(ip).or_default();
        if u.connections >= max_connections {
            return None;
        }
        u.connections += 1;
        Some(ClientSlot {
            owner: self.clone(),
            ip,
            subscriptions: 0,
        })
    }

    /// How many addresses hold a socket now.
    pub fn addresses(&self) -> usize {
        self.usage.lock().len()
    }
}

/// One socket's share of its address's allowance.
pub struct ClientSlot {
    owner: Arc<PerClient>,
    ip: IpAddr,
    subscriptions: usize,
}

impl ClientSlot {
    /// Takes one subscription of the address's `max` (false: all are in use).
    pub fn take_subscription(&mut self, max: usize) -> bool {
        let mut usage = self.owner.usage.lock();
        let u = usage.entry(self.ip).or_default();
        if u.subscriptions >= max {
            return false;
        }
        u.subscriptions += 1;
        self.subscriptions += 1;
        true
    }

    /// Gives one subscription back.
    pub fn give_back_subscription(&mut self) {
        if self.subscriptions == 0 {
            return;
        }
        self.subscriptions -= 1;
        if let Some(u) = self.owner.usage.lock().get_mut(&self.ip) {
            u.subscriptions = u.subscriptions.saturating_sub(1);
        }
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut usage = self.owner.usage.lock();
        if let Some(u) = usage.get_mut(&self.ip) {
            u.connections = u.connections.saturating_sub(1);
            u.subscriptions = u.subscriptions.saturating_sub(self.subscriptions);
            if u.connections == 0 {
                usage.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_it_back_on_drop() {
        let clients = Arc::new(PerClient::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut a = clients.connect(ip, 2).unwrap();
        let mut b = clients.connect(ip, 2).unwrap();
        assert!(
            clients.connect(ip, 2).is_none(),
            "a third socket is refused"
        );
        assert!(clients.connect("192.0.2.2".parse().unwrap(), 2).is_some());
        assert!(a.take_subscription(3) && a.take_subscription(3) && b.take_subscription(3));
        assert!(
            !b.take_subscription(3),
            "the address's subscriptions are shared"
        );
        b.give_back_subscription();
        assert!(a.take_subscription(3));
        drop(a);
        assert!(b.take_subscription(3) && b.take_subscription(3));
        drop(b);
        assert_eq!(clients.addresses(), 0, "nothing is left behind");
    }
}
