//! Growing delays after failed authentication, per source address and per (username,
//! source address); per-username counts only raise an alert.
//!
//! Each source address (IPv4 address, or IPv6 /64: one host usually holds a whole /64)
//! and each (username, address) pair has a failure count. The first free failures cost
//! nothing (20 per address, 5 per pair by default); each further failure blocks that key
//! for `base_delay` doubled per failure, capped at `max_delay` (1 s, 2 s, 4 s ... 15 min
//! by default). Nothing is permanent: a block ends after at most `max_delay`, and a key
//! with no failure for `forget_after` starts again from zero.
//!
//! Failures per username are counted too, whatever the address, but they never refuse a
//! request: an API key has 122 random bits, so guessing it from many addresses is
//! hopeless, while refusing the right key because someone elsewhere typed a wrong one
//! would let anyone who knows a username lock its owner out. Past
//! `free_failures_per_user` the count is an alert instead ([`Failure::alert`]: the API
//! layer logs a warning and counts `headlock_auth_user_alerts_total`), once when it
//! crosses the threshold and again each time it doubles.
//!
//! A success clears the username's and the pair's counts but *not* the address's:
//! otherwise an attacker holding one valid account could interleave its own logins with
//! a spray of guesses against other users and never be slowed down. The per-address
//! allowance is larger by default (20) so a shared NAT does not trip on one mistyped
//! script.
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
    /// Failures per (username, address) before delays start (default 5).
    pub free_failures_per_user_and_ip: u32,
    /// Failures per source address before delays start (default 20).
    pub free_failures_per_ip: u32,
    /// Failures per username, from any address, before each failure is an alert
    /// (default 20). Never a delay.
    pub alert_failures_per_user: u32,
    /// First delay (default 1 s); doubles with each further failure.
    pub base_delay: Duration,
    /// Longest delay (default 15 min).
    pub max_delay: Duration,
    /// A key with no failure for this long is forgotten (default 1 h).
    pub forget_after: Duration,
    /// Most keys per table (usernames, addresses, pairs; default 100,000 each).
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            free_failures_per_user_and_ip: 5,
            free_failures_per_ip: 20,
            alert_failures_per_user: 20,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(60 * 60),
            max_entries: 100_000,
        }
    }
}

/// A request refused because its address, or its username from that address, is in a
/// delay: answer `429 RATE_LIMITED` with `Retry-After: {seconds()}`.
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

/// What [`Throttle::record_failure`] makes of one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Failures of this username from every address, within `forget_after`.
    pub user_failures: u32,
    /// True when this failure should be reported: the username's count just passed
    /// `alert_failures_per_user`, or doubled since the last report.
    pub alert: bool,
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
    /// Failures before delays start; `None`: count only, never block.
    free: Option<u32>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(free: Option<u32>) -> Self {
        Self {
            map: HashMap::new(),
            free,
        }
    }

    fn blocked<Q>(&self, key: &Q, now: Instant) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let until = self.map.get(key)?.blocked_until?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Counts a failure; returns the key's count.
    fn fail(&mut self, key: K, now: Instant, cfg: &ThrottleConfig) -> u32 {
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
        if let Some(free) = self.free
            && e.failures > free
        {
            let doublings = e.failures - free - 1;
            let factor = 1u32.checked_shl(doublings.min(31)).unwrap_or(u32::MAX);
            let delay = cfg.base_delay.saturating_mul(factor).min(cfg.max_delay);
            e.blocked_until = Some(now + delay);
        }
        e.failures
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
    ips: Mutex<Table<IpAddr>>,
    pairs: Mutex<Table<(Box<str>, IpAddr)>>,
    users: Mutex<Table<Box<str>>>,
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
        Self {
            ips: Mutex::new(Table::new(Some(config.free_failures_per_ip))),
            pairs: Mutex::new(Table::new(Some(config.free_failures_per_user_and_ip))),
            users: Mutex::new(Table::new(None)),
            config,
        }
    }

    /// `Err` while the address, or this username from this address, is in a delay
    /// (the longer wait wins). Call before verifying, with the username from the
    /// header. The username alone never blocks (see the module docs).
    pub fn check(&self, user: &str, ip: IpAddr, now: Instant) -> Result<(), RetryAfter> {
        let ip = ip_key(ip);
        let by_ip = lock(&self.ips).blocked(&ip, now);
        let by_pair = {
            let pairs = lock(&self.pairs);
            // Most of the time no pair is counted at all: skip building the key.
            if pairs.map.is_empty() {
                None
            } else {
                pairs.blocked(&(Box::from(user), ip), now)
            }
        };
        match by_ip.into_iter().chain(by_pair).max() {
            Some(wait) => Err(RetryAfter { wait }),
            None => Ok(()),
        }
    }

    /// Counts one failed attempt (see [`super::AuthError::counts_as_failure`]) against
    /// the address, the (username, address) pair and the username.
    pub fn record_failure(&self, user: &str, ip: IpAddr, now: Instant) -> Failure {
        let ip = ip_key(ip);
        lock(&self.ips).fail(ip, now, &self.config);
        lock(&self.pairs).fail((Box::from(user), ip), now, &self.config);
        let user_failures = lock(&self.users).fail(Box::from(user), now, &self.config);
        let threshold = self.config.alert_failures_per_user;
        let alert = user_failures > threshold
            && (user_failures == threshold + 1 || (user_failures - threshold).is_power_of_two());
        Failure {
            user_failures,
            alert,
        }
    }

    /// Clears the username's failures, and the pair's, after a successful
    /// authentication. The address keeps its count (see the module docs); `now` is
    /// taken for symmetry and future use.
    pub fn record_success(&self, user: &str, ip: IpAddr, _now: Instant) {
        lock(&self.users).map.remove(user);
        let mut pairs = lock(&self.pairs);
        if !pairs.map.is_empty() {
            pairs.map.remove(&(Box::from(user), ip_key(ip)));
        }
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
    fn accepts_the_user_from_another_address_while_one_address_is_throttled() {
        let t = Throttle::default();
        let now = Instant::now();
        for _ in 0..7 {
            t.record_failure("alice", ip("10.0.0.1"), now);
        }
        assert!(t.check("alice", ip("10.0.0.1"), now).is_err());
        assert_eq!(t.check("alice", ip("192.0.2.7"), now), Ok(()));
        assert_eq!(t.check("bob", ip("10.0.0.1"), now), Ok(()));
    }

    #[test]
    fn accepts_a_user_guessed_from_many_addresses_but_alerts() {
        let t = Throttle::default();
        let now = Instant::now();
        let mut alerts = Vec::new();
        for i in 0..100u32 {
            let f = t.record_failure("alice", IpAddr::from((i + 1).to_be_bytes()), now);
            assert_eq!(f.user_failures, i + 1);
            if f.alert {
                alerts.push(f.user_failures);
            }
        }
        assert_eq!(alerts, [21, 22, 24, 28, 36, 52, 84]);
        assert_eq!(t.check("alice", ip("192.0.2.7"), now), Ok(()));
        t.record_success("alice", ip("192.0.2.7"), now);
        assert_eq!(
            t.record_failure("alice", ip("192.0.2.8"), now)
                .user_failures,
            1
        );
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
        assert!(t.check("alice", ip("10.0.0.1"), now).is_err());
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
