//! The TTLV wire codec (KMIP 1.0-2.0 section 9.1): bytes in, [`Item`] trees out, and
//! back. It knows the eleven item types and nothing of operations or messages; the typed
//! layer lives in [`crate::message`].
//!
//! Every item is a 3-byte tag, a 1-byte type, a 4-byte big-endian length and a value
//! padded with zeros to a multiple of 8 bytes. The decoder is strict: it rejects a
//! length running past its buffer, non-zero padding, an unknown item type, a wrong
//! fixed length, a Structure length that is not a multiple of 8, nesting deeper than
//! [`Limits::max_depth`], a message larger than [`Limits::max_message_bytes`],
//! invalid UTF-8, a Boolean other than 0 or 1, and trailing bytes. Each error carries the
//! byte offset and the tag path where it happened. It never panics, never recurses
//! (structures are decoded with an explicit stack) and allocates only after a length has
//! been checked against the bytes actually present.
//!
//! Hand-written: the Rust TTLV crates available (NLnetLabs `kmip-ttlv`) are serde-based
//! with stringly-typed errors and no depth bound; the format is small enough that a
//! direct codec is simpler to make strict.
//!
//! ```
//! use kmip::tag::Tag;
//! use kmip::ttlv::{self, Item, Limits};
//!
//! let item = Item::structure(Tag::PROTOCOL_VERSION, vec![
//!     Item::integer(Tag::PROTOCOL_VERSION_MAJOR, 1),
//!     Item::integer(Tag::PROTOCOL_VERSION_MINOR, 4),
//! ]);
//! let bytes = ttlv::encode(&item);
//! assert_eq!(bytes.len(), 40);
//! assert_eq!(ttlv::decode(&bytes, &Limits::default()).unwrap(), item);
//! ```

use std::fmt;

use zeroize::Zeroize;

use crate::tag::Tag;

/// The one-byte item type of a TTLV item (KMIP 1.0 section 9.1.1.2; `DateTimeExtended`
/// is KMIP 2.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ItemType {
    /// `0x01`: a sequence of items.
    Structure = 0x01,
    /// `0x02`: 32-bit signed integer.
    Integer = 0x02,
    /// `0x03`: 64-bit signed integer.
    LongInteger = 0x03,
    /// `0x04`: two's complement big-endian integer, length a multiple of 8.
    BigInteger = 0x04,
    /// `0x05`: 32-bit unsigned enumeration value.
    Enumeration = 0x05,
    /// `0x06`: 64-bit 0 or 1.
    Boolean = 0x06,
    /// `0x07`: UTF-8 text.
    TextString = 0x07,
    /// `0x08`: opaque bytes.
    ByteString = 0x08,
    /// `0x09`: POSIX time in seconds, 64-bit signed.
    DateTime = 0x09,
    /// `0x0A`: 32-bit unsigned number of seconds.
    Interval = 0x0A,
    /// `0x0B`: POSIX time in microseconds, 64-bit signed (KMIP 2.0).
    DateTimeExtended = 0x0B,
}

impl ItemType {
    /// The item type for a wire byte, or `None` for an undefined one.
    pub fn from_u8(byte: u8) -> Option<ItemType> {
        Some(match byte {
            0x01 => ItemType::Structure,
            0x02 => ItemType::Integer,
            0x03 => ItemType::LongInteger,
            0x04 => ItemType::BigInteger,
            0x05 => ItemType::Enumeration,
            0x06 => ItemType::Boolean,
            0x07 => ItemType::TextString,
            0x08 => ItemType::ByteString,
            0x09 => ItemType::DateTime,
            0x0A => ItemType::Interval,
            0x0B => ItemType::DateTimeExtended,
            _ => return None,
        })
    }

    /// The length field a value of this type must carry, for fixed-size types.
    pub fn fixed_length(self) -> Option<u32> {
        match self {
            ItemType::Integer | ItemType::Enumeration | ItemType::Interval => Some(4),
            ItemType::LongInteger
            | ItemType::Boolean
            | ItemType::DateTime
            | ItemType::DateTimeExtended => Some(8),
            ItemType::Structure
            | ItemType::BigInteger
            | ItemType::TextString
            | ItemType::ByteString => None,
        }
    }
}

