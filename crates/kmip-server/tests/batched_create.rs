//! `Client::create_active_symmetric_key`: Create, Activate and Get in one request
//! message, and what the client does with a server that does not carry the batch out.
//! A mutual-TLS proxy in front of the embedded server records the request messages it
//! forwards and plays one of several servers: the embedded server as it is, one that
//! refuses every batch of several items (it answers one failure and forwards nothing),
//! one that refuses ID Placeholders (as PyKMIP and Cosmian KMS do), one that carries out
//! only a batch's first item, and one that refuses Activate.
//!
//! The embedded server's side, a batch's writes committed once, is checked here too: a
//! Stop batch keeps the writes of the items before a failure and none of the failed
//! item's.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use kmip::client::Client;
use kmip::message::{
    CreateRequest, GetRequest, RequestBatchItem, RequestMessage, RequestPayload, ResponseBatchItem,
    ResponseMessage, TemplateAttribute,
};
use kmip::ttlv::Limits;
use kmip::types::{
    CryptographicAlgorithm, CryptographicUsageMask, ObjectType, Operation, ProtocolVersion,
    ResultReason, ResultStatus, State,
};
use testkit::kmip::{Embedded, Upstream, client_config, forward, proxy};

/// Which server the proxy plays.
#[derive(Clone, Copy, PartialEq)]
enum Plays {
    /// The embedded server, unchanged.
    Embedded,
    /// One that refuses a message of several batch items as a whole.
    NoBatches,
    /// One that carries out and answers only the first item of a batch.
    FirstItemOnly,
    /// One that refuses every Activate (Permission Denied) and, in a batch, stops there.
    RefusesActivate,
    /// One that refuses as a message any batch item without a Unique Identifier (an ID
    /// Placeholder), as PyKMIP 0.11 and Cosmian KMS 5.28 do.
    NoPlaceholders,
}

/// The operations of each request message the proxy received, in order.
type Seen = Arc<Mutex<Vec<Vec<Operation>>>>;

/// What the proxy saw from the first batch of several items on (the messages before
/// it, such as Discover Versions, are the connection's).
fn from_first_batch(seen: &Seen) -> Vec<Vec<Operation>> {
    let seen = seen.lock().unwrap();
    seen.iter()
        .skip_while(|ops| ops.len() == 1)
        .cloned()
        .collect()
}

/// An answer refusing a whole request message, as a server that cannot parse it gives.
fn refusal(version: ProtocolVersion, reason: ResultReason, message: &str) -> Vec<u8> {
    let item = ResponseBatchItem::failure(None, reason, message);
    ResponseMessage::new(version, 0, vec![item]).encode()
}

/// A proxy to `server` playing `plays`; its address and what it saw.
async fn playing(server: &Embedded, plays: Plays) -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let log = seen.clone();
    let addr = proxy(server, move |bytes, mut upstream| {
        let log = log.clone();
        async move {
            let request = RequestMessage::decode(&bytes, &Limits::default()).unwrap();
            log.lock()
                .unwrap()
                .push(request.items.iter().map(|i| i.operation).collect());
            let answer = answer(plays, request, &bytes, &mut upstream).await;
            (answer, upstream)
        }
    })
    .await;
    (addr, seen)
}

