//! Every file under `manifests/` is proven to work:
//!
//! - each Kubernetes document validates against Istio's CRD schemas (`../shared/istio/
//!   crds.gen.yaml`, or `$ISTIO_CRDS`), strictly: an unknown field fails, as with
//!   `kubectl apply` (server-side field validation `Strict`);
//! - each `pluginConfig` (WasmPlugin, TrafficExtension; the gateway's and the sidecar's)
//!   validates against our config schema, loads natively, and runs in a real Envoy wrapped
//!   exactly as istiod wraps it, with a local JWKS server standing in for
//!   `outbound|443||idp.example.com`;
//! - the sidecar forms select one workload's inbound traffic with the gateway's provider, and
//!   chained behind the gateway's plugin in two Envoys they check what bypasses the gateway;
//! - the token exchange manifest's two halves agree: the gateway exchanges `/orders` for the
//!   audience the orders sidecar accepts, with its secret from `vmConfig.env`;
//! - the plain Envoy bootstrap `manifests/envoy/envoy.yaml` starts as a user would start it
//!   (only ports and the module path substituted) and answers 200 and 401;
//! - the JSON Schema `manifests/schema/plugin-config.schema.json`, generated from the config
//!   types (`config::json_schema`, feature `schema`), is current (`make schema` rewrites it),
//!   refuses what the filter refuses, and accepts the README's JSON examples and the `make
//!   run` demo configuration.
//!
//! What the CRD schemas cannot check (CEL `x-kubernetes-validations` rules such as "only one
//! of targetRefs or selector") is not checked here either.

// Tests fail by panicking, and index into documents they have just checked.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use common::bootstrap::{self, Listener, Side};
use common::envoy::Envoy;
use common::http::Request;
use common::idp::Idp;
use common::mint;
use common::upstream::Upstream;
use jwt_authn_wasm::config::{json_schema, Config, SCHEMA_PATH};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The standard output of `tests/demo/run.py <arg>` (`--print-token`, `--print-config`).
fn demo_script(arg: &str) -> Vec<u8> {
    let out = Command::new("python3")
        .arg(root().join("tests/demo/run.py"))
        .arg(arg)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run.py {arg}: {stderr}");
    out.stdout
}

// ------------------------------------------------------------------------------------------
// Reading manifests and CRDs

/// One YAML document of a file under `manifests/`.
struct Doc {
    file: PathBuf,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    fn name(&self) -> String {
        format!(
            "{} {} in {}",
            self.kind(),
            self.value["metadata"]["name"],
            self.file.display()
        )
    }
}

/// The documents of a YAML text, as JSON values (empty documents skipped).
fn yaml_docs(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

/// Every YAML document under `manifests/`.
fn manifests() -> Vec<Doc> {
    let mut files = Vec::new();
    yaml_files(&root().join("manifests"), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no YAML under manifests/");
    files
        .into_iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            let docs = yaml_docs(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            docs.into_iter().map(move |value| Doc {
                file: file.clone(),
                value,
            })
        })
        .collect()
}

/// The documents of one manifest file.
fn docs_of(relative: &str) -> Vec<Value> {
    yaml_docs(&std::fs::read_to_string(root().join(relative)).unwrap()).unwrap()
}

/// Istio's CRDs: `$ISTIO_CRDS`, else `../shared/istio/crds.gen.yaml` beside the repository.
fn crds() -> Vec<Value> {
    let path = std::env::var_os("ISTIO_CRDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/istio/crds.gen.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "Istio's CRD schemas are needed to validate manifests/: {} ({e}). They are \
             shared/istio/crds.gen.yaml beside the repository; set ISTIO_CRDS to use another copy.",
            path.display()
        )
    });
    yaml_docs(&text).unwrap()
}

/// The `spec` schema of `apiVersion` + `kind`, made strict (unknown fields refused), or why
/// there is none (unknown kind, or a version the CRD does not serve).
fn spec_schema(crds: &[Value], api_version: &str, kind: &str) -> Result<Value, String> {
    let (group, version) = api_version
        .split_once('/')
        .ok_or_else(|| format!("apiVersion {api_version:?} has no group"))?;
    let crd = crds
        .iter()
        .find(|c| c["spec"]["group"] == group && c["spec"]["names"]["kind"] == kind)
        .ok_or_else(|| format!("no Istio CRD for {kind} in group {group}"))?;
    let served = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == version && v["served"] == true)
        .ok_or_else(|| format!("{kind} is not served at {api_version}"))?;
    let mut schema = served["schema"]["openAPIV3Schema"]["properties"]["spec"].clone();
    strict(&mut schema);
    Ok(schema)
}