/// The value of a TTLV item, one variant per item type.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// Child items, in wire order.
    Structure(Vec<Item>),
    /// Integer (32-bit signed).
    Integer(i32),
    /// Long Integer (64-bit signed).
    LongInteger(i64),
    /// Big Integer: two's complement big-endian bytes, as on the wire (the encoder pads
    /// nothing: give it a multiple of 8 bytes).
    BigInteger(Vec<u8>),
    /// Enumeration (32-bit unsigned).
    Enumeration(u32),
    /// Boolean.
    Boolean(bool),
    /// Text String (UTF-8).
    TextString(String),
    /// Byte String.
    ByteString(Vec<u8>),
    /// Date-Time, POSIX seconds.
    DateTime(i64),
    /// Interval, seconds.
    Interval(u32),
    /// Date-Time Extended, POSIX microseconds (KMIP 2.0).
    DateTimeExtended(i64),
}

impl Value {
    /// The item type of this value.
    pub fn item_type(&self) -> ItemType {
        match self {
            Value::Structure(_) => ItemType::Structure,
            Value::Integer(_) => ItemType::Integer,
            Value::LongInteger(_) => ItemType::LongInteger,
            Value::BigInteger(_) => ItemType::BigInteger,
            Value::Enumeration(_) => ItemType::Enumeration,
            Value::Boolean(_) => ItemType::Boolean,
            Value::TextString(_) => ItemType::TextString,
            Value::ByteString(_) => ItemType::ByteString,
            Value::DateTime(_) => ItemType::DateTime,
            Value::Interval(_) => ItemType::Interval,
            Value::DateTimeExtended(_) => ItemType::DateTimeExtended,
        }
    }
}

/// One TTLV item: a tag and a value. Not `Copy`; `Debug` redacts the values of
/// key-material tags (see [`is_secret_tag`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Item {
    /// The item's tag.
    pub tag: Tag,
    /// The item's value.
    pub value: Value,
}

/// Tags whose values are secret (key bytes, private key components, passwords):
/// `Debug` of an [`Item`] prints their length only.
pub fn is_secret_tag(tag: Tag) -> bool {
    matches!(
        tag,
        Tag::KEY
            | Tag::KEY_MATERIAL
            | Tag::PASSWORD
            | Tag::D
            | Tag::P
            | Tag::Q
            | Tag::X
            | Tag::PRIVATE_EXPONENT
            | Tag::PRIME_EXPONENT_P
            | Tag::PRIME_EXPONENT_Q
            | Tag::CRT_COEFFICIENT
            | Tag::SECRET_DATA
            | Tag::CREDENTIAL_VALUE
    )
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: ", self.tag)?;
        let secret = is_secret_tag(self.tag);
        match &self.value {
            Value::Structure(items) => f.debug_list().entries(items).finish(),
            Value::ByteString(b) | Value::BigInteger(b) if secret => {
                write!(
                    f,
                    "{:?}(<{} bytes redacted>)",
                    self.value.item_type(),
                    b.len()
                )
            }
            Value::TextString(s) if secret => {
                write!(f, "TextString(<{} bytes redacted>)", s.len())
            }
            Value::ByteString(b) => write!(f, "ByteString({})", hex::encode_upper(b)),
            Value::BigInteger(b) => write!(f, "BigInteger({})", hex::encode_upper(b)),
            Value::Integer(v) => write!(f, "Integer({v})"),
            Value::LongInteger(v) => write!(f, "LongInteger({v})"),
            Value::Enumeration(v) => write!(f, "Enumeration(0x{v:08X})"),
            Value::Boolean(v) => write!(f, "Boolean({v})"),
            Value::TextString(v) => write!(f, "TextString({v:?})"),
            Value::DateTime(v) => write!(f, "DateTime({v})"),
            Value::Interval(v) => write!(f, "Interval({v})"),
            Value::DateTimeExtended(v) => write!(f, "DateTimeExtended({v})"),
        }
    }
}

