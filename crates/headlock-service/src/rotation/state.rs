//! The states of a key change, each holding exactly what is known in it.
//!
//! ```text
//!  Pending --key_active(uid)--> NewKeyActive --committed()--> Committed
//! ```
//!
//! A transition consumes the state it leaves (rustls' `Expect*` states), so the new
//! key's uid exists only from [`NewKeyActive`] on and a rotation cannot go back. The
//! store keeps a key change as one [`KeyIntent`] row (a phase and an optional uid);
//! [`Pending::record`] (the store's commit writes `Committed` itself) and
//! `KeyChangeState::try_from(KeyIntent)` convert at that boundary, and a row no
//! transition could have written (a uid in `PENDING`, none after it) is refused as an
//! [`InvalidIntent`] rather than guessed at. [`NewKeyActive`] lives in memory only: the
//! row stays `PENDING` until the commit (a crash in between leaves a key found by its
//! name), and a `NEW_KEY_ACTIVE` row, which earlier releases wrote, is still read.

use headlock_core::model::{IntentPhase, KeyIntent, RotationType};
use headlock_core::{KmipUid, ObjectId};
use time::OffsetDateTime;

/// What every state of a key change knows: written once, with the intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    /// Intent id (also in the new key's name and in its lease's name).
    pub(crate) id: ObjectId,
    /// The cluster whose key changes.
    pub(crate) cluster_id: ObjectId,
    /// The KMIP Name the new key gets, so that Locate finds it whatever happened.
    pub(crate) key_name: String,
    /// The key current when the change began (None for a first key).
    pub(crate) previous_uid: Option<KmipUid>,
    /// Why.
    pub(crate) rotation_type: RotationType,
    /// Who asked.
    pub(crate) requested_by: String,
    /// When the intent was written.
    pub(crate) created: OffsetDateTime,
}

/// Recorded before any KMIP call; the new key may or may not exist (find it by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    claim: Claim,
}

/// The new key exists in the KMIP server and is Active; its uid is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewKeyActive {
    claim: Claim,
    new_uid: KmipUid,
}

/// The store switched the cluster to the new key (one transaction, which also wrote this
/// state); the old key is still to be revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Committed {
    claim: Claim,
    new_uid: KmipUid,
}

impl Pending {
    /// A fresh key change.
    pub(crate) fn new(claim: Claim) -> Self {
        Pending { claim }
    }

    /// The KMIP server made the new key `uid` and activated it.
    pub(crate) fn key_active(self, uid: KmipUid) -> NewKeyActive {
        NewKeyActive {
            claim: self.claim,
            new_uid: uid,
        }
    }
}

impl NewKeyActive {
    /// The new key's uid.
    pub(crate) fn new_uid(&self) -> &KmipUid {
        &self.new_uid
    }

    /// The store committed the switch to the new key.
    pub(crate) fn committed(self) -> Committed {
        Committed {
            claim: self.claim,
            new_uid: self.new_uid,
        }
    }
}

impl std::ops::Deref for Pending {
    type Target = Claim;
    fn deref(&self) -> &Claim {
        &self.claim
    }
}

impl std::ops::Deref for NewKeyActive {
    type Target = Claim;
    fn deref(&self) -> &Claim {
        &self.claim
    }
}

impl std::ops::Deref for Committed {
    type Target = Claim;
    fn deref(&self) -> &Claim {
        &self.claim
    }
}

/// A key change in whichever state it is: what the store's row says, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyChangeState {
    /// See [`Pending`].
    Pending(Pending),
    /// See [`NewKeyActive`].
    NewKeyActive(NewKeyActive),
    /// See [`Committed`].
    Committed(Committed),
}

impl KeyChangeState {
    /// What every state knows.
    pub(crate) fn claim(&self) -> &Claim {
        match self {
            KeyChangeState::Pending(s) => &s.claim,
            KeyChangeState::NewKeyActive(s) => &s.claim,
            KeyChangeState::Committed(s) => &s.claim,
        }
    }

    /// The new key's uid, known from [`NewKeyActive`] on.
    pub(crate) fn new_uid(&self) -> Option<&KmipUid> {
        match self {
            KeyChangeState::Pending(_) => None,
            KeyChangeState::NewKeyActive(s) => Some(&s.new_uid),
            KeyChangeState::Committed(s) => Some(&s.new_uid),
        }
    }
}

impl Pending {
    /// The store's row for this state (the columns and values written since the first
    /// release: a phase and an optional new uid).
    pub(crate) fn record(&self) -> KeyIntent {
        self.claim.record(IntentPhase::Pending, None)
    }
}

