use super::*;
use crate::mint;

const T0: Millis = 1_700_000_000_000;
const SEC: Millis = 1000;

fn policy() -> FetchPolicy {
    FetchPolicy::default()
}

fn fetched(ttl_secs: u64) -> Fetched {
    Fetched {
        keys: KeySet::from_json(mint::JWKS).unwrap(),
        ttl: Duration::from_secs(ttl_secs),
    }
}

fn ready(keys: &RemoteKeys, now: Millis) -> bool {
    matches!(keys.availability(now), Availability::Ready(_))
}

#[test]
#[rustfmt::skip]
fn responses_are_read_strictly() {
    let p = policy();
    let ok = mint::JWKS.as_bytes();
    let cases: Vec<(&str, Option<&str>, usize, &[u8], Option<&str>, Result<u64, &str>)> = vec![
        ("200 with keys", Some("200"), ok.len(), ok, None, Ok(600)),
        ("max-age honoured", Some("200"), ok.len(), ok, Some("public, max-age=120"), Ok(120)),
        ("max-age below the minimum", Some("200"), ok.len(), ok, Some("max-age=5"), Ok(30)),
        ("max-age above cache_duration is cut to it", Some("200"), ok.len(), ok, Some("max-age=86400"), Ok(600)),
        ("no-store is the minimum", Some("200"), ok.len(), ok, Some("no-store"), Ok(30)),
        ("garbage max-age ignored", Some("200"), ok.len(), ok, Some("max-age=soon"), Ok(600)),
        ("500", Some("500"), 5, b"oops!", None, Err("status")),
        ("Envoy's synthetic 503", Some("503"), 3, b"x", None, Err("status")),
        ("reset", None, 0, b"", None, Err("reset")),
        ("not JSON", Some("200"), 4, b"<h1>", None, Err("not_jwks")),
        ("not UTF-8", Some("200"), 2, b"\xff\xfe", None, Err("not_jwks")),
        ("no keys array", Some("200"), 2, b"{}", None, Err("not_jwks")),
        ("no usable key", Some("200"), mint::JWKS_WEAK.len(), mint::JWKS_WEAK.as_bytes(), None, Err("no_usable_key")),
        ("too large", Some("200"), MAX_JWKS_BYTES + 1, b"{}", None, Err("too_large")),
    ];
    for (name, status, size, body, cc, want) in cases {
        let got = read_response(&p, status, size, body, cc)
            .map(|f| f.ttl.as_secs())
            .map_err(|e| e.reason());
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn cold_start_waits_for_the_first_fetch() {
    let mut keys = RemoteKeys::new(policy());
    assert!(matches!(keys.availability(T0), Availability::Unavailable));
    assert!(keys.wants_fetch(T0));
    keys.fetch_started();
    assert!(!keys.wants_fetch(T0), "single flight");
    assert!(matches!(keys.availability(T0), Availability::Pending));
    keys.fetch_succeeded(T0 + 50, fetched(600));
    assert!(ready(&keys, T0 + 50));
    assert!(!keys.wants_fetch(T0 + 50));
}

#[test]
fn refresh_is_due_at_80_percent_of_the_lifetime() {
    let mut keys = RemoteKeys::new(policy());
    keys.fetch_started();
    keys.fetch_succeeded(T0, fetched(100));
    assert!(!keys.wants_fetch(T0 + 79 * SEC));
    assert!(keys.wants_fetch(T0 + 80 * SEC));
    assert_eq!(keys.next_fetch_at(), Some(T0 + 80 * SEC));
}

#[test]
fn failures_keep_last_good_keys_until_max_staleness() {
    let mut keys = RemoteKeys::new(policy());
    keys.fetch_started();
    keys.fetch_succeeded(T0, fetched(600));
    let expiry = T0 + 600 * SEC;
    keys.fetch_started();
    keys.fetch_failed(expiry, 500);
    assert!(ready(&keys, expiry + 3600 * SEC), "stale keys still serve");
    assert!(
        ready(&keys, expiry + 24 * 3600 * SEC),
        "up to max_staleness"
    );
    assert!(
        matches!(
            keys.availability(expiry + 24 * 3600 * SEC + 1),
            Availability::Unavailable
        ),
        "then no more"
    );
    assert_eq!(keys.failures(), 1);
}

#[test]
fn backoff_doubles_with_jitter_and_is_capped() {
    let mut keys = RemoteKeys::new(policy());
    let mut now = T0;
    let mut delays = Vec::new();
    for _ in 0..12 {
        keys.fetch_started();
        keys.fetch_failed(now, 500); // jitter 500: exactly the nominal delay
        let at = keys.next_fetch_at().unwrap();
        delays.push((at - now) / SEC);
        assert!(!keys.wants_fetch(at - 1) && keys.wants_fetch(at));
        now = at;
    }
    assert_eq!(
        delays,
        vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    );
    // Jitter spreads the delay over 0.8x to 1.2x.
    let mut low = RemoteKeys::new(policy());
    low.fetch_failed(T0, 0);
    let mut high = RemoteKeys::new(policy());
    high.fetch_failed(T0, 999);
    assert_eq!(low.next_fetch_at(), Some(T0 + 800));
    assert_eq!(high.next_fetch_at(), Some(T0 + 1199));
    // Success resets the backoff.
    keys.fetch_started();
    keys.fetch_succeeded(now, fetched(600));
    assert_eq!(keys.failures(), 0);
}

#[test]
fn unknown_kids_refetch_at_most_once_per_interval() {
    let mut keys = RemoteKeys::new(policy());
    keys.fetch_started();
    keys.fetch_succeeded(T0, fetched(600));
    assert!(
        keys.unknown_kid("new", T0 + SEC),
        "first unknown kid refetches"
    );
    keys.fetch_started();
    assert!(
        !keys.unknown_kid("other", T0 + 2 * SEC),
        "one in flight already"
    );
    keys.fetch_failed(T0 + 3 * SEC, 500);
    assert!(
        !keys.unknown_kid("third", T0 + 10 * SEC),
        "budget spent for 30 s"
    );
    assert!(keys.unknown_kid("fourth", T0 + 40 * SEC), "next interval");
    keys.fetch_started();
    assert!(
        !keys.may_learn_kid("fourth", T0 + 41 * SEC),
        "known unknown, though a fetch is in flight"
    );
    keys.fetch_succeeded(T0 + 41 * SEC, fetched(600));
    keys.fetch_started();
    assert!(
        keys.may_learn_kid("fourth", T0 + 42 * SEC),
        "a new key set forgets unknown kids"
    );
}

#[test]
fn a_kid_looked_for_in_vain_is_forgotten_after_unknown_kid_refetch_interval() {
    // Issue 11, item 7: one request naming the identity provider's next (predictable) kid
    // while the refetch budget is spent must not block learning that kid until the
    // scheduled refresh (8 minutes here).
    let mut keys = RemoteKeys::new(policy()); // unknown_kid_interval: 30 s
    keys.fetch_started();
    keys.fetch_succeeded(T0, fetched(600));
    assert!(keys.unknown_kid("typo", T0), "spends the budget");
    keys.fetch_started();
    keys.fetch_succeeded(T0 + 50, fetched(600));
    assert!(
        !keys.unknown_kid("next", T0 + SEC),
        "budget spent: remembered"
    );
    assert!(
        !keys.may_learn_kid("next", T0 + 30 * SEC),
        "still known unknown"
    );
    assert!(
        keys.may_learn_kid("next", T0 + 31 * SEC),
        "forgotten after 30 s"
    );
    assert!(keys.unknown_kid("next", T0 + 31 * SEC), "and refetched");
    // A refetch that fails remembers the kid again, from the new lookup, for 30 s.
    keys.fetch_started();
    keys.fetch_failed(T0 + 32 * SEC, 500);
    assert!(!keys.unknown_kid("next", T0 + 60 * SEC), "remembered again");
    assert!(keys.unknown_kid("next", T0 + 61 * SEC), "forgotten again");
}

#[test]
fn may_learn_kid_predicts_whether_waiting_helps() {
    let mut keys = RemoteKeys::new(policy());
    keys.fetch_started();
    keys.fetch_succeeded(T0, fetched(600));
    assert!(keys.may_learn_kid("new", T0), "budget available");
    assert!(keys.unknown_kid("new", T0));
    keys.fetch_started();
    assert!(!keys.may_learn_kid("new", T0 + 1), "already looked for");
    assert!(keys.may_learn_kid("other", T0 + 1), "a fetch is in flight");
    keys.fetch_failed(T0 + 2, 500);
    assert!(!keys.may_learn_kid("other", T0 + 3), "no fetch, no budget");
    assert!(keys.may_learn_kid("other", T0 + 31 * SEC), "next interval");
}

#[test]
fn a_storm_of_unknown_kids_stays_bounded() {
    let mut keys = RemoteKeys::new(policy());
    keys.fetch_started();
    keys.fetch_succeeded(T0, fetched(600));
    let refetches = (0..10_000)
        .filter(|i| keys.unknown_kid(&format!("kid-{i}"), T0 + i * 10))
        .count();
    // 10,000 kids over 100 s: one refetch per 30 s interval.
    assert_eq!(refetches, 4);
    assert!(keys.unknown_kids.len() <= MAX_UNKNOWN_KIDS);
}

#[test]
fn peers_share_key_sets_and_failures() {
    let mut keys = RemoteKeys::new(policy());
    keys.fetch_started(); // waiting for a peer's fetch
    assert!(matches!(keys.availability(T0), Availability::Pending));
    assert!(
        keys.adopt(T0 + 10, fetched(600)),
        "a peer's key set is taken"
    );
    assert!(ready(&keys, T0 + 20) && !keys.is_fetching());
    assert!(!keys.adopt(T0 + 5, fetched(600)), "an older one is not");
    assert_eq!(keys.fetched_at(), Some(T0 + 10));
    // The next refresh: the peer fails and backs off; we honour its retry time.
    keys.fetch_started();
    keys.peer_failed(T0 + 500 * SEC);
    assert!(ready(&keys, T0 + 490 * SEC), "last good keys stay");
    assert!(!keys.wants_fetch(T0 + 499 * SEC) && keys.wants_fetch(T0 + 500 * SEC));
    assert_eq!(keys.retry_at(), T0 + 500 * SEC);
}

#[test]
fn shared_records_round_trip_and_refuse_garbage() {
    let lease = Lease {
        owner: 7,
        until: T0,
        failures: 2,
        retry_at: T0 + 5,
    };
    assert_eq!(Lease::parse(lease.encode().as_bytes()), Some(lease));
    assert!(lease.held_by_other(8, T0 - 1));
    assert!(!lease.held_by_other(7, T0 - 1), "not by me");
    assert!(!lease.held_by_other(8, T0), "expired");
    for garbage in ["", "1 2 3", "1 2 3 4 5", "a b c d", "-1 2 3 4", "\u{ff}"] {
        assert_eq!(Lease::parse(garbage.as_bytes()), None, "{garbage:?}");
    }
    let version = encode_version(T0, Duration::from_secs(600));
    assert_eq!(
        parse_version(version.as_bytes()),
        Some((T0, Duration::from_secs(600)))
    );
    assert_eq!(parse_version(b"x y"), None);
}

#[test]
#[rustfmt::skip]
fn urls_split_into_request_targets() {
    let t = |s: &str, a: &str, p: &str| Some(Target { scheme: s.into(), authority: a.into(), path: p.into() });
    let cases: Vec<(&str, Option<Target>)> = vec![
        ("https://idp.example/jwks", t("https", "idp.example", "/jwks")),
        ("http://idp:8080", t("http", "idp:8080", "/")),
        ("https://idp/a/b?x=1", t("https", "idp", "/a/b?x=1")),
        ("https://idp?x=1", t("https", "idp", "/?x=1")),
        ("ftp://idp/jwks", None),
        ("idp/jwks", None),
        ("https:///jwks", None),
        ("https://user@idp/jwks", None),
        ("https://idp/jwks#frag", None),
    ];
    for (url, want) in cases {
        assert_eq!(Target::parse(url), want, "{url}");
    }
}

#[test]
fn discovery_documents_yield_the_jwks_uri() {
    let doc = br#"{"issuer":"https://idp","jwks_uri":"https://keys.idp/certs"}"#;
    assert_eq!(
        read_discovery(Some("200"), doc).unwrap(),
        Target::parse("https://keys.idp/certs").unwrap()
    );
    let failures: Vec<(Option<&str>, &[u8], &str)> = vec![
        (Some("404"), b"", "status"),
        (None, b"", "reset"),
        (Some("200"), b"{}", "discovery"),
        (
            Some("200"),
            br#"{"jwks_uri":"file:///etc/keys"}"#,
            "discovery",
        ),
        (Some("200"), br#"{"jwks_uri":7}"#, "discovery"),
        (Some("200"), b"<html>", "discovery"),
    ];
    for (status, body, want) in failures {
        assert_eq!(read_discovery(status, body).unwrap_err().reason(), want);
    }
}

/// A provider fetched with a 2 s timeout under the default policy (600 s lifetime, 300 s
/// maximum backoff).
const TIMEOUT: Duration = Duration::from_secs(2);

#[test]
fn a_far_future_fetched_at_does_not_pin_a_key_set() {
    let p = policy();
    // Written by anyone in the namespace: "fetched" in the year 2500, good for 600 s.
    let hostile = encode_version(16_725_225_600_000, Duration::from_secs(600));
    assert_eq!(read_version(hostile.as_bytes(), &p, T0), None, "ignored");
    let skewed = encode_version(T0 + 6 * SEC, Duration::from_secs(600));
    assert_eq!(
        read_version(skewed.as_bytes(), &p, T0),
        None,
        "past the 5 s skew"
    );
    // A peer's clock read a moment later than ours is believed.
    let ahead = encode_version(T0 + 4 * SEC, Duration::from_secs(600));
    let (at, ttl) = read_version(ahead.as_bytes(), &p, T0).unwrap();
    assert_eq!(at, T0 + 4 * SEC);
    // Had the hostile record been believed, a genuine later key set would look older and be
    // refused; from the bounded one, the next genuine key set is taken.
    let mut keys = RemoteKeys::new(p.clone());
    assert!(keys.adopt(
        at,
        Fetched {
            ttl,
            ..fetched(600)
        }
    ));
    assert!(
        keys.adopt(T0 + 5 * SEC, fetched(600)),
        "a genuine later key set"
    );
    let mut pinned = RemoteKeys::new(p);
    assert!(pinned.adopt(16_725_225_600_000, fetched(600)));
    assert!(
        !pinned.adopt(T0 + 5 * SEC, fetched(600)),
        "what the bound prevents: an unbounded record pins its key set"
    );
}

#[test]
fn a_huge_ttl_is_clamped_to_the_providers_policy() {
    let p = FetchPolicy {
        cache_duration: Duration::from_secs(300),
        min_cache_duration: Duration::from_secs(30),
        max_cache_duration: Duration::from_secs(300),
        ..policy()
    };
    let record = |ttl_ms: u64| format!("{T0} {ttl_ms}");
    let ttl = |text: String| read_version(text.as_bytes(), &p, T0).map(|(_, ttl)| ttl.as_secs());
    assert_eq!(
        ttl(record(u64::MAX)),
        Some(300),
        "never past max_cache_duration"
    );
    assert_eq!(ttl(record(86_400_000)), Some(300));
    assert_eq!(ttl(record(0)), Some(30), "never under min_cache_duration");
    assert_eq!(ttl(record(120_000)), Some(120), "a genuine one is kept");
    // So a key set adopted from it is refreshed within the policy's lifetime.
    let (at, ttl) = read_version(record(u64::MAX).as_bytes(), &p, T0).unwrap();
    let mut keys = RemoteKeys::new(p.clone());
    keys.adopt(
        at,
        Fetched {
            ttl,
            ..fetched(600)
        },
    );
    assert!(keys.wants_fetch(T0 + 240 * SEC), "refresh at 80% of 300 s");
    // A record whose key set is past use (lifetime and max_staleness over) is not adopted.
    let old = format!("{} 300000", T0 - 300 * SEC - millis(p.max_staleness) - 1);
    assert_eq!(read_version(old.as_bytes(), &p, T0), None);
    assert_eq!(read_version(b"x y", &p, T0), None);
}

#[test]
fn a_huge_lease_does_not_stop_fetching() {
    let p = policy();
    let me = 1;
    let hostile = Lease {
        owner: 9,
        until: u64::MAX,
        failures: 0,
        retry_at: 0,
    };
    assert!(hostile.held_by_other(me, T0), "what the bound prevents");
    assert!(!hostile
        .bounded(T0, TIMEOUT, p.max_retry_delay())
        .held_by_other(me, T0));
    // Just past what a fetch started now could hold: released too.
    let over = Lease {
        until: lease_until(T0, TIMEOUT) + 1,
        ..hostile
    };
    assert!(!over
        .bounded(T0, TIMEOUT, p.max_retry_delay())
        .held_by_other(me, T0));
    // A genuine lease, taken now or a moment ago, is held until it ends.
    for taken in [T0, T0 - 500] {
        let genuine = Lease {
            until: lease_until(taken, TIMEOUT),
            ..hostile
        };
        assert_eq!(genuine.bounded(T0, TIMEOUT, p.max_retry_delay()), genuine);
        assert!(genuine
            .bounded(T0, TIMEOUT, p.max_retry_delay())
            .held_by_other(me, T0 + SEC));
    }
    assert_eq!(lease_until(T0, TIMEOUT), T0 + 3 * SEC, "timeout + 1 s");
}

#[test]
fn a_huge_shared_backoff_does_not_stop_fetching() {
    let p = policy();
    let hostile = Lease {
        owner: 9,
        until: 0,
        failures: u32::MAX,
        retry_at: u64::MAX,
    };
    assert_eq!(
        hostile.bounded(T0, TIMEOUT, p.max_retry_delay()).retry_at,
        0,
        "counts as none"
    );
    // The longest genuine backoff: max_backoff (300 s) at the largest jitter.
    let mut keys = RemoteKeys::new(p.clone());
    for _ in 0..30 {
        keys.fetch_started();
        keys.fetch_failed(T0, 999);
    }
    let genuine = Lease {
        retry_at: keys.retry_at(),
        ..hostile
    };
    assert!(keys.retry_at() > T0 + 300 * SEC);
    assert_eq!(
        genuine.bounded(T0, TIMEOUT, p.max_retry_delay()).retry_at,
        keys.retry_at()
    );
    let over = Lease {
        retry_at: T0 + p.max_retry_delay() + 1,
        ..hostile
    };
    assert_eq!(over.bounded(T0, TIMEOUT, p.max_retry_delay()).retry_at, 0);
}

#[test]
fn a_huge_shared_key_set_is_ignored() {
    let ok = mint::JWKS.as_bytes();
    assert!(read_shared_key_set(ok).is_some());
    // A valid JWKS padded past 1 MiB with spaces: a fetch refuses it, and so does a peer.
    let mut padded = ok.to_vec();
    padded.resize(MAX_JWKS_BYTES + 1, b' ');
    assert!(KeySet::from_slice(&padded).is_ok(), "it would parse");
    assert!(read_shared_key_set(&padded).is_none());
    assert!(read_shared_key_set(b"\xff").is_none());
    assert!(read_shared_key_set(mint::JWKS_WEAK.as_bytes()).is_none());
}
