//! Stateless nonces and the bounded replay window for `nc`.
//!
//! A nonce is `base64url_nopad(issued_ms || random || mac)` where `issued_ms` is the
//! issue time in milliseconds since the Unix epoch (8 bytes, big-endian), `random` is
//! 8 random bytes (two challenges issued in the same millisecond differ), and `mac` is
//! HMAC-SHA256 under the server secret of a label and the first 16 bytes, cut to 16
//! bytes. 32 bytes in all, 43 characters, alphabet `A-Z a-z 0-9 - _`: no comma, no
//! quote, nothing a strict client could split on. The server keeps no state to issue
//! or check one; a restart with the same secret still accepts earlier nonces.
//!
//! The replay window is the only state in memory: for each (nonce, cnonce) seen in an
//! accepted request, the highest `nc` and a 64-bit bitmap of the 64 counts below it
//! (the anti-replay window of IPsec, RFC 4303 section 3.4.3), so a client that reuses
//! a nonce with increasing `nc` (curl on a kept-alive connection, `requests` in a
//! session) is accepted even when concurrent requests arrive out of order, while the
//! same (nonce, cnonce, nc) is refused the second time. Entries are ordered by issue
//! time and dropped once the nonce expires; when the table is full the oldest entries
//! go first and every nonce issued up to the newest evicted one is from then on
//! answered as stale, so eviction never reopens a replay.
//!
//! The window also remembers which nonces this process *owns*: a nonce is used by one
//! process only, the first to accept a request with it. Memory alone cannot tell a
//! nonce used by another node, or by this node before a restart, from a fresh one, so
//! the API layer claims each nonce in the shared database before its first use
//! ([`super::DigestAuthenticator::claim_of`]); a nonce claimed by another process is
//! answered as stale (docs/design.md, "Authentication").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// Raw nonce length: 8 bytes of time, 8 random, 16 of MAC.
const RAW_LEN: usize = 32;
/// Encoded nonce length (base64url without padding of 32 bytes).
pub(crate) const ENCODED_LEN: usize = 43;
/// Domain separation for the nonce MAC.
const NONCE_LABEL: &[u8] = b"headlock digest nonce v1\0";
/// Domain separation for the opaque value.
const OPAQUE_LABEL: &[u8] = b"headlock digest opaque v1\0";
/// How far in the future a nonce's time may be (servers sharing a secret with a
/// slightly fast clock) before it is refused as forged.
pub(crate) const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Milliseconds since the Unix epoch (0 for times before it).
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A nonce that carries a valid MAC from this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenedNonce {
    /// Issue time, ms since the Unix epoch.
    pub issued_ms: u64,
    /// The random part, which with `issued_ms` identifies the nonce.
    pub random: u64,
}

/// Mints and opens nonces, and derives the constant `opaque`.
pub(crate) struct NonceCodec {
    key: hmac::Key,
    rng: SystemRandom,
    opaque: String,
}

impl NonceCodec {
    pub(crate) fn new(server_secret: &[u8; 32]) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, server_secret);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(OPAQUE_LABEL);
        let opaque = hex::encode(&ctx.sign().as_ref()[..16]);
        Self {
            key,
            rng: SystemRandom::new(),
            opaque,
        }
    }

    /// The `opaque` value of every challenge: 32 hex digits derived from the secret.
    pub(crate) fn opaque(&self) -> &str {
        &self.opaque
    }

    fn mac(&self, head: &[u8]) -> [u8; 16] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(NONCE_LABEL);
        ctx.update(head);
        let tag = ctx.sign();
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.as_ref()[..16]);
        out
    }

    /// A fresh nonce issued at `now`.
    pub(crate) fn mint(&self, now: SystemTime) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&unix_ms(now).to_be_bytes());
        // SystemRandom only fails when the OS has no randomness at all; the time and
        // the MAC still make the nonce unforgeable, only less unique, so fall back to
        // zeros rather than panicking.
        if self.rng.fill(&mut raw[8..16]).is_err() {
            raw[8..16].fill(0);
        }
        let mac = self.mac(&raw[..16]);
        raw[16..].copy_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks the MAC (in constant time) and the clock skew; `None` for anything this
    /// server did not issue.
    pub(crate) fn open(&self, nonce: &str, now: SystemTime) -> Option<OpenedNonce> {
        if nonce.len() != ENCODED_LEN {
            return None;
        }
        let mut raw = [0u8; RAW_LEN + 2];
        let n = URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw).ok()?;
        if n != RAW_LEN {
            return None;
        }
        let expected = self.mac(&raw[..16]);
        if !bool::from(expected.ct_eq(&raw[16..RAW_LEN])) {
            return None;
        }
        let issued_ms = u64::from_be_bytes(raw[..8].try_into().ok()?);
        let random = u64::from_be_bytes(raw[8..16].try_into().ok()?);
        let skew_ms = u64::try_from(MAX_CLOCK_SKEW.as_millis()).unwrap_or(u64::MAX);
        if issued_ms > unix_ms(now).saturating_add(skew_ms) {
            return None;
        }
        Some(OpenedNonce { issued_ms, random })
    }
}

