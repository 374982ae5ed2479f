use super::*;
use serde_json::json;

/// The issue's example document.
const EXAMPLE: &str = r#"{
  "issued_at": 1764601234,
  "jti": ["8f14e45f", "c9f0f895"],
  "sub": ["mallory"],
  "client_id": ["retired-service"],
  "sid": ["session-123"],
  "issued_before": { "sub": { "alice": 1764600000 }, "client_id": { "batch": 1764500000 } }
}"#;

fn list(doc: &str) -> RevocationList {
    RevocationList::parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

/// `v` as the payload of a verified token (its `iat` read as `verify` reads it).
fn check(l: &RevocationList, v: Value) -> Result<(), Revoked> {
    l.check(&Verified::for_test(json!({"alg": "RS256"}), v))
}

#[test]
fn example_document_revokes_what_it_lists() {
    let l = list(EXAMPLE);
    assert_eq!(l.issued_at(), 1_764_601_234);
    assert_eq!(l.entries(), 7);
    let listed = Revoked::Listed;
    for (token, want) in [
        (json!({"sub": "bob", "iat": 1}), Ok(())),
        (json!({"sub": "bob"}), Ok(())),
        (
            json!({"sub": "bob", "jti": "8f14e45f"}),
            Err(listed(Kind::Jti)),
        ),
        (
            json!({"sub": "bob", "jti": "c9f0f895"}),
            Err(listed(Kind::Jti)),
        ),
        (json!({"sub": "bob", "jti": "8F14E45F"}), Ok(())),
        (json!({"sub": "mallory"}), Err(listed(Kind::Sub))),
        (
            json!({"sub": "bob", "client_id": "retired-service"}),
            Err(listed(Kind::ClientId)),
        ),
        (
            json!({"sub": "bob", "sid": "session-123"}),
            Err(listed(Kind::Sid)),
        ),
        // The spaces are separate: a `sub` that is a listed `sid` is not revoked.
        (json!({"sub": "session-123"}), Ok(())),
        (json!({"jti": "mallory"}), Ok(())),
        // Not a string: cannot equal a listed string. (A `sub` that is not a string never
        // verifies: `jwt::parse` refuses it.)
        (json!({"client_id": ["retired-service"], "jti": 8}), Ok(())),
        // issued_before.sub.alice
        (
            json!({"sub": "alice", "iat": 1_764_599_999}),
            Err(Revoked::IssuedBefore),
        ),
        (json!({"sub": "alice", "iat": 1_764_600_000}), Ok(())),
        (json!({"sub": "alice", "iat": 1_764_600_001}), Ok(())),
        (json!({"sub": "alice"}), Err(Revoked::IssuedBefore)),
        // issued_before.client_id.batch, whatever the sub
        (
            json!({"sub": "x", "client_id": "batch", "iat": 1_764_499_999}),
            Err(Revoked::IssuedBefore),
        ),
        (
            json!({"sub": "x", "client_id": "batch", "iat": 1_764_500_000}),
            Ok(()),
        ),
        // a cutoff for `alice` as a sub is not one for `alice` as a client_id
        (json!({"sub": "x", "client_id": "alice", "iat": 1}), Ok(())),
    ] {
        assert_eq!(check(&l, token.clone()), want, "{token}");
    }
}

#[test]
fn the_latest_applicable_cutoff_wins() {
    let l =
        list(r#"{"issued_at":1,"issued_before":{"*":100,"sub":{"a":200},"client_id":{"c":300}}}"#);
    for (token, want) in [
        (json!({"iat": 99}), Err(Revoked::IssuedBefore)),
        (json!({"iat": 100}), Ok(())),
        (json!({}), Err(Revoked::IssuedBefore)),
        (json!({"sub": "a", "iat": 150}), Err(Revoked::IssuedBefore)),
        (json!({"sub": "a", "iat": 200}), Ok(())),
        (
            json!({"sub": "a", "client_id": "c", "iat": 250}),
            Err(Revoked::IssuedBefore),
        ),
        (json!({"sub": "a", "client_id": "c", "iat": 300}), Ok(())),
    ] {
        assert_eq!(check(&l, token.clone()), want, "{token}");
    }
}

#[test]
fn a_zero_cutoff_is_no_cutoff() {
    let l = list(r#"{"issued_at":1,"issued_before":{"*":0,"sub":{"a":0}}}"#);
    assert_eq!(check(&l, json!({"sub": "a"})), Ok(()));
    assert_eq!(check(&l, json!({})), Ok(()));
}

#[test]
fn an_empty_list_revokes_nothing() {
    let l = list(r#"{"issued_at":0}"#);
    assert_eq!(l.entries(), 0);
    assert_eq!(check(&l, json!({"sub": "a", "jti": "b"})), Ok(()));
    let l = list(r#"{"issued_at":5,"jti":[],"issued_before":{}}"#);
    assert_eq!(check(&l, json!({})), Ok(()));
}

#[test]
fn refused_documents() {
    let long = "x".repeat(MAX_VALUE_BYTES + 1);
    for (doc, want) in [
        ("", ListError::NotJson),
        ("[]", ListError::NotJson),
        ("{", ListError::NotJson),
        (r#"{"issued_at":1,"issued_at":2}"#, ListError::NotJson),
        (
            r#"{"issued_at":1,"jti":["a"],"jti":[]}"#,
            ListError::NotJson,
        ),
        ("{}", ListError::MissingIssuedAt),
        (r#"{"jti":["a"]}"#, ListError::MissingIssuedAt),
        (
            r#"{"issued_at":1,"jtis":["a"]}"#,
            ListError::UnknownMember("jtis".into()),
        ),
        (
            r#"{"issued_at":1,"iss":"x"}"#,
            ListError::UnknownMember("iss".into()),
        ),
        (
            r#"{"issued_at":1,"issued_before":{"iss":{}}}"#,
            ListError::UnknownMember("issued_before.iss".into()),
        ),
        (r#"{"issued_at":"1"}"#, ListError::BadMember("issued_at")),
        (r#"{"issued_at":1.5}"#, ListError::BadMember("issued_at")),
        (r#"{"issued_at":-1}"#, ListError::BadMember("issued_at")),
        (
            r#"{"issued_at":253402300800}"#,
            ListError::BadMember("issued_at"),
        ),
        (r#"{"issued_at":null}"#, ListError::BadMember("issued_at")),
        (r#"{"issued_at":1,"jti":"a"}"#, ListError::BadMember("jti")),
        (r#"{"issued_at":1,"sub":[1]}"#, ListError::BadMember("sub")),
        (r#"{"issued_at":1,"sid":[""]}"#, ListError::BadMember("sid")),
        (
            r#"{"issued_at":1,"client_id":[null]}"#,
            ListError::BadMember("client_id"),
        ),
        (
            r#"{"issued_at":1,"issued_before":[]}"#,
            ListError::BadMember("issued_before"),
        ),
        (
            r#"{"issued_at":1,"issued_before":{"*":"1"}}"#,
            ListError::BadMember("issued_before.*"),
        ),
        (
            r#"{"issued_at":1,"issued_before":{"sub":[]}}"#,
            ListError::BadMember("issued_before.sub"),
        ),
        (
            r#"{"issued_at":1,"issued_before":{"sub":{"a":-5}}}"#,
            ListError::BadMember("issued_before.sub"),
        ),
        (
            r#"{"issued_at":1,"issued_before":{"sub":{"":5}}}"#,
            ListError::BadMember("issued_before.sub"),
        ),
        (
            r#"{"issued_at":1,"issued_before":{"client_id":{"a":1.5}}}"#,
            ListError::BadMember("issued_before.client_id"),
        ),
        (
            r#"{"issued_at":1,"issued_before":{"sub":{"a":1,"a":2}}}"#,
            ListError::NotJson,
        ),
        // Repeats the streaming read must see too: zero cutoffs, empty tables, "*".
        (
            r#"{"issued_at":1,"issued_before":{"sub":{"a":0,"a":0}}}"#,
            ListError::NotJson,
        ),
        (
            r#"{"issued_at":1,"issued_before":{"sub":{},"sub":{}}}"#,
            ListError::NotJson,
        ),
        (
            r#"{"issued_at":1,"issued_before":{"*":0,"*":0}}"#,
            ListError::NotJson,
        ),
        (r#"{"issued_at":1,"x":1,"x":2}"#, ListError::NotJson),
        (r#"{"issued_at":1,"jti":[],"jti":[]}"#, ListError::NotJson),
        // A repeat inside a bad value is still not JSON, as is anything after the object.
        (
            r#"{"issued_at":1,"jti":[{"a":1,"a":2}]}"#,
            ListError::NotJson,
        ),
        (r#"{"issued_at":1} {}"#, ListError::NotJson),
        // The first refusal in the strict read's order, not in the document's.
        (
            r#"{"jti":[1],"issued_at":1,"zz":1}"#,
            ListError::UnknownMember("zz".into()),
        ),
        (r#"{"issued_at":1e3}"#, ListError::BadMember("issued_at")),
        (
            r#"{"issued_at":18446744073709551615}"#,
            ListError::BadMember("issued_at"),
        ),
    ] {
        let got = RevocationList::parse(doc.as_bytes()).map(|l| l.issued_at());
        assert_eq!(got, Err(want), "{doc}");
        // What the strict read refuses, the streaming read never takes.
        assert!(RevocationList::stream(doc.as_bytes()).is_none(), "{doc}");
    }
    let doc = format!(r#"{{"issued_at":1,"jti":["{long}"]}}"#);
    assert_eq!(
        RevocationList::parse(doc.as_bytes()).map(|l| l.entries()),
        Err(ListError::BadMember("jti"))
    );
    // An unknown member's name is shown bounded and printable.
    let doc = format!("{{\"issued_at\":1,\"\\u0007{}\":1}}", "y".repeat(500));
    match RevocationList::parse(doc.as_bytes()) {
        Err(ListError::UnknownMember(name)) => assert_eq!(name, "y".repeat(64)),
        other => panic!("{other:?}"),
    }
}

/// `parse` reads a document as a stream and falls back to the strict read (a `Value` tree) only
/// when the stream does not take it: every document the strict read takes, the stream must
/// take too (else the fallback hides it, at the tree's memory), with the same entries and the
/// same answers.
#[test]
fn the_streaming_read_takes_what_the_strict_read_takes() {
    let tokens = [
        json!({}),
        json!({"iat": 1}),
        json!({"sub": "bob", "iat": 1_764_601_000}),
        json!({"sub": "mallory", "iat": 1}),
        json!({"sub": "alice", "iat": 1_764_599_999}),
        json!({"sub": "alice", "iat": 1_764_600_000}),
        json!({"sub": "a", "iat": 150}),
        json!({"sub": "a", "client_id": "c", "iat": 250}),
        json!({"sub": "x", "client_id": "batch", "iat": 1_764_499_999}),
        json!({"jti": "8f14e45f"}),
        json!({"jti": "a"}),
        json!({"jti": "a/b"}),
        json!({"jti": "é"}),
        json!({"sid": "session-123", "iat": 99}),
        json!({"client_id": "retired-service"}),
    ];
    for doc in [
        EXAMPLE,
        r#"{"issued_at":0}"#,
        r#"{"issued_at":5,"jti":[],"issued_before":{}} "#,
        r#"{"issued_at":1,"jti":["a","a"],"sub":["a"]}"#,
        r#"{"issued_at":1,"issued_before":{"*":100,"sub":{"a":200},"client_id":{"c":300}}}"#,
        r#"{"issued_at":1,"issued_before":{"*":0,"sub":{"a":0}}}"#,
        r#"{"issued_before":{"sub":{"alice":1764600000}},"sub":["mallory"],"issued_at":1}"#,
        "{\"issued_\\u0061t\":1,\"jti\":[\"\\u00e9\",\"a\\/b\"]}",
    ] {
        let strict = jwt::parse_object(doc.as_bytes())
            .ok_or(ListError::NotJson)
            .and_then(|d| RevocationList::from_document(&d))
            .unwrap_or_else(|e| panic!("{doc}: {e}"));
        let streamed = RevocationList::stream(doc.as_bytes())
            .unwrap_or_else(|| panic!("the stream does not take {doc}"));
        assert_eq!(streamed.issued_at(), strict.issued_at(), "{doc}");
        assert_eq!(streamed.entries(), strict.entries(), "{doc}");
        for token in &tokens {
            assert_eq!(
                check(&streamed, token.clone()),
                check(&strict, token.clone()),
                "{doc} {token}"
            );
        }
    }
    // An escaped value is its text: "\u00e9" lists "é".
    let l = list(r#"{"issued_at":1,"jti":["\u00e9"]}"#);
    assert_eq!(
        check(&l, json!({"jti": "é"})),
        Err(Revoked::Listed(Kind::Jti))
    );
}

#[test]
fn entry_and_size_bounds() {
    let values = |n: usize| {
        (0..n)
            .map(|i| format!("\"v{i}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    let at_limit = format!(
        r#"{{"issued_at":1,"jti":[{}],"issued_before":{{"*":5}}}}"#,
        values(MAX_ENTRIES - 1)
    );
    assert_eq!(list(&at_limit).entries(), MAX_ENTRIES);
    assert_eq!(
        RevocationList::stream(at_limit.as_bytes()).map(|l| l.entries()),
        Some(MAX_ENTRIES)
    );
    let over = format!(
        r#"{{"issued_at":1,"jti":[{}],"sub":[{}]}}"#,
        values(MAX_ENTRIES / 2),
        values(MAX_ENTRIES / 2 + 1)
    );
    assert_eq!(
        RevocationList::parse(over.as_bytes()).map(|l| l.entries()),
        Err(ListError::TooManyEntries)
    );
    assert!(RevocationList::stream(over.as_bytes()).is_none());
    let over_cutoffs = format!(
        r#"{{"issued_at":1,"jti":[{}],"issued_before":{{"*":5}}}}"#,
        values(MAX_ENTRIES)
    );
    assert_eq!(
        RevocationList::parse(over_cutoffs.as_bytes()).map(|l| l.entries()),
        Err(ListError::TooManyEntries)
    );
    let huge = format!(
        r#"{{"issued_at":1,"jti":["{}"]}}"#,
        "a".repeat(MAX_BODY_BYTES)
    );
    assert_eq!(
        RevocationList::parse(huge.as_bytes()).map(|l| l.entries()),
        Err(ListError::TooLarge)
    );
}

#[test]
fn never_older_never_from_the_future() {
    let at = |t: i64| list(&format!(r#"{{"issued_at":{t}}}"#));
    let now = 10_000;
    assert_eq!(at(now).may_replace(None, now), Ok(()));
    assert_eq!(at(5).may_replace(Some(&at(5)), now), Ok(()));
    assert_eq!(at(6).may_replace(Some(&at(5)), now), Ok(()));
    assert_eq!(
        at(4).may_replace(Some(&at(5)), now),
        Err(ListError::Older {
            current: 5,
            candidate: 4
        })
    );
    assert_eq!(at(now + MAX_FUTURE_SECONDS).may_replace(None, now), Ok(()));
    assert_eq!(
        at(now + MAX_FUTURE_SECONDS + 1).may_replace(Some(&at(5)), now),
        Err(ListError::FromTheFuture {
            issued_at: now + MAX_FUTURE_SECONDS + 1,
            now
        })
    );
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// A JWS with `header` over `doc`, "signed" with `sig` (the test verifier compares it).
fn jws(header: &str, doc: &str, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(doc.as_bytes()),
        b64(sig)
    )
}

#[test]
fn signed_lists_verify_through_the_caller() {
    let body = jws(
        r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#,
        EXAMPLE,
        b"good",
    );
    let mut seen = None;
    let l = RevocationList::parse_signed(body.as_bytes(), |alg, kid, input, sig| {
        seen = Some((alg, kid.map(str::to_owned), input.to_vec()));
        sig == b"good"
    })
    .unwrap();
    assert_eq!(l.entries(), 7);
    let (alg, kid, input) = seen.unwrap();
    assert_eq!(alg, Alg::RS256);
    assert_eq!(kid.as_deref(), Some("k1"));
    let dot = body.rfind('.').unwrap();
    assert_eq!(input, body.as_bytes()[..dot]);
    // A trailing newline is fine.
    let with_newline = format!("{body}\n");
    assert!(
        RevocationList::parse_signed(with_newline.as_bytes(), |_, _, _, s| s == b"good").is_ok()
    );
}

#[test]
fn bad_signed_lists_are_refused() {
    let good = |_: Alg, _: Option<&str>, _: &[u8], s: &[u8]| s == b"good";
    let header = r#"{"alg":"ES256"}"#;
    for (body, want) in [
        (jws(header, EXAMPLE, b"bad"), ListError::BadSignature),
        (jws(header, EXAMPLE, b""), ListError::BadSignature),
        (EXAMPLE.to_owned(), ListError::NotSigned),
        (
            jws(r#"{"alg":"none"}"#, EXAMPLE, b"good"),
            ListError::NotSigned,
        ),
        (jws(r#"{}"#, EXAMPLE, b"good"), ListError::NotSigned),
        (
            jws(r#"{"alg":"ES256","kid":1}"#, EXAMPLE, b"good"),
            ListError::NotSigned,
        ),
        (
            jws(r#"{"alg":"ES256","crit":["exp"]}"#, EXAMPLE, b"good"),
            ListError::NotSigned,
        ),
        (
            jws(r#"{"alg":"ES256","b64":false}"#, EXAMPLE, b"good"),
            ListError::NotSigned,
        ),
        (
            jws(r#"{"alg":"ES256","alg":"HS256"}"#, EXAMPLE, b"good"),
            ListError::NotSigned,
        ),
        (
            format!("{}.x", jws(header, EXAMPLE, b"good")),
            ListError::NotSigned,
        ),
        (
            format!(" {}", jws(header, EXAMPLE, b"good")),
            ListError::NotSigned,
        ),
        (
            format!("{}\n\n", jws(header, EXAMPLE, b"good")),
            ListError::NotSigned,
        ),
        (
            jws(header, r#"{"issued_at":1,"extra":1}"#, b"good"),
            ListError::UnknownMember("extra".into()),
        ),
        (jws(header, "not json", b"good"), ListError::NotJson),
    ] {
        let got = RevocationList::parse_signed(body.as_bytes(), good).map(|l| l.entries());
        assert_eq!(got, Err(want), "{body}");
    }
}

#[test]
fn the_payload_is_not_read_before_the_signature_verifies() {
    // A payload that is not even base64 gets BadSignature, not NotJson, when unsigned.
    let body = format!("{}.!!!.{}", b64(br#"{"alg":"RS256"}"#), b64(b"sig"));
    assert_eq!(
        RevocationList::parse_signed(body.as_bytes(), |_, _, _, _| false).map(|l| l.entries()),
        Err(ListError::BadSignature)
    );
}

#[test]
fn reasons_are_stat_segments() {
    for e in [
        ListError::TooLarge,
        ListError::NotJson,
        ListError::MissingIssuedAt,
        ListError::UnknownMember("x".into()),
        ListError::BadMember("jti"),
        ListError::TooManyEntries,
        ListError::NotSigned,
        ListError::BadSignature,
        ListError::Older {
            current: 2,
            candidate: 1,
        },
        ListError::FromTheFuture {
            issued_at: 2,
            now: 1,
        },
    ] {
        assert!(
            e.reason()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{e}"
        );
        assert!(!e.to_string().is_empty());
    }
}
