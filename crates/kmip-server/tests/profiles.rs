//! Conformance with the OASIS KMIP profile test cases: every conversation in
//! `tests/profiles/{1.2,1.4,2.1}/` (the Symmetric Key Lifecycle, Symmetric Key Foundry
//! for FIPS and Baseline Server cases, KMIP XML encoding, copied unchanged; README there)
//! is replayed against a fresh embedded server over mutual TLS, request by request, and
//! each response is compared with the expected one.
//!
//! Reading a file: an element is a tag by its name ([`Tag::from_name`]); `type` is the
//! item type; enumerations are by name (for an `AttributeValue`, the enumeration of the
//! attribute its `AttributeName` names), masks by flag names, byte strings in hex, dates
//! in RFC 3339. Runs of spaces in text are read as one space (the 1.2 files were
//! extracted from a document and carry wrapped text such as `Cryptographic   Usage Mask`).
//!
//! Comparing a response (what the profiles leave to the server is bound, not compared):
//! - `$UNIQUE_IDENTIFIER_N` binds to the identifier the server returns the first time and
//!   must be that identifier afterwards; requests carry the bound value; so does
//!   `$SHORT_UNIQUE_IDENTIFIER_N`, a Byte String (KMIP 2.1 Short Unique Identifier);
//! - a Date-Time matches any Date-Time unless the client sent that very value earlier in
//!   the conversation (then it must be equal): the files carry the times of the run that
//!   produced them, and `$NOW`;
//! - a Byte String the client did not send (generated key material, digests) matches any
//!   Byte String of the same length; one it sent must be equal;
//! - a Result Message (free text) and a Server Correlation Value (a header field KMIP
//!   leaves to the server: the files carry the reference server's) match any text, and
//!   the server may add either; it may also add the optional Located Items of a Locate
//!   answer if it counts the identifiers;
//! - `Attribute` items, the children of a 2.x `Attributes` and the names (references) of
//!   a Get Attribute List answer match in any order; everything else in order, nothing
//!   missing and nothing extra.
//!
//! `tests/profiles/expected.txt` holds the expected outcome of every case; the test fails
//! when a case's outcome differs from it (a regression, or a fix that must be recorded),
//! when a file has no line there or a line no file. KMIP 2.1 cases are first replayed as
//! they are; while the server does not speak 2.1 they are then replayed with 2.0 in every
//! Protocol Version, and recorded as `na:pass-as-2.0` or `na:fail-as-2.0`.
//! `cargo test -p kmip-server --test profiles -- --nocapture` prints the table that
//! docs/kmip.md carries.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kmip::framing;
use kmip::tag::Tag;
use kmip::ttlv::{self, Item, Limits, Value};
use kmip::types::{
    BlockCipherMode, CryptographicAlgorithm, CryptographicUsageMask, KeyFormatType, LinkType,
    NameType, ObjectType, Operation, QueryFunction, ResultReason, ResultStatus,
    RevocationReasonCode, State, same_name,
};
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use testkit::kmip::Embedded;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The profile versions present, one directory each.
const VERSIONS: &[&str] = &["1.2", "1.4", "2.1"];

/// Largest conversation file read (the biggest is about 60 KB).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Stands for `$NOW` (and any server-chosen time) in an expected response.
const ANY_TIME: i64 = i64::MIN;