impl Item {
    /// An item from a tag and a value.
    pub fn new(tag: Tag, value: Value) -> Item {
        Item { tag, value }
    }
    /// A Structure item.
    pub fn structure(tag: Tag, items: Vec<Item>) -> Item {
        Item::new(tag, Value::Structure(items))
    }
    /// An Integer item.
    pub fn integer(tag: Tag, v: i32) -> Item {
        Item::new(tag, Value::Integer(v))
    }
    /// A Long Integer item.
    pub fn long_integer(tag: Tag, v: i64) -> Item {
        Item::new(tag, Value::LongInteger(v))
    }
    /// A Big Integer item (bytes as on the wire, a multiple of 8 long).
    pub fn big_integer(tag: Tag, v: Vec<u8>) -> Item {
        Item::new(tag, Value::BigInteger(v))
    }
    /// An Enumeration item.
    pub fn enumeration(tag: Tag, v: u32) -> Item {
        Item::new(tag, Value::Enumeration(v))
    }
    /// A Boolean item.
    pub fn boolean(tag: Tag, v: bool) -> Item {
        Item::new(tag, Value::Boolean(v))
    }
    /// A Text String item.
    pub fn text(tag: Tag, v: impl Into<String>) -> Item {
        Item::new(tag, Value::TextString(v.into()))
    }
    /// A Byte String item.
    pub fn bytes(tag: Tag, v: impl Into<Vec<u8>>) -> Item {
        Item::new(tag, Value::ByteString(v.into()))
    }
    /// A Date-Time item (POSIX seconds).
    pub fn date_time(tag: Tag, v: i64) -> Item {
        Item::new(tag, Value::DateTime(v))
    }
    /// An Interval item (seconds).
    pub fn interval(tag: Tag, v: u32) -> Item {
        Item::new(tag, Value::Interval(v))
    }
    /// A Date-Time Extended item (POSIX microseconds).
    pub fn date_time_extended(tag: Tag, v: i64) -> Item {
        Item::new(tag, Value::DateTimeExtended(v))
    }

    /// The item type of the value.
    pub fn item_type(&self) -> ItemType {
        self.value.item_type()
    }
    /// The children of a Structure; empty for any other type.
    pub fn children(&self) -> &[Item] {
        match &self.value {
            Value::Structure(items) => items,
            _ => &[],
        }
    }
    /// The first child with `tag`, if this is a Structure that has one.
    pub fn find(&self, tag: Tag) -> Option<&Item> {
        self.children().iter().find(|i| i.tag == tag)
    }
    /// Every child with `tag`, in order.
    pub fn find_all(&self, tag: Tag) -> impl Iterator<Item = &Item> {
        self.children().iter().filter(move |i| i.tag == tag)
    }
    /// The children, if this is a Structure.
    pub fn as_structure(&self) -> Option<&[Item]> {
        match &self.value {
            Value::Structure(items) => Some(items),
            _ => None,
        }
    }
    /// The value, if this is an Integer.
    pub fn as_integer(&self) -> Option<i32> {
        match self.value {
            Value::Integer(v) => Some(v),
            _ => None,
        }
    }
    /// The value, if this is a Long Integer.
    pub fn as_long_integer(&self) -> Option<i64> {
        match self.value {
            Value::LongInteger(v) => Some(v),
            _ => None,
        }
    }
    /// The value, if this is an Enumeration.
    pub fn as_enumeration(&self) -> Option<u32> {
        match self.value {
            Value::Enumeration(v) => Some(v),
            _ => None,
        }
    }
    /// The value, if this is a Boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            Value::Boolean(v) => Some(v),
            _ => None,
        }
    }
    /// The value, if this is a Text String.
    pub fn as_text(&self) -> Option<&str> {
        match &self.value {
            Value::TextString(v) => Some(v),
            _ => None,
        }
    }
    /// The value, if this is a Byte String.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.value {
            Value::ByteString(v) => Some(v),
            _ => None,
        }
    }
    /// The value, if this is a Big Integer.
    pub fn as_big_integer(&self) -> Option<&[u8]> {
        match &self.value {
            Value::BigInteger(v) => Some(v),
            _ => None,
        }
    }
    /// The value, if this is a Date-Time.
    pub fn as_date_time(&self) -> Option<i64> {
        match self.value {
            Value::DateTime(v) => Some(v),
            _ => None,
        }
    }
    /// The value, if this is an Interval.
    pub fn as_interval(&self) -> Option<u32> {
        match self.value {
            Value::Interval(v) => Some(v),
            _ => None,
        }
    }
    /// The value, if this is a Date-Time Extended.
    pub fn as_date_time_extended(&self) -> Option<i64> {
        match self.value {
            Value::DateTimeExtended(v) => Some(v),
            _ => None,
        }
    }

    /// Overwrites every Byte String and Big Integer in the tree with zeros (then
    /// empties them), for trees that held key material or plaintext. Iterative, so any
    /// depth is fine.
    pub fn zeroize_bytes(&mut self) {
        let mut stack: Vec<&mut Item> = vec![self];
        while let Some(item) = stack.pop() {
            match &mut item.value {
                Value::Structure(children) => stack.extend(children.iter_mut()),
                Value::ByteString(b) | Value::BigInteger(b) => b.zeroize(),
                _ => {}
            }
        }
    }

    /// The number of bytes [`encode`] produces for this item.
    pub fn encoded_len(&self) -> usize {
        8 + match &self.value {
            Value::Structure(items) => items.iter().map(Item::encoded_len).sum(),
            Value::BigInteger(b) | Value::ByteString(b) => padded(b.len()),
            Value::TextString(s) => padded(s.len()),
            _ => 8,
        }
    }
}

