//! Arbitrary bytes through the TTLV decoder and the typed message decoders.
//!
//! Besides "never panics", it checks the properties a strict codec must have: any
//! accepted TTLV re-encodes to exactly the input (the encoding is canonical), the
//! header-only length agrees, and any accepted message re-encodes to bytes that decode
//! to the same typed message.

#![no_main]

use kmip::message::{RequestMessage, ResponseMessage};
use kmip::ttlv::{self, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(item) = ttlv::decode(data, &limits) else {
        return;
    };
    assert_eq!(ttlv::encode(&item), data, "TTLV encoding is not canonical");
    let header: [u8; 8] = data[..8].try_into().expect("an item has a header");
    assert_eq!(ttlv::message_length(&header).ok(), Some(data.len()));

    if let Ok(request) = RequestMessage::from_ttlv(&item) {
        let again = RequestMessage::decode(&request.encode(), &limits)
            .expect("a re-encoded request decodes");
        assert_eq!(again, request);
    }
    if let Ok(response) = ResponseMessage::from_ttlv(&item) {
        let again = ResponseMessage::decode(&response.encode(), &limits)
            .expect("a re-encoded response decodes");
        assert_eq!(again, response);
    }
});
