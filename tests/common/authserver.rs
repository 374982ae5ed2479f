//! A real OAuth 2.0 authorization server on loopback: oidc-provider (npm, MIT), run by
//! `tests/authserver/server.mjs` as a child process, for the features that talk to one
//! (introspection, revocation, client credentials, token exchange).
//!
//! [`AuthServer::start`] writes the [`Config`] as JSON into a fresh directory under
//! `CARGO_TARGET_TMPDIR`, runs `node server.mjs --config <file> --watch-stdin` (`$NODE_BIN` or
//! `node`), and returns once the server printed the port it bound (port 0 unless the config
//! names one). The child reads a pipe held by this process: when the test process exits, even
//! without destructors (shared `static` servers), the pipe closes and the server exits. `Drop`
//! stops it. Every failure message carries the server's stderr tail.
//!
//! Helpers speak the protocols the way a client does (form bodies, `client_secret_basic` with
//! RFC 6749 §2.3.1 encoding, or `client_secret_post`): [`AuthServer::client_credentials`],
//! [`AuthServer::introspect`], [`AuthServer::revoke`], [`AuthServer::exchange`]. The test hooks
//! ([`AuthServer::counts`], [`AuthServer::requests`], [`AuthServer::set_fault`]) use the
//! server's `/__admin/` endpoints. [`AuthServer::stop`] and [`AuthServer::restart`] take it down
//! and bring it back on the same port and issuer, with the tokens it had issued (they are kept
//! in a state file in its directory).
//!
//! This module knows nothing about Envoy or the filter. It needs `npm ci --prefix
//! tests/authserver` (`make test` does it; `make authserver` alone).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

use super::http::{Request, Response};
use super::mint;

/// How long the server gets to print its port (Node and oidc-provider start in ~0.5 s idle; the
/// machine may be loaded).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The RFC 8693 grant type.
pub const EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// RFC 8693 §3 token type identifiers.
pub mod token_type {
    pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
    pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
    pub const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
}

/// The endpoints oidc-provider serves (paths on the server's port).
pub const TOKEN_PATH: &str = "/token";
pub const INTROSPECTION_PATH: &str = "/token/introspection";
pub const REVOCATION_PATH: &str = "/token/revocation";
pub const JWKS_PATH: &str = "/jwks";
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The issuer of the user tokens tests mint with `mint` (fixture keys), trusted as a subject
/// issuer for token exchange by [`Config::standard`].
pub const USER_ISSUER: &str = "https://users.authserver.test";

/// Kids of the server's default signing keys (`tests/authserver/keys`).
pub const RS256_KID: &str = "authserver-rs256";
pub const ES256_KID: &str = "authserver-es256";

/// Lines of stderr kept for failure messages.
const STDERR_TAIL_LINES: usize = 60;

static NEXT_INSTANCE: AtomicU32 = AtomicU32::new(0);
static PRUNE: Once = Once::new();

// ------------------------------------------------------------------------------------------
// Configuration

/// How a client authenticates (RFC 6749 §2.3.1). oidc-provider accepts either from a client
/// registered with either; [`AuthServer::requests`] tells which one a request used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

impl AuthMethod {
    /// The registered name.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Basic => "client_secret_basic",
            AuthMethod::Post => "client_secret_post",
        }
    }
}

/// A registered client, and how the helpers authenticate as it.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: String,
    pub secret: String,
    pub auth: AuthMethod,
    /// `client_credentials` and/or [`EXCHANGE_GRANT`].
    pub grant_types: Vec<String>,
    /// Claims added to its client-credentials tokens (JWT payload, introspection response).
    pub extra_claims: Option<Value>,
}

impl Client {
    /// A `client_secret_basic` client allowed client credentials and token exchange.
    pub fn new(id: &str, secret: &str) -> Client {
        Client {
            id: id.to_string(),
            secret: secret.to_string(),
            auth: AuthMethod::Basic,
            grant_types: vec!["client_credentials".to_string(), EXCHANGE_GRANT.to_string()],
            extra_claims: None,
        }
    }

