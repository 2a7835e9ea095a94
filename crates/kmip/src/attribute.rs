//! Managed-object attributes (KMIP 1.4 section 3, KMIP 2.0 section 4), typed where
//! Headlock uses them and kept as raw TTLV otherwise.
//!
//! KMIP has two encodings and this module speaks both:
//!
//! * KMIP 1.x wraps every attribute in an `Attribute` structure holding its name as
//!   text, an optional index and an `Attribute Value` (1.4 section 2.1.1):
//!   `Attribute { AttributeName "State", AttributeValue Enumeration 1 }`.
//! * KMIP 2.0 puts the attributes themselves, each under its own tag, inside one
//!   `Attributes` structure (2.0 section 2.1.1): `Attributes { State Enumeration 1 }`.
//!
//! [`Attribute::Other`] keeps any attribute this module does not type, so it survives a
//! decode and re-encode in the same version. The Attribute Index of 1.x is accepted and
//! dropped (Headlock never sets several instances of one attribute by index).

use crate::message::reader::{Reader, date_of, enum_of, error_at, int_of, text_of};
use crate::message::{MessageError, MessageErrorKind};
use crate::tag::Tag;
use crate::ttlv::Item;
use crate::types::{
    CryptographicAlgorithm, CryptographicUsageMask, LinkType, NameType, ObjectType,
    RevocationReasonCode, State,
};

/// One attribute of a managed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attribute {
    /// Unique Identifier (1.4 section 3.1).
    UniqueIdentifier(String),
    /// Name (1.4 section 3.2).
    Name {
        /// Name Value.
        value: String,
        /// Name Type.
        name_type: NameType,
    },
    /// Object Type (1.4 section 3.3).
    ObjectType(ObjectType),
    /// Cryptographic Algorithm (1.4 section 3.4).
    CryptographicAlgorithm(CryptographicAlgorithm),
    /// Cryptographic Length in bits (1.4 section 3.5).
    CryptographicLength(i32),
    /// Cryptographic Usage Mask (1.4 section 3.19).
    CryptographicUsageMask(CryptographicUsageMask),
    /// State (1.4 section 3.22).
    State(State),
    /// Initial Date, POSIX seconds (1.4 section 3.23).
    InitialDate(i64),
    /// Activation Date (1.4 section 3.24).
    ActivationDate(i64),
    /// Deactivation Date (1.4 section 3.27).
    DeactivationDate(i64),
    /// Destroy Date (1.4 section 3.28).
    DestroyDate(i64),
    /// Compromise Occurrence Date (1.4 section 3.29).
    CompromiseOccurrenceDate(i64),
    /// Compromise Date (1.4 section 3.30).
    CompromiseDate(i64),
    /// Revocation Reason (1.4 section 3.31).
    RevocationReason(RevocationReason),
    /// Object Group (1.4 section 3.33).
    ObjectGroup(String),
    /// Link (1.4 section 3.35).
    Link {
        /// Link Type.
        link_type: LinkType,
        /// Linked Object Identifier.
        linked_object_id: String,
    },
    /// Last Change Date (1.4 section 3.38).
    LastChangeDate(i64),
    /// Original Creation Date (1.4 section 3.43).
    OriginalCreationDate(i64),
    /// Any other attribute: `name` is the 1.x Attribute Name (for a 2.0 attribute
    /// without one, its tag in hex, `"0x540010"`; for a 2.x vendor attribute,
    /// `"<Vendor Identification>:<Attribute Name>"`); `value` is the value item, always
    /// tagged `AttributeValue` (the encoders supply the 2.0 tag from the name, so one
    /// attribute has one representation whichever version it arrived in).
    Other {
        /// Attribute Name.
        name: String,
        /// The value item.
        value: Item,
    },
}

/// Revocation Reason (1.4 section 2.1.9): a code and an optional message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationReason {
    /// Revocation Reason Code.
    pub code: RevocationReasonCode,
    /// Revocation Message.
    pub message: Option<String>,
}

impl RevocationReason {
    /// Encodes under `tag` (`RevocationReason`, or `AttributeValue` inside a 1.x
    /// attribute).
    pub(crate) fn to_item(&self, tag: Tag) -> Item {
        let mut items = vec![Item::enumeration(Tag::REVOCATION_REASON_CODE, self.code.0)];
        if let Some(m) = &self.message {
            items.push(Item::text(Tag::REVOCATION_MESSAGE, m.clone()));
        }
        Item::structure(tag, items)
    }

