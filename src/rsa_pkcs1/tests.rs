//! Every verdict is compared with the `rsa` crate's on the same key, message and signature.

use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};

use super::*;

fn private(pem: &str) -> RsaPrivateKey {
    RsaPrivateKey::from_pkcs8_pem(pem).unwrap()
}

fn keys() -> Vec<RsaPrivateKey> {
    vec![
        private(include_str!("../../tests/fixtures/keys/rsa2048-a.pem")),
        private(include_str!("../../tests/fixtures/keys/rsa2048-b.pem")),
        private(include_str!("../../tests/fixtures/keys/rsa1024.pem")),
    ]
}

fn scheme(hash: Hash) -> Pkcs1v15Sign {
    match hash {
        Hash::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
        Hash::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
        Hash::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
    }
}

fn digest(hash: Hash, message: &[u8]) -> Vec<u8> {
    match hash {
        Hash::Sha256 => sha2::Sha256::digest(message).to_vec(),
        Hash::Sha384 => sha2::Sha384::digest(message).to_vec(),
        Hash::Sha512 => sha2::Sha512::digest(message).to_vec(),
    }
}

fn sign(key: &RsaPrivateKey, hash: Hash, message: &[u8]) -> Vec<u8> {
    key.sign(scheme(hash), &digest(hash, message)).unwrap()
}

/// The `rsa` crate's verdict.
fn reference(key: &RsaPublicKey, hash: Hash, message: &[u8], sig: &[u8]) -> bool {
    sig.len() == key.size()
        && key
            .verify(scheme(hash), &digest(hash, message), sig)
            .is_ok()
}

fn both(key: &RsaPublicKey, hash: Hash, message: &[u8], sig: &[u8], what: &str) -> bool {
    let ours = RsaVerifier::new(key).unwrap().verify(hash, message, sig);
    assert_eq!(ours, reference(key, hash, message, sig), "{what}");
    ours
}

const HASHES: [Hash; 3] = [Hash::Sha256, Hash::Sha384, Hash::Sha512];

#[test]
fn good_signatures_verify_and_altered_ones_do_not() {
    for key in keys() {
        let public = key.to_public_key();
        for hash in HASHES {
            let msg = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";
            let sig = sign(&key, hash, msg);
            assert!(both(&public, hash, msg, &sig, "good"));
            for at in [0, 1, sig.len() / 2, sig.len() - 1] {
                for bit in [0x01, 0x80] {
                    let mut bad = sig.clone();
                    bad[at] ^= bit;
                    assert!(!both(&public, hash, msg, &bad, "bit flipped"));
                }
            }
            assert!(!both(
                &public,
                hash,
                b"other message",
                &sig,
                "other message"
            ));
            let other = HASHES.into_iter().find(|h| *h != hash).unwrap();
            assert!(!both(&public, other, msg, &sig, "other hash"));
            assert!(!both(&public, hash, msg, &sig[1..], "short"));
            assert!(!both(
                &public,
                hash,
                msg,
                &[&sig[..], &[0]].concat(),
                "long"
            ));
        }
    }
}

#[test]
fn edge_values_of_the_signature_are_refused() {
    for key in keys() {
        let public = key.to_public_key();
        let size = public.size();
        let n = public.n().to_bytes_be();
        let mut n_minus_1 = n.clone();
        *n_minus_1.last_mut().unwrap() -= 1; // n is odd
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("zero", vec![0; size]),
            ("one", [vec![0; size - 1], vec![1]].concat()),
            ("n - 1", n_minus_1),
            ("n", n.clone()),
            ("all ones (over n)", vec![0xff; size]),
        ];
        for (what, sig) in cases {
            assert!(!both(&public, Hash::Sha256, b"m", &sig, what), "{what}");
        }
    }
}

