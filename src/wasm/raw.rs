//! Raw proxy-wasm host calls that hand back the host's status instead of panicking.
//!
//! The SDK's `hostcalls` wrappers `panic!("unexpected status")` on any status they do not
//! expect, and their `Status` enum would be undefined behaviour for a value it lacks; both are
//! host data. Every host call the filter makes goes through here, except the two the SDK must
//! make itself: `dispatch_http_call` (the SDK's dispatcher routes the response by the token it
//! registers there; Envoy answers only Ok, BadArgument or InternalFailure, all handled) and
//! `proxy_wasm::set_log_level` (no host call). `tests/module.rs` fails if an SDK helper that can
//! panic on host data comes back into `src/`.
//!
//! Statuses are plain `u32`s (proxy-wasm ABI 0.2.1): 0 Ok, 1 NotFound, 2 BadArgument,
//! 8 CasMismatch; anything else is carried as is.

/// A host status other than Ok.
pub type Status = u32;

pub const OK: Status = 0;
pub const NOT_FOUND: Status = 1;
pub const CAS_MISMATCH: Status = 8;

/// Header maps (`MapType` in the ABI).
pub const REQUEST_HEADERS: u32 = 0;
pub const HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
/// Buffers (`BufferType` in the ABI).
pub const HTTP_CALL_RESPONSE_BODY: u32 = 4;
pub const PLUGIN_CONFIGURATION: u32 = 7;
/// Metric types.
pub const COUNTER: u32 = 0;
pub const GAUGE: u32 = 1;
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
pub fn log(level: u32, message: &str) {
    // SAFETY: pointer and length of a live slice, read by the host during the call.
    unsafe {
        proxy_log(level, message.as_ptr(), message.len());
    }
}

/// The level from which the host writes this filter's lines: Envoy's `wasm` logger, 0 trace …
/// 5 critical, 6 off (a value the SDK's `LogLevel` lacks, so it is a plain number here).
pub fn log_level() -> Result<u32, Status> {
    let mut level: u32 = 0;
    // SAFETY: the host writes one u32 into our local.
    status(unsafe { proxy_get_log_level(&mut level) })?;
    Ok(level)
}

/// The host clock in nanoseconds since the epoch.
pub fn now_nanos() -> Result<u64, Status> {
    let mut time: u64 = 0;
    // SAFETY: the host writes one u64 into our local.
    status(unsafe { proxy_get_current_time_nanoseconds(&mut time) })?;
    Ok(time)
}

/// Sets the calling root context's timer (0 turns it off).
pub fn set_tick_period_ms(period: u32) -> Result<(), Status> {
    // SAFETY: no pointers.
    status(unsafe { proxy_set_tick_period_milliseconds(period) })
}

/// Up to `max` bytes of host buffer `kind` from `start`; `None` when the host has none.
pub fn buffer_bytes(kind: u32, start: usize, max: usize) -> Result<Option<Vec<u8>>, Status> {
    // SAFETY: the host writes a pointer and a length into our two locals.
    buffer(|data, size| unsafe { proxy_get_buffer_bytes(kind, start, max, data, size) })
}

/// The serialized pairs of header map `map` (see `crate::pairs`).
pub fn header_pairs(map: u32) -> Result<Option<Vec<u8>>, Status> {
    // SAFETY: as above.
    buffer(|data, size| unsafe { proxy_get_header_map_pairs(map, data, size) })
}

/// The value of `name` in header map `map`, as bytes; `None` when absent.
pub fn header_value(map: u32, name: &str) -> Result<Option<Vec<u8>>, Status> {
    // SAFETY: pointer and length of a live slice; the host writes our two locals.
    buffer(|data, size| unsafe {
        proxy_get_header_map_value(map, name.as_ptr(), name.len(), data, size)
    })
}

pub fn set_request_header(name: &str, value: &str) -> Result<(), Status> {
    // SAFETY: pointers and lengths of live slices, read by the host during the call.
    status(unsafe {
        proxy_replace_header_map_value(
            REQUEST_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

pub fn remove_request_header(name: &str) -> Result<(), Status> {
    // SAFETY: as above.
    status(unsafe { proxy_remove_header_map_value(REQUEST_HEADERS, name.as_ptr(), name.len()) })
}

/// A host property (`["plugin_name"]`, `["connection", "mtls"]`, …); `None` when absent.
pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    let serialized = path.join("\0");
    // SAFETY: as above.
    buffer(|data, size| unsafe {
        proxy_get_property(serialized.as_ptr(), serialized.len(), data, size)
    })
}

/// Sets a stream property: Envoy stores it as filter state `wasm.<path>` (a `CelState` of
/// bytes, alive for the filter chain), readable by `%FILTER_STATE(wasm.<path>:PLAIN)%` and by
/// RBAC's `filter_state` matcher. NotFound outside a stream.
pub fn set_property(path: &str, value: &str) -> Result<(), Status> {
    // SAFETY: pointers and lengths of live slices, read by the host during the call.
    status(unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) })
}

/// A shared-data value and its CAS; `(None, None)` when absent. ABI 0.2.1 has no delete, so
/// a removed key reads as an empty value with a CAS.
pub fn shared_get(key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), Status> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    let mut cas: u32 = 0;
    // SAFETY: pointer and length of a live slice; the host writes our three locals.
    let code =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match code {
        OK => Ok((Some(take(data, size)), Some(cas))),
        NOT_FOUND => Ok((None, None)),
        other => Err(other),
    }
}

/// Writes a shared-data value; `cas` 0 writes unconditionally. CasMismatch is status 8.
pub fn shared_set(key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
    // SAFETY: pointers and lengths of live slices, read by the host during the call.
    status(unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    })
}

/// Defines a metric of `kind` (`COUNTER`, `GAUGE`) and returns its id.
pub fn define_metric(kind: u32, name: &str) -> Result<u32, Status> {
    let mut id: u32 = 0;
    // SAFETY: pointer and length of a live slice; the host writes one u32.
    status(unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, offset: i64) -> Result<(), Status> {
    // SAFETY: no pointers.
    status(unsafe { proxy_increment_metric(id, offset) })
}

pub fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    // SAFETY: no pointers.
    status(unsafe { proxy_record_metric(id, value) })
}

/// Makes `context` the one later host calls act on; fails when it no longer exists.
pub fn set_effective_context(context: u32) -> Result<(), Status> {
    // SAFETY: no pointers.
    status(unsafe { proxy_set_effective_context(context) })
}

/// Lets the current stream's request go on.
pub fn continue_request() -> Result<(), Status> {
    // SAFETY: no pointers.
    status(unsafe { proxy_continue_stream(HTTP_REQUEST) })
}

/// Calls the host's foreign function `name`.
pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Result<Option<Vec<u8>>, Status> {
    // SAFETY: pointers and lengths of live slices; the host writes our two locals.
    buffer(|data, size| unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            data,
            size,
        )
    })
}

/// Answers the current stream locally; details empty, no gRPC status.
pub fn send_local_response(
    status_code: u32,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), Status> {
    let pairs = crate::pairs::serialize(headers);
    // SAFETY: pointers and lengths of live slices, read by the host during the call.
    status(unsafe {
        proxy_send_local_response(
            status_code,
            std::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            pairs.as_ptr(),
            pairs.len(),
            -1,
        )
    })
}
