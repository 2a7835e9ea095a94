//! Responses captured from other KMIP servers (`tests/captured/`, each file saying where
//! it came from): the client must read what real servers send.

use std::path::PathBuf;

use kmip::attribute::Attribute;
use kmip::message::{KeyMaterial, ManagedObject, ResponseMessage, ResponsePayload};
use kmip::ttlv::Limits;
use kmip::types::{CryptographicAlgorithm, ProtocolVersion, ResultStatus, State};

fn captured(name: &str) -> Vec<u8> {
    super::hex_file(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/captured/{name}.hex")),
    )
}

/// Cosmian KMS 5.28 answers Get with the key's attributes inside the Key Value: in 2.1
/// as an `Attributes` structure that ends with a vendor `Attribute` (Vendor
/// Identification "cosmian", Attribute Name "tag"), in 1.4 as 1.x `Attribute`s. Before
/// the 2.x vendor attribute was read, every Get of a Cosmian key failed with "missing
/// required field AttributeName" and the client counted the server as failed.
#[test]
fn accepts_cosmian_get_responses_with_attributes_in_the_key_value() {
    for (file, version) in [
        ("cosmian-5.28-get-response-2.1", ProtocolVersion::V2_1),
        ("cosmian-5.28-get-response-1.4", ProtocolVersion::new(1, 4)),
    ] {
        let response = ResponseMessage::decode(&captured(file), &Limits::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(response.header.protocol_version, version);
        let item = &response.items[0];
        assert_eq!(item.result_status, ResultStatus::SUCCESS);
        let Some(ResponsePayload::Get(get)) = &item.payload else {
            panic!("{file}: not a Get payload: {:?}", item.payload);
        };
        let ManagedObject::SymmetricKey(key) = &get.object else {
            panic!("{file}: not a symmetric key");
        };
        let block = &key.key_block;
        assert_eq!(
            block.cryptographic_algorithm,
            Some(CryptographicAlgorithm::AES)
        );
        assert_eq!(block.cryptographic_length, Some(256));
        let KeyMaterial::Raw(material) = &block.key_material else {
            panic!("{file}: key material not raw bytes");
        };
        assert_eq!(material.len(), 32);
        let attributes = &block.key_value_attributes;
        assert!(
            attributes.contains(&Attribute::State(State::ACTIVE)),
            "{file}"
        );
        if version == ProtocolVersion::V2_1 {
            assert!(
                attributes
                    .iter()
                    .any(|a| matches!(a, Attribute::Other { name, .. } if name == "cosmian:tag")),
                "{file}: {attributes:?}"
            );
        }
    }
}
