use super::*;
use crate::mint;
use crate::signature::PureRust;
use serde_json::json;

/// 2023-11-14T22:13:20Z in milliseconds.
const T0: Millis = 1_700_000_000_000;
const S: Millis = 1000;

fn policy(cache_s: u64, stale_s: u64) -> ListPolicy {
    ListPolicy {
        cache_duration: Duration::from_secs(cache_s),
        max_staleness: Duration::from_secs(stale_s),
        require_signed: false,
    }
}

fn doc(issued_at_ms: Millis, jti: &[&str]) -> String {
    json!({ "issued_at": issued_at_ms / 1000, "jti": jti }).to_string()
}

fn ok(body: &str) -> ListResponse<'_> {
    ListResponse {
        status: Some("200"),
        body_size: body.len(),
        body: body.as_bytes(),
        ..ListResponse::default()
    }
}

fn unsigned(_: Alg, _: Option<&str>, _: &[u8], _: &[u8]) -> bool {
    panic!("an unsigned list is never verified")
}

fn entries_at(f: &ListFetch, now: Millis) -> Option<usize> {
    match f.availability(now) {
        ListAvailability::Ready(l) => Some(l.entries()),
        _ => None,
    }
}

#[test]
fn fetches_at_load_then_every_cache_duration_down_to_one_second() {
    let mut f = ListFetch::new(policy(1, 5));
    assert!(f.wants_fetch(T0), "at load");
    assert!(matches!(f.availability(T0), ListAvailability::Unavailable));
    f.fetch_started();
    assert!(!f.wants_fetch(T0));
    assert!(
        matches!(f.availability(T0), ListAvailability::Pending),
        "cold start waits"
    );
    let body = doc(T0, &["a", "b"]);
    assert_eq!(
        f.fetch_done(T0, ok(&body), unsigned, 0),
        Ok(Fetched::Replaced {
            issued_at: (T0 / 1000) as i64,
            entries: 2
        })
    );
    assert_eq!(entries_at(&f, T0), Some(2));
    assert_eq!(f.entries(), 2);
    assert!(!f.wants_fetch(T0 + 999));
    assert!(f.wants_fetch(T0 + S), "1s as configured: no hidden floor");
    assert_eq!(f.next_fetch_at(), Some(T0 + S));
}

#[test]
fn cache_control_only_shortens_and_never_below_a_second() {
    let p = policy(30, 300);
    assert_eq!(p.ttl(None), Duration::from_secs(30));
    assert_eq!(p.ttl(Some("max-age=10")), Duration::from_secs(10));
    assert_eq!(p.ttl(Some("public, max-age=3600")), Duration::from_secs(30));
    assert_eq!(p.ttl(Some("no-cache")), Duration::from_secs(1));
    assert_eq!(p.ttl(Some("max-age=0")), Duration::from_secs(1));
    let mut f = ListFetch::new(p);
    let body = doc(T0, &["a"]);
    let response = ListResponse {
        cache_control: Some("max-age=5"),
        ..ok(&body)
    };
    f.fetch_started();
    f.fetch_done(T0, response, unsigned, 0).unwrap();
    assert!(!f.wants_fetch(T0 + 4 * S));
    assert!(f.wants_fetch(T0 + 5 * S));
}

#[test]
fn a_304_to_our_etag_keeps_the_list_and_restarts_its_age() {
    let mut f = ListFetch::new(policy(10, 20));
    assert_eq!(f.etag(), None);
    let body = doc(T0, &["a"]);
    f.fetch_started();
    f.fetch_done(
        T0,
        ListResponse {
            etag: Some("\"v1\""),
            ..ok(&body)
        },
        unsigned,
        0,
    )
    .unwrap();
    assert_eq!(f.etag(), Some("\"v1\""), "sent back as If-None-Match");
    assert_eq!(f.age_seconds(T0 + 10 * S), Some(10));
    f.fetch_started();
    let not_modified = ListResponse {
        status: Some("304"),
        ..ListResponse::default()
    };
    assert_eq!(
        f.fetch_done(T0 + 10 * S, not_modified, unsigned, 0),
        Ok(Fetched::NotModified)
    );
    assert_eq!(f.age_seconds(T0 + 10 * S), Some(0));
    assert_eq!(
        entries_at(&f, T0 + 29 * S),
        Some(1),
        "stale only 20s after the 304"
    );
    assert_eq!(entries_at(&f, T0 + 31 * S), None);
}

