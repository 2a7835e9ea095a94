//! KMIP 1.1 Test Cases, one module per section.

use kmip::attribute::Attribute;
use kmip::message::*;
use kmip::tag::Tag;
use kmip::ttlv::Item;
use kmip::types::*;
use zeroize::Zeroizing;

use crate::{check_request, check_response, request, success};

const V: ProtocolVersion = ProtocolVersion::V1_1;

/// 3.1.1: create an AES-128 key, destroy it.
mod testcase_3_1_1 {
    use super::*;

    const UID: &str = "fb4b5b9c-6188-4c63-8142-fe9c328129fc";
    const TS: i64 = 1_335_514_341;

    #[test]
    fn create() {
        let decoded = check_request(
            "1.1-testcase-3.1.1-create-request",
            &request(
                V,
                RequestPayload::Create(CreateRequest {
                    object_type: ObjectType::SYMMETRIC_KEY,
                    template_attribute: TemplateAttribute::new(vec![
                        Attribute::CryptographicAlgorithm(CryptographicAlgorithm::AES),
                        Attribute::CryptographicLength(128),
                        Attribute::CryptographicUsageMask(
                            CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT,
                        ),
                    ]),
                }),
            ),
        );
        assert_eq!(decoded.header.protocol_version, ProtocolVersion::V1_1);
        check_response(
            "1.1-testcase-3.1.1-create-response",
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
    fn destroy() {
        check_request(
            "1.1-testcase-3.1.1-destroy-request",
            &request(
                V,
                RequestPayload::Destroy {
                    unique_identifier: Some(UID.into()),
                },
            ),
        );
        check_response(
            "1.1-testcase-3.1.1-destroy-response",
            &success(
                V,
                TS,
                ResponsePayload::Destroy {
                    unique_identifier: UID.into(),
                },
            ),
        );
    }
}

/// 3.1.3: locate a key by name, get it (a 3DES key).
mod testcase_3_1_3 {
    use super::*;

    const UID: &str = "49a1ca88-6bea-4fb2-b450-7e58802c3038";

    #[test]
    fn locate() {
        check_request(
            "1.1-testcase-3.1.3-locate-request",
            &request(
                V,
                RequestPayload::Locate(LocateRequest {
                    attributes: vec![
                        Attribute::ObjectType(ObjectType::SYMMETRIC_KEY),
                        Attribute::Name {
                            value: "Key1".into(),
                            name_type: NameType::UNINTERPRETED_TEXT_STRING,
                        },
                    ],
                    ..LocateRequest::default()
                }),
            ),
        );
        check_response(
            "1.1-testcase-3.1.3-locate-response",
            &success(
                V,
                1_335_514_342,
                ResponsePayload::Locate(LocateResponse {
                    located_items: None,
                    unique_identifiers: vec![UID.into()],
                }),
            ),
        );
    }

    #[test]
    fn get_returns_a_3des_key() {
        check_request(
            "1.1-testcase-3.1.3-get-request",
            &request(
                V,
                RequestPayload::Get(GetRequest {
                    unique_identifier: Some(UID.into()),
                    ..GetRequest::default()
                }),
            ),
        );
        let key = hex::decode("7367578051012A6D134A855E25C8CD5E4CA131455729D3C8").unwrap();
        let mut key_block =
            KeyBlock::raw_symmetric(CryptographicAlgorithm::TRIPLE_DES, Zeroizing::new(key));
        // 3DES: 24 bytes of material, 168 bits of key.
        key_block.cryptographic_length = Some(168);
        let decoded = check_response(
            "1.1-testcase-3.1.3-get-response",
            &success(
                V,
                1_335_514_343,
                ResponsePayload::Get(GetResponse {
                    object_type: ObjectType::SYMMETRIC_KEY,
                    unique_identifier: UID.into(),
                    object: ManagedObject::SymmetricKey(SymmetricKey { key_block }),
                }),
            ),
        );
        let Some(ResponsePayload::Get(g)) = &decoded.items[0].payload else {
            panic!("not a Get payload");
        };
        let ManagedObject::SymmetricKey(k) = &g.object else {
            panic!("not a Symmetric Key");
        };
        assert_eq!(
            k.key_block.cryptographic_algorithm,
            Some(CryptographicAlgorithm::TRIPLE_DES)
        );
        assert_eq!(k.key_block.key_bytes().map(<[u8]>::len), Some(24));
    }
}

/// 12.1: Query, with Maximum Response Size too small and then large enough.
mod testcase_12_1 {
    use super::*;

    const TS: i64 = 1_335_514_475;

    fn query(max: i32, functions: &[QueryFunction]) -> RequestMessage {
        let mut r = request(
            V,
            RequestPayload::Query(QueryRequest {
                functions: functions.to_vec(),
            }),
        );
        r.header.maximum_response_size = Some(max);
        r
    }

    #[test]
    fn t0_response_too_large() {
        check_request(
            "1.1-testcase-12.1-t0-query-request",
            &query(
                256,
                &[
                    QueryFunction::QUERY_OPERATIONS,
                    QueryFunction::QUERY_OBJECTS,
                ],
            ),
        );
        check_response(
            "1.1-testcase-12.1-t0-query-response",
            &ResponseMessage::new(
                V,
                TS,
                vec![ResponseBatchItem::failure(
                    None,
                    ResultReason::RESPONSE_TOO_LARGE,
                    "Response size: 648, Maximum Response Size indicated in request: 256",
                )],
            ),
        );
    }

    #[test]
    fn t1_operations_objects_and_server_information() {
        check_request(
            "1.1-testcase-12.1-t1-query-request",
            &query(
                2048,
                &[
                    QueryFunction::QUERY_OPERATIONS,
                    QueryFunction::QUERY_OBJECTS,
                    QueryFunction::QUERY_SERVER_INFORMATION,
                ],
            ),
        );
        let operations = [
            1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 24, 25, 26,
            29, 30,
        ];
        let decoded = check_response(
            "1.1-testcase-12.1-t1-query-response",
            &success(
                V,
                TS,
                ResponsePayload::Query(QueryResponse {
                    operations: operations.into_iter().map(Operation).collect(),
                    object_types: [1, 2, 3, 4, 6, 7].into_iter().map(ObjectType).collect(),
                    vendor_identification: Some(
                        "IBM test server, not-TKLM 2.0.1.1 KMIP 2.0.0.1".into(),
                    ),
                    server_information: Some(Item::structure(Tag::SERVER_INFORMATION, vec![])),
                    ..QueryResponse::default()
                }),
            ),
        );
        let Some(ResponsePayload::Query(q)) = &decoded.items[0].payload else {
            panic!("not a Query payload");
        };
        assert!(q.operations.contains(&Operation::DISCOVER_VERSIONS));
    }
}

/// 16.1: Discover Versions with no list, a matching list, and no match.
mod testcase_16_1 {
    use super::*;

    fn discover(versions: &[ProtocolVersion]) -> RequestMessage {
        request(
            V,
            RequestPayload::DiscoverVersions(DiscoverVersionsRequest {
                versions: versions.to_vec(),
            }),
        )
    }

    fn answer(ts: i64, versions: &[ProtocolVersion]) -> ResponseMessage {
        success(
            V,
            ts,
            ResponsePayload::DiscoverVersions(DiscoverVersionsResponse {
                versions: versions.to_vec(),
            }),
        )
    }

    #[test]
    fn t0_empty_request_payload_lists_all_versions() {
        check_request(
            "1.1-testcase-16.1-t0-discover-versions-request",
            &discover(&[]),
        );
        check_response(
            "1.1-testcase-16.1-t0-discover-versions-response",
            &answer(
                1_322_729_175,
                &[ProtocolVersion::V1_1, ProtocolVersion::V1_0],
            ),
        );
    }

    #[test]
    fn t1_version_1_0() {
        check_request(
            "1.1-testcase-16.1-t1-discover-versions-request",
            &discover(&[ProtocolVersion::V1_0]),
        );
        check_response(
            "1.1-testcase-16.1-t1-discover-versions-response",
            &answer(1_308_919_938, &[ProtocolVersion::V1_0]),
        );
    }

    #[test]
    fn t2_version_1_1() {
        check_request(
            "1.1-testcase-16.1-t2-discover-versions-request",
            &discover(&[ProtocolVersion::V1_1]),
        );
        check_response(
            "1.1-testcase-16.1-t2-discover-versions-response",
            &answer(1_322_729_175, &[ProtocolVersion::V1_1]),
        );
    }

    #[test]
    fn t3_unknown_version_gets_an_empty_payload() {
        check_request(
            "1.1-testcase-16.1-t3-discover-versions-request",
            &discover(&[ProtocolVersion::new(9, 31)]),
        );
        check_response(
            "1.1-testcase-16.1-t3-discover-versions-response",
            &answer(1_322_729_175, &[]),
        );
    }
}

/// 17.1: Get Attributes naming one attribute twice (an error), then once.
mod testcase_17_1 {
    use super::*;

    const UID: &str = "28c7bad1-bc9b-41df-b439-1ba04a6fd982";
    const TS: i64 = 1_335_514_484;

    fn get_attributes(names: &[&str]) -> RequestMessage {
        request(
            V,
            RequestPayload::GetAttributes(GetAttributesRequest {
                unique_identifier: Some(UID.into()),
                attribute_names: names.iter().map(|s| s.to_string()).collect(),
            }),
        )
    }

    #[test]
    fn t1_duplicate_name_fails_with_invalid_field_and_keeps_the_operation() {
        check_request(
            "1.1-testcase-17.1-t1-get-attributes-request",
            &get_attributes(&["Object Type", "Object Type"]),
        );
        let decoded = check_response(
            "1.1-testcase-17.1-t1-get-attributes-response",
            &ResponseMessage::new(
                V,
                TS,
                vec![ResponseBatchItem::failure(
                    Some(Operation::GET_ATTRIBUTES),
                    ResultReason::INVALID_FIELD,
                    "Attribute Name specified more than once: Object Type",
                )],
            ),
        );
        assert_eq!(
            decoded.items[0].result_reason,
            Some(ResultReason::INVALID_FIELD)
        );
    }

    #[test]
    fn t2_object_type() {
        check_request(
            "1.1-testcase-17.1-t2-get-attributes-request",
            &get_attributes(&["Object Type"]),
        );
        check_response(
            "1.1-testcase-17.1-t2-get-attributes-response",
            &success(
                V,
                TS,
                ResponsePayload::GetAttributes(GetAttributesResponse {
                    unique_identifier: UID.into(),
                    attributes: vec![Attribute::ObjectType(ObjectType::SYMMETRIC_KEY)],
                }),
            ),
        );
    }
}
