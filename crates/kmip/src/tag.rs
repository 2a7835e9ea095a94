//! KMIP tags: the 3-byte field identifiers of TTLV (KMIP 1.0-1.4 section 9.1.3.1,
//! KMIP 2.0 section 9.1.3.1).
//!
//! [`Tag`] is a newtype over the numeric value so that vendor and future tags (the
//! `0x54xxxx` extension range, or anything a newer server sends) survive a decode and
//! re-encode unchanged; the named constants cover every tag defined by KMIP 1.0 to 2.0.
//! `Debug` and `Display` print the tag's name in CamelCase (`ResponsePayload`) or, for
//! a tag without a name, its value in hex (`0x540001`).
//!
//! The table was transcribed from the specifications' tag tables (the same values as
//! PyKMIP's `kmip.core.enums.Tags`).

use std::fmt;

/// A KMIP tag (the first three bytes of a TTLV item), stored in the low 24 bits.
///
/// KMIP 1.0 section 9.1.1.1. Any value survives encode/decode; only the low 24 bits
/// are written on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u32);

macro_rules! tags {
    ($( $name:ident = $value:literal, $text:literal, $since:literal; )*) => {
        impl Tag {
            $(
                #[doc = concat!("`", $text, "` (KMIP ", $since, ").")]
                pub const $name: Tag = Tag($value);
            )*

            /// The tag's name in CamelCase as used in KMIP's XML and JSON profiles
            /// (`UniqueIdentifier`), or `None` for a tag KMIP 1.0-2.0 does not define.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some($text), )*
                    _ => None,
                }
            }

            /// The tag named `name` in KMIP's XML and JSON encodings, or `None`. ASCII
            /// case and `_` are ignored, so the profiles' spelling (`UniqueBatchItemID`,
            /// `RNGAlgorithm`) finds the constant spelled `UniqueBatchItemId`.
            pub fn from_name(name: &str) -> Option<Tag> {
                [$( ($value, $text), )*]
                    .into_iter()
                    .find(|(_, text)| crate::types::same_name(text, name))
                    .map(|(value, _)| Tag(value))
            }
        }
    };
}

impl Tag {
    /// True for tags in the vendor extension range `0x540000..=0x54FFFF`
    /// (KMIP 1.0 section 9.1.3.1).
    pub fn is_extension(self) -> bool {
        (0x54_0000..=0x54_FFFF).contains(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "0x{:06X}", self.0),
        }
    }
}

