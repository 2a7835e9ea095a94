//! Managed objects carried in Register requests and Get responses (KMIP 1.4 section 2.2):
//! the Symmetric Key with its Key Block (section 2.1.3), the 1.x Template, and any other
//! object kept as TTLV. Key bytes are held in [`Zeroizing`] buffers, compared in
//! constant time, and never printed by `Debug`.

use std::fmt;

use zeroize::Zeroizing;

use super::MessageError;
use super::reader::Reader;
use crate::attribute::{Attribute, attributes_to_v2, read_attributes_v2};
use crate::message::MessageErrorKind;
use crate::tag::Tag;
use crate::ttlv::{Item, Value};
use crate::types::{CryptographicAlgorithm, KeyFormatType, ObjectType, ProtocolVersion};

/// A managed object (KMIP 1.4 section 2.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagedObject {
    /// Symmetric Key (section 2.2.2).
    SymmetricKey(SymmetricKey),
    /// Template (section 2.2.6; deprecated in 1.3, gone in 2.0).
    Template(Template),
    /// Any other object (Certificate, Secret Data, ...), as TTLV under its own tag.
    Other(Item),
}

/// The object tags of KMIP 1.4 section 2.2 and their Object Types.
const OBJECT_TAGS: &[(Tag, ObjectType)] = &[
    (Tag::CERTIFICATE, ObjectType::CERTIFICATE),
    (Tag::SYMMETRIC_KEY, ObjectType::SYMMETRIC_KEY),
    (Tag::PUBLIC_KEY, ObjectType::PUBLIC_KEY),
    (Tag::PRIVATE_KEY, ObjectType::PRIVATE_KEY),
    (Tag::SPLIT_KEY, ObjectType::SPLIT_KEY),
    (Tag::TEMPLATE, ObjectType::TEMPLATE),
    (Tag::SECRET_DATA, ObjectType::SECRET_DATA),
    (Tag::OPAQUE_OBJECT, ObjectType::OPAQUE_OBJECT),
    (Tag::PGP_KEY, ObjectType::PGP_KEY),
    (Tag::CERTIFICATE_REQUEST, ObjectType::CERTIFICATE_REQUEST),
];

impl ManagedObject {
    /// The tag this object is encoded under.
    pub fn tag(&self) -> Tag {
        match self {
            ManagedObject::SymmetricKey(_) => Tag::SYMMETRIC_KEY,
            ManagedObject::Template(_) => Tag::TEMPLATE,
            ManagedObject::Other(item) => item.tag,
        }
    }

    /// The Object Type matching this object, if its tag is a known object tag.
    pub fn object_type(&self) -> Option<ObjectType> {
        let tag = self.tag();
        OBJECT_TAGS.iter().find(|(t, _)| *t == tag).map(|(_, o)| *o)
    }

    pub(crate) fn to_ttlv(&self, version: ProtocolVersion) -> Item {
        match self {
            ManagedObject::SymmetricKey(k) => {
                Item::structure(Tag::SYMMETRIC_KEY, vec![k.key_block.to_ttlv(version)])
            }
            ManagedObject::Template(t) => Item::structure(
                Tag::TEMPLATE,
                t.attributes.iter().map(Attribute::to_v1).collect(),
            ),
            ManagedObject::Other(item) => item.clone(),
        }
    }

    /// Reads the object that must follow an Object Type of `object_type`.
    pub(crate) fn read(r: &mut Reader<'_>, object_type: ObjectType) -> Result<Self, MessageError> {
        let expected = OBJECT_TAGS
            .iter()
            .find(|(_, o)| *o == object_type)
            .map(|(t, _)| *t);
        let item = match r.peek() {
            Some(i) if expected.is_none_or(|t| i.tag == t) => i,
            _ => {
                let tag = expected.unwrap_or(Tag::SYMMETRIC_KEY);
                return Err(r.error(None, MessageErrorKind::Missing(tag)));
            }
        };
        r.next_any();
        let mut o = r.open(item)?;
        Ok(match item.tag {
            Tag::SYMMETRIC_KEY => {
                let kb = o.req_struct(Tag::KEY_BLOCK)?;
                let key_block = KeyBlock::read(kb)?;
                o.finish()?;
                ManagedObject::SymmetricKey(SymmetricKey { key_block })
            }
            Tag::TEMPLATE => {
                let mut attributes = Vec::new();
                while let Some(a) = o.next_if(Tag::ATTRIBUTE) {
                    attributes.push(Attribute::read_v1(o.path(), a)?);
                }
                o.finish()?;
                ManagedObject::Template(Template { attributes })
            }
            _ => ManagedObject::Other(item.clone()),
        })
    }
}

