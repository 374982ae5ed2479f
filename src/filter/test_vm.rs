//! The fake VM the instance-core tests share (`tests.rs`, `revocation_tests.rs`,
//! `opaque/tests.rs`): one `FakeHost` on a fake Envoy and the `Filter` configured on it, with
//! the few moves a test makes (a bearer request, a tick, a callout answer) and what it reads
//! back. It decides nothing: each test file keeps its own configs, tokens and assertions.

use std::rc::Rc;

use super::Filter;
use crate::host::fake::{Envoy, FakeHost, Sent};
use crate::host::Action;

/// One plugin instance: the host it runs on and the filter configured there.
pub(super) struct Vm {
    pub(super) host: FakeHost,
    pub(super) filter: Filter,
}

/// Opens stream `id` on `host` as a `GET /x` for `api.test` carrying `Bearer {token}`, and
/// runs the filter's request-headers step on it.
pub(super) fn request(host: &FakeHost, filter: &mut Filter, id: u32, token: &str) -> Action {
    let bearer = format!("Bearer {token}");
    host.open(
        id,
        &[
            (":method", "GET"),
            (":path", "/x"),
            (":authority", "api.test"),
            ("authorization", &bearer),
        ],
    );
    filter.on_request_headers(host, id)
}

impl Vm {
    /// A VM on `envoy` configured with `config` (a test config: it must load).
    pub(super) fn new(envoy: &Rc<Envoy>, config: &[u8]) -> Vm {
        let host = FakeHost::new(envoy);
        let filter = Filter::configure(&host, config).unwrap();
        Vm { host, filter }
    }

    /// A request for `/x` with `token` on stream `id`.
    pub(super) fn request(&mut self, id: u32, token: &str) -> Action {
        request(&self.host, &mut self.filter, id, token)
    }

    pub(super) fn tick(&mut self) {
        self.filter.on_tick(&self.host);
    }

    /// Delivers `status` and `body` as the answer to callout `sent`.
    pub(super) fn answer(&mut self, sent: &Sent, status: u16, body: &str) {
        self.host.set_response(status, &[], body.as_bytes());
        self.filter
            .on_callout_response(&self.host, sent.token, 1, body.len());
    }

    /// The one callout sent since last asked.
    pub(super) fn sent_one(&self) -> Sent {
        let mut sent = self.host.take_sent();
        assert_eq!(sent.len(), 1, "{sent:?}");
        sent.remove(0)
    }

    /// The status of the local reply on stream `id`, if one was sent.
    pub(super) fn reply_status(&self, id: u32) -> Option<u32> {
        self.host.stream(id).reply.map(|(status, _, _)| status)
    }

    /// The first value of request header `name` on stream `id` as the filter left it.
    pub(super) fn header(&self, id: u32, name: &str) -> Option<String> {
        self.host
            .stream(id)
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}
