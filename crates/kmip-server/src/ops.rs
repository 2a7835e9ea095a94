//! The embedded server's operations: bytes of one request message in, bytes of one
//! response message out, never a panic or an early close for a malformed request
//! (that gets an Invalid Message answer).
//!
//! What a real mongod (and PyKMIP's client) relies on, and this module guarantees:
//! a Time Stamp in every response header; Result Reason AND Result Message on every
//! failure; batch items answered in order, each echoing its Unique Batch Item ID; Get
//! returning Key Format Type Raw (for a key created, or registered Raw; one registered
//! as Transparent Symmetric Key comes back so unless the client asks for Raw) with the
//! Key Material as a Byte String plus Cryptographic Algorithm and Length; an unknown
//! operation answered with Operation
//! Not Supported; a missing, destroyed or foreign object answered with Item Not Found.
//! Every key carries a Digest (SHA-256 of its Raw material) while it has material;
//! Locate finds destroyed objects only when asked for their state; Modify Attribute
//! changes the Activation Date only (while Pre-Active). Both, like the rest,
//! are checked against the OASIS profile test cases (tests/profiles.rs, docs/kmip.md).
//!
//! Lifecycle (KMIP 1.4 section 3.22): Create/Register give Pre-Active (or Active with
//! an Activation Date not in the future); Activate: Pre-Active -> Active; Revoke with a
//! compromise reason: Pre-Active/Active/Deactivated -> Compromised, Destroyed ->
//! Destroyed Compromised; Revoke with another reason: Active -> Deactivated (and a
//! Deactivated object stays so, so a retried Revoke succeeds); Destroy: Pre-Active,
//! Deactivated -> Destroyed, Compromised -> Destroyed Compromised, never an Active
//! object. A refused transition is Permission Denied (the 1.x reason; KMIP 2.0
//! requests get Wrong Key Lifecycle State). Dates are not acted on by time: an object
//! with a future Activation Date stays Pre-Active until it is activated.
//!
//! ReKey (1.4 section 4.4) makes a new key of the same algorithm, length and usage
//! mask, moves the Names to it, links old and new (Replacement / Replaced Object Link)
//! and activates it if the old key was Active. Encrypt and Decrypt are AES-GCM (ring)
//! with a 12-byte IV (generated when the client gives none) and a 16-byte tag; keys of
//! other algorithms (HMAC, three-key 3DES) are stored and served, never used.
//!
//! Batches: Batch Error Continuation Option Stop (the default) ends a batch at its
//! first failure; Continue answers every item; Undo also undoes the items before the
//! failure (their writes share one savepoint, dropped; they are answered Operation
//! Undone). The items of a batch write through one [`Write`], committed once after the
//! last item and before the answer: a Create + Activate + Get costs one durable commit,
//! not three (under Stop and Continue a failed item's own writes are rolled back to its
//! savepoint, the others' kept). Check answers whether a use fits the key's Cryptographic Usage Mask; Log
//! and Interop (KMIP 2.x) are acknowledged and logged (Interop Reset resets nothing).

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};

use ring::aead;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::{Mutex, MutexGuard};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::store::{KeyStore, LocateFilter, StoredObject, Write};
use kmip::attribute::{Attribute, RevocationReason};
use kmip::message::{
    CreateResponse, CryptographicParameters, DecryptRequest, DecryptResponse,
    DiscoverVersionsResponse, EncryptRequest, EncryptResponse, GetAttributeListResponse,
    GetAttributesResponse, GetRequest, GetResponse, KeyBlock, KeyMaterial, LocateRequest,
    LocateResponse, ManagedObject, QueryResponse, ReKeyRequest, ReKeyResponse, RegisterRequest,
    RegisterResponse, RequestBatchItem, RequestMessage, RequestPayload, ResponseBatchItem,
    ResponseMessage, ResponsePayload, RevokeRequest, SymmetricKey, TemplateAttribute,
};
use kmip::tag::Tag;
use kmip::ttlv::{self, Item, Limits};
use kmip::types::{
    BlockCipherMode, CryptographicAlgorithm, CryptographicUsageMask, KeyFormatType, LinkType,
    NameType, ObjectType, Operation, ProtocolVersion, QueryFunction, ResultReason, ResultStatus,
    RevocationReasonCode, State,
};

/// Protocol versions this server speaks, most preferred first.
pub const SUPPORTED_VERSIONS: &[ProtocolVersion] = &[
    ProtocolVersion::V2_1,
    ProtocolVersion::V2_0,
    ProtocolVersion::V1_4,
    ProtocolVersion::V1_3,
    ProtocolVersion::V1_2,
    ProtocolVersion::V1_1,
    ProtocolVersion::V1_0,
];

/// Operations this server implements (answered to Query Operations).
pub const SUPPORTED_OPERATIONS: &[Operation] = &[
    Operation::DISCOVER_VERSIONS,
    Operation::QUERY,
    Operation::CREATE,
    Operation::REGISTER,
    Operation::GET,
    Operation::GET_ATTRIBUTES,
    Operation::GET_ATTRIBUTE_LIST,
    Operation::LOCATE,
    Operation::ACTIVATE,
    Operation::ADD_ATTRIBUTE,
    Operation::MODIFY_ATTRIBUTE,
    Operation::DELETE_ATTRIBUTE,
    Operation::REVOKE,
    Operation::DESTROY,
    Operation::REKEY,
    Operation::ENCRYPT,
    Operation::DECRYPT,
    Operation::CHECK,
    Operation::LOG,
    Operation::INTEROP,
];

/// Vendor Identification answered to Query Server Information.
pub const VENDOR_IDENTIFICATION: &str =
    "Headlock embedded KMIP server (development use; not an HSM)";

/// Batch Error Continuation Options Continue and Undo (KMIP 1.4 section 9.1.3.2.30:
/// Continue 1, Stop 2, Undo 3).
const BATCH_CONTINUE: u32 = 0x1;
const BATCH_UNDO: u32 = 0x3;

/// Largest batch a request may carry.
const MAX_BATCH_ITEMS: usize = 64;

/// A failed operation: the Result Reason and Result Message to answer.
#[derive(Debug)]
struct Failure {
    reason: ResultReason,
    message: String,
}

fn fail(reason: ResultReason, message: impl Into<String>) -> Failure {
    Failure {
        reason,
        message: message.into(),
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        // Store failures are ours, not the client's: log the detail, answer generically.
        tracing::error!(error = %e, "kmip server: internal error");
        fail(
            ResultReason::GENERAL_FAILURE,
            "internal server error (see the server log)",
        )
    }
}

type OpResult = Result<ResponsePayload, Failure>;

/// Answers requests against one [`KeyStore`]; shared by all connections.
pub struct Handler {
    store: KeyStore,
    rng: SystemRandom,
    /// Server Correlation Values: this prefix (random, one per handler) and a count.
    correlation_prefix: String,
    correlations: AtomicU64,
}

/// Per-message context.
struct Ctx<'a> {
    owner: &'a str,
    version: ProtocolVersion,
    /// The ID Placeholder (KMIP 1.4 section 4): the identifier a previous batch item
    /// produced, used by later items that omit theirs.
    placeholder: Option<String>,
    /// The writes of a batch of several items: every item reads and writes through
    /// it, and it is committed once, after the last item (see [`Handler::handle`]).
    batch: Option<Mutex<Write>>,
}

/// Where an operation writes: its own [`Write`], committed when it succeeds, or the
/// Undo batch's, committed with the batch.
enum OpWrite<'b> {
    Own(Write),
    Batch(MutexGuard<'b, Write>),
}

impl Deref for OpWrite<'_> {
    type Target = Write;
    fn deref(&self) -> &Write {
        match self {
            OpWrite::Own(w) => w,
            OpWrite::Batch(w) => w,
        }
    }
}

impl DerefMut for OpWrite<'_> {
    fn deref_mut(&mut self) -> &mut Write {
        match self {
            OpWrite::Own(w) => w,
            OpWrite::Batch(w) => w,
        }
    }
}

impl OpWrite<'_> {
    /// Commits an operation's own writes; an Undo batch's wait for the batch's end.
    async fn commit(self) -> Result<(), Error> {
        match self {
            OpWrite::Own(w) => w.commit().await,
            OpWrite::Batch(_) => Ok(()),
        }
    }
}

