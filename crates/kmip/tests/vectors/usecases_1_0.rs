//! KMIP 1.0 Use Cases, one module per section.

use kmip::attribute::{Attribute, RevocationReason};
use kmip::message::*;
use kmip::tag::Tag;
use kmip::ttlv::Item;
use kmip::types::*;
use zeroize::Zeroizing;

use crate::{check_request, check_response, request, success};

const V: ProtocolVersion = ProtocolVersion::V1_0;

fn name(value: &str) -> Attribute {
    Attribute::Name {
        value: value.into(),
        name_type: NameType::UNINTERPRETED_TEXT_STRING,
    }
}

fn get_attributes(uid: &str, names: &[&str]) -> RequestMessage {
    request(
        V,
        RequestPayload::GetAttributes(GetAttributesRequest {
            unique_identifier: Some(uid.into()),
            attribute_names: names.iter().map(|s| s.to_string()).collect(),
        }),
    )
}

fn attributes_response(ts: i64, uid: &str, attributes: Vec<Attribute>) -> ResponseMessage {
    success(
        V,
        ts,
        ResponsePayload::GetAttributes(GetAttributesResponse {
            unique_identifier: uid.into(),
            attributes,
        }),
    )
}

/// 3.1.2: register a Template, create a key from it, read custom attributes, destroy.
mod usecase_3_1_2 {
    use super::*;

    const UID: &str = "61b10614-d8b5-46f9-8d17-2fa6ea1d747a";

    fn template_attributes() -> Vec<Attribute> {
        vec![
            Attribute::ObjectGroup("Group1".into()),
            Attribute::Other {
                name: "Application Specific Information".into(),
                value: Item::structure(
                    Tag::ATTRIBUTE_VALUE,
                    vec![
                        Item::text(Tag::APPLICATION_NAMESPACE, "ssl"),
                        Item::text(Tag::APPLICATION_DATA, "www.example.com"),
                    ],
                ),
            },
            Attribute::Other {
                name: "Contact Information".into(),
                value: Item::text(Tag::ATTRIBUTE_VALUE, "Joe"),
            },
            Attribute::Other {
                name: "x-Purpose".into(),
                value: Item::text(Tag::ATTRIBUTE_VALUE, "demonstration"),
            },
        ]
    }

    #[test]
    fn step1_register_request() {
        let mut attributes = template_attributes();
        attributes.push(name("Template1"));
        let decoded = check_request(
            "1.0-usecase-3.1.2-register-request",
            &request(
                V,
                RequestPayload::Register(RegisterRequest {
                    object_type: ObjectType::TEMPLATE,
                    template_attribute: TemplateAttribute::default(),
                    object: ManagedObject::Template(Template { attributes }),
                }),
            ),
        );
        let RequestPayload::Register(r) = &decoded.items[0].payload else {
            panic!("not a Register payload");
        };
        assert_eq!(r.object_type, ObjectType::TEMPLATE);
        assert!(r.template_attribute.attributes.is_empty());
        assert_eq!(r.object.object_type(), Some(ObjectType::TEMPLATE));
    }

    #[test]
    fn step1_register_response() {
        check_response(
            "1.0-usecase-3.1.2-register-response",
            &success(
                V,
                1_258_022_852,
                ResponsePayload::Register(RegisterResponse {
                    unique_identifier: "a6ebbb6f-4c54-4bbb-ad29-be6bad4ecad5".into(),
                    template_attribute: None,
                }),
            ),
        );
    }

    #[test]
    fn step2_create_request_references_the_template_by_name() {
        let decoded = check_request(
            "1.0-usecase-3.1.2-create-request",
            &request(
                V,
                RequestPayload::Create(CreateRequest {
                    object_type: ObjectType::SYMMETRIC_KEY,
                    template_attribute: TemplateAttribute {
                        template_names: vec![Name {
                            value: "Template1".into(),
                            name_type: NameType::UNINTERPRETED_TEXT_STRING,
                        }],
                        attributes: vec![
                            Attribute::CryptographicAlgorithm(CryptographicAlgorithm::AES),
                            Attribute::CryptographicLength(128),
                            Attribute::CryptographicUsageMask(
                                CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT,
                            ),
                        ],
                    },
                }),
            ),
        );
        assert_eq!(decoded.items[0].operation, Operation::CREATE);
    }

    #[test]
    fn step2_create_response() {
        check_response(
            "1.0-usecase-3.1.2-create-response",
            &success(
                V,
                1_258_022_853,
                ResponsePayload::Create(CreateResponse {
                    object_type: ObjectType::SYMMETRIC_KEY,
                    unique_identifier: UID.into(),
                    template_attribute: None,
                }),
            ),
        );
    }

