//! KMIP enumerations as newtypes with named constants (the rustls `enum_builder!`
//! habit): a value the table does not know (a vendor extension, a newer KMIP version)
//! survives decode and re-encode unchanged and prints in hex (`Operation(0x8000_0001)`).
//!
//! Values are those of the KMIP 1.0-1.4 and 2.0 specifications (section 9.1.3.2 of 1.x,
//! section 11 of 2.0).

use std::fmt;

/// True when two names of a tag or value are the same once ASCII case and `_` are
/// ignored (`UniqueBatchItemID` and `UniqueBatchItemId`, `SHA_256` and `SHA256`).
pub fn same_name(a: &str, b: &str) -> bool {
    let fold = |s: &str| {
        s.bytes()
            .filter(|&c| c != b'_')
            .map(|c| c.to_ascii_lowercase())
            .collect::<Vec<u8>>()
    };
    fold(a) == fold(b)
}

macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $konst:ident = $value:literal, $text:literal, $since:literal; )* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            $(
                #[doc = concat!("`", $text, "` (KMIP ", $since, ").")]
                pub const $konst: $name = $name($value);
            )*

            /// The value's name as the specification spells it in CamelCase, or `None`
            /// for a value this table does not know.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some($text), )*
                    _ => None,
                }
            }

            /// The value named `name` (ASCII case and `_` ignored: the XML encoding's
            /// `PKCS_1` is [`KeyFormatType::PKCS_1`]), or `None`.
            pub fn from_name(name: &str) -> Option<Self> {
                [$( ($value, $text), )*]
                    .into_iter()
                    .find(|(_, text)| same_name(text, name))
                    .map(|(value, _)| $name(value))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}(0x{:08X})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }

        impl From<u32> for $name {
            fn from(v: u32) -> Self {
                $name(v)
            }
        }

        impl From<$name> for u32 {
            fn from(v: $name) -> u32 {
                v.0
            }
        }
    };
}

wire_enum! {
    /// The operation of a batch item. (KMIP 1.4 section 9.1.3.2.27, KMIP 2.0 section 11.36.)
    Operation {
        CREATE = 0x00000001, "Create", "1.0";
        CREATE_KEY_PAIR = 0x00000002, "CreateKeyPair", "1.0";
        REGISTER = 0x00000003, "Register", "1.0";
        REKEY = 0x00000004, "ReKey", "1.0";
        DERIVE_KEY = 0x00000005, "DeriveKey", "1.0";
        CERTIFY = 0x00000006, "Certify", "1.0";
        RECERTIFY = 0x00000007, "Recertify", "1.0";
        LOCATE = 0x00000008, "Locate", "1.0";
        CHECK = 0x00000009, "Check", "1.0";
        GET = 0x0000000A, "Get", "1.0";
        GET_ATTRIBUTES = 0x0000000B, "GetAttributes", "1.0";
        GET_ATTRIBUTE_LIST = 0x0000000C, "GetAttributeList", "1.0";
        ADD_ATTRIBUTE = 0x0000000D, "AddAttribute", "1.0";
        MODIFY_ATTRIBUTE = 0x0000000E, "ModifyAttribute", "1.0";
        DELETE_ATTRIBUTE = 0x0000000F, "DeleteAttribute", "1.0";
        OBTAIN_LEASE = 0x00000010, "ObtainLease", "1.0";
        GET_USAGE_ALLOCATION = 0x00000011, "GetUsageAllocation", "1.0";
        ACTIVATE = 0x00000012, "Activate", "1.0";
        REVOKE = 0x00000013, "Revoke", "1.0";
        DESTROY = 0x00000014, "Destroy", "1.0";
        ARCHIVE = 0x00000015, "Archive", "1.0";
        RECOVER = 0x00000016, "Recover", "1.0";
        VALIDATE = 0x00000017, "Validate", "1.0";
        QUERY = 0x00000018, "Query", "1.0";
        CANCEL = 0x00000019, "Cancel", "1.0";
        POLL = 0x0000001A, "Poll", "1.0";
        NOTIFY = 0x0000001B, "Notify", "1.0";
        PUT = 0x0000001C, "Put", "1.0";
        REKEY_KEY_PAIR = 0x0000001D, "ReKeyKeyPair", "1.1";
        DISCOVER_VERSIONS = 0x0000001E, "DiscoverVersions", "1.1";
        ENCRYPT = 0x0000001F, "Encrypt", "1.2";
        DECRYPT = 0x00000020, "Decrypt", "1.2";
        SIGN = 0x00000021, "Sign", "1.2";
        SIGNATURE_VERIFY = 0x00000022, "SignatureVerify", "1.2";
        MAC = 0x00000023, "MAC", "1.2";
        MAC_VERIFY = 0x00000024, "MACVerify", "1.2";
        RNG_RETRIEVE = 0x00000025, "RngRetrieve", "1.2";
        RNG_SEED = 0x00000026, "RngSeed", "1.2";
        HASH = 0x00000027, "Hash", "1.2";
        CREATE_SPLIT_KEY = 0x00000028, "CreateSplitKey", "1.2";
        JOIN_SPLIT_KEY = 0x00000029, "JoinSplitKey", "1.2";
        IMPORT = 0x0000002A, "Import", "1.4";
        EXPORT = 0x0000002B, "Export", "1.4";
        LOG = 0x0000002C, "Log", "2.0";
        LOGIN = 0x0000002D, "Login", "2.0";
        LOGOUT = 0x0000002E, "Logout", "2.0";
        DELEGATED_LOGIN = 0x0000002F, "DelegatedLogin", "2.0";
        ADJUST_ATTRIBUTE = 0x00000030, "AdjustAttribute", "2.0";
        SET_ATTRIBUTE = 0x00000031, "SetAttribute", "2.0";
        SET_ENDPOINT_ROLE = 0x00000032, "SetEndpointRole", "2.0";
        PKCS_11 = 0x00000033, "PKCS11", "2.0";
        INTEROP = 0x00000034, "Interop", "2.0";
        REPROVISION = 0x00000035, "Reprovision", "2.0";
    }
}