    /// The same client registered (and used) with `client_secret_post`.
    pub fn post(mut self) -> Client {
        self.auth = AuthMethod::Post;
        self
    }

    /// Only these grant types.
    pub fn grant_types(mut self, grants: &[&str]) -> Client {
        self.grant_types = grants.iter().map(|g| g.to_string()).collect();
        self
    }

    /// Adds claims to its client-credentials tokens.
    pub fn extra_claims(mut self, claims: Value) -> Client {
        self.extra_claims = Some(claims);
        self
    }

    /// The same id with another secret: what a misconfigured caller sends.
    pub fn with_secret(&self, secret: &str) -> Client {
        Client {
            secret: secret.to_string(),
            ..self.clone()
        }
    }

    fn to_json(&self) -> Value {
        let mut c = json!({
            "client_id": self.id,
            "client_secret": self.secret,
            "grant_types": self.grant_types,
            "token_endpoint_auth_method": self.auth.name(),
        });
        if let Some(extra) = &self.extra_claims {
            c["extra_claims"] = extra.clone();
        }
        c
    }
}

/// How a resource server's access tokens look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// RFC 9068 `at+jwt`, signed by the server.
    Jwt,
    /// A random string only the server can resolve (introspection).
    Opaque,
}

/// A resource server (RFC 8707 resource indicator): a client-credentials request with
/// `resource=<identifier>`, or an exchange naming its `audience` or `identifier`, gets a token
/// with `aud = audience`, scopes within `scope`, lasting `ttl` seconds.
#[derive(Clone, Debug)]
pub struct ResourceServer {
    pub identifier: String,
    pub audience: String,
    pub scope: Vec<String>,
    pub format: Format,
    /// `RS256` or `ES256` with the default keys.
    pub alg: String,
    pub ttl: u64,
}

impl ResourceServer {
    /// A JWT resource server signed with RS256, tokens valid 600 s.
    pub fn jwt(identifier: &str, audience: &str, scope: &[&str]) -> ResourceServer {
        ResourceServer {
            identifier: identifier.to_string(),
            audience: audience.to_string(),
            scope: scope.iter().map(|s| s.to_string()).collect(),
            format: Format::Jwt,
            alg: "RS256".to_string(),
            ttl: 600,
        }
    }

    /// The same with opaque tokens.
    pub fn opaque(identifier: &str, audience: &str, scope: &[&str]) -> ResourceServer {
        ResourceServer {
            format: Format::Opaque,
            ..ResourceServer::jwt(identifier, audience, scope)
        }
    }

    /// Signed with `alg` instead.
    pub fn alg(mut self, alg: &str) -> ResourceServer {
        self.alg = alg.to_string();
        self
    }

    /// Tokens valid `seconds`.
    pub fn ttl(mut self, seconds: u64) -> ResourceServer {
        self.ttl = seconds;
        self
    }
}

/// The server's configuration (see README, "Authorization server for tests").
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// `None`: `http://127.0.0.1:<port>`.
    pub issuer: Option<String>,
    pub clients: Vec<Client>,
    /// Scopes a client may ask for without a resource indicator (opaque tokens without `aud`).
    pub scopes: Vec<String>,
    pub resource_servers: Vec<ResourceServer>,
    /// Lifetime of tokens without a resource server (server default 600 s).
    pub access_token_ttl: Option<u64>,
    /// Clock skew the server accepts on tokens presented to it (server default 15 s).
    pub clock_tolerance: Option<u64>,
    /// Issuers whose JWTs the exchange accepts as `subject_token`: (issuer, JWKS JSON). The
    /// server's own tokens are always accepted.
    pub subject_issuers: Vec<(String, String)>,
    /// `invalid_grant` (default) or `invalid_request` (what RFC 8693 §2.2.2 says) for a subject
    /// or actor token the exchange refuses.
    pub bad_token_error: Option<String>,
    /// Any other top-level key of the server's JSON, as is (`signing_keys`, `port`, ...).
    pub raw: Vec<(String, Value)>,
}