/// Bounds the decoder enforces on untrusted input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message accepted, header included (default 1 MiB).
    pub max_message_bytes: usize,
    /// Deepest structure nesting accepted; the top-level item is at depth 1
    /// (default 16; real KMIP messages need at most 9).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 1 << 20,
            max_depth: 16,
        }
    }
}

/// A path of tags from the top-level item down to where an error happened, shown as
/// `ResponseMessage/BatchItem/ResponsePayload`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct TagPath(pub Vec<Tag>);

impl fmt::Display for TagPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, tag) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            write!(f, "{tag}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TagPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A TTLV decoding failure: what went wrong, at which byte offset of the input, and
/// under which tag path (the path includes the offending item's tag when it was read).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed TTLV at byte {offset} ({path}): {kind}")]
pub struct DecodeError {
    /// Byte offset in the input where the offending item (or field) starts.
    pub offset: usize,
    /// Tags from the top-level item down to the offending item.
    pub path: TagPath,
    /// What is wrong.
    pub kind: DecodeErrorKind,
}

/// The kinds of [`DecodeError`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input (or the enclosing structure) ends before the item does.
    #[error("item needs {needed} bytes but only {available} remain")]
    Truncated {
        /// Bytes the item claims, header and padding included.
        needed: usize,
        /// Bytes left in the input or enclosing structure.
        available: usize,
    },
    /// Bytes follow the single top-level item.
    #[error("{extra} trailing bytes after the top-level item")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// The type byte is not one of the eleven KMIP item types.
    #[error("unknown item type 0x{0:02X}")]
    UnknownItemType(u8),
    /// A fixed-size type carries the wrong length, or a Big Integer's length is not a
    /// multiple of 8.
    #[error("{item_type:?} with length {length}")]
    WrongLength {
        /// The item's type.
        item_type: ItemType,
        /// The length it carries.
        length: u32,
    },
    /// A Structure's length is not a multiple of 8.
    #[error("structure length {0} is not a multiple of 8")]
    StructureLength(u32),
    /// Padding bytes are not zero.
    #[error("non-zero padding")]
    NonZeroPadding,
    /// Structures nest deeper than [`Limits::max_depth`].
    #[error("nesting deeper than {max}")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// The message is larger than [`Limits::max_message_bytes`].
    #[error("message of {length} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Size of the message (or of the input, whichever was checked).
        length: usize,
        /// The limit.
        max: usize,
    },
    /// A Text String is not valid UTF-8.
    #[error("text string is not valid UTF-8")]
    InvalidUtf8,
    /// A Boolean is neither 0 nor 1.
    #[error("boolean value {0} is neither 0 nor 1")]
    InvalidBoolean(u64),
}

fn padded(len: usize) -> usize {
    len.div_ceil(8) * 8
}

/// Encodes `item` to a fresh buffer.
///
/// # Panics
///
/// If a single item's encoding exceeds `u32::MAX` bytes, which TTLV cannot express.
pub fn encode(item: &Item) -> Vec<u8> {
    let mut out = Vec::with_capacity(item.encoded_len());
    encode_into(item, &mut out);
    out
}