/// Symmetric Key (KMIP 1.4 section 2.2.2): one Key Block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymmetricKey {
    /// Key Block.
    pub key_block: KeyBlock,
}

/// Template (KMIP 1.4 section 2.2.6): a named set of attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// Attributes, in order.
    pub attributes: Vec<Attribute>,
}

/// Key Block (KMIP 1.4 section 2.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyBlock {
    /// Key Format Type.
    pub key_format_type: KeyFormatType,
    /// Key Compression Type, raw enumeration value.
    pub key_compression_type: Option<u32>,
    /// The Key Material inside the Key Value (or the wrapped Key Value).
    pub key_material: KeyMaterial,
    /// Attributes carried inside the Key Value.
    pub key_value_attributes: Vec<Attribute>,
    /// Cryptographic Algorithm.
    pub cryptographic_algorithm: Option<CryptographicAlgorithm>,
    /// Cryptographic Length in bits.
    pub cryptographic_length: Option<i32>,
    /// Key Wrapping Data, kept as TTLV.
    pub key_wrapping_data: Option<Item>,
}

impl KeyBlock {
    /// An unwrapped Raw symmetric key block (Key Format Type Raw).
    pub fn raw_symmetric(algorithm: CryptographicAlgorithm, key: Zeroizing<Vec<u8>>) -> KeyBlock {
        let bits = i32::try_from(key.len() * 8).unwrap_or(i32::MAX);
        KeyBlock {
            key_format_type: KeyFormatType::RAW,
            key_compression_type: None,
            key_material: KeyMaterial::Raw(key),
            key_value_attributes: Vec::new(),
            cryptographic_algorithm: Some(algorithm),
            cryptographic_length: Some(bits),
            key_wrapping_data: None,
        }
    }

    /// The key bytes, if the key is not wrapped and its material is Raw or Transparent
    /// Symmetric.
    pub fn key_bytes(&self) -> Option<&[u8]> {
        match &self.key_material {
            KeyMaterial::Raw(k) | KeyMaterial::TransparentSymmetric(k) => Some(k),
            KeyMaterial::Wrapped(_) | KeyMaterial::Other(_) => None,
        }
    }

    fn to_ttlv(&self, version: ProtocolVersion) -> Item {
        let mut v = vec![Item::enumeration(
            Tag::KEY_FORMAT_TYPE,
            self.key_format_type.0,
        )];
        if let Some(c) = self.key_compression_type {
            v.push(Item::enumeration(Tag::KEY_COMPRESSION_TYPE, c));
        }
        let material = match &self.key_material {
            KeyMaterial::Raw(k) => Some(Item::bytes(Tag::KEY_MATERIAL, k.to_vec())),
            KeyMaterial::TransparentSymmetric(k) => Some(Item::structure(
                Tag::KEY_MATERIAL,
                vec![Item::bytes(Tag::KEY, k.to_vec())],
            )),
            KeyMaterial::Other(item) => Some(item.clone()),
            KeyMaterial::Wrapped(b) => {
                v.push(Item::bytes(Tag::KEY_VALUE, b.clone()));
                None
            }
        };
        if let Some(material) = material {
            let mut kv = vec![material];
            if !self.key_value_attributes.is_empty() {
                if version.uses_v2_attributes() {
                    kv.push(attributes_to_v2(&self.key_value_attributes));
                } else {
                    kv.extend(self.key_value_attributes.iter().map(Attribute::to_v1));
                }
            }
            v.push(Item::structure(Tag::KEY_VALUE, kv));
        }
        if let Some(a) = self.cryptographic_algorithm {
            v.push(Item::enumeration(Tag::CRYPTOGRAPHIC_ALGORITHM, a.0));
        }
        if let Some(l) = self.cryptographic_length {
            v.push(Item::integer(Tag::CRYPTOGRAPHIC_LENGTH, l));
        }
        if let Some(w) = &self.key_wrapping_data {
            v.push(w.clone());
        }
        Item::structure(Tag::KEY_BLOCK, v)
    }

