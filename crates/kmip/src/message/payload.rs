//! Request and response payloads, one type per operation (KMIP 1.4 section 4, KMIP 2.0
//! section 6.1). Field order follows the specification's tables; the protocol version
//! decides between the 1.x `Template-Attribute` / `Attribute` forms and the 2.0
//! `Attributes` form.

use std::fmt;

use zeroize::Zeroizing;

use super::object::ManagedObject;
use super::reader::Reader;
use super::{MessageError, MessageErrorKind, push_opt, read_version, version_item};
use crate::attribute::{
    Attribute, RevocationReason, attribute_name, attribute_tag, attributes_to_v2,
    read_attributes_v2,
};
use crate::tag::Tag;
use crate::ttlv::{Item, ItemType, Value};
use crate::types::{
    BlockCipherMode, CryptographicAlgorithm, KeyFormatType, NameType, ObjectType, Operation,
    ProtocolVersion, QueryFunction,
};

/// A template name inside a 1.x Template-Attribute (KMIP 1.4 section 2.1.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    /// Name Value.
    pub value: String,
    /// Name Type.
    pub name_type: NameType,
}

/// Template-Attribute (KMIP 1.4 section 2.1.8): references to templates by name, and
/// attributes. In KMIP 2.0 this becomes the `Attributes` structure and the template
/// names are dropped (2.0 has no templates).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateAttribute {
    /// Names of templates to apply.
    pub template_names: Vec<Name>,
    /// Attributes, in order.
    pub attributes: Vec<Attribute>,
}

impl TemplateAttribute {
    /// A Template-Attribute of attributes only.
    pub fn new(attributes: Vec<Attribute>) -> Self {
        TemplateAttribute {
            template_names: Vec::new(),
            attributes,
        }
    }

    fn to_v1(&self, tag: Tag) -> Item {
        let mut v: Vec<Item> = self
            .template_names
            .iter()
            .map(|n| {
                Item::structure(
                    Tag::NAME,
                    vec![
                        Item::text(Tag::NAME_VALUE, n.value.clone()),
                        Item::enumeration(Tag::NAME_TYPE, n.name_type.0),
                    ],
                )
            })
            .collect();
        v.extend(self.attributes.iter().map(Attribute::to_v1));
        Item::structure(tag, v)
    }

    /// `Template-Attribute` (1.x) or `Attributes` (2.0).
    fn to_ttlv(&self, version: ProtocolVersion) -> Item {
        if version.uses_v2_attributes() {
            attributes_to_v2(&self.attributes)
        } else {
            self.to_v1(Tag::TEMPLATE_ATTRIBUTE)
        }
    }

    fn read_v1(mut r: Reader<'_>) -> Result<Self, MessageError> {
        let mut template_names = Vec::new();
        while let Some(mut n) = r.opt_struct(Tag::NAME)? {
            let value = n.req_text(Tag::NAME_VALUE)?;
            let name_type = NameType(n.req_enum(Tag::NAME_TYPE)?);
            n.finish()?;
            template_names.push(Name { value, name_type });
        }
        let mut attributes = Vec::new();
        while let Some(a) = r.next_if(Tag::ATTRIBUTE) {
            attributes.push(Attribute::read_v1(r.path(), a)?);
        }
        r.finish()?;
        Ok(TemplateAttribute {
            template_names,
            attributes,
        })
    }

    /// Reads the version's form if present next in `r`.
    fn read_opt(
        r: &mut Reader<'_>,
        version: ProtocolVersion,
    ) -> Result<Option<Self>, MessageError> {
        if version.uses_v2_attributes() {
            match r.next_if(Tag::ATTRIBUTES) {
                Some(item) => Ok(Some(TemplateAttribute::new(read_attributes_v2(
                    r.path(),
                    item,
                )?))),
                None => Ok(None),
            }
        } else {
            match r.opt_struct(Tag::TEMPLATE_ATTRIBUTE)? {
                Some(t) => Ok(Some(TemplateAttribute::read_v1(t)?)),
                None => Ok(None),
            }
        }
    }

    fn read_req(r: &mut Reader<'_>, version: ProtocolVersion) -> Result<Self, MessageError> {
        let tag = if version.uses_v2_attributes() {
            Tag::ATTRIBUTES
        } else {
            Tag::TEMPLATE_ATTRIBUTE
        };
        TemplateAttribute::read_opt(r, version)?
            .ok_or_else(|| r.error(None, MessageErrorKind::Missing(tag)))
    }
}

/// Cryptographic Parameters (KMIP 1.4 section 3.6). Enumerations without a type in
/// [`crate::types`] are raw values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CryptographicParameters {
    /// Block Cipher Mode.
    pub block_cipher_mode: Option<BlockCipherMode>,
    /// Padding Method.
    pub padding_method: Option<u32>,
    /// Hashing Algorithm.
    pub hashing_algorithm: Option<u32>,
    /// Key Role Type.
    pub key_role_type: Option<u32>,
    /// Digital Signature Algorithm (1.2).
    pub digital_signature_algorithm: Option<u32>,
    /// Cryptographic Algorithm (1.2).
    pub cryptographic_algorithm: Option<CryptographicAlgorithm>,
    /// Random IV (1.2): the server generates the IV.
    pub random_iv: Option<bool>,
    /// IV Length in bits (1.2).
    pub iv_length: Option<i32>,
    /// Tag Length in bytes (1.2), for AEAD modes.
    pub tag_length: Option<i32>,
    /// Fixed Field Length (1.2).
    pub fixed_field_length: Option<i32>,
    /// Invocation Field Length (1.2).
    pub invocation_field_length: Option<i32>,
    /// Counter Length (1.2).
    pub counter_length: Option<i32>,
    /// Initial Counter Value (1.2).
    pub initial_counter_value: Option<i32>,
    /// Salt Length (1.4).
    pub salt_length: Option<i32>,
    /// Mask Generator (1.4).
    pub mask_generator: Option<u32>,
    /// Mask Generator Hashing Algorithm (1.4).
    pub mask_generator_hashing_algorithm: Option<u32>,
    /// P Source (1.4).
    pub p_source: Option<Vec<u8>>,
    /// Trailer Field (1.4).
    pub trailer_field: Option<i32>,
}