impl NewKeyActive {
    /// The store's row for this state, as releases before December 2026 wrote it (a
    /// key change no longer writes it: see `rotation.rs`; reconciliation still reads it).
    #[cfg(test)]
    pub(crate) fn record(&self) -> KeyIntent {
        self.claim
            .record(IntentPhase::NewKeyActive, Some(&self.new_uid))
    }
}

impl Claim {
    /// The row of a state in `phase`.
    fn record(&self, phase: IntentPhase, new_uid: Option<&KmipUid>) -> KeyIntent {
        let Claim {
            id,
            cluster_id,
            key_name,
            previous_uid,
            rotation_type,
            requested_by,
            created,
        } = self.clone();
        KeyIntent {
            id,
            cluster_id,
            key_name,
            previous_uid,
            new_uid: new_uid.cloned(),
            phase,
            rotation_type,
            requested_by,
            created,
        }
    }
}

/// A stored intent no transition could have written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key intent {id} is {phase} {}", match .new_uid {
    Some(uid) => format!("with a new key uid ({uid}), which only later phases have"),
    None => "without the new key's uid".to_string(),
})]
pub(crate) struct InvalidIntent {
    /// The intent.
    pub(crate) id: ObjectId,
    /// Its stored phase.
    pub(crate) phase: &'static str,
    /// Its stored new uid.
    pub(crate) new_uid: Option<KmipUid>,
}

impl TryFrom<KeyIntent> for KeyChangeState {
    type Error = InvalidIntent;

    fn try_from(row: KeyIntent) -> Result<Self, InvalidIntent> {
        let KeyIntent {
            id,
            cluster_id,
            key_name,
            previous_uid,
            new_uid,
            phase,
            rotation_type,
            requested_by,
            created,
        } = row;
        let claim = Claim {
            id,
            cluster_id,
            key_name,
            previous_uid,
            rotation_type,
            requested_by,
            created,
        };
        Ok(match (phase, new_uid) {
            (IntentPhase::Pending, None) => KeyChangeState::Pending(Pending { claim }),
            (IntentPhase::NewKeyActive, Some(new_uid)) => {
                KeyChangeState::NewKeyActive(NewKeyActive { claim, new_uid })
            }
            (IntentPhase::Committed, Some(new_uid)) => {
                KeyChangeState::Committed(Committed { claim, new_uid })
            }
            (phase, new_uid) => {
                return Err(InvalidIntent {
                    id,
                    phase: phase.as_str(),
                    new_uid,
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row of any state (the store's commit writes the `Committed` one).
    fn record(state: &KeyChangeState) -> KeyIntent {
        match state {
            KeyChangeState::Pending(s) => s.record(),
            KeyChangeState::NewKeyActive(s) => s.record(),
            KeyChangeState::Committed(s) => {
                s.claim.record(IntentPhase::Committed, Some(&s.new_uid))
            }
        }
    }

    fn claim() -> Claim {
        let id = ObjectId::new();
        let cluster_id = ObjectId::new();
        Claim {
            id,
            cluster_id,
            key_name: format!("headlock-{cluster_id}-{id}"),
            previous_uid: Some("old".into()),
            rotation_type: RotationType::Manual,
            requested_by: "alice".into(),
            created: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn each_state_round_trips_through_the_stored_row() {
        let pending = Pending::new(claim());
        let active = pending.clone().key_active("new".into());
        let committed = active.clone().committed();
        for state in [
            KeyChangeState::Pending(pending),
            KeyChangeState::NewKeyActive(active),
            KeyChangeState::Committed(committed),
        ] {
            let row = record(&state);
            assert_eq!(KeyChangeState::try_from(row).unwrap(), state);
        }
    }

    #[test]
    fn writes_the_phases_and_uid_as_the_store_always_has() {
        let pending = Pending::new(claim());
        let row = pending.record();
        assert_eq!((row.phase, row.new_uid), (IntentPhase::Pending, None));
        let active = pending.key_active("k2".into());
        let row = active.record();
        assert_eq!(
            (row.phase.as_str(), row.new_uid),
            ("NEW_KEY_ACTIVE", Some("k2".into()))
        );
        let row = record(&KeyChangeState::Committed(active.committed()));
        assert_eq!(
            (row.phase.as_str(), row.new_uid),
            ("COMMITTED", Some("k2".into()))
        );
    }

    #[test]
    fn rejects_rows_no_transition_writes() {
        let good = Pending::new(claim()).record();
        let bad = [
            (IntentPhase::Pending, Some(KmipUid::new("k2"))),
            (IntentPhase::NewKeyActive, None),
            (IntentPhase::Committed, None),
        ];
        for (phase, new_uid) in bad {
            let row = KeyIntent {
                phase,
                new_uid: new_uid.clone(),
                ..good.clone()
            };
            let e = KeyChangeState::try_from(row).unwrap_err();
            assert_eq!((e.phase, e.new_uid), (phase.as_str(), new_uid));
        }
    }
}