#[test]
fn a_304_without_our_etag_is_a_failed_fetch() {
    let not_modified = ListResponse {
        status: Some("304"),
        ..ListResponse::default()
    };
    let mut f = ListFetch::new(policy(10, 20));
    f.fetch_started();
    assert_eq!(
        f.fetch_done(T0, not_modified, unsigned, 0),
        Err(ListFailure::Status(304))
    );
    // A list served without an ETag: nothing was asked, so a 304 confirms nothing.
    let body = doc(T0, &["a"]);
    f.fetch_done(T0, ok(&body), unsigned, 0).unwrap();
    let got = f.fetch_done(T0 + 10 * S, not_modified, unsigned, 0);
    assert_eq!(got.map_err(|e| e.reason()), Err("status"));
    assert_eq!(f.age_seconds(T0 + 10 * S), Some(10));
}

#[test]
fn failures_keep_the_last_good_list_until_max_staleness_and_back_off() {
    let mut f = ListFetch::new(policy(8, 30));
    let body = doc(T0, &["a"]);
    f.fetch_started();
    f.fetch_done(T0, ok(&body), unsigned, 0).unwrap();
    let failing = [
        (
            ListResponse {
                status: Some("503"),
                ..ListResponse::default()
            },
            "status",
        ),
        (ListResponse::default(), "reset"),
        (ok("{\"jtis\": []}"), "bad_list"),
        (ok("not json"), "not_json"),
    ];
    let mut now = T0 + 8 * S;
    // Backoff at the lowest jitter (x 0.8): 1 s, 2 s, 4 s, then capped by cache_duration (8 s).
    for ((response, reason), delay) in failing.into_iter().zip([800, 1600, 3200, 6400]) {
        assert!(f.wants_fetch(now));
        f.fetch_started();
        assert_eq!(
            f.fetch_done(now, response, unsigned, 0)
                .map_err(|e| e.reason()),
            Err(reason)
        );
        assert_eq!(
            entries_at(&f, now),
            Some(1),
            "last good kept after {reason}"
        );
        assert!(!f.wants_fetch(now + delay - 1), "{reason}");
        assert!(f.wants_fetch(now + delay), "{reason}");
        now += delay;
    }
    assert_eq!(f.failures(), 4);
    f.fetch_failed(now, 999);
    // 8 s (capped) at the highest jitter (999: x 1.1996).
    assert_eq!(f.next_fetch_at(), Some(now + 9_592));
    assert_eq!(entries_at(&f, T0 + 30 * S), Some(1));
    assert!(
        matches!(
            f.availability(T0 + 30 * S + 1),
            ListAvailability::Unavailable
        ),
        "past max_staleness: revocation_unavailable"
    );
    // Recovery.
    let newer = doc(T0 + 40 * S, &["a", "b"]);
    f.fetch_started();
    f.fetch_done(T0 + 40 * S, ok(&newer), unsigned, 0).unwrap();
    assert_eq!(entries_at(&f, T0 + 40 * S), Some(2));
    assert_eq!(f.failures(), 0);
}

#[test]
fn an_older_list_never_replaces_ours() {
    let mut f = ListFetch::new(policy(1, 5));
    let new = doc(T0, &["revoked"]);
    f.fetch_done(T0, ok(&new), unsigned, 0).unwrap();
    let old = doc(T0 - 60 * S, &[]);
    let got = f.fetch_done(T0 + S, ok(&old), unsigned, 0);
    assert_eq!(got.map_err(|e| e.reason()), Err("older"));
    assert_eq!(
        entries_at(&f, T0 + S),
        Some(1),
        "a replayed old list un-revokes nothing"
    );
    let future = doc(T0 + 3600 * S, &[]);
    let got = f.fetch_done(T0 + S, ok(&future), unsigned, 0);
    assert_eq!(got.map_err(|e| e.reason()), Err("future"));
    // Another VM's older list is not adopted either.
    let old = RevocationList::parse(old.as_bytes()).unwrap();
    assert!(!f.adopt(T0 + 2 * S, T0 + 2 * S, old, Duration::from_secs(1), None));
    assert_eq!(f.entries(), 1);
}