/// Appends the encoding of `item` to `out`.
///
/// # Panics
///
/// If a single item's encoding exceeds `u32::MAX` bytes, which TTLV cannot express.
pub fn encode_into(item: &Item, out: &mut Vec<u8>) {
    let tag = item.tag.0.to_be_bytes();
    out.extend_from_slice(&tag[1..]);
    out.push(item.item_type() as u8);
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let value_at = out.len();
    match &item.value {
        Value::Structure(items) => {
            for child in items {
                encode_into(child, out);
            }
        }
        Value::Integer(v) => {
            out.extend_from_slice(&v.to_be_bytes());
            out.extend_from_slice(&[0; 4]);
        }
        Value::Enumeration(v) | Value::Interval(v) => {
            out.extend_from_slice(&v.to_be_bytes());
            out.extend_from_slice(&[0; 4]);
        }
        Value::LongInteger(v) | Value::DateTime(v) | Value::DateTimeExtended(v) => {
            out.extend_from_slice(&v.to_be_bytes());
        }
        Value::Boolean(v) => out.extend_from_slice(&u64::from(*v).to_be_bytes()),
        Value::TextString(s) => put_padded(out, s.as_bytes()),
        Value::ByteString(b) | Value::BigInteger(b) => put_padded(out, b),
    }
    let length = match &item.value {
        Value::Structure(_) => out.len() - value_at,
        Value::TextString(s) => s.len(),
        Value::ByteString(b) | Value::BigInteger(b) => b.len(),
        Value::Integer(_) | Value::Enumeration(_) | Value::Interval(_) => 4,
        _ => 8,
    };
    let length = u32::try_from(length).expect("TTLV item longer than u32::MAX bytes");
    out[len_at..value_at].copy_from_slice(&length.to_be_bytes());
}

fn put_padded(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes);
    out.resize(out.len() + (padded(bytes.len()) - bytes.len()), 0);
}

/// The total length in bytes (header included) of the TTLV item whose first 8 bytes are
/// `header`, for reading one message off a stream. Checks the item type and that the
/// length is plausible for it (a Structure's a multiple of 8, a fixed-size type's
/// exact), but not any size limit: compare the result with
/// [`Limits::max_message_bytes`] before reading the rest.
pub fn message_length(header: &[u8; 8]) -> Result<usize, DecodeError> {
    let (tag, item_type, length) = parse_header(header, 0, &[])?;
    check_length(item_type, length, 0, &[tag])?;
    Ok(8 + padded(length as usize))
}

fn err(offset: usize, path: &[Tag], kind: DecodeErrorKind) -> DecodeError {
    DecodeError {
        offset,
        path: TagPath(path.to_vec()),
        kind,
    }
}

fn parse_header(
    header: &[u8; 8],
    offset: usize,
    path: &[Tag],
) -> Result<(Tag, ItemType, u32), DecodeError> {
    let tag = Tag(u32::from_be_bytes([0, header[0], header[1], header[2]]));
    let item_type = ItemType::from_u8(header[3]).ok_or_else(|| {
        let mut p = path.to_vec();
        p.push(tag);
        err(offset, &p, DecodeErrorKind::UnknownItemType(header[3]))
    })?;
    let length = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    Ok((tag, item_type, length))
}

fn check_length(
    item_type: ItemType,
    length: u32,
    offset: usize,
    path: &[Tag],
) -> Result<(), DecodeError> {
    let ok = match item_type {
        ItemType::Structure => {
            if length % 8 != 0 {
                return Err(err(offset, path, DecodeErrorKind::StructureLength(length)));
            }
            true
        }
        ItemType::BigInteger => length % 8 == 0,
        ItemType::TextString | ItemType::ByteString => true,
        fixed => fixed.fixed_length() == Some(length),
    };
    if ok {
        Ok(())
    } else {
        Err(err(
            offset,
            path,
            DecodeErrorKind::WrongLength { item_type, length },
        ))
    }
}

/// An open structure on the decoder's explicit stack.
struct Frame {
    tag: Tag,
    end: usize,
    items: Vec<Item>,
}