wire_enum! {
    /// Whether a batch item succeeded. (KMIP 1.4 section 9.1.3.2.28.)
    ResultStatus {
        SUCCESS = 0x00000000, "Success", "1.0";
        OPERATION_FAILED = 0x00000001, "OperationFailed", "1.0";
        OPERATION_PENDING = 0x00000002, "OperationPending", "1.0";
        OPERATION_UNDONE = 0x00000003, "OperationUndone", "1.0";
    }
}

wire_enum! {
    /// Why a batch item failed. (KMIP 1.4 section 9.1.3.2.29, KMIP 2.0 section 11.46.)
    ResultReason {
        ITEM_NOT_FOUND = 0x00000001, "ItemNotFound", "1.0";
        RESPONSE_TOO_LARGE = 0x00000002, "ResponseTooLarge", "1.0";
        AUTHENTICATION_NOT_SUCCESSFUL = 0x00000003, "AuthenticationNotSuccessful", "1.0";
        INVALID_MESSAGE = 0x00000004, "InvalidMessage", "1.0";
        OPERATION_NOT_SUPPORTED = 0x00000005, "OperationNotSupported", "1.0";
        MISSING_DATA = 0x00000006, "MissingData", "1.0";
        INVALID_FIELD = 0x00000007, "InvalidField", "1.0";
        FEATURE_NOT_SUPPORTED = 0x00000008, "FeatureNotSupported", "1.0";
        OPERATION_CANCELED_BY_REQUESTER = 0x00000009, "OperationCanceledByRequester", "1.0";
        CRYPTOGRAPHIC_FAILURE = 0x0000000A, "CryptographicFailure", "1.0";
        ILLEGAL_OPERATION = 0x0000000B, "IllegalOperation", "1.0";
        PERMISSION_DENIED = 0x0000000C, "PermissionDenied", "1.0";
        OBJECT_ARCHIVED = 0x0000000D, "ObjectArchived", "1.0";
        INDEX_OUT_OF_BOUNDS = 0x0000000E, "IndexOutOfBounds", "1.0";
        APPLICATION_NAMESPACE_NOT_SUPPORTED = 0x0000000F, "ApplicationNamespaceNotSupported", "1.0";
        KEY_FORMAT_TYPE_NOT_SUPPORTED = 0x00000010, "KeyFormatTypeNotSupported", "1.0";
        KEY_COMPRESSION_TYPE_NOT_SUPPORTED = 0x00000011, "KeyCompressionTypeNotSupported", "1.0";
        ENCODING_OPTION_ERROR = 0x00000012, "EncodingOptionError", "1.0";
        KEY_VALUE_NOT_PRESENT = 0x00000013, "KeyValueNotPresent", "1.0";
        ATTESTATION_REQUIRED = 0x00000014, "AttestationRequired", "1.0";
        ATTESTATION_FAILED = 0x00000015, "AttestationFailed", "1.0";
        SENSITIVE = 0x00000016, "Sensitive", "1.0";
        NOT_EXTRACTABLE = 0x00000017, "NotExtractable", "1.0";
        OBJECT_ALREADY_EXISTS = 0x00000018, "ObjectAlreadyExists", "1.0";
        GENERAL_FAILURE = 0x00000100, "GeneralFailure", "1.0";
        INVALID_TICKET = 0x00000019, "InvalidTicket", "2.0";
        USAGE_LIMIT_EXCEEDED = 0x0000001A, "UsageLimitExceeded", "2.0";
        NUMERIC_RANGE = 0x0000001B, "NumericRange", "2.0";
        INVALID_DATA_TYPE = 0x0000001C, "InvalidDataType", "2.0";
        READ_ONLY_ATTRIBUTE = 0x0000001D, "ReadOnlyAttribute", "2.0";
        MULTI_VALUED_ATTRIBUTE = 0x0000001E, "MultiValuedAttribute", "2.0";
        UNSUPPORTED_ATTRIBUTE = 0x0000001F, "UnsupportedAttribute", "2.0";
        ATTRIBUTE_INSTANCE_NOT_FOUND = 0x00000020, "AttributeInstanceNotFound", "2.0";
        ATTRIBUTE_NOT_FOUND = 0x00000021, "AttributeNotFound", "2.0";
        ATTRIBUTE_READ_ONLY = 0x00000022, "AttributeReadOnly", "2.0";
        ATTRIBUTE_SINGLE_VALUED = 0x00000023, "AttributeSingleValued", "2.0";
        BAD_CRYPTOGRAPHIC_PARAMETERS = 0x00000024, "BadCryptographicParameters", "2.0";
        BAD_PASSWORD = 0x00000025, "BadPassword", "2.0";
        CODEC_ERROR = 0x00000026, "CodecError", "2.0";
        ILLEGAL_OBJECT_TYPE = 0x00000028, "IllegalObjectType", "2.0";
        INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK = 0x00000029, "IncompatibleCryptographicUsageMask", "2.0";
        INTERNAL_SERVER_ERROR = 0x0000002A, "InternalServerError", "2.0";
        INVALID_ASYNCHRONOUS_CORRELATION_VALUE = 0x0000002B, "InvalidAsynchronousCorrelationValue", "2.0";
        INVALID_ATTRIBUTE = 0x0000002C, "InvalidAttribute", "2.0";
        INVALID_ATTRIBUTE_VALUE = 0x0000002D, "InvalidAttributeValue", "2.0";
        INVALID_CORRELATION_VALUE = 0x0000002E, "InvalidCorrelationValue", "2.0";
        INVALID_CSR = 0x0000002F, "InvalidCsr", "2.0";
        INVALID_OBJECT_TYPE = 0x00000030, "InvalidObjectType", "2.0";
        KEY_WRAP_TYPE_NOT_SUPPORTED = 0x00000032, "KeyWrapTypeNotSupported", "2.0";
        MISSING_INITIALIZATION_VECTOR = 0x00000034, "MissingInitializationVector", "2.0";
        NON_UNIQUE_NAME_ATTRIBUTE = 0x00000035, "NonUniqueNameAttribute", "2.0";
        OBJECT_DESTROYED = 0x00000036, "ObjectDestroyed", "2.0";
        OBJECT_NOT_FOUND = 0x00000037, "ObjectNotFound", "2.0";
        NOT_AUTHORISED = 0x00000039, "NotAuthorised", "2.0";
        SERVER_LIMIT_EXCEEDED = 0x0000003A, "ServerLimitExceeded", "2.0";
        UNKNOWN_ENUMERATION = 0x0000003B, "UnknownEnumeration", "2.0";
        UNKNOWN_MESSAGE_EXTENSION = 0x0000003C, "UnknownMessageExtension", "2.0";
        UNKNOWN_TAG = 0x0000003D, "UnknownTag", "2.0";
        UNSUPPORTED_CRYPTOGRAPHIC_PARAMETERS = 0x0000003E, "UnsupportedCryptographicParameters", "2.0";
        UNSUPPORTED_PROTOCOL_VERSION = 0x0000003F, "UnsupportedProtocolVersion", "2.0";
        WRAPPING_OBJECT_ARCHIVED = 0x00000040, "WrappingObjectArchived", "2.0";
        WRAPPING_OBJECT_DESTROYED = 0x00000041, "WrappingObjectDestroyed", "2.0";
        WRAPPING_OBJECT_NOT_FOUND = 0x00000042, "WrappingObjectNotFound", "2.0";
        WRONG_KEY_LIFECYCLE_STATE = 0x00000043, "WrongKeyLifecycleState", "2.0";
        PROTECTION_STORAGE_UNAVAILABLE = 0x00000044, "ProtectionStorageUnavailable", "2.0";
        PKCS11_CODEC_ERROR = 0x00000045, "Pkcs11CodecError", "2.0";
        PKCS11_INVALID_FUNCTION = 0x00000046, "Pkcs11InvalidFunction", "2.0";
        PKCS11_INVALID_INTERFACE = 0x00000047, "Pkcs11InvalidInterface", "2.0";
    }
}

