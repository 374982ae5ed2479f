//! Where RS* and ES* signatures are checked: the seam between the core and a host that offers
//! native crypto, and the bytes that cross it. Sans-I/O: this module builds and reads messages;
//! the wasm glue sends them.
//!
//! Envoy (1.3x and later, Istio's proxies too) registers a foreign function `verify_signature`
//! backed by BoringSSL (`source/extensions/common/wasm/foreign.cc`). Its argument is the
//! protobuf `VerifySignatureArguments` (`hash_function` = 1 string, `public_key` = 2 bytes DER
//! SubjectPublicKeyInfo, `signature` = 3 bytes, `text` = 4 bytes) and its result
//! `VerifySignatureResult` (`result` = 1 bool, `error` = 2 string). It does RSA PKCS#1 v1.5 and
//! ECDSA with a DER signature, so a JWS `r || s` is converted first. The few fields are encoded
//! by hand; no protobuf crate.
//!
//! Trust: only an answer that parses and says `result: true` counts as a valid signature. A
//! host that cannot answer (no such function, a refused argument, an unreadable result) leaves
//! the decision to the pure-Rust code, which is always there.

/// Checks signatures for the key types a host can do natively.
pub trait SignatureBackend {
    /// `Some(valid)` when the backend checked `signature` over `message` with the key
    /// `spki_der` (DER SubjectPublicKeyInfo) and digest `hash` (`"sha256"`, ...); `None` when it
    /// cannot, and the pure-Rust code must decide. ECDSA signatures arrive DER-encoded.
    fn verify(&self, hash: &str, spki_der: &[u8], message: &[u8], signature: &[u8])
        -> Option<bool>;
}

/// No native crypto: every signature is checked by the module's own (pure-Rust) code.
pub struct PureRust;

impl SignatureBackend for PureRust {
    fn verify(&self, _: &str, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
        None
    }
}

/// The name of Envoy's foreign function.
pub const VERIFY_SIGNATURE: &str = "verify_signature";

