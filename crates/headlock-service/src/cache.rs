//! The read cache behind the two hottest paths: looking up a user on every
//! authenticated request, and `GET .../encryptionKey`.
//!
//! Why: answering a digest-authenticated GET from the database costs five queries, each
//! a round trip to a sqlx worker thread, which kept the API far below a bare axum
//! handler; from memory it costs a hash lookup. The figures, before and after, are in
//! docs/benchmarks.md, "API: GET encryptionKey with digest auth, against bare axum".
//!
//! Consistency:
//! * Every write this process makes that could change an answer calls
//!   `ReadCache::invalidate_keys` (a key change, a backup config change, a cluster
//!   deletion) or `ReadCache::invalidate_users` (a user's change), which bumps that map's
//!   generation and empties it. A reader records the generations before it reads the
//!   store and stores its result only if no invalidation of its map happened meanwhile,
//!   so a result computed before a write can never be cached after it: within one
//!   process, a GET after a PUT always shows the new key. A key change leaves the users
//!   cached: under a stream of rotations every request would otherwise read its user
//!   from the store again.
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

/// One map of cached answers, with the generation its invalidations bump.
struct Map<K, V> {
    generation: AtomicU64,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Map<K, V> {
    fn new() -> Self {
        Map {
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn get(&self, key: &K, now: Instant) -> Option<V> {
        let map = self.entries.lock().expect("cache poisoned");
        map.get(key)
            .filter(|(at, _)| now.duration_since(*at) < TTL)
            .map(|(_, v)| v.clone())
    }

    /// Stores `value`, read at `at`, unless the map was invalidated since `generation`.
    fn put(&self, generation: u64, key: K, value: V, at: Instant) {
        let mut map = self.entries.lock().expect("cache poisoned");
        if self.generation() != generation {
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, (at, value));
    }

    /// Forgets every entry; results being read now will not be stored.
    fn invalidate(&self) {
        let mut map = self.entries.lock().expect("cache poisoned");
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }
}

/// Cached answers, see the module docs.
pub(crate) struct ReadCache {
    users: Map<String, Option<Arc<User>>>,
    keys: Map<(ObjectId, ObjectId), EncryptionKeyView>,
}

/// A reader's ticket: the generations and time before it read the store.
pub(crate) struct Ticket {
    users_generation: u64,
    keys_generation: u64,
    at: Instant,
}

impl ReadCache {
    pub(crate) fn new() -> Self {
        ReadCache {
            users: Map::new(),
            keys: Map::new(),
        }
    }

    /// Called before reading the store for a result that will be cached.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket {
            users_generation: self.users.generation(),
            keys_generation: self.keys.generation(),
            at: Instant::now(),
        }
    }

    pub(crate) fn user(&self, username: &str) -> Option<Option<Arc<User>>> {
        self.users.get(&username.to_string(), Instant::now())
    }

    pub(crate) fn put_user(&self, t: Ticket, username: &str, user: Option<Arc<User>>) {
        self.users
            .put(t.users_generation, username.to_string(), user, t.at);
    }

    pub(crate) fn key(&self, group: ObjectId, cluster: ObjectId) -> Option<EncryptionKeyView> {
        self.keys.get(&(group, cluster), Instant::now())
    }

    pub(crate) fn put_key(&self, t: Ticket, view: EncryptionKeyView) {
        let key = (view.group_id, view.cluster_id);
        self.keys.put(t.keys_generation, key, view, t.at);
    }

    /// Forgets every encryption key answer; those being computed now will not be
    /// cached.
    pub(crate) fn invalidate_keys(&self) {
        self.keys.invalidate();
    }

    /// Forgets every user; users being read now will not be cached.
    pub(crate) fn invalidate_users(&self) {
        self.users.invalidate();
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
        cache.invalidate_keys(); // a rotation committed while the reader was reading
        cache.put_key(t, view(g, c, "old"));
        assert!(cache.key(g, c).is_none());
        // A user read meanwhile is cached: a key change does not change users.
        cache.put_user(cache.ticket(), "alice", None);
        let t = cache.ticket();
        cache.invalidate_keys();
        cache.put_user(t, "bob", None);
        assert_eq!(cache.user("bob"), Some(None));
        assert_eq!(cache.user("alice"), Some(None));
        let t = cache.ticket();
        cache.invalidate_users();
        cache.put_user(t, "carol", None);
        assert!(cache.user("carol").is_none());
        assert!(cache.user("alice").is_none());
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
            users_generation: 0,
            keys_generation: 0,
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
