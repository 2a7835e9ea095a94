//! KMIP 2.0 encodings, which OASIS published no hex for: the expected payload bytes
//! below were produced by PyKMIP 0.11 (`payloads.*.write(kmip_version=KMIP_2_0)`), an
//! independent implementation, when these tests were written.

use kmip::attribute::{Attribute, attributes_from_v2};
use kmip::message::*;
use kmip::tag::Tag;
use kmip::ttlv::{self, Item, Limits};
use kmip::types::*;
use zeroize::Zeroizing;

const V2: ProtocolVersion = ProtocolVersion::V2_0;

fn master_key_attributes() -> Vec<Attribute> {
    vec![
        Attribute::CryptographicAlgorithm(CryptographicAlgorithm::AES),
        Attribute::CryptographicLength(256),
        Attribute::CryptographicUsageMask(
            CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT,
        ),
        Attribute::Name {
            value: "hl-master".into(),
            name_type: NameType::UNINTERPRETED_TEXT_STRING,
        },
    ]
}

/// Encodes `payload` for 2.0, compares with PyKMIP's bytes, decodes back.
fn check_request_payload(payload: RequestPayload, pykmip_hex: &str) {
    let item = payload.to_ttlv(V2);
    assert_eq!(hex::encode_upper(ttlv::encode(&item)), pykmip_hex);
    let op = payload.operation().unwrap();
    assert_eq!(RequestPayload::from_ttlv(op, V2, &item).unwrap(), payload);
}

#[test]
fn create_uses_the_attributes_structure() {
    check_request_payload(
        RequestPayload::Create(CreateRequest {
            object_type: ObjectType::SYMMETRIC_KEY,
            template_attribute: TemplateAttribute::new(master_key_attributes()),
        }),
        "42007901000000784200570500000004000000020000000042012501000000604200280500000004000000\
         030000000042002A0200000004000001000000000042002C02000000040000000C00000000420053010000\
         00284200550700000009686C2D6D61737465720000000000000042005405000000040000000100000000",
    );
}

#[test]
fn get_attributes_names_attributes_by_reference() {
    check_request_payload(
        RequestPayload::GetAttributes(GetAttributesRequest {
            unique_identifier: Some("1".into()),
            attribute_names: vec!["State".into(), "Cryptographic Length".into()],
        }),
        "42007901000000304200940700000001310000000000000042013B05000000040042008D0000000042013B\
         05000000040042002A00000000",
    );
}

#[test]
fn locate_uses_the_attributes_structure() {
    check_request_payload(
        RequestPayload::Locate(LocateRequest {
            maximum_items: Some(5),
            attributes: vec![
                Attribute::ObjectType(ObjectType::SYMMETRIC_KEY),
                Attribute::Name {
                    value: "hl-master".into(),
                    name_type: NameType::UNINTERPRETED_TEXT_STRING,
                },
            ],
            ..LocateRequest::default()
        }),
        "420079010000005842004F0200000004000000050000000042012501000000404200570500000004000000\
         020000000042005301000000284200550700000009686C2D6D61737465720000000000000042005405000000\
         040000000100000000",
    );
}

#[test]
fn get_attribute_list_response_lists_references() {
    let payload = ResponsePayload::GetAttributeList(GetAttributeListResponse {
        unique_identifier: "1".into(),
        attribute_names: vec!["State".into(), "Name".into()],
    });
    let item = payload.to_ttlv(V2);
    assert_eq!(
        hex::encode_upper(ttlv::encode(&item)),
        "42007C01000000304200940700000001310000000000000042013B05000000040042008D0000000042013B\
         05000000040042005300000000"
    );
    assert_eq!(
        ResponsePayload::from_ttlv(Operation::GET_ATTRIBUTE_LIST, V2, &item).unwrap(),
        payload
    );
}

#[test]
fn the_same_create_encodes_as_template_attribute_in_1_4() {
    let request = RequestMessage::new(
        ProtocolVersion::V1_4,
        vec![RequestBatchItem::new(
            Operation::CREATE,
            RequestPayload::Create(CreateRequest {
                object_type: ObjectType::SYMMETRIC_KEY,
                template_attribute: TemplateAttribute::new(master_key_attributes()),
            }),
        )],
    );
    let item = request.to_ttlv();
    let payload = item.children()[1].find(Tag::REQUEST_PAYLOAD).unwrap();
    let ta = payload.find(Tag::TEMPLATE_ATTRIBUTE).expect("1.x form");
    assert_eq!(ta.find_all(Tag::ATTRIBUTE).count(), 4);
    assert!(payload.find(Tag::ATTRIBUTES).is_none());
    let back = RequestMessage::decode(&request.encode(), &Limits::default()).unwrap();
    assert_eq!(back, request);
}

#[test]
fn get_attributes_response_round_trips_in_2_0_with_unknown_attributes() {
    let attributes = vec![
        Attribute::UniqueIdentifier("1".into()),
        Attribute::State(State::ACTIVE),
        Attribute::ActivationDate(1_700_000_000),
        Attribute::Link {
            link_type: LinkType::REPLACEMENT_OBJECT_LINK,
            linked_object_id: "2".into(),
        },
        Attribute::Other {
            name: "Contact Information".into(),
            value: Item::text(Tag::ATTRIBUTE_VALUE, "ops@example.com"),
        },
        Attribute::Other {
            name: "0x540010".into(),
            value: Item::integer(Tag::ATTRIBUTE_VALUE, 7),
        },
    ];
    let response = ResponseMessage::new(
        V2,
        1_700_000_001,
        vec![ResponseBatchItem::success(
            Operation::GET_ATTRIBUTES,
            ResponsePayload::GetAttributes(GetAttributesResponse {
                unique_identifier: "1".into(),
                attributes: attributes.clone(),
            }),
        )],
    );
    let bytes = response.encode();
    let back = ResponseMessage::decode(&bytes, &Limits::default()).unwrap();
    assert_eq!(back, response);
    let payload = back.to_ttlv().children()[1]
        .find(Tag::RESPONSE_PAYLOAD)
        .unwrap()
        .clone();
    let list = payload.find(Tag::ATTRIBUTES).unwrap();
    assert_eq!(list.children()[1].tag, Tag::STATE);
    assert_eq!(list.children()[4].tag, Tag::CONTACT_INFORMATION);
    assert_eq!(list.children()[5], Item::integer(Tag(0x54_0010), 7));
    assert_eq!(attributes_from_v2(list).unwrap(), attributes);
}