    pub(crate) fn read(mut r: Reader<'_>) -> Result<Self, MessageError> {
        let code = RevocationReasonCode(r.req_enum(Tag::REVOCATION_REASON_CODE)?);
        let message = r.opt_text(Tag::REVOCATION_MESSAGE)?;
        r.finish()?;
        Ok(RevocationReason { code, message })
    }
}

/// The KMIP 1.x attribute names and the KMIP 2.0 tags of the same attributes
/// (1.4 section 3, 2.0 section 4).
const ATTRIBUTE_TAGS: &[(&str, Tag)] = &[
    ("Unique Identifier", Tag::UNIQUE_IDENTIFIER),
    ("Name", Tag::NAME),
    ("Object Type", Tag::OBJECT_TYPE),
    ("Cryptographic Algorithm", Tag::CRYPTOGRAPHIC_ALGORITHM),
    ("Cryptographic Length", Tag::CRYPTOGRAPHIC_LENGTH),
    ("Cryptographic Parameters", Tag::CRYPTOGRAPHIC_PARAMETERS),
    (
        "Cryptographic Domain Parameters",
        Tag::CRYPTOGRAPHIC_DOMAIN_PARAMETERS,
    ),
    ("Certificate Type", Tag::CERTIFICATE_TYPE),
    ("Certificate Length", Tag::CERTIFICATE_LENGTH),
    (
        "X.509 Certificate Identifier",
        Tag::X_509_CERTIFICATE_IDENTIFIER,
    ),
    ("X.509 Certificate Subject", Tag::X_509_CERTIFICATE_SUBJECT),
    ("X.509 Certificate Issuer", Tag::X_509_CERTIFICATE_ISSUER),
    ("Certificate Identifier", Tag::CERTIFICATE_IDENTIFIER),
    ("Certificate Subject", Tag::CERTIFICATE_SUBJECT),
    ("Certificate Issuer", Tag::CERTIFICATE_ISSUER),
    (
        "Digital Signature Algorithm",
        Tag::DIGITAL_SIGNATURE_ALGORITHM,
    ),
    ("Digest", Tag::DIGEST),
    ("Operation Policy Name", Tag::OPERATION_POLICY_NAME),
    ("Cryptographic Usage Mask", Tag::CRYPTOGRAPHIC_USAGE_MASK),
    ("Lease Time", Tag::LEASE_TIME),
    ("Usage Limits", Tag::USAGE_LIMITS),
    ("State", Tag::STATE),
    ("Initial Date", Tag::INITIAL_DATE),
    ("Activation Date", Tag::ACTIVATION_DATE),
    ("Process Start Date", Tag::PROCESS_START_DATE),
    ("Protect Stop Date", Tag::PROTECT_STOP_DATE),
    ("Deactivation Date", Tag::DEACTIVATION_DATE),
    ("Destroy Date", Tag::DESTROY_DATE),
    (
        "Compromise Occurrence Date",
        Tag::COMPROMISE_OCCURRENCE_DATE,
    ),
    ("Compromise Date", Tag::COMPROMISE_DATE),
    ("Revocation Reason", Tag::REVOCATION_REASON),
    ("Archive Date", Tag::ARCHIVE_DATE),
    ("Object Group", Tag::OBJECT_GROUP),
    ("Fresh", Tag::FRESH),
    ("Link", Tag::LINK),
    (
        "Application Specific Information",
        Tag::APPLICATION_SPECIFIC_INFORMATION,
    ),
    ("Contact Information", Tag::CONTACT_INFORMATION),
    ("Last Change Date", Tag::LAST_CHANGE_DATE),
    ("Alternative Name", Tag::ALTERNATIVE_NAME),
    ("Key Value Present", Tag::KEY_VALUE_PRESENT),
    ("Key Value Location", Tag::KEY_VALUE_LOCATION),
    ("Original Creation Date", Tag::ORIGINAL_CREATION_DATE),
    ("Random Number Generator", Tag::RANDOM_NUMBER_GENERATOR),
    ("PKCS#12 Friendly Name", Tag::PKCS12_FRIENDLY_NAME),
    ("Description", Tag::DESCRIPTION),
    ("Comment", Tag::COMMENT),
    ("Sensitive", Tag::SENSITIVE),
    ("Always Sensitive", Tag::ALWAYS_SENSITIVE),
    ("Extractable", Tag::EXTRACTABLE),
    ("Never Extractable", Tag::NEVER_EXTRACTABLE),
    // KMIP 2.0 attributes without a 1.x name: named as the 2.0 specification titles them.
    ("Short Unique Identifier", Tag::SHORT_UNIQUE_IDENTIFIER),
    ("Key Format Type", Tag::KEY_FORMAT_TYPE),
    ("Protection Storage Mask", Tag::PROTECTION_STORAGE_MASK),
];

