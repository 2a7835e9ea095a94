//! Typed KMIP messages (KMIP 1.4 section 7, KMIP 2.0 section 8): request and response
//! messages, their headers and batch items, and one payload type per operation.
//!
//! The typed layer sits on [`crate::ttlv`]: [`RequestMessage::to_ttlv`] builds the
//! item tree and [`RequestMessage::from_ttlv`] reads one back, field by field, in the
//! order the specification gives. The protocol version in the header decides the
//! encoding of attributes (1.x `Template-Attribute` or 2.0 `Attributes`, see
//! [`crate::attribute`]). The decoder is strict: a missing required field, a field of
//! the wrong type, out of order or unknown to its structure, a NUL inside a Text String,
//! or a Batch Count that does not match the batch items is a [`MessageError`] naming the
//! tag path ([`ResponseMessage::decode_lenient`] skips fields with unknown tags, for
//! clients). Payloads of operations this module does not type are kept as
//! [`RequestPayload::Other`] / [`ResponsePayload::Other`], so a server can still answer
//! them with Operation Not Supported.
//!
//! ```
//! use kmip::message::{RequestMessage, RequestBatchItem, RequestPayload};
//! use kmip::ttlv::Limits;
//! use kmip::types::{Operation, ProtocolVersion};
//!
//! let request = RequestMessage::new(
//!     ProtocolVersion::V1_2,
//!     vec![RequestBatchItem::new(
//!         Operation::ACTIVATE,
//!         RequestPayload::Activate { unique_identifier: Some("1".into()) },
//!     )],
//! );
//! let bytes = request.encode();
//! assert_eq!(RequestMessage::decode(&bytes, &Limits::default()).unwrap(), request);
//! ```

mod object;
mod payload;
pub(crate) mod reader;

pub use object::{KeyBlock, KeyMaterial, ManagedObject, SymmetricKey, Template};
pub use payload::{
    CreateRequest, CreateResponse, CryptographicParameters, DecryptRequest, DecryptResponse,
    DiscoverVersionsRequest, DiscoverVersionsResponse, EncryptRequest, EncryptResponse,
    GetAttributeListRequest, GetAttributeListResponse, GetAttributesRequest, GetAttributesResponse,
    GetRequest, GetResponse, LocateRequest, LocateResponse, Name, QueryRequest, QueryResponse,
    ReKeyRequest, ReKeyResponse, RegisterRequest, RegisterResponse, RequestPayload,
    ResponsePayload, RevokeRequest, TemplateAttribute,
};

use crate::error::Error;
use crate::tag::Tag;
use crate::ttlv::{self, Item, ItemType, Limits, TagPath, Value};
use crate::types::{Operation, ProtocolVersion, ResultReason, ResultStatus};
use reader::Reader;

/// Well-formed TTLV that is not the KMIP message expected: which field, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid KMIP message at {path}: {kind}")]
pub struct MessageError {
    /// Tags from the top-level item down to the offending structure or field.
    pub path: TagPath,
    /// What is wrong.
    pub kind: MessageErrorKind,
}

/// The kinds of [`MessageError`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageErrorKind {
    /// A required field is absent (or not where the specification puts it).
    #[error("missing required field {0}")]
    Missing(Tag),
    /// A field this structure does not have, a repeated field, or one out of order.
    #[error("unexpected field {0}")]
    Unexpected(Tag),
    /// A field has the wrong item type.
    #[error("{tag} should be {expected:?} but is {found:?}")]
    WrongType {
        /// The field.
        tag: Tag,
        /// The type the specification gives it.
        expected: ItemType,
        /// The type on the wire.
        found: ItemType,
    },
    /// A structure has the wrong tag (e.g. a response where a request was expected).
    #[error("expected {expected}, found {found}")]
    WrongTag {
        /// The tag expected.
        expected: Tag,
        /// The tag found.
        found: Tag,
    },
    /// A field's value is not acceptable.
    #[error("invalid {tag}: {reason}")]
    InvalidValue {
        /// The field.
        tag: Tag,
        /// Why.
        reason: String,
    },
    /// The header's Batch Count differs from the number of batch items.
    #[error("Batch Count is {declared} but the message has {actual} batch items")]
    BatchCount {
        /// The Batch Count in the header.
        declared: i32,
        /// The batch items present.
        actual: usize,
    },
}