/// Refuses unknown fields in every object schema that lists its properties, as the API server
/// does with strict field validation; `x-kubernetes-preserve-unknown-fields` keeps anything.
fn strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let open = map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            if map.contains_key("properties") && !map.contains_key("additionalProperties") && !open
            {
                map.insert("additionalProperties".into(), json!(false));
            }
            map.values_mut().for_each(strict);
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

/// Every reason the API server would refuse `doc`.
fn k8s_errors(crds: &[Value], doc: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    for key in doc.as_object().into_iter().flatten().map(|(k, _)| k) {
        if !["apiVersion", "kind", "metadata", "spec"].contains(&key.as_str()) {
            errors.push(format!("unexpected top-level field {key:?}"));
        }
    }
    let meta = &doc["metadata"];
    if !meta["name"].is_string() {
        errors.push("metadata.name is missing".into());
    }
    for key in meta.as_object().into_iter().flatten().map(|(k, _)| k) {
        if !["name", "namespace", "labels", "annotations"].contains(&key.as_str()) {
            errors.push(format!("unexpected metadata field {key:?}"));
        }
    }
    let api_version = doc["apiVersion"].as_str().unwrap_or("");
    let kind = doc["kind"].as_str().unwrap_or("");
    match spec_schema(crds, api_version, kind) {
        Err(e) => errors.push(e),
        Ok(schema) => {
            let validator = jsonschema::validator_for(&schema).expect("a valid CRD schema");
            errors.extend(
                validator
                    .iter_errors(&doc["spec"])
                    .map(|e| format!("spec{}: {e}", e.instance_path())),
            );
        }
    }
    errors
}

// ------------------------------------------------------------------------------------------
// Kubernetes documents against Istio's CRDs

#[test]
fn every_kubernetes_manifest_validates_against_istio_crds() {
    let crds = crds();
    let mut kinds = Vec::new();
    for doc in manifests() {
        if doc.value.get("apiVersion").is_none() {
            // Not a Kubernetes resource: only Envoy bootstraps may be that, and
            // `plain_envoy_bootstrap_answers_200_and_401` starts them.
            assert!(
                doc.file.starts_with(root().join("manifests/envoy")),
                "{}: a document without apiVersion outside manifests/envoy/",
                doc.file.display()
            );
            continue;
        }
        let errors = k8s_errors(&crds, &doc.value);
        assert!(errors.is_empty(), "{} is invalid: {errors:#?}", doc.name());
        kinds.push(doc.kind().to_string());
    }
    kinds.sort();
    kinds.dedup();
    for kind in [
        "AuthorizationPolicy",
        "DestinationRule",
        "ServiceEntry",
        "TrafficExtension",
        "WasmPlugin",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "manifests/ has no {kind}");
    }
}

/// The validation must be able to fail: each mistake is one a user makes, applied to the
/// WasmPlugin manifest's text.
#[test]
fn validation_refuses_broken_manifests() {
    let crds = crds();
    let text = std::fs::read_to_string(root().join("manifests/istio/wasmplugin.yaml")).unwrap();
    let sha_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("sha256:"))
        .expect("a sha256 line")
        .to_string();
    let cases = [
        // YAML reads an unquoted all-digit digest as a number.
        (
            "unquoted all-digit sha256",
            sha_line.clone(),
            format!("  sha256: {}", "1".repeat(64)),
        ),
        ("short sha256", sha_line, "  sha256: \"abc\"".into()),
        (
            "bad enum",
            "failStrategy: FAIL_CLOSE".into(),
            "failStrategy: FAIL_CLOSED".into(),
        ),
        (
            "bad phase",
            "phase: AUTHN".into(),
            "phase: AUTHENTICATION".into(),
        ),
        (
            "misspelt field",
            "imagePullPolicy:".into(),
            "imagePullPolicies:".into(),
        ),
        (
            "wrong version",
            "extensions.istio.io/v1alpha1".into(),
            "extensions.istio.io/v2".into(),
        ),
    ];
    for (what, from, to) in cases {
        assert!(
            text.contains(&from),
            "{what}: {from:?} is not in the manifest"
        );
        let broken = text.replacen(&from, &to, 1);
        let doc = yaml_docs(&broken).unwrap().remove(0);
        assert!(
            !k8s_errors(&crds, &doc).is_empty(),
            "a WasmPlugin with a {what} passed validation"
        );
    }
}

// ------------------------------------------------------------------------------------------
// pluginConfig: schema, native load, real Envoy

