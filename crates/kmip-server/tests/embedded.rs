//! Our client against our embedded server, over real loopback sockets and mutual TLS:
//! every operation, the lifecycle rules, batches, ownership, persistence across a
//! restart, malformed input, failover, retries and the Indeterminate outcome.

use std::sync::Arc;
use std::time::Duration;

use kmip::attribute::Attribute;
use kmip::client::Client;
use kmip::error::Error;
use kmip::framing;
use kmip::message::{
    CreateRequest, GetAttributesRequest, GetRequest, KeyBlock, KeyMaterial, ManagedObject,
    RegisterRequest, RequestBatchItem, RequestMessage, RequestPayload, ResponseMessage,
    ResponsePayload, SymmetricKey, TemplateAttribute,
};
use kmip::tag::Tag;
use kmip::ttlv::{Item, Limits};
use kmip::types::{
    CryptographicAlgorithm, CryptographicUsageMask, KeyFormatType, LinkType, NameType, ObjectType,
    Operation, ProtocolVersion, ResultReason, ResultStatus, RevocationReasonCode, State,
};
use testkit::kmip::{Embedded, client_config, refused_address};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use zeroize::Zeroizing;

const AES_USAGE: CryptographicUsageMask =
    CryptographicUsageMask(CryptographicUsageMask::ENCRYPT.0 | CryptographicUsageMask::DECRYPT.0);

fn reason(e: &Error) -> Option<ResultReason> {
    e.result_reason()
}

fn find_state(attrs: &[Attribute]) -> Option<State> {
    attrs.iter().find_map(|a| match a {
        Attribute::State(s) => Some(*s),
        _ => None,
    })
}

async fn roundtrip(
    stream: &mut tokio_rustls::client::TlsStream<TcpStream>,
    bytes: &[u8],
) -> Option<ResponseMessage> {
    framing::write_message(stream, bytes).await.unwrap();
    let response = framing::read_message(stream, 1 << 20).await.ok()??;
    Some(ResponseMessage::decode(&response, &Limits::default()).unwrap())
}

fn create_item(name: &str) -> RequestBatchItem {
    RequestBatchItem::new(
        Operation::CREATE,
        RequestPayload::Create(CreateRequest {
            object_type: ObjectType::SYMMETRIC_KEY,
            template_attribute: TemplateAttribute::new(vec![
                Attribute::CryptographicAlgorithm(CryptographicAlgorithm::AES),
                Attribute::CryptographicLength(256),
                Attribute::CryptographicUsageMask(AES_USAGE),
                Attribute::Name {
                    value: name.into(),
                    name_type: NameType::UNINTERPRETED_TEXT_STRING,
                },
            ]),
        }),
    )
}

