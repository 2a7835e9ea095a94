//! KMIP 1.0 specification section 9.1.2: each item type under the example tag
//! `0x420020`, encoded and decoded byte for byte.

use kmip::tag::Tag;
use kmip::ttlv::{self, Item, Limits, Value};

use crate::vector;

const EXAMPLE: Tag = Tag(0x42_0020);

fn check(name: &str, item: Item) {
    let bytes = vector(name);
    assert_eq!(
        hex::encode_upper(ttlv::encode(&item)),
        hex::encode_upper(&bytes),
        "{name}"
    );
    assert_eq!(
        ttlv::decode(&bytes, &Limits::default()).unwrap(),
        item,
        "{name}"
    );
}

#[test]
fn integer() {
    check("1.0-spec-9.1.2-integer", Item::integer(EXAMPLE, 8));
}

#[test]
fn long_integer() {
    check(
        "1.0-spec-9.1.2-long-integer",
        Item::long_integer(EXAMPLE, 123_456_789_000_000_000),
    );
}

#[test]
fn big_integer() {
    // 1234567890000000000000000000 = 0x03FD35EB6BC2DF4618080000, sign-extended to 16 bytes.
    let mut bytes = vec![0u8; 4];
    bytes.extend(hex::decode("03FD35EB6BC2DF4618080000").unwrap());
    check(
        "1.0-spec-9.1.2-big-integer",
        Item::big_integer(EXAMPLE, bytes),
    );
}

#[test]
fn enumeration() {
    check(
        "1.0-spec-9.1.2-enumeration",
        Item::enumeration(EXAMPLE, 255),
    );
}

#[test]
fn boolean() {
    check("1.0-spec-9.1.2-boolean", Item::boolean(EXAMPLE, true));
}

#[test]
fn text_string() {
    check(
        "1.0-spec-9.1.2-text-string",
        Item::text(EXAMPLE, "Hello World"),
    );
}

#[test]
fn byte_string() {
    check(
        "1.0-spec-9.1.2-byte-string",
        Item::bytes(EXAMPLE, vec![1, 2, 3]),
    );
}

#[test]
fn date_time() {
    // 2008-03-14T11:56:40Z
    check(
        "1.0-spec-9.1.2-date-time",
        Item::date_time(EXAMPLE, 1_205_495_800),
    );
}

#[test]
fn interval() {
    check("1.0-spec-9.1.2-interval", Item::interval(EXAMPLE, 864_000));
}

#[test]
fn structure() {
    check(
        "1.0-spec-9.1.2-structure",
        Item::structure(
            EXAMPLE,
            vec![
                Item::enumeration(Tag::APPLICATION_SPECIFIC_INFORMATION, 254),
                Item::integer(Tag::ARCHIVE_DATE, 255),
            ],
        ),
    );
}

#[test]
fn accepts_date_time_extended() {
    // Not in the 1.0 vectors (KMIP 2.0 section 9.1.1.4): type 0x0B, 8 bytes, microseconds.
    let item = Item::date_time_extended(EXAMPLE, 1_205_495_800_000_001);
    let bytes = ttlv::encode(&item);
    assert_eq!(
        hex::encode_upper(&bytes),
        "4200200B00000008000448645CEFEE01"
    );
    assert_eq!(ttlv::decode(&bytes, &Limits::default()).unwrap(), item);
}

#[test]
fn accepts_unknown_tags_and_keeps_them() {
    let item = Item::structure(Tag(0x54_0001), vec![Item::text(Tag(0x54_FFFF), "vendor")]);
    let bytes = ttlv::encode(&item);
    let back = ttlv::decode(&bytes, &Limits::default()).unwrap();
    assert_eq!(back, item);
    assert_eq!(format!("{:?}", back.tag), "0x540001");
    assert!(matches!(&back.children()[0].value, Value::TextString(s) if s == "vendor"));
}

#[test]
fn text_of_multiple_of_8_bytes_gets_no_padding() {
    let item = Item::text(EXAMPLE, "12345678");
    assert_eq!(ttlv::encode(&item).len(), 16);
    let empty = Item::bytes(EXAMPLE, Vec::new());
    assert_eq!(hex::encode_upper(ttlv::encode(&empty)), "4200200800000000");
}

#[test]
fn names_print_for_humans_and_unknown_values_in_hex() {
    use kmip::types::{CryptographicUsageMask, Operation, ProtocolVersion, ResultReason};
    assert_eq!(format!("{:?}", Tag::UNIQUE_IDENTIFIER), "UniqueIdentifier");
    assert_eq!(Tag::ATTRIBUTES.to_string(), "Attributes");
    assert_eq!(format!("{:?}", Tag(0x42_7FFF)), "0x427FFF");
    assert_eq!(format!("{:?}", Operation::GET_ATTRIBUTES), "GetAttributes");
    assert_eq!(format!("{}", ResultReason::ITEM_NOT_FOUND), "ItemNotFound");
    assert_eq!(
        format!("{:?}", Operation(0x8000_0001)),
        "Operation(0x80000001)"
    );
    let mask = CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT;
    assert_eq!(format!("{mask:?}"), "Encrypt|Decrypt");
    assert_eq!(mask.to_wire(), 12);
    assert!(mask.contains(CryptographicUsageMask::DECRYPT));
    assert!(!mask.contains(CryptographicUsageMask::WRAP_KEY));
    assert_eq!(
        format!("{:?}", CryptographicUsageMask(0x8000_0004)),
        "Encrypt|0x80000000"
    );
    assert_eq!(ProtocolVersion::V1_4.to_string(), "1.4");
    assert!(ProtocolVersion::V1_4 < ProtocolVersion::V2_0);
}

#[test]
fn debug_of_an_item_hides_key_material() {
    let key = Item::structure(
        Tag::KEY_VALUE,
        vec![Item::bytes(Tag::KEY_MATERIAL, vec![0xAB; 32])],
    );
    let shown = format!("{key:?}");
    assert!(shown.contains("32 bytes redacted"), "{shown}");
    assert!(!shown.contains("ABAB"), "{shown}");
    assert!(format!("{:?}", Item::bytes(EXAMPLE, vec![0xAB])).contains("AB"));
}

#[test]
fn zeroize_bytes_clears_every_byte_string_in_the_tree() {
    let mut item =
        ttlv::decode(&vector("1.0-usecase-4.1-get-response"), &Limits::default()).unwrap();
    item.zeroize_bytes();
    let mut stack = vec![&item];
    let mut seen_text = false;
    while let Some(i) = stack.pop() {
        match &i.value {
            Value::Structure(c) => stack.extend(c),
            Value::ByteString(b) | Value::BigInteger(b) => assert!(b.is_empty(), "{:?}", i.tag),
            Value::TextString(s) => seen_text |= !s.is_empty(),
            _ => {}
        }
    }
    assert!(seen_text, "only byte strings are cleared");
}
