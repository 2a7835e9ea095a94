//! Property-style checks on generated input, with a small deterministic generator
//! (xorshift64*) instead of a property-testing dependency: every generated item
//! round-trips through the codec, and no mutation of a vector makes the decoders panic
//! or accept something they cannot re-encode to the same meaning.

use kmip::message::{RequestMessage, ResponseMessage};
use kmip::tag::Tag;
use kmip::ttlv::{self, Item, Limits, Value};

use crate::{all_vectors, vector};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        (0..self.below(max + 1))
            .map(|_| self.next() as u8)
            .collect()
    }
}

fn item(rng: &mut Rng, depth: usize) -> Item {
    // Tags from the KMIP range and the extension range.
    let tag = if rng.below(4) == 0 {
        Tag(0x54_0000 | rng.below(0x1_0000) as u32)
    } else {
        Tag(0x42_0001 + rng.below(0x165) as u32)
    };
    let kind = if depth == 0 {
        1 + rng.below(10)
    } else {
        rng.below(11)
    };
    let value = match kind {
        0 => Value::Structure((0..rng.below(5)).map(|_| item(rng, depth - 1)).collect()),
        1 => Value::Integer(rng.next() as i32),
        2 => Value::LongInteger(rng.next() as i64),
        3 => {
            let mut b = rng.bytes(24);
            b.resize(b.len().div_ceil(8) * 8, 0);
            Value::BigInteger(b)
        }
        4 => Value::Enumeration(rng.next() as u32),
        5 => Value::Boolean(rng.below(2) == 1),
        6 => Value::TextString(
            (0..rng.below(20))
                .map(|_| char::from_u32(0x20 + rng.below(0x3000) as u32).unwrap_or('x'))
                .collect(),
        ),
        7 => Value::ByteString(rng.bytes(40)),
        8 => Value::DateTime(rng.next() as i64),
        9 => Value::Interval(rng.next() as u32),
        _ => Value::DateTimeExtended(rng.next() as i64),
    };
    Item::new(tag, value)
}

#[test]
fn accepts_every_generated_item_and_round_trips_it() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..5_000 {
        let original = item(&mut rng, 4);
        let bytes = ttlv::encode(&original);
        assert_eq!(bytes.len(), original.encoded_len());
        assert_eq!(bytes.len() % 8, 0);
        let header: [u8; 8] = bytes[..8].try_into().unwrap();
        assert_eq!(ttlv::message_length(&header).unwrap(), bytes.len());
        let decoded = ttlv::decode(&bytes, &Limits::default())
            .unwrap_or_else(|e| panic!("{e}\n{original:?}"));
        assert_eq!(decoded, original);
    }
}

/// Random byte flips, insertions and deletions in every message vector: the decoders
/// return (no panic), and whatever the typed decoder accepts re-encodes to a message
/// that decodes to the same value.
#[test]
fn mutated_vectors_never_panic_and_accepted_ones_are_stable() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let names: Vec<String> = all_vectors()
        .into_iter()
        .filter(|n| n.ends_with("-request") || n.ends_with("-response"))
        .collect();
    let mut accepted = 0;
    for round in 0..20_000 {
        let name = &names[round % names.len()];
        let mut bytes = vector(name);
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bytes.len() as u64) as usize;
            match rng.below(4) {
                0 => bytes[at] ^= 1 << rng.below(8),
                1 => bytes[at] = rng.next() as u8,
                2 => bytes.insert(at, rng.next() as u8),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        let limits = Limits::default();
        if let Ok(request) = RequestMessage::decode(&bytes, &limits) {
            let again = RequestMessage::decode(&request.encode(), &limits).unwrap();
            assert_eq!(again, request);
            accepted += 1;
        }
        if let Ok(response) = ResponseMessage::decode(&bytes, &limits) {
            let again = ResponseMessage::decode(&response.encode(), &limits).unwrap();
            assert_eq!(again, response);
            accepted += 1;
        }
    }
    // Flipped bits inside values (a UID letter, an enumeration) stay valid messages.
    assert!(accepted > 100, "{accepted}");
}