/// Decodes exactly one TTLV item from `bytes` (no trailing bytes), enforcing `limits`.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Item, DecodeError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(err(
            0,
            &[],
            DecodeErrorKind::TooLarge {
                length: bytes.len(),
                max: limits.max_message_bytes,
            },
        ));
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut path: Vec<Tag> = Vec::new();
    let mut pos = 0usize;
    loop {
        // Close every structure that ends here.
        while stack.last().is_some_and(|top| pos >= top.end) {
            let Some(frame) = stack.pop() else { break };
            path.pop();
            let item = Item::structure(frame.tag, frame.items);
            match stack.last_mut() {
                Some(parent) => parent.items.push(item),
                None => return finish(item, pos, bytes.len(), &path),
            }
        }
        let end = stack.last().map_or(bytes.len(), |f| f.end);
        let available = end - pos;
        let header = bytes.get(pos..).and_then(<[u8]>::first_chunk::<8>);
        let Some(header) = header.filter(|_| available >= 8) else {
            return Err(err(
                pos,
                &path,
                DecodeErrorKind::Truncated {
                    needed: 8,
                    available,
                },
            ));
        };
        let (tag, item_type, length) = parse_header(header, pos, &path)?;
        path.push(tag);
        check_length(item_type, length, pos, &path)?;
        let length = length as usize;
        let total = 8 + padded(length);
        if stack.is_empty() && total > limits.max_message_bytes {
            return Err(err(
                pos,
                &path,
                DecodeErrorKind::TooLarge {
                    length: total,
                    max: limits.max_message_bytes,
                },
            ));
        }
        if total > available {
            return Err(err(
                pos,
                &path,
                DecodeErrorKind::Truncated {
                    needed: total,
                    available,
                },
            ));
        }
        let value_at = pos + 8;
        if item_type == ItemType::Structure {
            if stack.len() + 1 > limits.max_depth {
                return Err(err(
                    pos,
                    &path,
                    DecodeErrorKind::TooDeep {
                        max: limits.max_depth,
                    },
                ));
            }
            stack.push(Frame {
                tag,
                end: value_at + length,
                items: Vec::new(),
            });
            pos = value_at;
            continue;
        }
        let raw = &bytes[value_at..value_at + length];
        let padding = &bytes[value_at + length..pos + total];
        if padding.iter().any(|&b| b != 0) {
            return Err(err(
                value_at + length,
                &path,
                DecodeErrorKind::NonZeroPadding,
            ));
        }
        let value = decode_primitive(item_type, raw).map_err(|kind| err(pos, &path, kind))?;
        path.pop();
        let item = Item::new(tag, value);
        pos += total;
        match stack.last_mut() {
            Some(parent) => parent.items.push(item),
            None => return finish(item, pos, bytes.len(), &path),
        }
    }
}

fn finish(item: Item, pos: usize, len: usize, path: &[Tag]) -> Result<Item, DecodeError> {
    if pos == len {
        Ok(item)
    } else {
        Err(err(
            pos,
            path,
            DecodeErrorKind::TrailingBytes { extra: len - pos },
        ))
    }
}

fn be8(raw: &[u8]) -> [u8; 8] {
    let mut b = [0u8; 8];
    b.copy_from_slice(&raw[..8]);
    b
}

fn be4(raw: &[u8]) -> [u8; 4] {
    let mut b = [0u8; 4];
    b.copy_from_slice(&raw[..4]);
    b
}

/// Decodes a primitive value whose length has already been checked for its type.
fn decode_primitive(item_type: ItemType, raw: &[u8]) -> Result<Value, DecodeErrorKind> {
    Ok(match item_type {
        ItemType::Integer => Value::Integer(i32::from_be_bytes(be4(raw))),
        ItemType::Enumeration => Value::Enumeration(u32::from_be_bytes(be4(raw))),
        ItemType::Interval => Value::Interval(u32::from_be_bytes(be4(raw))),
        ItemType::LongInteger => Value::LongInteger(i64::from_be_bytes(be8(raw))),
        ItemType::DateTime => Value::DateTime(i64::from_be_bytes(be8(raw))),
        ItemType::DateTimeExtended => Value::DateTimeExtended(i64::from_be_bytes(be8(raw))),
        ItemType::Boolean => match u64::from_be_bytes(be8(raw)) {
            0 => Value::Boolean(false),
            1 => Value::Boolean(true),
            other => return Err(DecodeErrorKind::InvalidBoolean(other)),
        },
        ItemType::TextString => Value::TextString(
            std::str::from_utf8(raw)
                .map_err(|_| DecodeErrorKind::InvalidUtf8)?
                .to_owned(),
        ),
        ItemType::ByteString => Value::ByteString(raw.to_vec()),
        ItemType::BigInteger => Value::BigInteger(raw.to_vec()),
        // Structures are handled by the caller's stack.
        ItemType::Structure => Value::Structure(Vec::new()),
    })
}
