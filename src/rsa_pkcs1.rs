//! RSA signature checks, PKCS#1 v1.5 (RS256/384/512) and PSS (PS256/384/512), for hosts
//! without native crypto (and PS* everywhere: Envoy's `verify_signature` pads v1.5 only),
//! made cheaper inside wasm.
//!
//! The `rsa` crate (through `num-bigint-dig`) spends most of a verification on work that does
//! not depend on the signature: on every call it computes `R² mod n` with a long division and
//! fills a 4-bit window table (14 multiplications) before the ~20 it needs for `e = 65537`. Here
//! the Montgomery constants are computed once per key, when the key set loads, and the public
//! exponent is applied by plain square-and-multiply: 19 Montgomery products for `e = 65537`.
//! Limbs are 32 bits: wasm multiplies 64-bit integers natively, 128-bit ones only in software.
//!
//! Verification recomputes `s^e mod n` and compares it, byte for byte, with the one encoding
//! RFC 8017 §9.2 allows (`00 01 FF…FF 00 || DigestInfo || H`); nothing is parsed out of it.
//! PSS has no single encoding: EMSA-PSS-VERIFY (§9.1.2) unmasks it with MGF1 and checks the
//! padding, the salt length (the digest's, as JWA requires) and the hash. A
//! signature must be exactly as long as the modulus and below it. Public data only: no
//! constant-time concerns.

use rsa::traits::PublicKeyParts as _;
use sha2::Digest as _;

/// A public key with its Montgomery constants.
#[derive(Clone)]
pub struct RsaVerifier {
    /// The modulus, little-endian 32-bit limbs.
    n: Vec<u32>,
    /// `-n⁻¹ mod 2³²`.
    n0inv: u32,
    /// `R² mod n`, `R = 2^(32 · limbs)`, little-endian limbs.
    rr: Vec<u32>,
    e: u64,
    /// The modulus length in bytes (= the signature length).
    size: usize,
}

