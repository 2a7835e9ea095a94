//! The connections whose TLS handshake is pending, bounded per source and in all.
//!
//! A client without a certificate is stopped only at the end of the handshake, so until
//! then any peer that can reach the port holds a connection slot. [`Pending`] bounds
//! those: a newcomer over the per-source bound closes the oldest pending connection of
//! its source, and one over the total bound the oldest of all. Closing the oldest
//! rather than refusing the newest means idle connections cannot keep a real client
//! out: it gets in by pushing out an idle one, and only a flood of new connections
//! faster than its handshake could push it out in turn.
//!
//! Hand-written: no crate bounds a listener's pending TLS handshakes by source. A
//! pending connection is a map entry keyed by its admission order, with a one-shot
//! channel that closes the connection when it is evicted; the bounds are small, so each
//! admission scans the map.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Where a connection comes from, for the per-source bound: an IPv4 address, or the /64
/// of an IPv6 one (what a single host is usually given).
fn source_of(peer: SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
        v4 => v4,
    }
}

/// The pending handshakes of one server.
pub(crate) struct Pending {
    per_source: usize,
    total: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Admissions so far: the key of the next one.
    admitted: u64,
    /// Pending connections by admission order: their source, and the sender whose
    /// drop evicts them.
    pending: BTreeMap<u64, (IpAddr, oneshot::Sender<()>)>,
}

impl Pending {
    /// At most `per_source` pending per source and `total` in all (each at least 1).
    pub(crate) fn new(per_source: usize, total: usize) -> Self {
        Pending {
            per_source: per_source.max(1),
            total: total.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Admits a connection from `peer`, evicting the oldest pending ones over a bound.
    pub(crate) fn admit(self: &Arc<Self>, peer: SocketAddr) -> Slot {
        let source = source_of(peer);
        let (evict, evicted) = oneshot::channel();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let from_source: Vec<u64> = state
            .pending
            .iter()
            .filter(|(_, (s, _))| *s == source)
            .map(|(k, _)| *k)
            .collect();
        let over_source = (from_source.len() + 1).saturating_sub(self.per_source);
        for key in from_source.into_iter().take(over_source) {
            state.pending.remove(&key);
            tracing::debug!(%peer, "kmip server: closing the oldest pending handshake of this source");
        }
        while state.pending.len() >= self.total {
            state.pending.pop_first();
            tracing::debug!(%peer, "kmip server: closing the oldest pending handshake");
        }
        let key = state.admitted;
        state.admitted += 1;
        state.pending.insert(key, (source, evict));
        Slot {
            pending: self.clone(),
            key,
            evicted,
        }
    }
}

/// One pending handshake; dropping it (handshake over) frees its place.
pub(crate) struct Slot {
    pending: Arc<Pending>,
    key: u64,
    evicted: oneshot::Receiver<()>,
}

impl Slot {
    /// Completes when a newer connection evicted this one.
    pub(crate) async fn evicted(&mut self) {
        let _ = (&mut self.evicted).await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.pending.state.lock().unwrap_or_else(|p| p.into_inner());
        state.pending.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    fn is_evicted(slot: &mut Slot) -> bool {
        slot.evicted
            .try_recv()
            .is_err_and(|e| e == oneshot::error::TryRecvError::Closed)
    }

    #[test]
    fn evicts_the_oldest_of_a_source_over_its_bound() {
        let pending = Arc::new(Pending::new(2, 10));
        let mut a: Vec<Slot> = (0..3).map(|_| pending.admit(peer("10.0.0.1"))).collect();
        let mut b = pending.admit(peer("10.0.0.2"));
        assert!(is_evicted(&mut a[0]));
        assert!(!is_evicted(&mut a[1]) && !is_evicted(&mut a[2]) && !is_evicted(&mut b));
    }

    #[test]
    fn evicts_the_oldest_of_all_over_the_total_bound() {
        let pending = Arc::new(Pending::new(5, 3));
        let mut slots: Vec<Slot> = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
            .iter()
            .map(|ip| pending.admit(peer(ip)))
            .collect();
        let evicted: Vec<bool> = slots.iter_mut().map(is_evicted).collect();
        assert_eq!(evicted, [true, false, false, false]);
    }

    #[test]
    fn a_finished_handshake_frees_its_place() {
        let pending = Arc::new(Pending::new(1, 10));
        drop(pending.admit(peer("10.0.0.1")));
        let mut second = pending.admit(peer("10.0.0.1"));
        assert!(!is_evicted(&mut second));
    }

    #[test]
    fn counts_an_ipv6_64_as_one_source_and_a_mapped_ipv4_as_its_address() {
        assert_eq!(
            source_of(peer("2001:db8:1:2:aaaa::1")),
            source_of(peer("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            source_of(peer("2001:db8:1:2::1")),
            source_of(peer("2001:db8:1:3::1"))
        );
        assert_eq!(
            source_of(peer("::ffff:10.0.0.1")),
            source_of(peer("10.0.0.1"))
        );
    }
}
