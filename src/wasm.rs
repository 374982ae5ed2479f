//! The only module that names `proxy_wasm`: the `host::Host` methods over raw host calls, and
//! the proxy-wasm entry points, each handing its event to the instance core (`filter`).
//!
//! Host facts it relies on (measured in Envoy 1.40, `shared/ENVOY-WASM-FACTS.md`):
//! - request headers are read as bytes (`raw::header_pairs`, with the host's status);
//! - callouts go through the SDK's `dispatch_http_call`, whose dispatcher routes the answer by
//!   the token it registers there (Envoy answers only Ok, BadArgument or InternalFailure); every
//!   one is sent from the root, so its answer comes back to the root even when the stream that
//!   wanted it is gone;
//! - `proxy_continue_stream` and local replies take effect after the callback returns, and a
//!   stream's `on_delete` may come while the core is busy with another stream: the core is
//!   lent out of its slot for each event (no `RefCell` borrow is held across a host call), and
//!   a stream that goes while it is lent out is told to the core at its next event;
//! - `on_configure` returning false makes Envoy refuse the plugin;
//! - Envoy's foreign function `verify_signature` (BoringSSL) checks RS* and ES* signatures.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action as HostAction, ContextType, LogLevel};

use crate::filter::Filter;
use crate::fleet::{HostError, SetError};
use crate::host::{Action, Callout, Host, Level, MetricKind};

mod raw;