wire_enum! {
    /// The kind of managed object. (KMIP 1.4 section 9.1.3.2.12.)
    ObjectType {
        CERTIFICATE = 0x00000001, "Certificate", "1.0";
        SYMMETRIC_KEY = 0x00000002, "SymmetricKey", "1.0";
        PUBLIC_KEY = 0x00000003, "PublicKey", "1.0";
        PRIVATE_KEY = 0x00000004, "PrivateKey", "1.0";
        SPLIT_KEY = 0x00000005, "SplitKey", "1.0";
        TEMPLATE = 0x00000006, "Template", "1.0";
        SECRET_DATA = 0x00000007, "SecretData", "1.0";
        OPAQUE_OBJECT = 0x00000008, "OpaqueObject", "1.0";
        PGP_KEY = 0x00000009, "PgpKey", "1.2";
        CERTIFICATE_REQUEST = 0x0000000A, "CertificateRequest", "2.0";
    }
}

wire_enum! {
    /// A cryptographic algorithm. (KMIP 1.4 section 9.1.3.2.13.)
    CryptographicAlgorithm {
        DES = 0x00000001, "DES", "1.0";
        TRIPLE_DES = 0x00000002, "3DES", "1.0";
        AES = 0x00000003, "AES", "1.0";
        RSA = 0x00000004, "RSA", "1.0";
        DSA = 0x00000005, "DSA", "1.0";
        ECDSA = 0x00000006, "ECDSA", "1.0";
        HMAC_SHA1 = 0x00000007, "HMACSHA1", "1.0";
        HMAC_SHA224 = 0x00000008, "HMACSHA224", "1.0";
        HMAC_SHA256 = 0x00000009, "HMACSHA256", "1.0";
        HMAC_SHA384 = 0x0000000A, "HMACSHA384", "1.0";
        HMAC_SHA512 = 0x0000000B, "HMACSHA512", "1.0";
        HMAC_MD5 = 0x0000000C, "HMACMD5", "1.0";
        DH = 0x0000000D, "DH", "1.0";
        ECDH = 0x0000000E, "ECDH", "1.0";
        ECMQV = 0x0000000F, "ECMQV", "1.0";
        BLOWFISH = 0x00000010, "Blowfish", "1.0";
        CAMELLIA = 0x00000011, "Camellia", "1.0";
        CAST5 = 0x00000012, "Cast5", "1.0";
        IDEA = 0x00000013, "IDEA", "1.0";
        MARS = 0x00000014, "MARS", "1.0";
        RC2 = 0x00000015, "RC2", "1.0";
        RC4 = 0x00000016, "RC4", "1.0";
        RC5 = 0x00000017, "RC5", "1.0";
        SKIPJACK = 0x00000018, "Skipjack", "1.0";
        TWOFISH = 0x00000019, "Twofish", "1.0";
        EC = 0x0000001A, "EC", "1.2";
        ONE_TIME_PAD = 0x0000001B, "OneTimePad", "1.3";
        CHACHA20 = 0x0000001C, "Chacha20", "1.4";
        POLY1305 = 0x0000001D, "Poly1305", "1.4";
        CHACHA20_POLY1305 = 0x0000001E, "Chacha20Poly1305", "1.4";
        SHA3_224 = 0x0000001F, "Sha3224", "1.4";
        SHA3_256 = 0x00000020, "Sha3256", "1.4";
        SHA3_384 = 0x00000021, "Sha3384", "1.4";
        SHA3_512 = 0x00000022, "Sha3512", "1.4";
        HMAC_SHA3_224 = 0x00000023, "HMACSha3224", "1.4";
        HMAC_SHA3_256 = 0x00000024, "HMACSha3256", "1.4";
        HMAC_SHA3_384 = 0x00000025, "HMACSha3384", "1.4";
        HMAC_SHA3_512 = 0x00000026, "HMACSha3512", "1.4";
        SHAKE_128 = 0x00000027, "Shake128", "1.4";
        SHAKE_256 = 0x00000028, "Shake256", "1.4";
        ARIA = 0x00000029, "Aria", "2.0";
        SEED = 0x0000002A, "Seed", "2.0";
        SM2 = 0x0000002B, "SM2", "2.0";
        SM3 = 0x0000002C, "SM3", "2.0";
        SM4 = 0x0000002D, "SM4", "2.0";
        GOST_R_34_10_2012 = 0x0000002E, "GostR34102012", "2.0";
        GOST_R_34_11_2012 = 0x0000002F, "GostR34112012", "2.0";
        GOST_R_34_13_2015 = 0x00000030, "GostR34132015", "2.0";
        GOST_28147_89 = 0x00000031, "Gost2814789", "2.0";
        XMSS = 0x00000032, "XMSS", "2.0";
        SPHINCS_256 = 0x00000033, "Sphincs256", "2.0";
        MCELIECE = 0x00000034, "Mceliece", "2.0";
        MCELIECE_6960119 = 0x00000035, "Mceliece6960119", "2.0";
        MCELIECE_8192128 = 0x00000036, "Mceliece8192128", "2.0";
        ED25519 = 0x00000037, "Ed25519", "2.0";
        ED448 = 0x00000038, "Ed448", "2.0";
    }
}