impl CryptographicParameters {
    fn to_ttlv(&self) -> Item {
        let mut v = Vec::new();
        let e = |tag: Tag| move |x: &u32| Item::enumeration(tag, *x);
        let i = |tag: Tag| move |x: &i32| Item::integer(tag, *x);
        push_opt(
            &mut v,
            &self.block_cipher_mode.map(|m| m.0),
            e(Tag::BLOCK_CIPHER_MODE),
        );
        push_opt(&mut v, &self.padding_method, e(Tag::PADDING_METHOD));
        push_opt(&mut v, &self.hashing_algorithm, e(Tag::HASHING_ALGORITHM));
        push_opt(&mut v, &self.key_role_type, e(Tag::KEY_ROLE_TYPE));
        push_opt(
            &mut v,
            &self.digital_signature_algorithm,
            e(Tag::DIGITAL_SIGNATURE_ALGORITHM),
        );
        push_opt(
            &mut v,
            &self.cryptographic_algorithm.map(|a| a.0),
            e(Tag::CRYPTOGRAPHIC_ALGORITHM),
        );
        push_opt(&mut v, &self.random_iv, |x| {
            Item::boolean(Tag::RANDOM_IV, *x)
        });
        push_opt(&mut v, &self.iv_length, i(Tag::IV_LENGTH));
        push_opt(&mut v, &self.tag_length, i(Tag::TAG_LENGTH));
        push_opt(&mut v, &self.fixed_field_length, i(Tag::FIXED_FIELD_LENGTH));
        push_opt(
            &mut v,
            &self.invocation_field_length,
            i(Tag::INVOCATION_FIELD_LENGTH),
        );
        push_opt(&mut v, &self.counter_length, i(Tag::COUNTER_LENGTH));
        push_opt(
            &mut v,
            &self.initial_counter_value,
            i(Tag::INITIAL_COUNTER_VALUE),
        );
        push_opt(&mut v, &self.salt_length, i(Tag::SALT_LENGTH));
        push_opt(&mut v, &self.mask_generator, e(Tag::MASK_GENERATOR));
        push_opt(
            &mut v,
            &self.mask_generator_hashing_algorithm,
            e(Tag::MASK_GENERATOR_HASHING_ALGORITHM),
        );
        push_opt(&mut v, &self.p_source, |x| {
            Item::bytes(Tag::P_SOURCE, x.clone())
        });
        push_opt(&mut v, &self.trailer_field, i(Tag::TRAILER_FIELD));
        Item::structure(Tag::CRYPTOGRAPHIC_PARAMETERS, v)
    }

    fn read(mut r: Reader<'_>) -> Result<Self, MessageError> {
        let p = CryptographicParameters {
            block_cipher_mode: r.opt_enum(Tag::BLOCK_CIPHER_MODE)?.map(BlockCipherMode),
            padding_method: r.opt_enum(Tag::PADDING_METHOD)?,
            hashing_algorithm: r.opt_enum(Tag::HASHING_ALGORITHM)?,
            key_role_type: r.opt_enum(Tag::KEY_ROLE_TYPE)?,
            digital_signature_algorithm: r.opt_enum(Tag::DIGITAL_SIGNATURE_ALGORITHM)?,
            cryptographic_algorithm: r
                .opt_enum(Tag::CRYPTOGRAPHIC_ALGORITHM)?
                .map(CryptographicAlgorithm),
            random_iv: r.opt_bool(Tag::RANDOM_IV)?,
            iv_length: r.opt_int(Tag::IV_LENGTH)?,
            tag_length: r.opt_int(Tag::TAG_LENGTH)?,
            fixed_field_length: r.opt_int(Tag::FIXED_FIELD_LENGTH)?,
            invocation_field_length: r.opt_int(Tag::INVOCATION_FIELD_LENGTH)?,
            counter_length: r.opt_int(Tag::COUNTER_LENGTH)?,
            initial_counter_value: r.opt_int(Tag::INITIAL_COUNTER_VALUE)?,
            salt_length: r.opt_int(Tag::SALT_LENGTH)?,
            mask_generator: r.opt_enum(Tag::MASK_GENERATOR)?,
            mask_generator_hashing_algorithm: r.opt_enum(Tag::MASK_GENERATOR_HASHING_ALGORITHM)?,
            p_source: r.opt_bytes(Tag::P_SOURCE)?,
            trailer_field: r.opt_int(Tag::TRAILER_FIELD)?,
        };
        r.finish()?;
        Ok(p)
    }

    fn read_opt(r: &mut Reader<'_>) -> Result<Option<Self>, MessageError> {
        match r.opt_struct(Tag::CRYPTOGRAPHIC_PARAMETERS)? {
            Some(p) => Ok(Some(CryptographicParameters::read(p)?)),
            None => Ok(None),
        }
    }
}

/// Discover Versions request (KMIP 1.4 section 4.26): the client's versions, most
/// preferred first; empty asks for all of the server's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoverVersionsRequest {
    /// Protocol Versions.
    pub versions: Vec<ProtocolVersion>,
}

/// Discover Versions response: the versions both sides support, server's preference
/// first (empty when none match).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoverVersionsResponse {
    /// Protocol Versions.
    pub versions: Vec<ProtocolVersion>,
}

/// Query request (KMIP 1.4 section 4.25).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryRequest {
    /// Query Functions.
    pub functions: Vec<QueryFunction>,
}

/// Query response (KMIP 1.4 section 4.25). The lists after Application Namespaces
/// (Extension Information, Attestation Types, RNG Parameters, Profile Information,
/// Validation Information, Capability Information, Client Registration Methods, ...)
/// are kept as TTLV in `other`, in wire order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryResponse {
    /// Operations the server supports.
    pub operations: Vec<Operation>,
    /// Object Types the server supports.
    pub object_types: Vec<ObjectType>,
    /// Vendor Identification.
    pub vendor_identification: Option<String>,
    /// Server Information (vendor-specific structure), as TTLV.
    pub server_information: Option<Item>,
    /// Application Namespaces.
    pub application_namespaces: Vec<String>,
    /// Every later field, as TTLV.
    pub other: Vec<Item>,
}

/// Create request (KMIP 1.4 section 4.1; 2.0 section 6.1.8). A 2.0 Protection Storage
/// Masks field is accepted and dropped (also for Register and Re-key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRequest {
    /// Object Type (Symmetric Key for Headlock).
    pub object_type: ObjectType,
    /// Template-Attribute (1.x) or Attributes (2.0).
    pub template_attribute: TemplateAttribute,
}