/// The KMIP 2.0 tag of the attribute called `name` in KMIP 1.x.
pub fn attribute_tag(name: &str) -> Option<Tag> {
    ATTRIBUTE_TAGS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// The KMIP 1.x name of the attribute tagged `tag` in KMIP 2.0.
pub fn attribute_name(tag: Tag) -> Option<&'static str> {
    ATTRIBUTE_TAGS
        .iter()
        .find(|(_, t)| *t == tag)
        .map(|(n, _)| *n)
}

/// The 1.x name for a 2.0 attribute tag, or the tag in hex for an unknown one.
fn name_for_tag(tag: Tag) -> String {
    attribute_name(tag).map_or_else(|| format!("0x{:06X}", tag.0), str::to_owned)
}

/// The 2.0 tag for a 1.x attribute name, also reading back [`name_for_tag`]'s hex
/// (exactly as it writes it, and only for tags without a 1.x name, so that the
/// mapping is one-to-one both ways).
fn tag_for_name(name: &str) -> Option<Tag> {
    attribute_tag(name).or_else(|| {
        let hex = name.strip_prefix("0x")?;
        let tag = Tag(u32::from_str_radix(hex, 16).ok()?);
        (tag.0 <= 0xFF_FFFF && name_for_tag(tag) == name).then_some(tag)
    })
}

impl Attribute {
    /// The attribute's KMIP 1.x name (`"Cryptographic Algorithm"`).
    pub fn name(&self) -> &str {
        match self {
            Attribute::UniqueIdentifier(_) => "Unique Identifier",
            Attribute::Name { .. } => "Name",
            Attribute::ObjectType(_) => "Object Type",
            Attribute::CryptographicAlgorithm(_) => "Cryptographic Algorithm",
            Attribute::CryptographicLength(_) => "Cryptographic Length",
            Attribute::CryptographicUsageMask(_) => "Cryptographic Usage Mask",
            Attribute::State(_) => "State",
            Attribute::InitialDate(_) => "Initial Date",
            Attribute::ActivationDate(_) => "Activation Date",
            Attribute::DeactivationDate(_) => "Deactivation Date",
            Attribute::DestroyDate(_) => "Destroy Date",
            Attribute::CompromiseOccurrenceDate(_) => "Compromise Occurrence Date",
            Attribute::CompromiseDate(_) => "Compromise Date",
            Attribute::RevocationReason(_) => "Revocation Reason",
            Attribute::ObjectGroup(_) => "Object Group",
            Attribute::Link { .. } => "Link",
            Attribute::LastChangeDate(_) => "Last Change Date",
            Attribute::OriginalCreationDate(_) => "Original Creation Date",
            Attribute::Other { name, .. } => name,
        }
    }

    /// The attribute's KMIP 2.0 tag, if it has one.
    pub fn tag(&self) -> Option<Tag> {
        tag_for_name(self.name())
    }