/// The digests RS* use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl RsaVerifier {
    /// The constants for `key`; `None` for an even modulus or an exponent over 64 bits (the
    /// `rsa` crate refuses both anyway).
    pub fn new(key: &rsa::RsaPublicKey) -> Option<Self> {
        let n = limbs(&key.n().to_bytes_le());
        let low = *n.first()?;
        if low & 1 == 0 {
            return None;
        }
        let e_bytes = key.e().to_bytes_le();
        if e_bytes.len() > 8 {
            return None;
        }
        let e = e_bytes
            .iter()
            .rev()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        // Newton's iteration for n⁻¹ mod 2³²: each step doubles the correct low bits.
        let mut inv: u32 = 1;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(low.wrapping_mul(inv)));
        }
        let r2 = (rsa::BigUint::from(1u8) << (64 * n.len())) % key.n();
        let mut rr = limbs(&r2.to_bytes_le());
        rr.resize(n.len(), 0);
        Some(Self {
            n0inv: inv.wrapping_neg(),
            rr,
            e,
            size: key.size(),
            n,
        })
    }

    /// Whether `signature` is a PKCS#1 v1.5 signature of `message` under this key with `hash`.
    pub fn verify(&self, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
        self.recover(signature)
            .is_some_and(|em| em == encoded(hash, message, self.size))
    }

    /// Whether `signature` is an RSASSA-PSS signature (RFC 8017 §8.1.2) of `message` under
    /// this key with `hash`, MGF1 with the same hash, and a salt as long as the digest (JWA,
    /// RFC 7518 §3.5: PS256/384/512).
    pub fn verify_pss(&self, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
        let Some(em) = self.recover(signature) else {
            return false;
        };
        // emBits = modBits - 1; EM is the last emLen bytes of the k-byte representative, and
        // whatever precedes them must be zero (RFC 8017 §8.1.2 step 2c).
        let em_bits = self.bits().saturating_sub(1);
        let em_len = em_bits.div_ceil(8);
        let (lead, em) = em.split_at(em.len().saturating_sub(em_len));
        lead.iter().all(|b| *b == 0) && emsa_pss_verify(hash, message, em, em_bits)
    }

    /// The bit length of the modulus.
    fn bits(&self) -> usize {
        let top = self.n.iter().rposition(|l| *l != 0).unwrap_or(0);
        let high = self.n.get(top).copied().unwrap_or(0);
        top * 32 + (32 - high.leading_zeros() as usize)
    }

    /// `signature^e mod n` as `size` big-endian bytes; `None` when the signature is not exactly
    /// as long as the modulus or not below it.
    fn recover(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.size {
            return None;
        }
        let s = limbs_be(signature, self.n.len());
        if !less_than(&s, &self.n) {
            return None;
        }
        let m = self.public_op(&s);
        let mut em = vec![0u8; self.size];
        for (byte, value) in em
            .iter_mut()
            .rev()
            .zip(m.iter().flat_map(|l| l.to_le_bytes()))
        {
            *byte = value;
        }
        Some(em)
    }

    /// `s^e mod n`.
    fn public_op(&self, s: &[u32]) -> Vec<u32> {
        let len = self.n.len();
        let mut scratch = vec![0u32; len + 2];
        let mut base = vec![0u32; len];
        self.mont_mul(s, &self.rr, &mut base, &mut scratch); // s·R mod n
        let mut acc = base.clone();
        let mut tmp = vec![0u32; len];
        let bits = 64 - self.e.leading_zeros();
        for i in (0..bits.saturating_sub(1)).rev() {
            self.mont_mul(&acc, &acc, &mut tmp, &mut scratch);
            if (self.e >> i) & 1 == 1 {
                self.mont_mul(&tmp, &base, &mut acc, &mut scratch);
            } else {
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        let mut one = vec![0u32; len];
        if let Some(first) = one.first_mut() {
            *first = 1;
        }
        self.mont_mul(&acc, &one, &mut tmp, &mut scratch); // out of the Montgomery domain
        tmp
    }

    /// `out = a · b · R⁻¹ mod n` (CIOS), for `a, b < n`; `t` is scratch of `limbs + 2`.
    fn mont_mul(&self, a: &[u32], b: &[u32], out: &mut [u32], t: &mut [u32]) {
        let len = self.n.len();
        t.fill(0);
        for &bi in b {
            // t += a · bi
            let mut carry = 0u64;
            for (tj, &aj) in t.iter_mut().zip(a) {
                let x = u64::from(*tj) + u64::from(aj) * u64::from(bi) + carry;
                *tj = x as u32;
                carry = x >> 32;
            }
            add_carry(t.get_mut(len..).unwrap_or_default(), carry);
            // t += m · n, which makes the low limb 0; then t /= 2³²
            let m = u64::from(t.first().copied().unwrap_or(0).wrapping_mul(self.n0inv));
            let mut carry = 0u64;
            for (tj, &nj) in t.iter_mut().zip(&self.n) {
                let x = u64::from(*tj) + m * u64::from(nj) + carry;
                *tj = x as u32;
                carry = x >> 32;
            }
            add_carry(t.get_mut(len..).unwrap_or_default(), carry);
            t.copy_within(1.., 0);
            if let Some(last) = t.last_mut() {
                *last = 0;
            }
        }
        // t < 2n: subtract n once if needed.
        let (low, high) = t.split_at(len);
        let overflow = high.first().is_some_and(|h| *h != 0);
        if overflow || !less_than(low, &self.n) {
            let mut borrow = 0i64;
            for ((o, &tj), &nj) in out.iter_mut().zip(low).zip(&self.n) {
                let x = i64::from(tj) - i64::from(nj) - borrow;
                *o = x as u32;
                borrow = i64::from(x < 0);
            }
        } else {
            out.copy_from_slice(low);
        }
    }
}

/// Adds `carry` into the limbs of `t` (little-endian).
fn add_carry(t: &mut [u32], mut carry: u64) {
    for limb in t {
        if carry == 0 {
            break;
        }
        let x = u64::from(*limb) + carry;
        *limb = x as u32;
        carry = x >> 32;
    }
}

/// Little-endian bytes → little-endian limbs.
fn limbs(le: &[u8]) -> Vec<u32> {
    le.chunks(4)
        .map(|c| {
            c.iter()
                .rev()
                .fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
        })
        .collect()
}

/// Big-endian bytes → `len` little-endian limbs (the bytes fit: the caller checked the length).
fn limbs_be(be: &[u8], len: usize) -> Vec<u32> {
    let le: Vec<u8> = be.iter().rev().copied().collect();
    let mut out = limbs(&le);
    out.resize(len, 0);
    out
}

/// `a < b` for little-endian limbs of the same length.
fn less_than(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// The digest of the concatenated `parts`.
fn digest(hash: Hash, parts: &[&[u8]]) -> Vec<u8> {
    fn run<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
        let mut d = D::new();
        for part in parts {
            d.update(part);
        }
        d.finalize().to_vec()
    }
    match hash {
        Hash::Sha256 => run::<sha2::Sha256>(parts),
        Hash::Sha384 => run::<sha2::Sha384>(parts),
        Hash::Sha512 => run::<sha2::Sha512>(parts),
    }
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with MGF1 of the same hash and a salt of the digest's
/// length; `em` is `emLen = ⌈em_bits / 8⌉` bytes.
fn emsa_pss_verify(hash: Hash, message: &[u8], em: &[u8], em_bits: usize) -> bool {
    let m_hash = digest(hash, &[message]);
    let h_len = m_hash.len();
    let s_len = h_len;
    let em_len = em.len();
    if em_len < h_len + s_len + 2 || em.last() != Some(&0xbc) {
        return false;
    }
    let db_len = em_len - h_len - 1;
    let (Some(masked_db), Some(h)) = (em.get(..db_len), em.get(db_len..em_len - 1)) else {
        return false;
    };
    // The bits of the first byte above emBits must be zero, before and after unmasking.
    let top_bits = 8 * em_len - em_bits;
    let top_mask = 0xffu8.checked_shr(top_bits as u32).unwrap_or(0);
    if masked_db.first().is_some_and(|b| b & !top_mask != 0) {
        return false;
    }
    // DB = maskedDB xor MGF1(H, db_len).
    let mut db = masked_db.to_vec();
    let mut counter: u32 = 0;
    let mut at = 0;
    while at < db_len {
        let block = digest(hash, &[h, &counter.to_be_bytes()]);
        for (byte, mask) in db.iter_mut().skip(at).zip(&block) {
            *byte ^= mask;
        }
        at += block.len();
        counter += 1;
    }
    if let Some(first) = db.first_mut() {
        *first &= top_mask;
    }
    // DB = PS (zeros) || 0x01 || salt.
    let ps_len = db_len - s_len - 1;
    let (Some(ps), Some(&one), Some(salt)) =
        (db.get(..ps_len), db.get(ps_len), db.get(ps_len + 1..))
    else {
        return false;
    };
    if one != 0x01 || ps.iter().any(|b| *b != 0) {
        return false;
    }
    digest(hash, &[&[0u8; 8], &m_hash, salt]) == h
}

/// EMSA-PKCS1-v1_5 (RFC 8017 §9.2) of `message` for a `size`-byte modulus.
fn encoded(hash: Hash, message: &[u8], size: usize) -> Vec<u8> {
    // DigestInfo prefixes (RFC 8017 §9.2, note 1).
    const SHA256: &[u8] = &[
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    const SHA384: &[u8] = &[
        0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
        0x05, 0x00, 0x04, 0x30,
    ];
    const SHA512: &[u8] = &[
        0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03,
        0x05, 0x00, 0x04, 0x40,
    ];
    let (prefix, digest) = match hash {
        Hash::Sha256 => (SHA256, sha2::Sha256::digest(message).to_vec()),
        Hash::Sha384 => (SHA384, sha2::Sha384::digest(message).to_vec()),
        Hash::Sha512 => (SHA512, sha2::Sha512::digest(message).to_vec()),
    };
    let t_len = prefix.len() + digest.len();
    // At least 8 bytes of padding; keys here are 2048 bits and more, far above.
    let pad = size.saturating_sub(t_len + 3).max(8);
    let mut em = Vec::with_capacity(size);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(2 + pad, 0xff);
    em.push(0x00);
    em.extend_from_slice(prefix);
    em.extend_from_slice(&digest);
    em
}

#[cfg(test)]
mod tests;