/// Key of one replay-window entry; ordered by issue time so expiry pops the front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ReplayKey {
    issued_ms: u64,
    random: u64,
    /// SHA-256 of the cnonce, cut to 16 bytes: fixed size whatever the client sends.
    cnonce: [u8; 16],
}

/// Highest nc seen and a bitmap of the 64 counts at and below it (bit i = max - i).
#[derive(Debug, Clone, Copy)]
struct Window {
    max: u64,
    seen: u64,
}

/// Outcome of [`ReplayWindow::check_and_record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayVerdict {
    /// First use of this count: recorded.
    Fresh,
    /// Already used, or more than 64 behind the highest count.
    Replayed,
    /// This server evicted what it knew of the nonce: treat the nonce as stale.
    Forgotten,
}

/// A nonce's identity: issue time (first, for expiry order) and random part.
type NonceKey = (u64, u64);

struct ReplayState {
    entries: BTreeMap<ReplayKey, Window>,
    /// Nonces this process claimed, by issue time; dropped with their expiry.
    owned: BTreeSet<NonceKey>,
    /// Nonces issued at or before this time are no longer tracked (evicted).
    floor_ms: Option<u64>,
}

/// Bounded memory of the nonce counts accepted per (nonce, cnonce).
pub(crate) struct ReplayWindow {
    state: Mutex<ReplayState>,
    capacity: usize,
}

