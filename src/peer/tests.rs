use super::*;

#[test]
fn principals_are_spiffe_ids_only() {
    for (uri, want) in [
        (
            "spiffe://cluster.local/ns/shop/sa/frontend",
            Some("cluster.local/ns/shop/sa/frontend"),
        ),
        ("spiffe://example.org", Some("example.org")),
        ("spiffe://a-b_c.d/x.y-z_1", Some("a-b_c.d/x.y-z_1")),
        ("https://evil.example/sa/frontend", None),
        ("SPIFFE://cluster.local/ns/shop/sa/frontend", None),
        ("spiffe://Cluster.local/ns/shop/sa/frontend", None),
        ("spiffe://", None),
        ("spiffe:///ns/x", None),
        ("spiffe://cluster.local/", None),
        ("spiffe://cluster.local/ns//sa/x", None),
        ("spiffe://cluster.local/ns/../sa/x", None),
        ("spiffe://cluster.local/ns/./sa/x", None),
        ("spiffe://cluster.local/ns/x%2Fsa/y", None),
        ("spiffe://cluster.local/ns/x?sa=y", None),
        ("spiffe://cluster.local/ns/x#y", None),
        ("spiffe://user@cluster.local/ns/x", None),
        ("spiffe://cluster.local:443/ns/x", None),
        ("cluster.local/ns/shop/sa/frontend", None),
        ("", None),
    ] {
        assert_eq!(principal(uri.as_bytes()), want, "{uri}");
    }
    assert_eq!(principal(b"spiffe://a/\xff"), None);
    let long = format!("spiffe://a/{}", "b".repeat(MAX_SPIFFE_ID_BYTES));
    assert_eq!(principal(long.as_bytes()), None);
}

#[test]
fn patterns_as_istio_writes_them() {
    let p = |s: &str| PrincipalPattern::parse(s).unwrap();
    let frontend = "cluster.local/ns/shop/sa/frontend";
    for (pattern, principal, want) in [
        ("cluster.local/ns/shop/sa/frontend", frontend, true),
        ("spiffe://cluster.local/ns/shop/sa/frontend", frontend, true),
        ("cluster.local/ns/shop/sa/frontend2", frontend, false),
        ("cluster.local/ns/shop/sa/fronten", frontend, false),
        ("*/sa/frontend", frontend, true),
        ("*/sa/frontend", "cluster.local/ns/shop/sa/rogue", false),
        ("*frontend", "cluster.local/ns/shop/sa/notfrontend", true),
        ("cluster.local/ns/shop/*", frontend, true),
        ("spiffe://cluster.local/ns/shop/*", frontend, true),
        (
            "cluster.local/ns/shop/*",
            "cluster.local/ns/shopping/sa/x",
            false,
        ),
        (
            "cluster.local/ns/shop*",
            "cluster.local/ns/shopping/sa/x",
            true,
        ),
        ("*", frontend, true),
    ] {
        assert_eq!(
            p(pattern).matches(principal),
            want,
            "{pattern} ~ {principal}"
        );
    }
}

#[test]
fn bad_patterns_are_refused() {
    for pattern in [
        "",
        "**",
        "*a*",
        "a*b",
        "cluster.local/*/sa/x",
        "spiffe://",
        "spiffe://*",
        "https://cluster.local/ns/x",
        "cluster.local/ns//x",
        "Cluster.local/ns/x",
    ] {
        assert!(PrincipalPattern::parse(pattern).is_err(), "{pattern:?}");
    }
}

#[test]
fn peer_allowed_needs_a_spiffe_principal() {
    let patterns = vec![PrincipalPattern::parse("*/sa/frontend").unwrap()];
    assert!(peer_allowed(
        &patterns,
        Some(b"spiffe://cluster.local/ns/shop/sa/frontend")
    ));
    assert!(!peer_allowed(
        &patterns,
        Some(b"https://evil.example/sa/frontend")
    ));
    assert!(!peer_allowed(&patterns, None));
    assert!(!peer_allowed(&patterns, Some(b"")));
    assert!(!peer_allowed(&[PrincipalPattern::Any], None));
    assert!(!peer_allowed(
        &[],
        Some(b"spiffe://cluster.local/ns/shop/sa/frontend")
    ));
}