/// Enumerations the profiles use that `kmip::types` has no type for: (tag, name, value),
/// from the KMIP 1.4 (section 9.1.3.2) and 2.0 (section 11) enumeration tables.
const OTHER_ENUMERATIONS: &[(Tag, &str, u32)] = &[
    (Tag::HASHING_ALGORITHM, "MD5", 0x3),
    (Tag::HASHING_ALGORITHM, "SHA_1", 0x4),
    (Tag::HASHING_ALGORITHM, "SHA_224", 0x5),
    (Tag::HASHING_ALGORITHM, "SHA_256", 0x6),
    (Tag::HASHING_ALGORITHM, "SHA_384", 0x7),
    (Tag::HASHING_ALGORITHM, "SHA_512", 0x8),
    (Tag::BATCH_ERROR_CONTINUATION_OPTION, "Continue", 0x1),
    (Tag::BATCH_ERROR_CONTINUATION_OPTION, "Stop", 0x2),
    (Tag::BATCH_ERROR_CONTINUATION_OPTION, "Undo", 0x3),
    (Tag::CERTIFICATE_TYPE, "X_509", 0x1),
    (Tag::CERTIFICATE_TYPE, "PGP", 0x2),
    (Tag::SECRET_DATA_TYPE, "Password", 0x1),
    (Tag::SECRET_DATA_TYPE, "Seed", 0x2),
    (Tag::INTEROP_FUNCTION, "Begin", 0x1),
    (Tag::INTEROP_FUNCTION, "End", 0x2),
    (Tag::INTEROP_FUNCTION, "Reset", 0x3),
    (Tag::RNG_ALGORITHM, "Unspecified", 0x1),
    (Tag::RNG_ALGORITHM, "FIPS186_2", 0x2),
    (Tag::RNG_ALGORITHM, "DRBG", 0x3),
    (Tag::RNG_ALGORITHM, "NRBG", 0x4),
    (Tag::RNG_ALGORITHM, "ANSIX9_31", 0x5),
    (Tag::RNG_ALGORITHM, "ANSIX9_62", 0x6),
];

/// Mask flags other than the Cryptographic Usage Mask's (KMIP 2.0 section 11.x,
/// Protection Storage Mask).
const OTHER_MASKS: &[(Tag, &str, i32)] = &[
    (Tag::PROTECTION_STORAGE_MASK, "Software", 0x1),
    (Tag::PROTECTION_STORAGE_MASK, "Hardware", 0x2),
];

/// One XML element of a conversation.
#[derive(Debug)]
struct Node {
    name: String,
    kind: Option<String>,
    value: Option<String>,
    children: Vec<Node>,
}

fn node_of(e: &BytesStart<'_>) -> Result<Node, String> {
    let name = String::from_utf8(e.name().as_ref().to_vec()).map_err(|e| e.to_string())?;
    let mut node = Node {
        name,
        kind: None,
        value: None,
        children: Vec::new(),
    };
    for attr in e.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        let text = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?
            .into_owned();
        match attr.key.as_ref() {
            b"type" => node.kind = Some(text),
            b"value" => node.value = Some(text),
            other => return Err(format!("unexpected XML attribute {other:?}")),
        }
    }
    Ok(node)
}

/// The request and expected response messages of a conversation, in order.
fn conversation(text: &str) -> Result<Vec<(Node, Node)>, String> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Node> = Vec::new();
    let mut messages: Vec<Node> = Vec::new();
    let mut finish = |node: Node, stack: &mut Vec<Node>| match stack.last_mut() {
        // Messages may sit inside a wrapper (`KMIP`, `KmipTestCase`): keep them flat.
        _ if node.name == "RequestMessage" || node.name == "ResponseMessage" => messages.push(node),
        Some(parent) if parent.name != "KMIP" && parent.name != "KmipTestCase" => {
            parent.children.push(node)
        }
        _ => {}
    };
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => stack.push(node_of(&e)?),
            Event::Empty(e) => {
                let node = node_of(&e)?;
                finish(node, &mut stack);
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unbalanced end tag")?;
                finish(node, &mut stack);
            }
            Event::Text(t) => return Err(format!("unexpected text {t:?}")),
            Event::Eof => break,
            _ => {}
        }
    }
    let mut pairs = Vec::new();
    let mut it = messages.into_iter();
    while let Some(request) = it.next() {
        let response = it.next().ok_or("a request without a response")?;
        if request.name != "RequestMessage" || response.name != "ResponseMessage" {
            return Err(format!("{} then {}", request.name, response.name));
        }
        pairs.push((request, response));
    }
    Ok(pairs)
}