/// Create response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateResponse {
    /// Object Type.
    pub object_type: ObjectType,
    /// Unique Identifier of the new object.
    pub unique_identifier: String,
    /// Attributes the server set implicitly (1.x only).
    pub template_attribute: Option<TemplateAttribute>,
}

/// Register request (KMIP 1.4 section 4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterRequest {
    /// Object Type.
    pub object_type: ObjectType,
    /// Template-Attribute (1.x; may be empty) or Attributes (2.0).
    pub template_attribute: TemplateAttribute,
    /// The object to register.
    pub object: ManagedObject,
}

/// Register response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterResponse {
    /// Unique Identifier of the new object.
    pub unique_identifier: String,
    /// Attributes the server set implicitly (1.x only).
    pub template_attribute: Option<TemplateAttribute>,
}

/// Get request (KMIP 1.4 section 4.11).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetRequest {
    /// Unique Identifier (absent: the ID Placeholder).
    pub unique_identifier: Option<String>,
    /// Key Format Type wanted.
    pub key_format_type: Option<KeyFormatType>,
    /// Key Wrap Type (1.4), raw enumeration value.
    pub key_wrap_type: Option<u32>,
    /// Key Compression Type, raw enumeration value.
    pub key_compression_type: Option<u32>,
    /// Key Wrapping Specification, as TTLV.
    pub key_wrapping_specification: Option<Item>,
}

/// Get response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetResponse {
    /// Object Type.
    pub object_type: ObjectType,
    /// Unique Identifier.
    pub unique_identifier: String,
    /// The object.
    pub object: ManagedObject,
}

/// Get Attributes request (KMIP 1.4 section 4.12). In 2.0 the names travel as Attribute
/// References (the attribute's tag); a name with no 2.0 tag as a vendor reference.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetAttributesRequest {
    /// Unique Identifier (absent: the ID Placeholder).
    pub unique_identifier: Option<String>,
    /// Attribute names (1.x spelling, `"State"`); empty asks for all.
    pub attribute_names: Vec<String>,
}

/// Get Attributes response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetAttributesResponse {
    /// Unique Identifier.
    pub unique_identifier: String,
    /// The attributes.
    pub attributes: Vec<Attribute>,
}

/// Get Attribute List request (KMIP 1.4 section 4.13).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetAttributeListRequest {
    /// Unique Identifier (absent: the ID Placeholder).
    pub unique_identifier: Option<String>,
}

/// Get Attribute List response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetAttributeListResponse {
    /// Unique Identifier.
    pub unique_identifier: String,
    /// Attribute names (1.x spelling).
    pub attribute_names: Vec<String>,
}

/// Locate request (KMIP 1.4 section 4.9).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocateRequest {
    /// Maximum Items.
    pub maximum_items: Option<i32>,
    /// Offset Items (1.3).
    pub offset_items: Option<i32>,
    /// Storage Status Mask.
    pub storage_status_mask: Option<i32>,
    /// Object Group Member (1.1), raw enumeration value.
    pub object_group_member: Option<u32>,
    /// Attributes to match (Name, Object Type, State, ...).
    pub attributes: Vec<Attribute>,
}

/// Locate response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocateResponse {
    /// Located Items (1.3): how many matched in all.
    pub located_items: Option<i32>,
    /// Unique Identifiers of the matching objects.
    pub unique_identifiers: Vec<String>,
}

/// Revoke request (KMIP 1.4 section 4.20).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeRequest {
    /// Unique Identifier (absent: the ID Placeholder).
    pub unique_identifier: Option<String>,
    /// Revocation Reason.
    pub revocation_reason: RevocationReason,
    /// Compromise Occurrence Date, POSIX seconds.
    pub compromise_occurrence_date: Option<i64>,
}

/// Re-key request (KMIP 1.4 section 4.4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReKeyRequest {
    /// Unique Identifier of the key to replace (absent: the ID Placeholder).
    pub unique_identifier: Option<String>,
    /// Offset (Interval) for the new key's dates.
    pub offset: Option<u32>,
    /// Template-Attribute (1.x) or Attributes (2.0) for the new key.
    pub template_attribute: Option<TemplateAttribute>,
}

/// Re-key response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReKeyResponse {
    /// Unique Identifier of the new key.
    pub unique_identifier: String,
    /// Attributes the server set implicitly (1.x only).
    pub template_attribute: Option<TemplateAttribute>,
}

/// Encrypt request (KMIP 1.4 section 4.29). For AES-GCM: Block Cipher Mode GCM in
/// the parameters, `iv_counter_nonce` the nonce (or Random IV), `additional_data` the
/// AAD.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EncryptRequest {
    /// Unique Identifier of the key.
    pub unique_identifier: Option<String>,
    /// Cryptographic Parameters.
    pub cryptographic_parameters: Option<CryptographicParameters>,
    /// Data: the plaintext (zeroized on drop, never printed).
    pub data: Option<Zeroizing<Vec<u8>>>,
    /// IV/Counter/Nonce.
    pub iv_counter_nonce: Option<Vec<u8>>,
    /// Correlation Value (multi-part).
    pub correlation_value: Option<Vec<u8>>,
    /// Init Indicator (multi-part).
    pub init_indicator: Option<bool>,
    /// Final Indicator (multi-part).
    pub final_indicator: Option<bool>,
    /// Authenticated Encryption Additional Data (1.4).
    pub additional_data: Option<Vec<u8>>,
}

/// Encrypt response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncryptResponse {
    /// Unique Identifier of the key used.
    pub unique_identifier: String,
    /// Data: the ciphertext.
    pub data: Option<Vec<u8>>,
    /// IV/Counter/Nonce the server generated.
    pub iv_counter_nonce: Option<Vec<u8>>,
    /// Correlation Value (multi-part).
    pub correlation_value: Option<Vec<u8>>,
    /// Authenticated Encryption Tag (1.4).
    pub tag: Option<Vec<u8>>,
}

