//! Key set vectors: other projects' test key sets (Envoy's `jwt_authn`, google/jwt_verify_lib,
//! Istio) and our own (`ours-*`, made by `tests/fixtures/vectors/gen_ours.py` from the fixture
//! keys), each with what our loader makes of it and tokens with the answers native `jwt_authn`
//! and this filter give. `tests/fixtures/vectors/README.md` says where each file comes from.
//!
//! Shared by the unit tests (`jwks::tests::every_vector_loads_as_the_table_says`: the loader
//! and each signature) and the end-to-end suite (`tests/key_sets.rs`: native and ours in one
//! Envoy, with the key set inline and fetched).
#![allow(dead_code)]

use serde_json::json;

use super::mint::{self, Key};

/// One key set document.
pub struct Vector {
    /// Also the route its tokens are sent to (`/<name>`) and the provider's name.
    pub name: &'static str,
    /// Where it comes from: repository, file, constant.
    pub source: &'static str,
    pub jwks: &'static str,
    /// What our loader makes of it.
    pub load: Load,
    /// Whether native `jwt_authn` loads it (Envoy 1.40 refuses a configuration whose inline
    /// key set it cannot read, and a fetched one as a failed fetch).
    pub native_loads: bool,
    pub tokens: &'static [Check],
}

/// What `KeySet::from_json` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// A set with this many usable keys, skipped keys and notes (loaded but not conformant).
    Keys {
        keys: usize,
        skipped: usize,
        notes: usize,
    },
    /// An error whose text contains this.
    Refused(&'static str),
}

/// A token for a vector, and the answers to a request carrying it.
pub struct Check {
    pub token: Token,
    /// Its signature verifies with our key set (tokens past their `exp` included: the loader
    /// is tested here, not the clock).
    pub verifies: bool,
    /// The status native `jwt_authn` and this filter answer.
    pub native: u16,
    pub ours: u16,
}