/// `(document, pluginConfig)` for every WasmPlugin and TrafficExtension under `manifests/`.
fn plugin_configs() -> Vec<(Doc, Value)> {
    let found: Vec<(Doc, Value)> = manifests()
        .into_iter()
        .filter_map(|doc| {
            let config = match doc.kind() {
                "WasmPlugin" => doc.value["spec"]["pluginConfig"].clone(),
                "TrafficExtension" => doc.value["spec"]["wasm"]["pluginConfig"].clone(),
                _ => return None,
            };
            Some((doc, config))
        })
        .collect();
    assert!(
        found.len() >= 2,
        "expected a WasmPlugin and a TrafficExtension"
    );
    found
}

#[test]
fn every_plugin_config_fits_the_schema_and_loads() {
    for (doc, config) in plugin_configs() {
        let errors = schema_errors(&config);
        assert!(
            errors.is_empty(),
            "{}: pluginConfig: {errors:#?}",
            doc.name()
        );
        // The VM's environment as `vmConfig.env` makes it (a `valueFrom: HOST` variable
        // carries the proxy's value; a placeholder stands for it here).
        for var in doc.value["spec"]["vmConfig"]["env"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = var["name"].as_str().unwrap();
            let value = var["value"].as_str().unwrap_or("host-provided-secret");
            std::env::set_var(name, value);
        }
        if let Err(e) = Config::from_json(config.to_string().as_bytes()) {
            panic!("{}: the filter refuses its pluginConfig: {e}", doc.name());
        }
    }
}

/// The cluster every manifest fetches keys through, and that the ServiceEntry creates.
const IDP_CLUSTER: &str = "outbound|443||idp.example.com";

/// The `envoy.filters.http.wasm` entry istiod generates for a WasmPlugin (ENVOY-WASM-FACTS
/// §6.1): plugin name `<namespace>.<name>`, root id = `pluginName`, empty vm id, the
/// pluginConfig as the JSON of a StringValue, `failStrategy` as Envoy's failure policy. The
/// module is the local build (istio-agent rewrites the remote `url` to a local file).
fn istio_wasm_filter(doc: &Value, wasm: &Value) -> Value {
    let failure_policy = match wasm["failStrategy"].as_str().unwrap_or("FAIL_CLOSE") {
        "FAIL_CLOSE" => "FAIL_CLOSED",
        "FAIL_OPEN" => "FAIL_OPEN",
        "FAIL_RELOAD" => "FAIL_RELOAD",
        other => panic!("failStrategy {other}"),
    };
    let module = bootstrap::require_wasm_module();
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": format!(
                    "{}.{}",
                    doc["metadata"]["namespace"].as_str().unwrap(),
                    doc["metadata"]["name"].as_str().unwrap()
                ),
                "root_id": wasm["pluginName"].as_str().unwrap_or(""),
                "failure_policy": failure_policy,
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": wasm["pluginConfig"].to_string(),
                },
                "vm_config": {
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": { "local": { "filename": module.to_string_lossy() } },
                },
            },
        },
    })
}

/// An Envoy whose listener `listener` runs `filter` (an Istio-wrapped plugin) and routes to
/// `127.0.0.1:upstream_port`, with `idp` standing in for `outbound|443||idp.example.com`.
fn istio_envoy(listener: &str, filter: Value, upstream_port: u16, idp: &Idp) -> Envoy {
    // A listener from the shared bootstrap, its JWT filter replaced by Istio's wrapping.
    let boot = bootstrap::bootstrap(
        &[Listener::new(listener, Side::Native, &json!({}))],
        upstream_port,
    );
    let mut boot: Value =
        serde_json::from_str(&bootstrap::with_cluster(&boot, IDP_CLUSTER, idp.port())).unwrap();
    boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"][0] = filter;
    Envoy::start(&boot.to_string())
}

/// A token the manifests' provider `idp` accepts, for alice with `scope`.
fn idp_token(plugin_config: &Value, scope: &str) -> String {
    let provider = &plugin_config["providers"]["idp"];
    mint::token(
        "RS256",
        &json!({
            "iss": provider["issuer"], "aud": provider["audiences"][0],
            "sub": "alice@example.com", "client_id": "shop-frontend", "scope": scope,
            "exp": common::now() + 600,
        }),
    )
}