fn enum_value(tag: Tag, attribute: Option<&str>, text: &str) -> Option<u32> {
    if let Some(hex) = text.strip_prefix("0x") {
        return u32::from_str_radix(hex, 16).ok();
    }
    let kind = match attribute {
        Some(name) if tag == Tag::ATTRIBUTE_VALUE => Tag::from_name(&name.replace(' ', ""))?,
        _ => tag,
    };
    Some(match kind {
        Tag::OPERATION => Operation::from_name(text)?.0,
        Tag::RESULT_STATUS => ResultStatus::from_name(text)?.0,
        Tag::RESULT_REASON => ResultReason::from_name(text)?.0,
        Tag::OBJECT_TYPE => ObjectType::from_name(text)?.0,
        // The XML encoding cannot start a name with a digit: 3DES is `DES3`.
        Tag::CRYPTOGRAPHIC_ALGORITHM if text == "DES3" => CryptographicAlgorithm::TRIPLE_DES.0,
        Tag::CRYPTOGRAPHIC_ALGORITHM => CryptographicAlgorithm::from_name(text)?.0,
        Tag::KEY_FORMAT_TYPE => KeyFormatType::from_name(text)?.0,
        Tag::STATE => State::from_name(text)?.0,
        Tag::REVOCATION_REASON_CODE => RevocationReasonCode::from_name(text)?.0,
        Tag::NAME_TYPE => NameType::from_name(text)?.0,
        Tag::LINK_TYPE => LinkType::from_name(text)?.0,
        Tag::BLOCK_CIPHER_MODE => BlockCipherMode::from_name(text)?.0,
        Tag::QUERY_FUNCTION => QueryFunction::from_name(text)?.0,
        // KMIP 2.x: an Attribute Reference is the attribute's tag.
        Tag::ATTRIBUTE_REFERENCE => Tag::from_name(text)?.0,
        _ => {
            OTHER_ENUMERATIONS
                .iter()
                .find(|(t, name, _)| *t == kind && same_name(name, text))?
                .2
        }
    })
}

fn mask_value(tag: Tag, attribute: Option<&str>, text: &str) -> Option<i32> {
    let kind = match attribute {
        Some(name) if tag == Tag::ATTRIBUTE_VALUE => Tag::from_name(&name.replace(' ', ""))?,
        _ => tag,
    };
    if kind == Tag::CRYPTOGRAPHIC_USAGE_MASK {
        return CryptographicUsageMask::from_names(text).map(|m| m.to_wire());
    }
    let mut mask = 0;
    for name in text.split_whitespace() {
        mask |= OTHER_MASKS
            .iter()
            .find(|(t, n, _)| *t == kind && same_name(n, name))?
            .2;
    }
    Some(mask)
}

/// Unique Identifiers bound so far, by placeholder.
type Bindings = BTreeMap<String, String>;

fn is_placeholder(text: &str) -> bool {
    text.starts_with("$UNIQUE_IDENTIFIER_") || text.starts_with("$SHORT_UNIQUE_IDENTIFIER_")
}

