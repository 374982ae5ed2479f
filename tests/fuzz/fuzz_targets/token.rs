//! Token parsing and verification against the fixture key set, through `engine::decide`.
//! First byte even: the rest is the token as sent. Odd: the rest is `header JSON \0 payload
//! JSON \0 signature bytes`, base64url-encoded into a token here, so the JSON parsers and the
//! claim checks see structured input rather than base64 noise.
#![no_main]

#[path = "common.rs"]
mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_authn_wasm::request::RequestHeaders;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let mut parts = rest.splitn(3, |b| *b == 0);
        let (h, p, s) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(h),
            URL_SAFE_NO_PAD.encode(p),
            URL_SAFE_NO_PAD.encode(s)
        )
    };
    let headers = RequestHeaders::new(vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), b"/api".to_vec()),
        (
            "authorization".into(),
            format!("Bearer {token}").into_bytes(),
        ),
    ]);
    let _ = jwt_authn_wasm::jwt::parse(&token);
    common::decide_and_check(&headers);
});
