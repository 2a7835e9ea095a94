//! The client reads answers extended by fields it does not know (a vendor extension, a
//! tag of a newer KMIP version), as KMIP servers of other vendors send them: a mutual-TLS
//! proxy in front of the embedded server adds such fields to every structure of every
//! response. The server stays strict: the same extension in a request is refused.

use std::net::SocketAddr;

use kmip::framing;
use kmip::message::{
    DiscoverVersionsRequest, RequestBatchItem, RequestMessage, RequestPayload, ResponseMessage,
};
use kmip::tag::Tag;
use kmip::ttlv::{self, Item, Limits, Value};
use kmip::types::{
    CryptographicAlgorithm, CryptographicUsageMask, Operation, ProtocolVersion, ResultReason,
    ResultStatus, State,
};
use kmip_server::pki::PkiPaths;
use testkit::kmip::{Embedded, client_config, forward, proxy, raw_connection};

/// Adds `extra` to every structure of `item` but attribute values and 2.0 attribute
/// lists (where an unknown tag is a vendor attribute, which the client keeps).
fn extend(item: &mut Item, extra: &Item) {
    if [Tag::ATTRIBUTE_VALUE, Tag::ATTRIBUTES].contains(&item.tag) {
        return;
    }
    if let Value::Structure(children) = &mut item.value {
        children.iter_mut().for_each(|c| extend(c, extra));
        children.push(extra.clone());
    }
}

/// A proxy to `server` that extends every response with `extra`; its address.
async fn extending_proxy(server: &Embedded, extra: Item) -> SocketAddr {
    proxy(server, move |request, mut upstream| {
        let extra = extra.clone();
        async move {
            let answer = forward(&mut upstream, &request).await;
            let mut item = ttlv::decode(&answer, &Limits::default()).unwrap();
            extend(&mut item, &extra);
            (ttlv::encode(&item), upstream)
        }
    })
    .await
}

/// One request on a new raw connection to `addr`; the answer's bytes.
async fn round_trip(pki: &PkiPaths, addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = raw_connection(pki, addr).await;
    framing::write_message(&mut stream, request).await.unwrap();
    framing::read_message(&mut stream, 1 << 20)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn client_skips_unknown_fields_in_responses() {
    let server = Embedded::start().await;
    // A vendor extension, and a tag that no KMIP version up to 2.0 defines.
    for extra in [
        Item::text(Tag(0x54_0001), "vendor"),
        Item::integer(Tag(0x42_0FFF), 7),
    ] {
        let proxy = extending_proxy(&server, extra.clone()).await;
        for version in [ProtocolVersion::V1_4, ProtocolVersion::V2_0] {
            let mut config = client_config(&server.pki, vec![proxy.to_string()]);
            config.protocol_versions = vec![version];
            let client = kmip::client::Client::new(config).unwrap();
            let name = format!("lenient-{}-{version}", extra.tag);
            let uid = client
                .create_symmetric_key(
                    CryptographicAlgorithm::AES,
                    256,
                    CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT,
                    Some(&name),
                )
                .await
                .unwrap();
            client.activate(&uid).await.unwrap();
            assert_eq!(client.get_symmetric_key(&uid).await.unwrap().key.len(), 32);
            assert_eq!(client.get_state(&uid).await.unwrap(), State::ACTIVE);
            assert_eq!(
                client.locate(Some(&name), None, None).await.unwrap(),
                vec![uid]
            );
        }
    }
}

#[tokio::test]
async fn the_proxy_really_extends_responses_and_the_server_refuses_extended_requests() {
    let server = Embedded::start().await;
    let extra = Item::text(Tag(0x54_0001), "vendor");
    let proxy = extending_proxy(&server, extra.clone()).await;
    let discover = RequestMessage::new(
        ProtocolVersion::V1_4,
        vec![RequestBatchItem::new(
            Operation::DISCOVER_VERSIONS,
            RequestPayload::DiscoverVersions(DiscoverVersionsRequest { versions: vec![] }),
        )],
    )
    .encode();
    // Through the proxy: a strict decode fails, a lenient one names what it skipped.
    let answer = round_trip(&server.pki, proxy, &discover).await;
    assert!(ResponseMessage::decode(&answer, &Limits::default()).is_err());
    let (_, skipped) = ResponseMessage::decode_lenient(&answer, &Limits::default()).unwrap();
    assert!(!skipped.is_empty());
    // The server itself: the extension in a request is an Invalid Message.
    let mut request = ttlv::decode(&discover, &Limits::default()).unwrap();
    extend(&mut request, &extra);
    let answer = round_trip(&server.pki, server.addr, &ttlv::encode(&request)).await;
    let answer = ResponseMessage::decode(&answer, &Limits::default()).unwrap();
    assert_eq!(
        answer.items[0].result_status,
        ResultStatus::OPERATION_FAILED
    );
    assert_eq!(
        answer.items[0].result_reason,
        Some(ResultReason::INVALID_MESSAGE)
    );
}