/// What a server playing `plays` answers to `request` (encoded as `bytes`), with
/// `server` the embedded server behind the proxy.
async fn answer(
    plays: Plays,
    mut request: RequestMessage,
    bytes: &[u8],
    server: &mut Upstream,
) -> Vec<u8> {
    let several = request.items.len() > 1;
    // Every server here is as strict as PyKMIP about KMIP's rule that each item of a
    // batch of several has a Unique Batch Item ID.
    let mut ids: Vec<_> = request
        .items
        .iter()
        .map(|i| i.unique_batch_item_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    let unnamed = several && (ids.len() < request.items.len() || ids[0].is_none());
    match plays {
        _ if unnamed => refusal(
            request.header.protocol_version,
            ResultReason::INVALID_MESSAGE,
            "Batch item ID is undefined.",
        ),
        Plays::NoBatches if several => refusal(
            request.header.protocol_version,
            ResultReason::OPERATION_NOT_SUPPORTED,
            "batches of several items are not supported",
        ),
        Plays::FirstItemOnly if several => {
            request.items.truncate(1);
            let first = RequestMessage::new(request.header.protocol_version, request.items);
            forward(server, &first.encode()).await
        }
        Plays::NoPlaceholders
            if request.items.iter().any(|i| {
                matches!(
                    &i.payload,
                    RequestPayload::Activate {
                        unique_identifier: None
                    } | RequestPayload::Get(GetRequest {
                        unique_identifier: None,
                        ..
                    })
                )
            }) =>
        {
            refusal(
                request.header.protocol_version,
                ResultReason::INVALID_MESSAGE,
                "missing field UniqueIdentifier",
            )
        }
        Plays::RefusesActivate => {
            let refused = request
                .items
                .iter()
                .position(|i| i.operation == Operation::ACTIVATE);
            match refused {
                None => forward(server, bytes).await,
                Some(at) => {
                    let version = request.header.protocol_version;
                    let mut answers = Vec::new();
                    if at > 0 {
                        request.items.truncate(at);
                        let before = RequestMessage::new(version, request.items);
                        let answer = forward(server, &before.encode()).await;
                        answers = ResponseMessage::decode(&answer, &Limits::default())
                            .unwrap()
                            .items;
                    }
                    answers.push(ResponseBatchItem::failure(
                        Some(Operation::ACTIVATE),
                        ResultReason::PERMISSION_DENIED,
                        "refused by the test",
                    ));
                    ResponseMessage::new(version, 0, answers).encode()
                }
            }
        }
        _ => forward(server, bytes).await,
    }
}

const USAGE: CryptographicUsageMask =
    CryptographicUsageMask(CryptographicUsageMask::ENCRYPT.0 | CryptographicUsageMask::DECRYPT.0);

/// A client of the proxy at `addr` that speaks KMIP `version` (default: negotiated).
fn client_of(server: &Embedded, addr: SocketAddr, version: Option<ProtocolVersion>) -> Client {
    let mut config = client_config(&server.pki, vec![addr.to_string()]);
    if let Some(version) = version {
        config.protocol_versions = vec![version];
    }
    Client::new(config).unwrap()
}

/// Creates key `name` through `client` and checks it against the embedded server
/// itself: Active, named so, and the material returned is its material.
async fn creates_an_active_key(server: &Embedded, client: &Client, name: &str) {
    let created = client
        .create_active_symmetric_key(CryptographicAlgorithm::AES, 256, USAGE, Some(name))
        .await
        .unwrap();
    let material = created.material.unwrap();
    assert_eq!(material.algorithm, Some(CryptographicAlgorithm::AES));
    assert_eq!(material.length, Some(256));
    let direct = server.client();
    assert_eq!(direct.get_state(&created.uid).await.unwrap(), State::ACTIVE);
    assert_eq!(
        direct.get_symmetric_key(&created.uid).await.unwrap().key,
        material.key
    );
    // One key by that name: a refused batch created none.
    assert_eq!(
        direct.locate(Some(name), None, None).await.unwrap(),
        vec![created.uid.clone()]
    );
    assert_eq!(Some(created.server.as_str()), client.servers().next());
}

#[tokio::test]
async fn creates_activates_and_fetches_a_key_in_one_message() {
    let server = Embedded::start().await;
    let (addr, seen) = playing(&server, Plays::Embedded).await;
    for version in [
        ProtocolVersion::V1_2,
        ProtocolVersion::V1_4,
        ProtocolVersion::V2_1,
    ] {
        seen.lock().unwrap().clear();
        let client = client_of(&server, addr, Some(version));
        creates_an_active_key(&server, &client, &format!("batched-{version}")).await;
        let seen = seen.lock().unwrap().clone();
        // Discover Versions on the new connection, then the batch.
        assert_eq!(
            seen.last().unwrap(),
            &vec![Operation::CREATE, Operation::ACTIVATE, Operation::GET],
            "{version}: {seen:?}"
        );
        assert_eq!(
            seen.iter()
                .filter(|ops| ops.contains(&Operation::CREATE))
                .count(),
            1
        );
    }
}

/// Key "new" made through `client` with the Get of key `other`, checked against the
/// embedded server itself (`direct`): Active, and the material returned is its material.
/// The other key's material, if it came with it.
async fn new_key_with_other(direct: &Client, client: &Client, other: &str) -> Option<Vec<u8>> {
    let created = client
        .create_active_symmetric_key_and_get(
            CryptographicAlgorithm::AES,
            256,
            USAGE,
            Some("new"),
            Some(other),
        )
        .await
        .unwrap();
    let material = created.material.unwrap();
    assert_eq!(direct.get_state(&created.uid).await.unwrap(), State::ACTIVE);
    assert_eq!(
        direct.get_symmetric_key(&created.uid).await.unwrap().key,
        material.key
    );
    created.other.map(|m| m.key.to_vec())
}

/// A key made through a proxy playing `plays` with the Get of another key, made before
/// it directly: what the proxy saw from the first batch on, and whether the other key's
/// material came with the new one (and is that key's).
async fn with_another_key_through(plays: Plays) -> (Vec<Vec<Operation>>, bool) {
    let server = Embedded::start().await;
    let direct = server.client();
    let other = direct
        .create_active_symmetric_key(CryptographicAlgorithm::AES, 256, USAGE, Some("other"))
        .await
        .unwrap();
    let (addr, seen) = playing(&server, plays).await;
    let client = client_of(&server, addr, Some(ProtocolVersion::V1_4));
    let came = new_key_with_other(&direct, &client, &other.uid).await;
    if let Some(key) = &came {
        assert_eq!(key[..], other.material.unwrap().key[..]);
    }
    (from_first_batch(&seen), came.is_some())
}

#[tokio::test]
async fn fetches_another_key_in_the_same_message() {
    use Operation as O;
    assert_eq!(
        with_another_key_through(Plays::Embedded).await,
        (vec![vec![O::CREATE, O::ACTIVATE, O::GET, O::GET]], true)
    );
    // Without ID Placeholders: with the Activate and Get naming the new key.
    assert_eq!(
        with_another_key_through(Plays::NoPlaceholders).await,
        (
            vec![
                vec![O::CREATE, O::ACTIVATE, O::GET, O::GET],
                vec![O::CREATE],
                vec![O::ACTIVATE, O::GET, O::GET],
            ],
            true
        )
    );
    // A server that did only the Create: the new key is made Active alone, and the
    // other key is left to the caller.
    assert_eq!(
        with_another_key_through(Plays::FirstItemOnly).await,
        (
            vec![
                vec![O::CREATE, O::ACTIVATE, O::GET, O::GET],
                vec![O::ACTIVATE],
                vec![O::GET],
            ],
            false
        )
    );
}

/// The Get of another key comes last: a key the server does not have leaves the new
/// key made, Active and fetched, and no other material.
#[tokio::test]
async fn makes_the_key_when_the_other_key_is_missing() {
    let server = Embedded::start().await;
    let client = server.client();
    assert_eq!(
        new_key_with_other(&client, &client, "no-such-key").await,
        None
    );
}

/// Two keys made through one client of a proxy playing `plays`; what the proxy saw.
async fn two_keys_through(plays: Plays) -> Vec<Vec<Operation>> {
    let server = Embedded::start().await;
    let (addr, seen) = playing(&server, plays).await;
    let client = client_of(&server, addr, None);
    for name in ["first", "second"] {
        creates_an_active_key(&server, &client, name).await;
    }
    from_first_batch(&seen)
}

#[tokio::test]
async fn creates_alone_where_the_server_refuses_batches() {
    // Each kind of batch is tried once; after their refusals, one request per operation.
    assert_eq!(
        two_keys_through(Plays::NoBatches).await,
        vec![
            vec![Operation::CREATE, Operation::ACTIVATE, Operation::GET],
            vec![Operation::CREATE],
            vec![Operation::ACTIVATE, Operation::GET],
            vec![Operation::ACTIVATE],
            vec![Operation::GET],
            vec![Operation::CREATE],
            vec![Operation::ACTIVATE],
            vec![Operation::GET],
        ],
    );
}

/// A server that takes batches but not ID Placeholders: after its first refusal, Create
/// alone, then Activate and Get naming the key in one message.
#[tokio::test]
async fn names_the_key_where_the_server_refuses_placeholders() {
    assert_eq!(
        two_keys_through(Plays::NoPlaceholders).await,
        vec![
            vec![Operation::CREATE, Operation::ACTIVATE, Operation::GET],
            vec![Operation::CREATE],
            vec![Operation::ACTIVATE, Operation::GET],
            vec![Operation::CREATE],
            vec![Operation::ACTIVATE, Operation::GET],
        ],
    );
}

#[tokio::test]
async fn activates_and_fetches_alone_where_the_server_did_only_the_create() {
    let server = Embedded::start().await;
    let (addr, seen) = playing(&server, Plays::FirstItemOnly).await;
    let client = client_of(&server, addr, Some(ProtocolVersion::V1_4));
    creates_an_active_key(&server, &client, "first-item-only").await;
    assert_eq!(
        from_first_batch(&seen),
        vec![
            vec![Operation::CREATE, Operation::ACTIVATE, Operation::GET],
            vec![Operation::ACTIVATE],
            vec![Operation::GET],
        ],
    );
}

/// A server that refuses Activate: the key exists (Pre-Active), and the error is
/// Activate's, from the separate Activate the client tried after the batch's.
#[tokio::test]
async fn reports_a_refused_activate_with_the_key_it_created() {
    let server = Embedded::start().await;
    let (addr, seen) = playing(&server, Plays::RefusesActivate).await;
    let client = client_of(&server, addr, None);
    let created = client
        .create_active_symmetric_key(CryptographicAlgorithm::AES, 256, USAGE, Some("refused"))
        .await
        .unwrap();
    let error = created.material.unwrap_err();
    assert!(
        matches!(
            error,
            kmip::error::Error::ServerReported {
                operation: Operation::ACTIVATE,
                reason: ResultReason::PERMISSION_DENIED,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        server.client().get_state(&created.uid).await.unwrap(),
        State::PRE_ACTIVE
    );
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&vec![Operation::ACTIVATE]),
        "the separate Activate was tried: {seen:?}"
    );
}

/// The embedded server commits a Stop batch once; the items before a failure keep
/// their writes, the failed item's are undone, and nothing after it runs.
#[tokio::test]
async fn keeps_the_writes_before_a_failed_item_of_a_stop_batch() {
    let server = Embedded::start().await;
    let client = server.client();
    let create = |name: &str| {
        RequestBatchItem::new(
            Operation::CREATE,
            RequestPayload::Create(CreateRequest {
                object_type: ObjectType::SYMMETRIC_KEY,
                template_attribute: TemplateAttribute::new(vec![
                    kmip::attribute::Attribute::CryptographicAlgorithm(CryptographicAlgorithm::AES),
                    kmip::attribute::Attribute::CryptographicLength(256),
                    kmip::attribute::Attribute::CryptographicUsageMask(USAGE),
                    kmip::attribute::Attribute::Name {
                        value: name.into(),
                        name_type: kmip::types::NameType::UNINTERPRETED_TEXT_STRING,
                    },
                ]),
            }),
        )
    };
    let activate = RequestBatchItem::new(
        Operation::ACTIVATE,
        RequestPayload::Activate {
            unique_identifier: None,
        },
    );
    // Activate the same key twice: the second is refused (it is Active already).
    let request = RequestMessage::new(
        ProtocolVersion::V1_4,
        vec![
            create("stop-kept"),
            activate.clone(),
            activate.clone(),
            create("stop-never"),
        ],
    );
    let response = client.send(request).await.unwrap();
    let statuses: Vec<_> = response.items.iter().map(|i| i.result_status).collect();
    assert_eq!(
        statuses,
        [
            ResultStatus::SUCCESS,
            ResultStatus::SUCCESS,
            ResultStatus::OPERATION_FAILED
        ]
    );
    let kept = client.locate(Some("stop-kept"), None, None).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(client.get_state(&kept[0]).await.unwrap(), State::ACTIVE);
    assert!(
        client
            .locate(Some("stop-never"), None, None)
            .await
            .unwrap()
            .is_empty()
    );

    // A Get of the new key in the same batch serves it: Fresh is False after the batch.
    let request = RequestMessage::new(
        ProtocolVersion::V1_4,
        vec![
            create("stop-fresh"),
            RequestBatchItem::new(Operation::GET, RequestPayload::Get(GetRequest::default())),
        ],
    );
    let response = client.send(request).await.unwrap();
    assert!(
        response
            .items
            .iter()
            .all(|i| i.result_status == ResultStatus::SUCCESS)
    );
    let uid = &client.locate(Some("stop-fresh"), None, None).await.unwrap()[0];
    let attributes = client.get_attributes(uid, &["Fresh"]).await.unwrap();
    let fresh = attributes.iter().find_map(|a| match a {
        kmip::attribute::Attribute::Other { name, value } if name == "Fresh" => value.as_bool(),
        _ => None,
    });
    assert_eq!(fresh, Some(false), "{attributes:?}");
}
