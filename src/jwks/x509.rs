//! Google's X.509 key set form: an object of PEM certificates by kid, as
//! `googleapis.com/oauth2/v1/certs`, Firebase and service-account metadata publish it:
//! `{"<kid>": "-----BEGIN CERTIFICATE-----\nMII...\n-----END CERTIFICATE-----\n", ...}`.
//!
//! Only the certificate's public key is used, as native `jwt_authn` uses it: the certificate is
//! a container, and nothing else in it (issuer, validity dates, extensions, its own signature)
//! is checked or trusted, because nothing else in it says anything about the tokens.
//!
//! The DER is read by the few lines below rather than by RustCrypto's `der`/`spki` (already in
//! the module through `rsa`): decoding with them made the module 18 KB larger than this does
//! (measured, 1.367 MB against 1.348 MB). It walks the certificate's outline just
//! far enough to reach `subjectPublicKeyInfo` (RFC 5280 §4.1), strictly: definite minimal
//! lengths, the expected tag at every step, every element inside its parent, nothing after the
//! certificate. RSA (`rsaEncryption`) and EC (`id-ecPublicKey` on P-256, P-384, P-521, with an
//! uncompressed point) keys are read; anything else is refused with the reason.
//!
//! What this module must not do: decide which keys are usable (the caller runs the same checks
//! as for a JWK: RSA size and exponent, EC point on its curve), or panic on any input: every
//! read goes through `split_first` / `split_at_checked`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;
/// `[0] EXPLICIT` around the version of a v2/v3 certificate.
const VERSION: u8 = 0xA0;

/// Content octets of the OIDs read here: rsaEncryption (1.2.840.113549.1.1.1), id-ecPublicKey
/// (1.2.840.10045.2.1), and the named curves of RFC 5480 §2.1.1.1 by JWK `crv`.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const CURVES: [(&[u8], &str); 3] = [
    (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07], "P-256"),
    (&[0x2b, 0x81, 0x04, 0x00, 0x22], "P-384"),
    (&[0x2b, 0x81, 0x04, 0x00, 0x23], "P-521"),
];

/// A certificate's public key, in the terms of a JWK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CertKey {
    /// `n` and `e`, big-endian, without sign bytes.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The curve's JWK name and the SEC1 uncompressed point.
    Ec { crv: &'static str, point: Vec<u8> },
}

/// Whether `text` has the shape of one PEM certificate, the test that tells Google's form from
/// a JWKS: it starts with the `BEGIN CERTIFICATE` line and ends with the `END` one (trailing
/// whitespace allowed; native requires exactly one `\n` there).
pub(super) fn looks_like_pem_certificate(text: &str) -> bool {
    text.starts_with(BEGIN) && text.trim_end().ends_with(END)
}

/// The public key of the PEM certificate `text`, or why it cannot be read.
pub(super) fn public_key(text: &str) -> Result<CertKey, String> {
    let der = pem_body(text)?;
    let Spki {
        algorithm,
        parameters,
        key,
    } = subject_public_key_info(&der).ok_or("the certificate is not DER X.509")?;
    if algorithm == RSA_ENCRYPTION {
        let (n, e) = rsa_public_key(key).ok_or("the certificate's RSA key is not DER")?;
        return Ok(CertKey::Rsa {
            n: n.to_vec(),
            e: e.to_vec(),
        });
    }
    if algorithm == EC_PUBLIC_KEY {
        let curve = parameters
            .and_then(|p| element(p, OID))
            .filter(|(_, rest)| rest.is_empty())
            .map(|(oid, _)| oid)
            .ok_or("the certificate's EC key names no curve")?;
        let crv = CURVES
            .iter()
            .find(|(id, _)| *id == curve)
            .map(|(_, name)| *name)
            .ok_or("the certificate's EC curve is not P-256, P-384 or P-521")?;
        if key.first() != Some(&4) {
            return Err("the certificate's EC point is not uncompressed".into());
        }
        return Ok(CertKey::Ec {
            crv,
            point: key.to_vec(),
        });
    }
    Err("the certificate's key is neither RSA nor EC".into())
}

/// The DER inside one PEM certificate: the base64 between the two marker lines, whitespace
/// ignored. Anything after the `END` line but whitespace (a second certificate) is refused:
/// which of two keys a kid stands for is not ours to guess.
fn pem_body(text: &str) -> Result<Vec<u8>, String> {
    let rest = text
        .strip_prefix(BEGIN)
        .ok_or("no BEGIN CERTIFICATE line")?;
    let (body, after) = rest.split_once(END).ok_or("no END CERTIFICATE line")?;
    if !after.trim().is_empty() {
        return Err("text after the END CERTIFICATE line (one certificate per kid)".into());
    }
    let base64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(base64.as_bytes())
        .map_err(|_| "the PEM body is not base64".into())
}

/// The parts of a `subjectPublicKeyInfo` that say what the key is.
struct Spki<'a> {
    /// The algorithm OID's content octets.
    algorithm: &'a [u8],
    /// The algorithm's parameters (a DER element), when there are any.
    parameters: Option<&'a [u8]>,
    /// The `subjectPublicKey` bits, a whole number of bytes.
    key: &'a [u8],
}