#[test]
fn random_signatures_agree_with_the_rsa_crate() {
    let key = keys().remove(0).to_public_key();
    let verifier = RsaVerifier::new(&key).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..200 {
        let sig: Vec<u8> = (0..key.size())
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert!(!verifier.verify(Hash::Sha256, b"m", &sig));
        assert!(!reference(&key, Hash::Sha256, b"m", &sig));
    }
}

#[test]
fn the_public_operation_matches_the_big_integer_one() {
    // s^e mod n for arbitrary s < n, against num-bigint's modpow.
    let key = keys().remove(1).to_public_key();
    let verifier = RsaVerifier::new(&key).unwrap();
    for seed in 1u8..20 {
        let be: Vec<u8> = (0..key.size())
            .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
            .collect();
        let s = rsa::BigUint::from_bytes_be(&be) % key.n();
        let want = s.modpow(key.e(), key.n());
        let mut s_be = s.to_bytes_be();
        while s_be.len() < key.size() {
            s_be.insert(0, 0);
        }
        let got = verifier.public_op(&limbs_be(&s_be, verifier.n.len()));
        let got_le: Vec<u8> = got.iter().flat_map(|l| l.to_le_bytes()).collect();
        assert_eq!(rsa::BigUint::from_bytes_le(&got_le), want, "seed {seed}");
    }
}

/// A deterministic generator for PSS salts (tests only: nothing here needs randomness).
struct Salts(u64);

impl rsa::rand_core::RngCore for Salts {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.next_u64() as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for Salts {}

fn pss(hash: Hash) -> rsa::Pss {
    match hash {
        Hash::Sha256 => rsa::Pss::new::<sha2::Sha256>(),
        Hash::Sha384 => rsa::Pss::new::<sha2::Sha384>(),
        Hash::Sha512 => rsa::Pss::new::<sha2::Sha512>(),
    }
}

fn both_pss(key: &RsaPublicKey, hash: Hash, message: &[u8], sig: &[u8], what: &str) -> bool {
    let ours = RsaVerifier::new(key)
        .unwrap()
        .verify_pss(hash, message, sig);
    let theirs =
        sig.len() == key.size() && key.verify(pss(hash), &digest(hash, message), sig).is_ok();
    assert_eq!(ours, theirs, "{what}");
    ours
}

#[test]
fn pss_signatures_verify_as_the_rsa_crate_verifies_them() {
    let mut salts = Salts(0x2545_f491_4f6c_dd1d);
    for key in keys() {
        let public = key.to_public_key();
        for hash in HASHES {
            let msg = b"eyJhbGciOiJQUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";
            let Ok(sig) = key.sign_with_rng(&mut salts, pss(hash), &digest(hash, msg)) else {
                // RSA-1024 is too short for PS512 (two 64-byte values and two more bytes).
                assert!(public.size() < 2 * digest(hash, msg).len() + 2);
                continue;
            };
            assert!(both_pss(&public, hash, msg, &sig, "good"));
            for at in [0, 1, sig.len() / 2, sig.len() - 1] {
                for bit in [0x01, 0x80] {
                    let mut bad = sig.clone();
                    bad[at] ^= bit;
                    assert!(!both_pss(&public, hash, msg, &bad, "bit flipped"));
                }
            }
            assert!(!both_pss(&public, hash, b"other", &sig, "other message"));
            let other = HASHES.into_iter().find(|h| *h != hash).unwrap();
            assert!(!both_pss(&public, other, msg, &sig, "other hash"));
            assert!(!both_pss(&public, hash, msg, &sig[1..], "short"));
            let v15 = sign(&key, hash, msg);
            assert!(!both_pss(
                &public,
                hash,
                msg,
                &v15,
                "a PKCS#1 v1.5 signature"
            ));
            assert!(
                !RsaVerifier::new(&public).unwrap().verify(hash, msg, &sig),
                "PSS as v1.5"
            );
        }
        let n = public.n().to_bytes_be();
        for (what, sig) in [("zero", vec![0; public.size()]), ("n", n)] {
            assert!(!both_pss(&public, Hash::Sha256, b"m", &sig, what));
        }
    }
}