/// Where a token comes from.
#[derive(Clone, Copy)]
pub enum Token {
    /// A file of `tests/fixtures/vectors` (another project's token, as they published it).
    File(&'static str),
    /// Minted now: `alg` with fixture key `key` under `kid`, claims `{"sub":"vector","exp":
    /// 2100-01-01}`.
    Mint {
        alg: &'static str,
        key: Key,
        kid: &'static str,
    },
}

impl Token {
    pub fn text(&self) -> String {
        match *self {
            Token::File(text) => text.trim().to_string(),
            Token::Mint { alg, key, kid } => mint::sign(
                &json!({ "alg": alg, "typ": "JWT", "kid": kid }),
                &json!({ "sub": "vector", "exp": 4_102_444_800i64 }),
                alg,
                key,
            ),
        }
    }
}

const fn same(token: Token) -> Check {
    Check {
        token,
        verifies: true,
        native: 200,
        ours: 200,
    }
}

const fn keys(keys: usize) -> Load {
    Load::Keys {
        keys,
        skipped: 0,
        notes: 0,
    }
}

const fn mint(alg: &'static str, key: Key, kid: &'static str) -> Token {
    Token::Mint { alg, key, kid }
}

macro_rules! file {
    ($name:literal) => {
        include_str!(concat!("../fixtures/vectors/", $name))
    };
}

macro_rules! token {
    ($name:literal) => {
        Token::File(file!($name))
    };
}

/// Every vector. Those whose tokens get the same answers everywhere come first; then the ones
/// where we differ from native on purpose (the README's differences table names each).
pub const VECTORS: &[Vector] = &[
    // --- Envoy: test/extensions/filters/http/jwt_authn/test_common.h
    Vector {
        name: "envoy-public-key",
        source: "envoyproxy/envoy test/extensions/filters/http/jwt_authn/test_common.h PublicKey (with its trailing comma), GoodToken",
        jwks: file!("envoy-public-key.json"),
        load: keys(3),
        native_loads: true,
        tokens: &[same(token!("envoy-good-token.jwt"))],
    },
    Vector {
        name: "envoy-es256",
        source: "envoyproxy/envoy test/extensions/filters/http/jwt_authn/test_common.h ES256PublicKey, ES256WithoutIssToken",
        jwks: file!("envoy-es256-public-key.json"),
        load: keys(1),
        native_loads: true,
        tokens: &[same(token!("envoy-es256-without-iss.jwt"))],
    },
    // --- google/jwt_verify_lib: test/*.cc, test/test_common.h
    Vector {
        name: "jvl-x509",
        source: "google/jwt_verify_lib test/test_common.h kPublicKeyX509, test/verify_x509_test.cc kTokenNoKid",
        jwks: file!("jvl-x509.json"),
        load: keys(2),
        native_loads: true,
        // The token's signature segment is padded (`==`): native reads it, our token parser
        // refuses it (RFC 7515 §2), whatever the keys.
        tokens: &[Check {
            token: token!("jvl-x509-no-kid.jwt"),
            verifies: false,
            native: 200,
            ours: 401,
        }],
    },
    Vector {
        name: "jvl-real-x509",
        source: "google/jwt_verify_lib test/test_common.h kRealX509Jwks (googleapis.com service-account certificates), test/verify_x509_test.cc kRealToken (expired in 2020)",
        jwks: file!("jvl-real-x509.json"),
        load: keys(5),
        native_loads: true,
        tokens: &[Check {
            token: token!("jvl-real-x509.jwt"),
            verifies: true,
            native: 401,
            ours: 401,
        }],
    },
    Vector {
        name: "jvl-ec",
        source: "google/jwt_verify_lib test/verify_jwk_ec_test.cc PublicKeyJwkEC (its P-521 `y` is 65 bytes), JwtES256Text, JwtES384Text, JwtES512Text",
        jwks: file!("jvl-ec.json"),
        load: Load::Keys {
            keys: 4,
            skipped: 0,
            notes: 1,
        },
        native_loads: true,
        tokens: &[
            same(token!("jvl-ec-es256.jwt")),
            same(token!("jvl-ec-es384.jwt")),
            same(token!("jvl-ec-es512.jwt")),
        ],
    },
    Vector {
        name: "jvl-rsa",
        source: "google/jwt_verify_lib test/verify_jwk_rsa_test.cc PublicKeyRSA, JwtTextNoKidLongExp, JwtTextWithCorrectKid (expired)",
        jwks: file!("jvl-rsa.json"),
        load: keys(2),
        native_loads: true,
        tokens: &[
            same(token!("jvl-rsa-no-kid.jwt")),
            Check {
                token: token!("jvl-rsa-kid.jwt"),
                verifies: true,
                native: 401,
                ours: 401,
            },
        ],
    },
    Vector {
        name: "jvl-okp",
        source: "google/jwt_verify_lib test/verify_jwk_okp_test.cc PublicKeyJwkOKP, JwtJWKEd25519",
        jwks: file!("jvl-okp.json"),
        load: keys(2),
        native_loads: true,
        tokens: &[same(token!("jvl-okp-ed25519.jwt"))],
    },
    Vector {
        name: "jvl-hmac",
        source: "google/jwt_verify_lib test/verify_jwk_hmac_test.cc SymmetricKeyHMAC (with a trailing comma), JwtTextNoKidLongExp, JwtHS384TextWithCorrectKid and JwtHS512TextWithCorrectKid (expired)",
        jwks: file!("jvl-hmac.json"),
        load: keys(4),
        native_loads: true,
        tokens: &[
            same(token!("jvl-hmac-no-kid.jwt")),
            Check {
                token: token!("jvl-hmac-hs384.jwt"),
                verifies: true,
                native: 401,
                ours: 401,
            },
            Check {
                token: token!("jvl-hmac-hs512.jwt"),
                verifies: true,
                native: 401,
                ours: 401,
            },
        ],
    },
    Vector {
        name: "jvl-rsa-pss",
        source: "google/jwt_verify_lib test/verify_jwk_rsa_pss_test.cc PublicKeyRSAPSS (Keycloak, with x5c), Ps256/Ps384/Ps512JwtTextWithCorrectKid (expired)",
        jwks: file!("jvl-rsa-pss.json"),
        load: keys(3),
        native_loads: true,
        tokens: &[
            Check {
                token: token!("jvl-rsa-pss-ps256.jwt"),
                verifies: true,
                native: 401,
                ours: 401,
            },
            Check {
                token: token!("jvl-rsa-pss-ps384.jwt"),
                verifies: true,
                native: 401,
                ours: 401,
            },
            Check {
                token: token!("jvl-rsa-pss-ps512.jwt"),
                verifies: true,
                native: 401,
                ours: 401,
            },
        ],
    },
    Vector {
        name: "jvl-rsa-pss-jwt-io",
        source: "google/jwt_verify_lib test/verify_jwk_rsa_pss_test.cc JwtIoPublicKeyRSAPSS, JwtTextWithNoKid",
        jwks: file!("jvl-rsa-pss-jwt-io.json"),
        load: keys(1),
        native_loads: true,
        tokens: &[same(token!("jvl-rsa-pss-jwt-io.jwt"))],
    },
    // jwt_verify_lib's test/jwks_test.cc key sets, which it loads (Status::Ok); no tokens.
    Vector {
        name: "jvl-jwks-good-rsa",
        source: "google/jwt_verify_lib test/jwks_test.cc GoodJwks",
        jwks: file!("jvl-jwks-good-rsa.json"),
        load: keys(2),
        native_loads: true,
        tokens: &[],
    },
    Vector {
        name: "jvl-jwks-good-ec",
        source: "google/jwt_verify_lib test/jwks_test.cc GoodEC",
        jwks: file!("jvl-jwks-good-ec.json"),
        load: Load::Keys {
            keys: 4,
            skipped: 0,
            notes: 1,
        },
        native_loads: true,
        tokens: &[],
    },
    Vector {
        name: "jvl-jwks-good-okp",
        source: "google/jwt_verify_lib test/jwks_test.cc GoodOKP",
        jwks: file!("jvl-jwks-good-okp.json"),
        // Its `x` (a P-256 coordinate reused) is not an Ed25519 point: native keeps the 32
        // bytes, and no signature can ever verify with them; we do not load such a key.
        load: Load::Refused("`x` is not an Ed25519 point"),
        native_loads: true,
        tokens: &[],
    },
    Vector {
        name: "jvl-jwks-ec-no-alg-no-crv",
        source: "google/jwt_verify_lib test/jwks_test.cc JwksECMissingBothAlgCrvES256 (P-256 assumed)",
        jwks: file!("jvl-jwks-ec-no-alg-no-crv.json"),
        load: Load::Keys {
            keys: 1,
            skipped: 0,
            notes: 1,
        },
        native_loads: true,
        tokens: &[],
    },
    Vector {
        name: "jvl-jwks-ec-no-alg",
        source: "google/jwt_verify_lib test/jwks_test.cc JwkECMissingAlg",
        jwks: file!("jvl-jwks-ec-no-alg.json"),
        load: keys(1),
        native_loads: true,
        tokens: &[],
    },
    Vector {
        name: "jvl-jwks-ec-no-crv",
        source: "google/jwt_verify_lib test/jwks_test.cc JwkECMissingCrv (the curve from `alg`)",
        jwks: file!("jvl-jwks-ec-no-crv.json"),
        load: Load::Keys {
            keys: 1,
            skipped: 0,
            notes: 1,
        },
        native_loads: true,
        tokens: &[],
    },
    Vector {
        name: "jvl-jwks-ec-crv-from-alg",
        source: "google/jwt_verify_lib test/jwks_test.cc JwksECUnspecifiedCrv",
        jwks: file!("jvl-jwks-ec-crv-from-alg.json"),
        load: Load::Keys {
            keys: 3,
            skipped: 0,
            notes: 4,
        },
        native_loads: true,
        tokens: &[],
    },
    Vector {
        name: "jvl-jwks-unsupported-key-in-middle",
        source: "google/jwt_verify_lib test/jwks_test.cc JwksIgnoreUnsupportedKeyInMiddle (an X25519 key skipped; its Ed25519 key is GoodOKP's)",
        jwks: file!("jvl-jwks-unsupported-key-in-middle.json"),
        load: Load::Keys {
            keys: 1,
            skipped: 2,
            notes: 0,
        },
        native_loads: true,
        tokens: &[],
    },
    // --- Istio
    Vector {
        name: "istio-jwks",
        source: "istio/istio tests/common/jwt/jwks.json, tests/common/jwt/jwt_token.go TokenIssuer1",
        jwks: file!("istio-jwks.json"),
        load: keys(1),
        native_loads: true,
        tokens: &[same(token!("istio-token-issuer-1.jwt"))],
    },
    Vector {
        name: "istio-demo",
        source: "istio/istio security/tools/jwt/samples/jwks.json, demo.jwt",
        jwks: file!("istio-demo-jwks.json"),
        load: keys(1),
        native_loads: true,
        tokens: &[same(token!("istio-demo.jwt"))],
    },
    // --- Ours: the forms above, with our fixture keys (tokens minted now).
    Vector {
        name: "ours-x509-rsa",
        source: "gen_ours.py: Google's X.509 form, self-signed certificates of rsa-a and rsa-b",
        jwks: file!("ours-x509-rsa.json"),
        load: keys(2),
        native_loads: true,
        tokens: &[
            same(mint("RS256", Key::RsaA, "rsa-a")),
            same(mint("PS384", Key::RsaA, "rsa-a")),
            same(mint("RS512", Key::RsaB, "rsa-b")),
        ],
    },
    Vector {
        name: "ours-trailing-commas",
        source: "gen_ours.py: a comma after the last key, as in Envoy's PublicKey",
        jwks: file!("ours-trailing-commas.json"),
        load: keys(3),
        native_loads: true,
        tokens: &[
            same(mint("RS256", Key::RsaA, "rsa-a")),
            same(mint("ES256", Key::Ec256, "ec256")),
            same(mint("EdDSA", Key::Ed, "ed")),
        ],
    },
    Vector {
        name: "ours-trailing-commas-in-objects",
        source: "gen_ours.py: a comma after the last member of every object",
        jwks: file!("ours-trailing-commas-in-objects.json"),
        load: keys(3),
        native_loads: true,
        tokens: &[same(mint("ES256", Key::Ec256, "ec256"))],
    },
    Vector {
        name: "ours-short-ec-coordinate",
        source: "gen_ours.py: ec521 with `y` written in 65 bytes (its leading zero dropped)",
        jwks: file!("ours-short-ec-coordinate.json"),
        load: Load::Keys {
            keys: 1,
            skipped: 0,
            notes: 1,
        },
        native_loads: true,
        tokens: &[same(mint("ES512", Key::Ec521, "ec521"))],
    },
    Vector {
        name: "ours-ec-without-crv",
        source: "gen_ours.py: EC keys without `crv` (P-256 assumed; the curve from `alg`)",
        jwks: file!("ours-ec-without-crv.json"),
        load: Load::Keys {
            keys: 3,
            skipped: 0,
            notes: 3,
        },
        native_loads: true,
        tokens: &[
            same(mint("ES256", Key::Ec256, "ec256")),
            same(mint("ES384", Key::Ec384, "ec384")),
            same(mint("ES512", Key::Ec521, "ec521")),
        ],
    },
    Vector {
        name: "ours-one-bad-key",
        source: "gen_ours.py: an RSA key without `n` before a good Ed25519 key",
        jwks: file!("ours-one-bad-key.json"),
        load: Load::Keys {
            keys: 1,
            skipped: 1,
            notes: 0,
        },
        native_loads: true,
        tokens: &[same(mint("EdDSA", Key::Ed, "ed"))],
    },
    // --- Where we differ on purpose.
    Vector {
        name: "ours-x509-ec",
        source: "gen_ours.py: X.509 form with EC certificates (native refuses the whole set)",
        jwks: file!("ours-x509-ec.json"),
        load: keys(3),
        native_loads: false,
        tokens: &[Check {
            token: mint("ES256", Key::Ec256, "ec256"),
            verifies: true,
            native: 401,
            ours: 200,
        }],
    },
    Vector {
        name: "ours-x509-unreadable-and-good",
        source: "gen_ours.py: X.509 form, one certificate unreadable (native refuses the whole set)",
        jwks: file!("ours-x509-unreadable-and-good.json"),
        load: Load::Keys {
            keys: 1,
            skipped: 1,
            notes: 0,
        },
        native_loads: false,
        tokens: &[Check {
            token: mint("RS256", Key::RsaB, "rsa-b"),
            verifies: true,
            native: 401,
            ours: 200,
        }],
    },
    Vector {
        name: "ours-x509-two-in-one",
        source: "gen_ours.py: X.509 form, two certificates under one kid (native reads the first)",
        jwks: file!("ours-x509-two-in-one.json"),
        load: Load::Keys {
            keys: 1,
            skipped: 1,
            notes: 0,
        },
        native_loads: true,
        tokens: &[Check {
            token: mint("RS256", Key::RsaA, "rsa-a"),
            verifies: false,
            native: 200,
            ours: 401,
        }],
    },
    Vector {
        name: "ours-use-enc",
        source: "gen_ours.py: an RSA key with `use: enc` (native ignores `use`)",
        jwks: file!("ours-use-enc.json"),
        load: Load::Keys {
            keys: 1,
            skipped: 1,
            notes: 0,
        },
        native_loads: true,
        tokens: &[Check {
            token: mint("RS256", Key::RsaA, "rsa-a"),
            verifies: false,
            native: 200,
            ours: 401,
        }],
    },
    Vector {
        name: "ours-kid-not-a-string",
        source: "gen_ours.py: an RSA key with `kid: 7` (native reads it as no kid)",
        jwks: file!("ours-kid-not-a-string.json"),
        load: Load::Keys {
            keys: 1,
            skipped: 1,
            notes: 0,
        },
        native_loads: true,
        tokens: &[Check {
            token: mint("RS256", Key::RsaA, "rsa-a"),
            verifies: false,
            native: 200,
            ours: 401,
        }],
    },
    Vector {
        name: "ours-alg-not-a-string",
        source: "gen_ours.py: an RSA key with `alg: 256` (native reads it as no alg)",
        jwks: file!("ours-alg-not-a-string.json"),
        load: Load::Keys {
            keys: 1,
            skipped: 1,
            notes: 0,
        },
        native_loads: true,
        tokens: &[Check {
            token: mint("RS256", Key::RsaA, "rsa-a"),
            verifies: false,
            native: 200,
            ours: 401,
        }],
    },
    Vector {
        name: "ours-ec-coordinate-with-leading-zero",
        source: "gen_ours.py: ec521 with `y` in 67 bytes, a zero byte in front (native reads it as a number)",
        jwks: file!("ours-ec-coordinate-with-leading-zero.json"),
        load: Load::Keys {
            keys: 1,
            skipped: 1,
            notes: 0,
        },
        native_loads: true,
        tokens: &[Check {
            token: mint("ES512", Key::Ec521, "ec521"),
            verifies: false,
            native: 200,
            ours: 401,
        }],
    },
    // The whole document is refused: end to end only as a fetched key set (inline, the
    // configuration itself would be refused).
    Vector {
        name: "ours-single-quotes",
        source: "gen_ours.py: single-quoted JSON strings (protobuf's JSON parser reads them)",
        jwks: file!("ours-single-quotes.json"),
        load: Load::Refused("key must be a string at line 1, column 2"),
        native_loads: true,
        tokens: &[Check {
            token: mint("RS256", Key::RsaA, "rsa-a"),
            verifies: false,
            native: 200,
            ours: 401,
        }],
    },
    Vector {
        name: "ours-unquoted-names",
        source: "gen_ours.py: member names without quotes (protobuf's JSON parser reads them)",
        jwks: file!("ours-unquoted-names.json"),
        load: Load::Refused("key must be a string at line 1, column 2"),
        native_loads: true,
        tokens: &[Check {
            token: mint("RS256", Key::RsaA, "rsa-a"),
            verifies: false,
            native: 200,
            ours: 401,
        }],
    },
];