#[test]
fn thumbprints_from_hex_der_and_pem() {
    // SHA-256 of the empty string.
    let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let t = Thumbprint::from_hex(empty.as_bytes()).unwrap();
    assert_eq!(t, Thumbprint::of_der(b""));
    assert_eq!(
        Thumbprint::from_hex(empty.to_uppercase().as_bytes()),
        Some(t)
    );
    assert_eq!(t.to_b64url(), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
    for bad in [
        &empty[1..],
        &format!("{empty}0"),
        &empty.replace('e', "g"),
        "",
    ] {
        assert_eq!(Thumbprint::from_hex(bad.as_bytes()), None, "{bad}");
    }
    assert_eq!(Thumbprint::from_hex(&[b'+'; 64]), None);

    let der = b"not really a certificate, but bytes";
    let pem = format!(
        "junk\n-----BEGIN CERTIFICATE-----\n{}\n{}\n-----END CERTIFICATE-----\n",
        &STANDARD_ENGINE.encode(der)[..20],
        &STANDARD_ENGINE.encode(der)[20..]
    );
    assert_eq!(
        Thumbprint::of_pem(pem.as_bytes()),
        Some(Thumbprint::of_der(der))
    );
    assert_eq!(
        Thumbprint::of_pem(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"),
        None
    );
    assert_eq!(
        Thumbprint::of_pem(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----"),
        None
    );
    assert_eq!(
        Thumbprint::of_pem(b"-----BEGIN CERTIFICATE-----\nAAAA"),
        None
    );
    assert_eq!(Thumbprint::of_pem(b""), None);
}

const STANDARD_ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[test]
fn peer_facts_keep_absent_and_unreadable_apart() {
    let hex = "ab".repeat(32);
    let facts = PeerFacts {
        uri_san: Ok(Some(b"spiffe://cluster.local/ns/shop/sa/frontend".to_vec())),
        digest: Ok(Some(hex.clone().into_bytes())),
    };
    assert_eq!(
        facts.spiffe_id(),
        Ok(Some("spiffe://cluster.local/ns/shop/sa/frontend"))
    );
    assert_eq!(facts.thumbprint(), Ok(Thumbprint::from_hex(hex.as_bytes())));
    assert!(facts.thumbprint().unwrap().is_some());
    assert_eq!(PeerFacts::none().spiffe_id(), Ok(None));
    assert_eq!(PeerFacts::none().thumbprint(), Ok(None));
    // Never read: unreadable, not "no peer".
    assert_eq!(PeerFacts::default().spiffe_id(), Err(Unreadable));
    assert_eq!(PeerFacts::default().thumbprint(), Err(Unreadable));
    let odd = PeerFacts {
        uri_san: Ok(Some(b"https://evil.example/sa/frontend".to_vec())),
        digest: Ok(Some(b"not hex".to_vec())),
    };
    // A URI SAN that is not a SPIFFE ID is no principal; a digest that does not decode is
    // unreadable.
    assert_eq!(odd.spiffe_id(), Ok(None));
    assert_eq!(odd.thumbprint(), Err(Unreadable));
}

#[test]
fn the_glue_reads_only_the_facts_needed_and_keeps_host_errors_apart() {
    use std::cell::RefCell;
    const BAD_ARGUMENT: u32 = 2;
    let asked = RefCell::new(Vec::new());
    let host = |path: &[&str]| -> Result<Option<Vec<u8>>, u32> {
        asked.borrow_mut().push(path.join("."));
        match path {
            ["connection", "uri_san_peer_certificate"] => {
                Ok(Some(b"spiffe://cluster.local/ns/shop/sa/frontend".to_vec()))
            }
            ["connection", "sha256_peer_certificate_digest"] => Ok(None),
            _ => Err(BAD_ARGUMENT),
        }
    };
    let facts = PeerFacts::read(true, true, host);
    assert_eq!(
        facts,
        PeerFacts {
            uri_san: Ok(Some(b"spiffe://cluster.local/ns/shop/sa/frontend".to_vec())),
            digest: Ok(None),
        }
    );
    assert_eq!(
        *asked.borrow(),
        [
            "connection.uri_san_peer_certificate",
            "connection.sha256_peer_certificate_digest"
        ]
    );
    // Not needed: never asked, and unreadable if anything looked.
    asked.borrow_mut().clear();
    assert_eq!(PeerFacts::read(false, false, host), PeerFacts::default());
    assert!(asked.borrow().is_empty());
    let only_digest = PeerFacts::read(false, true, host);
    assert_eq!(only_digest.uri_san, Err(Unreadable));
    assert_eq!(only_digest.digest, Ok(None));
    // A host error is unreadable, never "no certificate".
    let failing = |_: &[&str]| -> Result<Option<Vec<u8>>, u32> { Err(BAD_ARGUMENT) };
    assert_eq!(PeerFacts::read(true, true, failing), PeerFacts::default());
}
