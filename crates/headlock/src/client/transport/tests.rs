//! The API URL and the links the server gives, parsed without a network.

use super::*;

#[test]
fn accepts_urls_with_ports_prefixes_and_ipv6() {
    let t = Target::parse("http://127.0.0.1:8080").unwrap();
    assert_eq!(
        (t.tls, t.host.as_str(), t.port, t.prefix.as_str()),
        (false, "127.0.0.1", 8080, "")
    );
    let t = Target::parse("https://backup.example.com/headlock/").unwrap();
    assert_eq!((t.tls, t.port, t.prefix.as_str()), (true, 443, "/headlock"));
    let t = Target::parse("http://[::1]:9000").unwrap();
    assert_eq!(
        (t.host.as_str(), t.addr(), t.authority.as_str()),
        ("::1", "[::1]:9000".to_string(), "[::1]:9000")
    );
}

#[test]
fn rejects_unusable_urls() {
    for u in [
        "ftp://h",
        "127.0.0.1:8080",
        "http://user:key@h",
        "http://h/?x=1",
        "",
        "http://",
    ] {
        let e = Target::parse(u).unwrap_err();
        assert!(e.is_local(), "{u}: {e}");
    }
}

// ---------------------------------------------------------------------------------

#[test]
fn accepts_links_absolute_or_on_the_api_origin() {
    let api = Target::parse("https://backup.example.com:8443/prefix").unwrap();
    let (t, p) = parse_link(&api, "/api/public/v1.0/restore/abc?t=1", "link").unwrap();
    assert_eq!(
        (t.addr().as_str(), t.tls, p.as_str()),
        (
            "backup.example.com:8443",
            true,
            "/api/public/v1.0/restore/abc?t=1"
        )
    );
    let (t, p) = parse_link(&api, "http://[::1]:9000/d/x?token=y", "link").unwrap();
    assert_eq!(
        (t.addr().as_str(), t.tls, p.as_str()),
        ("[::1]:9000", false, "/d/x?token=y")
    );
    assert_eq!(t.authority, "[::1]:9000");
}

#[test]
fn rejects_unusable_links_without_showing_them() {
    let api = Target::parse("http://127.0.0.1:8080").unwrap();
    for link in [
        "ftp://h/x?token=SECRET",
        "http://user:SECRET@h/x",
        "//h/x?token=SECRET",
        "not a url SECRET",
    ] {
        let e = parse_link(&api, link, "restore download link").unwrap_err();
        assert!(matches!(e, ClientError::InvalidLink { .. }), "{link}: {e}");
        assert!(!e.to_string().contains("SECRET"), "{e}");
        assert!(!e.is_local());
    }
}