impl Ctx<'_> {
    fn uid(&self, given: &Option<String>) -> Result<String, Failure> {
        given
            .clone()
            .or_else(|| self.placeholder.clone())
            .ok_or_else(|| {
                fail(
                    ResultReason::MISSING_DATA,
                    "no Unique Identifier and no ID Placeholder from an earlier batch item",
                )
            })
    }

    fn lifecycle_reason(&self) -> ResultReason {
        if self.version.uses_v2_attributes() {
            ResultReason::WRONG_KEY_LIFECYCLE_STATE
        } else {
            ResultReason::PERMISSION_DENIED
        }
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn not_found(uid: &str) -> Failure {
    fail(
        ResultReason::ITEM_NOT_FOUND,
        format!("no object with Unique Identifier {uid}"),
    )
}

/// The caller's object `uid` read through an operation's [`Write`] (so with the
/// writes staged before it), or Item Not Found.
async fn load_for_write(
    write: &mut Write,
    ctx: &Ctx<'_>,
    uid: &str,
) -> Result<StoredObject, Failure> {
    write
        .get(uid, ctx.owner)
        .await?
        .ok_or_else(|| not_found(uid))
}

fn is_destroyed(state: State) -> bool {
    state == State::DESTROYED || state == State::DESTROYED_COMPROMISED
}

impl Handler {
    /// A handler over `store`.
    pub fn new(store: KeyStore) -> Self {
        let rng = SystemRandom::new();
        let mut prefix = [0u8; 4];
        // Only a label for logs: a failed generator leaves it zero.
        let _ = rng.fill(&mut prefix);
        Handler {
            store,
            rng,
            correlation_prefix: hex::encode_upper(prefix),
            correlations: AtomicU64::new(0),
        }
    }

    /// The response to a byte stream that could not be framed as a message (it is
    /// sent once, then the connection is closed).
    pub fn framing_error(&self, e: &kmip::error::Error) -> Vec<u8> {
        error_response(ProtocolVersion::V1_0, None, e.to_string())
    }

    /// Answers one encoded request message from the client whose certificate CN is
    /// `owner`.
    pub async fn handle(&self, bytes: &[u8], owner: &str, limits: &Limits) -> Vec<u8> {
        let request = match RequestMessage::decode(bytes, limits) {
            Ok(r) => r,
            Err(e) => {
                let version = version_of_undecodable(bytes, limits);
                return error_response(version, None, e.to_string());
            }
        };
        let requested = request.header.protocol_version;
        if !SUPPORTED_VERSIONS.contains(&requested) {
            let answer = SUPPORTED_VERSIONS
                .iter()
                .copied()
                .find(|v| v.major == requested.major)
                .unwrap_or(ProtocolVersion::V1_0);
            return error_response(
                answer,
                Some(ResultReason::INVALID_MESSAGE),
                format!("protocol version {requested} is not supported"),
            );
        }
        if request.items.len() > MAX_BATCH_ITEMS {
            return error_response(
                requested,
                Some(ResultReason::INVALID_MESSAGE),
                format!(
                    "{} batch items exceed the limit of {MAX_BATCH_ITEMS}",
                    request.items.len()
                ),
            );
        }
        let continue_on_error =
            request.header.batch_error_continuation_option == Some(BATCH_CONTINUE);
        // KMIP 2.x responses carry a Server Correlation Value (a Response Header field), which
        // the server's log lines for the message carry too; 1.x responses none (older
        // clients such as mongod's need not meet an unexpected header field).
        let correlation = requested.uses_v2_attributes().then(|| {
            let n = self.correlations.fetch_add(1, Ordering::Relaxed);
            format!("{}-{n}", self.correlation_prefix)
        });
        // A batch of several items shares one set of writes, committed once after its
        // last item (other connections' writes wait for the batch meanwhile): one
        // durable commit for a Create + Activate + Get. Under Undo it is committed only
        // if every item succeeds; otherwise each item's writes are kept or undone
        // as the item succeeds or fails, as if it were committed on its own.
        let undo = request.header.batch_error_continuation_option == Some(BATCH_UNDO);
        let batch = if request.items.len() > 1 {
            match self.store.write().await {
                Ok(w) => Some(Mutex::new(w)),
                Err(e) => {
                    let f = Failure::from(e);
                    return error_response(requested, Some(f.reason), f.message);
                }
            }
        } else {
            None
        };
        let mut ctx = Ctx {
            owner,
            version: requested,
            placeholder: None,
            batch,
        };
        let mut items = Vec::with_capacity(request.items.len());
        let mut any_failed = false;
        for item in &request.items {
            let (mut answer, mut failed) = match self.operation(&mut ctx, item).await {
                Ok(payload) => (ResponseBatchItem::success(item.operation, payload), false),
                Err(f) => {
                    tracing::debug!(
                        correlation = correlation.as_deref().unwrap_or(""),
                        operation = %item.operation,
                        reason = %f.reason,
                        message = %f.message,
                        "kmip server: operation failed"
                    );
                    (
                        ResponseBatchItem::failure(Some(item.operation), f.reason, f.message),
                        true,
                    )
                }
            };
            if let (Some(batch), false) = (&ctx.batch, undo) {
                let mut write = batch.lock().await;
                let ended = if failed {
                    write.discard_operation().await
                } else {
                    write.end_operation().await
                };
                if let Err(e) = ended {
                    let f = Failure::from(e);
                    answer = ResponseBatchItem::failure(Some(item.operation), f.reason, f.message);
                    failed = true;
                }
            }
            answer.unique_batch_item_id = item.unique_batch_item_id.clone();
            items.push(answer);
            any_failed |= failed;
            // Batch Error Continuation Option Stop (the default) and Undo: later items
            // are not processed and not answered.
            if failed && !continue_on_error {
                break;
            }
        }
        if let Some(batch) = ctx.batch.take() {
            let batch = batch.into_inner();
            if undo && any_failed {
                // Dropped uncommitted: none of the batch's writes remain.
                drop(batch);
                for answer in &mut items {
                    if answer.result_status == ResultStatus::SUCCESS {
                        answer.result_status = ResultStatus::OPERATION_UNDONE;
                    }
                }
            } else if let Err(e) = batch.commit().await {
                // Nothing of the batch is durable: no item succeeded after all.
                let f = Failure::from(e);
                for answer in &mut items {
                    if answer.result_status != ResultStatus::SUCCESS {
                        continue;
                    }
                    let failed =
                        ResponseBatchItem::failure(answer.operation, f.reason, f.message.clone());
                    *answer = ResponseBatchItem {
                        unique_batch_item_id: answer.unique_batch_item_id.take(),
                        ..failed
                    };
                }
            }
        }
        let mut response = ResponseMessage::new(requested, now(), items);
        response.header.server_correlation_value = correlation;
        let bytes = response.encode();
        match request.header.maximum_response_size {
            Some(max) if usize::try_from(max).is_ok_and(|m| bytes.len() > m) => error_response(
                requested,
                Some(ResultReason::RESPONSE_TOO_LARGE),
                format!(
                    "response of {} bytes exceeds Maximum Response Size {max}",
                    bytes.len()
                ),
            ),
            _ => bytes,
        }
    }

    async fn operation(&self, ctx: &mut Ctx<'_>, item: &RequestBatchItem) -> OpResult {
        let result = match &item.payload {
            RequestPayload::DiscoverVersions(p) => Ok(discover_versions(&p.versions)),
            RequestPayload::Query(p) => Ok(query(&p.functions, ctx.version)),
            RequestPayload::Create(p) => {
                self.create(ctx, p.object_type, &p.template_attribute).await
            }
            RequestPayload::Register(p) => self.register(ctx, p).await,
            RequestPayload::Get(p) => self.get(ctx, p).await,
            RequestPayload::GetAttributes(p) => {
                let uid = ctx.uid(&p.unique_identifier)?;
                let obj = self.load(ctx, &uid).await?;
                let attributes = attributes_of(&obj, ctx.version)
                    .into_iter()
                    .filter(|a| {
                        p.attribute_names.is_empty()
                            || p.attribute_names.iter().any(|n| n == a.name())
                    })
                    .collect();
                Ok(ResponsePayload::GetAttributes(GetAttributesResponse {
                    unique_identifier: uid,
                    attributes,
                }))
            }
            RequestPayload::GetAttributeList(p) => {
                let uid = ctx.uid(&p.unique_identifier)?;
                let obj = self.load(ctx, &uid).await?;
                let mut attribute_names: Vec<String> = Vec::new();
                for a in attributes_of(&obj, ctx.version) {
                    if !attribute_names.iter().any(|n| n == a.name()) {
                        attribute_names.push(a.name().to_owned());
                    }
                }
                Ok(ResponsePayload::GetAttributeList(
                    GetAttributeListResponse {
                        unique_identifier: uid,
                        attribute_names,
                    },
                ))
            }
            RequestPayload::Locate(p) => self.locate(ctx, p).await,
            RequestPayload::Activate { unique_identifier } => {
                let uid = ctx.uid(unique_identifier)?;
                self.activate(ctx, &uid).await
            }
            RequestPayload::Revoke(p) => self.revoke(ctx, p).await,
            RequestPayload::Destroy { unique_identifier } => {
                let uid = ctx.uid(unique_identifier)?;
                self.destroy(ctx, &uid).await
            }
            RequestPayload::ReKey(p) => self.rekey(ctx, p).await,
            RequestPayload::Encrypt(p) => self.encrypt(ctx, p).await,
            RequestPayload::Decrypt(p) => self.decrypt(ctx, p).await,
            RequestPayload::Other(payload) if item.operation == Operation::MODIFY_ATTRIBUTE => {
                self.modify_attribute(ctx, payload).await
            }
            RequestPayload::Other(payload) if item.operation == Operation::ADD_ATTRIBUTE => {
                self.add_attribute(ctx, payload).await
            }
            RequestPayload::Other(payload) if item.operation == Operation::DELETE_ATTRIBUTE => {
                self.delete_attribute(ctx, payload).await
            }
            RequestPayload::Other(payload) if item.operation == Operation::CHECK => {
                self.check(ctx, payload).await
            }
            RequestPayload::Other(payload)
                if item.operation == Operation::INTEROP && ctx.version.uses_v2_attributes() =>
            {
                interop(ctx, payload)
            }
            RequestPayload::Other(payload)
                if item.operation == Operation::LOG && ctx.version.uses_v2_attributes() =>
            {
                log(ctx, payload)
            }
            RequestPayload::Other(_) => Err(fail(
                ResultReason::OPERATION_NOT_SUPPORTED,
                format!(
                    "operation {} is not supported by this server",
                    item.operation
                ),
            )),
        }?;
        // Operations that name an object set the ID Placeholder for later items.
        let produced = match &result {
            ResponsePayload::Create(r) => Some(r.unique_identifier.clone()),
            ResponsePayload::Register(r) => Some(r.unique_identifier.clone()),
            ResponsePayload::ReKey(r) => Some(r.unique_identifier.clone()),
            ResponsePayload::Locate(r) if r.unique_identifiers.len() == 1 => {
                Some(r.unique_identifiers[0].clone())
            }
            ResponsePayload::Get(r) => Some(r.unique_identifier.clone()),
            ResponsePayload::GetAttributes(r) => Some(r.unique_identifier.clone()),
            ResponsePayload::Activate { unique_identifier }
            | ResponsePayload::Revoke { unique_identifier } => Some(unique_identifier.clone()),
            _ => None,
        };
        if produced.is_some() {
            ctx.placeholder = produced;
        }
        Ok(result)
    }

    /// The caller's object `uid` (with an Undo batch's writes so far), or Item Not
    /// Found.
    async fn load(&self, ctx: &Ctx<'_>, uid: &str) -> Result<StoredObject, Failure> {
        let found = match &ctx.batch {
            Some(batch) => batch.lock().await.get(uid, ctx.owner).await?,
            None => self.store.get(uid, ctx.owner).await?,
        };
        found.ok_or_else(|| not_found(uid))
    }

    /// Where the operation of `ctx` writes (see [`OpWrite`]).
    async fn write<'b>(&self, ctx: &'b Ctx<'_>) -> Result<OpWrite<'b>, Failure> {
        Ok(match &ctx.batch {
            Some(batch) => OpWrite::Batch(batch.lock().await),
            None => OpWrite::Own(self.store.write().await?),
        })
    }

    fn new_uid(&self) -> Result<String, Failure> {
        let mut b = [0u8; 16];
        self.rng
            .fill(&mut b)
            .map_err(|_| fail(ResultReason::GENERAL_FAILURE, "random generator failed"))?;
        b[6] = (b[6] & 0x0f) | 0x40; // UUID version 4
        b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
        let h = hex::encode(b);
        Ok(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ))
    }

    /// New key material for a key of `algorithm` and `length` bits (checked by
    /// [`check_key_size`]), from the operating system's generator; a 3DES key with
    /// the odd parity DES keys carry in the low bit of each byte.
    fn generate_key(
        &self,
        algorithm: CryptographicAlgorithm,
        length: i32,
    ) -> Result<Zeroizing<Vec<u8>>, Failure> {
        let mut key = Zeroizing::new(vec![0u8; material_bytes(algorithm, length)]);
        self.rng
            .fill(&mut key)
            .map_err(|_| fail(ResultReason::GENERAL_FAILURE, "random generator failed"))?;
        if algorithm == CryptographicAlgorithm::TRIPLE_DES {
            for b in key.iter_mut() {
                let high = *b & 0xFE;
                *b = high | u8::from(high.count_ones() % 2 == 0);
            }
        }
        Ok(key)
    }

    async fn create(
        &self,
        ctx: &Ctx<'_>,
        object_type: ObjectType,
        template: &TemplateAttribute,
    ) -> OpResult {
        if object_type != ObjectType::SYMMETRIC_KEY {
            return Err(fail(
                ResultReason::INVALID_FIELD,
                format!("Create of {object_type} is not supported (only SymmetricKey)"),
            ));
        }
        if !template.template_names.is_empty() {
            return Err(fail(
                ResultReason::ITEM_NOT_FOUND,
                "templates are not supported: no template of that name",
            ));
        }
        let attrs = ClientAttributes::read(&template.attributes)?;
        let algorithm = attrs.algorithm.ok_or_else(|| {
            fail(
                ResultReason::INVALID_FIELD,
                "Cryptographic Algorithm is required",
            )
        })?;
        let length = attrs.length.ok_or_else(|| {
            fail(
                ResultReason::INVALID_FIELD,
                "Cryptographic Length is required",
            )
        })?;
        check_key_size(algorithm, length)?;
        let key = self.generate_key(algorithm, length)?;
        let uid = self.new_uid()?;
        let mut obj =
            attrs.into_object(uid.clone(), object_type, algorithm, length, key, ctx.owner);
        obj.original_creation_date = Some(obj.initial_date);
        let mut write = self.write(ctx).await?;
        write.insert(&obj).await?;
        write.commit().await?;
        Ok(ResponsePayload::Create(CreateResponse {
            object_type,
            unique_identifier: uid,
            template_attribute: None,
        }))
    }

    async fn register(&self, ctx: &Ctx<'_>, p: &RegisterRequest) -> OpResult {
        let ManagedObject::SymmetricKey(SymmetricKey { key_block }) = &p.object else {
            return Err(fail(
                ResultReason::INVALID_FIELD,
                format!(
                    "Register of {} is not supported (only SymmetricKey)",
                    p.object_type
                ),
            ));
        };
        if p.object_type != ObjectType::SYMMETRIC_KEY {
            return Err(fail(
                ResultReason::INVALID_FIELD,
                "Object Type does not match the object",
            ));
        }
        if key_block.key_wrapping_data.is_some() {
            return Err(fail(
                ResultReason::FEATURE_NOT_SUPPORTED,
                "wrapped keys cannot be registered",
            ));
        }
        let (key, key_format) = match &key_block.key_material {
            KeyMaterial::Raw(k) if key_block.key_format_type == KeyFormatType::RAW => {
                (k.clone(), KeyFormatType::RAW)
            }
            KeyMaterial::TransparentSymmetric(k) => {
                (k.clone(), KeyFormatType::TRANSPARENT_SYMMETRIC_KEY)
            }
            _ => {
                return Err(fail(
                    ResultReason::KEY_FORMAT_TYPE_NOT_SUPPORTED,
                    format!(
                        "Key Format Type {} is not supported (Raw or TransparentSymmetricKey)",
                        key_block.key_format_type
                    ),
                ));
            }
        };
        let mut attrs = ClientAttributes::read(&p.template_attribute.attributes)?;
        attrs.absorb(&ClientAttributes::read(&key_block.key_value_attributes)?);
        let algorithm = attrs
            .algorithm
            .or(key_block.cryptographic_algorithm)
            .ok_or_else(|| {
                fail(
                    ResultReason::INVALID_FIELD,
                    "Cryptographic Algorithm is required",
                )
            })?;
        let length = if algorithm == CryptographicAlgorithm::TRIPLE_DES && key.len() == 24 {
            TRIPLE_DES_BITS
        } else {
            i32::try_from(key.len() * 8)
                .map_err(|_| fail(ResultReason::INVALID_FIELD, "key too long"))?
        };
        for stated in [attrs.length, key_block.cryptographic_length]
            .into_iter()
            .flatten()
        {
            if stated != length {
                return Err(fail(
                    ResultReason::INVALID_FIELD,
                    format!(
                        "Cryptographic Length {stated} does not match the {length}-bit key material"
                    ),
                ));
            }
        }
        check_key_size(algorithm, length)?;
        let uid = self.new_uid()?;
        let mut obj = attrs.into_object(
            uid.clone(),
            ObjectType::SYMMETRIC_KEY,
            algorithm,
            length,
            key,
            ctx.owner,
        );
        obj.key_format = key_format;
        let mut write = self.write(ctx).await?;
        write.insert(&obj).await?;
        write.commit().await?;
        Ok(ResponsePayload::Register(RegisterResponse {
            unique_identifier: uid,
            template_attribute: None,
        }))
    }

    async fn get(&self, ctx: &Ctx<'_>, p: &GetRequest) -> OpResult {
        let uid = ctx.uid(&p.unique_identifier)?;
        if p.key_wrapping_specification.is_some() || p.key_wrap_type.is_some() {
            return Err(fail(
                ResultReason::FEATURE_NOT_SUPPORTED,
                "key wrapping on Get is not supported",
            ));
        }
        if p.key_compression_type.is_some() {
            return Err(fail(
                ResultReason::KEY_COMPRESSION_TYPE_NOT_SUPPORTED,
                "key compression is not supported",
            ));
        }
        let obj = self.load(ctx, &uid).await?;
        let key = match (&obj.key_material, is_destroyed(obj.state)) {
            (Some(k), false) => k.clone(),
            _ => {
                return Err(fail(
                    ResultReason::ITEM_NOT_FOUND,
                    format!("object {uid} has been destroyed"),
                ));
            }
        };
        // None asked for: the format the key was registered in (Raw for generated
        // keys), as the OASIS case BL-M-3-21 expects.
        let format = p.key_format_type.unwrap_or(obj.key_format);
        let key_material = match format {
            KeyFormatType::RAW => KeyMaterial::Raw(key),
            KeyFormatType::TRANSPARENT_SYMMETRIC_KEY => KeyMaterial::TransparentSymmetric(key),
            other => {
                return Err(fail(
                    ResultReason::KEY_FORMAT_TYPE_NOT_SUPPORTED,
                    format!(
                        "Key Format Type {other} is not supported (Raw or TransparentSymmetricKey)"
                    ),
                ));
            }
        };
        if obj.fresh == Some(true) {
            // Served now: Fresh becomes False (KMIP 1.4 section 3.34), once; durable
            // before the answer, like every write, so a Get Attributes after it agrees.
            let mut write = self.write(ctx).await?;
            write.mark_served(&uid).await?;
            write.commit().await?;
        }
        let key_block = KeyBlock {
            key_format_type: format,
            key_compression_type: None,
            key_material,
            key_value_attributes: Vec::new(),
            cryptographic_algorithm: obj.algorithm,
            cryptographic_length: obj.length,
            key_wrapping_data: None,
        };
        Ok(ResponsePayload::Get(GetResponse {
            object_type: obj.object_type,
            unique_identifier: uid,
            object: ManagedObject::SymmetricKey(SymmetricKey { key_block }),
        }))
    }

    async fn locate(&self, ctx: &Ctx<'_>, p: &LocateRequest) -> OpResult {
        let mut filter = LocateFilter::default();
        let mut only_uid = None;
        for attribute in &p.attributes {
            match attribute {
                Attribute::UniqueIdentifier(uid) => only_uid = Some(uid.clone()),
                Attribute::Name { value, .. } => filter.name = Some(value.clone()),
                Attribute::ObjectType(t) => filter.object_type = Some(*t),
                Attribute::State(s) => filter.state = Some(*s),
                Attribute::CryptographicAlgorithm(a) => filter.algorithm = Some(*a),
                Attribute::CryptographicLength(l) => filter.length = Some(*l),
                other => {
                    return Err(fail(
                        ResultReason::FEATURE_NOT_SUPPORTED,
                        format!(
                            "Locate by {} is not supported (Unique Identifier, Name, Object \
                             Type, State, Cryptographic Algorithm, Cryptographic Length)",
                            other.name()
                        ),
                    ));
                }
            }
        }
        let mut all = match &ctx.batch {
            Some(batch) => batch.lock().await.locate(ctx.owner, &filter).await?,
            None => self.store.locate(ctx.owner, &filter).await?,
        };
        if let Some(uid) = only_uid {
            all.retain(|found| *found == uid);
        }
        let located = all.len();
        let offset = p
            .offset_items
            .map_or(0, |o| usize::try_from(o).unwrap_or(0));
        let max = p
            .maximum_items
            .and_then(|m| usize::try_from(m).ok())
            .filter(|m| *m > 0)
            .unwrap_or(usize::MAX);
        let unique_identifiers = all.into_iter().skip(offset).take(max).collect();
        let reports_count = ctx.version >= ProtocolVersion::V1_3;
        Ok(ResponsePayload::Locate(LocateResponse {
            located_items: reports_count.then(|| i32::try_from(located).unwrap_or(i32::MAX)),
            unique_identifiers,
        }))
    }

    /// The caller's object `uid` for a change allowed only while Pre-Active (`what`
    /// may happen only then): a destroyed object is Item Not Found, another state the
    /// version's lifecycle reason.
    async fn load_pre_active(
        write: &mut Write,
        ctx: &Ctx<'_>,
        uid: &str,
        what: &str,
    ) -> Result<StoredObject, Failure> {
        let obj = load_for_write(write, ctx, uid).await?;
        if is_destroyed(obj.state) {
            return Err(not_found(uid));
        }
        if obj.state != State::PRE_ACTIVE {
            return Err(fail(
                ctx.lifecycle_reason(),
                format!("object {uid} is {}: {what} only while PreActive", obj.state),
            ));
        }
        Ok(obj)
    }

    async fn activate(&self, ctx: &Ctx<'_>, uid: &str) -> OpResult {
        let mut write = self.write(ctx).await?;
        let mut obj = Self::load_pre_active(&mut write, ctx, uid, "it can be activated").await?;
        let t = now();
        obj.state = State::ACTIVE;
        obj.activation_date = Some(t);
        obj.last_change_date = t;
        write.update_row(&obj).await?;
        write.commit().await?;
        Ok(ResponsePayload::Activate {
            unique_identifier: uid.to_owned(),
        })
    }

    /// The Unique Identifier of an attribute operation's payload (or the ID Placeholder).
    fn payload_uid(ctx: &Ctx<'_>, payload: &ttlv::Item) -> Result<String, Failure> {
        let given = payload
            .find(Tag::UNIQUE_IDENTIFIER)
            .and_then(Item::as_text)
            .map(str::to_owned);
        ctx.uid(&given)
    }

    /// The Unique Identifier and the attribute of an Add or Modify Attribute payload
    /// (1.x: `Attribute`; 2.x: `New Attribute`).
    fn uid_and_attribute(
        ctx: &Ctx<'_>,
        payload: &ttlv::Item,
    ) -> Result<(String, Attribute), Failure> {
        let uid = Self::payload_uid(ctx, payload)?;
        let attribute = if let Some(a) = payload.find(Tag::ATTRIBUTE) {
            Attribute::from_v1(a).map_err(invalid_message)?
        } else if let Some(a) = payload
            .find(Tag::NEW_ATTRIBUTE)
            .and_then(|n| n.children().first())
        {
            Attribute::from_v2(a).map_err(invalid_message)?
        } else {
            return Err(fail(ResultReason::MISSING_DATA, "no attribute given"));
        };
        Ok((uid, attribute))
    }

    /// The answer to Add, Modify and Delete Attribute: the Unique Identifier, and in
    /// 1.x the attribute (as added, as modified, as it was before deletion).
    fn attribute_answer(ctx: &Ctx<'_>, uid: String, attribute: &Attribute) -> ResponsePayload {
        let mut fields = vec![Item::text(Tag::UNIQUE_IDENTIFIER, uid)];
        if !ctx.version.uses_v2_attributes() {
            fields.push(attribute.to_v1());
        }
        ResponsePayload::Other(Item::structure(Tag::RESPONSE_PAYLOAD, fields))
    }

    /// Loads `uid` for a change of its custom attributes, through the caller's
    /// [`Write`] (so with the writes staged before it).
    async fn load_for_custom(
        write: &mut Write,
        ctx: &Ctx<'_>,
        uid: &str,
    ) -> Result<StoredObject, Failure> {
        let obj = load_for_write(write, ctx, uid).await?;
        if is_destroyed(obj.state) {
            return Err(fail(
                ctx.lifecycle_reason(),
                format!("object {uid} is destroyed"),
            ));
        }
        Ok(obj)
    }

    /// Add Attribute (1.4 section 4.15, 2.0 section 6.1.2) of a client's custom
    /// attribute, one instance per name.
    async fn add_attribute(&self, ctx: &Ctx<'_>, payload: &ttlv::Item) -> OpResult {
        let (uid, attribute) = Self::uid_and_attribute(ctx, payload)?;
        let (name, value) = custom_parts(&attribute)?;
        let mut write = self.write(ctx).await?;
        let mut obj = Self::load_for_custom(&mut write, ctx, &uid).await?;
        if obj.custom.iter().any(|(n, _)| n == name) {
            return Err(fail(
                ResultReason::INVALID_FIELD,
                format!("object {uid} already has {name} (one instance per custom attribute)"),
            ));
        }
        if obj.custom.len() >= MAX_CUSTOM_ATTRIBUTES {
            return Err(fail(
                ResultReason::INVALID_FIELD,
                format!("at most {MAX_CUSTOM_ATTRIBUTES} custom attributes per object"),
            ));
        }
        obj.custom.push((name.to_owned(), value.clone()));
        obj.last_change_date = now();
        write.update(&obj).await?;
        write.commit().await?;
        Ok(Self::attribute_answer(ctx, uid, &attribute))
    }

    /// Delete Attribute (1.4 section 4.17, 2.0 section 6.1.13) of a client's custom
    /// attribute; the answer carries it as it was (1.x).
    async fn delete_attribute(&self, ctx: &Ctx<'_>, payload: &ttlv::Item) -> OpResult {
        let uid = Self::payload_uid(ctx, payload)?;
        // 1.x: Attribute Name (and an Attribute Index, 0 being the only instance kept);
        // 2.x: Current Attribute, or an Attribute Reference naming a vendor attribute.
        let name = if let Some(n) = payload.find(Tag::ATTRIBUTE_NAME).and_then(Item::as_text) {
            if payload
                .find(Tag::ATTRIBUTE_INDEX)
                .is_some_and(|i| i.as_integer() != Some(0))
            {
                return Err(fail(
                    ResultReason::ITEM_NOT_FOUND,
                    "only Attribute Index 0 exists",
                ));
            }
            n.to_owned()
        } else if let Some(a) = payload
            .find(Tag::CURRENT_ATTRIBUTE)
            .and_then(|c| c.children().first())
        {
            Attribute::from_v2(a)
                .map_err(invalid_message)?
                .name()
                .to_owned()
        } else if let Some(r) = payload.find(Tag::ATTRIBUTE_REFERENCE) {
            match (
                r.find(Tag::VENDOR_IDENTIFICATION).and_then(Item::as_text),
                r.find(Tag::ATTRIBUTE_NAME).and_then(Item::as_text),
            ) {
                (Some(vendor), Some(n)) => format!("{vendor}:{n}"),
                _ => {
                    return Err(fail(
                        ResultReason::PERMISSION_DENIED,
                        "only custom attributes can be deleted",
                    ));
                }
            }
        } else {
            return Err(fail(ResultReason::MISSING_DATA, "no attribute to delete"));
        };
        if !is_client_custom(&name) {
            return Err(fail(
                ResultReason::PERMISSION_DENIED,
                format!("{name} cannot be deleted (custom attributes only)"),
            ));
        }
        let mut write = self.write(ctx).await?;
        let mut obj = Self::load_for_custom(&mut write, ctx, &uid).await?;
        let Some(at) = obj.custom.iter().position(|(n, _)| *n == name) else {
            return Err(fail(
                attribute_not_found(ctx),
                format!("object {uid} has no {name}"),
            ));
        };
        let (name, value) = obj.custom.remove(at);
        obj.last_change_date = now();
        write.update(&obj).await?;
        write.commit().await?;
        Ok(Self::attribute_answer(
            ctx,
            uid,
            &Attribute::Other { name, value },
        ))
    }

    /// Modify Attribute (1.4 section 4.16, 2.0 section 6.1.31) of a client's custom
    /// attribute, or of the Activation Date: only while Pre-Active (1.4 section 3.24),
    /// and a date not in the future activates the object, as at Create. Any other
    /// attribute is Feature Not Supported.
    async fn modify_attribute(&self, ctx: &Ctx<'_>, payload: &ttlv::Item) -> OpResult {
        let (uid, attribute) = Self::uid_and_attribute(ctx, payload)?;
        if matches!(&attribute, Attribute::Other { name, .. } if is_client_custom(name)) {
            let (name, value) = custom_parts(&attribute)?;
            let mut write = self.write(ctx).await?;
            let mut obj = Self::load_for_custom(&mut write, ctx, &uid).await?;
            let Some(slot) = obj.custom.iter_mut().find(|(n, _)| n == name) else {
                return Err(fail(
                    attribute_not_found(ctx),
                    format!("object {uid} has no {name}"),
                ));
            };
            slot.1 = value.clone();
            obj.last_change_date = now();
            write.update(&obj).await?;
            write.commit().await?;
            return Ok(Self::attribute_answer(ctx, uid, &attribute));
        }
        let Attribute::ActivationDate(date) = attribute else {
            return Err(fail(
                ResultReason::FEATURE_NOT_SUPPORTED,
                format!(
                    "Modify Attribute of {} is not supported (Activation Date and custom \
                     attributes only)",
                    attribute.name()
                ),
            ));
        };
        let mut write = self.write(ctx).await?;
        let mut obj =
            Self::load_pre_active(&mut write, ctx, &uid, "its Activation Date can change").await?;
        let t = now();
        obj.activation_date = Some(date);
        if date <= t {
            obj.state = State::ACTIVE;
        }
        obj.last_change_date = t;
        write.update_row(&obj).await?;
        write.commit().await?;
        Ok(Self::attribute_answer(
            ctx,
            uid,
            &Attribute::ActivationDate(date),
        ))
    }

    /// Check (1.4 section 4.10): may the object be used as the
    /// request says? Only the Cryptographic Usage Mask is checked against anything
    /// (an object without one is not restricted, as for Encrypt and Decrypt):
    /// the server sets no Usage Limits and no lease (Lease Time is the largest), so a
    /// Usage Limits Count or Lease Time asked for is always granted. A mask the object
    /// lacks fails with Incompatible Cryptographic Usage Mask (2.x; Permission Denied
    /// in 1.x, which has no such reason).
    async fn check(&self, ctx: &Ctx<'_>, payload: &Item) -> OpResult {
        let uid = Self::payload_uid(ctx, payload)?;
        let obj = self.load(ctx, &uid).await?;
        if is_destroyed(obj.state) {
            return Err(not_found(&uid));
        }
        if let Some(asked) = payload.find(Tag::CRYPTOGRAPHIC_USAGE_MASK) {
            let asked = asked
                .as_integer()
                .map(CryptographicUsageMask::from_wire)
                .ok_or_else(|| {
                    fail(
                        ResultReason::INVALID_FIELD,
                        "Cryptographic Usage Mask must be an Integer",
                    )
                })?;
            if obj.usage_mask.is_some_and(|m| !m.contains(asked)) {
                let reason = if ctx.version.uses_v2_attributes() {
                    ResultReason::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK
                } else {
                    ResultReason::PERMISSION_DENIED
                };
                return Err(fail(
                    reason,
                    format!("object {uid}'s Cryptographic Usage Mask does not allow this use"),
                ));
            }
        }
        Ok(ResponsePayload::Other(Item::structure(
            Tag::RESPONSE_PAYLOAD,
            vec![Item::text(Tag::UNIQUE_IDENTIFIER, uid)],
        )))
    }

    async fn revoke(&self, ctx: &Ctx<'_>, p: &RevokeRequest) -> OpResult {
        let uid = ctx.uid(&p.unique_identifier)?;
        let mut write = self.write(ctx).await?;
        let mut obj = load_for_write(&mut write, ctx, &uid).await?;
        let code = p.revocation_reason.code;
        let t = now();
        let compromise = code == RevocationReasonCode::KEY_COMPROMISE
            || code == RevocationReasonCode::CA_COMPROMISE;
        if code.name().is_none() {
            return Err(fail(
                ResultReason::INVALID_FIELD,
                format!("Revocation Reason Code {code} is not recognised"),
            ));
        }
        let new_state = match (compromise, obj.state) {
            (true, State::PRE_ACTIVE | State::ACTIVE | State::DEACTIVATED | State::COMPROMISED) => {
                State::COMPROMISED
            }
            (true, _) => State::DESTROYED_COMPROMISED,
            (false, State::ACTIVE | State::DEACTIVATED) => State::DEACTIVATED,
            (false, state) if is_destroyed(state) => return Err(not_found(&uid)),
            (false, state) => {
                return Err(fail(
                    ctx.lifecycle_reason(),
                    format!(
                        "object {uid} is {state}: only an Active object can be revoked \
                         for a reason other than compromise"
                    ),
                ));
            }
        };
        if compromise {
            if obj.compromise_date.is_none() {
                obj.compromise_date = Some(t);
            }
            obj.compromise_occurrence_date = Some(p.compromise_occurrence_date.unwrap_or(t));
        }
        if new_state == State::DEACTIVATED && obj.state == State::ACTIVE {
            obj.deactivation_date = Some(t);
        }
        obj.state = new_state;
        obj.revocation_reason = Some(code);
        obj.revocation_message = p.revocation_reason.message.clone();
        obj.last_change_date = t;
        write.update_row(&obj).await?;
        write.commit().await?;
        Ok(ResponsePayload::Revoke {
            unique_identifier: uid,
        })
    }

    async fn destroy(&self, ctx: &Ctx<'_>, uid: &str) -> OpResult {
        let mut write = self.write(ctx).await?;
        let mut obj = load_for_write(&mut write, ctx, uid).await?;
        let new_state = match obj.state {
            State::PRE_ACTIVE | State::DEACTIVATED => State::DESTROYED,
            State::COMPROMISED => State::DESTROYED_COMPROMISED,
            state if is_destroyed(state) => return Err(not_found(uid)),
            state => {
                return Err(fail(
                    ctx.lifecycle_reason(),
                    format!("object {uid} is {state} and cannot be destroyed; revoke it first"),
                ));
            }
        };
        let t = now();
        obj.state = new_state;
        obj.key_material = None;
        obj.destroy_date = Some(t);
        obj.last_change_date = t;
        write.update_row(&obj).await?;
        write.commit().await?;
        Ok(ResponsePayload::Destroy {
            unique_identifier: uid.to_owned(),
        })
    }

    async fn rekey(&self, ctx: &Ctx<'_>, p: &ReKeyRequest) -> OpResult {
        let uid = ctx.uid(&p.unique_identifier)?;
        let mut write = self.write(ctx).await?;
        let mut old = load_for_write(&mut write, ctx, &uid).await?;
        if is_destroyed(old.state) || old.key_material.is_none() {
            return Err(not_found(&uid));
        }
        if old.state == State::COMPROMISED {
            return Err(fail(
                ctx.lifecycle_reason(),
                format!("object {uid} is Compromised and cannot be re-keyed"),
            ));
        }
        let (algorithm, length) = match (old.algorithm, old.length) {
            (Some(a), Some(l)) => (a, l),
            _ => {
                return Err(fail(
                    ResultReason::INVALID_FIELD,
                    "object has no algorithm or length",
                ));
            }
        };
        let key = self.generate_key(algorithm, length)?;
        let t = now();
        let new_uid = self.new_uid()?;
        let activate = old.state == State::ACTIVE;
        let mut names = std::mem::take(&mut old.names);
        if let Some(tpl) = &p.template_attribute {
            for a in &tpl.attributes {
                if let Attribute::Name { value, .. } = a {
                    if !names.contains(value) {
                        names.push(value.clone());
                    }
                }
            }
        }
        let new = StoredObject {
            uid: new_uid.clone(),
            object_type: old.object_type,
            algorithm: Some(algorithm),
            length: Some(length),
            usage_mask: old.usage_mask,
            key_material: Some(key),
            names,
            state: if activate {
                State::ACTIVE
            } else {
                State::PRE_ACTIVE
            },
            initial_date: t,
            activation_date: activate.then_some(t),
            deactivation_date: None,
            destroy_date: None,
            compromise_date: None,
            compromise_occurrence_date: None,
            last_change_date: t,
            revocation_reason: None,
            revocation_message: None,
            links: vec![(LinkType::REPLACED_OBJECT_LINK, uid.clone())],
            owner: ctx.owner.to_owned(),
            fresh: Some(true),
            original_creation_date: Some(t),
            custom: Vec::new(),
            key_format: KeyFormatType::RAW,
        };
        old.links
            .push((LinkType::REPLACEMENT_OBJECT_LINK, new_uid.clone()));
        old.last_change_date = t;
        // One operation, so both in one commit (they were two before group commits).
        write.insert(&new).await?;
        write.update(&old).await?;
        write.commit().await?;
        Ok(ResponsePayload::ReKey(ReKeyResponse {
            unique_identifier: new_uid,
            template_attribute: None,
        }))
    }

    /// The AES-GCM key of `uid` for `operation`, with the checks both directions share.
    async fn gcm_key(
        &self,
        ctx: &Ctx<'_>,
        uid: &str,
        params: &Option<CryptographicParameters>,
        encrypt: bool,
    ) -> Result<(aead::LessSafeKey, StoredObject), Failure> {
        let obj = self.load(ctx, uid).await?;
        let key = match (&obj.key_material, is_destroyed(obj.state)) {
            (Some(k), false) => k,
            _ => return Err(not_found(uid)),
        };
        let usable = if encrypt {
            obj.state == State::ACTIVE
        } else {
            obj.state == State::ACTIVE
                || obj.state == State::DEACTIVATED
                || obj.state == State::COMPROMISED
        };
        if !usable {
            return Err(fail(
                ctx.lifecycle_reason(),
                format!(
                    "object {uid} is {} and cannot be used to {}",
                    obj.state,
                    if encrypt { "encrypt" } else { "decrypt" }
                ),
            ));
        }
        let needed = if encrypt {
            CryptographicUsageMask::ENCRYPT
        } else {
            CryptographicUsageMask::DECRYPT
        };
        if let Some(mask) = obj.usage_mask {
            if !mask.contains(needed) {
                return Err(fail(
                    ResultReason::PERMISSION_DENIED,
                    format!("object {uid}'s Cryptographic Usage Mask does not allow this"),
                ));
            }
        }
        if obj.algorithm == Some(CryptographicAlgorithm::TRIPLE_DES) {
            return Err(fail(
                ResultReason::FEATURE_NOT_SUPPORTED,
                "3DES keys are stored for legacy clients only: this server encrypts and \
                 decrypts with AES keys only",
            ));
        }
        if obj.algorithm != Some(CryptographicAlgorithm::AES) {
            return Err(fail(
                ResultReason::FEATURE_NOT_SUPPORTED,
                "only AES keys can encrypt or decrypt",
            ));
        }
        if let Some(p) = params {
            if p.block_cipher_mode
                .is_some_and(|m| m != BlockCipherMode::GCM)
            {
                return Err(fail(
                    ResultReason::FEATURE_NOT_SUPPORTED,
                    "only Block Cipher Mode GCM is supported",
                ));
            }
            if p.tag_length.is_some_and(|t| t != 16) {
                return Err(fail(
                    ResultReason::FEATURE_NOT_SUPPORTED,
                    "only a 16-byte GCM tag is supported",
                ));
            }
            if p.cryptographic_algorithm
                .is_some_and(|a| a != CryptographicAlgorithm::AES)
            {
                return Err(fail(
                    ResultReason::FEATURE_NOT_SUPPORTED,
                    "only AES is supported",
                ));
            }
        }
        let algorithm = match key.len() {
            16 => &aead::AES_128_GCM,
            32 => &aead::AES_256_GCM,
            n => {
                return Err(fail(
                    ResultReason::FEATURE_NOT_SUPPORTED,
                    format!("AES-GCM with a {}-bit key is not supported", n * 8),
                ));
            }
        };
        let unbound = aead::UnboundKey::new(algorithm, key)
            .map_err(|_| fail(ResultReason::CRYPTOGRAPHIC_FAILURE, "invalid AES key"))?;
        Ok((aead::LessSafeKey::new(unbound), obj))
    }

    async fn encrypt(&self, ctx: &Ctx<'_>, p: &EncryptRequest) -> OpResult {
        let uid = ctx.uid(&p.unique_identifier)?;
        reject_streaming(p.init_indicator, p.final_indicator, &p.correlation_value)?;
        let (key, _) = self
            .gcm_key(ctx, &uid, &p.cryptographic_parameters, true)
            .await?;
        let data = p
            .data
            .as_ref()
            .ok_or_else(|| fail(ResultReason::MISSING_DATA, "Data is required"))?;
        let (nonce_bytes, generated) = match &p.iv_counter_nonce {
            Some(iv) => (iv.clone(), false),
            None => {
                let mut iv = vec![0u8; aead::NONCE_LEN];
                self.rng
                    .fill(&mut iv)
                    .map_err(|_| fail(ResultReason::GENERAL_FAILURE, "random generator failed"))?;
                (iv, true)
            }
        };
        let nonce = aead::Nonce::try_assume_unique_for_key(&nonce_bytes).map_err(|_| {
            fail(
                ResultReason::INVALID_FIELD,
                "IV/Counter/Nonce must be 12 bytes for AES-GCM",
            )
        })?;
        let mut buffer = data.to_vec();
        let aad = aead::Aad::from(p.additional_data.as_deref().unwrap_or_default());
        let tag = key
            .seal_in_place_separate_tag(nonce, aad, &mut buffer)
            .map_err(|_| fail(ResultReason::CRYPTOGRAPHIC_FAILURE, "encryption failed"))?;
        Ok(ResponsePayload::Encrypt(EncryptResponse {
            unique_identifier: uid,
            data: Some(buffer),
            iv_counter_nonce: generated.then_some(nonce_bytes),
            correlation_value: None,
            tag: Some(tag.as_ref().to_vec()),
        }))
    }

    async fn decrypt(&self, ctx: &Ctx<'_>, p: &DecryptRequest) -> OpResult {
        let uid = ctx.uid(&p.unique_identifier)?;
        reject_streaming(p.init_indicator, p.final_indicator, &p.correlation_value)?;
        let (key, _) = self
            .gcm_key(ctx, &uid, &p.cryptographic_parameters, false)
            .await?;
        let data = p
            .data
            .as_ref()
            .ok_or_else(|| fail(ResultReason::MISSING_DATA, "Data is required"))?;
        let iv = p.iv_counter_nonce.as_ref().ok_or_else(|| {
            fail(
                ResultReason::MISSING_DATA,
                "IV/Counter/Nonce is required to decrypt",
            )
        })?;
        let tag = p.tag.as_ref().ok_or_else(|| {
            fail(
                ResultReason::MISSING_DATA,
                "Authenticated Encryption Tag is required to decrypt",
            )
        })?;
        let nonce = aead::Nonce::try_assume_unique_for_key(iv).map_err(|_| {
            fail(
                ResultReason::INVALID_FIELD,
                "IV/Counter/Nonce must be 12 bytes for AES-GCM",
            )
        })?;
        if tag.len() != aead::AES_256_GCM.tag_len() {
            return Err(fail(
                ResultReason::INVALID_FIELD,
                "Authenticated Encryption Tag must be 16 bytes",
            ));
        }
        let mut buffer = Zeroizing::new(Vec::with_capacity(data.len() + tag.len()));
        buffer.extend_from_slice(data);
        buffer.extend_from_slice(tag);
        let aad = aead::Aad::from(p.additional_data.as_deref().unwrap_or_default());
        let plain_len = key
            .open_in_place(nonce, aad, &mut buffer)
            .map_err(|_| {
                fail(
                    ResultReason::CRYPTOGRAPHIC_FAILURE,
                    "authentication failed: wrong key, IV, tag or additional data",
                )
            })?
            .len();
        buffer.truncate(plain_len);
        Ok(ResponsePayload::Decrypt(DecryptResponse {
            unique_identifier: uid,
            data: Some(buffer),
            correlation_value: None,
        }))
    }
}