    /// The value alone, under `tag`.
    fn value_item(&self, tag: Tag) -> Item {
        match self {
            Attribute::UniqueIdentifier(v) | Attribute::ObjectGroup(v) => {
                Item::text(tag, v.clone())
            }
            Attribute::Name { value, name_type } => Item::structure(
                tag,
                vec![
                    Item::text(Tag::NAME_VALUE, value.clone()),
                    Item::enumeration(Tag::NAME_TYPE, name_type.0),
                ],
            ),
            Attribute::ObjectType(v) => Item::enumeration(tag, v.0),
            Attribute::CryptographicAlgorithm(v) => Item::enumeration(tag, v.0),
            Attribute::CryptographicLength(v) => Item::integer(tag, *v),
            Attribute::CryptographicUsageMask(v) => Item::integer(tag, v.to_wire()),
            Attribute::State(v) => Item::enumeration(tag, v.0),
            Attribute::InitialDate(v)
            | Attribute::ActivationDate(v)
            | Attribute::DeactivationDate(v)
            | Attribute::DestroyDate(v)
            | Attribute::CompromiseOccurrenceDate(v)
            | Attribute::CompromiseDate(v)
            | Attribute::LastChangeDate(v)
            | Attribute::OriginalCreationDate(v) => Item::date_time(tag, *v),
            Attribute::RevocationReason(r) => r.to_item(tag),
            Attribute::Link {
                link_type,
                linked_object_id,
            } => Item::structure(
                tag,
                vec![
                    Item::enumeration(Tag::LINK_TYPE, link_type.0),
                    Item::text(Tag::LINKED_OBJECT_IDENTIFIER, linked_object_id.clone()),
                ],
            ),
            Attribute::Other { value, .. } => Item::new(tag, value.value.clone()),
        }
    }

    /// The KMIP 1.x encoding: an `Attribute` structure with Attribute Name and
    /// Attribute Value.
    pub fn to_v1(&self) -> Item {
        Item::structure(
            Tag::ATTRIBUTE,
            vec![
                Item::text(Tag::ATTRIBUTE_NAME, self.name()),
                self.value_item(Tag::ATTRIBUTE_VALUE),
            ],
        )
    }

    /// The KMIP 2.0 encoding: the attribute under its own tag. An [`Attribute::Other`]
    /// whose name has no 2.0 tag is emitted as the `Attribute` structure it was read
    /// from: a vendor attribute (`"<vendor>:<name>"`) with its Vendor Identification,
    /// any other in its 1.x form.
    pub fn to_v2(&self) -> Item {
        match (self.tag(), self) {
            (Some(tag), _) => self.value_item(tag),
            (None, Attribute::Other { name, .. }) if name.contains(':') => {
                let (vendor, name) = name.split_once(':').unwrap_or_default();
                Item::structure(
                    Tag::ATTRIBUTE,
                    vec![
                        Item::text(Tag::VENDOR_IDENTIFICATION, vendor),
                        Item::text(Tag::ATTRIBUTE_NAME, name),
                        self.value_item(Tag::ATTRIBUTE_VALUE),
                    ],
                )
            }
            (None, _) => self.to_v1(),
        }
    }

    /// Decodes the KMIP 1.x `Attribute` structure.
    pub fn from_v1(item: &Item) -> Result<Attribute, MessageError> {
        Attribute::read_v1(&[], item)
    }

    /// Decodes one KMIP 2.0 attribute (a child of `Attributes`).
    pub fn from_v2(item: &Item) -> Result<Attribute, MessageError> {
        Attribute::read_v2(&[], item)
    }

    pub(crate) fn read_v1(path: &[Tag], item: &Item) -> Result<Attribute, MessageError> {
        if item.tag != Tag::ATTRIBUTE {
            return Err(error_at(
                path,
                Some(item.tag),
                MessageErrorKind::WrongTag {
                    expected: Tag::ATTRIBUTE,
                    found: item.tag,
                },
            ));
        }
        let mut r = Reader::open_at(path, item)?;
        // KMIP 2.x's `Attribute` (a vendor attribute inside `Attributes`, 2.0 section
        // 2.1.1) starts with the vendor's identification; 1.x's has none.
        let vendor = r.opt_text(Tag::VENDOR_IDENTIFICATION)?;
        let name = r.req_text(Tag::ATTRIBUTE_NAME)?;
        let _index = r.opt_int(Tag::ATTRIBUTE_INDEX)?;
        let value = r.require(Tag::ATTRIBUTE_VALUE)?;
        let attr = match (vendor, attribute_tag(&name)) {
            (None, Some(tag)) => Attribute::typed(r.path(), tag, value, &name)?,
            (None, None) => Attribute::Other {
                name,
                value: value.clone(),
            },
            (Some(vendor), _) => Attribute::Other {
                name: format!("{vendor}:{name}"),
                value: value.clone(),
            },
        };
        r.finish()?;
        Ok(attr)
    }

    pub(crate) fn read_v2(path: &[Tag], item: &Item) -> Result<Attribute, MessageError> {
        if item.tag == Tag::ATTRIBUTE {
            return Attribute::read_v1(path, item);
        }
        Attribute::typed(path, item.tag, item, &name_for_tag(item.tag))
    }