#[test]
fn too_large_bodies_are_refused_before_reading() {
    let mut f = ListFetch::new(policy(1, 5));
    let body = doc(T0, &[]);
    let announced = ListResponse {
        body_size: MAX_BODY_BYTES + 1,
        ..ok(&body)
    };
    let got = f.fetch_done(T0, announced, unsigned, 0);
    assert_eq!(got, Err(ListFailure::List(ListError::TooLarge)));
}

#[test]
fn signed_lists_verify_with_the_providers_key_set() {
    let keys = KeySet::from_json(mint::JWKS).unwrap();
    let mut p = policy(1, 5);
    p.require_signed = true;
    let mut f = ListFetch::new(p);
    let payload = json!({ "issued_at": T0 / 1000, "sub": ["mallory"] });
    let header = json!({ "alg": "RS256", "kid": "rsa-a" });
    let signed = mint::sign(&header, &payload, "RS256", mint::Key::RsaA);
    let verify = || key_set_verifier(Some(&keys), &PureRust);
    assert!(f.fetch_done(T0, ok(&signed), verify(), 0).is_ok());
    // The same list unsigned, signed by a key the provider lacks, tampered, or with no keys.
    let unsigned_body = payload.to_string();
    let weak = mint::sign(
        &json!({ "alg": "RS256" }),
        &payload,
        "RS256",
        mint::Key::RsaWeak,
    );
    let tampered = mint::tampered(&signed);
    for (name, body, reason) in [
        ("unsigned", unsigned_body.as_str(), "not_signed"),
        ("foreign key", weak.as_str(), "bad_signature"),
        ("tampered", tampered.as_str(), "bad_signature"),
    ] {
        let got = f.fetch_done(T0 + S, ok(body), verify(), 0);
        assert_eq!(got.map_err(|e| e.reason()), Err(reason), "{name}");
        assert_eq!(f.entries(), 1, "{name}: the last good list stays");
    }
    let got = f.fetch_done(T0 + S, ok(&signed), key_set_verifier(None, &PureRust), 0);
    assert_eq!(
        got.map_err(|e| e.reason()),
        Err("bad_signature"),
        "no key set yet"
    );
}

#[test]
fn etags_worth_keeping() {
    assert_eq!(etag(" \"abc\" ").as_deref(), Some("\"abc\""));
    assert_eq!(etag("W/\"abc\"").as_deref(), Some("W/\"abc\""));
    assert_eq!(etag(""), None);
    assert_eq!(etag("a\r\nx-injected: 1"), None);
    assert_eq!(etag(&"x".repeat(MAX_ETAG_BYTES + 1)), None);
}

#[test]
fn every_failure_reason_has_a_counter() {
    for failure in [
        ListFailure::Status(500),
        ListFailure::Dispatch,
        ListFailure::Reset,
        ListFailure::List(ListError::TooLarge),
        ListFailure::List(ListError::NotJson),
        ListFailure::List(ListError::MissingIssuedAt),
        ListFailure::List(ListError::TooManyEntries),
        ListFailure::List(ListError::NotSigned),
        ListFailure::List(ListError::BadSignature),
        ListFailure::List(ListError::Older {
            current: 2,
            candidate: 1,
        }),
        ListFailure::List(ListError::FromTheFuture {
            issued_at: 2,
            now: 1,
        }),
    ] {
        assert!(
            crate::metrics::REVOCATION_FETCH_FAILURE_REASONS.contains(&failure.reason()),
            "{failure}"
        );
    }
}

#[test]
fn one_vm_fetches_and_the_others_adopt_from_shared_data() {
    let mut a = ListFetch::new(policy(10, 60));
    let mut b = ListFetch::new(policy(10, 60));
    let body = doc(T0, &["a", "b"]);
    a.fetch_started();
    a.fetch_done(
        T0,
        ListResponse {
            etag: Some("\"v1\""),
            ..ok(&body)
        },
        unsigned,
        0,
    )
    .unwrap();
    let version = a.shared_version().unwrap();
    assert_eq!(version, format!("{T0} 10000 \"v1\""));
    assert_eq!(
        b.adopt_shared(T0 + 5, version.as_bytes(), body.as_bytes(), unsigned),
        Ok(true)
    );
    assert_eq!(entries_at(&b, T0 + 5), Some(2));
    assert_eq!(b.etag(), Some("\"v1\""));
    assert!(
        !b.wants_fetch(T0 + 9 * S),
        "b fetches no sooner than a would"
    );
    // The same record again: nothing newer.
    assert_eq!(
        b.adopt_shared(T0 + 6, version.as_bytes(), body.as_bytes(), unsigned),
        Ok(false)
    );
}