/// Interop Function (KMIP 2.0 enumeration): Begin 1, End 2, Reset 3.
const INTEROP_BEGIN: u32 = 0x1;
const INTEROP_END: u32 = 0x2;
const INTEROP_RESET: u32 = 0x3;

/// Longest Interop Identifier or Log Message accepted, in bytes.
const MAX_CLIENT_TEXT_BYTES: usize = 1024;

/// A required text field of an Interop or Log payload, bounded.
fn client_text(payload: &Item, tag: Tag) -> Result<&str, Failure> {
    let text = payload
        .find(tag)
        .ok_or_else(|| fail(ResultReason::MISSING_DATA, format!("{tag} is required")))?
        .as_text()
        .ok_or_else(|| {
            fail(
                ResultReason::INVALID_FIELD,
                format!("{tag} must be a Text String"),
            )
        })?;
    if text.len() > MAX_CLIENT_TEXT_BYTES {
        return Err(fail(
            ResultReason::INVALID_FIELD,
            format!("{tag} has at most {MAX_CLIENT_TEXT_BYTES} bytes"),
        ));
    }
    Ok(text)
}

/// Interop (KMIP 2.0): a test client marks the Begin and End of a test
/// case, or asks for a Reset. The server acknowledges each and logs it; it keeps no
/// per-test state, so Reset resets nothing: objects a test created stay until the
/// client destroys them (a test server that deleted keys on a client's word would be
/// a key server that deletes keys on a client's word).
fn interop(ctx: &Ctx<'_>, payload: &Item) -> OpResult {
    let function = payload
        .find(Tag::INTEROP_FUNCTION)
        .ok_or_else(|| fail(ResultReason::MISSING_DATA, "Interop Function is required"))?
        .as_enumeration();
    let identifier = client_text(payload, Tag::INTEROP_IDENTIFIER)?;
    let function = match function {
        Some(INTEROP_BEGIN) => "begin",
        Some(INTEROP_END) => "end",
        Some(INTEROP_RESET) => "reset (nothing is reset: the server keeps no test state)",
        _ => {
            return Err(fail(
                ResultReason::INVALID_FIELD,
                "Interop Function must be Begin, End or Reset",
            ));
        }
    };
    tracing::info!(owner = ctx.owner, identifier = ?identifier, function, "kmip interop");
    Ok(empty_payload())
}

