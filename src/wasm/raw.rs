//! `host::Host` over raw proxy-wasm host calls, each handing back the host's status instead
//! of panicking.
//!
//! The SDK's `hostcalls` wrappers `panic!("unexpected status")` on any status they do not
//! expect, and their `Status` enum would be undefined behaviour for a value it lacks; both are
//! host data. Every host call the filter makes is made here, except the two the SDK must make
//! itself (in `wasm`): `dispatch_http_call` (the SDK's dispatcher routes the response by the
//! token it registers there; Envoy answers only Ok, BadArgument or InternalFailure, all
//! handled) and `proxy_wasm::set_log_level` (no host call). `tests/module.rs` fails if an SDK
//! helper that can panic on host data comes back into `src/`, or if this file names the SDK.
//!
//! Statuses are plain `u32`s (proxy-wasm ABI 0.2.1): 0 Ok, 1 NotFound, 2 BadArgument,
//! 8 CasMismatch; anything else is carried as is.

use std::time::Duration;

use crate::fleet::{HostError, SetError};
use crate::host::{Callout, Host, Level, MetricKind};

/// A host status other than Ok.
pub type Status = u32;

const OK: Status = 0;
const NOT_FOUND: Status = 1;
const CAS_MISMATCH: Status = 8;

/// Header maps (`MapType` in the ABI).
const REQUEST_HEADERS: u32 = 0;
const HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
/// Buffers (`BufferType` in the ABI).
const HTTP_CALL_RESPONSE_BODY: u32 = 4;
const PLUGIN_CONFIGURATION: u32 = 7;
/// Metric types.
const COUNTER: u32 = 0;
const GAUGE: u32 = 1;
/// `proxy_continue_stream`'s stream type for the request.
const HTTP_REQUEST: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message: *const u8, message_len: usize) -> u32;
    fn proxy_get_log_level(level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer: u32,
        start: usize,
        max_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        map: u32,
        key: *const u8,
        key_len: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_len: usize,
        value: *const u8,
        value_len: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_len: usize) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_len: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path: *const u8,
        path_len: usize,
        value: *const u8,
        value_len: usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key: *const u8,
        key_len: usize,
        data: *mut *mut u8,
        size: *mut usize,
        cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key: *const u8,
        key_len: usize,
        value: *const u8,
        value_len: usize,
        cas: u32,
    ) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, name_len: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
    fn proxy_set_effective_context(context: u32) -> u32;
    fn proxy_continue_stream(stream: u32) -> u32;
    fn proxy_call_foreign_function(
        name: *const u8,
        name_len: usize,
        arguments: *const u8,
        arguments_len: usize,
        results: *mut *mut u8,
        results_len: *mut usize,
    ) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_len: usize,
        body: *const u8,
        body_len: usize,
        headers: *const u8,
        headers_len: usize,
        grpc_status: i32,
    ) -> u32;
}

fn status(code: u32) -> Result<(), Status> {
    if code == OK {
        Ok(())
    } else {
        Err(code)
    }
}

/// The buffer a host call returned, once its status is known to be Ok. A zero-length result
/// is a null pointer (the host allocates nothing).
fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        return Vec::new();
    }
    // SAFETY: the host allocated `size` bytes through the SDK's `proxy_on_memory_allocate`
    // (a boxed slice of exactly `size` bytes, align 1) and hands them over to us.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// Calls a host function that returns a buffer: `Ok(Some(bytes))`, `Ok(None)` on NotFound,
