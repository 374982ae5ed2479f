//! A proxy-wasm HTTP filter that lets every request through untouched.
//!
//! With a plugin configuration that names host calls (`{"floor": ["headers", "clock",
//! "metric", ...]}`), it makes exactly those calls on every request and nothing else: the
//! floor rows of `make bench`, what the host calls of one of our requests cost by themselves,
//! beside our filter making the same calls. The words: `headers` (the request header map in
//! one call, its buffer freed), `clock`, `metric` (one counter increment each), `remove` (the
//! `authorization` header), `set` (`x-jwt-sub`), `property` (one filter-state value each),
//! `verify` (Envoy's foreign function `verify_signature` with the argument given in hex as
//! `"verify_args"`: the very bytes our filter sends for a token, so the host's whole part of a
//! signature check, key import included).
//! Bench only: a host status is ignored.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// The host calls to make per request (all zero: the empty filter).
#[derive(Clone, Copy, Default)]
struct Calls {
    headers: bool,
    clock: bool,
    metrics: usize,
    remove: bool,
    set: bool,
    properties: usize,
    verify: bool,
}

const MAX_METRICS: usize = 4;
const PROPERTIES: [&str; 4] = [
    "jwt_authn_floor.provider",
    "jwt_authn_floor.issuer",
    "jwt_authn_floor.subject",
    "jwt_authn_floor.extra",
];

#[derive(Default)]
struct Root {
    calls: Calls,
    metric_ids: [u32; MAX_METRICS],
    verify_args: std::rc::Rc<Vec<u8>>,
}

/// The hex string after `"verify_args":"` in `text` as bytes (empty when there is none).
fn verify_args(text: &str) -> Vec<u8> {
    let hex = text
        .split_once("\"verify_args\":\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or("", |(hex, _)| hex);
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let text = self
            .get_plugin_configuration()
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .unwrap_or_default();
        let count = |word: &str| text.matches(&format!("\"{word}\"")).count();
        self.calls = Calls {
            headers: count("headers") > 0,
            clock: count("clock") > 0,
            metrics: count("metric").min(MAX_METRICS),
            remove: count("remove") > 0,
            set: count("set") > 0,
            properties: count("property").min(PROPERTIES.len()),
            verify: count("verify") > 0,
        };
        self.verify_args = std::rc::Rc::new(verify_args(&text));
        // A floor that checks a bad signature or key would measure an early exit: refuse the
        // configuration (the bench then fails at Envoy's start) unless the host says valid.
        if self.calls.verify && verify(&self.verify_args) != [0x08, 0x01] {
            return false;
        }
        for (n, id) in self.metric_ids[..self.calls.metrics].iter_mut().enumerate() {
            let name = format!("jwt_authn_floor.counter_{n}");
            let mut out = 0;
            unsafe { proxy_define_metric(0, name.as_ptr(), name.len(), &mut out) };
            *id = out;
        }
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            calls: self.calls,
            metric_ids: self.metric_ids,
            verify_args: self.verify_args.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    calls: Calls,
    metric_ids: [u32; MAX_METRICS],
    verify_args: std::rc::Rc<Vec<u8>>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let calls = self.calls;
        // SAFETY: the ABI's own calls with pointers and lengths of live buffers; a buffer the
        // host returns was allocated by this module (`proxy_on_memory_allocate`) and is freed
        // here with the same layout.
        unsafe {
            if calls.headers {
                let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
                proxy_get_header_map_pairs(0, &mut data, &mut size);
                if !data.is_null() {
                    drop(Vec::from_raw_parts(data, size, size));
                }
            }
            if calls.clock {
                let mut time = 0u64;
                proxy_get_current_time_nanoseconds(&mut time);
            }
            if calls.verify {
                verify(&self.verify_args);
            }
            for id in &self.metric_ids[..calls.metrics] {
                proxy_increment_metric(*id, 1);
            }
            if calls.remove {
                let name = "authorization";
                proxy_remove_header_map_value(0, name.as_ptr(), name.len());
            }
            if calls.set {
                let (name, value) = ("x-jwt-sub", "user-0");
                proxy_replace_header_map_value(
                    0,
                    name.as_ptr(),
                    name.len(),
                    value.as_ptr(),
                    value.len(),
                );
            }
            for path in &PROPERTIES[..calls.properties] {
                let value = "https://issuer.example";
                proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len());
            }
        }
        Action::Continue
    }
}

/// Envoy's `verify_signature` with `args`; its result bytes.
fn verify(args: &[u8]) -> Vec<u8> {
    let name = "verify_signature";
    let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
    // SAFETY: as above; the result buffer is this module's allocation.
    unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            args.as_ptr(),
            args.len(),
            &mut data,
            &mut size,
        );
        if data.is_null() {
            Vec::new()
        } else {
            Vec::from_raw_parts(data, size, size)
        }
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_len: usize,
        value: *const u8,
        value_len: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_len: usize) -> u32;
    fn proxy_set_property(
        path: *const u8,
        path_len: usize,
        value: *const u8,
        value_len: usize,
    ) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, name_len: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_call_foreign_function(
        name: *const u8,
        name_len: usize,
        arguments: *const u8,
        arguments_len: usize,
        results: *mut *mut u8,
        results_len: *mut usize,
    ) -> u32;
}
