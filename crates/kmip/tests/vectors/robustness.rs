//! Malformed input: every corruption is a typed error that says what and where, never a
//! panic. The first half attacks the TTLV reader with the published vectors as seeds;
//! the second half feeds well-formed TTLV with the wrong schema to the typed decoder.

use kmip::error::Error;
use kmip::message::{MessageErrorKind, RequestMessage, ResponseMessage};
use kmip::tag::Tag;
use kmip::ttlv::{self, DecodeErrorKind, Item, ItemType, Limits, Value};

use crate::{all_vectors, vector};

fn decode_kind(bytes: &[u8]) -> DecodeErrorKind {
    ttlv::decode(bytes, &Limits::default())
        .expect_err("corrupt input must be rejected")
        .kind
}

fn messages() -> Vec<String> {
    all_vectors()
        .into_iter()
        .filter(|n| n.ends_with("-request") || n.ends_with("-response"))
        .collect()
}

/// Decodes a whole-message vector with the typed decoder its name calls for.
fn typed_decode(name: &str, bytes: &[u8]) -> Result<(), Error> {
    if name.ends_with("-request") {
        RequestMessage::decode(bytes, &Limits::default()).map(drop)
    } else {
        ResponseMessage::decode(bytes, &Limits::default()).map(drop)
    }
}

#[test]
fn rejects_every_truncated_copy_of_every_vector() {
    let mut cases = 0;
    for name in all_vectors() {
        let bytes = vector(&name);
        for len in 0..bytes.len() {
            let err = ttlv::decode(&bytes[..len], &Limits::default()).expect_err(&name);
            assert!(
                matches!(err.kind, DecodeErrorKind::Truncated { .. }),
                "{name} cut at {len}: {err}"
            );
            cases += 1;
        }
    }
    assert!(cases > 10_000, "{cases}");
}

#[test]
fn rejects_trailing_bytes() {
    for name in all_vectors() {
        let mut bytes = vector(&name);
        let len = bytes.len();
        bytes.push(0);
        let err = ttlv::decode(&bytes, &Limits::default()).unwrap_err();
        assert_eq!(
            err.kind,
            DecodeErrorKind::TrailingBytes { extra: 1 },
            "{name}"
        );
        assert_eq!(err.offset, len, "{name}");
        bytes.extend([0; 7]);
        assert_eq!(
            decode_kind(&bytes),
            DecodeErrorKind::TrailingBytes { extra: 8 }
        );
    }
}

#[test]
fn rejects_structure_length_not_multiple_of_8() {
    // Top level.
    let mut bytes = vector("1.0-usecase-4.1-activate-request");
    bytes[7] += 1;
    bytes.push(0);
    let err = ttlv::decode(&bytes, &Limits::default()).unwrap_err();
    assert!(
        matches!(err.kind, DecodeErrorKind::StructureLength(_)),
        "{err}"
    );
    assert_eq!(err.offset, 0);
    // The Request Header at offset 8, length 0x38 -> 0x3C.
    let mut bytes = vector("1.0-usecase-4.1-activate-request");
    assert_eq!(&bytes[8..12], &[0x42, 0x00, 0x77, 0x01]);
    bytes[15] = 0x3C;
    let err = ttlv::decode(&bytes, &Limits::default()).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::StructureLength(0x3C));
    assert_eq!(err.offset, 8);
    assert_eq!(err.path.to_string(), "RequestMessage/RequestHeader");
}

#[test]
fn rejects_non_zero_padding() {
    let mut bytes = vector("1.0-spec-9.1.2-text-string");
    *bytes.last_mut().unwrap() = 1;
    let err = ttlv::decode(&bytes, &Limits::default()).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::NonZeroPadding);
    assert_eq!(err.offset, 8 + 11);

    let mut bytes = vector("1.0-spec-9.1.2-integer");
    bytes[12] = 0x80;
    assert_eq!(decode_kind(&bytes), DecodeErrorKind::NonZeroPadding);
}