impl Config {
    /// The setup most tests share:
    /// - clients `gateway` (basic), `poster` (post), `service` (basic), each allowed client
    ///   credentials and token exchange, secrets `<id>-secret`;
    /// - scopes `read`, `write` without a resource indicator (opaque tokens, no `aud`);
    /// - resource servers `https://orders.authserver.test` (aud `orders`, JWT RS256, scopes
    ///   `orders:read orders:write`), `https://inventory.authserver.test` (aud `inventory`, JWT
    ///   ES256, `inventory:read`), `https://reports.authserver.test` (aud `reports`, opaque,
    ///   `reports:read`);
    /// - exchange subject issuer [`USER_ISSUER`] with the fixture JWKS (`mint::token` signs for it).
    pub fn standard() -> Config {
        Config {
            clients: vec![
                Client::new("gateway", "gateway-secret"),
                Client::new("poster", "poster-secret").post(),
                Client::new("service", "service-secret"),
            ],
            scopes: vec!["read".to_string(), "write".to_string()],
            resource_servers: vec![
                ResourceServer::jwt(ORDERS, "orders", &["orders:read", "orders:write"]),
                ResourceServer::jwt(INVENTORY, "inventory", &["inventory:read"]).alg("ES256"),
                ResourceServer::opaque(REPORTS, "reports", &["reports:read"]),
            ],
            subject_issuers: vec![(USER_ISSUER.to_string(), mint::JWKS.to_string())],
            ..Config::default()
        }
    }

    /// The client called `id`; panics if there is none.
    pub fn client(&self, id: &str) -> Client {
        match self.clients.iter().find(|c| c.id == id) {
            Some(c) => c.clone(),
            None => panic!("no client {id:?} in the authorization server config"),
        }
    }

    /// Sets a top-level key of the server's JSON as is.
    pub fn raw(mut self, key: &str, value: Value) -> Config {
        self.raw.push((key.to_string(), value));
        self
    }

    /// The JSON `server.mjs` reads.
    pub fn to_json(&self) -> Value {
        let mut c = json!({
            "clients": self.clients.iter().map(Client::to_json).collect::<Vec<_>>(),
            "scopes": self.scopes,
        });
        if let Some(issuer) = &self.issuer {
            c["issuer"] = json!(issuer);
        }
        let mut servers = serde_json::Map::new();
        for rs in &self.resource_servers {
            servers.insert(
                rs.identifier.clone(),
                json!({
                    "audience": rs.audience,
                    "scope": rs.scope,
                    "format": match rs.format { Format::Jwt => "jwt", Format::Opaque => "opaque" },
                    "alg": rs.alg,
                    "ttl": rs.ttl,
                }),
            );
        }
        c["resource_servers"] = Value::Object(servers);
        if let Some(ttl) = self.access_token_ttl {
            c["access_token_ttl"] = json!(ttl);
        }
        if let Some(skew) = self.clock_tolerance {
            c["clock_tolerance"] = json!(skew);
        }
        let mut exchange = json!({
            "subject_issuers": self.subject_issuers.iter().map(|(issuer, jwks)| {
                let jwks: Value = serde_json::from_str(jwks)
                    .unwrap_or_else(|e| panic!("subject issuer {issuer}: JWKS is not JSON: {e}"));
                json!({ "issuer": issuer, "jwks": jwks })
            }).collect::<Vec<_>>(),
        });
        if let Some(error) = &self.bad_token_error {
            exchange["bad_token_error"] = json!(error);
        }
        c["token_exchange"] = exchange;
        for (key, value) in &self.raw {
            c[key.as_str()] = value.clone();
        }
        c
    }
}

/// Resource server identifiers of [`Config::standard`].
pub const ORDERS: &str = "https://orders.authserver.test";
pub const INVENTORY: &str = "https://inventory.authserver.test";
pub const REPORTS: &str = "https://reports.authserver.test";

// ------------------------------------------------------------------------------------------
// Protocol values