/// Log (KMIP 2.0): the client's message goes to the server's log (at
/// info level, quoted, with the client's certificate name), bounded in length.
fn log(ctx: &Ctx<'_>, payload: &Item) -> OpResult {
    let message = client_text(payload, Tag::LOG_MESSAGE)?;
    tracing::info!(owner = ctx.owner, message = ?message, "kmip client log");
    Ok(empty_payload())
}

fn empty_payload() -> ResponsePayload {
    ResponsePayload::Other(Item::structure(Tag::RESPONSE_PAYLOAD, Vec::new()))
}

fn reject_streaming(
    init: Option<bool>,
    fin: Option<bool>,
    correlation: &Option<Vec<u8>>,
) -> Result<(), Failure> {
    if init == Some(true) || fin == Some(false) || correlation.is_some() {
        return Err(fail(
            ResultReason::FEATURE_NOT_SUPPORTED,
            "streaming (multi-part) cryptographic operations are not supported",
        ));
    }
    Ok(())
}

/// Cryptographic Length of a three-key 3DES key: 168 bits of key in 24 bytes of
/// material (each byte's low bit is parity).
const TRIPLE_DES_BITS: i32 = 168;

/// Bytes of key material for a key of `algorithm` and `length` bits.
fn material_bytes(algorithm: CryptographicAlgorithm, length: i32) -> usize {
    if algorithm == CryptographicAlgorithm::TRIPLE_DES && length == TRIPLE_DES_BITS {
        return 24;
    }
    usize::try_from(length / 8).unwrap_or(0)
}