/// The `subjectPublicKeyInfo` of a DER certificate:
///
/// ```text
/// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
/// TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
///                               validity, subject, subjectPublicKeyInfo, ... }
/// SubjectPublicKeyInfo ::= SEQUENCE { SEQUENCE { algorithm, parameters OPTIONAL },
///                                     subjectPublicKey BIT STRING }
/// ```
fn subject_public_key_info(der: &[u8]) -> Option<Spki<'_>> {
    let (certificate, rest) = element(der, SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    let (tbs, rest) = element(certificate, SEQUENCE)?;
    let (_signature_algorithm, rest) = element(rest, SEQUENCE)?;
    let (_signature, rest) = element(rest, BIT_STRING)?;
    if !rest.is_empty() {
        return None;
    }
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = element(rest, VERSION)?.1;
    }
    for tag in [INTEGER, SEQUENCE, SEQUENCE, SEQUENCE, SEQUENCE] {
        rest = element(rest, tag)?.1; // serialNumber, signature, issuer, validity, subject
    }
    let (spki, mut rest) = element(rest, SEQUENCE)?;
    // issuerUniqueID, subjectUniqueID, extensions: well-formed, unread.
    while !rest.is_empty() {
        rest = any_element(rest)?.2;
    }
    let (algorithm_identifier, rest) = element(spki, SEQUENCE)?;
    let (key, rest) = element(rest, BIT_STRING)?;
    if !rest.is_empty() {
        return None;
    }
    let (algorithm, parameters) = element(algorithm_identifier, OID)?;
    // The key is a whole number of bytes: no unused bits.
    let key = key.strip_prefix(&[0])?;
    Some(Spki {
        algorithm,
        parameters: Some(parameters).filter(|p| !p.is_empty()),
        key,
    })
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017 A.1.1),
/// both positive, as unsigned big-endian bytes.
fn rsa_public_key(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (sequence, rest) = element(der, SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    let (n, rest) = element(sequence, INTEGER)?;
    let (e, rest) = element(rest, INTEGER)?;
    if !rest.is_empty() {
        return None;
    }
    Some((positive(n)?, positive(e)?))
}

/// A DER INTEGER's content as unsigned bytes: one leading zero is a sign byte; a negative
/// number (high bit set) is refused.
fn positive(integer: &[u8]) -> Option<&[u8]> {
    match integer {
        [0, rest @ ..] if !rest.is_empty() => Some(rest),
        [first, ..] if first & 0x80 == 0 => Some(integer),
        _ => None,
    }
}

/// The contents of the element at the start of `input`, which must have tag `tag`, and what
/// follows it.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = any_element(input)?;
    (found == tag).then_some((contents, rest))
}

/// `(tag, contents, rest)` of the DER element at the start of `input`. Refused: high tag
/// numbers (none in a certificate's outline), the indefinite length (BER), lengths of more
/// than 4 bytes, and lengths not in DER's minimal form.
fn any_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(count)?;
        if bytes.first() == Some(&0) {
            return None;
        }
        let length = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if length < 0x80 {
            return None;
        }
        (length, rest)
    };
    let (contents, rest) = rest.split_at_checked(length)?;
    Some((tag, contents, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_are_definite_minimal_and_bounded() {
        let cases: [(&[u8], Option<(u8, &[u8], &[u8])>); 9] = [
            (&[0x02, 0x01, 0x05, 0xff], Some((0x02, &[0x05], &[0xff]))),
            (&[0x04, 0x81, 0x80], None), // 128 bytes announced, none there
            (&[0x04, 0x81, 0x7f], None), // long form for a short length
            (&[0x04, 0x82, 0x00, 0x80], None), // a leading zero length byte
            (&[0x30, 0x80, 0x00, 0x00], None), // indefinite length
            (&[0x04, 0x85, 1, 0, 0, 0, 0], None), // a 5-byte length
            (&[0x1f, 0x01, 0x00], None), // a high tag number
            (&[0x30], None),
            (&[], None),
        ];
        for (input, want) in cases {
            assert_eq!(any_element(input), want, "{input:02x?}");
        }
        let long = [&[0x04, 0x81, 0x80][..], &[7; 128]].concat();
        assert_eq!(any_element(&long).map(|(_, c, _)| c.len()), Some(128));
    }

    #[test]
    fn integers_are_read_unsigned_and_negative_ones_refused() {
        assert_eq!(positive(&[0x00, 0x80]), Some(&[0x80][..]));
        assert_eq!(positive(&[0x01, 0x00, 0x01]), Some(&[0x01, 0x00, 0x01][..]));
        assert_eq!(positive(&[0x80]), None);
        assert_eq!(positive(&[0x00]), Some(&[0x00][..]));
        assert_eq!(positive(&[]), None);
    }

    #[test]
    fn pem_framing() {
        assert!(looks_like_pem_certificate(
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
        ));
        assert!(looks_like_pem_certificate(
            "-----BEGIN CERTIFICATE-----\r\nAA==\r\n-----END CERTIFICATE-----"
        ));
        assert!(!looks_like_pem_certificate("pubkey1"));
        assert!(!looks_like_pem_certificate(
            "-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n"
        ));
        let two = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n\
                   -----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
        assert!(pem_body(two)
            .unwrap_err()
            .contains("one certificate per kid"));
        let not_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert_eq!(
            pem_body(not_base64).unwrap_err(),
            "the PEM body is not base64"
        );
    }
}
