//! Envoy bootstraps that run one `jwt_authn` config JSON in our wasm filter, in Envoy's native
//! `envoy.filters.http.jwt_authn`, or both side by side in one Envoy.
//!
//! Every listener is an HTTP connection manager with one catch-all route to the cluster
//! `upstream` (the echo server) and two HTTP filters: the JWT filter of its [`Side`], then the
//! router. All ports are 0; `Envoy::port(name)` tells which port a listener got. The wasm filter
//! gets the config as a `google.protobuf.StringValue` (ENVOY-WASM-FACTS §6.3), the native one as
//! its typed config: the same JSON object in both.

use std::path::PathBuf;

use serde_json::{json, Value};

/// Which JWT filter a listener runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Our proxy-wasm module in `envoy.filters.http.wasm` (V8).
    Wasm,
    /// Envoy's native `envoy.filters.http.jwt_authn`.
    Native,
}

impl Side {
    /// The listener name `side_by_side` gives this side.
    pub fn listener(self) -> &'static str {
        match self {
            Side::Wasm => "wasm",
            Side::Native => "native",
        }
    }
}

/// The wasm plugin's VM id (shared-data namespace) and root id.
pub const VM_ID: &str = "jwt_authn_wasm";

/// Where the module is: `$JWT_AUTHN_WASM`, else the release build in this crate's target dir.
pub fn wasm_module_path() -> PathBuf {
    match std::env::var_os("JWT_AUTHN_WASM") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/wasm32-wasip1/release/jwt_authn_wasm.wasm"),
    }
}

/// The module path, or an error saying how to build it.
pub fn wasm_module() -> Result<PathBuf, String> {
    let path = wasm_module_path();
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "the wasm module {} does not exist: run `make build` \
             (or `cargo build --release --target wasm32-wasip1`), or point JWT_AUTHN_WASM at it",
            path.display()
        ))
    }
}

/// The module path; panics with the build hint if it is missing.
pub fn require_wasm_module() -> PathBuf {
    match wasm_module() {
        Ok(p) => p,
        Err(msg) => panic!("{msg}"),
    }
}

/// One listener of a bootstrap.
#[derive(Clone, Debug)]
pub struct Listener {
    /// Listener name (also the stat prefix and, for wasm, part of the plugin name).
    pub name: String,
    /// Which filter runs there.
    pub side: Side,
    /// The `jwt_authn` JSON (`providers`, `rules`, ...).
    pub config: Value,
}

impl Listener {
    /// A listener called `name` running `config` on `side`.
    pub fn new(name: &str, side: Side, config: &Value) -> Listener {
        Listener {
            name: name.to_string(),
            side,
            config: config.clone(),
        }
    }
}

/// The HTTP filter entry for `side` with `config`. `name` makes the wasm plugin name unique
/// (`jwt_authn_wasm_<name>`, so its stats are `wasm.jwt_authn_wasm_<name>.*`).
pub fn jwt_filter(side: Side, name: &str, config: &Value) -> Value {
    match side {
        Side::Native => {
            let mut typed = config.clone();
            if let Some(obj) = typed.as_object_mut() {
                obj.insert(
                    "@type".into(),
                    json!("type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"),
                );
            }
            json!({ "name": "envoy.filters.http.jwt_authn", "typed_config": typed })
        }
        Side::Wasm => {
            let module = require_wasm_module();
            json!({
                "name": "envoy.filters.http.wasm",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                    "config": {
                        "name": format!("{VM_ID}_{name}"),
                        "root_id": VM_ID,
                        "failure_policy": "FAIL_CLOSED",
                        "configuration": {
                            "@type": "type.googleapis.com/google.protobuf.StringValue",
                            "value": config.to_string(),
                        },
                        "vm_config": {
                            "vm_id": VM_ID,
                            "runtime": "envoy.wasm.runtime.v8",
                            "code": { "local": { "filename": module.to_string_lossy() } },
                        },
                    },
                },
            })
        }
    }
}

/// A bootstrap (JSON text) with `listeners`, all routing to the echo server on
/// `127.0.0.1:upstream_port` (cluster `upstream`, which remote JWKS configs may also use).
pub fn bootstrap(listeners: &[Listener], upstream_port: u16) -> String {
    let listeners: Vec<Value> = listeners
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
                "filter_chains": [{
                    "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": l.name,
                            "route_config": {
                                "name": "local",
                                "virtual_hosts": [{
                                    "name": "all",
                                    "domains": ["*"],
                                    "routes": [{
                                        "match": { "prefix": "/" },
                                        "route": { "cluster": "upstream", "timeout": "10s" },
                                    }],
                                }],
                            },
                            "http_filters": [
                                jwt_filter(l.side, &l.name, &l.config),
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
                                },
                            ],
                        },
                    }],
                }],
            })
        })
        .collect();
    json!({
        "node": { "id": "jwt-authn-e2e", "cluster": "jwt-authn-e2e" },
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": {
            "listeners": listeners,
            "clusters": [{
                "name": "upstream",
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": "upstream",
                    "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                        "socket_address": { "address": "127.0.0.1", "port_value": upstream_port },
                    } } }] }],
                },
            }],
        },
    })
    .to_string()
}

/// One Envoy bootstrap with listener `wasm` (our filter) and listener `native` (Envoy's
/// `jwt_authn`), both running `config`. Panics if the wasm module is missing.
pub fn side_by_side(config: &Value, upstream_port: u16) -> String {
    bootstrap(
        &[
            Listener::new("wasm", Side::Wasm, config),
            Listener::new("native", Side::Native, config),
        ],
        upstream_port,
    )
}

/// `bootstrap` with one more STATIC cluster, `name`, at `127.0.0.1:port` (a JWKS server).
pub fn with_cluster(bootstrap: &str, name: &str, port: u16) -> String {
    add_cluster(bootstrap, name, port, false)
}

/// `with_cluster`, speaking HTTP/2 with prior knowledge (h2c) to the server.
pub fn with_h2c_cluster(bootstrap: &str, name: &str, port: u16) -> String {
    add_cluster(bootstrap, name, port, true)
}

fn add_cluster(bootstrap: &str, name: &str, port: u16, h2c: bool) -> String {
    let mut boot: Value = serde_json::from_str(bootstrap).expect("bootstrap is JSON");
    let mut cluster = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                "socket_address": { "address": "127.0.0.1", "port_value": port },
            } } }] }],
        },
    });
    if h2c {
        cluster["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} },
            },
        });
    }
    if let Some(clusters) = boot["static_resources"]["clusters"].as_array_mut() {
        clusters.push(cluster);
    }
    boot.to_string()
}