/// Key sizes the server creates or accepts, per algorithm. 3DES (three-key only) is
/// kept for legacy clients that store such keys, as the OASIS Symmetric Key Foundry
/// profiles ask; the server itself never encrypts or decrypts with one (AES only:
/// see [`Handler::gcm_key`]). Skipjack and the other legacy ciphers stay refused.
fn check_key_size(algorithm: CryptographicAlgorithm, length: i32) -> Result<(), Failure> {
    let ok = match algorithm {
        CryptographicAlgorithm::AES => matches!(length, 128 | 192 | 256),
        CryptographicAlgorithm::TRIPLE_DES => length == TRIPLE_DES_BITS,
        CryptographicAlgorithm::CHACHA20 | CryptographicAlgorithm::CHACHA20_POLY1305 => {
            length == 256
        }
        CryptographicAlgorithm::HMAC_SHA1
        | CryptographicAlgorithm::HMAC_SHA224
        | CryptographicAlgorithm::HMAC_SHA256
        | CryptographicAlgorithm::HMAC_SHA384
        | CryptographicAlgorithm::HMAC_SHA512 => (128..=4096).contains(&length) && length % 8 == 0,
        other => {
            return Err(fail(
                ResultReason::INVALID_FIELD,
                format!("Cryptographic Algorithm {other} is not supported for symmetric keys"),
            ));
        }
    };
    if ok {
        Ok(())
    } else {
        Err(fail(
            ResultReason::INVALID_FIELD,
            format!("Cryptographic Length {length} is not valid for {algorithm}"),
        ))
    }
}