#[test]
fn rejects_non_zero_padding_deep_inside_a_key_block_with_its_path() {
    // The 16-byte Key Material of the 1.0 Get response needs no padding; the Key Value
    // structure is followed by the Cryptographic Algorithm enumeration, whose 4 padding
    // bytes we spoil.
    let bytes = vector("1.0-usecase-4.1-get-response");
    let at = find(&bytes, &[0x42, 0x00, 0x28, 0x05, 0, 0, 0, 4]).expect("Cryptographic Algorithm");
    let mut bad = bytes.clone();
    bad[at + 15] = 0xFF;
    let err = ttlv::decode(&bad, &Limits::default()).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::NonZeroPadding);
    assert_eq!(err.offset, at + 12);
    assert_eq!(
        err.path.to_string(),
        "ResponseMessage/BatchItem/ResponsePayload/SymmetricKey/KeyBlock/CryptographicAlgorithm"
    );
    let shown = err.to_string();
    assert!(
        shown.contains(&format!("byte {}", at + 12)) && shown.contains("KeyBlock"),
        "{shown}"
    );
}

#[test]
fn rejects_unknown_item_type() {
    for bad_type in [0x00, 0x0C, 0x80, 0xFF] {
        let mut bytes = vector("1.0-spec-9.1.2-integer");
        bytes[3] = bad_type;
        assert_eq!(
            decode_kind(&bytes),
            DecodeErrorKind::UnknownItemType(bad_type)
        );
    }
    let mut bytes = vector("1.0-spec-9.1.2-structure");
    bytes[8 + 3] = 0x0C;
    let err = ttlv::decode(&bytes, &Limits::default()).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::UnknownItemType(0x0C));
    assert_eq!(err.offset, 8);
}

#[test]
fn rejects_wrong_length_for_fixed_size_types() {
    for (name, length) in [
        ("1.0-spec-9.1.2-integer", 8),
        ("1.0-spec-9.1.2-enumeration", 8),
        ("1.0-spec-9.1.2-interval", 3),
        ("1.0-spec-9.1.2-boolean", 4),
        ("1.0-spec-9.1.2-long-integer", 4),
        ("1.0-spec-9.1.2-date-time", 16),
        ("1.0-spec-9.1.2-big-integer", 12),
    ] {
        let mut bytes = vector(name);
        bytes[4..8].copy_from_slice(&u32::to_be_bytes(length));
        assert!(
            matches!(decode_kind(&bytes), DecodeErrorKind::WrongLength { length: l, .. } if l == length),
            "{name}"
        );
    }
}

#[test]
fn rejects_over_deep_nesting_without_recursing() {
    fn nested(depth: usize) -> Item {
        let mut item = Item::integer(Tag::BATCH_COUNT, 1);
        for _ in 0..depth {
            item = Item::structure(Tag::BATCH_ITEM, vec![item]);
        }
        item
    }
    let limits = Limits::default();
    assert!(ttlv::decode(&ttlv::encode(&nested(16)), &limits).is_ok());
    let err = ttlv::decode(&ttlv::encode(&nested(17)), &limits).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::TooDeep { max: 16 });
    assert_eq!(err.path.0.len(), 17);
    assert_eq!(err.offset, 16 * 8);

    // 100,000 nested headers (800 kB, under the size limit): an error, not a stack
    // overflow. Built by hand: the encoder itself would recurse.
    let depth = 100_000usize;
    let mut bytes = Vec::with_capacity(depth * 8);
    for level in 0..depth {
        let len = u32::try_from((depth - level - 1) * 8).unwrap();
        bytes.extend([0x42, 0x00, 0x0F, 0x01]);
        bytes.extend(len.to_be_bytes());
    }
    let err = ttlv::decode(&bytes, &limits).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::TooDeep { max: 16 });
}

#[test]
fn rejects_over_size_message_before_reading_it() {
    let bytes = vector("1.1-testcase-12.1-t1-query-response");
    let limits = Limits {
        max_message_bytes: 512,
        ..Limits::default()
    };
    let err = ttlv::decode(&bytes, &limits).unwrap_err();
    assert_eq!(
        err.kind,
        DecodeErrorKind::TooLarge {
            length: bytes.len(),
            max: 512
        }
    );
    // A header claiming 16 MiB with 8 bytes behind it: too large, judged from the
    // header alone (never allocated).
    let mut bytes = vec![0x42, 0x00, 0x78, 0x01, 0x00, 0xFF, 0xFF, 0xF8];
    bytes.extend([0; 8]);
    assert_eq!(
        decode_kind(&bytes),
        DecodeErrorKind::TooLarge {
            length: 0x00FF_FFF8 + 8,
            max: 1 << 20
        }
    );
    // A Byte String claiming 4 GiB inside a small structure: truncated, not allocated.
    let mut bytes = vec![0x42, 0x00, 0x20, 0x01, 0, 0, 0, 16];
    bytes.extend([0x42, 0x00, 0x20, 0x08, 0xFF, 0xFF, 0xFF, 0xFF]);
    bytes.extend([0; 8]);
    assert!(matches!(
        decode_kind(&bytes),
        DecodeErrorKind::Truncated { .. }
    ));
}

