//! Service-to-service identity (issue 17) end to end, in a real Envoy whose listeners terminate
//! TLS and verify client certificates against a CA the test makes (openssl CLI): the `peer`
//! requirement on the connection's URI SAN, `identity_header.peer_field`, `allowed_typ`,
//! certificate-bound tokens (RFC 8705) and `token_kind` with tokens from the real
//! authorization server (`common::authserver`, client credentials and token exchange).
//!
//! Listeners, all running the same filter config:
//! - `mtls`: TLS, a client certificate required and verified (a client without one does not get
//!   through the handshake);
//! - `optional`: TLS, a client certificate verified when sent, not required (the filter sees
//!   "no certificate");
//! - `plain`: plain text (Envoy has no certificate properties at all);
//! - `manifest`: as `mtls`, running the `pluginConfig` of
//!   `manifests/istio/sidecar-service-identity.yaml` as shipped, but with the fixture key set
//!   inline instead of the identity provider's remote one.
//!
//! Requests go through `curl` (the tests' own HTTP client has no TLS). Differential rows with
//! native `jwt_authn`: none, it has no peer, token type, binding or token kind checks.
//!
//! Run: `make build && make authserver && cargo test --test peer`.

// Tests fail by panicking, and index into responses they have just checked.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use common::authserver::{self, AuthServer, Exchange, ORDERS, USER_ISSUER};
use common::bootstrap::{self, Listener, Side};
use common::envoy::Envoy;
use common::http::Response;
use common::upstream::Upstream;
use common::{mint, now};

const ISS: &str = "https://users.example";
const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";
const ROGUE: &str = "spiffe://cluster.local/ns/shop/sa/rogue";
/// 2100-01-01.
const FAR: i64 = 4_102_444_800;

/// The filter config; `as_issuer` / `as_jwks`: the authorization server's.
///
/// - `/internal`: the frontend peer AND a user token of `idp`; the identity header carries
///   the user (`sub`) and the peer (`peer_field`).
/// - `/typed`: a token of `typed`, which takes only `typ` `at+jwt`.
/// - `/bound`: a token of `bound` (`certificate_bound: if_present`), from `x-bound`.
/// - `/service`: a service token of `as` (the authorization server, `at+jwt` only).
fn config(as_issuer: &str, as_jwks: &str) -> Value {
    let idp = |extra: Value| {
        let mut p = json!({ "issuer": ISS, "audiences": ["api"],
                            "local_jwks": { "inline_string": mint::JWKS } });
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    json!({
        "providers": {
            "idp": idp(json!({ "identity_header": { "header_name": "x-identity",
                "claims": { "user": "sub" }, "peer_field": "peer" } })),
            "typed": idp(json!({ "allowed_typ": ["at+jwt"], "from_headers": [{ "name": "x-typed" }] })),
            "bound": idp(json!({ "certificate_bound": "if_present", "from_headers": [{ "name": "x-bound" }] })),
            "as": {
                "issuer": as_issuer,
                "audiences": ["orders"],
                "local_jwks": { "inline_string": as_jwks },
                "allowed_typ": ["at+jwt"],
                "from_headers": [{ "name": "x-service", "value_prefix": "Bearer " }],
                "identity_header": { "header_name": "x-caller", "claims": { "sub": "sub" },
                                     "peer_field": "peer" },
            },
        },
        "rules": [
            { "match": { "prefix": "/internal" }, "requires": { "requires_all": { "requirements": [
                { "peer": { "principals": [FRONTEND] } },
                { "provider_name": "idp", "token_kind": "user" } ] } } },
            { "match": { "prefix": "/typed" }, "requires": { "provider_name": "typed" } },
            { "match": { "prefix": "/bound" }, "requires": { "provider_name": "bound" } },
            { "match": { "prefix": "/service" }, "requires": { "provider_name": "as",
                "token_kind": "service" } },
        ],
    })
}

/// The manifest this suite runs: its `WasmPlugin`'s `pluginConfig`.
const MANIFEST: &str = "manifests/istio/sidecar-service-identity.yaml";
/// The issuer and audience of the manifest's provider `idp`.
const MANIFEST_ISS: &str = "https://idp.example.com/";
const MANIFEST_AUD: &str = "api.example.com";

/// `MANIFEST`'s `pluginConfig`, its provider's keys inline (the fixture set) instead of fetched
/// from the identity provider: everything else as shipped.
fn manifest_config() -> Result<Value, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{MANIFEST}: {e}"))?;
    let mut plugin = None;
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc).map_err(|e| format!("{MANIFEST}: {e}"))?;
        if value["kind"] == "WasmPlugin" {
            plugin = Some(value["spec"]["pluginConfig"].clone());
        }
    }
    let mut config = plugin.ok_or(format!("{MANIFEST}: no WasmPlugin"))?;
    let idp = config["providers"]["idp"]
        .as_object_mut()
        .ok_or(format!("{MANIFEST}: no provider idp"))?;
    idp.remove("remote_jwks")
        .ok_or(format!("{MANIFEST}: idp has no remote_jwks"))?;
    idp.insert("local_jwks".into(), json!({ "inline_string": mint::JWKS }));
    Ok(config)
}