#[test]
fn attribute_converts_between_1_x_and_2_0_forms() {
    let name = Attribute::Name {
        value: "k".into(),
        name_type: NameType::URI,
    };
    let v1 = name.to_v1();
    assert_eq!(
        v1.find(Tag::ATTRIBUTE_NAME).unwrap().as_text(),
        Some("Name")
    );
    let v2 = name.to_v2();
    assert_eq!(v2.tag, Tag::NAME);
    assert_eq!(Attribute::from_v1(&v1).unwrap(), name);
    assert_eq!(Attribute::from_v2(&v2).unwrap(), name);
    // An untyped 1.x attribute with a 2.0 tag moves to that tag.
    let contact = Attribute::Other {
        name: "Contact Information".into(),
        value: Item::text(Tag::ATTRIBUTE_VALUE, "Joe"),
    };
    assert_eq!(contact.to_v2(), Item::text(Tag::CONTACT_INFORMATION, "Joe"));
}

#[test]
fn get_response_with_transparent_symmetric_key_round_trips() {
    let key = Zeroizing::new(vec![0x5A; 32]);
    let block = KeyBlock {
        key_format_type: KeyFormatType::TRANSPARENT_SYMMETRIC_KEY,
        key_material: KeyMaterial::TransparentSymmetric(key),
        ..KeyBlock::raw_symmetric(CryptographicAlgorithm::AES, Zeroizing::new(Vec::new()))
    };
    for version in [ProtocolVersion::V1_2, V2] {
        let response = ResponseMessage::new(
            version,
            0,
            vec![ResponseBatchItem::success(
                Operation::GET,
                ResponsePayload::Get(GetResponse {
                    object_type: ObjectType::SYMMETRIC_KEY,
                    unique_identifier: "k".into(),
                    object: ManagedObject::SymmetricKey(SymmetricKey {
                        key_block: block.clone(),
                    }),
                }),
            )],
        );
        let back = ResponseMessage::decode(&response.encode(), &Limits::default()).unwrap();
        assert_eq!(back, response);
        assert!(
            !format!("{back:?}").contains("90, 90"),
            "key material printed"
        );
    }
}

#[test]
fn encrypt_and_decrypt_payloads_round_trip_for_aes_gcm() {
    let params = CryptographicParameters {
        block_cipher_mode: Some(BlockCipherMode::GCM),
        cryptographic_algorithm: Some(CryptographicAlgorithm::AES),
        tag_length: Some(16),
        ..CryptographicParameters::default()
    };
    let request = RequestMessage::new(
        ProtocolVersion::V1_4,
        vec![
            RequestBatchItem {
                unique_batch_item_id: Some(vec![1]),
                ..RequestBatchItem::new(
                    Operation::ENCRYPT,
                    RequestPayload::Encrypt(EncryptRequest {
                        unique_identifier: Some("k".into()),
                        cryptographic_parameters: Some(params.clone()),
                        data: Some(Zeroizing::new(b"data key".to_vec())),
                        iv_counter_nonce: Some(vec![0; 12]),
                        additional_data: Some(b"cluster-1".to_vec()),
                        ..EncryptRequest::default()
                    }),
                )
            },
            RequestBatchItem {
                unique_batch_item_id: Some(vec![2]),
                ..RequestBatchItem::new(
                    Operation::DECRYPT,
                    RequestPayload::Decrypt(DecryptRequest {
                        unique_identifier: Some("k".into()),
                        cryptographic_parameters: Some(params),
                        data: Some(vec![0xC0; 8]),
                        iv_counter_nonce: Some(vec![0; 12]),
                        additional_data: Some(b"cluster-1".to_vec()),
                        tag: Some(vec![0x7A; 16]),
                        ..DecryptRequest::default()
                    }),
                )
            },
        ],
    );
    assert_eq!(request.header.batch_count, 2);
    let back = RequestMessage::decode(&request.encode(), &Limits::default()).unwrap();
    assert_eq!(back, request);
    assert!(
        !format!("{back:?}").contains("100, 97, 116, 97"),
        "plaintext printed"
    );

    let response = ResponseMessage::new(
        ProtocolVersion::V1_4,
        5,
        vec![
            ResponseBatchItem::success(
                Operation::ENCRYPT,
                ResponsePayload::Encrypt(EncryptResponse {
                    unique_identifier: "k".into(),
                    data: Some(vec![0xC0; 8]),
                    tag: Some(vec![0x7A; 16]),
                    ..EncryptResponse::default()
                }),
            ),
            ResponseBatchItem::success(
                Operation::DECRYPT,
                ResponsePayload::Decrypt(DecryptResponse {
                    unique_identifier: "k".into(),
                    data: Some(Zeroizing::new(b"data key".to_vec())),
                    correlation_value: None,
                }),
            ),
        ],
    );
    let back = ResponseMessage::decode(&response.encode(), &Limits::default()).unwrap();
    assert_eq!(back, response);
}
