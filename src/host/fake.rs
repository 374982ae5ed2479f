//! A fake proxy for native tests of `filter`: one `FakeHost` per fake VM, all VMs of one fake
//! Envoy sharing one `Envoy` (shared data and the clock). It records what the core did
//! (log lines, metrics, the timer, callouts sent, header changes, local replies, resumed
//! streams) and answers as a test scripts it: a callout's response is delivered by the test
//! (`respond`), a stream's request headers are set per stream, and a stream can go away.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use super::{Callout, Host, Level, MetricKind};
use crate::fleet::{HostError, SetError};

/// What the VMs of one fake Envoy share: the clock and shared data.
#[derive(Default)]
pub struct Envoy {
    /// Milliseconds since the epoch.
    pub now_ms: Cell<u64>,
    /// key → (value, cas).
    pub shared: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    /// Set: every shared-data call fails with this status.
    pub shared_fails: Cell<Option<u32>>,
    /// VMs made so far: each reads the clock with its own sub-millisecond digits, as VMs that
    /// start at different instants do (the fleet names a VM by its start time).
    vms: Cell<u64>,
}

impl Envoy {
    pub fn new(now_ms: u64) -> Rc<Envoy> {
        let envoy = Envoy::default();
        envoy.now_ms.set(now_ms);
        Rc::new(envoy)
    }

    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now_ms.set(self.now_ms.get().saturating_add(ms));
    }
}

/// A callout the core sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub token: u32,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

impl Sent {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What happened to one stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamLog {
    /// The local reply: status, headers, body.
    pub reply: Option<(u32, Vec<(String, String)>, Vec<u8>)>,
    /// Continued from the root (`continue_request`).
    pub continued: bool,
    /// Request headers after the core's changes.
    pub headers: Vec<(String, String)>,
    /// Properties (filter state) set.
    pub properties: BTreeMap<String, String>,
}

/// One fake VM.
pub struct FakeHost {
    pub envoy: Rc<Envoy>,
    /// Nanoseconds this VM's clock reads past the shared millisecond.
    offset_ns: u64,
    /// Properties the host answers (`plugin_name`, peer facts), by `\0`-joined path.
    pub properties: RefCell<HashMap<String, Vec<u8>>>,
    /// The level from which lines are written.
    pub level: Cell<Level>,
    pub lines: RefCell<Vec<(Level, String)>>,
    /// Metric names by id, and their values.
    pub metrics: RefCell<Vec<(String, MetricKind, u64)>>,
    /// The timer's period as last set.
    pub tick: Cell<Duration>,
    pub sent: RefCell<Vec<Sent>>,
    next_token: Cell<u32>,
    /// Set: `dispatch` refuses with this status.
    pub dispatch_fails: Cell<Option<u32>>,
    /// The callout response being delivered: headers and body.
    response: RefCell<Option<(Vec<(String, String)>, Vec<u8>)>>,
    /// Streams by id: existing ones have an entry.
    pub streams: RefCell<BTreeMap<u32, StreamLog>>,
    /// The current stream.
    current: Cell<u32>,
    /// Answers `verify_signature` with this, if set (else refuses).
    pub foreign: RefCell<Option<Vec<u8>>>,
    /// How often this VM read the clock (`now_nanos`): a host call each.
    pub clock_reads: Cell<u32>,
}

impl FakeHost {
    pub fn new(envoy: &Rc<Envoy>) -> FakeHost {
        let vm = envoy.vms.get() + 1;
        envoy.vms.set(vm);
        FakeHost {
            envoy: Rc::clone(envoy),
            offset_ns: vm * 1000 % 1_000_000,
            properties: RefCell::new(HashMap::from([("plugin_name".to_owned(), b"jwt".to_vec())])),
            level: Cell::new(Level::Trace),
            lines: RefCell::default(),
            metrics: RefCell::default(),
            tick: Cell::new(Duration::ZERO),
            sent: RefCell::default(),
            next_token: Cell::new(0),
            dispatch_fails: Cell::new(None),
            response: RefCell::default(),
            streams: RefCell::default(),
            current: Cell::new(0),
            foreign: RefCell::default(),
            clock_reads: Cell::new(0),
        }
    }

    /// A new stream `id` with these request headers, made current.
    pub fn open(&self, id: u32, headers: &[(&str, &str)]) {
        let log = StreamLog {
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            ..StreamLog::default()
        };
        self.streams.borrow_mut().insert(id, log);
        self.current.set(id);
    }

    /// Stream `id` went away (the test then tells the core).
    pub fn close(&self, id: u32) {
        self.streams.borrow_mut().remove(&id);
    }

    pub fn stream(&self, id: u32) -> StreamLog {
        self.streams.borrow().get(&id).cloned().unwrap_or_default()
    }

    /// Makes the response to the callout the core will read now.
    pub fn set_response(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let mut all = vec![(":status".to_owned(), status.to_string())];
        all.extend(
            headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        *self.response.borrow_mut() = Some((all, body.to_vec()));
    }

    /// The callouts sent so far, and forgets them.
    pub fn take_sent(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.sent.borrow_mut())
    }