/// Runs the manifest's plugin in Envoy as Istio would, and checks what its comments promise.
fn check_plugin_in_envoy(relative: &str, wasm_of: fn(&Value) -> &Value) {
    let doc = docs_of(relative).remove(0);
    let wasm = wasm_of(&doc["spec"]);
    let filter = istio_wasm_filter(&doc, wasm);
    let plugin_name = filter["typed_config"]["config"]["name"]
        .as_str()
        .unwrap()
        .to_string();

    let idp = Idp::serving(mint::JWKS);
    let upstream = Upstream::start();
    let envoy = istio_envoy("gateway", filter, upstream.port(), &idp);
    let port = envoy.port("gateway");

    let config = &wasm["pluginConfig"];
    let token = |scope: &str| idp_token(config, scope);
    let reader = token("orders:read");

    let ok = Request::get("/orders/42").bearer(&reader).send(port);
    assert_eq!(
        ok.status,
        200,
        "{relative}: a valid token must pass: {}",
        ok.body_str()
    );
    let seen = ok.upstream();
    assert_eq!(seen.header("x-jwt-sub"), Some("alice@example.com"));
    assert_eq!(seen.header("x-jwt-client"), Some("shop-frontend"));
    let identity = seen
        .header("x-verified-identity")
        .expect("the identity header");
    let identity: Value = serde_json::from_slice(&STANDARD.decode(identity).unwrap()).unwrap();
    assert_eq!(
        identity,
        json!({ "user_id": "alice@example.com", "client_id": "shop-frontend", "scopes": ["orders:read"] })
    );
    assert!(
        !seen.has("authorization"),
        "the token must not reach the upstream"
    );

    let missing = Request::get("/orders/42").send(port);
    assert_eq!(missing.status, 401, "{relative}: no token");

    let write = Request::new("POST", "/orders").bearer(&reader).send(port);
    assert_eq!(write.status, 403, "{relative}: orders:read must not POST");
    assert!(write
        .header("www-authenticate")
        .unwrap_or("")
        .contains("insufficient_scope"));

    let writer = token("orders:read orders:write");
    assert_eq!(
        Request::new("POST", "/orders")
            .bearer(&writer)
            .send(port)
            .status,
        200
    );

    // /healthz is open, and a client cannot smuggle identity there (authorization-policy.yaml
    // relies on this).
    let open = Request::get("/healthz")
        .header("x-jwt-sub", "alice@example.com")
        .header("x-verified-identity", "eyJ1c2VyX2lkIjoiYWxpY2UifQ==")
        .send(port);
    assert_eq!(open.status, 200, "{relative}: /healthz is open");
    for header in ["x-jwt-sub", "x-verified-identity"] {
        assert!(
            !open.upstream().has(header),
            "a client-sent {header} reached the upstream"
        );
    }

    // Istio's naming reached the module: Envoy logs "wasm log <ns>.<name> <pluginName>: ...".
    let root_id = wasm["pluginName"].as_str().unwrap();
    assert!(
        envoy
            .log()
            .contains(&format!("wasm log {plugin_name} {root_id}")),
        "{relative}: no log line from plugin {plugin_name} {root_id}:\n{}",
        envoy.log_tail(20)
    );
    assert!(idp.requests() >= 1, "the keys came from the stand-in IdP");
}

#[test]
fn wasmplugin_runs_in_envoy_as_istio_wraps_it() {
    check_plugin_in_envoy("manifests/istio/wasmplugin.yaml", |spec| spec);
}

#[test]
fn traffic_extension_runs_in_envoy_as_istio_wraps_it() {
    check_plugin_in_envoy("manifests/istio/traffic-extension.yaml", |spec| {
        &spec["wasm"]
    });
}

#[test]
fn sidecar_wasmplugin_runs_in_envoy_as_istio_wraps_it() {
    check_plugin_in_envoy("manifests/istio/sidecar-wasmplugin.yaml", |spec| spec);
}

#[test]
fn sidecar_traffic_extension_runs_in_envoy_as_istio_wraps_it() {
    check_plugin_in_envoy("manifests/istio/sidecar-traffic-extension.yaml", |spec| {
        &spec["wasm"]
    });
}