fn version_item(v: ProtocolVersion) -> Item {
    Item::structure(
        Tag::PROTOCOL_VERSION,
        vec![
            Item::integer(Tag::PROTOCOL_VERSION_MAJOR, v.major),
            Item::integer(Tag::PROTOCOL_VERSION_MINOR, v.minor),
        ],
    )
}

fn read_version(mut r: Reader<'_>) -> Result<ProtocolVersion, MessageError> {
    let major = r.req_int(Tag::PROTOCOL_VERSION_MAJOR)?;
    let minor = r.req_int(Tag::PROTOCOL_VERSION_MINOR)?;
    r.finish()?;
    Ok(ProtocolVersion { major, minor })
}

impl ProtocolVersion {
    /// The `Protocol Version` structure.
    pub fn to_ttlv(self) -> Item {
        version_item(self)
    }

    /// Reads a `Protocol Version` structure.
    pub fn from_ttlv(item: &Item) -> Result<Self, MessageError> {
        read_version(Reader::open_at(&[], item)?)
    }
}

fn push_opt<T>(items: &mut Vec<Item>, v: &Option<T>, f: impl FnOnce(&T) -> Item) {
    if let Some(v) = v {
        items.push(f(v));
    }
}

/// Request Header (KMIP 1.4 section 7.2, Table 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    /// Protocol Version: also selects the encoding of the payloads.
    pub protocol_version: ProtocolVersion,
    /// Maximum Response Size in bytes.
    pub maximum_response_size: Option<i32>,
    /// Client Correlation Value (1.4).
    pub client_correlation_value: Option<String>,
    /// Server Correlation Value (1.4).
    pub server_correlation_value: Option<String>,
    /// Asynchronous Indicator.
    pub asynchronous_indicator: Option<bool>,
    /// Attestation Capable Indicator (1.2).
    pub attestation_capable_indicator: Option<bool>,
    /// Attestation Types (1.2), as raw enumeration values.
    pub attestation_types: Vec<u32>,
    /// Authentication structure, kept as TTLV.
    pub authentication: Option<Item>,
    /// Batch Error Continuation Option, raw enumeration value.
    pub batch_error_continuation_option: Option<u32>,
    /// Batch Order Option.
    pub batch_order_option: Option<bool>,
    /// Time Stamp, POSIX seconds.
    pub time_stamp: Option<i64>,
    /// Batch Count: written as given; [`RequestMessage::new`] sets it.
    pub batch_count: i32,
}

impl RequestHeader {
    /// A header with only the required fields.
    pub fn new(protocol_version: ProtocolVersion, batch_count: i32) -> Self {
        RequestHeader {
            protocol_version,
            maximum_response_size: None,
            client_correlation_value: None,
            server_correlation_value: None,
            asynchronous_indicator: None,
            attestation_capable_indicator: None,
            attestation_types: Vec::new(),
            authentication: None,
            batch_error_continuation_option: None,
            batch_order_option: None,
            time_stamp: None,
            batch_count,
        }
    }

    fn to_ttlv(&self) -> Item {
        let mut v = vec![version_item(self.protocol_version)];
        push_opt(&mut v, &self.maximum_response_size, |x| {
            Item::integer(Tag::MAXIMUM_RESPONSE_SIZE, *x)
        });
        push_opt(&mut v, &self.client_correlation_value, |x| {
            Item::text(Tag::CLIENT_CORRELATION_VALUE, x.clone())
        });
        push_opt(&mut v, &self.server_correlation_value, |x| {
            Item::text(Tag::SERVER_CORRELATION_VALUE, x.clone())
        });
        push_opt(&mut v, &self.asynchronous_indicator, |x| {
            Item::boolean(Tag::ASYNCHRONOUS_INDICATOR, *x)
        });
        push_opt(&mut v, &self.attestation_capable_indicator, |x| {
            Item::boolean(Tag::ATTESTATION_CAPABLE_INDICATOR, *x)
        });
        for t in &self.attestation_types {
            v.push(Item::enumeration(Tag::ATTESTATION_TYPE, *t));
        }
        push_opt(&mut v, &self.authentication, Item::clone);
        push_opt(&mut v, &self.batch_error_continuation_option, |x| {
            Item::enumeration(Tag::BATCH_ERROR_CONTINUATION_OPTION, *x)
        });
        push_opt(&mut v, &self.batch_order_option, |x| {
            Item::boolean(Tag::BATCH_ORDER_OPTION, *x)
        });
        push_opt(&mut v, &self.time_stamp, |x| {
            Item::date_time(Tag::TIME_STAMP, *x)
        });
        v.push(Item::integer(Tag::BATCH_COUNT, self.batch_count));
        Item::structure(Tag::REQUEST_HEADER, v)
    }