proxy_wasm::main! {{
    // No host call other than logging is allowed here (Envoy restricts `_initialize`).
    // `set_log_level` installs the SDK's panic hook; ours replaces it (see `crash`).
    proxy_wasm::set_log_level(LogLevel::Trace);
    std::panic::set_hook(Box::new(|info| {
        raw::log(Level::Critical as u32, &crate::crash::report(info));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Envoy, through raw host calls.
struct Envoy;

impl Host for Envoy {
    fn now_nanos(&self) -> Option<u64> {
        raw::now_nanos().ok()
    }

    fn log(&self, level: Level, message: &str) {
        raw::log(level as u32, message);
    }

    fn log_level(&self) -> Option<Level> {
        // 6 is "off": nothing is written, as above critical.
        raw::log_level().ok().map(|level| match level {
            0 => Level::Trace,
            1 => Level::Debug,
            2 => Level::Info,
            3 => Level::Warn,
            4 => Level::Error,
            _ => Level::Critical,
        })
    }

    fn shared_get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
        match raw::shared_get(key) {
            Ok((Some(value), Some(cas))) => Ok(Some((value, cas))),
            Ok(_) => Ok(None),
            Err(status) => Err(HostError(status)),
        }
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        raw::shared_set(key, value, cas).map_err(|status| match status {
            raw::CAS_MISMATCH => SetError::CasMismatch,
            other => SetError::Host(HostError(other)),
        })
    }

    fn dispatch(&self, callout: &Callout<'_>) -> Result<u32, HostError> {
        let body = (!callout.body.is_empty()).then_some(callout.body);
        proxy_wasm::hostcalls::dispatch_http_call(
            callout.cluster,
            callout.headers.to_vec(),
            body,
            vec![],
            callout.timeout,
        )
        .map_err(|status| HostError(status as u32))
    }

    fn callout_header(&self, name: &str) -> Option<Vec<u8>> {
        raw::header_value(raw::HTTP_CALL_RESPONSE_HEADERS, name)
            .ok()
            .flatten()
    }

    fn callout_body(&self, size: usize) -> Option<Vec<u8>> {
        raw::buffer_bytes(raw::HTTP_CALL_RESPONSE_BODY, 0, size)
            .ok()
            .flatten()
    }

    fn set_tick(&self, period: Duration) -> Result<(), HostError> {
        let ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
        raw::set_tick_period_ms(ms).map_err(HostError)
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricKind::Counter => raw::COUNTER,
            MetricKind::Gauge => raw::GAUGE,
        };
        raw::define_metric(kind, name).ok()
    }

    fn increment(&self, metric: u32) {
        let _ = raw::increment_metric(metric, 1);
    }

    fn record(&self, metric: u32, value: u64) {
        let _ = raw::record_metric(metric, value);
    }

    fn set_effective_context(&self, id: u32) -> bool {
        raw::set_effective_context(id).is_ok()
    }

    // Refusals below mean the stream is gone or already answered: nothing is left to do.
    fn continue_request(&self) {
        let _ = raw::continue_request();
    }

    fn send_local_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        let _ = raw::send_local_response(status, headers, body);
    }

    fn request_header_pairs(&self) -> Option<Vec<u8>> {
        raw::header_pairs(raw::REQUEST_HEADERS).ok().flatten()
    }

    fn remove_request_header(&self, name: &str) {
        let _ = raw::remove_request_header(name);
    }

    fn set_request_header(&self, name: &str, value: &str) {
        let _ = raw::set_request_header(name, value);
    }

    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        raw::property(path).map_err(HostError)
    }

    fn set_property(&self, path: &str, value: &str) {
        let _ = raw::set_property(path, value);
    }

    fn call_foreign_function(&self, name: &str, arguments: &[u8]) -> Option<Vec<u8>> {
        raw::call_foreign_function(name, arguments).ok().flatten()
    }
}

/// The instance core of this VM, lent out for each event, and the streams that went away while
/// it was lent out.
#[derive(Default)]
struct Slot {
    filter: Cell<Option<Box<Filter>>>,
    gone: Cell<Vec<u32>>,
}

impl Slot {
    /// Runs `f` on the core; `None` when it is lent out already (an event inside an event).
    fn with<T>(&self, f: impl FnOnce(&mut Filter) -> T) -> Option<T> {
        let mut filter = self.filter.take()?;
        for id in self.gone.take() {
            filter.on_stream_gone(id);
        }
        let result = f(&mut filter);
        self.filter.set(Some(filter));
        Some(result)
    }
}

fn action(action: Action) -> HostAction {
    match action {
        Action::Continue => HostAction::Continue,
        Action::Pause => HostAction::Pause,
    }
}

/// One per plugin instance per VM.
#[derive(Default)]
struct Root {
    slot: Option<Rc<Slot>>,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body_size: usize, _: usize) {
        if let Some(slot) = &self.slot {
            slot.with(|filter| filter.on_callout_response(&Envoy, token, headers, body_size));
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        // No configuration (NotFound) is an empty one, which the core refuses; a buffer the
        // host will not give is refused the same way.
        let bytes = raw::buffer_bytes(raw::PLUGIN_CONFIGURATION, 0, plugin_configuration_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let Some(filter) = Filter::configure(&Envoy, &bytes) else {
            return false;
        };
        let slot = Slot::default();
        slot.filter.set(Some(Box::new(filter)));
        self.slot = Some(Rc::new(slot));
        true
    }

    fn on_tick(&mut self) {
        if let Some(slot) = &self.slot {
            slot.with(|filter| filter.on_tick(&Envoy));
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            id: context_id,
            slot: self.slot.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One per HTTP stream.
struct Stream {
    id: u32,
    /// `None` only if the host created a stream without a successful `on_configure`, which
    /// Envoy never does; such a stream is refused rather than let through.
    slot: Option<Rc<Slot>>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> HostAction {
        let decided = self
            .slot
            .as_ref()
            .and_then(|slot| slot.with(|filter| filter.on_request_headers(&Envoy, self.id)));
        match decided {
            Some(decided) => action(decided),
            None => {
                Envoy.log(
                    Level::Error,
                    "jwt-authn-wasm: no configuration; refusing request",
                );
                let _ = raw::send_local_response(500, &[], b"");
                HostAction::Pause
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            let id = self.id;
            if slot.with(|filter| filter.on_stream_gone(id)).is_none() {
                let mut gone = slot.gone.take();
                gone.push(id);
                slot.gone.set(gone);
            }
        }
    }
}
