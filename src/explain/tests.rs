//! `explain` natively: the command line, the clock, the request, and decisions with their steps
//! (tokens minted from the fixture keys; the binary itself is run in tests/explain.rs).

use serde_json::{json, Value};

use super::*;
use crate::mint;
use crate::trace::Check;

/// 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000;
const ISS: &str = "https://example.com";

fn args(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|a| a.as_bytes().to_vec()).collect()
}

fn config_json() -> Value {
    json!({
        "providers": {
            "local": {
                "issuer": ISS,
                "audiences": ["api"],
                "local_jwks": { "inline_string": mint::JWKS },
                "claim_to_headers": [{ "header_name": "x-jwt-sub", "claim_name": "sub" }],
            },
            "remote": {
                "issuer": "https://remote.example",
                "from_headers": [{ "name": "x-remote-token" }],
                "remote_jwks": { "http_uri": { "uri": "https://remote.example/jwks",
                    "cluster": "idp", "timeout": "1s" } },
            },
        },
        "rules": [
            { "match": { "prefix": "/remote" }, "requires": { "provider_name": "remote" } },
            { "match": { "prefix": "/public" } },
            { "match": { "prefix": "/" }, "requires": { "provider_name": "local" } },
        ],
    })
}

fn config() -> Config {
    Config::from_json(config_json().to_string().as_bytes()).unwrap()
}

fn run(config: &Config, keys: &Keys<'_>, url: &str, headers: &[(&str, &str)]) -> Explanation {
    let headers: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
        .collect();
    let pairs = request_headers("GET", url, &headers).unwrap();
    explain(
        config,
        keys,
        format!("GET {url}"),
        pairs,
        PeerFacts::none(),
        NOW,
    )
}

fn token(patch: Value) -> String {
    let mut claims = json!({ "iss": ISS, "sub": "alice", "aud": "api", "exp": NOW + 600 });
    for (k, v) in patch.as_object().unwrap() {
        claims[k] = v.clone();
    }
    mint::token("RS256", &claims)
}