#[test]
fn shared_records_are_bounded_before_they_are_believed() {
    let mut b = ListFetch::new(policy(10, 60));
    let body = doc(T0, &["a"]);
    let version = |at: Millis, ttl: u64| format!("{at} {ttl} -");
    for (name, record, want) in [
        ("from the future", version(T0 + 60 * S, 10_000), Ok(false)),
        (
            "past max_staleness",
            version(T0 - 61 * S, 10_000),
            Ok(false),
        ),
        ("not a record", "soon".to_owned(), Ok(false)),
        ("a field too many", format!("{T0} 1 - x"), Ok(false)),
    ] {
        assert_eq!(
            b.adopt_shared(T0, record.as_bytes(), body.as_bytes(), unsigned),
            want,
            "{name}"
        );
        assert_eq!(b.entries(), 0, "{name}");
    }
    // A lifetime beyond cache_duration is clamped; within SHARED_CLOCK_SKEW is fine.
    let ahead = version(T0 + 2 * S, 3_600_000);
    assert_eq!(
        b.adopt_shared(T0, ahead.as_bytes(), body.as_bytes(), unsigned),
        Ok(true)
    );
    assert!(b.wants_fetch(T0 + 12 * S), "ttl clamped to cache_duration");
    // A bad body is refused like a fetched one, and leaves the list in force alone.
    let later = version(T0 + 3 * S, 10_000);
    let got = b.adopt_shared(T0 + 3 * S, later.as_bytes(), b"{\"jti\": []}", unsigned);
    assert_eq!(got.map_err(|e| e.reason()), Err("bad_list"));
    assert_eq!(b.entries(), 1);
    // Under require_signed, a peer's body is verified as a fetched one is.
    let mut p = policy(10, 60);
    p.require_signed = true;
    let mut c = ListFetch::new(p);
    let got = c.adopt_shared(T0, later.as_bytes(), body.as_bytes(), |_, _, _, _| true);
    assert_eq!(got.map_err(|e| e.reason()), Err("not_signed"));
}

#[test]
fn a_peers_304_confirms_our_list_without_reading_the_body_again() {
    let mut a = ListFetch::new(policy(10, 60));
    let mut b = ListFetch::new(policy(10, 60));
    let body = doc(T0, &["a", "b"]);
    a.fetch_started();
    let response = ListResponse {
        etag: Some("\"v1\""),
        ..ok(&body)
    };
    a.fetch_done(T0, response, unsigned, 0).unwrap();
    let version = a.shared_version().unwrap();
    assert_eq!(
        b.adopt_shared(T0, version.as_bytes(), body.as_bytes(), unsigned),
        Ok(true)
    );
    // Ten seconds later a's conditional GET gets a 304: only the version record changes.
    a.fetch_started();
    let not_modified = ListResponse {
        status: Some("304"),
        ..ListResponse::default()
    };
    let later = T0 + 10 * S;
    assert_eq!(
        a.fetch_done(later, not_modified, unsigned, 0),
        Ok(Fetched::NotModified)
    );
    let confirmed = a.shared_version().unwrap();
    assert_eq!(
        b.adopt_shared(later, confirmed.as_bytes(), b"not read", unsigned),
        Ok(true),
        "the same ETag confirms: the body is not read"
    );
    assert_eq!(b.age_seconds(later), Some(0), "its age restarts");
    assert_eq!(
        entries_at(&b, later + 50 * S),
        Some(2),
        "good for max_staleness again"
    );
    assert!(!b.wants_fetch(later + 9 * S));
    // A record under another ETag is a new list: its body is read (and this one refused).
    let other = format!("{} 10000 \"v2\"", later + S);
    let got = b.adopt_shared(later + S, other.as_bytes(), b"not read", unsigned);
    assert_eq!(got.map_err(|e| e.reason()), Err("not_json"));
    assert_eq!(b.entries(), 2);
}
