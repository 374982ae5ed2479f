//! Key set parsing (JWKS and Google's X.509 form): any bytes, and key selection on what parsed.
#![no_main]

use jwt_authn_wasm::jwks::KeySet;
use jwt_authn_wasm::jwt::Alg;
use jwt_authn_wasm::signature::PureRust;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(keys) = KeySet::from_slice(data) {
        for alg in [
            "RS256", "PS384", "ES256", "ES384", "ES512", "EdDSA", "HS256",
        ] {
            if let Some(alg) = Alg::from_name(alg) {
                for key in keys.keys() {
                    let _ = key.fits(alg, Some("k"));
                }
                let _ = keys.verify(alg, None, b"a.b", &[0; 64], &PureRust);
            }
        }
    }
});
