//! Key sets end to end: every vector of `tests/common/vectors.rs` (Envoy's, jwt_verify_lib's
//! and Istio's test key sets, and ours: Google's X.509 form, trailing commas, short EC
//! coordinates, ...) in this filter and in native `jwt_authn`, side by side in one Envoy, each
//! as its own provider on its own route. Every token gets the status the table gives for each
//! filter, and the same `WWW-Authenticate` where the statuses agree:
//!
//! - `inline_key_sets_answer_as_the_table_says`: `local_jwks` (the vectors our loader loads;
//!   a key set it refuses would refuse the whole configuration, as `a_refused_inline_key_set_
//!   names_line_and_column` shows);
//! - `fetched_key_sets_answer_as_the_table_says`: `remote_jwks`, each set from its own
//!   stand-in identity provider, every vector;
//! - the log lines the loader promises: a warning for what loads but is not RFC 7518
//!   conformant (once per load), the skipped keys of a fetched set, and JSON errors with line
//!   and column.
//!
//! Run: `cargo test --test key_sets` (needs `make build` for the wasm side).

// Tests fail by panicking, and index into responses they have just checked.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use serde_json::{json, Value};

use common::bootstrap::{self, Listener, Side};
use common::envoy::Envoy;
use common::http::Request;
use common::idp::Idp;
use common::upstream::Upstream;
use common::vectors::{Load, Vector, VECTORS};

/// How a provider gets its keys.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Inline,
    Fetched,
}

/// The vectors with tokens to send.
fn vectors() -> Vec<&'static Vector> {
    VECTORS.iter().filter(|v| !v.tokens.is_empty()).collect()
}

/// Whether `side` can be given `v` as `source`: a fetched set always (a set it cannot read is
/// a failed fetch), an inline one only if it loads it (else the configuration is refused).
fn takes(side: Side, v: &Vector, source: Source) -> bool {
    source == Source::Fetched
        || match side {
            Side::Wasm => matches!(v.load, Load::Keys { .. }),
            Side::Native => v.native_loads,
        }
}

/// `side`'s configuration: one provider per vector it takes (no issuer or audience: any token
/// its keys verify is good), on route `/<name>`. Fetched keys come from cluster `jwks-<name>`.
fn config(side: Side, vectors: &[&Vector], source: Source) -> Value {
    let mut providers = serde_json::Map::new();
    let mut rules = Vec::new();
    for v in vectors.iter().filter(|v| takes(side, v, source)) {
        let keys = match source {
            Source::Inline => json!({ "local_jwks": { "inline_string": v.jwks } }),
            Source::Fetched => json!({ "remote_jwks": {
                "http_uri": {
                    "uri": format!("http://idp.example/{}", v.name),
                    "cluster": format!("jwks-{}", v.name),
                    "timeout": "5s",
                },
                "cache_duration": "600s",
            } }),
        };
        providers.insert(v.name.into(), keys);
        rules.push(json!({ "match": { "path": format!("/{}", v.name) },
                           "requires": { "provider_name": v.name } }));
    }
    json!({ "providers": providers, "rules": rules })
}

/// Sends every token of `vectors` to each listener that took the vector; every answer that
/// is not the table's, and, where the statuses agree, every `WWW-Authenticate` or reason
/// (the body of a denial) that differs.
fn mismatches(envoy: &Envoy, vectors: &[&Vector], source: Source) -> Vec<String> {
    let mut failures = Vec::new();
    for v in vectors {
        for (i, check) in v.tokens.iter().enumerate() {
            let req = Request::get(format!("/{}", v.name)).bearer(&check.token.text());
            let name = format!("{} token {i}", v.name);
            let mut answers = Vec::new();
            for (side, want) in [(Side::Native, check.native), (Side::Wasm, check.ours)] {
                if !takes(side, v, source) {
                    continue;
                }
                let resp = req.send(envoy.port(side.listener()));
                if resp.status != want {
                    failures.push(format!(
                        "{name}: {} answered {} (table {want}): {:?}",
                        side.listener(),
                        resp.status,
                        resp.body_str()
                    ));
                }
                let challenge = resp.header("www-authenticate").map(str::to_owned);
                let reason = (resp.status != 200).then(|| resp.body_str());
                answers.push((resp.status, challenge, reason));
            }
            if let [native, ours] = answers.as_slice() {
                if native.0 == ours.0 && (native.1 != ours.1 || native.2 != ours.2) {
                    failures.push(format!(
                        "{name}: native {:?} {:?}, ours {:?} {:?}",
                        native.1, native.2, ours.1, ours.2
                    ));
                }
            }
        }
    }
    failures
}

fn assert_none(failures: &[String], envoy: &Envoy) {
    assert!(
        failures.is_empty(),
        "{} answers are not the table's:\n  {}\n{}",
        failures.len(),
        failures.join("\n  "),
        envoy.log_tail(30)
    );
}