/// Certificates made for this run, in one directory.
struct Pki {
    dir: PathBuf,
}

/// A client identity: certificate and key files.
#[derive(Clone, Copy)]
enum Client {
    Frontend,
    Rogue,
    /// No client certificate.
    Anonymous,
}

impl Pki {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// The DER of `name`.crt.
    fn der(&self, name: &str) -> Vec<u8> {
        let out = openssl(
            &self.dir,
            &["x509", "-in", &format!("{name}.crt"), "-outform", "DER"],
        );
        assert!(!out.is_empty(), "no DER for {name}");
        out
    }

    /// RFC 8705 `x5t#S256` of `name`.crt, computed here from the DER (not by the filter's code).
    fn x5t_s256(&self, name: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.der(name)))
    }
}

/// Runs openssl in `dir`; panics with its stderr on failure.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl (needed to make test certificates): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A CA; a server certificate for 127.0.0.1; client certificates `frontend` and `rogue` with
/// SPIFFE URI SANs, all P-256.
fn make_pki() -> Pki {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("peer-pki-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=peer test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&dir, &ca);
    let leaf = |name: &str, ext: &str| {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let mut req = vec!["req"];
        req.extend(ec);
        let (key, csr, crt, extfile, cn) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
            format!("/CN={name}"),
        );
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &cn]);
        openssl(&dir, &req);
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-CAserial",
                "ca.srl",
                "-days",
                "2",
                "-extfile",
                &extfile,
                "-out",
                &crt,
            ],
        );
    };
    leaf(
        "server",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    );
    for (name, uri) in [("frontend", FRONTEND), ("rogue", ROGUE)] {
        leaf(
            name,
            &format!("subjectAltName=URI:{uri}\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"),
        );
    }
    Pki { dir }
}

struct Fixture {
    pki: Pki,
    server: AuthServer,
    envoy: Envoy,
    _upstream: Upstream,
}

static FIXTURE: OnceLock<Result<Fixture, String>> = OnceLock::new();

fn fixture() -> &'static Fixture {
    let fx = FIXTURE.get_or_init(|| {
        authserver::installed()?;
        bootstrap::wasm_module()?;
        let pki = make_pki();
        let server = AuthServer::try_start(&authserver::Config::standard())?;
        let cfg = config(server.issuer(), &server.jwks());
        let upstream = Upstream::start();
        let boot = bootstrap::bootstrap(
            &[
                Listener::new("mtls", Side::Wasm, &cfg),
                Listener::new("optional", Side::Wasm, &cfg),
                Listener::new("plain", Side::Wasm, &cfg),
                Listener::new("manifest", Side::Wasm, &manifest_config()?),
            ],
            upstream.port(),
        );
        let mut boot: Value = serde_json::from_str(&boot).unwrap();
        for listener in boot["static_resources"]["listeners"].as_array_mut().unwrap() {
            let require = match listener["name"].as_str() {
                Some("mtls" | "manifest") => true,
                Some("optional") => false,
                _ => continue,
            };
            listener["filter_chains"][0]["transport_socket"] = json!({
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "require_client_certificate": require,
                    "common_tls_context": {
                        "tls_certificates": [{
                            "certificate_chain": { "filename": pki.path("server.crt") },
                            "private_key": { "filename": pki.path("server.key") },
                        }],
                        "validation_context": { "trusted_ca": { "filename": pki.path("ca.crt") } },
                    },
                },
            });
        }
        let envoy = Envoy::try_start(&boot.to_string()).map_err(|e| e.to_string())?;
        Ok(Fixture {
            pki,
            server,
            envoy,
            _upstream: upstream,
        })
    });
    match fx {
        Ok(fx) => fx,
        Err(e) => panic!("the peer fixture did not start: {e}"),
    }
}

