//! Plugin configuration parsing: any bytes; what is accepted then decides a few requests.
#![no_main]

use jwt_authn_wasm::config::Config;
use jwt_authn_wasm::engine::decide;
use jwt_authn_wasm::request::RequestHeaders;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = Config::from_json(data) else {
        return;
    };
    let _ = config.warnings();
    for path in ["/", "/api?access_token=a.b.c", "/public/x"] {
        let headers = RequestHeaders::new(vec![
            (":method".into(), b"GET".to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
            (":authority".into(), b"fuzz.test".to_vec()),
            ("authorization".into(), b"Bearer a.b.c".to_vec()),
        ]);
        let _ = decide(&config, &config, &headers, 1_893_456_000);
    }
});