/// The TTLV item of `node`. A request (`bound` given) carries bound identifiers and the
/// current time for `$NOW`; an expected response keeps placeholders and [`ANY_TIME`].
fn item_of(node: &Node, attribute: Option<&str>, bound: Option<&Bindings>) -> Result<Item, String> {
    let tag = Tag::from_name(&node.name).ok_or_else(|| format!("unknown tag {}", node.name))?;
    let text = node.value.as_deref().unwrap_or("");
    let bad = || format!("{}: cannot read {:?} as {:?}", node.name, text, node.kind);
    let value = match node.kind.as_deref() {
        None | Some("Structure") => {
            let mut items = Vec::with_capacity(node.children.len());
            let mut attribute_name = None;
            for child in &node.children {
                if child.name == "AttributeName" {
                    attribute_name = child.value.as_deref();
                }
                items.push(item_of(child, attribute_name, bound)?);
            }
            Value::Structure(items)
        }
        Some("Integer") => Value::Integer(match text.parse() {
            Ok(v) => v,
            Err(_) => match text.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16).map_err(|_| bad())? as i32,
                None => mask_value(tag, attribute, text).ok_or_else(bad)?,
            },
        }),
        Some("LongInteger") => Value::LongInteger(text.parse().map_err(|_| bad())?),
        Some("BigInteger") => Value::BigInteger(hex::decode(text).map_err(|_| bad())?),
        Some("Enumeration") => {
            Value::Enumeration(enum_value(tag, attribute, text).ok_or_else(bad)?)
        }
        Some("Boolean") => Value::Boolean(match text {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(bad()),
        }),
        Some("TextString") => {
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            match bound {
                Some(b) if is_placeholder(&text) => Value::TextString(
                    b.get(&text)
                        .ok_or_else(|| format!("{text} is used before the server returned it"))?
                        .clone(),
                ),
                _ => Value::TextString(text),
            }
        }
        // A Byte String placeholder: the bound bytes in a request; in an expected
        // response the placeholder itself, as text, which `compare` binds.
        Some("ByteString") if is_placeholder(text) => match bound {
            Some(b) => Value::ByteString(
                b.get(text)
                    .and_then(|h| hex::decode(h).ok())
                    .ok_or_else(|| format!("{text} is used before the server returned it"))?,
            ),
            None => Value::TextString(text.to_owned()),
        },
        Some("ByteString") => Value::ByteString(hex::decode(text).map_err(|_| bad())?),
        Some("DateTime") if text == "$NOW" => Value::DateTime(match bound {
            Some(_) => OffsetDateTime::now_utc().unix_timestamp(),
            None => ANY_TIME,
        }),
        Some("DateTime") => Value::DateTime(
            OffsetDateTime::parse(text, &Rfc3339)
                .map_err(|_| bad())?
                .unix_timestamp(),
        ),
        Some("Interval") => Value::Interval(text.parse().map_err(|_| bad())?),
        Some(other) => return Err(format!("{}: unknown item type {other}", node.name)),
    };
    Ok(Item::new(tag, value))
}

/// Sets the Protocol Version Minor of a message header (replaying 2.1 as 2.0).
fn set_minor(message: &mut Item, minor: i32) {
    if let Value::Structure(items) = &mut message.value {
        for item in items {
            if item.tag == Tag::PROTOCOL_VERSION_MINOR {
                item.value = Value::Integer(minor);
            } else if matches!(item.value, Value::Structure(_)) && item.tag != Tag::BATCH_ITEM {
                set_minor(item, minor);
            }
        }
    }
}

/// What the client sent so far: such values are compared exactly in responses.
#[derive(Default)]
struct Sent {
    times: HashSet<i64>,
    bytes: HashSet<Vec<u8>>,
}

impl Sent {
    fn record(&mut self, item: &Item) {
        match &item.value {
            Value::Structure(items) => items.iter().for_each(|i| self.record(i)),
            Value::DateTime(t) => {
                self.times.insert(*t);
            }
            Value::ByteString(b) => {
                self.bytes.insert(b.clone());
            }
            _ => {}
        }
    }
}

fn label(item: &Item) -> String {
    match item.find(Tag::ATTRIBUTE_NAME).and_then(Item::as_text) {
        Some(name) => format!("{}[{name}]", item.tag),
        None => item.tag.to_string(),
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::Structure(items) => format!("a structure of {} items", items.len()),
        Value::ByteString(b) => format!("{} bytes", b.len()),
        Value::DateTime(ANY_TIME) => "any time".into(),
        Value::Enumeration(v) => format!("enumeration 0x{v:X}"),
        Value::TextString(t) => format!("{t:?}"),
        Value::Integer(v) => format!("integer {v} (0x{v:X})"),
        Value::LongInteger(v) => format!("long integer {v}"),
        Value::BigInteger(b) => format!("big integer of {} bytes", b.len()),
        Value::Boolean(v) => format!("{v}"),
        Value::DateTime(v) => format!("time {v}"),
        Value::Interval(v) => format!("interval {v}"),
        Value::DateTimeExtended(v) => format!("time {v} us"),
    }
}

