//! The host seam: everything one plugin instance (`filter`) needs from the proxy, as a trait.
//!
//! `wasm` implements it with raw proxy-wasm host calls (each hands back the host's status,
//! never a panic); native tests implement it with `FakeHost` (`host::fake`): recorded calls,
//! scripted callout answers, a clock the test moves, and shared data that several fake VMs
//! share. Nothing here knows `proxy_wasm`.
//!
//! Every method takes `&self`: the real host is stateless from the module's side, and a core
//! that holds a signature backend over the host while it counts a metric needs both at once.
//! Methods that act on "the current stream" act on the host's effective context: the stream
//! whose callback runs, or the one `set_effective_context` selected from the root.

use std::time::Duration;

use crate::fleet::{HostError, SetError};

/// A log level, numbered as proxy-wasm numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

/// A metric's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// What a stream callback tells the host: go on, or hold the stream (paused, or answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    Pause,
}

/// One HTTP callout to send.
#[derive(Debug, Clone, Copy)]
pub struct Callout<'a> {
    /// The Envoy cluster it goes through.
    pub cluster: &'a str,
    /// Request headers, pseudo-headers (`:method`, `:path`, `:authority`) included.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    pub timeout: Duration,
}

/// What the proxy does for one plugin instance.
pub trait Host {
    /// The host clock, in nanoseconds since the epoch; `None` when the host will not say.
    fn now_nanos(&self) -> Option<u64>;
    /// Writes one log line.
    fn log(&self, level: Level, message: &str);
    /// The lowest level the host writes; `None` when it cannot say.
    fn log_level(&self) -> Option<Level>;

    /// The value of a shared-data key and its CAS; `None` when the key does not exist.
    fn shared_get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError>;
    /// Writes a shared-data key if its CAS is still `cas` (0: unconditionally).
    fn shared_set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError>;

    /// Sends a callout; its answer comes back to the root with the token returned.
    fn dispatch(&self, callout: &Callout<'_>) -> Result<u32, HostError>;
    /// A header of the callout response being delivered; `None` when absent or unreadable.
    fn callout_header(&self, name: &str) -> Option<Vec<u8>>;
    /// The first `size` bytes of the callout response body being delivered.
    fn callout_body(&self, size: usize) -> Option<Vec<u8>>;

    /// Sets the root's timer (0: off). Setting it restarts it.
    fn set_tick(&self, period: Duration) -> Result<(), HostError>;

    /// Defines a metric; `None` when the host refuses.
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32>;
    /// Adds one to a counter.
    fn increment(&self, metric: u32);
    /// Sets a gauge.
    fn record(&self, metric: u32, value: u64);

    /// Makes stream `id` the current one (from the root); false when it no longer exists.
    fn set_effective_context(&self, id: u32) -> bool;
    /// Lets the current (paused) request go on.
    fn continue_request(&self);
    /// Answers the current stream.
    fn send_local_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]);
    /// The current request's headers, in the host's serialized pairs format, as they came.
    fn request_header_pairs(&self) -> Option<Vec<u8>>;
    /// Removes a request header of the current stream (a refusal means it is gone).
    fn remove_request_header(&self, name: &str);
    /// Sets (replaces) a request header of the current stream.
    fn set_request_header(&self, name: &str, value: &str);
    /// A property (`["plugin_name"]`, `["connection", "uri_san_peer_certificate"]`, …):
    /// `Ok(None)` when the host has none, `Err` when it will not say.
    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError>;
    /// Sets a property (filter state) of the current stream; the path as the host names it.
    fn set_property(&self, path: &str, value: &str);

    /// Calls a foreign function; `None` when refused.
    fn call_foreign_function(&self, name: &str, arguments: &[u8]) -> Option<Vec<u8>>;
}

/// The host's shared data as `fleet` and `callouts` use it.
pub struct Shared<'h, H: Host + ?Sized>(pub &'h H);

impl<H: Host + ?Sized> crate::fleet::SharedData for Shared<'_, H> {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
        self.0.shared_get(key)
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        self.0.shared_set(key, value, cas)
    }
}

/// The callout response being delivered, as `callouts` reads it.
pub struct Response<'h, H: Host + ?Sized>(pub &'h H);

impl<H: Host + ?Sized> crate::callouts::ResponseParts for Response<'_, H> {
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        self.0.callout_header(name)
    }

    fn body(&self, size: usize) -> Option<Vec<u8>> {
        self.0.callout_body(size)
    }
}

/// The host's crypto through the foreign function `verify_signature` (Envoy's BoringSSL).
/// `None` (our own code decides) when the call is refused or its answer unreadable.
pub struct Signatures<'h, H: Host + ?Sized>(pub &'h H);

impl<H: Host + ?Sized> crate::signature::SignatureBackend for Signatures<'_, H> {
    fn verify(&self, hash: &str, spki: &[u8], message: &[u8], signature: &[u8]) -> Option<bool> {
        use crate::signature;
        let arguments = signature::encode_arguments(hash, spki, signature, message);
        let result = self
            .0
            .call_foreign_function(signature::VERIFY_SIGNATURE, &arguments)?;
        signature::decode_result(&result)
    }
}

#[cfg(test)]
pub mod fake;
