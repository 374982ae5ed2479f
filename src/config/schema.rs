//! The JSON Schema of the plugin configuration, derived from the serde shapes in `config::raw`
//! (feature `schema`, never in the wasm module). The checked-in copy is
//! `manifests/schema/plugin-config.schema.json`; `make schema` rewrites it and
//! `tests/manifests.rs` fails when it is stale.
//!
//! Draft-07, which editors (VS Code's YAML and JSON support, JetBrains) complete from. The
//! schema says which fields exist and their types; `Config::from_json` still has the last word
//! (one of `local_jwks` / `remote_jwks`, provider names, regexes, scope tokens).

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use std::borrow::Cow;

use super::RawConfig;

/// Where the schema is published, relative to the repository root.
pub const SCHEMA_PATH: &str = "manifests/schema/plugin-config.schema.json";

/// A proto-JSON `google.protobuf.Duration` as `config::parse_duration` accepts it: `"600s"`,
/// `"1.5s"`.
pub(super) struct ProtoDuration;

impl JsonSchema for ProtoDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(\\.[0-9]{1,9})?s$",
            "description": "Seconds with an `s` suffix (proto JSON Duration), e.g. \"600s\" or \"1.5s\".",
        })
    }
}

/// The schema as pretty JSON with a trailing newline: the exact bytes of `SCHEMA_PATH`.
pub fn json_schema() -> String {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<RawConfig>();
    schema.insert("title".into(), "jwt-authn-wasm plugin configuration".into());
    schema.insert(
        "description".into(),
        "Envoy jwt_authn's JwtAuthentication in proto JSON, plus jwt-authn-wasm's extensions. \
         The `configuration` of envoy.filters.http.wasm, or the `pluginConfig` of an Istio \
         WasmPlugin. Reference: README.md, section Configuration reference."
            .into(),
    );
    let mut value = schema.to_value();
    unwrap_descriptions(&mut value);
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    // The serde shapes are named `Raw*` in Rust; users know them by jwt_authn's names.
    let mut text = text
        .replace("\"#/definitions/Raw", "\"#/definitions/")
        .replace("\n    \"Raw", "\n    \"");
    text.push('\n');
    text
}

/// Doc comments are wrapped at 100 columns; a description is one paragraph per blank line, so
/// a single line break inside one becomes a space.
fn unwrap_descriptions(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    serde_json::Value::String(text) if key == "description" => {
                        *text = text
                            .split("\n\n")
                            .map(|paragraph| paragraph.replace('\n', " "))
                            .collect::<Vec<_>>()
                            .join("\n\n");
                    }
                    _ => unwrap_descriptions(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}