/// Decrypt request (KMIP 1.4 section 4.30).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecryptRequest {
    /// Unique Identifier of the key.
    pub unique_identifier: Option<String>,
    /// Cryptographic Parameters.
    pub cryptographic_parameters: Option<CryptographicParameters>,
    /// Data: the ciphertext.
    pub data: Option<Vec<u8>>,
    /// IV/Counter/Nonce.
    pub iv_counter_nonce: Option<Vec<u8>>,
    /// Correlation Value (multi-part).
    pub correlation_value: Option<Vec<u8>>,
    /// Init Indicator (multi-part).
    pub init_indicator: Option<bool>,
    /// Final Indicator (multi-part).
    pub final_indicator: Option<bool>,
    /// Authenticated Encryption Additional Data (1.4).
    pub additional_data: Option<Vec<u8>>,
    /// Authenticated Encryption Tag (1.4).
    pub tag: Option<Vec<u8>>,
}

/// Decrypt response.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DecryptResponse {
    /// Unique Identifier of the key used.
    pub unique_identifier: String,
    /// Data: the plaintext (zeroized on drop, never printed).
    pub data: Option<Zeroizing<Vec<u8>>>,
    /// Correlation Value (multi-part).
    pub correlation_value: Option<Vec<u8>>,
}

impl fmt::Debug for EncryptRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptRequest")
            .field("unique_identifier", &self.unique_identifier)
            .field("cryptographic_parameters", &self.cryptographic_parameters)
            .field("data", &self.data.as_ref().map(|d| Redacted(d.len())))
            .field("iv_counter_nonce", &self.iv_counter_nonce)
            .field("correlation_value", &self.correlation_value)
            .field("init_indicator", &self.init_indicator)
            .field("final_indicator", &self.final_indicator)
            .field("additional_data", &self.additional_data)
            .finish()
    }
}

impl fmt::Debug for DecryptResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptResponse")
            .field("unique_identifier", &self.unique_identifier)
            .field("data", &self.data.as_ref().map(|d| Redacted(d.len())))
            .field("correlation_value", &self.correlation_value)
            .finish()
    }
}

struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes redacted>", self.0)
    }
}

/// The payload of a request batch item, one variant per operation Headlock uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestPayload {
    /// Discover Versions.
    DiscoverVersions(DiscoverVersionsRequest),
    /// Query.
    Query(QueryRequest),
    /// Create.
    Create(CreateRequest),
    /// Register.
    Register(RegisterRequest),
    /// Get.
    Get(GetRequest),
    /// Get Attributes.
    GetAttributes(GetAttributesRequest),
    /// Get Attribute List.
    GetAttributeList(GetAttributeListRequest),
    /// Locate.
    Locate(LocateRequest),
    /// Activate (KMIP 1.4 section 4.19).
    Activate {
        /// Unique Identifier (absent: the ID Placeholder).
        unique_identifier: Option<String>,
    },
    /// Revoke.
    Revoke(RevokeRequest),
    /// Destroy (KMIP 1.4 section 4.21).
    Destroy {
        /// Unique Identifier (absent: the ID Placeholder).
        unique_identifier: Option<String>,
    },
    /// Re-key.
    ReKey(ReKeyRequest),
    /// Encrypt.
    Encrypt(EncryptRequest),
    /// Decrypt.
    Decrypt(DecryptRequest),
    /// Any other operation's payload, as the `Request Payload` item.
    Other(Item),
}

/// The payload of a response batch item, one variant per operation Headlock uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponsePayload {
    /// Discover Versions.
    DiscoverVersions(DiscoverVersionsResponse),
    /// Query.
    Query(QueryResponse),
    /// Create.
    Create(CreateResponse),
    /// Register.
    Register(RegisterResponse),
    /// Get.
    Get(GetResponse),
    /// Get Attributes.
    GetAttributes(GetAttributesResponse),
    /// Get Attribute List.
    GetAttributeList(GetAttributeListResponse),
    /// Locate.
    Locate(LocateResponse),
    /// Activate.
    Activate {
        /// Unique Identifier.
        unique_identifier: String,
    },
    /// Revoke.
    Revoke {
        /// Unique Identifier.
        unique_identifier: String,
    },
    /// Destroy.
    Destroy {
        /// Unique Identifier.
        unique_identifier: String,
    },
    /// Re-key.
    ReKey(ReKeyResponse),
    /// Encrypt.
    Encrypt(EncryptResponse),
    /// Decrypt.
    Decrypt(DecryptResponse),
    /// Any other payload (unknown operation, or a payload on a failed item), as the
    /// `Response Payload` item.
    Other(Item),
}

fn uid(v: &str) -> Item {
    Item::text(Tag::UNIQUE_IDENTIFIER, v.to_owned())
}

fn opt_uid(items: &mut Vec<Item>, v: &Option<String>) {
    push_opt(items, v, |x| uid(x));
}

fn bytes_opt(items: &mut Vec<Item>, tag: Tag, v: &Option<Vec<u8>>) {
    push_opt(items, v, |x| Item::bytes(tag, x.clone()));
}

/// Attribute names as 1.x `Attribute Name` texts or 2.0 `Attribute Reference`s.
fn attribute_names_to_ttlv(items: &mut Vec<Item>, names: &[String], version: ProtocolVersion) {
    for name in names {
        if !version.uses_v2_attributes() {
            items.push(Item::text(Tag::ATTRIBUTE_NAME, name.clone()));
        } else if let Some(tag) = attribute_tag(name) {
            items.push(Item::enumeration(Tag::ATTRIBUTE_REFERENCE, tag.0));
        } else {
            items.push(Item::structure(
                Tag::ATTRIBUTE_REFERENCE,
                vec![
                    Item::text(Tag::VENDOR_IDENTIFICATION, String::new()),
                    Item::text(Tag::ATTRIBUTE_NAME, name.clone()),
                ],
            ));
        }
    }
}

