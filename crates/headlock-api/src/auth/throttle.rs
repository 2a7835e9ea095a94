//! Growing delays after failed authentication, per username and per source address.
//!
//! Each username and each source address (IPv4 address, or IPv6 /64: one host
//! usually holds a whole /64) has a failure count. The first `free_failures` cost
//! nothing; each further failure blocks that key for `base_delay` doubled per failure,
//! capped at `max_delay` (1 s, 2 s, 4 s ... 15 min by default). Nothing is permanent:
//! a block ends after at most `max_delay`, and a key with no failure for
//! `forget_after` starts again from zero.
//!
//! A success clears the username's count but *not* the address's: otherwise an
//! attacker holding one valid account could interleave its own logins with a spray
//! of guesses against other users and never be slowed down. The per-address
//! allowance is larger by default (20) so a shared NAT does not trip on one
//! mistyped script.
//!
//! Memory is bounded: each table holds at most `max_entries`; when full, entries that
//! are neither blocked nor recent are dropped first, then the oldest quarter by last
//! failure (amortised, so a flood of new usernames costs O(1) per insert on average).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tuning of a [`Throttle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures per username before delays start (default 5).
    pub free_failures_per_user: u32,
    /// Failures per source address before delays start (default 20).
    pub free_failures_per_ip: u32,
    /// First delay (default 1 s); doubles with each further failure.
    pub base_delay: Duration,
    /// Longest delay (default 15 min).
    pub max_delay: Duration,
    /// A key with no failure for this long is forgotten (default 1 h).
    pub forget_after: Duration,
    /// Most keys per table (usernames, addresses; default 100,000 each).
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            free_failures_per_user: 5,
            free_failures_per_ip: 20,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(60 * 60),
            max_entries: 100_000,
        }
    }
}

/// A request refused because its user or address is in a delay: answer
/// `429 RATE_LIMITED` with `Retry-After: {seconds()}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    /// How long until the block ends.
    pub wait: Duration,
}