/// else the status.
fn buffer(call: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> Result<Option<Vec<u8>>, Status> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    match call(&mut data, &mut size) {
        OK => Ok(Some(take(data, size))),
        NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

/// Logs at `level` (0 trace … 5 critical). A refusal is ignored: there is nowhere else to say it.
pub fn log(level: Level, message: &str) {
    // SAFETY: pointer and length of a live slice, read by the host during the call.
    unsafe {
        proxy_log(level as u32, message.as_ptr(), message.len());
    }
}

/// The plugin configuration (`size` bytes); `None` when the host will not give it.
pub fn plugin_configuration(size: usize) -> Option<Vec<u8>> {
    // SAFETY: the host writes a pointer and a length into our two locals.
    buffer(|data, len| unsafe { proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, size, data, len) })
        .ok()
        .flatten()
}

/// Answers the current stream locally; details empty, no gRPC status.
pub fn send_local_response(status_code: u32, headers: &[(&str, &str)], body: &[u8]) {
    let pairs = crate::pairs::serialize(headers);
    // SAFETY: pointers and lengths of live slices, read by the host during the call. A refusal
    // means the stream is gone or already answered.
    unsafe {
        proxy_send_local_response(
            status_code,
            std::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            pairs.as_ptr(),
            pairs.len(),
            -1,
        );
    }
}

/// Envoy, through raw host calls; callouts through `wasm::dispatch` (the SDK's).
pub struct Envoy;

// SAFETY (every `unsafe` block below): the pointers and lengths passed are those of live
// slices, read by the host during the call, and the out-parameters are our own locals, which
// the host writes once. Refusals of calls that change the current stream mean it is gone or
// already answered: nothing is left to do, so they are ignored.
impl Host for Envoy {
    fn now_nanos(&self) -> Option<u64> {
        let mut time: u64 = 0;
        status(unsafe { proxy_get_current_time_nanoseconds(&mut time) }).ok()?;
        Some(time)
    }

    fn log(&self, level: Level, message: &str) {
        log(level, message);
    }

    /// Envoy's `wasm` logger level; 6 ("off", which the SDK's `LogLevel` lacks) writes nothing,
    /// as if above critical.
    fn log_level(&self) -> Option<Level> {
        let mut level: u32 = 0;
        status(unsafe { proxy_get_log_level(&mut level) }).ok()?;
        Some(match level {
            0 => Level::Trace,
            1 => Level::Debug,
            2 => Level::Info,
            3 => Level::Warn,
            4 => Level::Error,
            _ => Level::Critical,
        })
    }

    /// ABI 0.2.1 has no delete, so a removed key reads as an empty value with a CAS.
    fn shared_get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
        let (mut data, mut size, mut cas) = (std::ptr::null_mut(), 0, 0);
        let code = unsafe {
            proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas)
        };
        match code {
            OK => Ok(Some((take(data, size), cas))),
            NOT_FOUND => Ok(None),
            other => Err(HostError(other)),
        }
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        let code = unsafe {
            proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
        };
        status(code).map_err(|status| match status {
            CAS_MISMATCH => SetError::CasMismatch,
            other => SetError::Host(HostError(other)),
        })
    }

    fn dispatch(&self, callout: &Callout<'_>) -> Result<u32, HostError> {
        super::dispatch(callout)
    }

    fn callout_header(&self, name: &str) -> Option<Vec<u8>> {
        let map = HTTP_CALL_RESPONSE_HEADERS;
        buffer(|data, size| unsafe {
            proxy_get_header_map_value(map, name.as_ptr(), name.len(), data, size)
        })
        .ok()
        .flatten()
    }

    fn callout_body(&self, size: usize) -> Option<Vec<u8>> {
        let kind = HTTP_CALL_RESPONSE_BODY;
        buffer(|data, len| unsafe { proxy_get_buffer_bytes(kind, 0, size, data, len) })
            .ok()
            .flatten()
    }

    fn set_tick(&self, period: Duration) -> Result<(), HostError> {
        let ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
        status(unsafe { proxy_set_tick_period_milliseconds(ms) }).map_err(HostError)
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricKind::Counter => COUNTER,
            MetricKind::Gauge => GAUGE,
        };
        let mut id: u32 = 0;
        status(unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) }).ok()?;
        Some(id)
    }

    fn increment(&self, metric: u32) {
        unsafe { proxy_increment_metric(metric, 1) };
    }

    fn record(&self, metric: u32, value: u64) {
        unsafe { proxy_record_metric(metric, value) };
    }

    fn set_effective_context(&self, id: u32) -> bool {
        status(unsafe { proxy_set_effective_context(id) }).is_ok()
    }

    fn continue_request(&self) {
        unsafe { proxy_continue_stream(HTTP_REQUEST) };
    }

    fn send_local_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        send_local_response(status, headers, body);
    }

    fn request_header_pairs(&self) -> Option<Vec<u8>> {
        buffer(|data, size| unsafe { proxy_get_header_map_pairs(REQUEST_HEADERS, data, size) })
            .ok()
            .flatten()
    }

    fn remove_request_header(&self, name: &str) {
        unsafe { proxy_remove_header_map_value(REQUEST_HEADERS, name.as_ptr(), name.len()) };
    }

    fn set_request_header(&self, name: &str, value: &str) {
        let (n, v) = (name.as_bytes(), value.as_bytes());
        unsafe {
            proxy_replace_header_map_value(
                REQUEST_HEADERS,
                n.as_ptr(),
                n.len(),
                v.as_ptr(),
                v.len(),
            )
        };
    }

    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        let path = path.join("\0");
        buffer(|data, size| unsafe { proxy_get_property(path.as_ptr(), path.len(), data, size) })
            .map_err(HostError)
    }

    /// Envoy stores it as filter state `wasm.<path>` (a `CelState` of bytes, alive for the
    /// filter chain), readable by `%FILTER_STATE(wasm.<path>:PLAIN)%` and RBAC's `filter_state`.
    fn set_property(&self, path: &str, value: &str) {
        let (p, v) = (path.as_bytes(), value.as_bytes());
        unsafe { proxy_set_property(p.as_ptr(), p.len(), v.as_ptr(), v.len()) };
    }

    fn call_foreign_function(&self, name: &str, arguments: &[u8]) -> Option<Vec<u8>> {
        let (n, a) = (name.as_bytes(), arguments);
        buffer(|data, size| unsafe {
            proxy_call_foreign_function(n.as_ptr(), n.len(), a.as_ptr(), a.len(), data, size)
        })
        .ok()
        .flatten()
    }
}