tags! {
    ACTIVATION_DATE = 0x420001, "ActivationDate", "1.0";
    APPLICATION_DATA = 0x420002, "ApplicationData", "1.0";
    APPLICATION_NAMESPACE = 0x420003, "ApplicationNamespace", "1.0";
    APPLICATION_SPECIFIC_INFORMATION = 0x420004, "ApplicationSpecificInformation", "1.0";
    ARCHIVE_DATE = 0x420005, "ArchiveDate", "1.0";
    ASYNCHRONOUS_CORRELATION_VALUE = 0x420006, "AsynchronousCorrelationValue", "1.0";
    ASYNCHRONOUS_INDICATOR = 0x420007, "AsynchronousIndicator", "1.0";
    ATTRIBUTE = 0x420008, "Attribute", "1.0";
    ATTRIBUTE_INDEX = 0x420009, "AttributeIndex", "1.0";
    ATTRIBUTE_NAME = 0x42000A, "AttributeName", "1.0";
    ATTRIBUTE_VALUE = 0x42000B, "AttributeValue", "1.0";
    AUTHENTICATION = 0x42000C, "Authentication", "1.0";
    BATCH_COUNT = 0x42000D, "BatchCount", "1.0";
    BATCH_ERROR_CONTINUATION_OPTION = 0x42000E, "BatchErrorContinuationOption", "1.0";
    BATCH_ITEM = 0x42000F, "BatchItem", "1.0";
    BATCH_ORDER_OPTION = 0x420010, "BatchOrderOption", "1.0";
    BLOCK_CIPHER_MODE = 0x420011, "BlockCipherMode", "1.0";
    CANCELLATION_RESULT = 0x420012, "CancellationResult", "1.0";
    CERTIFICATE = 0x420013, "Certificate", "1.0";
    CERTIFICATE_IDENTIFIER = 0x420014, "CertificateIdentifier", "1.0";
    CERTIFICATE_ISSUER = 0x420015, "CertificateIssuer", "1.0";
    CERTIFICATE_ISSUER_ALTERNATIVE_NAME = 0x420016, "CertificateIssuerAlternativeName", "1.0";
    CERTIFICATE_ISSUER_DISTINGUISHED_NAME = 0x420017, "CertificateIssuerDistinguishedName", "1.0";
    CERTIFICATE_REQUEST = 0x420018, "CertificateRequest", "1.0";
    CERTIFICATE_REQUEST_TYPE = 0x420019, "CertificateRequestType", "1.0";
    CERTIFICATE_SUBJECT = 0x42001A, "CertificateSubject", "1.0";
    CERTIFICATE_SUBJECT_ALTERNATIVE_NAME = 0x42001B, "CertificateSubjectAlternativeName", "1.0";
    CERTIFICATE_SUBJECT_DISTINGUISHED_NAME = 0x42001C, "CertificateSubjectDistinguishedName", "1.0";
    CERTIFICATE_TYPE = 0x42001D, "CertificateType", "1.0";
    CERTIFICATE_VALUE = 0x42001E, "CertificateValue", "1.0";
    COMMON_TEMPLATE_ATTRIBUTE = 0x42001F, "CommonTemplateAttribute", "1.0";
    COMPROMISE_DATE = 0x420020, "CompromiseDate", "1.0";
    COMPROMISE_OCCURRENCE_DATE = 0x420021, "CompromiseOccurrenceDate", "1.0";
    CONTACT_INFORMATION = 0x420022, "ContactInformation", "1.0";
    CREDENTIAL = 0x420023, "Credential", "1.0";
    CREDENTIAL_TYPE = 0x420024, "CredentialType", "1.0";
    CREDENTIAL_VALUE = 0x420025, "CredentialValue", "1.0";
    CRITICALITY_INDICATOR = 0x420026, "CriticalityIndicator", "1.0";
    CRT_COEFFICIENT = 0x420027, "CrtCoefficient", "1.0";
    CRYPTOGRAPHIC_ALGORITHM = 0x420028, "CryptographicAlgorithm", "1.0";
    CRYPTOGRAPHIC_DOMAIN_PARAMETERS = 0x420029, "CryptographicDomainParameters", "1.0";
    CRYPTOGRAPHIC_LENGTH = 0x42002A, "CryptographicLength", "1.0";
    CRYPTOGRAPHIC_PARAMETERS = 0x42002B, "CryptographicParameters", "1.0";
    CRYPTOGRAPHIC_USAGE_MASK = 0x42002C, "CryptographicUsageMask", "1.0";
    CUSTOM_ATTRIBUTE = 0x42002D, "CustomAttribute", "1.0";
    D = 0x42002E, "D", "1.0";
    DEACTIVATION_DATE = 0x42002F, "DeactivationDate", "1.0";
    DERIVATION_DATA = 0x420030, "DerivationData", "1.0";
    DERIVATION_METHOD = 0x420031, "DerivationMethod", "1.0";
    DERIVATION_PARAMETERS = 0x420032, "DerivationParameters", "1.0";
    DESTROY_DATE = 0x420033, "DestroyDate", "1.0";
    DIGEST = 0x420034, "Digest", "1.0";
    DIGEST_VALUE = 0x420035, "DigestValue", "1.0";
    ENCRYPTION_KEY_INFORMATION = 0x420036, "EncryptionKeyInformation", "1.0";
    G = 0x420037, "G", "1.0";
    HASHING_ALGORITHM = 0x420038, "HashingAlgorithm", "1.0";
    INITIAL_DATE = 0x420039, "InitialDate", "1.0";
    INITIALIZATION_VECTOR = 0x42003A, "InitializationVector", "1.0";
    ISSUER = 0x42003B, "Issuer", "1.0";
    ITERATION_COUNT = 0x42003C, "IterationCount", "1.0";
    IV_COUNTER_NONCE = 0x42003D, "IvCounterNonce", "1.0";
    J = 0x42003E, "J", "1.0";
    KEY = 0x42003F, "Key", "1.0";
    KEY_BLOCK = 0x420040, "KeyBlock", "1.0";
    KEY_COMPRESSION_TYPE = 0x420041, "KeyCompressionType", "1.0";
    KEY_FORMAT_TYPE = 0x420042, "KeyFormatType", "1.0";
    KEY_MATERIAL = 0x420043, "KeyMaterial", "1.0";
    KEY_PART_IDENTIFIER = 0x420044, "KeyPartIdentifier", "1.0";
    KEY_VALUE = 0x420045, "KeyValue", "1.0";
    KEY_WRAPPING_DATA = 0x420046, "KeyWrappingData", "1.0";
    KEY_WRAPPING_SPECIFICATION = 0x420047, "KeyWrappingSpecification", "1.0";
    LAST_CHANGE_DATE = 0x420048, "LastChangeDate", "1.0";
    LEASE_TIME = 0x420049, "LeaseTime", "1.0";
    LINK = 0x42004A, "Link", "1.0";
    LINK_TYPE = 0x42004B, "LinkType", "1.0";
    LINKED_OBJECT_IDENTIFIER = 0x42004C, "LinkedObjectIdentifier", "1.0";
    MAC_SIGNATURE = 0x42004D, "MacSignature", "1.0";
    MAC_SIGNATURE_KEY_INFORMATION = 0x42004E, "MacSignatureKeyInformation", "1.0";
    MAXIMUM_ITEMS = 0x42004F, "MaximumItems", "1.0";
    MAXIMUM_RESPONSE_SIZE = 0x420050, "MaximumResponseSize", "1.0";
    MESSAGE_EXTENSION = 0x420051, "MessageExtension", "1.0";
    MODULUS = 0x420052, "Modulus", "1.0";
    NAME = 0x420053, "Name", "1.0";
    NAME_TYPE = 0x420054, "NameType", "1.0";
    NAME_VALUE = 0x420055, "NameValue", "1.0";
    OBJECT_GROUP = 0x420056, "ObjectGroup", "1.0";
    OBJECT_TYPE = 0x420057, "ObjectType", "1.0";
    OFFSET = 0x420058, "Offset", "1.0";
    OPAQUE_DATA_TYPE = 0x420059, "OpaqueDataType", "1.0";
    OPAQUE_DATA_VALUE = 0x42005A, "OpaqueDataValue", "1.0";
    OPAQUE_OBJECT = 0x42005B, "OpaqueObject", "1.0";
    OPERATION = 0x42005C, "Operation", "1.0";
    OPERATION_POLICY_NAME = 0x42005D, "OperationPolicyName", "1.0";
    P = 0x42005E, "P", "1.0";
    PADDING_METHOD = 0x42005F, "PaddingMethod", "1.0";
    PRIME_EXPONENT_P = 0x420060, "PrimeExponentP", "1.0";
    PRIME_EXPONENT_Q = 0x420061, "PrimeExponentQ", "1.0";
    PRIME_FIELD_SIZE = 0x420062, "PrimeFieldSize", "1.0";
    PRIVATE_EXPONENT = 0x420063, "PrivateExponent", "1.0";
    PRIVATE_KEY = 0x420064, "PrivateKey", "1.0";
    PRIVATE_KEY_TEMPLATE_ATTRIBUTE = 0x420065, "PrivateKeyTemplateAttribute", "1.0";
    PRIVATE_KEY_UNIQUE_IDENTIFIER = 0x420066, "PrivateKeyUniqueIdentifier", "1.0";
    PROCESS_START_DATE = 0x420067, "ProcessStartDate", "1.0";
    PROTECT_STOP_DATE = 0x420068, "ProtectStopDate", "1.0";
    PROTOCOL_VERSION = 0x420069, "ProtocolVersion", "1.0";
    PROTOCOL_VERSION_MAJOR = 0x42006A, "ProtocolVersionMajor", "1.0";
    PROTOCOL_VERSION_MINOR = 0x42006B, "ProtocolVersionMinor", "1.0";
    PUBLIC_EXPONENT = 0x42006C, "PublicExponent", "1.0";
    PUBLIC_KEY = 0x42006D, "PublicKey", "1.0";
    PUBLIC_KEY_TEMPLATE_ATTRIBUTE = 0x42006E, "PublicKeyTemplateAttribute", "1.0";
    PUBLIC_KEY_UNIQUE_IDENTIFIER = 0x42006F, "PublicKeyUniqueIdentifier", "1.0";
    PUT_FUNCTION = 0x420070, "PutFunction", "1.0";
    Q = 0x420071, "Q", "1.0";
    Q_STRING = 0x420072, "QString", "1.0";
    QLENGTH = 0x420073, "Qlength", "1.0";
    QUERY_FUNCTION = 0x420074, "QueryFunction", "1.0";
    RECOMMENDED_CURVE = 0x420075, "RecommendedCurve", "1.0";
    REPLACED_UNIQUE_IDENTIFIER = 0x420076, "ReplacedUniqueIdentifier", "1.0";
    REQUEST_HEADER = 0x420077, "RequestHeader", "1.0";
    REQUEST_MESSAGE = 0x420078, "RequestMessage", "1.0";
    REQUEST_PAYLOAD = 0x420079, "RequestPayload", "1.0";
    RESPONSE_HEADER = 0x42007A, "ResponseHeader", "1.0";
    RESPONSE_MESSAGE = 0x42007B, "ResponseMessage", "1.0";
    RESPONSE_PAYLOAD = 0x42007C, "ResponsePayload", "1.0";
    RESULT_MESSAGE = 0x42007D, "ResultMessage", "1.0";
    RESULT_REASON = 0x42007E, "ResultReason", "1.0";
    RESULT_STATUS = 0x42007F, "ResultStatus", "1.0";
    REVOCATION_MESSAGE = 0x420080, "RevocationMessage", "1.0";
    REVOCATION_REASON = 0x420081, "RevocationReason", "1.0";
    REVOCATION_REASON_CODE = 0x420082, "RevocationReasonCode", "1.0";
    KEY_ROLE_TYPE = 0x420083, "KeyRoleType", "1.0";
    SALT = 0x420084, "Salt", "1.0";
    SECRET_DATA = 0x420085, "SecretData", "1.0";
    SECRET_DATA_TYPE = 0x420086, "SecretDataType", "1.0";
    SERIAL_NUMBER = 0x420087, "SerialNumber", "1.0";
    SERVER_INFORMATION = 0x420088, "ServerInformation", "1.0";
    SPLIT_KEY = 0x420089, "SplitKey", "1.0";
    SPLIT_KEY_METHOD = 0x42008A, "SplitKeyMethod", "1.0";
    SPLIT_KEY_PARTS = 0x42008B, "SplitKeyParts", "1.0";
    SPLIT_KEY_THRESHOLD = 0x42008C, "SplitKeyThreshold", "1.0";
    STATE = 0x42008D, "State", "1.0";
    STORAGE_STATUS_MASK = 0x42008E, "StorageStatusMask", "1.0";
    SYMMETRIC_KEY = 0x42008F, "SymmetricKey", "1.0";
    TEMPLATE = 0x420090, "Template", "1.0";
    TEMPLATE_ATTRIBUTE = 0x420091, "TemplateAttribute", "1.0";
    TIME_STAMP = 0x420092, "TimeStamp", "1.0";
    UNIQUE_BATCH_ITEM_ID = 0x420093, "UniqueBatchItemId", "1.0";
    UNIQUE_IDENTIFIER = 0x420094, "UniqueIdentifier", "1.0";
    USAGE_LIMITS = 0x420095, "UsageLimits", "1.0";
    USAGE_LIMITS_COUNT = 0x420096, "UsageLimitsCount", "1.0";
    USAGE_LIMITS_TOTAL = 0x420097, "UsageLimitsTotal", "1.0";
    USAGE_LIMITS_UNIT = 0x420098, "UsageLimitsUnit", "1.0";
    USERNAME = 0x420099, "Username", "1.0";
    VALIDITY_DATE = 0x42009A, "ValidityDate", "1.0";
    VALIDITY_INDICATOR = 0x42009B, "ValidityIndicator", "1.0";
    VENDOR_EXTENSION = 0x42009C, "VendorExtension", "1.0";
    VENDOR_IDENTIFICATION = 0x42009D, "VendorIdentification", "1.0";
    WRAPPING_METHOD = 0x42009E, "WrappingMethod", "1.0";
    X = 0x42009F, "X", "1.0";
    Y = 0x4200A0, "Y", "1.0";
    PASSWORD = 0x4200A1, "Password", "1.0";
    DEVICE_IDENTIFIER = 0x4200A2, "DeviceIdentifier", "1.1";
    ENCODING_OPTION = 0x4200A3, "EncodingOption", "1.1";
    EXTENSION_INFORMATION = 0x4200A4, "ExtensionInformation", "1.1";
    EXTENSION_NAME = 0x4200A5, "ExtensionName", "1.1";
    EXTENSION_TAG = 0x4200A6, "ExtensionTag", "1.1";
    EXTENSION_TYPE = 0x4200A7, "ExtensionType", "1.1";
    FRESH = 0x4200A8, "Fresh", "1.1";
    MACHINE_IDENTIFIER = 0x4200A9, "MachineIdentifier", "1.1";
    MEDIA_IDENTIFIER = 0x4200AA, "MediaIdentifier", "1.1";
    NETWORK_IDENTIFIER = 0x4200AB, "NetworkIdentifier", "1.1";
    OBJECT_GROUP_MEMBER = 0x4200AC, "ObjectGroupMember", "1.1";
    CERTIFICATE_LENGTH = 0x4200AD, "CertificateLength", "1.1";
    DIGITAL_SIGNATURE_ALGORITHM = 0x4200AE, "DigitalSignatureAlgorithm", "1.1";
    CERTIFICATE_SERIAL_NUMBER = 0x4200AF, "CertificateSerialNumber", "1.1";
    DEVICE_SERIAL_NUMBER = 0x4200B0, "DeviceSerialNumber", "1.1";
    ISSUER_ALTERNATIVE_NAME = 0x4200B1, "IssuerAlternativeName", "1.1";
    ISSUER_DISTINGUISHED_NAME = 0x4200B2, "IssuerDistinguishedName", "1.1";
    SUBJECT_ALTERNATIVE_NAME = 0x4200B3, "SubjectAlternativeName", "1.1";
    SUBJECT_DISTINGUISHED_NAME = 0x4200B4, "SubjectDistinguishedName", "1.1";
    X_509_CERTIFICATE_IDENTIFIER = 0x4200B5, "X509CertificateIdentifier", "1.1";
    X_509_CERTIFICATE_ISSUER = 0x4200B6, "X509CertificateIssuer", "1.1";
    X_509_CERTIFICATE_SUBJECT = 0x4200B7, "X509CertificateSubject", "1.1";
    KEY_VALUE_LOCATION = 0x4200B8, "KeyValueLocation", "1.2";
    KEY_VALUE_LOCATION_VALUE = 0x4200B9, "KeyValueLocationValue", "1.2";
    KEY_VALUE_LOCATION_TYPE = 0x4200BA, "KeyValueLocationType", "1.2";
    KEY_VALUE_PRESENT = 0x4200BB, "KeyValuePresent", "1.2";
    ORIGINAL_CREATION_DATE = 0x4200BC, "OriginalCreationDate", "1.2";
    PGP_KEY = 0x4200BD, "PgpKey", "1.2";
    PGP_KEY_VERSION = 0x4200BE, "PgpKeyVersion", "1.2";
    ALTERNATIVE_NAME = 0x4200BF, "AlternativeName", "1.2";
    ALTERNATIVE_NAME_VALUE = 0x4200C0, "AlternativeNameValue", "1.2";
    ALTERNATIVE_NAME_TYPE = 0x4200C1, "AlternativeNameType", "1.2";
    DATA = 0x4200C2, "Data", "1.2";
    SIGNATURE_DATA = 0x4200C3, "SignatureData", "1.2";
    DATA_LENGTH = 0x4200C4, "DataLength", "1.2";
    RANDOM_IV = 0x4200C5, "RandomIv", "1.2";
    MAC_DATA = 0x4200C6, "MacData", "1.2";
    ATTESTATION_TYPE = 0x4200C7, "AttestationType", "1.2";
    NONCE = 0x4200C8, "Nonce", "1.2";
    NONCE_ID = 0x4200C9, "NonceId", "1.2";
    NONCE_VALUE = 0x4200CA, "NonceValue", "1.2";
    ATTESTATION_MEASUREMENT = 0x4200CB, "AttestationMeasurement", "1.2";
    ATTESTATION_ASSERTION = 0x4200CC, "AttestationAssertion", "1.2";
    IV_LENGTH = 0x4200CD, "IvLength", "1.2";
    TAG_LENGTH = 0x4200CE, "TagLength", "1.2";
    FIXED_FIELD_LENGTH = 0x4200CF, "FixedFieldLength", "1.2";
    COUNTER_LENGTH = 0x4200D0, "CounterLength", "1.2";
    INITIAL_COUNTER_VALUE = 0x4200D1, "InitialCounterValue", "1.2";
    INVOCATION_FIELD_LENGTH = 0x4200D2, "InvocationFieldLength", "1.2";
    ATTESTATION_CAPABLE_INDICATOR = 0x4200D3, "AttestationCapableIndicator", "1.2";
    OFFSET_ITEMS = 0x4200D4, "OffsetItems", "1.3";
    LOCATED_ITEMS = 0x4200D5, "LocatedItems", "1.3";
    CORRELATION_VALUE = 0x4200D6, "CorrelationValue", "1.3";
    INIT_INDICATOR = 0x4200D7, "InitIndicator", "1.3";
    FINAL_INDICATOR = 0x4200D8, "FinalIndicator", "1.3";
    RNG_PARAMETERS = 0x4200D9, "RngParameters", "1.3";
    RNG_ALGORITHM = 0x4200DA, "RngAlgorithm", "1.3";
    DRBG_ALGORITHM = 0x4200DB, "DrbgAlgorithm", "1.3";
    FIPS186_VARIATION = 0x4200DC, "Fips186Variation", "1.3";
    PREDICTION_RESISTANCE = 0x4200DD, "PredictionResistance", "1.3";
    RANDOM_NUMBER_GENERATOR = 0x4200DE, "RandomNumberGenerator", "1.3";
    VALIDATION_INFORMATION = 0x4200DF, "ValidationInformation", "1.3";
    VALIDATION_AUTHORITY_TYPE = 0x4200E0, "ValidationAuthorityType", "1.3";
    VALIDATION_AUTHORITY_COUNTRY = 0x4200E1, "ValidationAuthorityCountry", "1.3";
    VALIDATION_AUTHORITY_URI = 0x4200E2, "ValidationAuthorityUri", "1.3";
    VALIDATION_VERSION_MAJOR = 0x4200E3, "ValidationVersionMajor", "1.3";
    VALIDATION_VERSION_MINOR = 0x4200E4, "ValidationVersionMinor", "1.3";
    VALIDATION_TYPE = 0x4200E5, "ValidationType", "1.3";
    VALIDATION_LEVEL = 0x4200E6, "ValidationLevel", "1.3";
    VALIDATION_CERTIFICATE_IDENTIFIER = 0x4200E7, "ValidationCertificateIdentifier", "1.3";
    VALIDATION_CERTIFICATE_URI = 0x4200E8, "ValidationCertificateUri", "1.3";
    VALIDATION_VENDOR_URI = 0x4200E9, "ValidationVendorUri", "1.3";
    VALIDATION_PROFILE = 0x4200EA, "ValidationProfile", "1.3";
    PROFILE_INFORMATION = 0x4200EB, "ProfileInformation", "1.3";
    PROFILE_NAME = 0x4200EC, "ProfileName", "1.3";
    SERVER_URI = 0x4200ED, "ServerUri", "1.3";
    SERVER_PORT = 0x4200EE, "ServerPort", "1.3";
    STREAMING_CAPABILITY = 0x4200EF, "StreamingCapability", "1.3";
    ASYNCHRONOUS_CAPABILITY = 0x4200F0, "AsynchronousCapability", "1.3";
    ATTESTATION_CAPABILITY = 0x4200F1, "AttestationCapability", "1.3";
    UNWRAP_MODE = 0x4200F2, "UnwrapMode", "1.3";
    DESTROY_ACTION = 0x4200F3, "DestroyAction", "1.3";
    SHREDDING_ALGORITHM = 0x4200F4, "ShreddingAlgorithm", "1.3";
    RNG_MODE = 0x4200F5, "RngMode", "1.3";
    CLIENT_REGISTRATION_METHOD = 0x4200F6, "ClientRegistrationMethod", "1.3";
    CAPABILITY_INFORMATION = 0x4200F7, "CapabilityInformation", "1.3";
    KEY_WRAP_TYPE = 0x4200F8, "KeyWrapType", "1.4";
    BATCH_UNDO_CAPABILITY = 0x4200F9, "BatchUndoCapability", "1.4";
    BATCH_CONTINUE_CAPABILITY = 0x4200FA, "BatchContinueCapability", "1.4";
    PKCS12_FRIENDLY_NAME = 0x4200FB, "Pkcs12FriendlyName", "1.4";
    DESCRIPTION = 0x4200FC, "Description", "1.4";
    COMMENT = 0x4200FD, "Comment", "1.4";
    AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA = 0x4200FE, "AuthenticatedEncryptionAdditionalData", "1.4";
    AUTHENTICATED_ENCRYPTION_TAG = 0x4200FF, "AuthenticatedEncryptionTag", "1.4";
    SALT_LENGTH = 0x420100, "SaltLength", "1.4";
    MASK_GENERATOR = 0x420101, "MaskGenerator", "1.4";
    MASK_GENERATOR_HASHING_ALGORITHM = 0x420102, "MaskGeneratorHashingAlgorithm", "1.4";
    P_SOURCE = 0x420103, "PSource", "1.4";
    TRAILER_FIELD = 0x420104, "TrailerField", "1.4";
    CLIENT_CORRELATION_VALUE = 0x420105, "ClientCorrelationValue", "1.4";
    SERVER_CORRELATION_VALUE = 0x420106, "ServerCorrelationValue", "1.4";
    DIGESTED_DATA = 0x420107, "DigestedData", "1.4";
    CERTIFICATE_SUBJECT_CN = 0x420108, "CertificateSubjectCn", "1.4";
    CERTIFICATE_SUBJECT_O = 0x420109, "CertificateSubjectO", "1.4";
    CERTIFICATE_SUBJECT_OU = 0x42010A, "CertificateSubjectOu", "1.4";
    CERTIFICATE_SUBJECT_EMAIL = 0x42010B, "CertificateSubjectEmail", "1.4";
    CERTIFICATE_SUBJECT_C = 0x42010C, "CertificateSubjectC", "1.4";
    CERTIFICATE_SUBJECT_ST = 0x42010D, "CertificateSubjectSt", "1.4";
    CERTIFICATE_SUBJECT_L = 0x42010E, "CertificateSubjectL", "1.4";
    CERTIFICATE_SUBJECT_UID = 0x42010F, "CertificateSubjectUid", "1.4";
    CERTIFICATE_SUBJECT_SERIAL_NUMBER = 0x420110, "CertificateSubjectSerialNumber", "1.4";
    CERTIFICATE_SUBJECT_TITLE = 0x420111, "CertificateSubjectTitle", "1.4";
    CERTIFICATE_SUBJECT_DC = 0x420112, "CertificateSubjectDc", "1.4";
    CERTIFICATE_SUBJECT_DN_QUALIFIER = 0x420113, "CertificateSubjectDnQualifier", "1.4";
    CERTIFICATE_ISSUER_CN = 0x420114, "CertificateIssuerCn", "1.4";
    CERTIFICATE_ISSUER_O = 0x420115, "CertificateIssuerO", "1.4";
    CERTIFICATE_ISSUER_OU = 0x420116, "CertificateIssuerOu", "1.4";
    CERTIFICATE_ISSUER_EMAIL = 0x420117, "CertificateIssuerEmail", "1.4";
    CERTIFICATE_ISSUER_C = 0x420118, "CertificateIssuerC", "1.4";
    CERTIFICATE_ISSUER_ST = 0x420119, "CertificateIssuerSt", "1.4";
    CERTIFICATE_ISSUER_L = 0x42011A, "CertificateIssuerL", "1.4";
    CERTIFICATE_ISSUER_UID = 0x42011B, "CertificateIssuerUid", "1.4";
    CERTIFICATE_ISSUER_SERIAL_NUMBER = 0x42011C, "CertificateIssuerSerialNumber", "1.4";
    CERTIFICATE_ISSUER_TITLE = 0x42011D, "CertificateIssuerTitle", "1.4";
    CERTIFICATE_ISSUER_DC = 0x42011E, "CertificateIssuerDc", "1.4";
    CERTIFICATE_ISSUER_DN_QUALIFIER = 0x42011F, "CertificateIssuerDnQualifier", "1.4";
    SENSITIVE = 0x420120, "Sensitive", "1.4";
    ALWAYS_SENSITIVE = 0x420121, "AlwaysSensitive", "1.4";
    EXTRACTABLE = 0x420122, "Extractable", "1.4";
    NEVER_EXTRACTABLE = 0x420123, "NeverExtractable", "1.4";
    REPLACE_EXISTING = 0x420124, "ReplaceExisting", "1.4";
    ATTRIBUTES = 0x420125, "Attributes", "2.0";
    COMMON_ATTRIBUTES = 0x420126, "CommonAttributes", "2.0";
    PRIVATE_KEY_ATTRIBUTES = 0x420127, "PrivateKeyAttributes", "2.0";
    PUBLIC_KEY_ATTRIBUTES = 0x420128, "PublicKeyAttributes", "2.0";
    EXTENSION_ENUMERATION = 0x420129, "ExtensionEnumeration", "2.0";
    EXTENSION_ATTRIBUTE = 0x42012A, "ExtensionAttribute", "2.0";
    EXTENSION_PARENT_STRUCTURE_TAG = 0x42012B, "ExtensionParentStructureTag", "2.0";
    EXTENSION_DESCRIPTION = 0x42012C, "ExtensionDescription", "2.0";
    SERVER_NAME = 0x42012D, "ServerName", "2.0";
    SERVER_SERIAL_NUMBER = 0x42012E, "ServerSerialNumber", "2.0";
    SERVER_VERSION = 0x42012F, "ServerVersion", "2.0";
    SERVER_LOAD = 0x420130, "ServerLoad", "2.0";
    PRODUCT_NAME = 0x420131, "ProductName", "2.0";
    BUILD_LEVEL = 0x420132, "BuildLevel", "2.0";
    BUILD_DATE = 0x420133, "BuildDate", "2.0";
    CLUSTER_INFO = 0x420134, "ClusterInfo", "2.0";
    ALTERNATE_FAILOVER_ENDPOINTS = 0x420135, "AlternateFailoverEndpoints", "2.0";
    SHORT_UNIQUE_IDENTIFIER = 0x420136, "ShortUniqueIdentifier", "2.0";
    RESERVED = 0x420137, "Reserved", "2.0";
    TAG = 0x420138, "Tag", "2.0";
    CERTIFICATE_REQUEST_UNIQUE_IDENTIFIER = 0x420139, "CertificateRequestUniqueIdentifier", "2.0";
    NIST_KEY_TYPE = 0x42013A, "NistKeyType", "2.0";
    ATTRIBUTE_REFERENCE = 0x42013B, "AttributeReference", "2.0";
    CURRENT_ATTRIBUTE = 0x42013C, "CurrentAttribute", "2.0";
    NEW_ATTRIBUTE = 0x42013D, "NewAttribute", "2.0";
    CERTIFICATE_REQUEST_VALUE = 0x420140, "CertificateRequestValue", "2.0";
    LOG_MESSAGE = 0x420141, "LogMessage", "2.0";
    PROFILE_VERSION = 0x420142, "ProfileVersion", "2.0";
    PROFILE_VERSION_MAJOR = 0x420143, "ProfileVersionMajor", "2.0";
    PROFILE_VERSION_MINOR = 0x420144, "ProfileVersionMinor", "2.0";
    PROTECTION_LEVEL = 0x420145, "ProtectionLevel", "2.0";
    PROTECTION_PERIOD = 0x420146, "ProtectionPeriod", "2.0";
    QUANTUM_SAFE = 0x420147, "QuantumSafe", "2.0";
    QUANTUM_SAFE_CAPABILITY = 0x420148, "QuantumSafeCapability", "2.0";
    TICKET = 0x420149, "Ticket", "2.0";
    TICKET_TYPE = 0x42014A, "TicketType", "2.0";
    TICKET_VALUE = 0x42014B, "TicketValue", "2.0";
    REQUEST_COUNT = 0x42014C, "RequestCount", "2.0";
    RIGHTS = 0x42014D, "Rights", "2.0";
    OBJECTS = 0x42014E, "Objects", "2.0";
    OPERATIONS = 0x42014F, "Operations", "2.0";
    RIGHT = 0x420150, "Right", "2.0";
    ENDPOINT_ROLE = 0x420151, "EndpointRole", "2.0";
    DEFAULTS_INFORMATION = 0x420152, "DefaultsInformation", "2.0";
    OBJECT_DEFAULTS = 0x420153, "ObjectDefaults", "2.0";
    EPHEMERAL = 0x420154, "Ephemeral", "2.0";
    SERVER_HASHED_PASSWORD = 0x420155, "ServerHashedPassword", "2.0";
    ONE_TIME_PASSWORD = 0x420156, "OneTimePassword", "2.0";
    HASHED_PASSWORD = 0x420157, "HashedPassword", "2.0";
    ADJUSTMENT_TYPE = 0x420158, "AdjustmentType", "2.0";
    PKCS11_INTERFACE = 0x420159, "Pkcs11Interface", "2.0";
    PKCS11_FUNCTION = 0x42015A, "Pkcs11Function", "2.0";
    PKCS11_INPUT_PARAMETERS = 0x42015B, "Pkcs11InputParameters", "2.0";
    PKCS11_OUTPUT_PARAMETERS = 0x42015C, "Pkcs11OutputParameters", "2.0";
    PKCS11_RETURN_CODE = 0x42015D, "Pkcs11ReturnCode", "2.0";
    PROTECTION_STORAGE_MASK = 0x42015E, "ProtectionStorageMask", "2.0";
    PROTECTION_STORAGE_MASKS = 0x42015F, "ProtectionStorageMasks", "2.0";
    INTEROP_FUNCTION = 0x420160, "InteropFunction", "2.0";
    INTEROP_IDENTIFIER = 0x420161, "InteropIdentifier", "2.0";
    ADJUSTMENT_VALUE = 0x420162, "AdjustmentValue", "2.0";
    COMMON_PROTECTION_STORAGE_MASKS = 0x420163, "CommonProtectionStorageMasks", "2.0";
    PRIVATE_PROTECTION_STORAGE_MASKS = 0x420164, "PrivateProtectionStorageMasks", "2.0";
    PUBLIC_PROTECTION_STORAGE_MASKS = 0x420165, "PublicProtectionStorageMasks", "2.0";
}