    fn read(mut r: Reader<'_>) -> Result<Self, MessageError> {
        let key_format_type = KeyFormatType(r.req_enum(Tag::KEY_FORMAT_TYPE)?);
        let key_compression_type = r.opt_enum(Tag::KEY_COMPRESSION_TYPE)?;
        let key_value = r.require(Tag::KEY_VALUE)?;
        let mut key_value_attributes = Vec::new();
        let key_material = match &key_value.value {
            Value::ByteString(b) => KeyMaterial::Wrapped(b.clone()),
            _ => {
                let mut kv = r.open(key_value)?;
                let material = kv.require(Tag::KEY_MATERIAL)?;
                let key_material = match &material.value {
                    Value::ByteString(b) => KeyMaterial::Raw(Zeroizing::new(b.clone())),
                    Value::Structure(_)
                        if key_format_type == KeyFormatType::TRANSPARENT_SYMMETRIC_KEY =>
                    {
                        let mut m = kv.open(material)?;
                        let key = m
                            .opt_secret(Tag::KEY)?
                            .ok_or_else(|| m.error(None, MessageErrorKind::Missing(Tag::KEY)))?;
                        m.finish()?;
                        KeyMaterial::TransparentSymmetric(key)
                    }
                    Value::Structure(_) => KeyMaterial::Other(material.clone()),
                    _ => {
                        return Err(kv.error(
                            Some(Tag::KEY_MATERIAL),
                            MessageErrorKind::InvalidValue {
                                tag: Tag::KEY_MATERIAL,
                                reason: "neither a Byte String nor a Structure".into(),
                            },
                        ));
                    }
                };
                while let Some(a) = kv.next_if(Tag::ATTRIBUTE) {
                    key_value_attributes.push(Attribute::read_v1(kv.path(), a)?);
                }
                if let Some(a) = kv.next_if(Tag::ATTRIBUTES) {
                    key_value_attributes.extend(read_attributes_v2(kv.path(), a)?);
                }
                kv.finish()?;
                key_material
            }
        };
        let cryptographic_algorithm = r
            .opt_enum(Tag::CRYPTOGRAPHIC_ALGORITHM)?
            .map(CryptographicAlgorithm);
        let cryptographic_length = r.opt_int(Tag::CRYPTOGRAPHIC_LENGTH)?;
        let key_wrapping_data = r.opt_raw_struct(Tag::KEY_WRAPPING_DATA)?.cloned();
        r.finish()?;
        Ok(KeyBlock {
            key_format_type,
            key_compression_type,
            key_material,
            key_value_attributes,
            cryptographic_algorithm,
            cryptographic_length,
            key_wrapping_data,
        })
    }
}

/// The key inside a Key Value (KMIP 1.4 section 2.1.4).
#[derive(Clone)]
pub enum KeyMaterial {
    /// Key Material as a Byte String (Key Format Types Raw, Opaque, PKCS#1, ...).
    Raw(Zeroizing<Vec<u8>>),
    /// Transparent Symmetric Key: Key Material structure holding one `Key` (section
    /// 2.1.7.1).
    TransparentSymmetric(Zeroizing<Vec<u8>>),
    /// The whole Key Value is a wrapped Byte String (Key Wrapping Data present).
    Wrapped(Vec<u8>),
    /// Any other Key Material structure (transparent asymmetric keys), as TTLV.
    Other(Item),
}

impl PartialEq for KeyMaterial {
    /// Constant-time for the key bytes.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (KeyMaterial::Raw(a), KeyMaterial::Raw(b))
            | (KeyMaterial::TransparentSymmetric(a), KeyMaterial::TransparentSymmetric(b)) => {
                ct_eq(a, b)
            }
            (KeyMaterial::Wrapped(a), KeyMaterial::Wrapped(b)) => ct_eq(a, b),
            (KeyMaterial::Other(a), KeyMaterial::Other(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for KeyMaterial {}

/// Compares two byte strings in time independent of where they differ (lengths are
/// not secret). Hand-written: `ring` deprecated its helper and this crate does not
/// otherwise need `subtle`.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyMaterial::Raw(k) => write!(f, "Raw(<{} bytes redacted>)", k.len()),
            KeyMaterial::TransparentSymmetric(k) => {
                write!(f, "TransparentSymmetric(<{} bytes redacted>)", k.len())
            }
            KeyMaterial::Wrapped(k) => write!(f, "Wrapped(<{} bytes>)", k.len()),
            KeyMaterial::Other(item) => write!(f, "Other({:?})", item.tag),
        }
    }
}