/// Log lines of provider `name` that contain `text`.
fn lines_of(log: &str, name: &str, text: &str) -> usize {
    let provider = format!("provider {name:?}: ");
    log.lines()
        .filter(|l| l.contains(&provider) && l.contains(text))
        .count()
}

const NOT_CONFORMANT: &str = "loaded, but not RFC 7518 conformant";

#[test]
fn inline_key_sets_answer_as_the_table_says() {
    let vectors = vectors();
    let upstream = Upstream::start();
    let envoy = Envoy::start(&bootstrap::bootstrap(
        &[
            Listener::new(
                "wasm",
                Side::Wasm,
                &config(Side::Wasm, &vectors, Source::Inline),
            ),
            Listener::new(
                "native",
                Side::Native,
                &config(Side::Native, &vectors, Source::Inline),
            ),
        ],
        upstream.port(),
    ));
    assert_none(&mismatches(&envoy, &vectors, Source::Inline), &envoy);

    // The short P-521 `y` loads with a warning, at configure time.
    let log = envoy.log();
    let warning = r#"JWKS key 0 (kid "ec521"): `y` is 65 bytes, left-padded to the 66 of P-521 (RFC 7518 wants exactly 66); loaded, but not RFC 7518 conformant"#;
    assert!(
        lines_of(&log, "ours-short-ec-coordinate", warning) >= 1
            && log
                .lines()
                .any(|l| l.contains("][warning][") && l.contains(warning)),
        "no warning for the short coordinate:\n{}",
        envoy.log_tail(40)
    );
}

#[test]
fn fetched_key_sets_answer_as_the_table_says() {
    let vectors = vectors();
    let upstream = Upstream::start();
    let mut boot = bootstrap::bootstrap(
        &[
            Listener::new(
                "wasm",
                Side::Wasm,
                &config(Side::Wasm, &vectors, Source::Fetched),
            ),
            Listener::new(
                "native",
                Side::Native,
                &config(Side::Native, &vectors, Source::Fetched),
            ),
        ],
        upstream.port(),
    );
    let idps: Vec<(&str, Idp)> = vectors
        .iter()
        .map(|v| (v.name, Idp::serving(v.jwks)))
        .collect();
    for (name, idp) in &idps {
        boot = bootstrap::with_cluster(&boot, &format!("jwks-{name}"), idp.port());
    }
    let envoy = Envoy::start(&boot);
    assert_none(&mismatches(&envoy, &vectors, Source::Fetched), &envoy);

    let log = envoy.log();
    // Each fetch of the short-coordinate set warns once (the VM that fetched it; the others
    // adopt it without a word).
    let fetches = idps
        .iter()
        .find(|(name, _)| *name == "ours-short-ec-coordinate")
        .map(|(_, idp)| idp.requests())
        .unwrap();
    let warnings = lines_of(&log, "ours-short-ec-coordinate", NOT_CONFORMANT);
    assert!(
        fetches >= 2 && warnings >= 1 && warnings < fetches,
        "both filters fetched ({fetches}); ours warned once per load of its own ({warnings})"
    );
    // A skipped key of a fetched set is logged, with its kid and why.
    assert!(
        lines_of(
            &log,
            "ours-use-enc",
            r#"JWKS key 1 (kid "rsa-a"): `use` is "enc", not "sig"; key skipped"#
        ) >= 1,
        "no line for the skipped key:\n{}",
        envoy.log_tail(40)
    );
    // A set that is not JSON for us: where, and why.
    assert!(
        lines_of(
            &log,
            "ours-single-quotes",
            "JWKS fetch failed (not_jwks): the JWKS is not a JSON object: key must be a string at line 1, column 2"
        ) >= 1,
        "no line for the refused set:\n{}",
        envoy.log_tail(40)
    );
}

/// A configuration whose inline key set is not JSON to us is refused at load, and the one
/// line names the field, the line and the column.
#[test]
fn a_refused_inline_key_set_names_line_and_column() {
    let broken = "{\"keys\": [\n  {\"kty\": \"RSA\",, \"n\": \"AQAB\"}\n]}";
    let cfg = json!({
        "providers": { "p": { "local_jwks": { "inline_string": broken } } },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "p" } }],
    });
    let upstream = Upstream::start();
    let boot = bootstrap::bootstrap(&[Listener::new("wasm", Side::Wasm, &cfg)], upstream.port());
    let (_, log) = Envoy::expect_refused(&boot);
    let want = "invalid configuration at `providers.p.local_jwks.inline_string`: the JWKS is not a JSON object: key must be a string at line 2, column 17";
    assert!(log.contains(want), "want {want:?} in:\n{log}");
}