fn compare(
    expected: &Item,
    actual: &Item,
    path: &str,
    sent: &Sent,
    b: &mut Bindings,
) -> Result<(), String> {
    let here = format!("{path}/{}", label(expected));
    if expected.tag != actual.tag {
        return Err(format!("{here}: got {} instead", actual.tag));
    }
    let ok = match (&expected.value, &actual.value) {
        (Value::Structure(e), Value::Structure(a)) => {
            return compare_children(expected.tag, e, a, &here, sent, b);
        }
        (Value::TextString(e), Value::TextString(a)) if is_placeholder(e) => match b.get(e) {
            Some(v) => v == a,
            None => {
                b.insert(e.clone(), a.clone());
                true
            }
        },
        (Value::TextString(e), Value::ByteString(a)) if is_placeholder(e) => {
            let a = hex::encode(a);
            match b.get(e) {
                Some(v) => *v == a,
                None => {
                    b.insert(e.clone(), a);
                    true
                }
            }
        }
        (Value::TextString(_), Value::TextString(_)) if server_text(expected.tag) => true,
        (Value::DateTime(e), Value::DateTime(a)) => {
            *e == ANY_TIME || !sent.times.contains(e) || e == a
        }
        (Value::ByteString(e), Value::ByteString(a)) if !sent.bytes.contains(e) => {
            e.len() == a.len()
        }
        (e, a) => e == a,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{here}: expected {}, got {}",
            show(&expected.value),
            show(&actual.value)
        ))
    }
}

/// Free text a server chooses: compared as text, not by value.
fn server_text(tag: Tag) -> bool {
    tag == Tag::RESULT_MESSAGE || tag == Tag::SERVER_CORRELATION_VALUE
}

/// Lists whose order KMIP leaves open: attributes, and the attribute names (1.x) or
/// references (2.x) of a Get Attribute List answer.
fn unordered(parent: Tag, item: &Item) -> bool {
    parent == Tag::ATTRIBUTES
        || item.tag == Tag::ATTRIBUTE
        || (parent == Tag::RESPONSE_PAYLOAD
            && (item.tag == Tag::ATTRIBUTE_NAME || item.tag == Tag::ATTRIBUTE_REFERENCE))
}

/// Optional fields a server may add that a file does not show: a Result Message, and
/// the Located Items of a Locate answer (KMIP 1.3+), which must then count the
/// identifiers returned.
fn optional_extra(item: &Item, siblings: &[Item], expected: &[Item]) -> bool {
    if expected.iter().any(|e| e.tag == item.tag) {
        return false;
    }
    match item.tag {
        tag if server_text(tag) => true,
        Tag::LOCATED_ITEMS => {
            let returned = siblings
                .iter()
                .filter(|s| s.tag == Tag::UNIQUE_IDENTIFIER)
                .count();
            item.as_integer()
                .is_some_and(|n| usize::try_from(n).is_ok_and(|n| n == returned))
        }
        _ => false,
    }
}