wire_enum! {
    /// How key material is encoded in a Key Block. (KMIP 1.4 section 9.1.3.2.3.)
    KeyFormatType {
        RAW = 0x00000001, "Raw", "1.0";
        OPAQUE = 0x00000002, "Opaque", "1.0";
        PKCS_1 = 0x00000003, "PKCS1", "1.0";
        PKCS_8 = 0x00000004, "PKCS8", "1.0";
        X_509 = 0x00000005, "X509", "1.0";
        EC_PRIVATE_KEY = 0x00000006, "ECPrivateKey", "1.0";
        TRANSPARENT_SYMMETRIC_KEY = 0x00000007, "TransparentSymmetricKey", "1.0";
        TRANSPARENT_DSA_PRIVATE_KEY = 0x00000008, "TransparentDSAPrivateKey", "1.0";
        TRANSPARENT_DSA_PUBLIC_KEY = 0x00000009, "TransparentDSAPublicKey", "1.0";
        TRANSPARENT_RSA_PRIVATE_KEY = 0x0000000A, "TransparentRSAPrivateKey", "1.0";
        TRANSPARENT_RSA_PUBLIC_KEY = 0x0000000B, "TransparentRSAPublicKey", "1.0";
        TRANSPARENT_DH_PRIVATE_KEY = 0x0000000C, "TransparentDHPrivateKey", "1.0";
        TRANSPARENT_DH_PUBLIC_KEY = 0x0000000D, "TransparentDHPublicKey", "1.0";
        TRANSPARENT_ECDSA_PRIVATE_KEY = 0x0000000E, "TransparentECDSAPrivateKey", "1.0";
        TRANSPARENT_ECDSA_PUBLIC_KEY = 0x0000000F, "TransparentECDSAPublicKey", "1.0";
        TRANSPARENT_ECDH_PRIVATE_KEY = 0x00000010, "TransparentECDHPrivateKey", "1.0";
        TRANSPARENT_ECDH_PUBLIC_KEY = 0x00000011, "TransparentECDHPublicKey", "1.0";
        TRANSPARENT_ECMQV_PRIVATE_KEY = 0x00000012, "TransparentECMQVPrivateKey", "1.0";
        TRANSPARENT_ECMQV_PUBLIC_KEY = 0x00000013, "TransparentECMQVPublicKey", "1.0";
        TRANSPARENT_EC_PRIVATE_KEY = 0x00000014, "TransparentECPrivateKey", "1.3";
        TRANSPARENT_EC_PUBLIC_KEY = 0x00000015, "TransparentECPublicKey", "1.3";
        PKCS_12 = 0x00000016, "PKCS12", "1.4";
    }
}