    #[test]
    fn step3_get_attributes_request() {
        check_request(
            "1.0-usecase-3.1.2-get-attributes-request",
            &get_attributes(
                UID,
                &[
                    "Object Group",
                    "Application Specific Information",
                    "Contact Information",
                    "x-Purpose",
                ],
            ),
        );
    }

    #[test]
    fn step3_get_attributes_response_keeps_untyped_attributes() {
        let decoded = check_response(
            "1.0-usecase-3.1.2-get-attributes-response",
            &attributes_response(1_258_022_854, UID, template_attributes()),
        );
        let Some(ResponsePayload::GetAttributes(p)) = &decoded.items[0].payload else {
            panic!("not a Get Attributes payload");
        };
        let names: Vec<&str> = p.attributes.iter().map(Attribute::name).collect();
        assert_eq!(
            names,
            [
                "Object Group",
                "Application Specific Information",
                "Contact Information",
                "x-Purpose"
            ]
        );
    }

    #[test]
    fn step4_destroy_request() {
        check_request(
            "1.0-usecase-3.1.2-destroy-request",
            &request(
                V,
                RequestPayload::Destroy {
                    unique_identifier: Some(UID.into()),
                },
            ),
        );
    }

    #[test]
    fn step4_destroy_response() {
        check_response(
            "1.0-usecase-3.1.2-destroy-response",
            &success(
                V,
                1_258_022_854,
                ResponsePayload::Destroy {
                    unique_identifier: UID.into(),
                },
            ),
        );
    }
}

/// 4.1: a key's lifecycle across two clients: create, activate, locate, get, revoke.
mod usecase_4_1 {
    use super::*;

    const UID: &str = "21d28b8a-06df-43c0-b72f-2a161633ada9";
    const TS: i64 = 1_258_024_235;

    #[test]
    fn step1_create_request() {
        check_request(
            "1.0-usecase-4.1-create-request",
            &request(
                V,
                RequestPayload::Create(CreateRequest {
                    object_type: ObjectType::SYMMETRIC_KEY,
                    template_attribute: TemplateAttribute::new(vec![
                        Attribute::CryptographicAlgorithm(CryptographicAlgorithm::AES),
                        Attribute::CryptographicLength(128),
                        name("Key1"),
                        Attribute::CryptographicUsageMask(CryptographicUsageMask::ENCRYPT),
                    ]),
                }),
            ),
        );
    }

    #[test]
    fn step1_create_response() {
        check_response(
            "1.0-usecase-4.1-create-response",
            &success(
                V,
                TS,
                ResponsePayload::Create(CreateResponse {
                    object_type: ObjectType::SYMMETRIC_KEY,
                    unique_identifier: UID.into(),
                    template_attribute: None,
                }),
            ),
        );
    }

    #[test]
    fn step2_get_attributes_state_pre_active() {
        check_request(
            "1.0-usecase-4.1-step2-get-attributes-request",
            &get_attributes(UID, &["State"]),
        );
        check_response(
            "1.0-usecase-4.1-step2-get-attributes-response",
            &attributes_response(TS, UID, vec![Attribute::State(State::PRE_ACTIVE)]),
        );
    }

    #[test]
    fn step3_activate() {
        check_request(
            "1.0-usecase-4.1-activate-request",
            &request(
                V,
                RequestPayload::Activate {
                    unique_identifier: Some(UID.into()),
                },
            ),
        );
        check_response(
            "1.0-usecase-4.1-activate-response",
            &success(
                V,
                TS,
                ResponsePayload::Activate {
                    unique_identifier: UID.into(),
                },
            ),
        );
    }

    #[test]
    fn step4_get_attributes_state_active() {
        check_request(
            "1.0-usecase-4.1-step4-get-attributes-request",
            &get_attributes(UID, &["State"]),
        );
        check_response(
            "1.0-usecase-4.1-step4-get-attributes-response",
            &attributes_response(TS, UID, vec![Attribute::State(State::ACTIVE)]),
        );
    }

    #[test]
    fn step5_locate_by_object_type_and_name() {
        let decoded = check_request(
            "1.0-usecase-4.1-locate-request",
            &request(
                V,
                RequestPayload::Locate(LocateRequest {
                    attributes: vec![
                        Attribute::ObjectType(ObjectType::SYMMETRIC_KEY),
                        name("Key1"),
                    ],
                    ..LocateRequest::default()
                }),
            ),
        );
        let RequestPayload::Locate(l) = &decoded.items[0].payload else {
            panic!("not a Locate payload");
        };
        assert_eq!(l.maximum_items, None);
        check_response(
            "1.0-usecase-4.1-locate-response",
            &success(
                V,
                TS,
                ResponsePayload::Locate(LocateResponse {
                    located_items: None,
                    unique_identifiers: vec![UID.into()],
                }),
            ),
        );
    }