    fn read(mut r: Reader<'_>) -> Result<Self, MessageError> {
        let protocol_version = read_version(r.req_struct(Tag::PROTOCOL_VERSION)?)?;
        let maximum_response_size = r.opt_int(Tag::MAXIMUM_RESPONSE_SIZE)?;
        let client_correlation_value = r.opt_text(Tag::CLIENT_CORRELATION_VALUE)?;
        let server_correlation_value = r.opt_text(Tag::SERVER_CORRELATION_VALUE)?;
        let asynchronous_indicator = r.opt_bool(Tag::ASYNCHRONOUS_INDICATOR)?;
        let attestation_capable_indicator = r.opt_bool(Tag::ATTESTATION_CAPABLE_INDICATOR)?;
        let attestation_types = r.many_enum(Tag::ATTESTATION_TYPE)?;
        let authentication = r.opt_raw_struct(Tag::AUTHENTICATION)?.cloned();
        let batch_error_continuation_option = r.opt_enum(Tag::BATCH_ERROR_CONTINUATION_OPTION)?;
        let batch_order_option = r.opt_bool(Tag::BATCH_ORDER_OPTION)?;
        let time_stamp = r.opt_date(Tag::TIME_STAMP)?;
        let batch_count = r.req_int(Tag::BATCH_COUNT)?;
        r.finish()?;
        Ok(RequestHeader {
            protocol_version,
            maximum_response_size,
            client_correlation_value,
            server_correlation_value,
            asynchronous_indicator,
            attestation_capable_indicator,
            attestation_types,
            authentication,
            batch_error_continuation_option,
            batch_order_option,
            time_stamp,
            batch_count,
        })
    }
}

/// One operation in a request (KMIP 1.4 section 7.2, Table 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestBatchItem {
    /// Operation.
    pub operation: Operation,
    /// Unique Batch Item ID: required when a message has more than one batch item.
    pub unique_batch_item_id: Option<Vec<u8>>,
    /// Request Payload, typed by `operation`.
    pub payload: RequestPayload,
    /// Message Extension, kept as TTLV.
    pub message_extension: Option<Item>,
}

impl RequestBatchItem {
    /// A batch item with no Unique Batch Item ID or extension.
    pub fn new(operation: Operation, payload: RequestPayload) -> Self {
        RequestBatchItem {
            operation,
            unique_batch_item_id: None,
            payload,
            message_extension: None,
        }
    }

    fn to_ttlv(&self, version: ProtocolVersion) -> Item {
        let mut v = vec![Item::enumeration(Tag::OPERATION, self.operation.0)];
        push_opt(&mut v, &self.unique_batch_item_id, |x| {
            Item::bytes(Tag::UNIQUE_BATCH_ITEM_ID, x.clone())
        });
        v.push(self.payload.to_ttlv(version));
        push_opt(&mut v, &self.message_extension, Item::clone);
        Item::structure(Tag::BATCH_ITEM, v)
    }

    fn read(mut r: Reader<'_>, version: ProtocolVersion) -> Result<Self, MessageError> {
        let operation = Operation(r.req_enum(Tag::OPERATION)?);
        let unique_batch_item_id = r.opt_bytes(Tag::UNIQUE_BATCH_ITEM_ID)?;
        let payload_item = r.require(Tag::REQUEST_PAYLOAD)?;
        let payload = RequestPayload::read(r.path(), operation, version, payload_item)?;
        let message_extension = r.opt_raw_struct(Tag::MESSAGE_EXTENSION)?.cloned();
        r.finish()?;
        Ok(RequestBatchItem {
            operation,
            unique_batch_item_id,
            payload,
            message_extension,
        })
    }
}

/// Request Message (KMIP 1.4 section 7.1): a header and one or more batch items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestMessage {
    /// Request Header.
    pub header: RequestHeader,
    /// Batch Items, in order.
    pub items: Vec<RequestBatchItem>,
}