/// A token endpoint success (RFC 6749 §5.1, RFC 8693 §2.2.1).
#[derive(Clone, Debug)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
    pub issued_token_type: Option<String>,
    /// The whole JSON body.
    pub raw: Value,
}

impl TokenResponse {
    /// The access token's JWT payload, unverified; `None` for an opaque token.
    pub fn claims(&self) -> Option<Value> {
        jwt_part(&self.access_token, 1)
    }

    /// The access token's JOSE header, unverified; `None` for an opaque token.
    pub fn header(&self) -> Option<Value> {
        jwt_part(&self.access_token, 0)
    }
}

/// An error answer of the server (RFC 6749 §5.2, RFC 7662/7009 client errors), or an answer
/// that was not what the protocol says.
#[derive(Clone, Debug)]
pub struct OAuthError {
    pub status: u16,
    /// The `error` member; empty if the body had none.
    pub error: String,
    pub description: Option<String>,
    pub www_authenticate: Option<String>,
    pub body: String,
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({}) body={}",
            self.status,
            self.error,
            self.description.as_deref().unwrap_or("-"),
            self.body
        )
    }
}

impl OAuthError {
    fn from_response(resp: &Response) -> OAuthError {
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        OAuthError {
            status: resp.status,
            error: body["error"].as_str().unwrap_or_default().to_string(),
            description: body["error_description"].as_str().map(str::to_string),
            www_authenticate: resp.header("www-authenticate").map(str::to_string),
            body: resp.body_str(),
        }
    }
}

/// An RFC 8693 token exchange request. [`Exchange::new`] sets `subject_token_type` to
/// `access_token`; the setters add the optional parameters.
#[derive(Clone, Debug, Default)]
pub struct Exchange {
    pub subject_token: String,
    pub subject_token_type: String,
    pub actor_token: Option<String>,
    pub actor_token_type: Option<String>,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub scope: Option<String>,
    pub requested_token_type: Option<String>,
}

impl Exchange {
    /// Exchange `subject_token` (an access token).
    pub fn new(subject_token: &str) -> Exchange {
        Exchange {
            subject_token: subject_token.to_string(),
            subject_token_type: token_type::ACCESS_TOKEN.to_string(),
            ..Exchange::default()
        }
    }

    pub fn subject_token_type(mut self, t: &str) -> Exchange {
        self.subject_token_type = t.to_string();
        self
    }

    /// Acting party: an access token the server issued to the calling client.
    pub fn actor(mut self, actor_token: &str) -> Exchange {
        self.actor_token = Some(actor_token.to_string());
        self.actor_token_type = Some(token_type::ACCESS_TOKEN.to_string());
        self
    }

    pub fn audience(mut self, audience: &str) -> Exchange {
        self.audience = Some(audience.to_string());
        self
    }

    pub fn resource(mut self, resource: &str) -> Exchange {
        self.resource = Some(resource.to_string());
        self
    }

    pub fn scope(mut self, scope: &str) -> Exchange {
        self.scope = Some(scope.to_string());
        self
    }

    pub fn requested_token_type(mut self, t: &str) -> Exchange {
        self.requested_token_type = Some(t.to_string());
        self
    }

    /// The form parameters (RFC 8693 §2.1), `grant_type` included.
    pub fn params(&self) -> Vec<(&str, &str)> {
        let mut p = vec![
            ("grant_type", EXCHANGE_GRANT),
            ("subject_token", self.subject_token.as_str()),
            ("subject_token_type", self.subject_token_type.as_str()),
        ];
        let optional = [
            ("actor_token", &self.actor_token),
            ("actor_token_type", &self.actor_token_type),
            ("audience", &self.audience),
            ("resource", &self.resource),
            ("scope", &self.scope),
            ("requested_token_type", &self.requested_token_type),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                p.push((name, v.as_str()));
            }
        }
        p
    }
}

/// Requests the server received so far, by endpoint (`token`, `introspection`, `revocation`,
/// `jwks`, `discovery`, `other`), by grant type, and by client and endpoint. Counted when the
/// answer is finished, including refused and fault-injected requests.
#[derive(Clone, Debug)]
pub struct Counts(pub Value);

