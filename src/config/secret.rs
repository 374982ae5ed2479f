//! Where a credential of the filter comes from, one rule for every OAuth client secret
//! (`introspection`, `token_exchanges`, through `oauth_client`): an Envoy `DataSource` limited
//! to what a wasm VM can read, `inline_string` (refused, naming
//! `<block>.client_secret.inline_string`, unless the same block says `allow_inline_secret:
//! true`, since plugin configuration travels in xDS and sits in `config_dump`) or
//! `environment_variable`, read from the VM's environment at load (Envoy
//! `vm_config.environment_variables`, Istio `WasmPlugin` `vmConfig.env`).
//!
//! A secret never reaches an error: messages name the field and, for an environment
//! variable, the variable's name, never its value.

use serde::Deserialize;

use crate::error::ConfigError;
use crate::oauth::{self, Secret};

/// A client secret's `DataSource`: exactly one of `inline_string` and `environment_variable`.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecretSource {
    /// The secret itself, in the configuration: refused unless `allow_inline_secret: true`
    /// (the configuration is visible in xDS and Envoy's `config_dump`). One of
    /// `inline_string` and `environment_variable`.
    #[serde(default)]
    pub(crate) inline_string: Option<String>,
    /// The name of a variable of the VM's environment that holds the secret: Envoy
    /// `vm_config.environment_variables` (`host_env_keys` or `key_values`), Istio `WasmPlugin`
    /// `vmConfig.env` (`valueFrom: HOST` for one the sidecar has, e.g. from a mounted
    /// Kubernetes Secret). Read once, at load. One of `inline_string` and
    /// `environment_variable`.
    #[serde(default)]
    pub(crate) environment_variable: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) filename: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) inline_bytes: Option<String>,
}

/// The secret `raw` names, read now. `field` is the JSON path of the `DataSource`;
/// `allow_inline` is the block's consent to an `inline_string` (`allow_inline_secret`), the
/// same for every OAuth client; `env` reads the VM's environment (`vm_env`).
pub(crate) fn compile_secret(
    field: &str,
    raw: RawSecretSource,
    allow_inline: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, ConfigError> {
    if raw.filename.is_some() || raw.inline_bytes.is_some() {
        let which = if raw.filename.is_some() {
            "filename"
        } else {
            "inline_bytes"
        };
        return Err(ConfigError::new(
            format!("{field}.{which}"),
            "is not supported for a secret: use `environment_variable` (or `inline_string`)",
        ));
    }
    let value = match (raw.inline_string, raw.environment_variable) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ConfigError::new(
                field,
                "set exactly one of `inline_string` and `environment_variable`",
            ))
        }
        (Some(_), None) if !allow_inline => {
            return Err(ConfigError::new(
                format!("{field}.inline_string"),
                "a secret inline in the configuration is visible in xDS and config_dump: use \
                 `environment_variable`, or set `allow_inline_secret: true` to accept it",
            ))
        }
        (Some(text), None) => (text, format!("{field}.inline_string")),
        (None, Some(name)) => {
            if name.is_empty() {
                return Err(ConfigError::new(
                    format!("{field}.environment_variable"),
                    "must name an environment variable",
                ));
            }
            let Some(text) = env(&name) else {
                return Err(ConfigError::new(
                    format!("{field}.environment_variable"),
                    format!(
                        "`{name}` is not set in the VM's environment (Envoy \
                         vm_config.environment_variables, Istio WasmPlugin vmConfig.env)"
                    ),
                ));
            };
            (text, format!("{field}.environment_variable"))
        }
    };
    let (text, source) = value;
    if text.is_empty() {
        return Err(ConfigError::new(source, "the secret is empty"));
    }
    if !oauth::is_vschar(&text) {
        return Err(ConfigError::new(
            source,
            "the secret must be printable ASCII (RFC 6749 VSCHAR)",
        ));
    }
    Ok(Secret::new(text))
}

/// The VM's environment, as the configuration reads it.
pub(crate) fn vm_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawSecretSource {
        serde_json::from_str(json).unwrap()
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "EXCHANGE_SECRET" => Some("s3cr:t%".to_owned()),
            "EMPTY" => Some(String::new()),
            "BINARY" => Some("caf\u{e9}".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn inline_and_environment_secrets_load() {
        let s = compile_secret("f", raw(r#"{"inline_string":"abc"}"#), true, &env).unwrap();
        assert_eq!(s.expose(), "abc");
        for consent in [false, true] {
            let json = r#"{"environment_variable":"EXCHANGE_SECRET"}"#;
            let s = compile_secret("f", raw(json), consent, &env).unwrap();
            assert_eq!(s.expose(), "s3cr:t%");
        }
    }

    #[test]
    fn an_inline_secret_without_consent_is_refused_naming_the_field_never_the_value() {
        let e = compile_secret("f", raw(r#"{"inline_string":"abc-xyz"}"#), false, &env);
        let e = e.unwrap_err();
        assert_eq!(e.field, "f.inline_string");
        assert!(e.reason.contains("allow_inline_secret: true"), "{e}");
        assert!(!e.to_string().contains("abc-xyz"), "the value leaked: {e}");
    }

    #[test]
    fn bad_sources_are_refused_naming_the_field_never_the_value() {
        let cases = [
            (r#"{}"#, "f", "exactly one"),
            (
                r#"{"inline_string":"a","environment_variable":"EXCHANGE_SECRET"}"#,
                "f",
                "exactly one",
            ),
            (
                r#"{"environment_variable":"NOPE"}"#,
                "f.environment_variable",
                "NOPE",
            ),
            (
                r#"{"environment_variable":""}"#,
                "f.environment_variable",
                "must name",
            ),
            (
                r#"{"environment_variable":"EMPTY"}"#,
                "f.environment_variable",
                "empty",
            ),
            (
                r#"{"environment_variable":"BINARY"}"#,
                "f.environment_variable",
                "VSCHAR",
            ),
            (
                r#"{"inline_string":"a\u0001b"}"#,
                "f.inline_string",
                "VSCHAR",
            ),
        ];
        for (json, field, says) in cases {
            let e = compile_secret("f", raw(json), true, &env).unwrap_err();
            assert_eq!(e.field, field, "{json}");
            assert!(e.reason.contains(says), "{json}: {}", e.reason);
            assert!(!e.to_string().contains("caf"), "{json}: the value leaked");
        }
        let e = compile_secret("f", raw(r#"{"filename":"/x"}"#), true, &env).unwrap_err();
        assert_eq!(e.field, "f.filename");
    }
}