fn batch_count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl RequestMessage {
    /// A request with a minimal header whose Batch Count matches `items`.
    pub fn new(protocol_version: ProtocolVersion, items: Vec<RequestBatchItem>) -> Self {
        RequestMessage {
            header: RequestHeader::new(protocol_version, batch_count(items.len())),
            items,
        }
    }

    /// The `Request Message` item tree.
    pub fn to_ttlv(&self) -> Item {
        let version = self.header.protocol_version;
        message_to_ttlv(
            Tag::REQUEST_MESSAGE,
            self.header.to_ttlv(),
            self.items.iter().map(|i| i.to_ttlv(version)),
        )
    }

    /// Reads a `Request Message` item tree.
    pub fn from_ttlv(item: &Item) -> Result<Self, MessageError> {
        let (header, items) = read_message(
            item,
            (Tag::REQUEST_MESSAGE, Tag::REQUEST_HEADER),
            RequestHeader::read,
            |h| (h.protocol_version, h.batch_count),
            RequestBatchItem::read,
        )?;
        Ok(RequestMessage { header, items })
    }

    /// The TTLV bytes. The intermediate item tree is zeroized; the bytes returned are
    /// the caller's to protect.
    pub fn encode(&self) -> Vec<u8> {
        encode_zeroized(self.to_ttlv())
    }

    /// Decodes TTLV bytes into a typed request. The intermediate item tree is
    /// zeroized.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, Error> {
        decode_zeroized(bytes, limits, |item| RequestMessage::from_ttlv(item))
    }
}

/// No KMIP Text String holds a NUL character; one that does is most likely a length
/// moved into its zero padding (still well-formed TTLV). Checked over the whole tree,
/// so that raw items kept as TTLV ([`RequestPayload::Other`], unknown attributes) are
/// covered too. Iterative: the tree's depth is bounded by the decoder, but this must
/// not depend on it.
/// A message's item tree: its header, then its batch items.
fn message_to_ttlv(tag: Tag, header: Item, items: impl ExactSizeIterator<Item = Item>) -> Item {
    let mut v = Vec::with_capacity(1 + items.len());
    v.push(header);
    v.extend(items);
    Item::structure(tag, v)
}