/// The sidecar forms apply to one workload's inbound traffic, with the gateway's provider
/// and the same egress entry, which every namespace can see.
#[test]
fn sidecar_manifests_select_inbound_traffic_of_a_workload() {
    let gateway = docs_of("manifests/istio/wasmplugin.yaml").remove(0);
    let gateway_namespace = gateway["metadata"]["namespace"].as_str().unwrap();
    for (relative, wasm) in [
        ("manifests/istio/sidecar-wasmplugin.yaml", "/spec"),
        (
            "manifests/istio/sidecar-traffic-extension.yaml",
            "/spec/wasm",
        ),
    ] {
        let doc = docs_of(relative).remove(0);
        let spec = &doc["spec"];
        assert_eq!(
            spec["match"],
            json!([{ "mode": "SERVER" }]),
            "{relative}: inbound only"
        );
        let labels = spec["selector"]["matchLabels"].as_object();
        assert!(
            labels.is_some_and(|l| !l.is_empty()),
            "{relative}: a workload selector"
        );
        assert_ne!(
            doc["metadata"]["namespace"], gateway_namespace,
            "{relative}: in the workload's namespace, not the gateway's"
        );
        let provider = &doc.pointer(wasm).unwrap()["pluginConfig"]["providers"]["idp"];
        assert_eq!(
            provider, &gateway["spec"]["pluginConfig"]["providers"]["idp"],
            "{relative}: the gateway's provider, so a token that passed the gateway passes here"
        );
        assert_eq!(provider["remote_jwks"]["http_uri"]["cluster"], IDP_CLUSTER);
    }
    for egress in docs_of("manifests/istio/idp-egress.yaml") {
        assert_eq!(
            egress["spec"]["exportTo"],
            json!(["*"]),
            "{} must be visible to the sidecars' namespaces",
            egress["kind"]
        );
    }
}

