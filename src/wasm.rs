//! The only module that names `proxy_wasm`: the `host::Host` methods over raw host calls, and
//! the proxy-wasm entry points, each handing its event to the instance core (`filter`).
//!
//! Host facts it relies on (measured in Envoy 1.40, `shared/ENVOY-WASM-FACTS.md`):
//! - request headers are read as bytes, with the host's status (`raw`);
//! - callouts go through the SDK's `dispatch_http_call`, whose dispatcher routes the answer by
//!   the token it registers there (Envoy answers only Ok, BadArgument or InternalFailure); every
//!   one is sent from the root, so its answer comes back to the root even when the stream that
//!   wanted it is gone;
//! - a stream's `on_delete` may come while the core is busy with another stream: the core is
//!   held in a `slot::Slot`, lent out for each event;
//! - `on_configure` returning false makes Envoy refuse the plugin;
//! - Envoy's foreign function `verify_signature` (BoringSSL) checks RS* and ES* signatures.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action as HostAction, ContextType, LogLevel};

use crate::filter::Filter;
use crate::fleet::HostError;
use crate::host::{Action, Callout, Level};
use crate::slot::{self, Slot};

mod raw;

use raw::Envoy;

proxy_wasm::main! {{
    // No host call other than logging is allowed here (Envoy restricts `_initialize`).
    // `set_log_level` installs the SDK's panic hook; ours replaces it (see `crash`).
    proxy_wasm::set_log_level(LogLevel::Trace);
    std::panic::set_hook(Box::new(|info| {
        raw::log(Level::Critical, &crate::crash::report(info));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Sends a callout through the SDK, whose dispatcher routes its answer to the root by the
/// token it registers here.
fn dispatch(callout: &Callout<'_>) -> Result<u32, HostError> {
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
        let bytes = raw::plugin_configuration(plugin_configuration_size).unwrap_or_default();
        let Some(filter) = Filter::configure(&Envoy, &bytes) else {
            return false;
        };
        self.slot = Some(Rc::new(Slot::new(filter)));
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
        action(slot::request_headers(self.slot.as_deref(), &Envoy, self.id))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            slot.stream_gone(self.id);
        }
    }
}