/// `GET path` on `listener` as `client`, with `headers`: the response, or curl's error when
/// there is none (a refused handshake).
fn try_get(
    listener: &str,
    client: Client,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let fx = fixture();
    let port = fx.envoy.port(listener);
    let scheme = if listener == "plain" { "http" } else { "https" };
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--raw", "--http1.1", "--max-time", "10"])
        .args(["--cacert", &fx.pki.path("ca.crt")]);
    let cert = match client {
        Client::Frontend => Some("frontend"),
        Client::Rogue => Some("rogue"),
        Client::Anonymous => None,
    };
    if let Some(name) = cert {
        cmd.args(["--cert", &fx.pki.path(&format!("{name}.crt"))])
            .args(["--key", &fx.pki.path(&format!("{name}.key"))]);
    }
    for (name, value) in headers {
        cmd.args(["-H", &format!("{name}: {value}")]);
    }
    cmd.arg(format!("{scheme}://127.0.0.1:{port}{path}"));
    let out = cmd.output().map_err(|e| format!("curl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "curl exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Response::parse(&out.stdout).map_err(|e| e.to_string())
}

fn get(listener: &str, client: Client, path: &str, headers: &[(&str, &str)]) -> Response {
    try_get(listener, client, path, headers)
        .unwrap_or_else(|e| panic!("GET {path} on {listener}: {e}"))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A user's token of `idp`: sub alice, `typ` as given (`None`: no `typ`), `extra` claims.
fn user_token(typ: Option<&str>, extra: Value) -> String {
    let mut claims = json!({ "iss": ISS, "aud": "api", "sub": "alice", "exp": FAR });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let mut header = json!({ "alg": "RS256", "kid": "rsa-a" });
    if let Some(typ) = typ {
        header["typ"] = json!(typ);
    }
    mint::sign(&header, &claims, "RS256", mint::Key::RsaA)
}

/// The upstream's view of identity header `name`: the decoded JSON object.
fn identity(resp: &Response, name: &str) -> Value {
    let value = resp
        .upstream()
        .header(name)
        .unwrap_or_else(|| panic!("no {name} upstream: {resp}"))
        .to_owned();
    serde_json::from_slice(&STANDARD.decode(value).unwrap()).unwrap()
}

/// The filter never failed in the VM, and no request was refused because the glue could not
/// read a connection property (that would be a 503 "Peer certificate cannot be read").
fn assert_healthy(resps: &[&Response]) {
    let bad = fixture().envoy.wasm_failures();
    assert!(bad.is_empty(), "the wasm VM failed:\n{}", bad.join("\n"));
    for r in resps {
        assert_ne!(r.status, 503, "{r}");
    }
}

#[test]
fn the_frontend_with_a_user_token_gets_through_and_the_upstream_sees_both() {
    let token = user_token(Some("JWT"), json!({}));
    let resp = get(
        "mtls",
        Client::Frontend,
        "/internal/orders",
        &[
            ("authorization", &bearer(&token)),
            // A client's own identity header never reaches the upstream.
            (
                "x-identity",
                &STANDARD.encode(r#"{"user":"admin","peer":"spiffe://x/y"}"#),
            ),
        ],
    );
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(
        identity(&resp, "x-identity"),
        json!({ "user": "alice", "peer": FRONTEND })
    );
    assert_eq!(resp.upstream().header_all("x-identity").len(), 1, "{resp}");
    assert!(!resp.upstream().has("authorization"), "{resp}");
    assert_healthy(&[&resp]);
}

#[test]
fn another_service_with_the_same_token_is_refused() {
    let token = user_token(Some("JWT"), json!({}));
    let resp = get(
        "mtls",
        Client::Rogue,
        "/internal/orders",
        &[("authorization", &bearer(&token))],
    );
    assert_eq!(resp.status, 403, "{resp}");
    assert_eq!(resp.body_str(), "Peer is not allowed");
    // No token would help: no challenge.
    assert_eq!(resp.header("www-authenticate"), None, "{resp}");
    assert_healthy(&[&resp]);
}

#[test]
fn no_client_certificate_is_refused() {
    let token = user_token(Some("JWT"), json!({}));
    let auth = bearer(&token);
    let headers = [("authorization", auth.as_str())];
    // Required by the listener: the handshake fails, Envoy never sees a request.
    let refused = try_get("mtls", Client::Anonymous, "/internal/orders", &headers);
    assert!(refused.is_err(), "{refused:?}");
    // Optional on the listener, or plain text: the filter finds no peer.
    for listener in ["optional", "plain"] {
        let resp = get(listener, Client::Anonymous, "/internal/orders", &headers);
        assert_eq!(resp.status, 403, "{listener}: {resp}");
        assert_eq!(resp.body_str(), "Peer is not allowed", "{listener}");
        assert_healthy(&[&resp]);
    }
    // The same request with the frontend's certificate on the optional listener passes.
    let resp = get("optional", Client::Frontend, "/internal/orders", &headers);
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(identity(&resp, "x-identity")["peer"], json!(FRONTEND));
}

#[test]
fn allowed_typ_takes_at_jwt_and_refuses_jwt() {
    let mut resps = Vec::new();
    for (typ, want) in [
        (Some("at+jwt"), 200),
        (Some("application/at+jwt"), 200),
        (Some("JWT"), 401),
        (None, 401),
    ] {
        let resp = get(
            "mtls",
            Client::Frontend,
            "/typed",
            &[("x-typed", &user_token(typ, json!({})))],
        );
        assert_eq!(resp.status, want, "typ {typ:?}: {resp}");
        if want == 401 {
            let challenge = resp.header("www-authenticate").unwrap_or_default();
            assert!(challenge.contains("error=\"invalid_token\""), "{resp}");
        }
        resps.push(resp);
    }
    assert_healthy(&resps.iter().collect::<Vec<_>>());
}

#[test]
fn a_certificate_bound_token_works_only_over_its_certificate() {
    let fx = fixture();
    let thumbprint = fx.pki.x5t_s256("frontend");
    let bound = user_token(Some("JWT"), json!({ "cnf": { "x5t#S256": thumbprint } }));
    let over_own = get("mtls", Client::Frontend, "/bound", &[("x-bound", &bound)]);
    assert_eq!(over_own.status, 200, "{over_own}");
    let mut refused = Vec::new();
    for (listener, client) in [
        ("mtls", Client::Rogue),
        ("optional", Client::Anonymous),
        ("plain", Client::Anonymous),
    ] {
        let resp = get(listener, client, "/bound", &[("x-bound", &bound)]);
        assert_eq!(resp.status, 401, "{listener}: {resp}");
        assert_eq!(
            resp.body_str(),
            "Jwt is not bound to the client certificate",
            "{listener}"
        );
        assert!(
            resp.header("www-authenticate")
                .unwrap_or_default()
                .contains("error=\"invalid_token\""),
            "{resp}"
        );
        refused.push(resp);
    }
    // `if_present`: an unbound token is taken over any connection.
    let unbound = get(
        "plain",
        Client::Anonymous,
        "/bound",
        &[("x-bound", &user_token(None, json!({})))],
    );
    assert_eq!(unbound.status, 200, "{unbound}");
    assert_healthy(&[&over_own, &refused[0], &refused[1], &refused[2], &unbound]);
}

#[test]
fn a_service_token_from_the_authorization_server_passes_a_service_route_and_a_user_token_does_not()
{
    let fx = fixture();
    let s = &fx.server;
    let gateway = authserver::Config::standard().client("gateway");
    // Client credentials: sub == client_id == gateway, typ at+jwt.
    let service = s.cc_token(&gateway, Some("orders:read"), Some(ORDERS));
    let resp = get(
        "mtls",
        Client::Frontend,
        "/service",
        &[("x-service", &bearer(&service))],
    );
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(
        identity(&resp, "x-caller"),
        json!({ "sub": "gateway", "peer": FRONTEND })
    );
    // Alice's token exchanged by the gateway at the same server: sub alice, client_id gateway.
    let alice = mint::token(
        "RS256",
        &json!({ "iss": USER_ISSUER, "sub": "alice", "aud": "web", "scope": "orders:read",
                 "iat": now(), "exp": now() + 600 }),
    );
    let user = s
        .exchange(
            &gateway,
            &Exchange::new(&alice)
                .audience("orders")
                .scope("orders:read"),
        )
        .unwrap_or_else(|e| panic!("token exchange: {e}\n{}", s.stderr_tail()))
        .access_token;
    let claims = authserver::jwt_part(&user, 1).unwrap();
    assert_eq!(
        (claims["sub"].clone(), claims["client_id"].clone()),
        (json!("alice"), json!("gateway"))
    );
    let denied = get(
        "mtls",
        Client::Frontend,
        "/service",
        &[("x-service", &bearer(&user))],
    );
    assert_eq!(denied.status, 403, "{denied}");
    assert!(
        denied
            .header("www-authenticate")
            .unwrap_or_default()
            .contains("error=\"insufficient_scope\""),
        "{denied}"
    );
    assert_eq!(
        denied.body_str(),
        "Jwt is not of the kind of token this route accepts"
    );
    assert_healthy(&[&resp, &denied]);
}

/// A token of the manifest's provider: `typ` at+jwt, `claims` over iss / aud / exp.
fn manifest_token(claims: Value) -> String {
    let mut payload = json!({ "iss": MANIFEST_ISS, "aud": MANIFEST_AUD, "exp": FAR });
    for (k, v) in claims.as_object().unwrap() {
        payload[k] = v.clone();
    }
    mint::sign(
        &json!({ "alg": "RS256", "typ": "at+jwt", "kid": "rsa-a" }),
        &payload,
        "RS256",
        mint::Key::RsaA,
    )
}

#[test]
fn the_service_identity_manifest_does_what_its_comments_say() {
    let alice = manifest_token(json!({ "sub": "alice", "scope": "orders:read" }));
    let frontend_own = manifest_token(json!({ "sub": "frontend", "client_id": "frontend",
                                               "scope": "orders:read" }));
    let batch = manifest_token(json!({ "sub": "batch", "client_id": "batch" }));
    let id_token = mint::sign(
        &json!({ "alg": "RS256", "typ": "JWT", "kid": "rsa-a" }),
        &json!({ "iss": MANIFEST_ISS, "aud": MANIFEST_AUD, "exp": FAR, "sub": "alice",
                 "scope": "orders:read" }),
        "RS256",
        mint::Key::RsaA,
    );
    let mut resps = Vec::new();
    for (what, client, path, token, want) in [
        (
            "frontend for alice",
            Client::Frontend,
            "/internal/x",
            Some(&alice),
            200,
        ),
        (
            "rogue for alice",
            Client::Rogue,
            "/internal/x",
            Some(&alice),
            403,
        ),
        (
            "frontend's own token",
            Client::Frontend,
            "/internal/x",
            Some(&frontend_own),
            403,
        ),
        (
            "an ID token (typ JWT)",
            Client::Frontend,
            "/internal/x",
            Some(&id_token),
            401,
        ),
        (
            "the batch job's token",
            Client::Rogue,
            "/jobs/nightly",
            Some(&batch),
            200,
        ),
        (
            "alice on /jobs",
            Client::Frontend,
            "/jobs/nightly",
            Some(&alice),
            403,
        ),
        (
            "another service's token on /jobs",
            Client::Frontend,
            "/jobs/nightly",
            Some(&frontend_own),
            403,
        ),
        ("health check", Client::Rogue, "/healthz", None, 200),
    ] {
        let auth = token.map(|t| bearer(t));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let resp = get("manifest", client, path, &headers);
        assert_eq!(resp.status, want, "{what}: {resp}");
        resps.push(resp);
    }
    assert_eq!(
        identity(&resps[0], "x-verified-identity"),
        json!({ "user_id": "alice", "scopes": ["orders:read"], "peer": FRONTEND })
    );
    assert_healthy(&resps.iter().collect::<Vec<_>>());
}