/// The attributes a client may set on Create / Register.
#[derive(Default)]
struct ClientAttributes {
    algorithm: Option<CryptographicAlgorithm>,
    length: Option<i32>,
    usage_mask: Option<CryptographicUsageMask>,
    names: Vec<String>,
    activation_date: Option<i64>,
    links: Vec<(LinkType, String)>,
}

impl ClientAttributes {
    fn read(attributes: &[Attribute]) -> Result<Self, Failure> {
        let mut out = ClientAttributes::default();
        for a in attributes {
            match a {
                Attribute::CryptographicAlgorithm(v) => out.algorithm = Some(*v),
                Attribute::CryptographicLength(v) => out.length = Some(*v),
                Attribute::CryptographicUsageMask(v) => out.usage_mask = Some(*v),
                Attribute::Name { value, name_type } => {
                    if *name_type != NameType::UNINTERPRETED_TEXT_STRING
                        && *name_type != NameType::URI
                    {
                        return Err(fail(
                            ResultReason::INVALID_FIELD,
                            format!("Name Type {name_type} is not recognised"),
                        ));
                    }
                    // KMIP sets no lower bound on a Name Value, and Percona Server for
                    // MongoDB before 6.0.17 (kmippp's op_register("", "", key)) registers
                    // every key with an empty one (tests/mongod.rs); the upper bound is
                    // ours, to keep the store bounded.
                    if value.len() > 1024 {
                        return Err(fail(
                            ResultReason::INVALID_FIELD,
                            "a Name must have at most 1024 bytes",
                        ));
                    }
                    if !out.names.contains(value) {
                        out.names.push(value.clone());
                    }
                }
                Attribute::ActivationDate(v) => out.activation_date = Some(*v),
                Attribute::Link {
                    link_type,
                    linked_object_id,
                } => out.links.push((*link_type, linked_object_id.clone())),
                Attribute::UniqueIdentifier(_)
                | Attribute::State(_)
                | Attribute::InitialDate(_)
                | Attribute::DestroyDate(_)
                | Attribute::CompromiseDate(_)
                | Attribute::CompromiseOccurrenceDate(_)
                | Attribute::RevocationReason(_)
                | Attribute::LastChangeDate(_)
                | Attribute::DeactivationDate(_) => {
                    return Err(fail(
                        ResultReason::INVALID_FIELD,
                        format!("attribute {} is set by the server only", a.name()),
                    ));
                }
                // Object Type repeats the request's; other attributes (Object Group,
                // Contact Information, vendor attributes...) are accepted and not kept.
                _ => {}
            }
            if out.names.len() > 16 || out.links.len() > 16 {
                return Err(fail(
                    ResultReason::INVALID_FIELD,
                    "too many Name or Link attributes (at most 16)",
                ));
            }
        }
        Ok(out)
    }