/// `VerifySignatureArguments` with fields 1 to 4 set.
pub fn encode_arguments(hash: &str, spki_der: &[u8], signature: &[u8], text: &[u8]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(hash.len() + spki_der.len() + signature.len() + text.len() + 16);
    for (field, bytes) in [
        (1u8, hash.as_bytes()),
        (2, spki_der),
        (3, signature),
        (4, text),
    ] {
        out.push(field << 3 | 2); // wire type 2: length-delimited
        push_varint(&mut out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    out
}

/// `VerifySignatureResult.result`: `Some(true)` only for a well-formed message saying so. An
/// empty message is proto3 for `result: false`. Malformed bytes: `None`.
pub fn decode_result(mut bytes: &[u8]) -> Option<bool> {
    let mut result = false;
    while !bytes.is_empty() {
        let key = read_varint(&mut bytes)?;
        match (key >> 3, key & 7) {
            (1, 0) => result = read_varint(&mut bytes)? != 0,
            (_, 0) => {
                read_varint(&mut bytes)?;
            }
            (_, 1) => bytes = bytes.get(8..)?,
            (_, 2) => {
                let len = usize::try_from(read_varint(&mut bytes)?).ok()?;
                bytes = bytes.get(len..)?;
            }
            (_, 5) => bytes = bytes.get(4..)?,
            _ => return None,
        }
    }
    Some(result)
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A base-128 varint (at most 10 bytes), advancing `bytes`.
fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// A JWS ECDSA signature (`r || s`, each `size` bytes, RFC 7518 §3.4) as the DER
/// `ECDSA-Sig-Value` BoringSSL verifies. `None` when the length is not `2 * size`.
pub fn jose_to_der(signature: &[u8], size: usize) -> Option<Vec<u8>> {
    if signature.len() != 2 * size {
        return None;
    }
    let (r, s) = signature.split_at(size);
    let mut body = Vec::with_capacity(2 * size + 6);
    der_integer(&mut body, r);
    der_integer(&mut body, s);
    let mut out = Vec::with_capacity(body.len() + 3);
    out.push(0x30);
    push_der_len(&mut out, body.len());
    out.extend_from_slice(&body);
    Some(out)
}

/// An unsigned big-endian number as a DER INTEGER: minimal, with a 0 byte before a high bit.
fn der_integer(out: &mut Vec<u8>, be: &[u8]) {
    let first = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    let digits = be.get(first..).unwrap_or_default();
    let pad = digits.first().is_none_or(|b| b & 0x80 != 0);
    out.push(0x02);
    push_der_len(out, digits.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
}

/// A DER length; ours are all under 64 KiB.
fn push_der_len(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
        _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
    }
}

/// The DER SubjectPublicKeyInfo of an EC public key, from its SEC1 uncompressed point
/// (`04 || x || y`). `field_size` is 32, 48 or 66 (P-256, P-384, P-521); other sizes: `None`.
pub fn ec_spki(field_size: usize, point: &[u8]) -> Option<Vec<u8>> {
    // SEQUENCE { SEQUENCE { id-ecPublicKey, namedCurve }, BIT STRING (0 unused bits) point }
    let prefix: &[u8] = match field_size {
        32 => &[
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ],
        48 => &[
            0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
        ],
        66 => &[
            0x30, 0x81, 0x9b, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
            0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23, 0x03, 0x81, 0x86, 0x00,
        ],
        _ => return None,
    };
    if point.len() != 1 + 2 * field_size || point.first() != Some(&4) {
        return None;
    }
    Some([prefix, point].concat())
}

/// A known-good ES256 vector for detecting the host function once per VM: a P-256 point, a
/// message, and its JWS signature. It goes through the same conversions as a token does.
pub mod probe {
    /// SEC1 uncompressed point of a throwaway key made for this vector.
    pub const POINT: [u8; 65] = [
        0x04, 0xb6, 0xe7, 0xac, 0x04, 0x30, 0x77, 0xc5, 0x1d, 0xfa, 0x73, 0x75, 0x78, 0xba, 0xcc,
        0xb6, 0x99, 0x5c, 0x30, 0xae, 0xc9, 0x05, 0xfb, 0x8c, 0x14, 0x80, 0x07, 0x82, 0x55, 0x31,
        0x7d, 0x7b, 0x1d, 0x9e, 0x47, 0xda, 0x15, 0x26, 0x7a, 0xe2, 0x42, 0x0a, 0xd2, 0xb9, 0x8b,
        0x6c, 0x0e, 0xf3, 0x8d, 0x5d, 0xfa, 0x77, 0x71, 0x1c, 0xc4, 0x31, 0x23, 0x93, 0xc6, 0x28,
        0x0b, 0x55, 0x65, 0x53, 0x75,
    ];
    pub const MESSAGE: &[u8] = b"jwt-authn-wasm: verify_signature probe";
    /// ES256 over `MESSAGE`, `r || s`.
    pub const SIGNATURE: [u8; 64] = [
        0xd7, 0xbd, 0xd7, 0xe7, 0x25, 0x95, 0xe6, 0x5b, 0xc6, 0xed, 0x40, 0x9b, 0x2f, 0xc1, 0xe8,
        0x48, 0x81, 0x75, 0xab, 0xf7, 0xe7, 0x4c, 0x4c, 0x16, 0x21, 0x93, 0x04, 0xea, 0x65, 0xe5,
        0x47, 0x20, 0xfc, 0x88, 0xfe, 0x4d, 0xd5, 0x5f, 0xac, 0x57, 0x78, 0x26, 0xd1, 0x5c, 0xe5,
        0x42, 0xb9, 0x56, 0x4b, 0xda, 0x4c, 0x9c, 0x99, 0x8f, 0xd4, 0x46, 0x5c, 0xdc, 0xb7, 0x98,
        0xb8, 0x8d, 0x37, 0xfd,
    ];
}

/// Whether `backend` checks signatures correctly: the probe verifies, and the probe with one
/// bit flipped does not. Run once per VM; a host failing either is not used.
pub fn backend_works(backend: &dyn SignatureBackend) -> bool {
    let (Some(spki), Some(good)) = (
        ec_spki(32, &probe::POINT),
        jose_to_der(&probe::SIGNATURE, 32),
    ) else {
        return false;
    };
    let mut tampered = probe::SIGNATURE;
    if let Some(byte) = tampered.get_mut(40) {
        *byte ^= 1;
    }
    let Some(bad) = jose_to_der(&tampered, 32) else {
        return false;
    };
    backend.verify("sha256", &spki, probe::MESSAGE, &good) == Some(true)
        && backend.verify("sha256", &spki, probe::MESSAGE, &bad) == Some(false)
}

#[cfg(test)]
mod tests;