    /// Interprets `value` as the attribute whose 2.0 tag is `tag`.
    fn typed(path: &[Tag], tag: Tag, value: &Item, name: &str) -> Result<Attribute, MessageError> {
        Ok(match tag {
            Tag::UNIQUE_IDENTIFIER => Attribute::UniqueIdentifier(text_of(path, value)?),
            Tag::NAME => {
                let mut r = Reader::open_at(path, value)?;
                let v = r.req_text(Tag::NAME_VALUE)?;
                let t = NameType(r.req_enum(Tag::NAME_TYPE)?);
                r.finish()?;
                Attribute::Name {
                    value: v,
                    name_type: t,
                }
            }
            Tag::OBJECT_TYPE => Attribute::ObjectType(ObjectType(enum_of(path, value)?)),
            Tag::CRYPTOGRAPHIC_ALGORITHM => {
                Attribute::CryptographicAlgorithm(CryptographicAlgorithm(enum_of(path, value)?))
            }
            Tag::CRYPTOGRAPHIC_LENGTH => Attribute::CryptographicLength(int_of(path, value)?),
            Tag::CRYPTOGRAPHIC_USAGE_MASK => Attribute::CryptographicUsageMask(
                CryptographicUsageMask::from_wire(int_of(path, value)?),
            ),
            Tag::STATE => Attribute::State(State(enum_of(path, value)?)),
            Tag::INITIAL_DATE => Attribute::InitialDate(date_of(path, value)?),
            Tag::ACTIVATION_DATE => Attribute::ActivationDate(date_of(path, value)?),
            Tag::DEACTIVATION_DATE => Attribute::DeactivationDate(date_of(path, value)?),
            Tag::DESTROY_DATE => Attribute::DestroyDate(date_of(path, value)?),
            Tag::COMPROMISE_OCCURRENCE_DATE => {
                Attribute::CompromiseOccurrenceDate(date_of(path, value)?)
            }
            Tag::COMPROMISE_DATE => Attribute::CompromiseDate(date_of(path, value)?),
            Tag::LAST_CHANGE_DATE => Attribute::LastChangeDate(date_of(path, value)?),
            Tag::ORIGINAL_CREATION_DATE => Attribute::OriginalCreationDate(date_of(path, value)?),
            Tag::REVOCATION_REASON => {
                Attribute::RevocationReason(RevocationReason::read(Reader::open_at(path, value)?)?)
            }
            Tag::OBJECT_GROUP => Attribute::ObjectGroup(text_of(path, value)?),
            Tag::LINK => {
                let mut r = Reader::open_at(path, value)?;
                let link_type = LinkType(r.req_enum(Tag::LINK_TYPE)?);
                let linked_object_id = r.req_text(Tag::LINKED_OBJECT_IDENTIFIER)?;
                r.finish()?;
                Attribute::Link {
                    link_type,
                    linked_object_id,
                }
            }
            _ => Attribute::Other {
                name: name.to_owned(),
                value: Item::new(Tag::ATTRIBUTE_VALUE, value.value.clone()),
            },
        })
    }
}

/// Encodes `attributes` as the KMIP 2.0 `Attributes` structure.
pub fn attributes_to_v2(attributes: &[Attribute]) -> Item {
    attributes_to_v2_tagged(Tag::ATTRIBUTES, attributes)
}

/// Encodes `attributes` as a KMIP 2.0 attribute list under `tag` (`Attributes`,
/// `CommonAttributes`, ...).
pub fn attributes_to_v2_tagged(tag: Tag, attributes: &[Attribute]) -> Item {
    Item::structure(tag, attributes.iter().map(Attribute::to_v2).collect())
}

/// Decodes a KMIP 2.0 `Attributes` structure (any tag).
pub fn attributes_from_v2(item: &Item) -> Result<Vec<Attribute>, MessageError> {
    read_attributes_v2(&[], item)
}

pub(crate) fn read_attributes_v2(
    path: &[Tag],
    item: &Item,
) -> Result<Vec<Attribute>, MessageError> {
    let r = Reader::open_at(path, item)?;
    item.children()
        .iter()
        .map(|c| Attribute::read_v2(r.path(), c))
        .collect()
}
