//! The instance core of one VM as the glue (`wasm`) holds it between host events: lent out for
//! each event, so no `RefCell` borrow is held across a host call, and the streams that went
//! away while it was lent out are told to it at its next event. Also what a stream is answered
//! when there is no core to ask.
//!
//! Why lent out: `proxy_continue_stream` and local replies take effect after the callback
//! returns, but a stream's `on_delete` may come while the core is busy with another stream
//! (`shared/ENVOY-WASM-FACTS.md`); an event inside an event finds the slot empty (`with` gives
//! `None`) instead of a second mutable borrow.

use std::cell::Cell;

use crate::filter::Filter;
use crate::host::{Action, Host, Level};

/// What the slot needs from the core it holds.
pub trait Instance {
    /// Stream `id` went away: it is never resumed.
    fn on_stream_gone(&mut self, id: u32);
}

impl Instance for Filter {
    fn on_stream_gone(&mut self, id: u32) {
        Filter::on_stream_gone(self, id);
    }
}

/// The core of this VM (lent out during each event), and the streams that went away while it
/// was lent out.
pub struct Slot<F = Filter> {
    core: Cell<Option<Box<F>>>,
    gone: Cell<Vec<u32>>,
}

impl<F: Instance> Slot<F> {
    pub fn new(core: F) -> Self {
        Self {
            core: Cell::new(Some(Box::new(core))),
            gone: Cell::new(Vec::new()),
        }
    }

    /// Runs `f` on the core, first telling it the streams that went away while it was lent
    /// out; `None` when it is lent out already (an event inside an event).
    pub fn with<T>(&self, f: impl FnOnce(&mut F) -> T) -> Option<T> {
        let mut core = self.core.take()?;
        for id in self.gone.take() {
            core.on_stream_gone(id);
        }
        let result = f(&mut core);
        self.core.set(Some(core));
        Some(result)
    }

    /// Stream `id` went away: told to the core now, or at its next event if it is lent out.
    pub fn stream_gone(&self, id: u32) {
        if self.with(|core| core.on_stream_gone(id)).is_none() {
            let mut gone = self.gone.take();
            gone.push(id);
            self.gone.set(gone);
        }
    }
}

/// A stream's request headers arrived: the core decides, parks or answers. Without a core to
/// ask (no successful `on_configure`, which Envoy never allows, or an event inside an event) the
/// request is refused with a 500, never let through.
pub fn request_headers(slot: Option<&Slot>, host: &impl Host, id: u32) -> Action {
    if let Some(action) = slot.and_then(|slot| slot.with(|f| f.on_request_headers(host, id))) {
        return action;
    }
    host.log(
        Level::Error,
        "jwt-authn-wasm: no configuration; refusing request",
    );
    host.send_local_response(500, &[], b"");
    Action::Pause
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{Envoy, FakeHost};

    /// Records the streams it was told went away.
    #[derive(Default)]
    struct Recorder(Vec<u32>);

    impl Instance for Recorder {
        fn on_stream_gone(&mut self, id: u32) {
            self.0.push(id);
        }
    }

    #[test]
    fn an_event_inside_an_event_finds_the_core_lent_out() {
        let slot = Slot::new(Recorder::default());
        let inner = slot.with(|_| slot.with(|_| ()));
        assert_eq!(inner, Some(None));
        // The core came back after the outer event.
        assert_eq!(slot.with(|_| ()), Some(()));
    }

    #[test]
    fn a_stream_gone_while_lent_out_is_told_at_the_next_event() {
        let slot = Slot::new(Recorder::default());
        slot.stream_gone(1);
        let seen = slot.with(|core| {
            slot.stream_gone(2);
            core.0.clone()
        });
        assert_eq!(seen, Some(vec![1]));
        // Told before the next event's own work, once.
        assert_eq!(slot.with(|core| core.0.clone()), Some(vec![1, 2]));
        assert_eq!(slot.with(|core| core.0.clone()), Some(vec![1, 2]));
    }

    #[test]
    fn without_a_core_a_request_is_refused_with_500() {
        let host = FakeHost::new(&Envoy::new(0));
        host.open(7, &[(":method", "GET"), (":path", "/")]);
        assert_eq!(request_headers(None, &host, 7), Action::Pause);
        let stream = host.stream(7);
        assert_eq!(stream.reply.map(|(status, _, _)| status), Some(500));
        assert!(!stream.continued);
        assert!(host.logged("no configuration; refusing request"));
    }

    #[test]
    fn a_request_while_the_core_is_lent_out_is_refused_not_let_through() {
        let host = FakeHost::new(&Envoy::new(0));
        let config = serde_json::json!({
            "providers": { "p": { "issuer": "https://idp.test/",
                                  "local_jwks": { "inline_string": crate::mint::JWKS } } },
            "rules": [{ "match": { "prefix": "/" } }],
        });
        let filter = Filter::configure(&host, config.to_string().as_bytes()).unwrap();
        let slot = Slot::new(filter);
        host.open(3, &[(":method", "GET"), (":path", "/")]);
        assert_eq!(request_headers(Some(&slot), &host, 3), Action::Continue);
        host.open(4, &[(":method", "GET"), (":path", "/")]);
        let inner = slot.with(|_| request_headers(Some(&slot), &host, 4));
        assert_eq!(inner, Some(Action::Pause));
        assert_eq!(host.stream(4).reply.map(|(status, _, _)| status), Some(500));
    }
}