impl Counts {
    /// Requests to `endpoint`.
    pub fn endpoint(&self, endpoint: &str) -> u64 {
        self.0["endpoints"][endpoint].as_u64().unwrap_or(0)
    }

    /// Token requests with `grant_type` (`client_credentials`, [`EXCHANGE_GRANT`]).
    pub fn grant(&self, grant_type: &str) -> u64 {
        self.0["grants"][grant_type].as_u64().unwrap_or(0)
    }

    /// Requests to `endpoint` by (or claiming to be) `client_id`.
    pub fn client(&self, client_id: &str, endpoint: &str) -> u64 {
        self.0["clients"][client_id][endpoint].as_u64().unwrap_or(0)
    }
}

/// How the server answers requests to an endpoint (see [`AuthServer::set_fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Normally.
    None,
    /// This status with an OAuth-style JSON error body.
    Status(u16),
    /// Normally, after this long.
    Delay(Duration),
    /// Reads the request and never answers.
    Hang,
    /// 200 with a body that is not JSON.
    Garbage,
    /// Resets the connection (TCP RST) without an answer.
    Reset,
}

// ------------------------------------------------------------------------------------------
// The process

/// A running authorization server. Dropping it stops the process.
pub struct AuthServer {
    config: Value,
    dir: PathBuf,
    port: u16,
    issuer: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl AuthServer {
    /// Starts the server with `config`; panics with the reason (and stderr tail) if it does not
    /// come up.
    pub fn start(config: &Config) -> AuthServer {
        match AuthServer::try_start(config) {
            Ok(server) => server,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts the server with `config` and returns once it listens.
    pub fn try_start(config: &Config) -> Result<AuthServer, String> {
        AuthServer::try_start_json(config.to_json())
    }

    /// Starts the server with the JSON `server.mjs` reads, as is (plus a `state_file` in the
    /// server's directory unless it names one).
    pub fn try_start_json(mut config: Value) -> Result<AuthServer, String> {
        installed()?;
        let instance = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("authserver");
        PRUNE.call_once(|| prune_dead_runs(&root));
        let dir = root.join(format!("{}-{instance}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if config.get("state_file").is_none() {
            config["state_file"] = json!(dir.join("state.json"));
        }
        let mut server = AuthServer {
            config,
            dir,
            port: 0,
            issuer: String::new(),
            child: None,
            stdin: None,
            stderr: Arc::new(Mutex::new(VecDeque::new())),
        };
        server.spawn()?;
        Ok(server)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its issuer (`iss` of its tokens and introspection answers).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The directory with its config, state file and stderr log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Its public key set, as served at `/jwks` (give it to the filter as `local_jwks`, or
    /// point `remote_jwks` at [`JWKS_PATH`]).
    pub fn jwks(&self) -> String {
        let resp = self.get(JWKS_PATH);
        self.expect_status(&resp, 200, "GET /jwks");
        resp.body_str()
    }

    /// Its OpenID configuration document.
    pub fn discovery(&self) -> Value {
        let resp = self.get(DISCOVERY_PATH);
        self.expect_status(&resp, 200, "GET discovery");
        self.json(&resp, "discovery")
    }

    /// A client-credentials token. `resource` picks a resource server (its `aud`, format and
    /// scopes); without one the token is opaque, has no `aud`, and `scope` must be among
    /// [`Config::scopes`].
    pub fn client_credentials(
        &self,
        client: &Client,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let mut params = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            params.push(("scope", s));
        }
        if let Some(r) = resource {
            params.push(("resource", r));
        }
        self.token(client, &params)
    }

    /// [`AuthServer::client_credentials`] that must succeed.
    pub fn cc_token(&self, client: &Client, scope: Option<&str>, resource: Option<&str>) -> String {
        match self.client_credentials(client, scope, resource) {
            Ok(t) => t.access_token,
            Err(e) => panic!(
                "client credentials for {}: {e}\n{}",
                client.id,
                self.stderr_tail()
            ),
        }
    }

    /// A token exchange (RFC 8693) as `client`.
    pub fn exchange(
        &self,
        client: &Client,
        request: &Exchange,
    ) -> Result<TokenResponse, OAuthError> {
        self.token(client, &request.params())
    }

    /// Any token request as `client`.
    pub fn token(
        &self,
        client: &Client,
        params: &[(&str, &str)],
    ) -> Result<TokenResponse, OAuthError> {
        let resp = self.post_form(TOKEN_PATH, Some(client), params);
        if resp.status != 200 {
            return Err(OAuthError::from_response(&resp));
        }
        let body = self.json(&resp, "token response");
        let text = |k: &str| body[k].as_str().map(str::to_string);
        Ok(TokenResponse {
            access_token: text("access_token")
                .unwrap_or_else(|| panic!("token response without access_token: {body}")),
            token_type: text("token_type").unwrap_or_default(),
            expires_in: body["expires_in"].as_u64(),
            scope: text("scope"),
            issued_token_type: text("issued_token_type"),
            raw: body,
        })
    }

    /// Introspects `token` as `client` (RFC 7662): the response members.
    pub fn introspect(&self, client: &Client, token: &str) -> Result<Value, OAuthError> {
        let resp = self.post_form(INTROSPECTION_PATH, Some(client), &[("token", token)]);
        if resp.status != 200 {
            return Err(OAuthError::from_response(&resp));
        }
        Ok(self.json(&resp, "introspection response"))
    }

    /// Revokes `token` as `client` (RFC 7009; only the client it was issued to may).
    pub fn revoke(&self, client: &Client, token: &str) -> Result<(), OAuthError> {
        let resp = self.post_form(REVOCATION_PATH, Some(client), &[("token", token)]);
        if resp.status != 200 {
            return Err(OAuthError::from_response(&resp));
        }
        Ok(())
    }

    /// POSTs a form to `path`, authenticated as `client` (its [`AuthMethod`]) if given.
    pub fn post_form(
        &self,
        path: &str,
        client: Option<&Client>,
        params: &[(&str, &str)],
    ) -> Response {
        let mut form: Vec<(&str, &str)> = params.to_vec();
        let mut req = Request::new("POST", path)
            .host(&format!("127.0.0.1:{}", self.port))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = client {
            match c.auth {
                AuthMethod::Basic => {
                    req = req.header("authorization", basic_auth(&c.id, &c.secret))
                }
                AuthMethod::Post => {
                    form.push(("client_id", &c.id));
                    form.push(("client_secret", &c.secret));
                }
            }
        }
        let req = req.body(form_encode(&form));
        self.send(&req, path)
    }

    /// What it has received so far.
    pub fn counts(&self) -> Counts {
        let resp = self.get("/__admin/counts");
        self.expect_status(&resp, 200, "GET /__admin/counts");
        Counts(self.json(&resp, "counts"))
    }

    /// The last requests it received (up to 500, oldest first): `endpoint`, `path`, `status`,
    /// `client_id`, `auth_method` (`client_secret_basic` or `client_secret_post`),
    /// `grant_type`, and `params` (the form, without `client_secret`).
    pub fn requests(&self) -> Vec<Value> {
        let resp = self.get("/__admin/requests");
        self.expect_status(&resp, 200, "GET /__admin/requests");
        match self.json(&resp, "requests") {
            Value::Array(list) => list,
            other => panic!("/__admin/requests is not a list: {other}"),
        }
    }

    /// Makes `endpoint` (`token`, `introspection`, `revocation`, `jwks`, `discovery`; `None`
    /// for every endpoint) answer as `fault` until the next call. Admin paths are never faulted.
    pub fn set_fault(&self, endpoint: Option<&str>, fault: Fault) {
        let (mode, status, delay_ms) = match fault {
            Fault::None => ("none", 0, 0),
            Fault::Status(s) => ("status", s, 0),
            Fault::Delay(d) => ("delay", 0, d.as_millis() as u64),
            Fault::Hang => ("hang", 0, 0),
            Fault::Garbage => ("garbage", 0, 0),
            Fault::Reset => ("reset", 0, 0),
        };
        let body = json!({ "endpoint": endpoint.unwrap_or("*"), "mode": mode, "status": status, "delay_ms": delay_ms });
        let req = Request::new("PUT", "/__admin/fault")
            .host("127.0.0.1")
            .header("content-type", "application/json")
            .body(body.to_string());
        let resp = self.send(&req, "/__admin/fault");
        self.expect_status(&resp, 200, "PUT /__admin/fault");
    }

    /// Stops the server (the "authorization server down" case). Its port stays free for
    /// [`AuthServer::restart`] unless another process takes it.
    pub fn stop(&mut self) {
        // Closing stdin makes the server exit (--watch-stdin); kill it if it does not.
        self.stdin.take();
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    /// Starts it again on the same port with the same issuer, clients and keys; the tokens it
    /// issued before are still known (state file). Panics if it does not come up.
    pub fn restart(&mut self) {
        self.stop();
        self.config["port"] = json!(self.port);
        self.config["issuer"] = json!(self.issuer);
        // The old socket is closed, but give another test's process time to release the port
        // should it have raced for it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if e.contains("EADDRINUSE") && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!("authorization server restart on port {}: {e}", self.port),
            }
        }
    }

    /// The last lines it wrote to stderr (oidc-provider's errors, one line per refused request).
    pub fn stderr_tail(&self) -> String {
        let lines = self
            .stderr
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>());
        lines.unwrap_or_default().join("\n")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let config_path = self.dir.join("config.json");
        std::fs::write(&config_path, self.config.to_string())
            .map_err(|e| format!("{}: {e}", config_path.display()))?;
        let node = std::env::var("NODE_BIN").unwrap_or_else(|_| "node".to_string());
        let mut child = Command::new(&node)
            .arg(server_script())
            .arg("--config")
            .arg(&config_path)
            .arg("--watch-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!("could not run {node} (is Node.js installed? NODE_BIN picks one): {e}")
            })?;
        let stdin = child.stdin.take();
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            return Err("no pipes to the authorization server".to_string());
        };

        if let Ok(mut lines) = self.stderr.lock() {
            lines.clear();
        }
        let tail = Arc::clone(&self.stderr);
        let log_path = self.dir.join("stderr.log");
        let stderr_thread = thread::spawn(move || {
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_path)
                .ok();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = log.as_mut() {
                    use std::io::Write as _;
                    let _ = writeln!(f, "{line}");
                }
                if let Ok(mut t) = tail.lock() {
                    t.push_back(line);
                    while t.len() > STDERR_TAIL_LINES {
                        t.pop_front();
                    }
                }
            }
        });
        let (ready_tx, ready_rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("authserver: listening ") {
                    let _ = ready_tx.send(rest.to_string());
                }
            }
        });

        let deadline = Instant::now() + START_TIMEOUT;
        let ready = loop {
            match ready_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => break Some(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break None,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if matches!(child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                break None;
            }
        };
        let Some(ready) = ready else {
            let _ = child.kill();
            let status = child.wait().ok();
            let _ = stderr_thread.join();
            return Err(format!(
                "the authorization server did not start within {START_TIMEOUT:?} (exit: {status:?}); stderr:\n{}",
                self.stderr_tail()
            ));
        };
        let info: Value =
            serde_json::from_str(&ready).map_err(|e| format!("bad ready line {ready:?}: {e}"))?;
        self.port = info["port"].as_u64().unwrap_or(0) as u16;
        self.issuer = info["issuer"].as_str().unwrap_or_default().to_string();
        self.child = Some(child);
        self.stdin = stdin;
        Ok(())
    }

    fn get(&self, path: &str) -> Response {
        self.send(
            &Request::get(path).host(&format!("127.0.0.1:{}", self.port)),
            path,
        )
    }

    fn send(&self, req: &Request, what: &str) -> Response {
        match req.try_send(self.port) {
            Ok(resp) => resp,
            Err(e) => panic!(
                "{} {what} to the authorization server (127.0.0.1:{}) failed: {e}; stderr:\n{}",
                req.method,
                self.port,
                self.stderr_tail()
            ),
        }
    }

    fn expect_status(&self, resp: &Response, status: u16, what: &str) {
        assert_eq!(
            resp.status,
            status,
            "{what}: {resp}\nstderr:\n{}",
            self.stderr_tail()
        );
    }

    fn json(&self, resp: &Response, what: &str) -> Value {
        serde_json::from_slice(&resp.body).unwrap_or_else(|e| {
            panic!(
                "{what} is not JSON ({e}): {resp}\nstderr:\n{}",
                self.stderr_tail()
            )
        })
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.stop();
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes the directories of earlier test processes that are gone (a shared `static` server
/// never runs `Drop`).
fn prune_dead_runs(root: &Path) {
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().unwrap_or_default();
        if pid != std::process::id().to_string() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `tests/authserver/server.mjs`.
pub fn server_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/authserver/server.mjs")
}

/// Ok if `npm ci --prefix tests/authserver` has run, else how to do it.
pub fn installed() -> Result<(), String> {
    let marker = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/authserver/node_modules/oidc-provider/package.json");
    if marker.is_file() {
        Ok(())
    } else {
        Err(format!(
            "oidc-provider is not installed ({} is missing): run `make authserver` \
             (npm ci --prefix tests/authserver), or `make test`, which does it",
            marker.display()
        ))
    }
}

/// `Basic` credentials as RFC 6749 §2.3.1 says: id and secret form-urlencoded, then base64.
pub fn basic_auth(id: &str, secret: &str) -> String {
    let pair = format!("{}:{}", form_component(id), form_component(secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// `application/x-www-form-urlencoded` of `params`.
pub fn form_encode(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", form_component(k), form_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn form_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Part `i` (0 header, 1 payload) of a compact JWS as JSON, unverified.
pub fn jwt_part(token: &str, i: usize) -> Option<Value> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(parts.get(i)?).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Verifies `token`'s signature with the key of `jwks` its `kid` names (RS256 or ES256, the
/// algorithms of the server's keys) and returns its payload. An independent check (jwt-compact),
/// not the filter's code.
pub fn verify_jwt(jwks: &str, token: &str) -> Result<Value, String> {
    use jwt_compact::alg::{Es256, Rsa, RsaPublicKey};
    use jwt_compact::jwk::JsonWebKey;
    use jwt_compact::{AlgorithmExt as _, UntrustedToken};

    let untrusted = UntrustedToken::new(token).map_err(|e| format!("not a JWS: {e}"))?;
    let kid = untrusted
        .header()
        .key_id
        .clone()
        .ok_or("token has no kid")?;
    let set: Value = serde_json::from_str(jwks).map_err(|e| format!("JWKS is not JSON: {e}"))?;
    let key = set["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == json!(kid)))
        .ok_or(format!("no key {kid} in the JWKS"))?;
    let jwk: JsonWebKey<'_> =
        serde_json::from_value(key.clone()).map_err(|e| format!("bad JWK: {e}"))?;
    let checked = match untrusted.algorithm() {
        "RS256" => {
            let key = RsaPublicKey::try_from(&jwk).map_err(|e| format!("RSA JWK: {e}"))?;
            Rsa::rs256()
                .validator::<Value>(&key)
                .validate(&untrusted)
                .map(drop)
        }
        "ES256" => {
            let key =
                p256::ecdsa::VerifyingKey::try_from(&jwk).map_err(|e| format!("EC JWK: {e}"))?;
            Es256
                .validator::<Value>(&key)
                .validate(&untrusted)
                .map(drop)
        }
        other => return Err(format!("alg {other} is not one the server signs with")),
    };
    checked.map_err(|e| format!("signature: {e}"))?;
    jwt_part(token, 1).ok_or_else(|| "payload is not JSON".to_string())
}
