use super::*;

use p256::pkcs8::EncodePublicKey as _;

/// A stand-in for the host: RustCrypto verifying DER signatures, as BoringSSL does.
struct DerVerifier;

impl SignatureBackend for DerVerifier {
    fn verify(&self, hash: &str, spki: &[u8], message: &[u8], signature: &[u8]) -> Option<bool> {
        use p256::ecdsa::signature::Verifier as _;
        use p256::pkcs8::DecodePublicKey as _;
        assert_eq!(hash, "sha256");
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(spki).ok()?;
        let sig = p256::ecdsa::Signature::from_der(signature).ok()?;
        Some(key.verify(message, &sig).is_ok())
    }
}

struct Always(Option<bool>);

impl SignatureBackend for Always {
    fn verify(&self, _: &str, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
        self.0
    }
}

#[test]
fn arguments_are_fields_1_to_4_length_delimited() {
    let long = vec![7u8; 300]; // a two-byte varint length: 300 = 0xac 0x02
    let bytes = encode_arguments("sha256", &[1, 2], &long, b"");
    let mut want = vec![0x0a, 6];
    want.extend_from_slice(b"sha256");
    want.extend_from_slice(&[0x12, 2, 1, 2, 0x1a, 0xac, 0x02]);
    want.extend_from_slice(&long);
    want.extend_from_slice(&[0x22, 0]);
    assert_eq!(bytes, want);
}

#[test]
fn result_is_true_only_when_it_says_so() {
    let cases: [(&[u8], Option<bool>); 10] = [
        (&[0x08, 0x01], Some(true)),
        (&[], Some(false)),
        (&[0x08, 0x00], Some(false)),
        // `error` (field 2) next to the result, in either order.
        (&[0x08, 0x01, 0x12, 0x02, b'o', b'k'], Some(true)),
        (&[0x12, 0x03, b'b', b'a', b'd', 0x08, 0x00], Some(false)),
        // Unknown fields of every wire type are skipped.
        (
            &[0x18, 0x96, 0x01, 0x21, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x01],
            Some(true),
        ),
        // Truncated or impossible: not an answer.
        (&[0x08], None),
        (&[0x08, 0x01, 0x12, 0x05, b'x'], None),
        (&[0x0b, 0x01], None),
        (
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            None,
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(decode_result(bytes), want, "{bytes:02x?}");
    }
}

#[test]
fn jose_signatures_become_the_der_the_curve_crates_write() {
    let mut rng_like = 1u8;
    for r0 in [0x00u8, 0x01, 0x7f, 0x80, 0xff] {
        for s0 in [0x00u8, 0x80] {
            let mut jose = [0u8; 64];
            for b in jose.iter_mut() {
                rng_like = rng_like.wrapping_mul(31).wrapping_add(7);
                *b = rng_like;
            }
            jose[0] = r0;
            jose[32] = s0;
            if s0 == 0 {
                jose[33] = 0; // two leading zeros in s
            }
            let Ok(sig) = p256::ecdsa::Signature::from_slice(&jose) else {
                continue; // r or s out of range for the curve
            };
            assert_eq!(
                jose_to_der(&jose, 32).unwrap(),
                sig.to_der().as_bytes(),
                "{jose:02x?}"
            );
        }
    }
}

#[test]
fn p521_der_uses_a_long_length() {
    let jose = [0x01u8; 132];
    let der = jose_to_der(&jose, 66).unwrap();
    let want = p521::ecdsa::Signature::from_slice(&jose).unwrap().to_der();
    assert_eq!(der, want.as_bytes());
    assert_eq!(&der[..2], &[0x30, 0x81]);
}

#[test]
fn jose_of_the_wrong_length_is_refused() {
    assert_eq!(jose_to_der(&[1; 63], 32), None);
    assert_eq!(jose_to_der(&[1; 65], 32), None);
}

#[test]
fn ec_spki_is_what_the_curve_crates_write() {
    let p256 = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
    let point = p256.verifying_key().to_encoded_point(false);
    let want = p256.verifying_key().to_public_key_der().unwrap();
    assert_eq!(ec_spki(32, point.as_bytes()).unwrap(), want.as_bytes());

    let p384 = p384::ecdsa::SigningKey::from_slice(&[3; 48]).unwrap();
    let point = p384.verifying_key().to_encoded_point(false);
    let want = p384::pkcs8::EncodePublicKey::to_public_key_der(p384.verifying_key()).unwrap();
    assert_eq!(ec_spki(48, point.as_bytes()).unwrap(), want.as_bytes());

    let p521 = p521::ecdsa::SigningKey::from_slice(&[1; 66]).unwrap();
    let point = p521::ecdsa::VerifyingKey::from(&p521).to_encoded_point(false);
    let public = p521::PublicKey::from_sec1_bytes(point.as_bytes()).unwrap();
    let want = p521::pkcs8::EncodePublicKey::to_public_key_der(&public).unwrap();
    assert_eq!(ec_spki(66, point.as_bytes()).unwrap(), want.as_bytes());
}

#[test]
fn ec_spki_refuses_other_sizes_and_compressed_points() {
    assert_eq!(ec_spki(31, &[4; 63]), None);
    assert_eq!(ec_spki(32, &[4; 64]), None);
    let mut compressed = [0u8; 65];
    compressed[0] = 2;
    assert_eq!(ec_spki(32, &compressed), None);
}

#[test]
fn probe_detects_a_working_host_only() {
    assert!(backend_works(&DerVerifier));
    assert!(!backend_works(&PureRust), "no host function");
    assert!(
        !backend_works(&Always(Some(true))),
        "a host that accepts anything"
    );
    assert!(
        !backend_works(&Always(Some(false))),
        "a host that accepts nothing"
    );
}