#[test]
fn rejects_invalid_utf8() {
    let mut bytes = vector("1.0-spec-9.1.2-text-string");
    bytes[8] = 0xFF;
    assert_eq!(decode_kind(&bytes), DecodeErrorKind::InvalidUtf8);
}

#[test]
fn rejects_boolean_other_than_0_or_1() {
    let mut bytes = vector("1.0-spec-9.1.2-boolean");
    bytes[15] = 2;
    assert_eq!(decode_kind(&bytes), DecodeErrorKind::InvalidBoolean(2));
    let mut bytes = vector("1.0-spec-9.1.2-boolean");
    bytes[8] = 0x80;
    assert!(matches!(
        decode_kind(&bytes),
        DecodeErrorKind::InvalidBoolean(_)
    ));
}

#[test]
fn message_length_reads_the_header_only() {
    for name in all_vectors() {
        let bytes = vector(&name);
        let header: [u8; 8] = bytes[..8].try_into().unwrap();
        assert_eq!(
            ttlv::message_length(&header).unwrap(),
            bytes.len(),
            "{name}"
        );
    }
    let err = ttlv::message_length(&[0x42, 0x00, 0x78, 0x01, 0, 0, 0, 9]).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::StructureLength(9));
    let err = ttlv::message_length(&[0x42, 0x00, 0x78, 0x0D, 0, 0, 0, 8]).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::UnknownItemType(0x0D));
    // A primitive's total includes its padding.
    assert_eq!(
        ttlv::message_length(&[0x42, 0, 0x20, 7, 0, 0, 0, 11]).unwrap(),
        24
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One TTLV item found by walking the bytes.
struct Walked {
    offset: usize,
    item_type: u8,
    length: usize,
    /// Offset of the byte after the parent structure's value.
    parent_end: usize,
}

fn walk(bytes: &[u8], start: usize, end: usize, out: &mut Vec<Walked>) {
    walk_to(bytes, start, end, out, usize::MAX);
}

fn walk_to(bytes: &[u8], start: usize, end: usize, out: &mut Vec<Walked>, depth: usize) {
    let mut pos = start;
    while pos < end {
        let item_type = bytes[pos + 3];
        let length = u32::from_be_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        out.push(Walked {
            offset: pos,
            item_type,
            length,
            parent_end: end,
        });
        if item_type == 1 && depth > 1 {
            walk_to(bytes, pos + 8, pos + 8 + length, out, depth - 1);
        }
        pos += 8 + length.div_ceil(8) * 8;
    }
}

fn set_length(bytes: &mut [u8], offset: usize, length: usize) {
    bytes[offset + 4..offset + 8].copy_from_slice(&u32::try_from(length).unwrap().to_be_bytes());
}

fn total(bytes: &[u8], offset: usize) -> usize {
    let length = u32::from_be_bytes(bytes[offset + 4..offset + 8].try_into().unwrap()) as usize;
    8 + length.div_ceil(8) * 8
}

/// Well-formed TTLV, wrong schema: every inner Structure made to swallow its next
/// sibling, or to give up its last child to its parent, still parses as TTLV; the typed
/// decoder must reject each one.
#[test]
fn rejects_structure_length_moved_by_one_whole_item() {
    let mut cases = 0;
    for name in messages() {
        let bytes = vector(&name);
        let mut items = Vec::new();
        walk(&bytes, 8, bytes.len(), &mut items);
        for s in items.iter().filter(|w| w.item_type == 1) {
            let end = s.offset + 8 + s.length;
            let mut variants = Vec::new();
            if end < s.parent_end {
                variants.push(s.length + total(&bytes, end));
            }
            let mut children = Vec::new();
            walk_to(&bytes, s.offset + 8, end, &mut children, 1);
            if let Some(last) = children.last() {
                variants.push(s.length - total(&bytes, last.offset));
            }
            for length in variants {
                let mut bad = bytes.clone();
                set_length(&mut bad, s.offset, length);
                assert!(
                    ttlv::decode(&bad, &Limits::default()).is_ok(),
                    "{name}@{}: still well-formed TTLV",
                    s.offset
                );
                match typed_decode(&name, &bad) {
                    Err(Error::Message(_)) => {}
                    other => panic!(
                        "{name}: structure at {} with length {length}: {other:?}",
                        s.offset
                    ),
                }
                cases += 1;
            }
        }
    }
    assert!(cases > 300, "{cases}");
}

/// Well-formed TTLV, wrong schema: a Text String whose length is moved into its zero
/// padding gains a NUL character, which no KMIP text field may hold.
#[test]
fn rejects_text_string_length_moved_into_its_padding() {
    let mut cases = 0;
    for name in messages() {
        let bytes = vector(&name);
        let mut items = Vec::new();
        walk(&bytes, 0, bytes.len(), &mut items);
        for t in items
            .iter()
            .filter(|w| w.item_type == 7 && w.length % 8 != 0)
        {
            let mut bad = bytes.clone();
            set_length(&mut bad, t.offset, t.length + 1);
            assert!(ttlv::decode(&bad, &Limits::default()).is_ok());
            match typed_decode(&name, &bad) {
                Err(Error::Message(e)) => {
                    assert!(
                        matches!(e.kind, MessageErrorKind::InvalidValue { .. }),
                        "{name}: {e}"
                    );
                }
                other => panic!("{name}: text at {}: {other:?}", t.offset),
            }
            cases += 1;
        }
    }
    assert!(cases > 50, "{cases}");
}

fn tree(name: &str) -> Item {
    ttlv::decode(&vector(name), &Limits::default()).unwrap()
}

fn children_mut(item: &mut Item) -> &mut Vec<Item> {
    match &mut item.value {
        Value::Structure(c) => c,
        _ => panic!("not a structure"),
    }
}

#[test]
fn rejects_missing_required_field_with_its_path() {
    let mut item = tree("1.0-usecase-4.1-get-response");
    let payload = &mut children_mut(&mut children_mut(&mut item)[1])[2];
    assert_eq!(payload.tag, Tag::RESPONSE_PAYLOAD);
    children_mut(payload).retain(|c| c.tag != Tag::UNIQUE_IDENTIFIER);
    let err = ResponseMessage::from_ttlv(&item).unwrap_err();
    assert_eq!(err.kind, MessageErrorKind::Missing(Tag::UNIQUE_IDENTIFIER));
    assert_eq!(
        err.path.to_string(),
        "ResponseMessage/BatchItem/ResponsePayload"
    );
    assert_eq!(
        err.to_string(),
        "invalid KMIP message at ResponseMessage/BatchItem/ResponsePayload: \
         missing required field UniqueIdentifier"
    );
}

#[test]
fn rejects_field_of_wrong_type() {
    let mut item = tree("1.0-usecase-4.1-activate-request");
    let batch = &mut children_mut(&mut item)[1];
    children_mut(batch)[0] = Item::integer(Tag::OPERATION, 18);
    let err = RequestMessage::from_ttlv(&item).unwrap_err();
    assert_eq!(
        err.kind,
        MessageErrorKind::WrongType {
            tag: Tag::OPERATION,
            expected: ItemType::Enumeration,
            found: ItemType::Integer
        }
    );
    assert_eq!(err.path.to_string(), "RequestMessage/BatchItem/Operation");
}

#[test]
fn rejects_batch_count_that_does_not_match_the_items() {
    let mut item = tree("1.1-testcase-3.1.1-create-request");
    let header = &mut children_mut(&mut item)[0];
    *children_mut(header).last_mut().unwrap() = Item::integer(Tag::BATCH_COUNT, 2);
    let err = RequestMessage::from_ttlv(&item).unwrap_err();
    assert_eq!(
        err.kind,
        MessageErrorKind::BatchCount {
            declared: 2,
            actual: 1
        }
    );
}

#[test]
fn rejects_a_response_where_a_request_is_expected() {
    let bytes = vector("1.0-usecase-4.1-activate-response");
    match RequestMessage::decode(&bytes, &Limits::default()) {
        Err(Error::Message(e)) => assert_eq!(
            e.kind,
            MessageErrorKind::WrongTag {
                expected: Tag::REQUEST_MESSAGE,
                found: Tag::RESPONSE_MESSAGE
            }
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejects_failed_result_without_reason() {
    let mut item = tree("1.1-testcase-17.1-t1-get-attributes-response");
    let batch = &mut children_mut(&mut item)[1];
    children_mut(batch).retain(|c| c.tag != Tag::RESULT_REASON);
    let err = ResponseMessage::from_ttlv(&item).unwrap_err();
    assert_eq!(err.kind, MessageErrorKind::Missing(Tag::RESULT_REASON));
}

#[test]
fn rejects_object_that_does_not_match_its_object_type() {
    let mut item = tree("1.0-usecase-4.1-get-response");
    let payload = &mut children_mut(&mut children_mut(&mut item)[1])[2];
    children_mut(payload)[0] = Item::enumeration(Tag::OBJECT_TYPE, 7); // Secret Data
    let err = ResponseMessage::from_ttlv(&item).unwrap_err();
    assert_eq!(err.kind, MessageErrorKind::Missing(Tag::SECRET_DATA));
}

#[test]
fn accepts_unknown_operation_as_other_payload() {
    let mut item = tree("1.0-usecase-4.1-activate-request");
    let batch = &mut children_mut(&mut item)[1];
    children_mut(batch)[0] = Item::enumeration(Tag::OPERATION, 0x8000_0001);
    let request = RequestMessage::from_ttlv(&item).unwrap();
    let b = &request.items[0];
    assert_eq!(format!("{:?}", b.operation), "Operation(0x80000001)");
    assert!(
        matches!(&b.payload, kmip::message::RequestPayload::Other(p) if p.tag == Tag::REQUEST_PAYLOAD)
    );
    assert_eq!(request.to_ttlv(), item);
}

/// Found by `fuzz/decode_message`: a KMIP 2.0 `Attributes` holding a 1.x-form
/// `Attribute` named "Random Number Generator" decoded to a different value than its
/// re-encoding (which uses the 2.0 tag). Untyped attributes now have one representation.
#[test]
fn regression_fuzz_v1_form_attribute_inside_v2_attributes_is_stable() {
    let bytes = hex::decode(
        "42007801000001504200770100000038420069010000002042006a020000000400003a01000000004200\
         6b0200000004000000000000000042000d0200000004000000010000000042000f010000010842005c05\
         00000004000000010000000042007901000000f04200570500000004000000020000000042012501000000\
         d84200530100000028420055070000000954656d706c61746532000000000000004200540500000004000000\
         0100000000420008010000003042000a070000001743727930746f6772617068696320416c676f72697468\
         6d0042000b05000000040000000300000000420008010000003042000a070000001752616e646f6d204e75\
         6d6265722047656e657261746f720042000b05000000040000000300000000420008010000003042000a07\
         0000001443727970746f67726170686963204c656e6764680000000042000b020000000400000080000000\
         00",
    )
    .unwrap();
    let limits = Limits::default();
    let request = RequestMessage::decode(&bytes, &limits).unwrap();
    let again = RequestMessage::decode(&request.encode(), &limits).unwrap();
    assert_eq!(again, request);
}

#[test]
fn untyped_attribute_names_and_2_0_tags_map_one_to_one() {
    use kmip::attribute::Attribute;
    // A 1.x name that looks like the hex of a known 2.0 tag stays a 1.x name.
    let odd = Attribute::Other {
        name: "0x420094".into(),
        value: Item::text(Tag::ATTRIBUTE_VALUE, "x"),
    };
    assert_eq!(odd.tag(), None);
    assert_eq!(Attribute::from_v2(&odd.to_v2()).unwrap(), odd);
    // Non-canonical hex is not a tag either.
    let odd = Attribute::Other {
        name: "0x54001".into(),
        value: Item::text(Tag::ATTRIBUTE_VALUE, "x"),
    };
    assert_eq!(odd.tag(), None);
    // An unknown 2.0 tag round-trips through its hex name.
    let vendor = Attribute::from_v2(&Item::integer(Tag(0x54_0001), 1)).unwrap();
    assert_eq!(vendor.name(), "0x540001");
    assert_eq!(vendor.to_v2(), Item::integer(Tag(0x54_0001), 1));
}