fn checks(e: &Explanation) -> Vec<(Check, bool)> {
    e.steps
        .iter()
        .filter_map(|s| match s {
            Step::Checked { check, result, .. } => Some((*check, result.is_ok())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_good_token_is_let_through_with_each_check_passed_and_the_upstream_headers() {
    let cfg = config();
    let keys = Keys::new(&cfg, vec![]).unwrap();
    let t = token(json!({}));
    let e = run(
        &cfg,
        &keys,
        "https://api.example.com/orders/7",
        &[
            ("authorization", &format!("Bearer {t}")),
            ("x-jwt-sub", "mallory"),
        ],
    );
    assert_eq!(e.exit_code(), 0);
    assert_eq!(e.status(), 200);
    assert_eq!(
        checks(&e),
        [
            (Check::Issuer, true),
            (Check::Key, true),
            (Check::Signature, true),
            (Check::Time, true),
            (Check::Audience, true)
        ]
    );
    let Outcome::Forwarded { headers, .. } = &e.outcome else {
        panic!("{e:?}")
    };
    let subs: Vec<&[u8]> = headers
        .iter()
        .filter(|(n, _)| n == "x-jwt-sub")
        .map(|(_, v)| v.as_slice())
        .collect();
    assert_eq!(subs, [b"alice"], "the client's copy replaced: {headers:?}");
    assert!(headers.contains(&(":authority".into(), b"api.example.com".to_vec())));
    let text = e.text();
    assert!(text.contains("rules[2] matches"), "{text}");
    assert!(text.contains("result   let through (exit 0)"), "{text}");
    assert!(text.contains("x-jwt-sub: alice"), "{text}");
    // Never the token itself, in either rendering.
    assert!(!text.contains(&t), "{text}");
    assert!(!e.json().to_string().contains(&t));
}

#[test]
fn an_expired_token_fails_the_time_check_with_the_clock_shown() {
    let cfg = config();
    let keys = Keys::new(&cfg, vec![]).unwrap();
    let t = token(json!({ "exp": NOW - 3600 }));
    let e = run(
        &cfg,
        &keys,
        "https://api.example.com/orders",
        &[("authorization", &format!("Bearer {t}"))],
    );
    assert_eq!(e.exit_code(), 1);
    assert_eq!(
        e.outcome,
        Outcome::Answered {
            status: 401,
            www_authenticate: Some(
                "Bearer realm=\"https://api.example.com/orders\", error=\"invalid_token\"".into()
            ),
            body: "Jwt is expired".into(),
        }
    );
    assert_eq!(
        checks(&e),
        [
            (Check::Issuer, true),
            (Check::Key, true),
            (Check::Signature, true),
            (Check::Time, false)
        ]
    );
    let text = e.text();
    assert!(
        text.contains("time      FAILED: Jwt is expired (expired) — now 1700000000, clock skew 60s, exp 1699996400 (-3600s from now)"),
        "{text}"
    );
    assert!(
        text.contains("clock    1700000000 (2023-11-14T22:13:20Z)"),
        "{text}"
    );
    let j = e.json();
    assert_eq!(j["status"], 401);
    assert_eq!(j["reason"], "expired");
    assert_eq!(j["upstream_headers"], Value::Null);
    assert_eq!(j["exit"], 1);
    assert!(j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["step"] == "check" && s["check"] == "time" && s["result"]["ok"] == false));
}

#[test]
fn a_missing_token_gets_the_bare_challenge_and_a_public_route_needs_none() {
    let cfg = config();
    let keys = Keys::new(&cfg, vec![]).unwrap();
    let e = run(&cfg, &keys, "http://api.example.com/orders?x=1", &[]);
    let j = e.json();
    assert_eq!(j["status"], 401);
    assert_eq!(
        j["www_authenticate"],
        "Bearer realm=\"http://api.example.com/orders?x=1\""
    );
    assert!(e.text().contains("token    local: none at header authorization, prefix \"Bearer \", query parameter access_token"), "{}", e.text());
    let e = run(&cfg, &keys, "http://api.example.com/public", &[]);
    assert_eq!((e.exit_code(), e.status()), (0, 200));
    assert!(e.text().contains("rules[1] matches; it has no `requires`"));
}

#[test]
fn a_remote_provider_uses_the_key_set_given_and_has_none_without() {
    let cfg = config();
    let claims = json!({ "iss": "https://remote.example", "sub": "svc", "exp": NOW + 60 });
    let t = mint::token("ES256", &claims);
    let headers = [("x-remote-token", t.as_str())];
    let none = Keys::new(&cfg, vec![]).unwrap();
    let e = run(&cfg, &none, "http://api.example.com/remote", &headers);
    assert_eq!(e.failure.map(|f| f.0), Some("keys_unavailable"));
    assert!(e
        .notes
        .iter()
        .any(|n| n.contains("remote_jwks and no --jwks")));
    // Unnamed: the one remote provider.
    let given = Keys::new(&cfg, vec![(None, "k.json".into(), mint::JWKS.into())]).unwrap();
    let e = run(&cfg, &given, "http://api.example.com/remote", &headers);
    assert_eq!(e.exit_code(), 0, "{}", e.text());
    assert_eq!(
        e.notes,
        ["provider \"remote\": keys from k.json (7 usable)"],
        "{:?}",
        e.notes
    );
}

#[test]
fn fetch_jwks_fetches_each_remote_provider_not_given() {
    let cfg = config();
    let want = Fetch {
        provider: "remote".into(),
        url: "https://remote.example/jwks".into(),
        discovery: false,
        timeout_seconds: 1,
    };
    assert_eq!(fetches(&cfg, &[]), std::slice::from_ref(&want));
    assert_eq!(fetches(&cfg, &[Some("local".into())]), [want]);
    assert_eq!(fetches(&cfg, &[Some("remote".into())]), []);
    // An unnamed --jwks is the one remote provider's.
    assert_eq!(fetches(&cfg, &[None]), []);
    let Command::Explain(o) = parse_args(&args(&[
        "--config",
        "c",
        "--request",
        "GET /",
        "--fetch-jwks",
    ]))
    .unwrap() else {
        panic!()
    };
    assert!(o.fetch_jwks);
    assert_eq!(
        fetched_jwks("200", mint::JWKS.as_bytes()),
        Ok(mint::JWKS.into())
    );
    assert!(fetched_jwks("404", b"").unwrap_err().contains("404"));
    assert!(fetched_jwks("200", b"<html>").is_err());
    assert_eq!(
        discovered_jwks_url("200", br#"{"jwks_uri": "https://idp.example/keys?x=1"}"#),
        Ok("https://idp.example/keys?x=1".to_owned())
    );
    assert!(discovered_jwks_url("200", b"{}").is_err());
}

#[test]
fn key_sets_that_cannot_be_placed_or_loaded_are_usage_errors() {
    let cfg = config();
    let bad = Keys::new(
        &cfg,
        vec![(Some("nope".into()), "k.json".into(), mint::JWKS.into())],
    );
    assert!(bad
        .err()
        .unwrap()
        .contains("no provider \"nope\" (providers: local, remote)"));
    let broken = Keys::new(
        &cfg,
        vec![(Some("local".into()), "k.json".into(), b"{".to_vec())],
    );
    assert!(broken
        .err()
        .unwrap()
        .contains("--jwks k.json (provider \"local\")"));
    let twice = Keys::new(
        &cfg,
        vec![
            (Some("remote".into()), "a".into(), mint::JWKS.into()),
            (None, "b".into(), mint::JWKS.into()),
        ],
    );
    assert!(twice.err().unwrap().contains("given twice"));
}

#[test]
fn the_command_line_reads_every_option() {
    let Command::Explain(o) = parse_args(&args(&[
        "--config",
        "c.json",
        "--request=POST https://a.example/x",
        "-H",
        "Authorization:  Bearer abc ",
        "--header",
        ":authority: b.example",
        "--jwks",
        "p1=k1.json",
        "--jwks",
        "./dir=x/k2.json",
        "--now",
        "2023-11-14T22:13:20Z",
        "--peer-uri-san",
        "spiffe://cluster.local/ns/a/sa/b",
        "--json",
    ]))
    .unwrap() else {
        panic!()
    };
    assert_eq!(o.config, "c.json");
    assert_eq!(
        (o.method.as_str(), o.url.as_str()),
        ("POST", "https://a.example/x")
    );
    assert_eq!(
        o.headers,
        [
            ("authorization".to_owned(), b"Bearer abc".to_vec()),
            (":authority".to_owned(), b"b.example".to_vec())
        ]
    );
    assert_eq!(
        o.jwks,
        [
            (Some("p1".to_owned()), "k1.json".to_owned()),
            (None, "./dir=x/k2.json".to_owned())
        ]
    );
    assert_eq!(o.now, Some(NOW));
    assert!(o.json && o.peer_uri_san.is_some() && o.peer_cert_digest.is_none());
    assert_eq!(
        parse_args(&args(&["check-config", "c.json", "--json"])),
        Ok(Command::CheckConfig {
            path: "c.json".into(),
            json: true
        })
    );
    assert_eq!(parse_args(&args(&["--help"])), Ok(Command::Help));
    for (bad, why) in [
        (&["--request", "GET /"][..], "--config FILE is required"),
        (&["--config", "c"], "--request 'METHOD URL' is required"),
        (
            &["--config", "c", "--request", "GET"],
            "expected 'METHOD URL'",
        ),
        (
            &["--config", "c", "--config", "d"],
            "--config is given twice",
        ),
        (&["--bogus"], "unknown option --bogus"),
        (&["--config"], "--config needs a value"),
        (&["-H", "no colon"], "expected 'NAME: VALUE'"),
        (&["--now", "yesterday"], "--now \"yesterday\""),
        (
            &["check-config"],
            "check-config needs the configuration file",
        ),
        (
            &["check-config", "c", "--now", "1"],
            "check-config takes only",
        ),
    ] {
        let got = parse_args(&args(bad)).unwrap_err();
        assert!(got.contains(why), "{bad:?}: {got}");
    }
}

#[test]
fn a_header_value_may_be_any_bytes() {
    let Command::Explain(o) = parse_args(&[
        b"--config".to_vec(),
        b"c".to_vec(),
        b"--request".to_vec(),
        b"GET /".to_vec(),
        b"-H".to_vec(),
        b"x-a: \xff\xfe".to_vec(),
    ])
    .unwrap() else {
        panic!()
    };
    assert_eq!(o.headers, [("x-a".to_owned(), vec![0xff, 0xfe])]);
    assert_eq!(shown_value("x-a", &o.headers[0].1), "\\xff\\xfe");
}

#[test]
fn now_is_unix_seconds_or_rfc3339() {
    for (text, want) in [
        ("1700000000", NOW),
        ("0", 0),
        ("2023-11-14T22:13:20Z", NOW),
        ("2023-11-14t22:13:20z", NOW),
        ("2023-11-14 22:13:20Z", NOW),
        ("2023-11-14T22:13:20.999Z", NOW),
        ("2023-11-14T23:43:20+01:30", NOW),
        ("2023-11-14T21:13:20-01:00", NOW),
        ("1970-01-01T00:00:00Z", 0),
        ("2100-01-01T00:00:00Z", 4_102_444_800),
        ("2024-02-29T00:00:00Z", 1_709_164_800),
    ] {
        assert_eq!(parse_now(text), Ok(want), "{text}");
    }
    for bad in [
        "",
        "-5",
        "2023-11-14",
        "2023-11-14T22:13:20",
        "2023-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2023-11-14T24:00:00Z",
        "2023-11-14T22:13:20.Z",
        "2023-11-14T22:13:20+0100",
        "99999999999999999999999",
    ] {
        assert!(parse_now(bad).is_err(), "{bad}");
    }
    for secs in [0, NOW, 4_102_444_800, 951_782_400, 253_402_300_799] {
        assert_eq!(parse_now(&rfc3339(secs)), Ok(secs), "{}", rfc3339(secs));
    }
    assert_eq!(rfc3339(NOW), "2023-11-14T22:13:20Z");
}

#[test]
fn the_request_is_built_from_method_url_and_headers() {
    let h = |list: &[(&str, &str)]| -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect()
    };
    assert_eq!(
        request_headers(
            "GET",
            "https://api.example.com:8443/a/b?c=1#frag",
            &h(&[("x-y", "z")])
        )
        .unwrap(),
        h(&[
            (":authority", "api.example.com:8443"),
            (":path", "/a/b?c=1"),
            (":method", "GET"),
            (":scheme", "https"),
            ("x-y", "z")
        ])
    );
    assert_eq!(
        request_headers(
            "GET",
            "http://h.example?q",
            &h(&[("host", "other.example")])
        )
        .unwrap(),
        h(&[
            (":path", "/?q"),
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "other.example")
        ])
    );
    assert_eq!(
        request_headers(
            "GET",
            "/",
            &h(&[
                ("authorization", "Bearer a"),
                ("x", "1"),
                ("authorization", "Bearer b")
            ])
        )
        .unwrap(),
        h(&[
            (":path", "/"),
            (":method", "GET"),
            ("authorization", "Bearer a,Bearer b"),
            ("x", "1")
        ])
    );
    assert_eq!(
        request_headers("DELETE", "/x", &[]).unwrap(),
        h(&[(":path", "/x"), (":method", "DELETE")])
    );
    for (method, url) in [
        ("GET", "ftp://a/"),
        ("GET", "a/b"),
        ("GET", "http:///x"),
        ("G T", "/"),
    ] {
        assert!(request_headers(method, url, &[]).is_err(), "{method} {url}");
    }
}

#[test]
fn set_replaces_every_value_and_remove_removes_every_value() {
    let h = |list: &[(&str, &str)]| -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect()
    };
    let ops = [
        HeaderOp::Set("x-sub", "alice".into()),
        HeaderOp::Remove("authorization"),
        HeaderOp::Set("x-new", "1".into()),
    ];
    assert_eq!(
        apply(
            h(&[
                ("x-sub", "a"),
                ("authorization", "x"),
                ("b", "2"),
                ("x-sub", "c"),
                ("authorization", "y")
            ]),
            &ops
        ),
        h(&[("x-sub", "alice"), ("b", "2"), ("x-new", "1")])
    );
}

#[test]
fn credentials_are_shown_by_length_and_tail_only() {
    assert_eq!(
        shown_value("authorization", b"Bearer abcdefghijkl"),
        "Bearer <12 bytes, ending …ghijkl>"
    );
    assert_eq!(
        shown_value("cookie", b"session=abcdefgh"),
        "<16 bytes, ending …cdefgh>"
    );
    let t = token(json!({}));
    assert!(!shown_value("x-forwarded-token", t.as_bytes()).contains(&t));
    assert_eq!(shown_value("x-jwt-sub", b"alice"), "alice");
}

#[test]
fn check_config_lists_an_error_of_each_part_with_its_field() {
    let mut cfg = config_json();
    cfg["providers"]["local"]["clock_skew"] = json!(5);
    cfg["providers"]["remote"]["remote_jwks"]["http_uri"]["timeout"] = json!("0s");
    cfg["rules"][0]["match"] = json!({ "safe_regex": { "regex": "(" } });
    cfg["rules"][2]["requires"] = json!({ "provider_name": "okta" });
    cfg["report_onyl"] = json!(true);
    let report = check_config(cfg.to_string().as_bytes());
    let fields: Vec<&str> = report.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "report_onyl",
            "providers.local.clock_skew",
            "providers.remote.remote_jwks.http_uri.timeout",
            "rules[0].match.safe_regex.regex",
            "rules[2].requires.provider_name",
        ],
        "{report:?}"
    );
    assert_eq!(report.exit_code(), 1);
    let text = report.text("c.json");
    assert!(text.contains("c.json: invalid configuration at `rules[2].requires.provider_name`: Required provider ['okta'] is not configured"), "{text}");
    assert!(text.ends_with("c.json: refused, 5 errors\n"), "{text}");
    let good = check_config(config_json().to_string().as_bytes());
    assert_eq!((good.exit_code(), good.loaded), (0, Some((2, 3))));
    assert_eq!(good.json()["ok"], true);
    // Not JSON at all: one error, with the place.
    let broken = check_config(b"{\"providers\": ");
    assert_eq!(broken.errors.len(), 1);
    assert!(broken.errors[0].reason.contains("line 1"), "{broken:?}");
}