fn read_attribute_names(
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> Result<Vec<String>, MessageError> {
    if !version.uses_v2_attributes() {
        return r.many_text(Tag::ATTRIBUTE_NAME);
    }
    let mut names = Vec::new();
    while let Some(item) = r.next_if(Tag::ATTRIBUTE_REFERENCE) {
        match &item.value {
            Value::Enumeration(tag) => names.push(
                attribute_name(crate::tag::Tag(*tag))
                    .map_or_else(|| format!("0x{tag:06X}"), str::to_owned),
            ),
            Value::Structure(_) => {
                let mut a = r.open(item)?;
                let _vendor = a.req_text(Tag::VENDOR_IDENTIFICATION)?;
                names.push(a.req_text(Tag::ATTRIBUTE_NAME)?);
                a.finish()?;
            }
            _ => {
                return Err(r.error(
                    Some(item.tag),
                    MessageErrorKind::WrongType {
                        tag: item.tag,
                        expected: ItemType::Enumeration,
                        found: item.item_type(),
                    },
                ));
            }
        }
    }
    Ok(names)
}

fn read_versions(r: &mut Reader<'_>) -> Result<Vec<ProtocolVersion>, MessageError> {
    let mut versions = Vec::new();
    while let Some(v) = r.opt_struct(Tag::PROTOCOL_VERSION)? {
        versions.push(read_version(v)?);
    }
    Ok(versions)
}

fn read_locate_attributes(
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> Result<Vec<Attribute>, MessageError> {
    if version.uses_v2_attributes() {
        match r.next_if(Tag::ATTRIBUTES) {
            Some(a) => read_attributes_v2(r.path(), a),
            None => Ok(Vec::new()),
        }
    } else {
        let mut attributes = Vec::new();
        while let Some(a) = r.next_if(Tag::ATTRIBUTE) {
            attributes.push(Attribute::read_v1(r.path(), a)?);
        }
        Ok(attributes)
    }
}

impl RequestPayload {
    /// The operation this payload belongs to (`None` for [`RequestPayload::Other`]).
    pub fn operation(&self) -> Option<Operation> {
        Some(match self {
            RequestPayload::DiscoverVersions(_) => Operation::DISCOVER_VERSIONS,
            RequestPayload::Query(_) => Operation::QUERY,
            RequestPayload::Create(_) => Operation::CREATE,
            RequestPayload::Register(_) => Operation::REGISTER,
            RequestPayload::Get(_) => Operation::GET,
            RequestPayload::GetAttributes(_) => Operation::GET_ATTRIBUTES,
            RequestPayload::GetAttributeList(_) => Operation::GET_ATTRIBUTE_LIST,
            RequestPayload::Locate(_) => Operation::LOCATE,
            RequestPayload::Activate { .. } => Operation::ACTIVATE,
            RequestPayload::Revoke(_) => Operation::REVOKE,
            RequestPayload::Destroy { .. } => Operation::DESTROY,
            RequestPayload::ReKey(_) => Operation::REKEY,
            RequestPayload::Encrypt(_) => Operation::ENCRYPT,
            RequestPayload::Decrypt(_) => Operation::DECRYPT,
            RequestPayload::Other(_) => return None,
        })
    }

    /// The `Request Payload` item in the encoding of `version`.
    pub fn to_ttlv(&self, version: ProtocolVersion) -> Item {
        let mut v = Vec::new();
        match self {
            RequestPayload::Other(item) => return item.clone(),
            RequestPayload::DiscoverVersions(p) => {
                v.extend(p.versions.iter().map(|x| version_item(*x)));
            }
            RequestPayload::Query(p) => {
                v.extend(
                    p.functions
                        .iter()
                        .map(|f| Item::enumeration(Tag::QUERY_FUNCTION, f.0)),
                );
            }
            RequestPayload::Create(p) => {
                v.push(Item::enumeration(Tag::OBJECT_TYPE, p.object_type.0));
                v.push(p.template_attribute.to_ttlv(version));
            }
            RequestPayload::Register(p) => {
                v.push(Item::enumeration(Tag::OBJECT_TYPE, p.object_type.0));
                v.push(p.template_attribute.to_ttlv(version));
                v.push(p.object.to_ttlv(version));
            }
            RequestPayload::Get(p) => {
                opt_uid(&mut v, &p.unique_identifier);
                push_opt(&mut v, &p.key_format_type, |x| {
                    Item::enumeration(Tag::KEY_FORMAT_TYPE, x.0)
                });
                push_opt(&mut v, &p.key_wrap_type, |x| {
                    Item::enumeration(Tag::KEY_WRAP_TYPE, *x)
                });
                push_opt(&mut v, &p.key_compression_type, |x| {
                    Item::enumeration(Tag::KEY_COMPRESSION_TYPE, *x)
                });
                push_opt(&mut v, &p.key_wrapping_specification, Item::clone);
            }
            RequestPayload::GetAttributes(p) => {
                opt_uid(&mut v, &p.unique_identifier);
                attribute_names_to_ttlv(&mut v, &p.attribute_names, version);
            }
            RequestPayload::GetAttributeList(p) => opt_uid(&mut v, &p.unique_identifier),
            RequestPayload::Locate(p) => {
                push_opt(&mut v, &p.maximum_items, |x| {
                    Item::integer(Tag::MAXIMUM_ITEMS, *x)
                });
                push_opt(&mut v, &p.offset_items, |x| {
                    Item::integer(Tag::OFFSET_ITEMS, *x)
                });
                push_opt(&mut v, &p.storage_status_mask, |x| {
                    Item::integer(Tag::STORAGE_STATUS_MASK, *x)
                });
                push_opt(&mut v, &p.object_group_member, |x| {
                    Item::enumeration(Tag::OBJECT_GROUP_MEMBER, *x)
                });
                if version.uses_v2_attributes() {
                    v.push(attributes_to_v2(&p.attributes));
                } else {
                    v.extend(p.attributes.iter().map(Attribute::to_v1));
                }
            }
            RequestPayload::Activate { unique_identifier }
            | RequestPayload::Destroy { unique_identifier } => opt_uid(&mut v, unique_identifier),
            RequestPayload::Revoke(p) => {
                opt_uid(&mut v, &p.unique_identifier);
                v.push(p.revocation_reason.to_item(Tag::REVOCATION_REASON));
                push_opt(&mut v, &p.compromise_occurrence_date, |x| {
                    Item::date_time(Tag::COMPROMISE_OCCURRENCE_DATE, *x)
                });
            }
            RequestPayload::ReKey(p) => {
                opt_uid(&mut v, &p.unique_identifier);
                push_opt(&mut v, &p.offset, |x| Item::interval(Tag::OFFSET, *x));
                push_opt(&mut v, &p.template_attribute, |x| x.to_ttlv(version));
            }
            RequestPayload::Encrypt(p) => {
                opt_uid(&mut v, &p.unique_identifier);
                push_opt(&mut v, &p.cryptographic_parameters, |x| x.to_ttlv());
                push_opt(&mut v, &p.data, |x| Item::bytes(Tag::DATA, x.to_vec()));
                bytes_opt(&mut v, Tag::IV_COUNTER_NONCE, &p.iv_counter_nonce);
                bytes_opt(&mut v, Tag::CORRELATION_VALUE, &p.correlation_value);
                push_opt(&mut v, &p.init_indicator, |x| {
                    Item::boolean(Tag::INIT_INDICATOR, *x)
                });
                push_opt(&mut v, &p.final_indicator, |x| {
                    Item::boolean(Tag::FINAL_INDICATOR, *x)
                });
                bytes_opt(
                    &mut v,
                    Tag::AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA,
                    &p.additional_data,
                );
            }
            RequestPayload::Decrypt(p) => {
                opt_uid(&mut v, &p.unique_identifier);
                push_opt(&mut v, &p.cryptographic_parameters, |x| x.to_ttlv());
                bytes_opt(&mut v, Tag::DATA, &p.data);
                bytes_opt(&mut v, Tag::IV_COUNTER_NONCE, &p.iv_counter_nonce);
                bytes_opt(&mut v, Tag::CORRELATION_VALUE, &p.correlation_value);
                push_opt(&mut v, &p.init_indicator, |x| {
                    Item::boolean(Tag::INIT_INDICATOR, *x)
                });
                push_opt(&mut v, &p.final_indicator, |x| {
                    Item::boolean(Tag::FINAL_INDICATOR, *x)
                });
                bytes_opt(
                    &mut v,
                    Tag::AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA,
                    &p.additional_data,
                );
                bytes_opt(&mut v, Tag::AUTHENTICATED_ENCRYPTION_TAG, &p.tag);
            }
        }
        Item::structure(Tag::REQUEST_PAYLOAD, v)
    }

    /// Reads the `Request Payload` item of an `operation` request in `version`.
    pub fn from_ttlv(
        operation: Operation,
        version: ProtocolVersion,
        item: &Item,
    ) -> Result<Self, MessageError> {
        RequestPayload::read(&[], operation, version, item)
    }

    pub(crate) fn read(
        path: &[Tag],
        operation: Operation,
        version: ProtocolVersion,
        item: &Item,
    ) -> Result<Self, MessageError> {
        let mut r = Reader::open_at(path, item)?;
        let payload = match operation {
            Operation::DISCOVER_VERSIONS => {
                RequestPayload::DiscoverVersions(DiscoverVersionsRequest {
                    versions: read_versions(&mut r)?,
                })
            }
            Operation::QUERY => RequestPayload::Query(QueryRequest {
                functions: r
                    .many_enum(Tag::QUERY_FUNCTION)?
                    .into_iter()
                    .map(QueryFunction)
                    .collect(),
            }),
            Operation::CREATE => {
                let object_type = ObjectType(r.req_enum(Tag::OBJECT_TYPE)?);
                let template_attribute = TemplateAttribute::read_req(&mut r, version)?;
                if version.uses_v2_attributes() {
                    r.opt_raw_struct(Tag::PROTECTION_STORAGE_MASKS)?;
                }
                RequestPayload::Create(CreateRequest {
                    object_type,
                    template_attribute,
                })
            }
            Operation::REGISTER => {
                let object_type = ObjectType(r.req_enum(Tag::OBJECT_TYPE)?);
                let template_attribute = TemplateAttribute::read_req(&mut r, version)?;
                let object = ManagedObject::read(&mut r, object_type)?;
                if version.uses_v2_attributes() {
                    r.opt_raw_struct(Tag::PROTECTION_STORAGE_MASKS)?;
                }
                RequestPayload::Register(RegisterRequest {
                    object_type,
                    template_attribute,
                    object,
                })
            }
            Operation::GET => RequestPayload::Get(GetRequest {
                unique_identifier: r.opt_text(Tag::UNIQUE_IDENTIFIER)?,
                key_format_type: r.opt_enum(Tag::KEY_FORMAT_TYPE)?.map(KeyFormatType),
                key_wrap_type: r.opt_enum(Tag::KEY_WRAP_TYPE)?,
                key_compression_type: r.opt_enum(Tag::KEY_COMPRESSION_TYPE)?,
                key_wrapping_specification: r
                    .opt_raw_struct(Tag::KEY_WRAPPING_SPECIFICATION)?
                    .cloned(),
            }),
            Operation::GET_ATTRIBUTES => RequestPayload::GetAttributes(GetAttributesRequest {
                unique_identifier: r.opt_text(Tag::UNIQUE_IDENTIFIER)?,
                attribute_names: read_attribute_names(&mut r, version)?,
            }),
            Operation::GET_ATTRIBUTE_LIST => {
                RequestPayload::GetAttributeList(GetAttributeListRequest {
                    unique_identifier: r.opt_text(Tag::UNIQUE_IDENTIFIER)?,
                })
            }
            Operation::LOCATE => RequestPayload::Locate(LocateRequest {
                maximum_items: r.opt_int(Tag::MAXIMUM_ITEMS)?,
                offset_items: r.opt_int(Tag::OFFSET_ITEMS)?,
                storage_status_mask: r.opt_int(Tag::STORAGE_STATUS_MASK)?,
                object_group_member: r.opt_enum(Tag::OBJECT_GROUP_MEMBER)?,
                attributes: read_locate_attributes(&mut r, version)?,
            }),
            Operation::ACTIVATE => RequestPayload::Activate {
                unique_identifier: r.opt_text(Tag::UNIQUE_IDENTIFIER)?,
            },
            Operation::REVOKE => {
                let unique_identifier = r.opt_text(Tag::UNIQUE_IDENTIFIER)?;
                let reason = r.req_struct(Tag::REVOCATION_REASON)?;
                RequestPayload::Revoke(RevokeRequest {
                    unique_identifier,
                    revocation_reason: RevocationReason::read(reason)?,
                    compromise_occurrence_date: r.opt_date(Tag::COMPROMISE_OCCURRENCE_DATE)?,
                })
            }
            Operation::DESTROY => RequestPayload::Destroy {
                unique_identifier: r.opt_text(Tag::UNIQUE_IDENTIFIER)?,
            },
            Operation::REKEY => {
                let unique_identifier = r.opt_text(Tag::UNIQUE_IDENTIFIER)?;
                let offset = r.opt_interval(Tag::OFFSET)?;
                let template_attribute = TemplateAttribute::read_opt(&mut r, version)?;
                if version.uses_v2_attributes() {
                    r.opt_raw_struct(Tag::PROTECTION_STORAGE_MASKS)?;
                }
                RequestPayload::ReKey(ReKeyRequest {
                    unique_identifier,
                    offset,
                    template_attribute,
                })
            }
            Operation::ENCRYPT => RequestPayload::Encrypt(EncryptRequest {
                unique_identifier: r.opt_text(Tag::UNIQUE_IDENTIFIER)?,
                cryptographic_parameters: CryptographicParameters::read_opt(&mut r)?,
                data: r.opt_secret(Tag::DATA)?,
                iv_counter_nonce: r.opt_bytes(Tag::IV_COUNTER_NONCE)?,
                correlation_value: r.opt_bytes(Tag::CORRELATION_VALUE)?,
                init_indicator: r.opt_bool(Tag::INIT_INDICATOR)?,
                final_indicator: r.opt_bool(Tag::FINAL_INDICATOR)?,
                additional_data: r.opt_bytes(Tag::AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA)?,
            }),
            Operation::DECRYPT => RequestPayload::Decrypt(DecryptRequest {
                unique_identifier: r.opt_text(Tag::UNIQUE_IDENTIFIER)?,
                cryptographic_parameters: CryptographicParameters::read_opt(&mut r)?,
                data: r.opt_bytes(Tag::DATA)?,
                iv_counter_nonce: r.opt_bytes(Tag::IV_COUNTER_NONCE)?,
                correlation_value: r.opt_bytes(Tag::CORRELATION_VALUE)?,
                init_indicator: r.opt_bool(Tag::INIT_INDICATOR)?,
                final_indicator: r.opt_bool(Tag::FINAL_INDICATOR)?,
                additional_data: r.opt_bytes(Tag::AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA)?,
                tag: r.opt_bytes(Tag::AUTHENTICATED_ENCRYPTION_TAG)?,
            }),
            _ => return Ok(RequestPayload::Other(item.clone())),
        };
        r.finish()?;
        Ok(payload)
    }
}

impl ResponsePayload {
    /// The operation this payload belongs to (`None` for [`ResponsePayload::Other`]).
    pub fn operation(&self) -> Option<Operation> {
        Some(match self {
            ResponsePayload::DiscoverVersions(_) => Operation::DISCOVER_VERSIONS,
            ResponsePayload::Query(_) => Operation::QUERY,
            ResponsePayload::Create(_) => Operation::CREATE,
            ResponsePayload::Register(_) => Operation::REGISTER,
            ResponsePayload::Get(_) => Operation::GET,
            ResponsePayload::GetAttributes(_) => Operation::GET_ATTRIBUTES,
            ResponsePayload::GetAttributeList(_) => Operation::GET_ATTRIBUTE_LIST,
            ResponsePayload::Locate(_) => Operation::LOCATE,
            ResponsePayload::Activate { .. } => Operation::ACTIVATE,
            ResponsePayload::Revoke { .. } => Operation::REVOKE,
            ResponsePayload::Destroy { .. } => Operation::DESTROY,
            ResponsePayload::ReKey(_) => Operation::REKEY,
            ResponsePayload::Encrypt(_) => Operation::ENCRYPT,
            ResponsePayload::Decrypt(_) => Operation::DECRYPT,
            ResponsePayload::Other(_) => return None,
        })
    }

    /// The `Response Payload` item in the encoding of `version`.
    pub fn to_ttlv(&self, version: ProtocolVersion) -> Item {
        let mut v = Vec::new();
        match self {
            ResponsePayload::Other(item) => return item.clone(),
            ResponsePayload::DiscoverVersions(p) => {
                v.extend(p.versions.iter().map(|x| version_item(*x)));
            }
            ResponsePayload::Query(p) => {
                v.extend(
                    p.operations
                        .iter()
                        .map(|o| Item::enumeration(Tag::OPERATION, o.0)),
                );
                v.extend(
                    p.object_types
                        .iter()
                        .map(|o| Item::enumeration(Tag::OBJECT_TYPE, o.0)),
                );
                push_opt(&mut v, &p.vendor_identification, |x| {
                    Item::text(Tag::VENDOR_IDENTIFICATION, x.clone())
                });
                push_opt(&mut v, &p.server_information, Item::clone);
                v.extend(
                    p.application_namespaces
                        .iter()
                        .map(|n| Item::text(Tag::APPLICATION_NAMESPACE, n.clone())),
                );
                v.extend(p.other.iter().cloned());
            }
            ResponsePayload::Create(p) => {
                v.push(Item::enumeration(Tag::OBJECT_TYPE, p.object_type.0));
                v.push(uid(&p.unique_identifier));
                if !version.uses_v2_attributes() {
                    push_opt(&mut v, &p.template_attribute, |x| x.to_ttlv(version));
                }
            }
            ResponsePayload::Register(p) => {
                v.push(uid(&p.unique_identifier));
                if !version.uses_v2_attributes() {
                    push_opt(&mut v, &p.template_attribute, |x| x.to_ttlv(version));
                }
            }
            ResponsePayload::Get(p) => {
                v.push(Item::enumeration(Tag::OBJECT_TYPE, p.object_type.0));
                v.push(uid(&p.unique_identifier));
                v.push(p.object.to_ttlv(version));
            }
            ResponsePayload::GetAttributes(p) => {
                v.push(uid(&p.unique_identifier));
                if version.uses_v2_attributes() {
                    v.push(attributes_to_v2(&p.attributes));
                } else {
                    v.extend(p.attributes.iter().map(Attribute::to_v1));
                }
            }
            ResponsePayload::GetAttributeList(p) => {
                v.push(uid(&p.unique_identifier));
                attribute_names_to_ttlv(&mut v, &p.attribute_names, version);
            }
            ResponsePayload::Locate(p) => {
                push_opt(&mut v, &p.located_items, |x| {
                    Item::integer(Tag::LOCATED_ITEMS, *x)
                });
                v.extend(p.unique_identifiers.iter().map(|u| uid(u)));
            }
            ResponsePayload::Activate { unique_identifier }
            | ResponsePayload::Revoke { unique_identifier }
            | ResponsePayload::Destroy { unique_identifier } => v.push(uid(unique_identifier)),
            ResponsePayload::ReKey(p) => {
                v.push(uid(&p.unique_identifier));
                if !version.uses_v2_attributes() {
                    push_opt(&mut v, &p.template_attribute, |x| x.to_ttlv(version));
                }
            }
            ResponsePayload::Encrypt(p) => {
                v.push(uid(&p.unique_identifier));
                bytes_opt(&mut v, Tag::DATA, &p.data);
                bytes_opt(&mut v, Tag::IV_COUNTER_NONCE, &p.iv_counter_nonce);
                bytes_opt(&mut v, Tag::CORRELATION_VALUE, &p.correlation_value);
                bytes_opt(&mut v, Tag::AUTHENTICATED_ENCRYPTION_TAG, &p.tag);
            }
            ResponsePayload::Decrypt(p) => {
                v.push(uid(&p.unique_identifier));
                push_opt(&mut v, &p.data, |x| Item::bytes(Tag::DATA, x.to_vec()));
                bytes_opt(&mut v, Tag::CORRELATION_VALUE, &p.correlation_value);
            }
        }
        Item::structure(Tag::RESPONSE_PAYLOAD, v)
    }

    /// Reads the `Response Payload` item of a successful `operation` in `version`.
    pub fn from_ttlv(
        operation: Operation,
        version: ProtocolVersion,
        item: &Item,
    ) -> Result<Self, MessageError> {
        ResponsePayload::read(&[], operation, version, item)
    }

    pub(crate) fn read(
        path: &[Tag],
        operation: Operation,
        version: ProtocolVersion,
        item: &Item,
    ) -> Result<Self, MessageError> {
        let mut r = Reader::open_at(path, item)?;
        let payload = match operation {
            Operation::DISCOVER_VERSIONS => {
                ResponsePayload::DiscoverVersions(DiscoverVersionsResponse {
                    versions: read_versions(&mut r)?,
                })
            }
            Operation::QUERY => {
                let operations = r
                    .many_enum(Tag::OPERATION)?
                    .into_iter()
                    .map(Operation)
                    .collect();
                let object_types = r
                    .many_enum(Tag::OBJECT_TYPE)?
                    .into_iter()
                    .map(ObjectType)
                    .collect();
                let vendor_identification = r.opt_text(Tag::VENDOR_IDENTIFICATION)?;
                let server_information = r.opt_raw_struct(Tag::SERVER_INFORMATION)?.cloned();
                let application_namespaces = r.many_text(Tag::APPLICATION_NAMESPACE)?;
                let mut other = Vec::new();
                while let Some(i) = r.next_any() {
                    other.push(i.clone());
                }
                ResponsePayload::Query(QueryResponse {
                    operations,
                    object_types,
                    vendor_identification,
                    server_information,
                    application_namespaces,
                    other,
                })
            }
            Operation::CREATE => ResponsePayload::Create(CreateResponse {
                object_type: ObjectType(r.req_enum(Tag::OBJECT_TYPE)?),
                unique_identifier: r.req_text(Tag::UNIQUE_IDENTIFIER)?,
                template_attribute: read_response_template(&mut r, version)?,
            }),
            Operation::REGISTER => ResponsePayload::Register(RegisterResponse {
                unique_identifier: r.req_text(Tag::UNIQUE_IDENTIFIER)?,
                template_attribute: read_response_template(&mut r, version)?,
            }),
            Operation::GET => {
                let object_type = ObjectType(r.req_enum(Tag::OBJECT_TYPE)?);
                let unique_identifier = r.req_text(Tag::UNIQUE_IDENTIFIER)?;
                let object = ManagedObject::read(&mut r, object_type)?;
                ResponsePayload::Get(GetResponse {
                    object_type,
                    unique_identifier,
                    object,
                })
            }
            Operation::GET_ATTRIBUTES => {
                let unique_identifier = r.req_text(Tag::UNIQUE_IDENTIFIER)?;
                let attributes = read_locate_attributes(&mut r, version)?;
                ResponsePayload::GetAttributes(GetAttributesResponse {
                    unique_identifier,
                    attributes,
                })
            }
            Operation::GET_ATTRIBUTE_LIST => {
                ResponsePayload::GetAttributeList(GetAttributeListResponse {
                    unique_identifier: r.req_text(Tag::UNIQUE_IDENTIFIER)?,
                    attribute_names: read_attribute_names(&mut r, version)?,
                })
            }
            Operation::LOCATE => ResponsePayload::Locate(LocateResponse {
                located_items: r.opt_int(Tag::LOCATED_ITEMS)?,
                unique_identifiers: r.many_text(Tag::UNIQUE_IDENTIFIER)?,
            }),
            Operation::ACTIVATE => ResponsePayload::Activate {
                unique_identifier: r.req_text(Tag::UNIQUE_IDENTIFIER)?,
            },
            Operation::REVOKE => ResponsePayload::Revoke {
                unique_identifier: r.req_text(Tag::UNIQUE_IDENTIFIER)?,
            },
            Operation::DESTROY => ResponsePayload::Destroy {
                unique_identifier: r.req_text(Tag::UNIQUE_IDENTIFIER)?,
            },
            Operation::REKEY => ResponsePayload::ReKey(ReKeyResponse {
                unique_identifier: r.req_text(Tag::UNIQUE_IDENTIFIER)?,
                template_attribute: read_response_template(&mut r, version)?,
            }),
            Operation::ENCRYPT => ResponsePayload::Encrypt(EncryptResponse {
                unique_identifier: r.req_text(Tag::UNIQUE_IDENTIFIER)?,
                data: r.opt_bytes(Tag::DATA)?,
                iv_counter_nonce: r.opt_bytes(Tag::IV_COUNTER_NONCE)?,
                correlation_value: r.opt_bytes(Tag::CORRELATION_VALUE)?,
                tag: r.opt_bytes(Tag::AUTHENTICATED_ENCRYPTION_TAG)?,
            }),
            Operation::DECRYPT => ResponsePayload::Decrypt(DecryptResponse {
                unique_identifier: r.req_text(Tag::UNIQUE_IDENTIFIER)?,
                data: r.opt_secret(Tag::DATA)?,
                correlation_value: r.opt_bytes(Tag::CORRELATION_VALUE)?,
            }),
            _ => return Ok(ResponsePayload::Other(item.clone())),
        };
        r.finish()?;
        Ok(payload)
    }
}

/// 1.x responses may carry the implicitly set attributes; 2.0 responses do not.
fn read_response_template(
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> Result<Option<TemplateAttribute>, MessageError> {
    if version.uses_v2_attributes() {
        Ok(None)
    } else {
        TemplateAttribute::read_opt(r, version)
    }
}