impl ReplayWindow {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(ReplayState {
                entries: BTreeMap::new(),
                owned: BTreeSet::new(),
                floor_ms: None,
            }),
            capacity: capacity.max(1),
        }
    }

    /// True when this process already accepted a request with `nonce` (so it needs no
    /// claim in the shared store before the next one).
    pub(crate) fn owns(&self, nonce: OpenedNonce) -> bool {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.owned.contains(&(nonce.issued_ms, nonce.random))
    }

    /// Records `nc` for this nonce and cnonce unless it was seen before, and marks the
    /// nonce as this process's. `ttl` and
    /// `now` drop entries whose nonce has expired (those requests are refused as stale
    /// before reaching this point).
    pub(crate) fn check_and_record(
        &self,
        nonce: OpenedNonce,
        cnonce: &str,
        nc: u64,
        ttl: Duration,
        now: SystemTime,
    ) -> ReplayVerdict {
        let digest = Sha256::digest(cnonce.as_bytes());
        let mut cnonce_key = [0u8; 16];
        cnonce_key.copy_from_slice(&digest[..16]);
        let key = ReplayKey {
            issued_ms: nonce.issued_ms,
            random: nonce.random,
            cnonce: cnonce_key,
        };
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let oldest_live = unix_ms(now).saturating_sub(ttl_ms);

        // A poisoned lock only means another thread panicked mid-update; the map is
        // still a valid map, so keep serving rather than panicking on every request.
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.floor_ms.is_some_and(|f| key.issued_ms <= f) {
            return ReplayVerdict::Forgotten;
        }
        while let Some(entry) = st.entries.first_entry() {
            if entry.key().issued_ms >= oldest_live {
                break;
            }
            entry.remove();
        }
        while st.owned.first().is_some_and(|n| n.0 < oldest_live) {
            st.owned.pop_first();
        }
        if let Some(w) = st.entries.get_mut(&key) {
            return if nc > w.max {
                let shift = nc - w.max;
                w.seen = if shift >= 64 { 0 } else { w.seen << shift } | 1;
                w.max = nc;
                ReplayVerdict::Fresh
            } else {
                let back = w.max - nc;
                if back >= 64 || (w.seen >> back) & 1 == 1 {
                    ReplayVerdict::Replayed
                } else {
                    w.seen |= 1 << back;
                    ReplayVerdict::Fresh
                }
            };
        }
        while st.entries.len() >= self.capacity {
            let Some((evicted, _)) = st.entries.pop_first() else {
                break;
            };
            st.floor_ms = Some(
                st.floor_ms
                    .map_or(evicted.issued_ms, |f| f.max(evicted.issued_ms)),
            );
        }
        while st.owned.len() >= self.capacity {
            let Some(evicted) = st.owned.pop_first() else {
                break;
            };
            st.floor_ms = Some(st.floor_ms.map_or(evicted.0, |f| f.max(evicted.0)));
        }
        if st.floor_ms.is_some_and(|f| key.issued_ms <= f) {
            return ReplayVerdict::Forgotten;
        }
        st.entries.insert(key, Window { max: nc, seen: 1 });
        st.owned.insert((key.issued_ms, key.random));
        ReplayVerdict::Fresh
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    const NOW: u64 = 1_700_000_000_000;
    const TTL: Duration = Duration::from_secs(300);

    #[test]
    fn accepts_own_nonce_and_reads_back_its_time() {
        let codec = NonceCodec::new(&[1; 32]);
        let n = codec.mint(at(NOW));
        assert_eq!(n.len(), ENCODED_LEN);
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let opened = codec.open(&n, at(NOW + 5)).expect("own nonce");
        assert_eq!(opened.issued_ms, NOW);
    }

    #[test]
    fn accepts_two_nonces_minted_in_the_same_millisecond_as_distinct() {
        let codec = NonceCodec::new(&[1; 32]);
        assert_ne!(codec.mint(at(NOW)), codec.mint(at(NOW)));
    }

    #[test]
    fn rejects_nonce_from_another_secret() {
        let n = NonceCodec::new(&[1; 32]).mint(at(NOW));
        assert_eq!(NonceCodec::new(&[2; 32]).open(&n, at(NOW)), None);
    }

    #[test]
    fn rejects_nonce_with_any_byte_flipped() {
        let codec = NonceCodec::new(&[1; 32]);
        let n = codec.mint(at(NOW));
        let mut raw = URL_SAFE_NO_PAD.decode(&n).unwrap();
        for i in 0..raw.len() {
            raw[i] ^= 0x01;
            let forged = URL_SAFE_NO_PAD.encode(&raw);
            assert_eq!(codec.open(&forged, at(NOW)), None, "byte {i}");
            raw[i] ^= 0x01;
        }
        assert!(codec.open(&URL_SAFE_NO_PAD.encode(&raw), at(NOW)).is_some());
    }

    #[test]
    fn rejects_nonce_of_wrong_length_or_alphabet() {
        let codec = NonceCodec::new(&[1; 32]);
        let n = codec.mint(at(NOW));
        assert_eq!(codec.open(&n[..42], at(NOW)), None);
        assert_eq!(codec.open(&format!("{n}A"), at(NOW)), None);
        assert_eq!(
            codec.open(&n.replace(|c: char| c.is_ascii_alphabetic(), "+"), at(NOW)),
            None
        );
        assert_eq!(codec.open("", at(NOW)), None);
    }

    #[test]
    fn rejects_nonce_from_the_future() {
        let codec = NonceCodec::new(&[1; 32]);
        let n = codec.mint(at(NOW + 61_000));
        assert_eq!(codec.open(&n, at(NOW)), None);
        let n = codec.mint(at(NOW + 59_000));
        assert!(codec.open(&n, at(NOW)).is_some());
    }

    #[test]
    fn accepts_opaque_as_32_hex_digits_stable_per_secret() {
        let a = NonceCodec::new(&[1; 32]);
        assert_eq!(a.opaque().len(), 32);
        assert!(a.opaque().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a.opaque(), NonceCodec::new(&[1; 32]).opaque());
        assert_ne!(a.opaque(), NonceCodec::new(&[2; 32]).opaque());
    }

    fn nonce(ms: u64, random: u64) -> OpenedNonce {
        OpenedNonce {
            issued_ms: ms,
            random,
        }
    }

    #[test]
    fn accepts_increasing_nc_and_rejects_repeats() {
        let w = ReplayWindow::new(100);
        let n = nonce(NOW, 1);
        for nc in 1..=10 {
            assert_eq!(
                w.check_and_record(n, "c", nc, TTL, at(NOW)),
                ReplayVerdict::Fresh
            );
        }
        for nc in 1..=10 {
            assert_eq!(
                w.check_and_record(n, "c", nc, TTL, at(NOW)),
                ReplayVerdict::Replayed
            );
        }
    }

    #[test]
    fn accepts_out_of_order_nc_within_64_and_rejects_older() {
        let w = ReplayWindow::new(100);
        let n = nonce(NOW, 1);
        assert_eq!(
            w.check_and_record(n, "c", 100, TTL, at(NOW)),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            w.check_and_record(n, "c", 40, TTL, at(NOW)),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            w.check_and_record(n, "c", 40, TTL, at(NOW)),
            ReplayVerdict::Replayed
        );
        assert_eq!(
            w.check_and_record(n, "c", 36, TTL, at(NOW)),
            ReplayVerdict::Replayed
        );
        assert_eq!(
            w.check_and_record(n, "c", 100, TTL, at(NOW)),
            ReplayVerdict::Replayed
        );
        assert_eq!(
            w.check_and_record(n, "c", 500, TTL, at(NOW)),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            w.check_and_record(n, "c", 100, TTL, at(NOW)),
            ReplayVerdict::Replayed
        );
    }

    #[test]
    fn accepts_same_nc_with_another_cnonce_or_nonce() {
        let w = ReplayWindow::new(100);
        assert_eq!(
            w.check_and_record(nonce(NOW, 1), "a", 1, TTL, at(NOW)),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            w.check_and_record(nonce(NOW, 1), "b", 1, TTL, at(NOW)),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            w.check_and_record(nonce(NOW, 2), "a", 1, TTL, at(NOW)),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            w.check_and_record(nonce(NOW, 1), "a", 1, TTL, at(NOW)),
            ReplayVerdict::Replayed
        );
    }

    #[test]
    fn accepts_bounded_size_by_dropping_expired_entries() {
        let w = ReplayWindow::new(1000);
        for i in 0..500 {
            w.check_and_record(nonce(NOW + i, i), "c", 1, TTL, at(NOW + i));
        }
        assert_eq!(w.len(), 500);
        let later = NOW + 300_000 + 250;
        w.check_and_record(nonce(later, 9999), "c", 1, TTL, at(later));
        // 250 expired entries dropped, 250 live ones kept, plus the new one.
        assert_eq!(w.len(), 251);
    }

    #[test]
    fn rejects_evicted_nonce_as_forgotten_never_as_fresh() {
        let w = ReplayWindow::new(3);
        for i in 0..3 {
            assert_eq!(
                w.check_and_record(nonce(NOW + i, i), "c", 1, TTL, at(NOW + 10)),
                ReplayVerdict::Fresh
            );
        }
        // A fourth nonce pushes out the oldest one (issued at NOW).
        assert_eq!(
            w.check_and_record(nonce(NOW + 5, 5), "c", 1, TTL, at(NOW + 10)),
            ReplayVerdict::Fresh
        );
        assert_eq!(w.len(), 3);
        // Replaying the evicted request is not accepted: its nonce is now stale.
        assert_eq!(
            w.check_and_record(nonce(NOW, 0), "c", 1, TTL, at(NOW + 10)),
            ReplayVerdict::Forgotten
        );
        assert_eq!(
            w.check_and_record(nonce(NOW, 0), "c", 2, TTL, at(NOW + 10)),
            ReplayVerdict::Forgotten
        );
    }
}
