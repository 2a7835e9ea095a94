//! [`ObjectId`]: the 12-byte identifiers that the Ops Manager API prints as 24 lowercase
//! hex digits (MongoDB ObjectId layout: 4-byte seconds, 5 random bytes, 3-byte counter).

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use rand::RngCore;

/// A 12-byte identifier, shown as 24 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 12]);

/// The text was not 24 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an id of 24 hexadecimal digits")]
pub struct InvalidObjectId(pub String);

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl ObjectId {
    /// A fresh id: the current time in seconds, 5 random bytes and a process counter.
    pub fn new() -> Self {
        let secs = time::OffsetDateTime::now_utc().unix_timestamp() as u32;
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        rand::thread_rng().fill_bytes(&mut bytes[4..9]);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        bytes[9..].copy_from_slice(&count.to_be_bytes()[1..]);
        ObjectId(bytes)
    }

    /// The raw bytes.
    pub fn bytes(&self) -> [u8; 12] {
        self.0
    }

    /// From raw bytes.
    pub fn from_bytes(bytes: [u8; 12]) -> Self {
        ObjectId(bytes)
    }
}

impl Default for ObjectId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl FromStr for ObjectId {
    type Err = InvalidObjectId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 24 {
            return Err(InvalidObjectId(s.chars().take(64).collect()));
        }
        let mut bytes = [0u8; 12];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| InvalidObjectId(s.to_string()))?;
        Ok(ObjectId(bytes))
    }
}

impl serde::Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_round_trip_and_uppercase() {
        let id = ObjectId::new();
        assert_eq!(id.to_string().parse::<ObjectId>().unwrap(), id);
        let upper: ObjectId = "5196D3628D022DB4CBC26D9E".parse().unwrap();
        assert_eq!(upper.to_string(), "5196d3628d022db4cbc26d9e");
    }

    #[test]
    fn rejects_wrong_length_and_non_hex() {
        assert!("5196d3628d022db4cbc26d9".parse::<ObjectId>().is_err());
        assert!("5196d3628d022db4cbc26d9g".parse::<ObjectId>().is_err());
        assert!("".parse::<ObjectId>().is_err());
    }

    #[test]
    fn new_ids_are_distinct() {
        let a = ObjectId::new();
        let b = ObjectId::new();
        assert_ne!(a, b);
    }
}