/// `token-exchange.yaml`'s two halves agree, as its comments say: the gateway exchanges on
/// `/orders` for the audience the orders sidecar accepts, verifies the issued token with a
/// provider of that audience, takes its secret from a `vmConfig.env` variable, and calls the
/// token endpoint through the exported egress entry; the orders plugin selects one workload's
/// inbound traffic and accepts no other audience.
#[test]
fn token_exchange_manifest_gateway_and_orders_agree() {
    let relative = "manifests/istio/token-exchange.yaml";
    let docs = docs_of(relative);
    assert_eq!(
        docs.len(),
        2,
        "{relative}: the gateway's plugin and the orders service's"
    );
    let (gateway, orders) = (&docs[0]["spec"], &docs[1]["spec"]);
    assert_eq!(
        gateway["selector"]["matchLabels"]["istio"],
        "ingressgateway"
    );

    let config = &gateway["pluginConfig"];
    let rule = config["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["match"]["prefix"] == "/orders")
        .expect("a rule on /orders");
    let name = rule["token_exchange"].as_str().expect("/orders exchanges");
    let exchange = &config["token_exchanges"][name];
    let audience = exchange["audience"].as_str().expect("an audience");
    assert_eq!(audience, "orders");
    assert_eq!(exchange["actor"], "client_credentials");
    assert_eq!(exchange["http_uri"]["cluster"], IDP_CLUSTER);
    let verifier = &config["providers"][exchange["verify_with"].as_str().unwrap()];
    assert_eq!(verifier["audiences"], json!([audience]), "verify_with");

    let secret = exchange["client_secret"]["environment_variable"]
        .as_str()
        .expect("the secret from the environment, not inline");
    let env = gateway["vmConfig"]["env"].as_array().unwrap();
    assert!(
        env.iter().any(|v| v["name"] == secret),
        "{relative}: {secret} is not in the gateway's vmConfig.env: the plugin would not load"
    );

    assert_eq!(orders["selector"]["matchLabels"]["app"], "orders");
    assert_eq!(orders["match"], json!([{ "mode": "SERVER" }]));
    let providers = orders["pluginConfig"]["providers"].as_object().unwrap();
    assert!(!providers.is_empty());
    for (provider, value) in providers {
        assert_eq!(
            value["audiences"],
            json!([audience]),
            "{relative}: orders' provider {provider} must accept only the exchanged audience"
        );
        assert_eq!(value["remote_jwks"]["http_uri"]["cluster"], IDP_CLUSTER);
    }
    // The user's token, as the gateway accepts it, is of another audience.
    assert_ne!(config["providers"]["idp"]["audiences"], json!([audience]));
}

/// The two patterns chained as a cluster runs them: the gateway's plugin (with `forward:
/// true`, as its comment says for this case) in front of a workload's sidecar plugin. Through
/// the gateway a good token passes both; a call that bypasses the gateway is checked by the
/// sidecar all the same, and the identity headers it forges never reach the workload.
#[test]
fn the_sidecar_checks_calls_that_bypass_the_gateway() {
    let idp = Idp::serving(mint::JWKS);
    let workload = Upstream::start();
    let sidecar_doc = docs_of("manifests/istio/sidecar-wasmplugin.yaml").remove(0);
    let sidecar = istio_envoy(
        "sidecar",
        istio_wasm_filter(&sidecar_doc, &sidecar_doc["spec"]),
        workload.port(),
        &idp,
    );
    let gateway_doc = docs_of("manifests/istio/wasmplugin.yaml").remove(0);
    let mut forwarding = gateway_doc["spec"].clone();
    forwarding["pluginConfig"]["providers"]["idp"]["forward"] = json!(true);
    let gateway = istio_envoy(
        "gateway",
        istio_wasm_filter(&gateway_doc, &forwarding),
        sidecar.port("sidecar"),
        &idp,
    );
    let config = &sidecar_doc["spec"]["pluginConfig"];
    let reader = idp_token(config, "orders:read");
    let forged_identity = STANDARD.encode(br#"{"user_id":"admin@example.com"}"#);
    let forge = |req: Request| {
        req.header("x-jwt-sub", "admin@example.com")
            .header("x-verified-identity", &forged_identity)
    };

    // Through the gateway: checked twice, identity set by the last check.
    let ok = Request::get("/orders/42")
        .bearer(&reader)
        .send(gateway.port("gateway"));
    assert_eq!(
        ok.status,
        200,
        "{}
{}",
        ok.body_str(),
        sidecar.log_tail(20)
    );
    let seen = ok.upstream();
    assert_eq!(seen.header("x-jwt-sub"), Some("alice@example.com"));
    assert!(!seen.has("authorization"), "the sidecar removes the token");

    // Around the gateway, straight to the pod: no token, forged identity.
    let bypass = forge(Request::get("/orders/42")).send(sidecar.port("sidecar"));
    assert_eq!(
        bypass.status, 401,
        "a call around the gateway needs a token too"
    );
    assert!(bypass.echo().is_none(), "it never reached the workload");
    // A good token with forged identity headers: the token's identity, not the forgery.
    let mixed = forge(Request::get("/orders/42").bearer(&reader)).send(sidecar.port("sidecar"));
    assert_eq!(mixed.status, 200);
    assert_eq!(
        mixed.upstream().header("x-jwt-sub"),
        Some("alice@example.com")
    );
    let identity: Value = serde_json::from_slice(
        &STANDARD
            .decode(mixed.upstream().header("x-verified-identity").unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(identity["user_id"], "alice@example.com");
    // The sidecar's own route rules: orders:read may not write, around the gateway or not.
    let write = Request::new("POST", "/orders")
        .bearer(&reader)
        .send(sidecar.port("sidecar"));
    assert_eq!(write.status, 403);
    // The open route: the forged headers are removed there too.
    let open = forge(Request::get("/healthz")).send(sidecar.port("sidecar"));
    assert_eq!(open.status, 200);
    open.assert_upstream_lacks(&["x-jwt-sub", "x-verified-identity"]);

    // The gateway as shipped (no `forward`) removes the token, and the sidecar refuses what
    // passed the gateway: why the comment in wasmplugin.yaml asks for `forward: true`.
    let removing = istio_envoy(
        "gateway",
        istio_wasm_filter(&gateway_doc, &gateway_doc["spec"]),
        sidecar.port("sidecar"),
        &idp,
    );
    let lost = Request::get("/orders/42")
        .bearer(&reader)
        .send(removing.port("gateway"));
    assert_eq!(lost.status, 401, "the sidecar saw no token");
    assert_eq!(lost.body_str(), "Jwt is missing");
}

// ------------------------------------------------------------------------------------------
// Plain Envoy

/// `text` with `from` replaced by `to`, which must occur exactly once (so a changed manifest
/// cannot make the test silently run something else).
fn substitute(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} must occur once in the bootstrap"
    );
    text.replacen(from, to, 1)
}

#[test]
fn plain_envoy_bootstrap_answers_200_and_401() {
    let text = std::fs::read_to_string(root().join("manifests/envoy/envoy.yaml")).unwrap();
    let jwks = std::fs::read_to_string(root().join("manifests/envoy/jwks.json")).unwrap();
    let idp = Idp::serving(&jwks);
    // The user's fixed ports become free ones; the module path becomes absolute.
    let mut boot = substitute(&text, "port_value: 10000", "port_value: 0");
    boot = substitute(&boot, "port_value: 9901", "port_value: 0");
    boot = substitute(
        &boot,
        "port_value: 8082",
        &format!("port_value: {}", idp.port()),
    );
    boot = substitute(
        &boot,
        "filename: target/wasm32-wasip1/release/jwt_authn_wasm.wasm",
        &format!("filename: {}", bootstrap::require_wasm_module().display()),
    );
    let envoy = Envoy::start(&boot);
    let port = envoy.port("main");

    // The token the README tells a newcomer to mint.
    let token = String::from_utf8(demo_script("--print-token"))
        .unwrap()
        .trim()
        .to_string();

    let ok = Request::get("/hello").bearer(&token).send(port);
    assert_eq!(ok.status, 200, "{}\n{}", ok.body_str(), envoy.log_tail(20));
    assert_eq!(ok.header("x-jwt-sub"), Some("demo-user"));

    let missing = Request::get("/hello").send(port);
    assert_eq!(missing.status, 401);
    assert!(missing
        .header("www-authenticate")
        .unwrap_or("")
        .starts_with("Bearer realm="));

    let forged = Request::get("/hello")
        .bearer(&format!("{token}x"))
        .send(port);
    assert_eq!(forged.status, 401, "a tampered signature");

    let public = Request::get("/public")
        .header("x-jwt-sub", "mallory")
        .send(port);
    assert_eq!(public.status, 200);
    assert_eq!(
        public.header("x-jwt-sub"),
        None,
        "a client-sent x-jwt-sub was not stripped"
    );
    assert!(
        idp.requests() >= 1,
        "the keys came through the static cluster"
    );
}

// ------------------------------------------------------------------------------------------
// The plugin configuration's JSON Schema (manifests/schema): current, able to fail, and
// satisfied by every example a user copies (the manifests' pluginConfigs are checked above)

/// The validator of the schema as generated now.
fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&json_schema()).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

/// Every schema error of `config`, as `path: message` lines.
fn schema_errors(config: &Value) -> Vec<String> {
    validator()
        .iter_errors(config)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn checked_in_schema_is_current() {
    let path = root().join(SCHEMA_PATH);
    let generated = json_schema();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{SCHEMA_PATH} is stale or missing: the config types changed. Run `make schema` and \
         commit the result."
    );
}

/// Every property of the schema (top level and every definition) has a description (from the
/// config types' doc comments), every enum value too, and each property name appears in code
/// (`name`, `a.name`, `{name, other}`) in the README's "Configuration reference" section.
#[test]
fn every_schema_property_is_described_and_in_the_readme_reference() {
    let schema: Value = serde_json::from_str(&json_schema()).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let reference = readme
        .split("\n## Configuration reference\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has a section `## Configuration reference`");
    // Every identifier inside a code span (`...`) or a code block of the section.
    let mut in_code = std::collections::BTreeSet::new();
    for (i, part) in reference.split('`').enumerate() {
        if i % 2 == 1 {
            for word in part.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                in_code.insert(word.to_owned());
            }
        }
    }
    let mut objects: Vec<(String, &Value)> = vec![("(top level)".to_owned(), &schema)];
    for (name, def) in schema["definitions"].as_object().unwrap() {
        objects.push((name.clone(), def));
    }
    let mut undescribed = Vec::new();
    let mut unreferenced = Vec::new();
    let mut properties = 0;
    for (owner, object) in &objects {
        for (name, property) in object["properties"].as_object().into_iter().flatten() {
            properties += 1;
            let described = property["description"]
                .as_str()
                .is_some_and(|d| !d.trim().is_empty());
            if !described {
                undescribed.push(format!("{owner}.{name}"));
            }
            if !in_code.contains(name) {
                unreferenced.push(format!("{owner}.{name}"));
            }
        }
        for value in object["oneOf"].as_array().into_iter().flatten() {
            if value["const"].is_string() && !value["description"].is_string() {
                undescribed.push(format!("{owner} = {}", value["const"]));
            }
        }
    }
    assert!(
        properties >= 90,
        "only {properties} properties: the walk missed some"
    );
    assert!(
        undescribed.is_empty(),
        "{} of {properties} schema properties (or enum values) have no description; document \
         the field in src/config/raw.rs and run `make schema`: {undescribed:?}",
        undescribed.len()
    );
    assert!(
        unreferenced.is_empty(),
        "{} of {properties} schema properties are not in README.md's Configuration reference: \
         {unreferenced:?}",
        unreferenced.len()
    );
}