    #[test]
    fn step6_get_returns_a_raw_aes_128_key() {
        check_request(
            "1.0-usecase-4.1-get-request",
            &request(
                V,
                RequestPayload::Get(GetRequest {
                    unique_identifier: Some(UID.into()),
                    ..GetRequest::default()
                }),
            ),
        );
        let key = hex::decode("EF7833AB15F5A1EE5874BC0D9BBC4BE7").unwrap();
        let decoded = check_response(
            "1.0-usecase-4.1-get-response",
            &success(
                V,
                TS,
                ResponsePayload::Get(GetResponse {
                    object_type: ObjectType::SYMMETRIC_KEY,
                    unique_identifier: UID.into(),
                    object: ManagedObject::SymmetricKey(SymmetricKey {
                        key_block: KeyBlock::raw_symmetric(
                            CryptographicAlgorithm::AES,
                            Zeroizing::new(key.clone()),
                        ),
                    }),
                }),
            ),
        );
        let Some(ResponsePayload::Get(g)) = &decoded.items[0].payload else {
            panic!("not a Get payload");
        };
        let ManagedObject::SymmetricKey(k) = &g.object else {
            panic!("not a Symmetric Key");
        };
        assert_eq!(k.key_block.key_format_type, KeyFormatType::RAW);
        assert_eq!(k.key_block.key_bytes(), Some(&key[..]));
        assert_eq!(k.key_block.cryptographic_length, Some(128));
        assert!(
            !format!("{decoded:?}").contains("EF7833")
                && !format!("{decoded:?}").contains("239, 120")
        );
    }

    #[test]
    fn step7_revoke_for_key_compromise() {
        check_request(
            "1.0-usecase-4.1-revoke-request",
            &request(
                V,
                RequestPayload::Revoke(RevokeRequest {
                    unique_identifier: Some(UID.into()),
                    revocation_reason: RevocationReason {
                        code: RevocationReasonCode::KEY_COMPROMISE,
                        message: None,
                    },
                    compromise_occurrence_date: Some(6),
                }),
            ),
        );
        check_response(
            "1.0-usecase-4.1-revoke-response",
            &success(
                V,
                TS,
                ResponsePayload::Revoke {
                    unique_identifier: UID.into(),
                },
            ),
        );
    }

    #[test]
    fn step8_get_attributes_state_compromised() {
        check_request(
            "1.0-usecase-4.1-step8-get-attributes-request",
            &get_attributes(UID, &["State"]),
        );
        check_response(
            "1.0-usecase-4.1-step8-get-attributes-response",
            &attributes_response(
                1_258_024_236,
                UID,
                vec![Attribute::State(State::COMPROMISED)],
            ),
        );
    }
}

/// 12.1: Query, first refused as too large, then answered.
mod usecase_12_1 {
    use super::*;

    const TS: i64 = 1_266_227_370;

    fn query(max: i32) -> RequestMessage {
        let mut r = request(
            V,
            RequestPayload::Query(QueryRequest {
                functions: vec![
                    QueryFunction::QUERY_OPERATIONS,
                    QueryFunction::QUERY_OBJECTS,
                ],
            }),
        );
        r.header.maximum_response_size = Some(max);
        r
    }

    #[test]
    fn step1_query_response_too_large_has_no_operation() {
        let decoded = check_request("1.0-usecase-12.1-step1-query-request", &query(256));
        assert_eq!(decoded.header.maximum_response_size, Some(256));
        let response = check_response(
            "1.0-usecase-12.1-step1-query-response",
            &ResponseMessage::new(
                V,
                TS,
                vec![ResponseBatchItem::failure(
                    None,
                    ResultReason::RESPONSE_TOO_LARGE,
                    "Response size: 568, Maximum Response Size indicated in request: 256",
                )],
            ),
        );
        assert_eq!(response.items[0].operation, None);
        assert_eq!(
            response.items[0].result_status,
            ResultStatus::OPERATION_FAILED
        );
        assert!(response.items[0].payload.is_none());
    }

    #[test]
    fn step2_query_lists_operations_and_objects() {
        check_request("1.0-usecase-12.1-step2-query-request", &query(2048));
        let operations = [
            1, 2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 24, 25, 26,
        ];
        check_response(
            "1.0-usecase-12.1-step2-query-response",
            &success(
                V,
                TS,
                ResponsePayload::Query(QueryResponse {
                    operations: operations.into_iter().map(Operation).collect(),
                    object_types: [1, 2, 3, 4, 6].into_iter().map(ObjectType).collect(),
                    ..QueryResponse::default()
                }),
            ),
        );
    }
}
