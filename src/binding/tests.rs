use super::*;
use crate::peer::Thumbprint;
use serde_json::json;

/// RFC 8705 §3.1 example: `x5t#S256` of the certificate in §3.1.
const RFC_8705_X5T: &str = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2";

fn peer_of(x5t: &str) -> Thumbprint {
    Thumbprint::from_b64url(x5t).unwrap()
}

#[test]
fn binding_table() {
    let bound = json!({"cnf": {"x5t#S256": RFC_8705_X5T}});
    let other = json!({"cnf": {"x5t#S256": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"}});
    let unbound = json!({"sub": "a"});
    let dpop = json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}});
    let peer = Some(peer_of(RFC_8705_X5T));
    let verified = |v: &Value| Verified::for_test(json!({"alg": "RS256"}), v.clone());
    use Binding::*;
    use BindingError::*;
    for (mode, token, peer, want) in [
        (Off, &other, peer, Ok(())),
        (Off, &json!({"cnf": 1}), None, Ok(())),
        (IfPresent, &bound, peer, Ok(())),
        (IfPresent, &other, peer, Err(Mismatch)),
        (IfPresent, &bound, None, Err(NoPeerCertificate)),
        (IfPresent, &unbound, None, Ok(())),
        (IfPresent, &dpop, peer, Ok(())),
        (Required, &bound, peer, Ok(())),
        (Required, &other, peer, Err(Mismatch)),
        (Required, &unbound, peer, Err(Unbound)),
        (Required, &dpop, peer, Err(Unbound)),
        (Required, &bound, None, Err(NoPeerCertificate)),
        (IfPresent, &json!({"cnf": "x"}), peer, Err(Malformed)),
        (
            Required,
            &json!({"cnf": {"x5t#S256": 1}}),
            peer,
            Err(Malformed),
        ),
        (
            Required,
            &json!({"cnf": {"x5t#S256": format!("{RFC_8705_X5T}=")}}),
            peer,
            Err(Malformed),
        ),
        (
            Required,
            &json!({"cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg"}}),
            peer,
            Err(Malformed),
        ),
        (
            Required,
            &json!({"cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5/lESsXE8o9ltc05O89jdN+dg2"}}),
            peer,
            Err(Malformed),
        ),
        (
            Required,
            &json!({"cnf": {"x5t#S256": ""}}),
            peer,
            Err(Malformed),
        ),
    ] {
        assert_eq!(
            check_binding(mode, &verified(token), peer),
            want,
            "{mode:?} {token}"
        );
    }
}

#[test]
fn binding_names() {
    assert_eq!(Binding::from_name("off"), Some(Binding::Off));
    assert_eq!(Binding::from_name("if_present"), Some(Binding::IfPresent));
    assert_eq!(Binding::from_name("required"), Some(Binding::Required));
    assert_eq!(Binding::from_name("Required"), None);
    assert_eq!(Binding::default(), Binding::Off);
}