/// A minimal valid configuration, to change one thing at a time.
fn minimal() -> Value {
    json!({
        "providers": { "p": {
            "issuer": "https://issuer.example/",
            "remote_jwks": { "http_uri": {
                "uri": "https://issuer.example/jwks", "cluster": "idp", "timeout": "5s",
            } },
        } },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "p" } }],
    })
}

#[test]
fn schema_accepts_a_minimal_config_the_filter_loads() {
    let config = minimal();
    assert_eq!(schema_errors(&config), Vec::<String>::new());
    Config::from_json(config.to_string().as_bytes()).expect("the filter loads it");
}

/// The schema must be able to fail: each mistake here is one a user makes, and one the filter
/// refuses at load too.
#[test]
fn schema_refuses_what_the_filter_refuses() {
    type Mistake = (&'static str, fn(&mut Value));
    let cases: [Mistake; 6] = [
        ("unknown top-level field", |c| c["provider"] = json!({})),
        ("misspelt provider field", |c| {
            c["providers"]["p"]["isuer"] = json!("x")
        }),
        ("duration without unit", |c| {
            c["providers"]["p"]["remote_jwks"]["http_uri"]["timeout"] = json!("5")
        }),
        ("audiences not a list", |c| {
            c["providers"]["p"]["audiences"] = json!("api")
        }),
        ("refused jwt_authn field", |c| {
            c["providers"]["p"]["payload_in_metadata"] = json!("jwt")
        }),
        ("unknown requirement", |c| {
            c["rules"][0]["requires"] = json!({ "provider": "p" })
        }),
    ];
    for (what, break_it) in cases {
        let mut config = minimal();
        break_it(&mut config);
        assert!(
            !schema_errors(&config).is_empty(),
            "the schema accepted a config with a {what}: {config}"
        );
        assert!(
            Config::from_json(config.to_string().as_bytes()).is_err(),
            "the filter loaded a config with a {what}: {config}"
        );
    }
}

/// The README's ```json blocks: whole configurations as they are; a rule, or a member
/// (`"requires": …`, `"identity_header": …`), placed where it belongs in a minimal
/// configuration.
#[test]
fn readme_json_examples_validate() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```json\n")
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .collect();
    assert!(!blocks.is_empty(), "no ```json block in README.md");
    let mut whole = 0;
    for block in blocks {
        let config = match serde_json::from_str::<Value>(block) {
            Ok(config) if config.get("providers").is_some() => {
                whole += 1;
                config
            }
            Ok(rule) if rule.get("match").is_some() => {
                let mut config = minimal();
                config["rules"][0] = rule;
                config
            }
            _ => place_fragment(block),
        };
        let errors = schema_errors(&config);
        assert!(
            errors.is_empty(),
            "README block\n{block}\nfails the schema: {errors:#?}"
        );
    }
    assert!(whole > 0, "README.md has no whole configuration example");
}