fn compare_children(
    parent: Tag,
    expected: &[Item],
    actual: &[Item],
    path: &str,
    sent: &Sent,
    b: &mut Bindings,
) -> Result<(), String> {
    let actual: Vec<&Item> = actual
        .iter()
        .filter(|a| !optional_extra(a, actual, expected))
        .collect();
    let (e_any, e_seq): (Vec<&Item>, Vec<&Item>) =
        expected.iter().partition(|i| unordered(parent, i));
    let (a_any, a_seq): (Vec<&Item>, Vec<&Item>) =
        actual.iter().copied().partition(|i| unordered(parent, i));
    for (i, e) in e_seq.iter().enumerate() {
        match a_seq.get(i) {
            Some(a) => compare(e, a, path, sent, b)?,
            None => return Err(format!("{path}: {} is missing", label(e))),
        }
    }
    if let Some(extra) = a_seq.get(e_seq.len()) {
        return Err(format!("{path}: unexpected {}", label(extra)));
    }
    let mut used = vec![false; a_any.len()];
    for e in &e_any {
        let found = a_any
            .iter()
            .enumerate()
            .position(|(i, a)| !used[i] && compare(e, a, path, sent, &mut b.clone()).is_ok());
        match found {
            Some(i) => {
                used[i] = true;
                compare(e, a_any[i], path, sent, b)?;
            }
            None => {
                // Explain with the same-named attribute, if the server sent one.
                let twin = a_any
                    .iter()
                    .enumerate()
                    .find(|(i, a)| !used[*i] && label(a) == label(e));
                return Err(match twin {
                    Some((_, a)) => compare(e, a, path, sent, &mut b.clone())
                        .err()
                        .unwrap_or_default(),
                    None => format!("{path}: {} is missing", label(e)),
                });
            }
        }
    }
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(format!("{path}: unexpected {}", label(a_any[i])));
    }
    Ok(())
}

fn operations(message: &Node) -> String {
    let ops: Vec<&str> = message
        .children
        .iter()
        .filter(|c| c.name == "BatchItem")
        .filter_map(|c| c.children.iter().find(|o| o.name == "Operation"))
        .filter_map(|o| o.value.as_deref())
        .collect();
    ops.join("+")
}

/// Replays a conversation on a fresh server; `minor` rewrites every Protocol Version.
async fn replay(pairs: &[(Node, Node)], minor: Option<i32>) -> Result<(), String> {
    let server = Embedded::start().await;
    let mut stream = server.raw_connection().await;
    let mut bound = Bindings::new();
    let mut sent = Sent::default();
    for (n, (request, response)) in pairs.iter().enumerate() {
        let at = format!("message {} ({})", n + 1, operations(request));
        let mut request_item =
            item_of(request, None, Some(&bound)).map_err(|e| format!("{at}: request: {e}"))?;
        let mut expected =
            item_of(response, None, None).map_err(|e| format!("{at}: response: {e}"))?;
        if let Some(minor) = minor {
            set_minor(&mut request_item, minor);
            set_minor(&mut expected, minor);
        }
        sent.record(&request_item);
        framing::write_message(&mut stream, &ttlv::encode(&request_item))
            .await
            .map_err(|e| format!("{at}: write: {e}"))?;
        let bytes = framing::read_message(&mut stream, 1 << 20)
            .await
            .map_err(|e| format!("{at}: read: {e}"))?
            .ok_or_else(|| format!("{at}: the server closed the connection"))?;
        let actual = ttlv::decode(&bytes, &Limits::default()).map_err(|e| format!("{at}: {e}"))?;
        compare(&expected, &actual, "", &sent, &mut bound).map_err(|e| {
            let said = actual
                .find(Tag::BATCH_ITEM)
                .and_then(|i| i.find(Tag::RESULT_MESSAGE))
                .and_then(Item::as_text)
                .map(|m| format!(" (server: {m:?})"))
                .unwrap_or_default();
            format!("{at}: {e}{said}")
        })?;
    }
    Ok(())
}

/// A case's outcome: the status recorded in expected.txt and the runner's detail.
async fn run_case(version: &str, path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let pairs = match conversation(&text) {
        Ok(p) => p,
        Err(e) => return ("fail".into(), format!("unreadable: {e}")),
    };
    match replay(&pairs, None).await {
        Ok(()) => ("pass".into(), String::new()),
        // Not applicable only while the server refuses the version itself.
        Err(e) if version != "2.1" || !e.contains("protocol version 2.1 is not supported") => {
            ("fail".into(), e)
        }
        Err(native) => match replay(&pairs, Some(0)).await {
            Ok(()) => ("na:pass-as-2.0".into(), format!("as 2.1: {native}")),
            Err(e) => (
                "na:fail-as-2.0".into(),
                format!("as 2.1: {native}; as 2.0: {e}"),
            ),
        },
    }
}

fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/profiles")
}

/// expected.txt: `<version>/<case> <status> <reason...>` per line, `#` comments.
fn expected_outcomes() -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(cases_dir().join("expected.txt")).unwrap();
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, char::is_whitespace);
        let case = parts.next().unwrap().to_string();
        let status = parts.next().expect("a status after the case").to_string();
        let reason = parts.next().unwrap_or("").trim().to_string();
        assert!(
            ["pass", "fail", "na:pass-as-2.0", "na:fail-as-2.0"].contains(&status.as_str()),
            "expected.txt: unknown status {status:?} for {case}"
        );
        assert!(
            map.insert(case.clone(), (status, reason)).is_none(),
            "{case} twice"
        );
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oasis_profile_test_cases() {
    let mut expected = expected_outcomes();
    let mut table = String::new();
    let mut details = String::new();
    let mut wrong = Vec::new();
    let mut counts: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for version in VERSIONS {
        let dir = cases_dir().join(version);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect();
        files.sort_by_key(|p| {
            // SKFF-M-10 after SKFF-M-9.
            let stem = p.file_stem().unwrap().to_string_lossy().to_string();
            let parts: Vec<&str> = stem.split('-').collect();
            (
                parts[0].to_string(),
                parts[1].to_string(),
                parts[2].parse::<u32>().unwrap_or(0),
            )
        });
        for path in files {
            assert!(path.metadata().unwrap().len() <= MAX_FILE_BYTES);
            let case = format!("{version}/{}", path.file_stem().unwrap().to_string_lossy());
            let (status, detail) = run_case(version, &path).await;
            *counts.entry((version, status.clone())).or_default() += 1;
            let (want, reason) = expected
                .remove(&case)
                .unwrap_or_else(|| ("(no line)".into(), String::new()));
            if want != status {
                wrong.push(format!("{case}: expected {want}, got {status}: {detail}"));
            }
            writeln!(
                table,
                "| {case} | {status} | {} |",
                reason.replace('|', "\\|")
            )
            .unwrap();
            if !detail.is_empty() {
                writeln!(details, "{case}: {detail}").unwrap();
            }
        }
    }
    println!("| case | outcome | reason |\n|---|---|---|\n{table}");
    println!("The runner's first difference in each case that does not pass:\n{details}");
    for ((version, status), n) in &counts {
        println!("{version}: {n} {status}");
    }
    assert!(
        expected.is_empty(),
        "expected.txt names no file: {:?}",
        expected.keys()
    );
    assert!(
        wrong.is_empty(),
        "outcomes differ from expected.txt:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn names_read_as_the_profiles_spell_them() {
    // Acronyms in upper case, underscores, digits first: the spellings of the files.
    assert_eq!(
        Tag::from_name("UniqueBatchItemID"),
        Some(Tag::UNIQUE_BATCH_ITEM_ID)
    );
    assert_eq!(Tag::from_name("CRTCoefficient"), Some(Tag::CRT_COEFFICIENT));
    assert_eq!(Tag::from_name("NoSuchTag"), None);
    assert_eq!(
        enum_value(Tag::KEY_FORMAT_TYPE, None, "PKCS_1"),
        Some(KeyFormatType::PKCS_1.0)
    );
    assert_eq!(
        enum_value(
            Tag::ATTRIBUTE_VALUE,
            Some("Cryptographic Algorithm"),
            "DES3"
        ),
        Some(CryptographicAlgorithm::TRIPLE_DES.0)
    );
    assert_eq!(
        mask_value(
            Tag::ATTRIBUTE_VALUE,
            Some("Cryptographic Usage Mask"),
            "Decrypt   Encrypt"
        ),
        Some(0xC)
    );
    assert_eq!(enum_value(Tag::OPERATION, None, "NoSuchOperation"), None);
}
