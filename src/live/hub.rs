//! Fan-out: one broadcast channel per topic, shared by every socket subscribed to it.
//!
//! A change is rendered to JSON once and each subscriber gets a reference to the same
//! bytes. Publishing never blocks and never waits for a subscriber: a subscriber that
//! falls behind by more than the channel holds is told it lagged (and its socket closes).

use std::collections::HashMap;
use std::sync::Arc;

use bytestring::ByteString;
use parking_lot::Mutex;
use tokio::sync::broadcast;

/// How many messages one topic holds for its slowest subscriber.
const TOPIC_CAPACITY: usize = 4096;

/// One rendered message of a topic.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The entity it is about, if any: with `seq`, lets a new subscriber skip what its
    /// snapshot already showed.
    pub entity: Option<Box<str>>,
    pub seq: u64,
    pub text: ByteString,
}

#[derive(Default)]
pub struct Hub {
    /// Frames are shared, not copied: a receiver's clone is a reference count.
    topics: Mutex<HashMap<String, broadcast::Sender<Arc<Frame>>>>,
}

impl Hub {
    /// Subscribes to `topic`, creating its channel on first use.
    pub fn subscribe(&self, topic: &str) -> broadcast::Receiver<Arc<Frame>> {
        let mut topics = self.topics.lock();
        if let Some(tx) = topics.get(topic) {
            return tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(TOPIC_CAPACITY);
        topics.insert(topic.to_owned(), tx);
        metrics::gauge!("ecommesh_ws_topics").set(topics.len() as f64);
        rx
    }

    /// Forgets `topic` if nobody listens to it any more (a subscriber just left).
    pub fn release(&self, topic: &str) {
        let mut topics = self.topics.lock();
        if topics.get(topic).is_some_and(|tx| tx.receiver_count() == 0) {
            topics.remove(topic);
            metrics::gauge!("ecommesh_ws_topics").set(topics.len() as f64);
        }
    }

    /// How many topics have a channel now.
    pub fn topic_count(&self) -> usize {
        self.topics.lock().len()
    }

    /// True when someone listens to `topic`: only then is a change worth rendering.
    pub fn has_subscribers(&self, topic: &str) -> bool {
        self.topics
            .lock()
            .get(topic)
            .is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Sends `frame` to every subscriber of `topic`; returns how many there were.
    pub fn publish(&self, topic: &str, frame: Frame) -> usize {
        let mut topics = self.topics.lock();
        let Some(tx) = topics.get(topic) else {
            return 0;
        };
        match tx.send(Arc::new(frame)) {
            Ok(n) => {
                metrics::counter!("ecommesh_ws_messages_published_total").increment(n as u64);
                n
            }
            Err(_) => {
                // Everyone left: forget the topic so idle topics cost nothing.
                topics.remove(topic);
                metrics::gauge!("ecommesh_ws_topics").set(topics.len() as f64);
                0
            }
        }
    }

    /// Forgets topics nobody listens to any more.
    pub fn prune(&self) {
        let mut topics = self.topics.lock();
        topics.retain(|_, tx| tx.receiver_count() > 0);
        metrics::gauge!("ecommesh_ws_topics").set(topics.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> Frame {
        Frame {
            entity: None,
            seq,
            text: ByteString::from(format!("{seq}")),
        }
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_frame_and_empty_topics_are_dropped() {
        let hub = Hub::default();
        assert_eq!(hub.publish("t", frame(1)), 0, "nobody listens yet");
        let mut a = hub.subscribe("t");
        let mut b = hub.subscribe("t");
        assert!(hub.has_subscribers("t"));
        assert_eq!(hub.publish("t", frame(2)), 2);
        assert_eq!(a.recv().await.unwrap().seq, 2);
        assert_eq!(b.recv().await.unwrap().seq, 2);
        drop((a, b));
        assert!(!hub.has_subscribers("t"));
        assert_eq!(hub.publish("t", frame(3)), 0);
        assert!(hub.topics.lock().is_empty());
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_without_holding_up_the_publisher() {
        let hub = Hub::default();
        let mut slow = hub.subscribe("t");
        for i in 0..(TOPIC_CAPACITY as u64 + 10) {
            hub.publish("t", frame(i));
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(10))
        ));
    }
}
