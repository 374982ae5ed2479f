//! The only module that talks to `proxy_wasm`: root and HTTP contexts, host calls, panic hook.
//!
//! Thin on purpose: it reads the configuration and the request headers from the host, asks
//! `engine::decide`, and applies the answer. Host facts it relies on (measured in Envoy 1.40,
//! `shared/ENVOY-WASM-FACTS.md`): request headers are read as bytes (the SDK's `String` getters
//! panic on non-UTF-8 values); header mutations happen before the stream continues; a local
//! reply is followed by `Pause`; `on_configure` returning false makes Envoy refuse the plugin.

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use crate::config::{Config, JwksSource};
use crate::engine::{decide, Decision};
use crate::error::ConfigError;
use crate::propagate::HeaderOp;
use crate::request::RequestHeaders;

proxy_wasm::main! {{
    // Also installs the SDK's panic hook, which logs a panic at critical level before the
    // abort. No host call other than logging is allowed here (Envoy restricts `_initialize`).
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

fn log(level: LogLevel, message: &str) {
    // Logging cannot usefully fail; if the host refuses, there is nowhere else to say it.
    let _ = hostcalls::log(level, message);
}

/// One per plugin instance per VM: owns the compiled configuration.
#[derive(Default)]
struct Root {
    config: Option<Rc<Config>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match Config::from_json(&bytes).and_then(refuse_remote_jwks_until_wired) {
            Ok(config) => {
                for warning in config.warnings() {
                    log(LogLevel::Warn, &format!("jwt-authn-wasm: {warning}"));
                }
                log(
                    LogLevel::Info,
                    &format!(
                        "jwt-authn-wasm: configured {} provider(s), {} rule(s)",
                        config.providers.len(),
                        config.rules.len()
                    ),
                );
                self.config = Some(Rc::new(config));
                true
            }
            Err(error) => {
                log(LogLevel::Error, &format!("jwt-authn-wasm: {error}"));
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            config: self.config.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One per HTTP stream.
struct Stream {
    /// `None` only if the host created a stream without a successful `on_configure`, which
    /// Envoy never does; such a stream is refused rather than let through.
    config: Option<Rc<Config>>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            log(
                LogLevel::Error,
                "jwt-authn-wasm: no configuration; refusing request",
            );
            self.send_http_response(500, vec![], None);
            return Action::Pause;
        };
        let headers =
            RequestHeaders::new(self.get_http_request_headers_bytes().into_iter().collect());
        let now = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        match decide(&config, config.as_ref(), &headers, now) {
            Decision::Allow { ops } => {
                for op in &ops {
                    match op {
                        HeaderOp::Remove(name) => self.set_http_request_header(name, None),
                        HeaderOp::Set(name, value) => {
                            self.set_http_request_header(name, Some(value))
                        }
                    }
                }
                Action::Continue
            }
            // Only remote key sets make the core wait, and they are refused at load for now.
            Decision::Wait(_) => {
                self.send_http_response(503, vec![], None);
                Action::Pause
            }
            Decision::Deny { denial, reason } => {
                log(
                    LogLevel::Debug,
                    &format!(
                        "jwt-authn-wasm: {} {} {}: {reason}",
                        denial.status,
                        headers.method(),
                        headers.path()
                    ),
                );
                let headers = match &denial.www_authenticate {
                    Some(value) => vec![("www-authenticate", value.as_str())],
                    None => vec![],
                };
                self.send_http_response(denial.status, headers, Some(denial.body.as_bytes()));
                Action::Pause
            }
        }
    }
}

/// The core understands `remote_jwks`; fetching through host callouts is not wired in yet.
/// Until it is, such a configuration is refused with the field named, never half-run.
fn refuse_remote_jwks_until_wired(config: Config) -> Result<Config, ConfigError> {
    match config
        .providers
        .iter()
        .find(|p| matches!(p.jwks, JwksSource::Remote(_)))
    {
        Some(p) => Err(ConfigError::new(
            format!("providers.{}.remote_jwks", p.name),
            "remote key sets are not fetched by this build yet; use `local_jwks`",
        )),
        None => Ok(config),
    }
}