wire_enum! {
    /// The lifecycle state of a managed object. (KMIP 1.4 section 9.1.3.2.17.)
    State {
        PRE_ACTIVE = 0x00000001, "PreActive", "1.0";
        ACTIVE = 0x00000002, "Active", "1.0";
        DEACTIVATED = 0x00000003, "Deactivated", "1.0";
        COMPROMISED = 0x00000004, "Compromised", "1.0";
        DESTROYED = 0x00000005, "Destroyed", "1.0";
        DESTROYED_COMPROMISED = 0x00000006, "DestroyedCompromised", "1.0";
    }
}

wire_enum! {
    /// Why an object is revoked. (KMIP 1.4 section 9.1.3.2.19.)
    RevocationReasonCode {
        UNSPECIFIED = 0x00000001, "Unspecified", "1.0";
        KEY_COMPROMISE = 0x00000002, "KeyCompromise", "1.0";
        CA_COMPROMISE = 0x00000003, "CACompromise", "1.0";
        AFFILIATION_CHANGED = 0x00000004, "AffiliationChanged", "1.0";
        SUPERSEDED = 0x00000005, "Superseded", "1.0";
        CESSATION_OF_OPERATION = 0x00000006, "CessationOfOperation", "1.0";
        PRIVILEGE_WITHDRAWN = 0x00000007, "PrivilegeWithdrawn", "1.0";
    }
}

