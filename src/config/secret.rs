//! Where a credential of the filter comes from: an Envoy `DataSource` limited to what a wasm VM
//! can read, `inline_string` (refused unless the configuration says `allow_inline_secret:
//! true`, since plugin configuration travels in xDS and sits in `config_dump`) or
//! `environment_variable`, read from the VM's environment at load (Envoy
//! `vm_config.environment_variables`, Istio `WasmPlugin` `vmConfig.env`). Shared by every
//! feature that authenticates to an authorization server (introspection, token exchange).
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
/// `allow_inline` is the configuration's consent to an `inline_string`.
pub(crate) fn compile_secret(
    field: &str,
    raw: RawSecretSource,
    allow_inline: bool,
) -> Result<Secret, ConfigError> {
    compile_secret_with(field, raw, allow_inline, |name| std::env::var(name).ok())
}

/// `compile_secret` with the environment given (tests).
pub(crate) fn compile_secret_with(
    field: &str,
    raw: RawSecretSource,
    allow_inline: bool,
    env: impl Fn(&str) -> Option<String>,
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
