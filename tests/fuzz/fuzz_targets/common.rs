//! Shared by the fuzz targets: one fixed configuration (provider `p` with the fixture key set,
//! every token location, identity headers), and `decide` on a request.

use jwt_authn_wasm::config::Config;
use jwt_authn_wasm::engine::{decide, Decision};
use jwt_authn_wasm::request::RequestHeaders;

pub const ISS: &str = "https://issuer.fuzz";
/// 2030-01-01: fixed, so a crash reproduces whatever the date.
pub const NOW: i64 = 1_893_456_000;

pub fn config() -> &'static Config {
    static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        let json = serde_json::json!({
            "providers": { "p": {
                "issuer": ISS,
                "audiences": ["api"],
                "local_jwks": { "inline_string": include_str!("../../fixtures/jwks.json") },
                "from_headers": [
                    { "name": "authorization", "value_prefix": "Bearer " },
                    { "name": "x-token" },
                ],
                "from_params": ["access_token"],
                "from_cookies": ["jwt"],
                "forward_payload_header": "x-jwt-payload",
                "claim_to_headers": [
                    { "header_name": "x-jwt-sub", "claim_name": "sub" },
                    { "header_name": "x-jwt-email", "claim_name": "profile.email" },
                ],
            } },
            "rules": [
                { "match": { "prefix": "/public" } },
                { "match": { "prefix": "/" }, "requires": { "provider_name": "p",
                    "required_scopes": { "any_of": ["read"] } } },
            ],
        });
        match Config::from_json(json.to_string().as_bytes()) {
            Ok(config) => config,
            Err(e) => panic!("fuzz config refused: {e}"),
        }
    })
}

/// Decides `headers` with the fixed configuration and checks what must hold for any input.
pub fn decide_and_check(headers: &RequestHeaders) -> Decision<'_> {
    let config = config();
    let decision = decide(config, config, headers, NOW);
    if let Decision::Allow { ops, .. } = &decision {
        for op in ops {
            if let jwt_authn_wasm::propagate::HeaderOp::Set(name, value) = op {
                // Nothing the filter emits may carry a control character into a header.
                assert!(
                    !value.bytes().any(|b| b.is_ascii_control() && b != b'\t'),
                    "control character in {name}: {value:?}"
                );
            }
        }
    }
    decision
}