wire_enum! {
    /// How a Name value is to be read. (KMIP 1.4 section 9.1.3.2.11.)
    NameType {
        UNINTERPRETED_TEXT_STRING = 0x00000001, "UninterpretedTextString", "1.0";
        URI = 0x00000002, "URI", "1.0";
    }
}

wire_enum! {
    /// What a Link points to. (KMIP 1.4 section 9.1.3.2.20.)
    LinkType {
        CERTIFICATE_LINK = 0x00000101, "CertificateLink", "1.0";
        PUBLIC_KEY_LINK = 0x00000102, "PublicKeyLink", "1.0";
        PRIVATE_KEY_LINK = 0x00000103, "PrivateKeyLink", "1.0";
        DERIVATION_BASE_OBJECT_LINK = 0x00000104, "DerivationBaseObjectLink", "1.0";
        DERIVED_KEY_LINK = 0x00000105, "DerivedKeyLink", "1.0";
        REPLACEMENT_OBJECT_LINK = 0x00000106, "ReplacementObjectLink", "1.0";
        REPLACED_OBJECT_LINK = 0x00000107, "ReplacedObjectLink", "1.0";
        PARENT_LINK = 0x00000108, "ParentLink", "1.2";
        CHILD_LINK = 0x00000109, "ChildLink", "1.2";
        PREVIOUS_LINK = 0x0000010A, "PreviousLink", "1.2";
        NEXT_LINK = 0x0000010B, "NextLink", "1.2";
        PKCS12_CERTIFICATE_LINK = 0x0000010C, "Pkcs12CertificateLink", "1.4";
        PKCS12_PASSWORD_LINK = 0x0000010D, "Pkcs12PasswordLink", "1.4";
        WRAPPING_KEY_LINK = 0x0000010E, "WrappingKeyLink", "2.0";
    }
}

wire_enum! {
    /// A block cipher mode, in Cryptographic Parameters. (KMIP 1.4 section 9.1.3.2.14.)
    BlockCipherMode {
        CBC = 0x00000001, "CBC", "1.0";
        ECB = 0x00000002, "ECB", "1.0";
        PCBC = 0x00000003, "PCBC", "1.0";
        CFB = 0x00000004, "CFB", "1.0";
        OFB = 0x00000005, "OFB", "1.0";
        CTR = 0x00000006, "CTR", "1.0";
        CMAC = 0x00000007, "CMAC", "1.0";
        CCM = 0x00000008, "CCM", "1.0";
        GCM = 0x00000009, "GCM", "1.0";
        CBC_MAC = 0x0000000A, "CBCMAC", "1.0";
        XTS = 0x0000000B, "XTS", "1.0";
        AES_KEY_WRAP_PADDING = 0x0000000C, "AESKeyWrapPadding", "1.0";
        NIST_KEY_WRAP = 0x0000000D, "NISTKeyWrap", "1.0";
        X9_102_AESKW = 0x0000000E, "X9102AESKW", "1.0";
        X9_102_TDKW = 0x0000000F, "X9102TDKW", "1.0";
        X9_102_AKW1 = 0x00000010, "X9102AKW1", "1.0";
        X9_102_AKW2 = 0x00000011, "X9102AKW2", "1.0";
        AEAD = 0x00000012, "AEAD", "1.4";
    }
}