/// Reads a message of tag `tags.0` whose header has tag `tags.1`: the header (`header`
/// says its protocol version and declared batch count), then one or more batch items,
/// checked against that count. Text with NUL characters is refused anywhere in it.
fn read_message<'a, H, B>(
    item: &'a Item,
    tags: (Tag, Tag),
    read_header: impl FnOnce(Reader<'a>) -> Result<H, MessageError>,
    header: impl Fn(&H) -> (ProtocolVersion, i32),
    read_item: impl Fn(Reader<'a>, ProtocolVersion) -> Result<B, MessageError>,
) -> Result<(H, Vec<B>), MessageError> {
    reject_nul_in_text(item)?;
    let mut r = Reader::top(item, tags.0)?;
    let head = read_header(r.req_struct(tags.1)?)?;
    let (version, declared) = header(&head);
    let mut items = Vec::new();
    while let Some(b) = r.opt_struct(Tag::BATCH_ITEM)? {
        items.push(read_item(b, version)?);
    }
    if items.is_empty() {
        return Err(r.error(None, MessageErrorKind::Missing(Tag::BATCH_ITEM)));
    }
    check_batch_count(&r, declared, items.len())?;
    r.finish()?;
    Ok((head, items))
}

/// The TTLV bytes of an item tree, which is zeroized afterwards; the bytes returned are
/// the caller's to protect.
fn encode_zeroized(mut item: Item) -> Vec<u8> {
    let bytes = ttlv::encode(&item);
    item.zeroize_bytes();
    bytes
}

/// Decodes TTLV bytes and reads the item tree with `read`, zeroizing the tree whatever
/// the outcome.
fn decode_zeroized<T>(
    bytes: &[u8],
    limits: &Limits,
    read: impl FnOnce(&mut Item) -> Result<T, MessageError>,
) -> Result<T, Error> {
    let mut item = ttlv::decode(bytes, limits)?;
    let message = read(&mut item);
    item.zeroize_bytes();
    Ok(message?)
}

fn reject_nul_in_text(item: &Item) -> Result<(), MessageError> {
    let mut stack: Vec<(&Item, usize)> = vec![(item, 0)];
    let mut path: Vec<Tag> = Vec::new();
    while let Some((item, depth)) = stack.pop() {
        path.truncate(depth);
        match &item.value {
            Value::Structure(children) => {
                path.push(item.tag);
                stack.extend(children.iter().rev().map(|c| (c, depth + 1)));
            }
            Value::TextString(s) if s.contains('\0') => {
                return Err(reader::error_at(
                    &path,
                    Some(item.tag),
                    MessageErrorKind::InvalidValue {
                        tag: item.tag,
                        reason: "text contains a NUL character".into(),
                    },
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_batch_count(r: &Reader<'_>, declared: i32, actual: usize) -> Result<(), MessageError> {
    if usize::try_from(declared).ok() == Some(actual) {
        Ok(())
    } else {
        Err(r.error(None, MessageErrorKind::BatchCount { declared, actual }))
    }
}

/// Response Header (KMIP 1.4 section 7.2, Table 5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHeader {
    /// Protocol Version: also selects the encoding of the payloads.
    pub protocol_version: ProtocolVersion,
    /// Time Stamp, POSIX seconds.
    pub time_stamp: i64,
    /// Nonce (1.2), kept as TTLV.
    pub nonce: Option<Item>,
    /// Attestation Types (1.2), raw enumeration values.
    pub attestation_types: Vec<u32>,
    /// Client Correlation Value (1.4).
    pub client_correlation_value: Option<String>,
    /// Server Correlation Value (1.4).
    pub server_correlation_value: Option<String>,
    /// Batch Count: written as given; [`ResponseMessage::new`] sets it.
    pub batch_count: i32,
}

impl ResponseHeader {
    /// A header with only the required fields.
    pub fn new(protocol_version: ProtocolVersion, time_stamp: i64, batch_count: i32) -> Self {
        ResponseHeader {
            protocol_version,
            time_stamp,
            nonce: None,
            attestation_types: Vec::new(),
            client_correlation_value: None,
            server_correlation_value: None,
            batch_count,
        }
    }

    fn to_ttlv(&self) -> Item {
        let mut v = vec![
            version_item(self.protocol_version),
            Item::date_time(Tag::TIME_STAMP, self.time_stamp),
        ];
        push_opt(&mut v, &self.nonce, Item::clone);
        for t in &self.attestation_types {
            v.push(Item::enumeration(Tag::ATTESTATION_TYPE, *t));
        }
        push_opt(&mut v, &self.client_correlation_value, |x| {
            Item::text(Tag::CLIENT_CORRELATION_VALUE, x.clone())
        });
        push_opt(&mut v, &self.server_correlation_value, |x| {
            Item::text(Tag::SERVER_CORRELATION_VALUE, x.clone())
        });
        v.push(Item::integer(Tag::BATCH_COUNT, self.batch_count));
        Item::structure(Tag::RESPONSE_HEADER, v)
    }

    fn read(mut r: Reader<'_>) -> Result<Self, MessageError> {
        let protocol_version = read_version(r.req_struct(Tag::PROTOCOL_VERSION)?)?;
        let time_stamp = r.req_date(Tag::TIME_STAMP)?;
        let nonce = r.opt_raw_struct(Tag::NONCE)?.cloned();
        let attestation_types = r.many_enum(Tag::ATTESTATION_TYPE)?;
        let client_correlation_value = r.opt_text(Tag::CLIENT_CORRELATION_VALUE)?;
        let server_correlation_value = r.opt_text(Tag::SERVER_CORRELATION_VALUE)?;
        let batch_count = r.req_int(Tag::BATCH_COUNT)?;
        r.finish()?;
        Ok(ResponseHeader {
            protocol_version,
            time_stamp,
            nonce,
            attestation_types,
            client_correlation_value,
            server_correlation_value,
            batch_count,
        })
    }
}

/// The result of one operation (KMIP 1.4 section 7.2, Table 7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseBatchItem {
    /// Operation: absent in some error responses (e.g. Response Too Large).
    pub operation: Option<Operation>,
    /// Unique Batch Item ID, echoed from the request.
    pub unique_batch_item_id: Option<Vec<u8>>,
    /// Result Status.
    pub result_status: ResultStatus,
    /// Result Reason: required when the operation failed.
    pub result_reason: Option<ResultReason>,
    /// Result Message: free text from the server.
    pub result_message: Option<String>,
    /// Asynchronous Correlation Value (for pending operations).
    pub asynchronous_correlation_value: Option<Vec<u8>>,
    /// Response Payload, typed by `operation` when that is known.
    pub payload: Option<ResponsePayload>,
    /// Message Extension, kept as TTLV.
    pub message_extension: Option<Item>,
}

impl ResponseBatchItem {
    /// A successful result carrying `payload`.
    pub fn success(operation: Operation, payload: ResponsePayload) -> Self {
        ResponseBatchItem {
            operation: Some(operation),
            unique_batch_item_id: None,
            result_status: ResultStatus::SUCCESS,
            result_reason: None,
            result_message: None,
            asynchronous_correlation_value: None,
            payload: Some(payload),
            message_extension: None,
        }
    }

    /// A failed result (Operation Failed) with a reason and message.
    pub fn failure(
        operation: Option<Operation>,
        reason: ResultReason,
        message: impl Into<String>,
    ) -> Self {
        ResponseBatchItem {
            operation,
            unique_batch_item_id: None,
            result_status: ResultStatus::OPERATION_FAILED,
            result_reason: Some(reason),
            result_message: Some(message.into()),
            asynchronous_correlation_value: None,
            payload: None,
            message_extension: None,
        }
    }

    fn to_ttlv(&self, version: ProtocolVersion) -> Item {
        let mut v = Vec::new();
        push_opt(&mut v, &self.operation, |x| {
            Item::enumeration(Tag::OPERATION, x.0)
        });
        push_opt(&mut v, &self.unique_batch_item_id, |x| {
            Item::bytes(Tag::UNIQUE_BATCH_ITEM_ID, x.clone())
        });
        v.push(Item::enumeration(Tag::RESULT_STATUS, self.result_status.0));
        push_opt(&mut v, &self.result_reason, |x| {
            Item::enumeration(Tag::RESULT_REASON, x.0)
        });
        push_opt(&mut v, &self.result_message, |x| {
            Item::text(Tag::RESULT_MESSAGE, x.clone())
        });
        push_opt(&mut v, &self.asynchronous_correlation_value, |x| {
            Item::bytes(Tag::ASYNCHRONOUS_CORRELATION_VALUE, x.clone())
        });
        push_opt(&mut v, &self.payload, |x| x.to_ttlv(version));
        push_opt(&mut v, &self.message_extension, Item::clone);
        Item::structure(Tag::BATCH_ITEM, v)
    }

    fn read(mut r: Reader<'_>, version: ProtocolVersion) -> Result<Self, MessageError> {
        let operation = r.opt_enum(Tag::OPERATION)?.map(Operation);
        let unique_batch_item_id = r.opt_bytes(Tag::UNIQUE_BATCH_ITEM_ID)?;
        let result_status = ResultStatus(r.req_enum(Tag::RESULT_STATUS)?);
        let result_reason = r.opt_enum(Tag::RESULT_REASON)?.map(ResultReason);
        let result_message = r.opt_text(Tag::RESULT_MESSAGE)?;
        let asynchronous_correlation_value = r.opt_bytes(Tag::ASYNCHRONOUS_CORRELATION_VALUE)?;
        let payload = match r.next_if(Tag::RESPONSE_PAYLOAD) {
            Some(item) => Some(match operation {
                Some(op) if result_status == ResultStatus::SUCCESS => {
                    ResponsePayload::read(r.path(), op, version, item)?
                }
                _ => {
                    Reader::open_at(r.path(), item)?;
                    ResponsePayload::Other(item.clone())
                }
            }),
            None => None,
        };
        let message_extension = r.opt_raw_struct(Tag::MESSAGE_EXTENSION)?.cloned();
        if result_status == ResultStatus::OPERATION_FAILED && result_reason.is_none() {
            return Err(r.error(None, MessageErrorKind::Missing(Tag::RESULT_REASON)));
        }
        r.finish()?;
        Ok(ResponseBatchItem {
            operation,
            unique_batch_item_id,
            result_status,
            result_reason,
            result_message,
            asynchronous_correlation_value,
            payload,
            message_extension,
        })
    }
}

/// Response Message (KMIP 1.4 section 7.1): a header and one or more batch items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseMessage {
    /// Response Header.
    pub header: ResponseHeader,
    /// Batch Items, in order.
    pub items: Vec<ResponseBatchItem>,
}

impl ResponseMessage {
    /// A response with a minimal header whose Batch Count matches `items`.
    pub fn new(
        protocol_version: ProtocolVersion,
        time_stamp: i64,
        items: Vec<ResponseBatchItem>,
    ) -> Self {
        ResponseMessage {
            header: ResponseHeader::new(protocol_version, time_stamp, batch_count(items.len())),
            items,
        }
    }

    /// The `Response Message` item tree.
    pub fn to_ttlv(&self) -> Item {
        let version = self.header.protocol_version;
        message_to_ttlv(
            Tag::RESPONSE_MESSAGE,
            self.header.to_ttlv(),
            self.items.iter().map(|i| i.to_ttlv(version)),
        )
    }

    /// Reads a `Response Message` item tree.
    pub fn from_ttlv(item: &Item) -> Result<Self, MessageError> {
        let (header, items) = read_message(
            item,
            (Tag::RESPONSE_MESSAGE, Tag::RESPONSE_HEADER),
            ResponseHeader::read,
            |h| (h.protocol_version, h.batch_count),
            ResponseBatchItem::read,
        )?;
        Ok(ResponseMessage { header, items })
    }

    /// The TTLV bytes. The intermediate item tree is zeroized; the bytes returned are
    /// the caller's to protect.
    pub fn encode(&self) -> Vec<u8> {
        encode_zeroized(self.to_ttlv())
    }

    /// Decodes TTLV bytes into a typed response. The intermediate item tree is
    /// zeroized.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, Error> {
        decode_zeroized(bytes, limits, |item| ResponseMessage::from_ttlv(item))
    }

    /// Decodes a response as a client should read a server's answer: a field whose tag
    /// this crate does not know (a vendor extension `0x54xxxx`, a tag of a newer KMIP
    /// version) is skipped wherever it appears, and its tag path returned so that the
    /// caller can report it. Attributes stay whole: an unknown one is an
    /// [`Attribute::Other`](crate::attribute::Attribute::Other), as in [`Self::decode`].
    /// Everything else is as strict as [`Self::decode`] (a known field out of place, a
    /// wrong type, a missing field are errors); a server decodes requests strictly.
    pub fn decode_lenient(bytes: &[u8], limits: &Limits) -> Result<(Self, Vec<TagPath>), Error> {
        let mut skipped = Vec::new();
        // Stripped in place: no second copy of the key material to zeroize.
        let message = decode_zeroized(bytes, limits, |item| {
            strip_unknown(item, &mut Vec::new(), &mut skipped);
            ResponseMessage::from_ttlv(item)
        })?;
        Ok((message, skipped))
    }
}

/// Structures whose children are attributes under their own tags (KMIP 2.0): an unknown
/// child there is an attribute, kept as [`crate::attribute::Attribute::Other`].
const ATTRIBUTE_LISTS: &[Tag] = &[
    Tag::ATTRIBUTES,
    Tag::COMMON_ATTRIBUTES,
    Tag::PRIVATE_KEY_ATTRIBUTES,
    Tag::PUBLIC_KEY_ATTRIBUTES,
];

/// Removes (and zeroizes) every item whose tag has no name in [`Tag`], recording its
/// path; attribute values and the attributes of 2.0 attribute lists are left whole.
/// Recursion is bounded by the depth limit the tree was decoded under.
fn strip_unknown(item: &mut Item, path: &mut Vec<Tag>, skipped: &mut Vec<TagPath>) {
    if item.tag == Tag::ATTRIBUTE_VALUE {
        return;
    }
    let attribute_list = ATTRIBUTE_LISTS.contains(&item.tag);
    if let Value::Structure(children) = &mut item.value {
        path.push(item.tag);
        if !attribute_list {
            for child in children.iter_mut().filter(|c| c.tag.name().is_none()) {
                let mut at = path.clone();
                at.push(child.tag);
                skipped.push(TagPath(at));
                child.zeroize_bytes();
            }
            children.retain(|c| c.tag.name().is_some());
        }
        for child in children.iter_mut().filter(|c| c.tag.name().is_some()) {
            strip_unknown(child, path, skipped);
        }
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribute::Attribute;
    use crate::types::{CryptographicAlgorithm, ObjectType, State};

    /// A Get Attributes (2.0) and a Get (1.4) response, as the server encodes them.
    fn responses() -> Vec<ResponseMessage> {
        let attrs = ResponseBatchItem::success(
            Operation::GET_ATTRIBUTES,
            ResponsePayload::GetAttributes(GetAttributesResponse {
                unique_identifier: "7".into(),
                attributes: vec![Attribute::State(State::ACTIVE)],
            }),
        );
        let key = SymmetricKey {
            key_block: KeyBlock::raw_symmetric(
                CryptographicAlgorithm::AES,
                zeroize::Zeroizing::new(vec![7; 32]),
            ),
        };
        let get = ResponseBatchItem::success(
            Operation::GET,
            ResponsePayload::Get(GetResponse {
                object_type: ObjectType::SYMMETRIC_KEY,
                unique_identifier: "7".into(),
                object: ManagedObject::SymmetricKey(key),
            }),
        );
        vec![
            ResponseMessage::new(ProtocolVersion::V2_0, 1, vec![attrs]),
            ResponseMessage::new(ProtocolVersion::V1_4, 1, vec![get]),
        ]
    }

    /// Appends `extra` to every structure of `item` (depth first), except attribute
    /// values and 2.0 attribute lists (where an unknown tag is an attribute).
    fn extend(item: &mut Item, extra: &Item) {
        if item.tag == Tag::ATTRIBUTE_VALUE || ATTRIBUTE_LISTS.contains(&item.tag) {
            return;
        }
        if let Value::Structure(children) = &mut item.value {
            children.iter_mut().for_each(|c| extend(c, extra));
            children.push(extra.clone());
        }
    }

    /// A 2.x vendor attribute (2.0 section 2.1.1: Vendor Identification, Attribute Name,
    /// Attribute Value; the OASIS 2.1 profiles' client attributes use vendor `x`) is
    /// written back as it was read, not as a 1.x attribute named `x:attribute1`.
    #[test]
    fn a_vendor_attribute_encodes_back_as_it_came() {
        let item = Item::structure(
            Tag::ATTRIBUTE,
            vec![
                Item::text(Tag::VENDOR_IDENTIFICATION, "x"),
                Item::text(Tag::ATTRIBUTE_NAME, "attribute1"),
                Item::text(Tag::ATTRIBUTE_VALUE, "Value1"),
            ],
        );
        let attribute = Attribute::from_v2(&item).unwrap();
        assert_eq!(attribute.name(), "x:attribute1");
        assert_eq!(attribute.to_v2(), item);
    }

    #[test]
    fn clients_skip_fields_with_unknown_tags_that_servers_refuse() {
        // A vendor extension and a tag no KMIP version up to 2.0 defines.
        for unknown in [
            Item::text(Tag(0x54_0001), "vendor"),
            Item::integer(Tag(0x42_0FFF), 3),
        ] {
            for response in responses() {
                let mut item = response.to_ttlv();
                extend(&mut item, &unknown);
                let bytes = ttlv::encode(&item);
                assert!(ResponseMessage::decode(&bytes, &Limits::default()).is_err());
                let (lenient, skipped) =
                    ResponseMessage::decode_lenient(&bytes, &Limits::default()).unwrap();
                assert_eq!(lenient, response);
                assert!(skipped.len() >= 4, "{skipped:?}");
                assert!(skipped.iter().all(|p| p.0.last() == Some(&unknown.tag)));
                // Requests stay strict: the same extension in a request is refused.
                let mut request =
                    RequestMessage::new(response.header.protocol_version, vec![]).to_ttlv();
                extend(&mut request, &unknown);
                let bytes = ttlv::encode(&request);
                assert!(RequestMessage::decode(&bytes, &Limits::default()).is_err());
            }
        }
    }

    #[test]
    fn lenient_reading_keeps_unknown_attributes() {
        // A vendor attribute in a 2.0 Attributes list is an attribute, not a stray field.
        let response = &responses()[0];
        let mut item = response.to_ttlv();
        let payload = find_mut(&mut item, Tag::ATTRIBUTES).unwrap();
        if let Value::Structure(children) = &mut payload.value {
            children.push(Item::text(Tag(0x54_0002), "x"));
        }
        let bytes = ttlv::encode(&item);
        let (lenient, skipped) =
            ResponseMessage::decode_lenient(&bytes, &Limits::default()).unwrap();
        assert!(skipped.is_empty());
        let Some(ResponsePayload::GetAttributes(p)) = &lenient.items[0].payload else {
            panic!("{lenient:?}")
        };
        assert!(matches!(&p.attributes[1], Attribute::Other { name, .. } if name == "0x540002"));
    }

    fn find_mut(item: &mut Item, tag: Tag) -> Option<&mut Item> {
        if item.tag == tag {
            return Some(item);
        }
        match &mut item.value {
            Value::Structure(children) => children.iter_mut().find_map(|c| find_mut(c, tag)),
            _ => None,
        }
    }
}
