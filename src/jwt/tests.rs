use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::*;

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// A token from raw header and payload JSON text, with a one-byte signature.
fn raw(header: &str, payload: &str) -> String {
    format!("{}.{}.AA", b64(header), b64(payload))
}

const HEADER: &str = r#"{"alg":"RS256","kid":"k1"}"#;
const PAYLOAD: &str = r#"{"iss":"i","sub":"s","aud":["a","b"],"exp":2000000000,"nbf":1,"iat":1.9}"#;

#[test]
fn parses_a_well_formed_token() {
    let token = raw(HEADER, PAYLOAD);
    let jwt = parse(&token).unwrap();
    assert_eq!(jwt.alg, Alg::RS256);
    assert_eq!(jwt.kid.as_deref(), Some("k1"));
    assert_eq!(
        jwt.claims,
        Claims {
            iss: Some("i".into()),
            sub: Some("s".into()),
            aud: vec!["a".into(), "b".into()],
            exp: Some(2_000_000_000),
            nbf: Some(1),
            iat: Some(1),
        }
    );
    assert_eq!(jwt.signature, vec![0]);
    assert_eq!(jwt.signing_input(), token.rsplit_once('.').unwrap().0);
}

#[test]
#[rustfmt::skip]
fn failures_in_envoy_order() {
    let h = b64(HEADER);
    let p = b64(PAYLOAD);
    let cases: Vec<(&str, String, AuthError)> = vec![
        ("two segments", format!("{h}.{p}"), AuthError::BadFormat),
        ("four segments", format!("{h}.{p}.AA.AA"), AuthError::BadFormat),
        ("JWE (five segments)", format!("{h}.{p}.AA.AA.AA"), AuthError::BadFormat),
        ("empty header", format!(".{p}.AA"), AuthError::BadFormat),
        ("empty signature", format!("{h}.{p}."), AuthError::BadFormat),
        ("header not base64url", format!("{h}*.{p}.AA"), AuthError::HeaderBadBase64),
        ("padded header", format!("{h}=.{p}.AA"), AuthError::HeaderBadBase64),
        ("header not JSON", format!("{}.{p}.AA", b64("nope")), AuthError::HeaderBadJson),
        ("header an array", format!("{}.{p}.AA", b64("[]")), AuthError::HeaderBadJson),
        ("duplicate alg", raw(r#"{"alg":"RS256","alg":"none"}"#, PAYLOAD), AuthError::HeaderBadJson),
        ("no alg", raw(r#"{"kid":"k"}"#, PAYLOAD), AuthError::HeaderBadAlg),
        ("alg a number", raw(r#"{"alg":256}"#, PAYLOAD), AuthError::HeaderBadAlg),
        ("alg none", raw(r#"{"alg":"none"}"#, PAYLOAD), AuthError::HeaderUnsupportedAlg),
        ("alg None", raw(r#"{"alg":"None"}"#, PAYLOAD), AuthError::HeaderUnsupportedAlg),
        ("alg lower-case", raw(r#"{"alg":"rs256"}"#, PAYLOAD), AuthError::HeaderUnsupportedAlg),
        ("kid a number", raw(r#"{"alg":"RS256","kid":1}"#, PAYLOAD), AuthError::HeaderBadKid),
        ("crit", raw(r#"{"alg":"RS256","crit":["exp"]}"#, PAYLOAD), AuthError::HeaderCritical),
        ("b64 false", raw(r#"{"alg":"RS256","b64":false}"#, PAYLOAD), AuthError::HeaderCritical),
        ("payload not base64url", format!("{h}.{p}!.AA"), AuthError::PayloadBadBase64),
        ("payload not JSON", raw(HEADER, "x"), AuthError::PayloadBadJson),
        ("payload a string", raw(HEADER, r#""x""#), AuthError::PayloadBadJson),
        ("duplicate exp", raw(HEADER, r#"{"exp":1,"exp":2}"#), AuthError::PayloadBadJson),
        ("nested duplicate", raw(HEADER, r#"{"a":{"b":1,"b":2}}"#), AuthError::PayloadBadJson),
        ("iss a number", raw(HEADER, r#"{"iss":1}"#), AuthError::PayloadBadClaim),
        ("exp a string", raw(HEADER, r#"{"exp":"1"}"#), AuthError::PayloadBadClaim),
        ("exp null", raw(HEADER, r#"{"exp":null}"#), AuthError::PayloadBadClaim),
        ("aud an object", raw(HEADER, r#"{"aud":{}}"#), AuthError::PayloadBadClaim),
        ("aud a number", raw(HEADER, r#"{"aud":1}"#), AuthError::PayloadBadClaim),
        ("aud array of numbers", raw(HEADER, r#"{"aud":[1]}"#), AuthError::PayloadBadClaim),
        ("signature not base64url", format!("{h}.{p}.A+"), AuthError::SignatureBadBase64),
        ("too large", "a".repeat(MAX_TOKEN_BYTES + 1), AuthError::TooLarge),
        ("deep JSON", raw(HEADER, &format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)),), AuthError::PayloadBadJson),
    ];
    for (name, token, want) in cases {
        assert_eq!(parse(&token).err(), Some(want), "{name}");
    }
}

/// Regression (issue 11, item 14): a NumericDate out of any sane range (negative, past year
/// 9999, beyond an i64, 1e300) is a malformed claim, never a saturated "never expires".
#[test]
#[rustfmt::skip]
fn numeric_dates_truncate_and_out_of_range_ones_are_malformed() {
    let cases = [
        (r#"{"exp":1.9}"#, Ok(Some(1))),
        (r#"{"exp":0}"#, Ok(Some(0))),
        (r#"{"exp":253402300799}"#, Ok(Some(MAX_NUMERIC_DATE))),
        (r#"{"exp":253402300799.5}"#, Ok(Some(MAX_NUMERIC_DATE))),
        (r#"{"exp":253402300800}"#, Err(AuthError::PayloadBadClaim)),
        (r#"{"exp":-1.5}"#, Err(AuthError::PayloadBadClaim)),
        (r#"{"exp":-1}"#, Err(AuthError::PayloadBadClaim)),
        (r#"{"exp":1e300}"#, Err(AuthError::PayloadBadClaim)),
        (r#"{"nbf":1e19}"#, Err(AuthError::PayloadBadClaim)),
        (r#"{"iat":18446744073709551615}"#, Err(AuthError::PayloadBadClaim)),
        (r#"{"exp":9223372036854775807}"#, Err(AuthError::PayloadBadClaim)),
        (r#"{"exp":-9223372036854775808}"#, Err(AuthError::PayloadBadClaim)),
        (r#"{"exp":1e400}"#, Err(AuthError::PayloadBadJson)),
    ];
    for (payload, want) in cases {
        let token = raw(HEADER, payload);
        let got = parse(&token).map(|jwt| jwt.claims.exp);
        assert_eq!(got, want, "{payload}");
    }
}

#[test]
fn alg_names_round_trip() {
    for alg in Alg::ALL {
        assert_eq!(Alg::from_name(alg.name()), Some(alg));
    }
    assert_eq!(Alg::from_name("none"), None);
}
