//! Arbitrary bytes through the digest `Authorization` header parser
//! (`headlock_api::auth::parse_authorization`).
//!
//! Besides "never panics": input over `MAX_AUTHORIZATION_LEN` is always refused; an
//! accepted header has a response of the algorithm's length and an `nc` whose value is
//! its hex; and the accepted credentials, written back out in one canonical form
//! (every value quoted and escaped, parameters in a fixed order), parse to exactly the
//! same credentials.

#![no_main]

use headlock_api::auth::{Algorithm, DigestResponse, MAX_AUTHORIZATION_LEN, parse_authorization};
use libfuzzer_sys::fuzz_target;

fn quoted(out: &mut String, name: &str, value: &str) {
    out.push_str(", ");
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// The credentials as one canonical header.
fn encode(r: &DigestResponse) -> String {
    let mut out = String::from("Digest qop=auth");
    out.push_str(", algorithm=");
    out.push_str(r.algorithm.as_str());
    quoted(&mut out, "username", &r.username);
    quoted(&mut out, "realm", &r.realm);
    quoted(&mut out, "nonce", &r.nonce);
    quoted(&mut out, "uri", &r.uri);
    quoted(&mut out, "response", &hex::encode(&r.response));
    quoted(&mut out, "cnonce", &r.cnonce);
    quoted(&mut out, "nc", &r.nc);
    if let Some(opaque) = &r.opaque {
        quoted(&mut out, "opaque", opaque);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // a header value reaches the parser as text
    };
    let parsed = parse_authorization(text);
    if text.len() > MAX_AUTHORIZATION_LEN {
        assert!(parsed.is_err(), "a header over the limit was accepted");
        return;
    }
    let Ok(r) = parsed else {
        return;
    };
    let want = match r.algorithm {
        Algorithm::Md5 => 16,
        Algorithm::Sha256 => 32,
    };
    assert_eq!(r.response.len(), want, "response length");
    assert_eq!(
        u64::from_str_radix(&r.nc, 16).ok(),
        Some(r.nc_value),
        "nc value"
    );
    assert!(!r.username.is_empty() && !r.cnonce.is_empty() && !r.uri.is_empty());

    let again = encode(&r);
    if again.len() <= MAX_AUTHORIZATION_LEN {
        let reparsed = parse_authorization(&again).expect("the canonical form parses");
        assert_eq!(
            reparsed, r,
            "canonical form parses to other credentials: {again}"
        );
    }
});