#[test]
fn typ_binding_and_token_kind_are_steps_of_their_own() {
    let cfg = Config::from_json(
        json!({
            "providers": { "svc": {
                "issuer": ISS,
                "local_jwks": { "inline_string": mint::JWKS },
                "allowed_typ": ["at+jwt"],
                "certificate_bound": "if_present",
            } },
            "rules": [{ "match": { "prefix": "/" },
                "requires": { "provider_name": "svc", "token_kind": "service" } }],
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let keys = Keys::new(&cfg, vec![]).unwrap();
    let signed = |typ: &str, sub: &str| {
        let header = json!({ "alg": "RS256", "kid": "rsa-a", "typ": typ });
        let claims = json!({ "iss": ISS, "sub": sub, "client_id": "svc-a", "exp": NOW + 60 });
        mint::sign(&header, &claims, "RS256", mint::Key::RsaA)
    };
    let bearer = |t: String| format!("Bearer {t}");
    let service = run(
        &cfg,
        &keys,
        "/x",
        &[("authorization", &bearer(signed("at+jwt", "svc-a")))],
    );
    let tail: Vec<(Check, bool)> = checks(&service).into_iter().skip(5).collect();
    assert_eq!(
        tail,
        [
            (Check::Typ, true),
            (Check::Binding, true),
            (Check::TokenKind, true)
        ],
        "{}",
        service.text()
    );
    assert_eq!(service.exit_code(), 0);
    let user = run(
        &cfg,
        &keys,
        "/x",
        &[("authorization", &bearer(signed("at+jwt", "alice")))],
    );
    assert_eq!(checks(&user).last(), Some(&(Check::TokenKind, false)));
    assert!(user.text().contains("token_kind FAILED: Jwt is not of the kind of token this route accepts (token_kind) — a user token, service wanted"), "{}", user.text());
    let untyped = run(
        &cfg,
        &keys,
        "/x",
        &[("authorization", &bearer(signed("JWT", "svc-a")))],
    );
    assert_eq!(checks(&untyped).last(), Some(&(Check::Typ, false)));
    assert_eq!(untyped.status(), 401);
}

#[test]
fn a_revocation_list_is_a_step_and_offline_it_is_unavailable() {
    let mut json = config_json();
    json["providers"]["local"]["revocation"] = json!({ "http_uri": {
        "uri": "https://idp.example/revocations.json", "cluster": "idp", "timeout": "1s" } });
    let cfg = Config::from_json(json.to_string().as_bytes()).unwrap();
    let keys = Keys::new(&cfg, vec![]).unwrap();
    let auth = format!("Bearer {}", token(json!({})));
    let e = run(&cfg, &keys, "/x", &[("authorization", &auth)]);
    assert_eq!(
        checks(&e).last(),
        Some(&(Check::Revocation, false)),
        "{}",
        e.text()
    );
    assert_eq!(e.failure.map(|f| f.0), Some("revocation_unavailable"));
    assert!(
        e.notes
            .iter()
            .any(|n| n.contains("revocation list not fetched offline")),
        "{:?}",
        e.notes
    );
    assert!(e.text().contains("503"), "{}", e.text());
}
