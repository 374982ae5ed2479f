//! A credential in the configuration (`client_secret`): where it comes from, `inline_string` or
//! `environment_variable` (read once, at load, from the VM's environment: Envoy's
//! `vm_config.environment_variables`), and the checks it must pass. Shared by every section
//! that authenticates the filter to an authorization server (token exchange, introspection).
//!
//! The value becomes an `oauth::Secret` at once and is never part of an error: a message names
//! the field and, for an environment variable, the variable, never what it holds.

use serde::Deserialize;

use crate::error::ConfigError;
use crate::oauth::{is_vschar, Secret};

/// `client_secret`: exactly one of `inline_string` and `environment_variable`.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecretSource {
    /// The secret itself. It is in the configuration, so whoever reads the configuration reads
    /// it; prefer `environment_variable`. One of `inline_string` and `environment_variable`.
    #[serde(default)]
    pub(crate) inline_string: Option<String>,
    /// The name of an environment variable of the wasm VM (Envoy's
    /// `vm_config.environment_variables`, Istio's `WasmPlugin.spec.vmConfig.env`), read once
    /// when the configuration loads. One of `inline_string` and `environment_variable`.
    #[serde(default)]
    pub(crate) environment_variable: Option<String>,
}

/// The secret `raw` names, at JSON path `field`; `env` reads the VM's environment
/// (`std::env::var` in the VM, a table in tests).
pub(crate) fn resolve(
    field: &str,
    raw: RawSecretSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, ConfigError> {
    let (value, at) = match raw {
        RawSecretSource {
            inline_string: Some(value),
            environment_variable: None,
        } => (value, format!("{field}.inline_string")),
        RawSecretSource {
            inline_string: None,
            environment_variable: Some(name),
        } => {
            let at = format!("{field}.environment_variable");
            if name.is_empty() {
                return Err(ConfigError::new(at, "must name an environment variable"));
            }
            let value = env(&name).ok_or_else(|| {
                ConfigError::new(
                    &at,
                    format!(
                        "the VM has no environment variable {name:?} (set it in \
                         vm_config.environment_variables)"
                    ),
                )
            })?;
            (value, at)
        }
        _ => {
            return Err(ConfigError::new(
                field,
                "set exactly one of `inline_string` and `environment_variable`",
            ))
        }
    };
    if value.is_empty() {
        return Err(ConfigError::new(at, "the secret is empty"));
    }
    if !is_vschar(&value) {
        // Never quoted: it is the secret.
        return Err(ConfigError::new(
            at,
            "the secret must be printable ASCII (RFC 6749 Appendix A: VSCHAR)",
        ));
    }
    Ok(Secret::new(value))
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
        let s = resolve("f", raw(r#"{"inline_string":"abc"}"#), &env).unwrap();
        assert_eq!(s.expose(), "abc");
        let s = resolve(
            "f",
            raw(r#"{"environment_variable":"EXCHANGE_SECRET"}"#),
            &env,
        )
        .unwrap();
        assert_eq!(s.expose(), "s3cr:t%");
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
                "\"NOPE\"",
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
            let e = resolve("f", raw(json), &env).unwrap_err();
            assert_eq!(e.field, field, "{json}");
            assert!(e.reason.contains(says), "{json}: {}", e.reason);
            assert!(!e.to_string().contains("caf"), "{json}: the value leaked");
        }
        assert!(serde_json::from_str::<RawSecretSource>(r#"{"filename":"/x"}"#).is_err());
    }
}