impl RetryAfter {
    /// Whole seconds for a `Retry-After` header (rounded up, at least 1).
    pub fn seconds(&self) -> u64 {
        let s = self.wait.as_secs() + u64::from(self.wait.subsec_nanos() > 0);
        s.max(1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

/// The per-address key: IPv4 as is (IPv4-mapped IPv6 unmapped), IPv6 cut to /64.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

struct Table<K> {
    map: HashMap<K, Entry>,
    free: u32,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn blocked<Q>(&self, key: &Q, now: Instant) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let until = self.map.get(key)?.blocked_until?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    fn fail(&mut self, key: K, now: Instant, cfg: &ThrottleConfig) {
        if !self.map.contains_key(&key) && self.map.len() >= cfg.max_entries {
            self.evict(now, cfg);
        }
        let e = self.map.entry(key).or_insert(Entry {
            failures: 0,
            last_failure: now,
            blocked_until: None,
        });
        if now.saturating_duration_since(e.last_failure) >= cfg.forget_after {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        if e.failures > self.free {
            let doublings = e.failures - self.free - 1;
            let factor = 1u32.checked_shl(doublings.min(31)).unwrap_or(u32::MAX);
            let delay = cfg.base_delay.saturating_mul(factor).min(cfg.max_delay);
            e.blocked_until = Some(now + delay);
        }
    }

    /// Drops forgotten entries; if the table is still full, the oldest quarter (at
    /// least one entry) by last failure.
    fn evict(&mut self, now: Instant, cfg: &ThrottleConfig) {
        self.map.retain(|_, e| {
            e.blocked_until.is_some_and(|u| u > now)
                || now.saturating_duration_since(e.last_failure) < cfg.forget_after
        });
        if self.map.len() < cfg.max_entries {
            return;
        }
        let mut by_age: Vec<(Instant, K)> = self
            .map
            .iter()
            .map(|(k, e)| (e.last_failure, k.clone()))
            .collect();
        let cut = by_age.len() / 4;
        by_age.select_nth_unstable_by_key(cut, |(t, _)| *t);
        for (_, k) in &by_age[..=cut] {
            self.map.remove(k);
        }
    }
}

/// Failed-attempt throttle shared by all requests (`&self`, internally locked).
pub struct Throttle {
    config: ThrottleConfig,
    users: Mutex<Table<Box<str>>>,
    ips: Mutex<Table<IpAddr>>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(ThrottleConfig::default())
    }
}

impl Throttle {
    /// A throttle with this tuning (`max_entries` is raised to at least 1).
    pub fn new(mut config: ThrottleConfig) -> Self {
        config.max_entries = config.max_entries.max(1);
        let users = Table {
            map: HashMap::new(),
            free: config.free_failures_per_user,
        };
        let ips = Table {
            map: HashMap::new(),
            free: config.free_failures_per_ip,
        };
        Self {
            config,
            users: Mutex::new(users),
            ips: Mutex::new(ips),
        }
    }

    /// `Err` while either the username or the address is in a delay (the longer wait
    /// wins). Call before verifying, with the username from the header.
    pub fn check(&self, user: &str, ip: IpAddr, now: Instant) -> Result<(), RetryAfter> {
        let by_user = lock(&self.users).blocked(user, now);
        let by_ip = lock(&self.ips).blocked(&ip_key(ip), now);
        match by_user.into_iter().chain(by_ip).max() {
            Some(wait) => Err(RetryAfter { wait }),
            None => Ok(()),
        }
    }

    /// Counts one failed attempt (see [`super::AuthError::counts_as_failure`]) against
    /// the username and the address.
    pub fn record_failure(&self, user: &str, ip: IpAddr, now: Instant) {
        lock(&self.users).fail(Box::from(user), now, &self.config);
        lock(&self.ips).fail(ip_key(ip), now, &self.config);
    }

    /// Clears the username's failures after a successful authentication. The
    /// address keeps its count (see the module docs); `ip` and `now` are taken for
    /// symmetry and future use.
    pub fn record_success(&self, user: &str, _ip: IpAddr, _now: Instant) {
        lock(&self.users).map.remove(user);
    }

    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        (lock(&self.users).map.len(), lock(&self.ips).map.len())
    }
}

/// Locks, recovering from poisoning (the tables stay consistent: every update is a
/// single insert or retain).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn accepts_first_five_failures_without_delay() {
        let t = Throttle::default();
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(t.check("alice", ip("10.0.0.1"), now), Ok(()));
            t.record_failure("alice", ip("10.0.0.1"), now);
        }
        assert_eq!(t.check("alice", ip("10.0.0.1"), now), Ok(()));
        t.record_failure("alice", ip("10.0.0.1"), now);
        assert_eq!(
            t.check("alice", ip("10.0.0.1"), now),
            Err(RetryAfter {
                wait: Duration::from_secs(1)
            })
        );
    }

    #[test]
    fn rejects_with_doubling_delays_capped_at_fifteen_minutes() {
        let t = Throttle::default();
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..20 {
            t.record_failure("alice", ip("10.0.0.1"), now);
            if let Err(r) = t.check("alice", ip("10.0.0.1"), now) {
                waits.push(r.wait.as_secs());
                now += r.wait;
            }
        }
        assert_eq!(
            waits,
            [
                1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900, 900, 900
            ]
        );
    }

    #[test]
    fn accepts_again_after_the_delay_never_locked_out() {
        let t = Throttle::default();
        let start = Instant::now();
        for _ in 0..1000 {
            t.record_failure("alice", ip("10.0.0.1"), start);
        }
        assert!(t.check("alice", ip("10.0.0.1"), start).is_err());
        let after = start + Duration::from_secs(15 * 60);
        assert_eq!(t.check("alice", ip("10.0.0.1"), after), Ok(()));
    }

    #[test]
    fn accepts_fresh_start_after_forget_after() {
        let t = Throttle::default();
        let start = Instant::now();
        for _ in 0..8 {
            t.record_failure("alice", ip("10.0.0.1"), start);
        }
        let later = start + Duration::from_secs(3600);
        t.record_failure("alice", ip("10.0.0.1"), later);
        assert_eq!(t.check("alice", ip("10.0.0.1"), later), Ok(()));
    }

    #[test]
    fn rejects_other_addresses_for_a_throttled_user() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..6 {
            t.record_failure("alice", ip(&format!("10.0.0.{i}")), now);
        }
        assert!(t.check("alice", ip("192.0.2.7"), now).is_err());
        assert_eq!(t.check("bob", ip("192.0.2.7"), now), Ok(()));
    }

    #[test]
    fn rejects_an_address_spraying_many_users() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..21 {
            t.record_failure(&format!("user{i}"), ip("10.0.0.1"), now);
        }
        assert!(t.check("fresh-user", ip("10.0.0.1"), now).is_err());
        assert_eq!(t.check("fresh-user", ip("10.0.0.2"), now), Ok(()));
    }

    #[test]
    fn rejects_the_whole_ipv6_slash_64_and_unmaps_ipv4() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..21 {
            t.record_failure(&format!("u{i}"), ip(&format!("2001:db8::{i:x}")), now);
        }
        assert!(t.check("x", ip("2001:db8::ffff:1"), now).is_err());
        assert_eq!(t.check("x", ip("2001:db8:0:1::1"), now), Ok(()));
        for i in 0..21 {
            t.record_failure(&format!("v{i}"), ip("::ffff:192.0.2.1"), now);
        }
        assert!(t.check("x", ip("192.0.2.1"), now).is_err());
    }

    #[test]
    fn accepts_user_after_success_but_keeps_the_address_count() {
        let t = Throttle::new(ThrottleConfig {
            free_failures_per_ip: 6,
            ..ThrottleConfig::default()
        });
        let now = Instant::now();
        for _ in 0..6 {
            t.record_failure("alice", ip("10.0.0.1"), now);
        }
        assert!(t.check("alice", ip("10.0.0.9"), now).is_err());
        t.record_success("alice", ip("10.0.0.1"), now);
        assert_eq!(t.check("alice", ip("10.0.0.9"), now), Ok(()));
        // The address is one failure from its own limit and was not reset.
        t.record_failure("mallory", ip("10.0.0.1"), now);
        assert!(t.check("someone", ip("10.0.0.1"), now).is_err());
    }

    #[test]
    fn accepts_bounded_memory_under_a_flood_of_usernames() {
        let t = Throttle::new(ThrottleConfig {
            max_entries: 1000,
            ..ThrottleConfig::default()
        });
        let now = Instant::now();
        for i in 0..10_000u32 {
            let addr = IpAddr::from((i + 1).to_be_bytes());
            t.record_failure(
                &format!("user{i}"),
                addr,
                now + Duration::from_millis(i.into()),
            );
        }
        let (users, ips) = t.sizes();
        assert!(users <= 1000, "{users}");
        assert!(ips <= 1000, "{ips}");
        assert!(users >= 750, "{users}");
    }

    #[test]
    fn accepts_retry_after_rounded_up_to_whole_seconds() {
        assert_eq!(
            RetryAfter {
                wait: Duration::from_millis(1)
            }
            .seconds(),
            1
        );
        assert_eq!(
            RetryAfter {
                wait: Duration::from_millis(1500)
            }
            .seconds(),
            2
        );
        assert_eq!(
            RetryAfter {
                wait: Duration::from_secs(900)
            }
            .seconds(),
            900
        );
        assert_eq!(
            RetryAfter {
                wait: Duration::ZERO
            }
            .seconds(),
            1
        );
    }
}
