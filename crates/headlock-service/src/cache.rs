//! The read cache behind the two hottest paths: looking up a user on every
//! authenticated request, and `GET .../encryptionKey`.
//!
//! Why: answering a digest-authenticated GET from the database costs five queries, each
//! a round trip to a sqlx worker thread, which kept the API far below a bare axum
//! handler; from memory it costs a hash lookup. The figures, before and after, are in
//! docs/benchmarks.md, "API: GET encryptionKey with digest auth, against bare axum".
//!
//! Consistency:
//! * Every write this process makes that could change an answer (a key change, a
//!   backup config change, a cluster deletion) calls `ReadCache::invalidate`, which bumps
//!   a generation. A reader records the generation before it reads the store and stores
//!   its result only if no invalidation happened meanwhile, so a result computed before a
//!   write can never be cached after it: within one process, a GET after a PUT always
//!   shows the new key.
//! * Writers in other processes (`headlock users ...`, and other service nodes) are seen
//!   within [`TTL`]: an entry is trusted for that long. A deleted user or a replaced API
//!   key therefore stops working within one second.
//! * Both maps are bounded ([`MAX_ENTRIES`]); when full, they are emptied.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use headlock_core::ObjectId;
use headlock_core::model::User;

use crate::clusters::EncryptionKeyView;

/// How long an entry is trusted without re-reading the store.
pub const TTL: Duration = Duration::from_secs(1);
/// Largest number of entries per map.
pub const MAX_ENTRIES: usize = 10_000;

struct Map<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Map<K, V> {
    fn new() -> Self {
        Map {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K, now: Instant) -> Option<V> {
        let map = self.entries.lock().expect("cache poisoned");
        map.get(key)
            .filter(|(at, _)| now.duration_since(*at) < TTL)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: K, value: V, at: Instant) {
        let mut map = self.entries.lock().expect("cache poisoned");
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, (at, value));
    }

    fn clear(&self) {
        self.entries.lock().expect("cache poisoned").clear();
    }
}

/// Cached answers, see the module docs.
pub(crate) struct ReadCache {
    generation: AtomicU64,
    users: Map<String, Option<Arc<User>>>,
    keys: Map<(ObjectId, ObjectId), EncryptionKeyView>,
}

/// A reader's ticket: the generation and time before it read the store.
pub(crate) struct Ticket {
    generation: u64,
    at: Instant,
}

impl ReadCache {
    pub(crate) fn new() -> Self {
        ReadCache {
            generation: AtomicU64::new(0),
            users: Map::new(),
            keys: Map::new(),
        }
    }

    /// Called before reading the store for a result that will be cached.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket {
            generation: self.generation.load(Ordering::Acquire),
            at: Instant::now(),
        }
    }

    fn still_valid(&self, t: &Ticket) -> bool {
        self.generation.load(Ordering::Acquire) == t.generation
    }

    pub(crate) fn user(&self, username: &str) -> Option<Option<Arc<User>>> {
        self.users.get(&username.to_string(), Instant::now())
    }

    pub(crate) fn put_user(&self, t: Ticket, username: &str, user: Option<Arc<User>>) {
        if self.still_valid(&t) {
            self.users.put(username.to_string(), user, t.at);
        }
    }

    pub(crate) fn key(&self, group: ObjectId, cluster: ObjectId) -> Option<EncryptionKeyView> {
        self.keys.get(&(group, cluster), Instant::now())
    }

    pub(crate) fn put_key(&self, t: Ticket, view: EncryptionKeyView) {
        if self.still_valid(&t) {
            self.keys.put((view.group_id, view.cluster_id), view, t.at);
        }
    }

    /// Forgets everything; results being computed now will not be cached.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.users.clear();
        self.keys.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(g: ObjectId, c: ObjectId, uid: &str) -> EncryptionKeyView {
        EncryptionKeyView {
            group_id: g,
            cluster_id: c,
            encryption_key_uuid: Some(uid.into()),
            parts: Vec::new(),
        }
    }

    #[test]
    fn a_result_read_before_an_invalidation_is_not_cached() {
        let cache = ReadCache::new();
        let (g, c) = (ObjectId::new(), ObjectId::new());
        let t = cache.ticket();
        cache.invalidate(); // a rotation committed while the reader was reading
        cache.put_key(t, view(g, c, "old"));
        assert!(cache.key(g, c).is_none());
        let t = cache.ticket();
        cache.put_key(t, view(g, c, "new"));
        assert_eq!(
            cache.key(g, c).unwrap().encryption_key_uuid,
            Some("new".into())
        );
    }

    #[test]
    fn entries_expire() {
        let cache = ReadCache::new();
        let t = Ticket {
            generation: 0,
            at: Instant::now() - TTL - Duration::from_millis(1),
        };
        cache.put_user(t, "alice", None);
        assert!(cache.user("alice").is_none());
        cache.put_user(cache.ticket(), "alice", None);
        assert_eq!(cache.user("alice"), Some(None));
    }

    #[test]
    fn maps_are_bounded() {
        let cache = ReadCache::new();
        for i in 0..MAX_ENTRIES + 5 {
            cache.put_user(cache.ticket(), &format!("u{i}"), None);
        }
        assert!(cache.users.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
