//! What the filter says when it panics anyway: the line the wasm panic hook logs at critical
//! level before the VM aborts.
//!
//! Panics are denied by lint in `src/`, so this is the last line of defence for a bug in a
//! dependency. The SDK's own hook (installed by `proxy_wasm::set_log_level`) also logs at
//! critical level, but `unwrap`s the log call inside the hook and does not say which filter
//! died; ours names the filter and what the operator sees next.

use std::panic::PanicHookInfo;

/// The one log line for a panic: filter name, the panic message with its location, and the
/// consequence (the VM aborts; Envoy's `failure_policy` decides what the stream gets).
pub fn report(info: &PanicHookInfo<'_>) -> String {
    format!("jwt-authn-wasm: PANIC, the wasm VM aborts (Envoy applies its failure_policy): {info}")
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    #[test]
    fn report_names_the_filter_the_message_and_the_location() {
        static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|info| {
            SEEN.lock().unwrap().push(super::report(info));
        }));
        let caught = std::panic::catch_unwind(|| panic!("boom {}", 7));
        std::panic::set_hook(previous);
        assert!(caught.is_err());
        let seen = SEEN.lock().unwrap();
        let line = seen.iter().find(|l| l.contains("boom 7")).unwrap();
        assert!(line.starts_with("jwt-authn-wasm: PANIC"), "{line}");
        assert!(line.contains("src/crash.rs:"), "{line}");
    }
}