    /// Fills what `self` lacks from `other`.
    fn absorb(&mut self, other: &ClientAttributes) {
        self.algorithm = self.algorithm.or(other.algorithm);
        self.length = self.length.or(other.length);
        self.usage_mask = self.usage_mask.or(other.usage_mask);
        self.activation_date = self.activation_date.or(other.activation_date);
        for n in &other.names {
            if !self.names.contains(n) {
                self.names.push(n.clone());
            }
        }
        self.links.extend(other.links.iter().cloned());
    }

    fn into_object(
        self,
        uid: String,
        object_type: ObjectType,
        algorithm: CryptographicAlgorithm,
        length: i32,
        key: Zeroizing<Vec<u8>>,
        owner: &str,
    ) -> StoredObject {
        let t = now();
        let active = self.activation_date.is_some_and(|d| d <= t);
        StoredObject {
            uid,
            object_type,
            algorithm: Some(algorithm),
            length: Some(length),
            usage_mask: self.usage_mask,
            key_material: Some(key),
            names: self.names,
            state: if active {
                State::ACTIVE
            } else {
                State::PRE_ACTIVE
            },
            initial_date: t,
            activation_date: self.activation_date,
            deactivation_date: None,
            destroy_date: None,
            compromise_date: None,
            compromise_occurrence_date: None,
            last_change_date: t,
            revocation_reason: None,
            revocation_message: None,
            links: self.links,
            owner: owner.to_owned(),
            fresh: Some(true),
            original_creation_date: None,
            custom: Vec::new(),
            key_format: KeyFormatType::RAW,
        }
    }
}

fn invalid_message(e: kmip::message::MessageError) -> Failure {
    fail(ResultReason::INVALID_MESSAGE, e.to_string())
}

/// Most custom attributes one object keeps.
const MAX_CUSTOM_ATTRIBUTES: usize = 16;

/// Longest custom attribute name, in bytes.
const MAX_CUSTOM_NAME_BYTES: usize = 255;

/// A client's custom attribute: KMIP 1.x names them `x-...` (1.4 section 3.39), 2.x
/// gives them Vendor Identification `x` (read here as `x:<name>`). `y-` attributes and
/// other vendors' are the server's and a vendor's, not the client's to set.
fn is_client_custom(name: &str) -> bool {
    name.starts_with("x-") || name.starts_with("x:")
}