    /// A counter's or gauge's value by name (0 when undefined).
    pub fn metric(&self, name: &str) -> u64 {
        self.metrics
            .borrow()
            .iter()
            .find(|(n, _, _)| n == name)
            .map_or(0, |(_, _, v)| *v)
    }

    /// Whether a line containing `text` was written.
    pub fn logged(&self, text: &str) -> bool {
        self.lines.borrow().iter().any(|(_, l)| l.contains(text))
    }

    fn with_current<T>(&self, f: impl FnOnce(&mut StreamLog) -> T) -> Option<T> {
        self.streams
            .borrow_mut()
            .get_mut(&self.current.get())
            .map(f)
    }
}

impl Host for FakeHost {
    fn now_nanos(&self) -> Option<u64> {
        self.clock_reads
            .set(self.clock_reads.get().saturating_add(1));
        self.envoy
            .now_ms
            .get()
            .checked_mul(1_000_000)?
            .checked_add(self.offset_ns)
    }

    fn log(&self, level: Level, message: &str) {
        if level >= self.level.get() {
            self.lines.borrow_mut().push((level, message.to_owned()));
        }
    }

    fn log_level(&self) -> Option<Level> {
        Some(self.level.get())
    }

    fn shared_get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
        if let Some(status) = self.envoy.shared_fails.get() {
            return Err(HostError(status));
        }
        Ok(self.envoy.shared.borrow().get(key).cloned())
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        if let Some(status) = self.envoy.shared_fails.get() {
            return Err(SetError::Host(HostError(status)));
        }
        let mut shared = self.envoy.shared.borrow_mut();
        let next = match shared.get(key) {
            Some((_, current)) if cas != 0 && cas != *current => return Err(SetError::CasMismatch),
            Some((_, current)) => current.wrapping_add(1).max(1),
            None => 1,
        };
        shared.insert(key.to_owned(), (value.to_vec(), next));
        Ok(())
    }

    fn dispatch(&self, callout: &Callout<'_>) -> Result<u32, HostError> {
        if let Some(status) = self.dispatch_fails.get() {
            return Err(HostError(status));
        }
        // Envoy's scheme: 4, 8, 12, …, never reused.
        let token = self.next_token.get() + 4;
        self.next_token.set(token);
        self.sent.borrow_mut().push(Sent {
            token,
            cluster: callout.cluster.to_owned(),
            headers: callout
                .headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: callout.body.to_vec(),
            timeout: callout.timeout,
        });
        Ok(token)
    }

    fn callout_header(&self, name: &str) -> Option<Vec<u8>> {
        let response = self.response.borrow();
        let (headers, _) = response.as_ref()?;
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_bytes().to_vec())
    }

    fn callout_body(&self, size: usize) -> Option<Vec<u8>> {
        let response = self.response.borrow();
        let (_, body) = response.as_ref()?;
        Some(body.iter().take(size).copied().collect())
    }

    fn set_tick(&self, period: Duration) -> Result<(), HostError> {
        self.tick.set(period);
        Ok(())
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let mut metrics = self.metrics.borrow_mut();
        if let Some(id) = metrics.iter().position(|(n, _, _)| n == name) {
            return u32::try_from(id).ok();
        }
        metrics.push((name.to_owned(), kind, 0));
        u32::try_from(metrics.len() - 1).ok()
    }

    fn increment(&self, metric: u32) {
        if let Some((_, _, value)) = self.metrics.borrow_mut().get_mut(metric as usize) {
            *value += 1;
        }
    }

    fn record(&self, metric: u32, value: u64) {
        if let Some((_, _, current)) = self.metrics.borrow_mut().get_mut(metric as usize) {
            *current = value;
        }
    }

    fn set_effective_context(&self, id: u32) -> bool {
        if self.streams.borrow().contains_key(&id) {
            self.current.set(id);
            true
        } else {
            false
        }
    }

    fn continue_request(&self) {
        self.with_current(|s| s.continued = true);
    }

    fn send_local_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        let headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        self.with_current(|s| s.reply = Some((status, headers, body.to_vec())));
    }

    fn request_header_pairs(&self) -> Option<Vec<u8>> {
        self.with_current(|s| {
            let pairs: Vec<(&str, &str)> = s
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            crate::pairs::serialize(&pairs)
        })
    }

    fn remove_request_header(&self, name: &str) {
        self.with_current(|s| s.headers.retain(|(n, _)| n != name));
    }

    fn set_request_header(&self, name: &str, value: &str) {
        self.with_current(|s| {
            s.headers.retain(|(n, _)| n != name);
            s.headers.push((name.to_owned(), value.to_owned()));
        });
    }

    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        Ok(self.properties.borrow().get(&path.join("\0")).cloned())
    }

    fn set_property(&self, path: &str, value: &str) {
        self.with_current(|s| s.properties.insert(path.to_owned(), value.to_owned()));
    }

    fn call_foreign_function(&self, _name: &str, _arguments: &[u8]) -> Option<Vec<u8>> {
        self.foreign.borrow().clone()
    }
}