wire_enum! {
    /// What a Query asks the server to report. (KMIP 1.4 section 9.1.3.2.24.)
    QueryFunction {
        QUERY_OPERATIONS = 0x00000001, "QueryOperations", "1.0";
        QUERY_OBJECTS = 0x00000002, "QueryObjects", "1.0";
        QUERY_SERVER_INFORMATION = 0x00000003, "QueryServerInformation", "1.0";
        QUERY_APPLICATION_NAMESPACES = 0x00000004, "QueryApplicationNamespaces", "1.0";
        QUERY_EXTENSION_LIST = 0x00000005, "QueryExtensionList", "1.1";
        QUERY_EXTENSION_MAP = 0x00000006, "QueryExtensionMap", "1.1";
        QUERY_ATTESTATION_TYPES = 0x00000007, "QueryAttestationTypes", "1.2";
        QUERY_RNGS = 0x00000008, "QueryRNGS", "1.3";
        QUERY_VALIDATIONS = 0x00000009, "QueryValidations", "1.3";
        QUERY_PROFILES = 0x0000000A, "QueryProfiles", "1.3";
        QUERY_CAPABILITIES = 0x0000000B, "QueryCapabilities", "1.3";
        QUERY_CLIENT_REGISTRATION_METHODS = 0x0000000C, "QueryClientRegistrationMethods", "1.3";
        QUERY_DEFAULTS_INFORMATION = 0x0000000D, "QueryDefaultsInformation", "2.0";
        QUERY_STORAGE_PROTECTION_MASKS = 0x0000000E, "QueryStorageProtectionMasks", "2.0";
    }
}

/// Cryptographic Usage Mask: a set of bit flags, an Integer on the wire (KMIP 1.4
/// section 9.1.3.3.1). Unknown bits are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CryptographicUsageMask(pub u32);

macro_rules! usage_mask {
    ($( $konst:ident = $value:literal, $text:literal, $since:literal; )*) => {
        impl CryptographicUsageMask {
            $(
                #[doc = concat!("`", $text, "` (KMIP ", $since, ").")]
                pub const $konst: CryptographicUsageMask = CryptographicUsageMask($value);
            )*
            const NAMES: &'static [(u32, &'static str)] = &[$( ($value, $text), )*];
        }
    };
}

usage_mask! {
        SIGN = 0x00000001, "Sign", "1.0";
        VERIFY = 0x00000002, "Verify", "1.0";
        ENCRYPT = 0x00000004, "Encrypt", "1.0";
        DECRYPT = 0x00000008, "Decrypt", "1.0";
        WRAP_KEY = 0x00000010, "WrapKey", "1.0";
        UNWRAP_KEY = 0x00000020, "UnwrapKey", "1.0";
        EXPORT = 0x00000040, "Export", "1.0";
        MAC_GENERATE = 0x00000080, "MACGenerate", "1.0";
        MAC_VERIFY = 0x00000100, "MACVerify", "1.0";
        DERIVE_KEY = 0x00000200, "DeriveKey", "1.0";
        CONTENT_COMMITMENT = 0x00000400, "ContentCommitment", "1.0";
        KEY_AGREEMENT = 0x00000800, "KeyAgreement", "1.0";
        CERTIFICATE_SIGN = 0x00001000, "CertificateSign", "1.0";
        CRL_SIGN = 0x00002000, "CRLSign", "1.0";
        GENERATE_CRYPTOGRAM = 0x00004000, "GenerateCryptogram", "1.0";
        VALIDATE_CRYPTOGRAM = 0x00008000, "ValidateCryptogram", "1.0";
        TRANSLATE_ENCRYPT = 0x00010000, "TranslateEncrypt", "1.0";
        TRANSLATE_DECRYPT = 0x00020000, "TranslateDecrypt", "1.0";
        TRANSLATE_WRAP = 0x00040000, "TranslateWrap", "1.0";
        TRANSLATE_UNWRAP = 0x00080000, "TranslateUnwrap", "1.0";
        AUTHENTICATE = 0x00100000, "Authenticate", "2.0";
        UNRESTRICTED = 0x00200000, "Unrestricted", "2.0";
        FPE_ENCRYPT = 0x00400000, "FPEEncrypt", "2.0";
        FPE_DECRYPT = 0x00800000, "FPEDecrypt", "2.0";
}