/// The name and value of a custom attribute a client may add or modify, or why not.
fn custom_parts(attribute: &Attribute) -> Result<(&str, &Item), Failure> {
    match attribute {
        Attribute::Other { name, value } if is_client_custom(name) => {
            if name.len() > MAX_CUSTOM_NAME_BYTES {
                return Err(fail(
                    ResultReason::INVALID_FIELD,
                    format!("a custom attribute name has at most {MAX_CUSTOM_NAME_BYTES} bytes"),
                ));
            }
            if value.encoded_len() > crate::store::MAX_CUSTOM_VALUE_BYTES {
                return Err(fail(
                    ResultReason::INVALID_FIELD,
                    format!(
                        "a custom attribute value has at most {} bytes encoded",
                        crate::store::MAX_CUSTOM_VALUE_BYTES
                    ),
                ));
            }
            Ok((name, value))
        }
        other => Err(fail(
            ResultReason::PERMISSION_DENIED,
            format!(
                "{} cannot be added or modified this way (custom x- attributes only)",
                other.name()
            ),
        )),
    }
}

/// The Result Reason for an attribute the object does not have: 2.x has its own.
fn attribute_not_found(ctx: &Ctx<'_>) -> ResultReason {
    if ctx.version.uses_v2_attributes() {
        ResultReason::ATTRIBUTE_NOT_FOUND
    } else {
        ResultReason::ITEM_NOT_FOUND
    }
}

/// Lease Time answered for every key (KMIP 1.4 section 3.20, an Interval in seconds):
/// the largest, as the server sets no lease (a client may keep a key as long as it
/// likes; revocation is what ends its use).
const NO_LEASE: u32 = u32::MAX;

/// Every attribute the server keeps for `obj` that protocol `version` defines, in the
/// order of KMIP 1.4 section 3, then the custom ones.
fn attributes_of(obj: &StoredObject, version: ProtocolVersion) -> Vec<Attribute> {
    let mut v = vec![Attribute::UniqueIdentifier(obj.uid.clone())];
    for name in &obj.names {
        v.push(Attribute::Name {
            value: name.clone(),
            name_type: NameType::UNINTERPRETED_TEXT_STRING,
        });
    }
    v.push(Attribute::ObjectType(obj.object_type));
    if let Some(a) = obj.algorithm {
        v.push(Attribute::CryptographicAlgorithm(a));
    }
    if let Some(l) = obj.length {
        v.push(Attribute::CryptographicLength(l));
    }
    if let Some(material) = &obj.key_material {
        v.push(digest_of(material));
    }
    if let Some(m) = obj.usage_mask {
        v.push(Attribute::CryptographicUsageMask(m));
    }
    v.push(Attribute::State(obj.state));
    v.push(Attribute::InitialDate(obj.initial_date));
    let dates = [
        (
            obj.activation_date,
            Attribute::ActivationDate as fn(i64) -> Attribute,
        ),
        (obj.deactivation_date, Attribute::DeactivationDate),
        (obj.destroy_date, Attribute::DestroyDate),
        (
            obj.compromise_occurrence_date,
            Attribute::CompromiseOccurrenceDate,
        ),
        (obj.compromise_date, Attribute::CompromiseDate),
    ];
    for (date, make) in dates {
        if let Some(d) = date {
            v.push(make(d));
        }
    }
    if let Some(code) = obj.revocation_reason {
        v.push(Attribute::RevocationReason(RevocationReason {
            code,
            message: obj.revocation_message.clone(),
        }));
    }
    for (link_type, linked) in &obj.links {
        v.push(Attribute::Link {
            link_type: *link_type,
            linked_object_id: linked.clone(),
        });
    }
    v.push(Attribute::LastChangeDate(obj.last_change_date));
    if obj.key_material.is_some() {
        v.push(Attribute::Other {
            name: "Lease Time".into(),
            value: Item::interval(Tag::ATTRIBUTE_VALUE, NO_LEASE),
        });
    }
    if let Some(fresh) = obj.fresh.filter(|_| version >= ProtocolVersion::V1_1) {
        v.push(Attribute::Other {
            name: "Fresh".into(),
            value: Item::boolean(Tag::ATTRIBUTE_VALUE, fresh),
        });
    }
    if let Some(d) = obj
        .original_creation_date
        .filter(|_| version >= ProtocolVersion::V1_2)
    {
        v.push(Attribute::OriginalCreationDate(d));
    }
    if version >= ProtocolVersion::V1_4 {
        // Get returns the key in the clear: not sensitive, extractable, from the start.
        for (name, flag) in [
            ("Sensitive", false),
            ("Always Sensitive", false),
            ("Extractable", true),
            ("Never Extractable", false),
        ] {
            v.push(Attribute::Other {
                name: name.into(),
                value: Item::boolean(Tag::ATTRIBUTE_VALUE, flag),
            });
        }
    }
    if version.uses_v2_attributes() {
        // KMIP 2.x attributes: the Short Unique Identifier, derived from the Unique
        // Identifier (its SHA-256, so nothing to store and the same on every answer);
        // the Key Format Type it was registered in (Raw for generated keys), while it
        // has material; and where it is kept: in software, a SQLite file.
        v.push(Attribute::Other {
            name: "Short Unique Identifier".into(),
            value: Item::bytes(
                Tag::ATTRIBUTE_VALUE,
                ring::digest::digest(&ring::digest::SHA256, obj.uid.as_bytes()).as_ref(),
            ),
        });
        if obj.key_material.is_some() {
            v.push(Attribute::Other {
                name: "Key Format Type".into(),
                value: Item::enumeration(Tag::ATTRIBUTE_VALUE, obj.key_format.0),
            });
        }
        const SOFTWARE: i32 = 0x1; // Protection Storage Mask Software (KMIP 2.0)
        v.push(Attribute::Other {
            name: "Protection Storage Mask".into(),
            value: Item::integer(Tag::ATTRIBUTE_VALUE, SOFTWARE),
        });
    }
    if obj.original_creation_date.is_some() && version >= ProtocolVersion::V1_3 {
        // A key this server generated: from the operating system's generator (ring's
        // SystemRandom), which no RNG Algorithm value names: Unspecified.
        const UNSPECIFIED: u32 = 0x1; // RNG Algorithm (1.4 section 9.1.3.2.44)
        v.push(Attribute::Other {
            name: "Random Number Generator".into(),
            value: Item::structure(
                Tag::ATTRIBUTE_VALUE,
                vec![Item::enumeration(Tag::RNG_ALGORITHM, UNSPECIFIED)],
            ),
        });
    }
    for (name, value) in &obj.custom {
        v.push(Attribute::Other {
            name: name.clone(),
            value: value.clone(),
        });
    }
    v
}

/// The Digest attribute (KMIP 1.4 section 3.17): SHA-256 over the Key Material in Raw
/// format, which is how every key is stored here. The profiles' test cases expect it
/// on every key; it reveals nothing a Get would not.
fn digest_of(material: &[u8]) -> Attribute {
    const SHA_256: u32 = 0x6; // Hashing Algorithm (1.4 section 9.1.3.2.16)
    let digest = ring::digest::digest(&ring::digest::SHA256, material);
    Attribute::Other {
        name: "Digest".into(),
        value: Item::structure(
            Tag::ATTRIBUTE_VALUE,
            vec![
                Item::enumeration(Tag::HASHING_ALGORITHM, SHA_256),
                Item::bytes(Tag::DIGEST_VALUE, digest.as_ref()),
                Item::enumeration(Tag::KEY_FORMAT_TYPE, KeyFormatType::RAW.0),
            ],
        ),
    }
}

fn discover_versions(client: &[ProtocolVersion]) -> ResponsePayload {
    let versions = if client.is_empty() {
        SUPPORTED_VERSIONS.to_vec()
    } else {
        client
            .iter()
            .copied()
            .filter(|v| SUPPORTED_VERSIONS.contains(v))
            .collect()
    };
    ResponsePayload::DiscoverVersions(DiscoverVersionsResponse { versions })
}

fn query(functions: &[QueryFunction], version: ProtocolVersion) -> ResponsePayload {
    let mut response = QueryResponse::default();
    if functions.contains(&QueryFunction::QUERY_OPERATIONS) {
        // Log and Interop exist from KMIP 2.0 on.
        response.operations = SUPPORTED_OPERATIONS
            .iter()
            .copied()
            .filter(|op| {
                version.uses_v2_attributes() || (*op != Operation::LOG && *op != Operation::INTEROP)
            })
            .collect();
    }
    if functions.contains(&QueryFunction::QUERY_OBJECTS) {
        response.object_types = vec![ObjectType::SYMMETRIC_KEY];
    }
    if functions.contains(&QueryFunction::QUERY_SERVER_INFORMATION) {
        response.vendor_identification = Some(VENDOR_IDENTIFICATION.to_owned());
    }
    ResponsePayload::Query(response)
}

/// The protocol version a request that failed to decode asked for, if its header can
/// be read; KMIP 1.0 otherwise.
fn version_of_undecodable(bytes: &[u8], limits: &Limits) -> ProtocolVersion {
    ttlv::decode(bytes, limits)
        .ok()
        .and_then(|item| {
            let header = item.find(Tag::REQUEST_HEADER)?;
            ProtocolVersion::from_ttlv(header.find(Tag::PROTOCOL_VERSION)?).ok()
        })
        .filter(|v| SUPPORTED_VERSIONS.contains(v))
        .unwrap_or(ProtocolVersion::V1_0)
}

/// A one-item failure response (Invalid Message unless `reason` says otherwise).
fn error_response(
    version: ProtocolVersion,
    reason: Option<ResultReason>,
    message: String,
) -> Vec<u8> {
    let item = ResponseBatchItem::failure(
        None,
        reason.unwrap_or(ResultReason::INVALID_MESSAGE),
        message,
    );
    ResponseMessage::new(version, now(), vec![item]).encode()
}