fn place_fragment(block: &str) -> Value {
    let wrapped: Value = serde_json::from_str(&format!("{{{block}}}"))
        .unwrap_or_else(|e| panic!("README json block is neither JSON nor a member: {e}\n{block}"));
    let (key, value) = wrapped.as_object().and_then(|o| o.iter().next()).unwrap();
    // Where the schema says the member belongs: the top level, a provider, or a rule.
    let schema: Value = serde_json::from_str(&json_schema()).unwrap();
    let has = |definition: &Value| definition["properties"].get(key).is_some();
    let mut config = minimal();
    if key == "remote_jwks" {
        config["providers"]["p"]["remote_jwks"] = value.clone();
    } else if has(&schema) {
        config[key] = value.clone();
    } else if has(&schema["definitions"]["Provider"]) {
        config["providers"]["p"][key] = value.clone();
    } else if has(&schema["definitions"]["Rule"]) {
        config["rules"][0][key] = value.clone();
    } else {
        panic!("README json fragment `{key}`: teach tests/manifests.rs where it goes");
    }
    config
}

/// The example configurations under `manifests/examples/`, and the one inside the plain Envoy
/// bootstrap, fit the schema and load.
#[test]
fn example_configs_fit_the_schema_and_load() {
    let mut configs: Vec<(String, String)> = Vec::new();
    for entry in std::fs::read_dir(root().join("manifests/examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) == Some("json") {
            configs.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    assert!(!configs.is_empty(), "no JSON under manifests/examples");
    let envoy = docs_of("manifests/envoy/envoy.yaml").remove(0);
    let filters = &envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"];
    let wasm = filters
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "envoy.filters.http.wasm")
        .expect("the wasm filter in manifests/envoy/envoy.yaml");
    let value = &wasm["typed_config"]["config"]["configuration"]["value"];
    configs.push((
        "manifests/envoy/envoy.yaml".into(),
        value.as_str().unwrap().into(),
    ));
    for (name, text) in configs {
        let config: Value = serde_json::from_str(&text).unwrap();
        let errors = schema_errors(&config);
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        if let Err(e) = Config::from_json(text.as_bytes()) {
            panic!("{name}: the filter refuses it: {e}");
        }
    }
}

/// The `make run` demo configuration validates, and loads.
#[test]
fn demo_config_validates() {
    let out = demo_script("--print-config");
    let config: Value = serde_json::from_slice(&out).expect("the demo config is JSON");
    assert_eq!(schema_errors(&config), Vec::<String>::new());
    Config::from_json(&out).expect("the filter loads the demo config");
}