impl CryptographicUsageMask {
    /// The empty mask.
    pub const EMPTY: CryptographicUsageMask = CryptographicUsageMask(0);

    /// True if every bit of `other` is set in `self`.
    pub fn contains(self, other: CryptographicUsageMask) -> bool {
        self.0 & other.0 == other.0
    }

    /// The mask from flag names separated by spaces or `|`, as KMIP's XML encoding
    /// writes it (`Encrypt Decrypt`); `None` if a name is unknown.
    pub fn from_names(names: &str) -> Option<Self> {
        let mut mask = Self::EMPTY;
        for name in names.split(|c: char| c == '|' || c.is_whitespace()) {
            if name.is_empty() {
                continue;
            }
            let (bit, _) = Self::NAMES.iter().find(|(_, text)| same_name(text, name))?;
            mask.0 |= bit;
        }
        Some(mask)
    }

    /// The mask as the signed Integer KMIP puts on the wire.
    pub fn to_wire(self) -> i32 {
        self.0 as i32
    }

    /// The mask from the signed Integer on the wire.
    pub fn from_wire(v: i32) -> Self {
        CryptographicUsageMask(v as u32)
    }
}

impl std::ops::BitOr for CryptographicUsageMask {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        CryptographicUsageMask(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for CryptographicUsageMask {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl std::ops::BitAnd for CryptographicUsageMask {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        CryptographicUsageMask(self.0 & rhs.0)
    }
}

impl fmt::Debug for CryptographicUsageMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        let mut first = true;
        for (bit, name) in Self::NAMES {
            if rest & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                rest &= !bit;
                first = false;
            }
        }
        if rest != 0 || first {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "0x{rest:08X}")?;
        }
        Ok(())
    }
}

/// Protocol Version (KMIP 1.0 section 6.1): a major and a minor number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtocolVersion {
    /// Protocol Version Major.
    pub major: i32,
    /// Protocol Version Minor.
    pub minor: i32,
}

impl ResultReason {
    /// Whether the reason says the object does not exist: 1.x's Item Not Found, or
    /// 2.x's Object Not Found (which Cosmian KMS answers).
    pub fn is_not_found(self) -> bool {
        self == ResultReason::ITEM_NOT_FOUND || self == ResultReason::OBJECT_NOT_FOUND
    }
}

impl ProtocolVersion {
    /// KMIP 1.0.
    pub const V1_0: ProtocolVersion = ProtocolVersion::new(1, 0);
    /// KMIP 1.1.
    pub const V1_1: ProtocolVersion = ProtocolVersion::new(1, 1);
    /// KMIP 1.2.
    pub const V1_2: ProtocolVersion = ProtocolVersion::new(1, 2);
    /// KMIP 1.3.
    pub const V1_3: ProtocolVersion = ProtocolVersion::new(1, 3);
    /// KMIP 1.4.
    pub const V1_4: ProtocolVersion = ProtocolVersion::new(1, 4);
    /// KMIP 2.0.
    pub const V2_0: ProtocolVersion = ProtocolVersion::new(2, 0);
    /// KMIP 2.1: for the operations and attributes this crate knows, messages as in 2.0
    /// (2.1 adds operations, attributes and optional fields; see docs/kmip.md).
    pub const V2_1: ProtocolVersion = ProtocolVersion::new(2, 1);

    /// A version from its two numbers.
    pub const fn new(major: i32, minor: i32) -> Self {
        ProtocolVersion { major, minor }
    }

    /// True for KMIP 2.0 and later, whose messages carry attributes in the
    /// `Attributes` structure rather than 1.x `Template-Attribute`s.
    pub fn uses_v2_attributes(self) -> bool {
        self.major >= 2
    }
}

impl fmt::Debug for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}