#[tokio::test]
async fn accepts_full_lifecycle_of_a_master_key() {
    let server = Embedded::start().await;
    let client = server.client();

    let versions = client.discover_versions().await.unwrap();
    assert_eq!(versions.first(), Some(&ProtocolVersion::V2_1));
    assert!(versions.contains(&ProtocolVersion::V2_0));
    assert!(versions.contains(&ProtocolVersion::V1_0));
    assert_eq!(
        client.negotiated_version().await,
        Some(ProtocolVersion::V2_1)
    );
    let query = client.query().await.unwrap();
    assert!(query.operations.contains(&Operation::CREATE));
    assert!(query.operations.contains(&Operation::DISCOVER_VERSIONS));
    assert!(query.vendor_identification.unwrap().contains("not an HSM"));

    let uid = client
        .create_symmetric_key(
            CryptographicAlgorithm::AES,
            256,
            AES_USAGE,
            Some("cluster-a"),
        )
        .await
        .unwrap();
    assert_eq!(client.get_state(&uid).await.unwrap(), State::PRE_ACTIVE);
    client.activate(&uid).await.unwrap();
    // Activating again is idempotent from the client's point of view.
    client.activate(&uid).await.unwrap();

    let key = client.get_symmetric_key(&uid).await.unwrap();
    assert_eq!(key.key.len(), 32);
    assert_eq!(key.algorithm, Some(CryptographicAlgorithm::AES));
    assert_eq!(key.length, Some(256));
    assert!(!format!("{key:?}").contains(&format!("{:?}", &key.key[..4])));

    let attrs = client
        .get_attributes(
            &uid,
            &["State", "Cryptographic Algorithm", "Cryptographic Length"],
        )
        .await
        .unwrap();
    assert_eq!(find_state(&attrs), Some(State::ACTIVE));
    assert!(attrs.contains(&Attribute::CryptographicAlgorithm(
        CryptographicAlgorithm::AES
    )));
    assert!(attrs.contains(&Attribute::CryptographicLength(256)));
    assert_eq!(attrs.len(), 3);

    assert_eq!(
        client.locate(Some("cluster-a"), None, None).await.unwrap(),
        vec![uid.clone()]
    );
    assert_eq!(
        client
            .locate(None, Some(ObjectType::SYMMETRIC_KEY), Some(State::ACTIVE))
            .await
            .unwrap(),
        vec![uid.clone()]
    );
    assert!(
        client
            .locate(Some("nope"), None, None)
            .await
            .unwrap()
            .is_empty()
    );

    // Server-side AES-GCM.
    let sealed = client
        .encrypt(&uid, b"data key bytes", Some(b"aad"))
        .await
        .unwrap();
    assert_eq!(sealed.iv.len(), 12);
    assert_eq!(sealed.tag.len(), 16);
    assert_ne!(sealed.data, b"data key bytes");
    let opened = client.decrypt(&uid, &sealed, Some(b"aad")).await.unwrap();
    assert_eq!(opened.as_slice(), b"data key bytes");
    let err = client
        .decrypt(&uid, &sealed, Some(b"other"))
        .await
        .unwrap_err();
    assert_eq!(
        reason(&err),
        Some(ResultReason::CRYPTOGRAPHIC_FAILURE),
        "{err}"
    );

    // An Active key cannot be destroyed.
    let err = client.destroy(&uid).await.unwrap_err();
    assert_eq!(
        reason(&err),
        Some(ResultReason::WRONG_KEY_LIFECYCLE_STATE),
        "{err}"
    );
    assert!(err.to_string().contains("revoke it first"), "{err}");

    client
        .revoke(
            &uid,
            RevocationReasonCode::CESSATION_OF_OPERATION,
            Some("rotated"),
        )
        .await
        .unwrap();
    assert_eq!(client.get_state(&uid).await.unwrap(), State::DEACTIVATED);
    // Deactivated keys still decrypt, no longer encrypt.
    client.decrypt(&uid, &sealed, Some(b"aad")).await.unwrap();
    assert!(client.encrypt(&uid, b"x", None).await.is_err());

    client.destroy(&uid).await.unwrap();
    let err = client.get_symmetric_key(&uid).await.unwrap_err();
    match &err {
        Error::ServerReported {
            server: s,
            operation,
            reason,
            message,
        } => {
            assert_eq!(s, &server.server());
            assert_eq!(*operation, Operation::GET);
            assert_eq!(*reason, ResultReason::ITEM_NOT_FOUND);
            assert!(message.as_deref().unwrap_or("").contains(&uid));
        }
        other => panic!("expected ServerReported, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("Get") && text.contains("ItemNotFound"),
        "{text}"
    );
    // Metadata survives destruction.
    let attrs = client.get_attributes(&uid, &[]).await.unwrap();
    assert_eq!(find_state(&attrs), Some(State::DESTROYED));
    assert!(attrs.iter().any(|a| matches!(a, Attribute::DestroyDate(_))));
    assert!(attrs.iter().any(|a| matches!(
        a,
        Attribute::RevocationReason(r) if r.code == RevocationReasonCode::CESSATION_OF_OPERATION
    )));

    // A key never activated (a key change stopped between Create and Activate): a
    // Revoke for a reason other than compromise is refused, a Destroy accepted.
    let orphan = client
        .create_symmetric_key(CryptographicAlgorithm::AES, 256, AES_USAGE, Some("orphan"))
        .await
        .unwrap();
    let refused = client
        .revoke(&orphan, RevocationReasonCode::CESSATION_OF_OPERATION, None)
        .await
        .unwrap_err();
    assert_eq!(
        reason(&refused),
        Some(ResultReason::WRONG_KEY_LIFECYCLE_STATE),
        "{refused}"
    );
    assert_eq!(client.get_state(&orphan).await.unwrap(), State::PRE_ACTIVE);
    client.destroy(&orphan).await.unwrap();
    assert_eq!(client.get_state(&orphan).await.unwrap(), State::DESTROYED);
}

#[tokio::test]
async fn accepts_every_protocol_version_with_batches_in_order() {
    let server = Embedded::start().await;
    let mut stream = server.raw_connection().await;
    for version in [
        ProtocolVersion::V1_0,
        ProtocolVersion::V1_1,
        ProtocolVersion::V1_2,
        ProtocolVersion::V1_3,
        ProtocolVersion::V1_4,
        ProtocolVersion::V2_0,
        ProtocolVersion::V2_1,
    ] {
        // Create, then Activate and Get through the ID Placeholder.
        let mut items = vec![
            create_item(&format!("batch-{version}")),
            RequestBatchItem::new(
                Operation::ACTIVATE,
                RequestPayload::Activate {
                    unique_identifier: None,
                },
            ),
            RequestBatchItem::new(Operation::GET, RequestPayload::Get(GetRequest::default())),
        ];
        for (i, item) in items.iter_mut().enumerate() {
            item.unique_batch_item_id = Some(vec![i as u8 + 1]);
        }
        let request = RequestMessage::new(version, items);
        let before = time::OffsetDateTime::now_utc().unix_timestamp();
        let response = roundtrip(&mut stream, &request.encode()).await.unwrap();
        assert_eq!(response.header.protocol_version, version);
        assert!(response.header.time_stamp >= before - 1);
        let ops: Vec<_> = response.items.iter().map(|i| i.operation).collect();
        assert_eq!(
            ops,
            vec![
                Some(Operation::CREATE),
                Some(Operation::ACTIVATE),
                Some(Operation::GET)
            ],
            "{version}"
        );
        for (i, item) in response.items.iter().enumerate() {
            assert_eq!(
                item.result_status,
                ResultStatus::SUCCESS,
                "{version}: {item:?}"
            );
            assert_eq!(item.unique_batch_item_id, Some(vec![i as u8 + 1]));
        }
        let Some(ResponsePayload::Get(get)) = &response.items[2].payload else {
            panic!("no Get payload")
        };
        let ManagedObject::SymmetricKey(SymmetricKey { key_block }) = &get.object else {
            panic!("not a symmetric key")
        };
        // What mongod expects: Raw, a Byte String of key material, algorithm and length.
        assert_eq!(key_block.key_format_type, KeyFormatType::RAW);
        assert!(matches!(&key_block.key_material, KeyMaterial::Raw(k) if k.len() == 32));
        assert_eq!(
            key_block.cryptographic_algorithm,
            Some(CryptographicAlgorithm::AES)
        );
        assert_eq!(key_block.cryptographic_length, Some(256));
    }
}

#[tokio::test]
async fn rejects_rest_of_batch_after_failure_unless_continue() {
    let server = Embedded::start().await;
    let mut stream = server.raw_connection().await;
    let failing = RequestBatchItem::new(
        Operation::GET,
        RequestPayload::Get(GetRequest {
            unique_identifier: Some("missing".into()),
            ..GetRequest::default()
        }),
    );
    let items = vec![create_item("stop"), failing.clone(), create_item("stop-2")];
    let response = roundtrip(
        &mut stream,
        &RequestMessage::new(ProtocolVersion::V1_4, items.clone()).encode(),
    )
    .await
    .unwrap();
    assert_eq!(response.items.len(), 2);
    assert_eq!(
        response.items[1].result_reason,
        Some(ResultReason::ITEM_NOT_FOUND)
    );
    assert!(response.items[1].result_message.is_some());

    // Batch Error Continuation Option (KMIP 1.4 section 9.1.3.2.30): Continue is 1;
    // Stop (2) and Undo (3, which also undoes the items before: see
    // undoes_a_batch_with_a_failed_item_and_commits_one_without) end the batch.
    for (option, answered) in [(1, 3), (2, 2), (3, 2)] {
        let mut request = RequestMessage::new(ProtocolVersion::V1_4, items.clone());
        request.header.batch_error_continuation_option = Some(option);
        let response = roundtrip(&mut stream, &request.encode()).await.unwrap();
        assert_eq!(response.items.len(), answered, "option {option}");
    }
    let mut request = RequestMessage::new(ProtocolVersion::V1_4, items);
    request.header.batch_error_continuation_option = Some(1);
    let response = roundtrip(&mut stream, &request.encode()).await.unwrap();
    assert_eq!(response.items[2].result_status, ResultStatus::SUCCESS);
}

#[tokio::test]
async fn rejects_unknown_operation_with_operation_not_supported() {
    let server = Embedded::start().await;
    let client = server.client();
    let payload = Item::structure(
        Tag::REQUEST_PAYLOAD,
        vec![Item::text(Tag::UNIQUE_IDENTIFIER, "1")],
    );
    let request = RequestMessage::new(
        ProtocolVersion::V1_2,
        vec![RequestBatchItem::new(
            Operation::ARCHIVE,
            RequestPayload::Other(payload),
        )],
    );
    let response = client.send(request).await.unwrap();
    let item = &response.items[0];
    assert_eq!(item.result_status, ResultStatus::OPERATION_FAILED);
    assert_eq!(
        item.result_reason,
        Some(ResultReason::OPERATION_NOT_SUPPORTED)
    );
    assert!(item.result_message.as_deref().unwrap().contains("Archive"));
}

#[tokio::test]
async fn rejects_malformed_request_with_invalid_message_and_keeps_connection() {
    let server = Embedded::start().await;
    let mut stream = server.raw_connection().await;
    // Well-framed TTLV that is not a Request Message.
    let bogus = kmip::ttlv::encode(&Item::structure(
        Tag::REQUEST_MESSAGE,
        vec![Item::integer(Tag::BATCH_COUNT, 1)],
    ));
    let response = roundtrip(&mut stream, &bogus).await.unwrap();
    assert_eq!(
        response.items[0].result_reason,
        Some(ResultReason::INVALID_MESSAGE)
    );
    assert!(
        response.items[0]
            .result_message
            .as_deref()
            .unwrap()
            .contains("RequestHeader")
    );
    // The connection still serves a valid request.
    let ok = RequestMessage::new(ProtocolVersion::V1_2, vec![create_item("after-bogus")]);
    let response = roundtrip(&mut stream, &ok.encode()).await.unwrap();
    assert_eq!(response.items[0].result_status, ResultStatus::SUCCESS);
}

#[tokio::test]
async fn rejects_oversized_message_before_reading_it() {
    let server = Embedded::start().await;
    let mut stream = server.raw_connection().await;
    // A header announcing 64 MiB, and nothing after it.
    let mut header = vec![0x42, 0x00, 0x78, 0x01];
    header.extend_from_slice(&(64u32 << 20).to_be_bytes());
    stream.write_all(&header).await.unwrap();
    stream.flush().await.unwrap();
    let response = framing::read_message(&mut stream, 1 << 20)
        .await
        .unwrap()
        .unwrap();
    let response = ResponseMessage::decode(&response, &Limits::default()).unwrap();
    assert_eq!(
        response.items[0].result_reason,
        Some(ResultReason::INVALID_MESSAGE)
    );
    assert!(
        response.items[0]
            .result_message
            .as_deref()
            .unwrap()
            .contains("exceeds")
    );
    // Then the server closes the connection.
    assert!(matches!(
        framing::read_message(&mut stream, 1 << 20).await,
        Ok(None) | Err(_)
    ));
}

#[tokio::test]
async fn accepts_rekey_with_links_and_names_moved() {
    let server = Embedded::start().await;
    let client = server.client();
    let old = client
        .create_symmetric_key(
            CryptographicAlgorithm::AES,
            256,
            AES_USAGE,
            Some("rotating"),
        )
        .await
        .unwrap();
    client.activate(&old).await.unwrap();
    let new = client.rekey(&old).await.unwrap();
    assert_ne!(old, new);
    assert_eq!(client.get_state(&new).await.unwrap(), State::ACTIVE);
    assert_ne!(
        client.get_symmetric_key(&old).await.unwrap().key,
        client.get_symmetric_key(&new).await.unwrap().key
    );
    let old_attrs = client.get_attributes(&old, &["Link"]).await.unwrap();
    assert_eq!(
        old_attrs,
        vec![Attribute::Link {
            link_type: LinkType::REPLACEMENT_OBJECT_LINK,
            linked_object_id: new.clone()
        }]
    );
    let new_attrs = client.get_attributes(&new, &["Link"]).await.unwrap();
    assert_eq!(
        new_attrs,
        vec![Attribute::Link {
            link_type: LinkType::REPLACED_OBJECT_LINK,
            linked_object_id: old.clone()
        }]
    );
    assert_eq!(
        client.locate(Some("rotating"), None, None).await.unwrap(),
        vec![new]
    );
}

#[tokio::test]
async fn accepts_register_and_transparent_get() {
    let server = Embedded::start().await;
    let client = server.client();
    let material = Zeroizing::new((0u8..32).collect::<Vec<u8>>());
    let request = RequestMessage::new(
        ProtocolVersion::V1_4,
        vec![
            RequestBatchItem::new(
                Operation::REGISTER,
                RequestPayload::Register(RegisterRequest {
                    object_type: ObjectType::SYMMETRIC_KEY,
                    template_attribute: TemplateAttribute::new(vec![
                        Attribute::CryptographicUsageMask(AES_USAGE),
                    ]),
                    object: ManagedObject::SymmetricKey(SymmetricKey {
                        key_block: KeyBlock::raw_symmetric(
                            CryptographicAlgorithm::AES,
                            material.clone(),
                        ),
                    }),
                }),
            ),
            RequestBatchItem::new(
                Operation::GET,
                RequestPayload::Get(GetRequest {
                    key_format_type: Some(KeyFormatType::TRANSPARENT_SYMMETRIC_KEY),
                    ..GetRequest::default()
                }),
            ),
        ],
    );
    let response = client.send(request).await.unwrap();
    let Some(ResponsePayload::Get(get)) = &response.items[1].payload else {
        panic!("{response:?}")
    };
    let ManagedObject::SymmetricKey(SymmetricKey { key_block }) = &get.object else {
        panic!("not a symmetric key")
    };
    assert_eq!(
        key_block.key_format_type,
        KeyFormatType::TRANSPARENT_SYMMETRIC_KEY
    );
    assert_eq!(
        key_block.key_material,
        KeyMaterial::TransparentSymmetric(material.clone())
    );
    let uid = &get.unique_identifier;
    assert_eq!(client.get_symmetric_key(uid).await.unwrap().key, material);
    let list = client
        .send(RequestMessage::new(
            ProtocolVersion::V1_4,
            vec![RequestBatchItem::new(
                Operation::GET_ATTRIBUTE_LIST,
                RequestPayload::GetAttributeList(kmip::message::GetAttributeListRequest {
                    unique_identifier: Some(uid.clone()),
                }),
            )],
        ))
        .await
        .unwrap();
    let Some(ResponsePayload::GetAttributeList(list)) = &list.items[0].payload else {
        panic!("{list:?}")
    };
    for name in [
        "Unique Identifier",
        "State",
        "Cryptographic Algorithm",
        "Initial Date",
    ] {
        assert!(list.attribute_names.iter().any(|n| n == name), "{name}");
    }
}

#[tokio::test]
async fn rejects_access_to_another_owners_objects() {
    let server = Embedded::start().await;
    let alice = server.client();
    let uid = alice
        .create_symmetric_key(
            CryptographicAlgorithm::AES,
            256,
            AES_USAGE,
            Some("alice-key"),
        )
        .await
        .unwrap();
    // Bob: same CA, another Common Name.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("bob.pem"), dir.path().join("bob-key.pem"));
    kmip_server::pki::issue_client_certificate(&server.data_dir.join("pki"), "bob", &cert, &key)
        .unwrap();
    let mut config = server.client_config();
    config.client_cert_file = cert;
    config.client_key_file = key;
    let bob = Client::new(config).unwrap();
    let err = bob.get_symmetric_key(&uid).await.unwrap_err();
    assert_eq!(reason(&err), Some(ResultReason::ITEM_NOT_FOUND), "{err}");
    assert!(
        bob.locate(Some("alice-key"), None, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(bob.destroy(&uid).await.is_err());
    // Alice still has it.
    assert_eq!(alice.get_symmetric_key(&uid).await.unwrap().key.len(), 32);
}

#[tokio::test]
async fn accepts_keys_after_server_restart() {
    let mut first = Embedded::start().await;
    let dir = first.keep_dir().unwrap();
    let client = first.client();
    let uid = client
        .create_symmetric_key(CryptographicAlgorithm::AES, 256, AES_USAGE, Some("durable"))
        .await
        .unwrap();
    client.activate(&uid).await.unwrap();
    let key = client.get_symmetric_key(&uid).await.unwrap().key;
    let addr = first.server();
    first.stop().await;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let store = dir.path().join(kmip_server::store::FILE_NAME);
        let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    let second = Embedded::start_in(dir.path(), &addr).await;
    // The same client reconnects (its pooled connection died with the first server).
    assert_eq!(client.get_symmetric_key(&uid).await.unwrap().key, key);
    assert_eq!(client.get_state(&uid).await.unwrap(), State::ACTIVE);
    drop(second);
}

#[tokio::test]
async fn accepts_failover_when_first_server_refuses() {
    let server = Embedded::start().await;
    let config = client_config(&server.pki, vec![refused_address(), server.server()]);
    let client = Client::new(config).unwrap();
    // Create is never retried, but a server that refused the connection got nothing:
    // failing over to the next one is safe.
    let uid = client
        .create_symmetric_key(
            CryptographicAlgorithm::AES,
            256,
            AES_USAGE,
            Some("failover"),
        )
        .await
        .unwrap();
    client.activate(&uid).await.unwrap();
    assert_eq!(client.get_symmetric_key(&uid).await.unwrap().key.len(), 32);
}

#[tokio::test]
async fn rejects_when_every_server_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let pki = kmip_server::pki::ensure_pki(dir.path()).unwrap();
    let servers = vec![refused_address(), refused_address()];
    let client = Client::new(client_config(&pki, servers.clone())).unwrap();
    let err = client.get_symmetric_key("x").await.unwrap_err();
    match &err {
        Error::AllServersFailed {
            operation,
            attempts,
        } => {
            assert_eq!(*operation, Operation::GET);
            // Two servers, max_retries = 1: two rounds.
            assert_eq!(attempts.len(), 4);
            assert_eq!(attempts[0].0, servers[0]);
            assert_eq!(attempts[1].0, servers[1]);
            assert!(
                attempts[0].1.contains("cannot connect"),
                "{}",
                attempts[0].1
            );
        }
        other => panic!("expected AllServersFailed, got {other:?}"),
    }
    assert!(err.is_transient());
    assert!(err.to_string().contains(&servers[1]));
}

/// A server that negotiates (answers Discover Versions) and then drops the connection
/// on any other request: the one fault that cannot be caused with a real server, a
/// connection lost after the request was sent.
async fn start_black_hole(server: &Embedded) -> String {
    let tls = kmip::tls::server_config(
        &server.pki.ca_cert,
        &server.pki.server_cert,
        &server.pki.server_key,
    )
    .unwrap();
    let store = kmip_server::KeyStore::open_in(&server.data_dir.join("black-hole"))
        .await
        .unwrap();
    let handler = Arc::new(kmip_server::ops::Handler::new(store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                while let Ok(Some(message)) = framing::read_message(&mut tls, 1 << 20).await {
                    let request = RequestMessage::decode(&message, &Limits::default()).unwrap();
                    if request.items[0].operation != Operation::DISCOVER_VERSIONS {
                        return; // drop the connection, unanswered
                    }
                    let response = handler.handle(&message, "hole", &Limits::default()).await;
                    framing::write_message(&mut tls, &response).await.unwrap();
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn rejects_create_lost_in_transit_as_indeterminate_without_retry() {
    let server = Embedded::start().await;
    let hole = start_black_hole(&server).await;
    // The good server comes second: an Indeterminate Create must NOT fail over to it.
    let client = Client::new(client_config(
        &server.pki,
        vec![hole.clone(), server.server()],
    ))
    .unwrap();
    let err = client
        .create_symmetric_key(CryptographicAlgorithm::AES, 256, AES_USAGE, Some("lost"))
        .await
        .unwrap_err();
    match &err {
        Error::Indeterminate {
            server: s,
            operation,
            ..
        } => {
            assert_eq!(s, &hole);
            assert_eq!(*operation, Operation::CREATE);
        }
        other => panic!("expected Indeterminate, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert!(err.to_string().contains("Locate"), "{err}");
    let good = server.client();
    assert!(
        good.locate(Some("lost"), None, None)
            .await
            .unwrap()
            .is_empty()
    );

    // A Get, safe to repeat, fails over to the good server instead.
    let uid = good
        .create_symmetric_key(CryptographicAlgorithm::AES, 256, AES_USAGE, None)
        .await
        .unwrap();
    assert_eq!(client.get_symmetric_key(&uid).await.unwrap().key.len(), 32);
}

#[tokio::test]
async fn rejects_repeatable_operation_after_bounded_retries() {
    let server = Embedded::start().await;
    let hole = start_black_hole(&server).await;
    let mut config = client_config(&server.pki, vec![hole.clone()]);
    config.max_retries = 2;
    config.io_timeout = Duration::from_secs(5);
    let client = Client::new(config).unwrap();
    let err = client.get_state("anything").await.unwrap_err();
    match &err {
        Error::AllServersFailed { attempts, .. } => {
            assert_eq!(attempts.len(), 3, "{attempts:?}");
            assert!(attempts.iter().all(|(s, _)| s == &hole));
        }
        other => panic!("expected AllServersFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn rejects_connections_beyond_the_limit_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = kmip_server::pki::ensure_pki(dir.path()).unwrap();
    let tls = kmip::tls::server_config(&pki.ca_cert, &pki.server_cert, &pki.server_key).unwrap();
    let store = kmip_server::KeyStore::open_in(dir.path()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = kmip_server::ServerOptions {
        max_connections: 1,
        ..kmip_server::ServerOptions::default()
    };
    let task = tokio::spawn(kmip_server::serve_with(
        listener,
        tls,
        store,
        options,
        async {
            let _ = stopped.await;
        },
    ));

    let first = Client::new(client_config(&pki, vec![addr.clone()])).unwrap();
    first.query().await.unwrap(); // holds the only slot while its connection is open
    let mut config = client_config(&pki, vec![addr.clone()]);
    config.connect_timeout = Duration::from_millis(500);
    config.max_retries = 0;
    let second = Client::new(config).unwrap();
    let err = second.query().await.unwrap_err();
    let Error::AllServersFailed { attempts, .. } = &err else {
        panic!("expected AllServersFailed, got {err:?}")
    };
    assert!(attempts[0].1.contains("TLS handshake"), "{}", attempts[0].1);

    first.disconnect().await;
    // The slot is free again (the server notices the close and releases it).
    let mut answered = false;
    for _ in 0..50 {
        if second.query().await.is_ok() {
            answered = true;
            break;
        }
    }
    assert!(
        answered,
        "second client never served after the first closed"
    );

    // Shutdown returns although a client still holds an idle connection.
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// A TCP relay to `target` on loopback: where it listens, how many connections it
/// accepted, and the most it had open at once.
async fn counting_relay(
    target: std::net::SocketAddr,
) -> (
    String,
    Arc<std::sync::atomic::AtomicUsize>,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let (a, m) = (accepted.clone(), most.clone());
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let now = open.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            let open = open.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, accepted, most)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_of_one_client_share_a_bounded_pool_of_connections() {
    use std::sync::atomic::Ordering;
    let server = Embedded::start().await;
    let (relay, accepted, most) = counting_relay(server.addr).await;
    let mut config = client_config(&server.pki, vec![relay]);
    config.max_connections = 4;
    let client = Client::new(config).unwrap();
    let uid = client
        .create_symmetric_key(CryptographicAlgorithm::AES, 256, AES_USAGE, Some("pool"))
        .await
        .unwrap();
    client.activate(&uid).await.unwrap();
    let key = client.get_symmetric_key(&uid).await.unwrap().key;
    // One request at a time: one connection, reused.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // 32 at once: the four-connection bound holds, and they do run side by side (the
    // first four each open a connection before any answer comes back).
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (client, uid) = (client.clone(), uid.clone());
        tasks.spawn(async move { client.get_symmetric_key(&uid).await });
    }
    while let Some(got) = tasks.join_next().await {
        assert_eq!(got.unwrap().unwrap().key, key);
    }
    let opened = accepted.load(Ordering::SeqCst);
    assert!((2..=4).contains(&opened), "connections opened: {opened}");
    assert!(most.load(Ordering::SeqCst) <= 4);
    // Every connection went back to the pool, and is reused from there.
    assert_eq!(client.idle_connections(), vec![opened]);
    assert_eq!(client.get_state(&uid).await.unwrap(), State::ACTIVE);
    assert_eq!(accepted.load(Ordering::SeqCst), opened);
    // `disconnect` empties the pool.
    client.disconnect().await;
    assert_eq!(client.idle_connections(), vec![0]);
}

#[tokio::test]
async fn asks_the_next_server_for_an_object_the_first_does_not_have() {
    // Two servers that do not share their keys (as Cosmian KMS beside the embedded one),
    // on one PKI: the second starts on a copy of the first's certificates.
    let first = Embedded::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("pki")).unwrap();
    for entry in std::fs::read_dir(first.data_dir.join("pki")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join("pki").join(entry.file_name())).unwrap();
    }
    let mut second = Embedded::start_in(dir.path(), "127.0.0.1:0").await;
    let only_second = Client::new(client_config(&first.pki, vec![second.server()])).unwrap();
    let uid = only_second
        .create_symmetric_key(CryptographicAlgorithm::AES, 256, AES_USAGE, Some("second"))
        .await
        .unwrap();
    only_second.activate(&uid).await.unwrap();

    let both = Client::new(client_config(
        &first.pki,
        vec![first.server(), second.server()],
    ))
    .unwrap();
    // The first answers Item Not Found; the second has it.
    assert_eq!(both.get_symmetric_key(&uid).await.unwrap().key.len(), 32);
    assert_eq!(both.get_state(&uid).await.unwrap(), State::ACTIVE);
    // Neither has it: that is the answer.
    let err = both.get_symmetric_key("no-such-key").await.unwrap_err();
    assert_eq!(reason(&err), Some(ResultReason::ITEM_NOT_FOUND), "{err}");
    // The second cannot be reached: it may hold the key, so this is an outage.
    second.stop().await;
    let err = both.get_symmetric_key(&uid).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("has no such object"), "{err}");
}

/// A Modify Attribute of the Activation Date (1.x Attribute or 2.0 New Attribute).
fn modify_activation_date(version: ProtocolVersion, uid: &str, date: i64) -> RequestMessage {
    let attribute = Attribute::ActivationDate(date);
    let value = if version.uses_v2_attributes() {
        Item::structure(Tag::NEW_ATTRIBUTE, vec![attribute.to_v2()])
    } else {
        attribute.to_v1()
    };
    let payload = Item::structure(
        Tag::REQUEST_PAYLOAD,
        vec![Item::text(Tag::UNIQUE_IDENTIFIER, uid), value],
    );
    RequestMessage::new(
        version,
        vec![RequestBatchItem::new(
            Operation::MODIFY_ATTRIBUTE,
            RequestPayload::Other(payload),
        )],
    )
}

#[tokio::test]
async fn modifies_the_activation_date_only_while_pre_active() {
    let server = Embedded::start().await;
    let client = server.client();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for version in [ProtocolVersion::V1_4, ProtocolVersion::V2_0] {
        let uid = client
            .create_symmetric_key(CryptographicAlgorithm::AES, 256, AES_USAGE, None)
            .await
            .unwrap();
        // A future date: recorded, still Pre-Active.
        let response = client
            .send(modify_activation_date(version, &uid, now + 3600))
            .await
            .unwrap();
        assert_eq!(response.items[0].result_status, ResultStatus::SUCCESS);
        let attrs = client.get_attributes(&uid, &[]).await.unwrap();
        assert_eq!(find_state(&attrs), Some(State::PRE_ACTIVE));
        assert!(attrs.contains(&Attribute::ActivationDate(now + 3600)));
        // A date not in the future activates it, as at Create.
        client
            .send(modify_activation_date(version, &uid, now - 1))
            .await
            .unwrap();
        assert_eq!(client.get_state(&uid).await.unwrap(), State::ACTIVE);
        // Once Active the date is fixed.
        let response = client
            .send(modify_activation_date(version, &uid, now))
            .await
            .unwrap();
        let expected = if version.uses_v2_attributes() {
            ResultReason::WRONG_KEY_LIFECYCLE_STATE
        } else {
            ResultReason::PERMISSION_DENIED
        };
        assert_eq!(response.items[0].result_reason, Some(expected));
    }
}

#[tokio::test]
async fn the_pool_keeps_no_more_idle_connections_than_its_size() {
    let server = Embedded::start().await;
    let mut config = server.client_config();
    config.max_connections = 1;
    let client = Client::new(config).unwrap();
    let uid = client
        .create_symmetric_key(CryptographicAlgorithm::AES, 256, AES_USAGE, Some("bound"))
        .await
        .unwrap();
    assert_eq!(client.idle_connections(), vec![1]);
    // Idle past the 5 s after which a Create will not use a connection (the server may
    // have dropped it): the Create opens another beside it, and the pool then keeps one.
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    client
        .create_symmetric_key(CryptographicAlgorithm::AES, 256, AES_USAGE, Some("bound-2"))
        .await
        .unwrap();
    assert_eq!(client.idle_connections(), vec![1]);
    assert_eq!(client.get_state(&uid).await.unwrap(), State::PRE_ACTIVE);
}

/// An Add, Modify or Delete Attribute request carrying `field` (an `Attribute`, a 2.0
/// `New Attribute`, an `Attribute Name`...) after the Unique Identifier.
fn attribute_request(
    version: ProtocolVersion,
    operation: Operation,
    uid: &str,
    field: Item,
) -> RequestMessage {
    let payload = Item::structure(
        Tag::REQUEST_PAYLOAD,
        vec![Item::text(Tag::UNIQUE_IDENTIFIER, uid), field],
    );
    RequestMessage::new(
        version,
        vec![RequestBatchItem::new(
            operation,
            RequestPayload::Other(payload),
        )],
    )
}

fn value_of<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a Item> {
    attrs.iter().find_map(|a| match a {
        Attribute::Other { name: n, value } if n == name => Some(value),
        _ => None,
    })
}

/// A client's custom attributes (1.x `x-...`, 2.x Vendor Identification `x`) are added,
/// modified and deleted, one instance per name; the server's own attributes and other
/// vendors' are not the client's to add or delete. Fresh is True until the first Get.
#[tokio::test]
async fn keeps_custom_attributes_and_fresh() {
    let server = Embedded::start().await;
    let client = server.client();
    for (version, name) in [
        (ProtocolVersion::V1_4, "x-purpose"),
        (ProtocolVersion::V2_0, "x:purpose"),
    ] {
        let send = |operation, uid: &str, field| {
            client.send(attribute_request(version, operation, uid, field))
        };
        let as_field = |a: &Attribute| {
            if version.uses_v2_attributes() {
                Item::structure(Tag::NEW_ATTRIBUTE, vec![a.to_v2()])
            } else {
                a.to_v1()
            }
        };
        let custom = |text: &str| Attribute::Other {
            name: name.into(),
            value: Item::text(Tag::ATTRIBUTE_VALUE, text),
        };
        let uid = client
            .create_symmetric_key(CryptographicAlgorithm::AES, 256, AES_USAGE, None)
            .await
            .unwrap();
        let attrs = client.get_attributes(&uid, &[]).await.unwrap();
        assert_eq!(
            value_of(&attrs, "Fresh").and_then(Item::as_bool),
            Some(true)
        );
        client.get_symmetric_key(&uid).await.unwrap();
        let attrs = client.get_attributes(&uid, &[]).await.unwrap();
        assert_eq!(
            value_of(&attrs, "Fresh").and_then(Item::as_bool),
            Some(false)
        );

        let added = send(Operation::ADD_ATTRIBUTE, &uid, as_field(&custom("backup")))
            .await
            .unwrap();
        assert_eq!(added.items[0].result_status, ResultStatus::SUCCESS);
        let attrs = client.get_attributes(&uid, &[]).await.unwrap();
        assert!(attrs.contains(&custom("backup")), "{attrs:?}");
        let again = send(Operation::ADD_ATTRIBUTE, &uid, as_field(&custom("other")))
            .await
            .unwrap();
        assert_eq!(
            again.items[0].result_reason,
            Some(ResultReason::INVALID_FIELD)
        );

        send(
            Operation::MODIFY_ATTRIBUTE,
            &uid,
            as_field(&custom("restore")),
        )
        .await
        .unwrap();
        let attrs = client.get_attributes(&uid, &[]).await.unwrap();
        assert!(attrs.contains(&custom("restore")), "{attrs:?}");

        let reference = if version.uses_v2_attributes() {
            Item::structure(
                Tag::ATTRIBUTE_REFERENCE,
                vec![
                    Item::text(Tag::VENDOR_IDENTIFICATION, "x"),
                    Item::text(Tag::ATTRIBUTE_NAME, "purpose"),
                ],
            )
        } else {
            Item::text(Tag::ATTRIBUTE_NAME, name)
        };
        let deleted = send(Operation::DELETE_ATTRIBUTE, &uid, reference.clone())
            .await
            .unwrap();
        assert_eq!(deleted.items[0].result_status, ResultStatus::SUCCESS);
        let attrs = client.get_attributes(&uid, &[]).await.unwrap();
        assert!(value_of(&attrs, name).is_none(), "{attrs:?}");
        let missing = send(Operation::DELETE_ATTRIBUTE, &uid, reference)
            .await
            .unwrap();
        let expected = if version.uses_v2_attributes() {
            ResultReason::ATTRIBUTE_NOT_FOUND
        } else {
            ResultReason::ITEM_NOT_FOUND
        };
        assert_eq!(missing.items[0].result_reason, Some(expected));

        // Not the client's: a server's (y-) attribute, a standard one.
        let server_own = Attribute::Other {
            name: "y-mark".into(),
            value: Item::text(Tag::ATTRIBUTE_VALUE, "v"),
        };
        let refused = send(Operation::ADD_ATTRIBUTE, &uid, as_field(&server_own))
            .await
            .unwrap();
        assert_eq!(
            refused.items[0].result_reason,
            Some(ResultReason::PERMISSION_DENIED)
        );
        if !version.uses_v2_attributes() {
            let refused = send(
                Operation::DELETE_ATTRIBUTE,
                &uid,
                Item::text(Tag::ATTRIBUTE_NAME, "State"),
            )
            .await
            .unwrap();
            assert_eq!(
                refused.items[0].result_reason,
                Some(ResultReason::PERMISSION_DENIED)
            );
        }
    }
}

/// A request batch item whose payload the server reads as TTLV (`fields` in order).
fn raw_item(operation: Operation, fields: Vec<Item>) -> RequestBatchItem {
    RequestBatchItem::new(
        operation,
        RequestPayload::Other(Item::structure(Tag::REQUEST_PAYLOAD, fields)),
    )
}

fn empty_response_payload() -> Option<ResponsePayload> {
    Some(ResponsePayload::Other(Item::structure(
        Tag::RESPONSE_PAYLOAD,
        Vec::new(),
    )))
}

/// Interop and Log (KMIP 2.0) over mutual TLS: Begin, Reset and
/// End are acknowledged with an empty payload, Reset resets nothing (a key created
/// before it is still there), a function that is none of the three is Invalid Field,
/// and neither operation exists in 1.x. 2.x answers carry a Server Correlation Value,
/// a new one per message; 1.x answers none.
#[tokio::test]
async fn acknowledges_interop_and_log_in_kmip_2_only() {
    let server = Embedded::start().await;
    let client = server.client();
    let interop = |function: u32, id: &str| {
        raw_item(
            Operation::INTEROP,
            vec![
                Item::enumeration(Tag::INTEROP_FUNCTION, function),
                Item::text(Tag::INTEROP_IDENTIFIER, id),
            ],
        )
    };
    let uid = client
        .create_symmetric_key(CryptographicAlgorithm::AES, 256, AES_USAGE, None)
        .await
        .unwrap();
    let log = raw_item(
        Operation::LOG,
        vec![Item::text(Tag::LOG_MESSAGE, "registered a key\n")],
    );
    let items = vec![
        interop(1, "case-1"),
        interop(3, "case-1"),
        log.clone(),
        interop(2, "case-1"),
    ];
    let response = client
        .send(RequestMessage::new(ProtocolVersion::V2_1, items))
        .await
        .unwrap();
    assert_eq!(response.items.len(), 4);
    for item in &response.items {
        assert_eq!(item.result_status, ResultStatus::SUCCESS, "{item:?}");
        assert_eq!(item.payload, empty_response_payload());
    }
    assert_eq!(client.get_state(&uid).await.unwrap(), State::PRE_ACTIVE);
    let first = response.header.server_correlation_value.clone();
    assert!(first.is_some());

    let bad = client
        .send(RequestMessage::new(
            ProtocolVersion::V2_1,
            vec![interop(9, "case-1")],
        ))
        .await
        .unwrap();
    assert_eq!(
        bad.items[0].result_reason,
        Some(ResultReason::INVALID_FIELD)
    );
    assert!(bad.header.server_correlation_value.is_some());
    assert_ne!(bad.header.server_correlation_value, first);
    let long = RequestMessage::new(ProtocolVersion::V2_0, vec![interop(1, &"x".repeat(1025))]);
    let long = client.send(long).await.unwrap();
    assert_eq!(
        long.items[0].result_reason,
        Some(ResultReason::INVALID_FIELD)
    );

    for item in [interop(1, "case-1"), log] {
        let old = client
            .send(RequestMessage::new(ProtocolVersion::V1_4, vec![item]))
            .await
            .unwrap();
        assert_eq!(
            old.items[0].result_reason,
            Some(ResultReason::OPERATION_NOT_SUPPORTED)
        );
        assert_eq!(old.header.server_correlation_value, None);
    }
}

/// Check (KMIP 1.4 section 4.10): the usage asked for against the key's Cryptographic
/// Usage Mask; a use the mask lacks is refused (2.x: Incompatible Cryptographic Usage
/// Mask; 1.x, which has no such reason: Permission Denied).
#[tokio::test]
async fn checks_a_use_against_the_usage_mask() {
    let server = Embedded::start().await;
    let client = server.client();
    let uid = client
        .create_symmetric_key(
            CryptographicAlgorithm::AES,
            256,
            CryptographicUsageMask::ENCRYPT,
            None,
        )
        .await
        .unwrap();
    let check = |mask: CryptographicUsageMask| {
        raw_item(
            Operation::CHECK,
            vec![
                Item::text(Tag::UNIQUE_IDENTIFIER, uid.clone()),
                Item::integer(Tag::CRYPTOGRAPHIC_USAGE_MASK, mask.to_wire()),
            ],
        )
    };
    for (version, refused) in [
        (ProtocolVersion::V1_4, ResultReason::PERMISSION_DENIED),
        (
            ProtocolVersion::V2_1,
            ResultReason::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK,
        ),
    ] {
        let mut request = RequestMessage::new(
            version,
            vec![
                check(CryptographicUsageMask::ENCRYPT),
                check(CryptographicUsageMask::DECRYPT),
            ],
        );
        request.header.batch_error_continuation_option = Some(1);
        let response = client.send(request).await.unwrap();
        assert_eq!(response.items[0].result_status, ResultStatus::SUCCESS);
        assert_eq!(
            response.items[0].payload,
            Some(ResponsePayload::Other(Item::structure(
                Tag::RESPONSE_PAYLOAD,
                vec![Item::text(Tag::UNIQUE_IDENTIFIER, uid.clone())]
            )))
        );
        assert_eq!(response.items[1].result_reason, Some(refused), "{version}");
    }
}

/// Batch Error Continuation Option Undo: when an item fails,
/// the items before it are undone (answered Operation Undone, and nothing they wrote
/// remains); when none fails, all are committed.
#[tokio::test]
async fn undoes_a_batch_with_a_failed_item_and_commits_one_without() {
    let server = Embedded::start().await;
    let client = server.client();
    let activate = RequestBatchItem::new(
        Operation::ACTIVATE,
        RequestPayload::Activate {
            unique_identifier: None,
        },
    );
    let failing = RequestBatchItem::new(
        Operation::GET,
        RequestPayload::Get(GetRequest {
            unique_identifier: Some("missing".into()),
            ..GetRequest::default()
        }),
    );
    for version in [ProtocolVersion::V1_4, ProtocolVersion::V2_1] {
        let name = format!("undo-{version}");
        let mut request = RequestMessage::new(
            version,
            vec![create_item(&name), activate.clone(), failing.clone()],
        );
        request.header.batch_error_continuation_option = Some(3);
        let response = client.send(request).await.unwrap();
        let statuses: Vec<_> = response.items.iter().map(|i| i.result_status).collect();
        assert_eq!(
            statuses,
            [
                ResultStatus::OPERATION_UNDONE,
                ResultStatus::OPERATION_UNDONE,
                ResultStatus::OPERATION_FAILED
            ]
        );
        // Not a success, so the client keeps the undone Create's payload as TTLV.
        let Some(ResponsePayload::Other(created)) = &response.items[0].payload else {
            panic!("{response:?}")
        };
        let created = created
            .find(Tag::UNIQUE_IDENTIFIER)
            .and_then(Item::as_text)
            .unwrap();
        let gone = client.get_state(created).await.unwrap_err();
        assert_eq!(reason(&gone), Some(ResultReason::ITEM_NOT_FOUND));

        let mut request = RequestMessage::new(version, vec![create_item(&name), activate.clone()]);
        request.header.batch_error_continuation_option = Some(3);
        let response = client.send(request).await.unwrap();
        let Some(ResponsePayload::Create(created)) = &response.items[0].payload else {
            panic!("{response:?}")
        };
        assert!(
            response
                .items
                .iter()
                .all(|i| i.result_status == ResultStatus::SUCCESS)
        );
        assert_eq!(
            client.get_state(&created.unique_identifier).await.unwrap(),
            State::ACTIVE
        );
    }
}

/// 3DES keys (three-key, 168 bits in 24 bytes of odd-parity material) are created,
/// registered and served as stored objects for legacy clients; the server never
/// encrypts with one. Other lengths, and Skipjack, are refused.
#[tokio::test]
async fn stores_3des_keys_but_never_encrypts_with_them() {
    let server = Embedded::start().await;
    let client = server.client();
    let uid = client
        .create_symmetric_key(CryptographicAlgorithm::TRIPLE_DES, 168, AES_USAGE, None)
        .await
        .unwrap();
    let key = client.get_symmetric_key(&uid).await.unwrap();
    assert_eq!(key.key.len(), 24);
    assert_eq!(key.algorithm, Some(CryptographicAlgorithm::TRIPLE_DES));
    assert_eq!(key.length, Some(168));
    assert!(
        key.key.iter().all(|b| b.count_ones() % 2 == 1),
        "odd parity"
    );
    client.activate(&uid).await.unwrap();
    let refused = client.encrypt(&uid, b"data", None).await.unwrap_err();
    assert_eq!(reason(&refused), Some(ResultReason::FEATURE_NOT_SUPPORTED));
    assert!(refused.to_string().contains("3DES"), "{refused}");

    let mut key_block = KeyBlock::raw_symmetric(
        CryptographicAlgorithm::TRIPLE_DES,
        Zeroizing::new(key.key.to_vec()),
    );
    key_block.cryptographic_length = Some(168);
    let register = RequestBatchItem::new(
        Operation::REGISTER,
        RequestPayload::Register(RegisterRequest {
            object_type: ObjectType::SYMMETRIC_KEY,
            template_attribute: TemplateAttribute::new(Vec::new()),
            object: ManagedObject::SymmetricKey(SymmetricKey { key_block }),
        }),
    );
    let response = client
        .send(RequestMessage::new(ProtocolVersion::V1_4, vec![register]))
        .await
        .unwrap();
    assert_eq!(response.items[0].result_status, ResultStatus::SUCCESS);

    for (algorithm, length) in [
        (CryptographicAlgorithm::TRIPLE_DES, 112),
        (CryptographicAlgorithm::TRIPLE_DES, 192),
        (CryptographicAlgorithm::SKIPJACK, 80),
    ] {
        let refused = client
            .create_symmetric_key(algorithm, length, AES_USAGE, None)
            .await
            .unwrap_err();
        assert_eq!(
            reason(&refused),
            Some(ResultReason::INVALID_FIELD),
            "{algorithm} {length}"
        );
    }
}

/// KMIP 2.x attributes of a key: Short Unique Identifier (SHA-256 of the Unique
/// Identifier), Key Format Type Raw, Protection Storage Mask Software; not in 1.x.
#[tokio::test]
async fn reports_kmip_2_attributes_in_kmip_2_only() {
    let server = Embedded::start().await;
    let client = server.client();
    let uid = client
        .create_symmetric_key(CryptographicAlgorithm::AES, 256, AES_USAGE, None)
        .await
        .unwrap();
    for version in [ProtocolVersion::V1_4, ProtocolVersion::V2_1] {
        let response = client
            .send(RequestMessage::new(
                version,
                vec![RequestBatchItem::new(
                    Operation::GET_ATTRIBUTES,
                    RequestPayload::GetAttributes(GetAttributesRequest {
                        unique_identifier: Some(uid.clone()),
                        attribute_names: Vec::new(),
                    }),
                )],
            ))
            .await
            .unwrap();
        let Some(ResponsePayload::GetAttributes(got)) = &response.items[0].payload else {
            panic!("{response:?}")
        };
        let short = value_of(&got.attributes, "Short Unique Identifier").and_then(Item::as_bytes);
        let format = value_of(&got.attributes, "Key Format Type").and_then(Item::as_enumeration);
        let storage =
            value_of(&got.attributes, "Protection Storage Mask").and_then(Item::as_integer);
        if version.uses_v2_attributes() {
            let digest = ring::digest::digest(&ring::digest::SHA256, uid.as_bytes());
            assert_eq!(short, Some(digest.as_ref()));
            assert_eq!(format, Some(KeyFormatType::RAW.0));
            assert_eq!(storage, Some(1));
        } else {
            assert_eq!((short, format, storage), (None, None, None));
        }
    }
}
