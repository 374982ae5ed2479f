//! The built module's imports are exactly the host functions we expect: the proxy-wasm ABI
//! (`env.proxy_*`) and five WASI functions the Rust standard library links. Anything else (a
//! WASI clock, file or socket call from a new dependency) fails here, before Envoy ever loads
//! the module. In particular there is no `clock_time_get`: time comes from the host only.
//!
//! Reads `target/wasm32-wasip1/release/jwt_authn_wasm.wasm` (`make build`) with a small
//! hand-written reader of the wasm binary's import section.

// Tests fail by panicking, and the shared test support indexes what it has just checked.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::collections::BTreeSet;

/// proxy-wasm ABI 0.2.1 host functions the SDK's dispatcher and our glue link.
const PROXY: &[&str] = &[
    "proxy_add_header_map_value",
    "proxy_call_foreign_function",
    "proxy_close_stream",
    "proxy_continue_stream",
    "proxy_define_metric",
    "proxy_dequeue_shared_queue",
    "proxy_done",
    "proxy_enqueue_shared_queue",
    "proxy_get_buffer_bytes",
    "proxy_get_current_time_nanoseconds",
    "proxy_get_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_get_log_level",
    "proxy_get_property",
    "proxy_get_shared_data",
    "proxy_get_status",
    "proxy_grpc_call",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_grpc_send",
    "proxy_grpc_stream",
    "proxy_http_call",
    "proxy_increment_metric",
    "proxy_log",
    "proxy_record_metric",
    "proxy_register_shared_queue",
    "proxy_remove_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_resolve_shared_queue",
    "proxy_send_local_response",
    "proxy_set_buffer_bytes",
    "proxy_set_effective_context",
    "proxy_set_header_map_pairs",
    "proxy_set_property",
    "proxy_set_shared_data",
    "proxy_set_tick_period_milliseconds",
];

/// WASI: randomness for `HashMap` seeds, environment for std's startup, stderr and exit for
/// std's abort path. No clock, files or sockets.
const WASI: &[&str] = &[
    "environ_get",
    "environ_sizes_get",
    "fd_write",
    "proc_exit",
    "random_get",
];

#[test]
fn module_imports_exactly_the_expected_host_functions() {
    let path = common::bootstrap::require_wasm_module();
    let module = std::fs::read(&path).unwrap();
    let imports = imports(&module).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let got: BTreeSet<String> = imports.iter().map(|(m, f)| format!("{m}.{f}")).collect();
    let want: BTreeSet<String> = PROXY
        .iter()
        .map(|f| format!("env.{f}"))
        .chain(WASI.iter().map(|f| format!("wasi_snapshot_preview1.{f}")))
        .collect();
    let unexpected: Vec<_> = got.difference(&want).collect();
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(
        unexpected.is_empty() && missing.is_empty(),
        "unexpected imports: {unexpected:?}; expected but missing: {missing:?}"
    );
    assert_eq!(got.len(), imports.len(), "an import is declared twice");
}

#[test]
fn reader_refuses_what_is_not_a_module() {
    assert!(imports(b"").is_err());
    assert!(imports(b"\0asm\x02\0\0\0").is_err());
    // An import section announcing one import and then ending.
    assert!(imports(b"\0asm\x01\0\0\0\x02\x01\x01").is_err());
    assert_eq!(imports(b"\0asm\x01\0\0\0").unwrap(), vec![]);
}

/// The (module, name) of every import, in order.
fn imports(module: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut r = Reader(module);
    if r.bytes(8)? != b"\0asm\x01\0\0\0" {
        return Err("not a wasm 1.0 binary".into());
    }
    let mut out = Vec::new();
    while !r.0.is_empty() {
        let id = r.byte()?;
        let len = r.leb()?;
        let mut section = Reader(r.bytes(len)?);
        if id != 2 {
            continue;
        }
        for _ in 0..section.leb()? {
            let module = section.name()?;
            let name = section.name()?;
            match section.byte()? {
                0 => drop(section.leb()?), // function: type index
                1 => {
                    section.byte()?; // table: element type, then limits
                    section.limits()?;
                }
                2 => section.limits()?,       // memory
                3 => drop(section.bytes(2)?), // global: value type, mutability
                kind => return Err(format!("import kind {kind}")),
            }
            out.push((module, name));
        }
    }
    Ok(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let (head, rest) = self.0.split_at_checked(n).ok_or("unexpected end")?;
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.bytes(1)?[0])
    }

    /// An unsigned LEB128 number of at most 32 bits.
    fn leb(&mut self) -> Result<usize, String> {
        let mut value = 0usize;
        for shift in (0..35).step_by(7) {
            let b = self.byte()?;
            value |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("LEB128 number too long".into())
    }

    /// Table or memory limits: a flag (bit 0: has a maximum), the minimum, the maximum.
    fn limits(&mut self) -> Result<(), String> {
        let has_max = self.byte()? & 1 == 1;
        self.leb()?;
        if has_max {
            self.leb()?;
        }
        Ok(())
    }

    fn name(&mut self) -> Result<String, String> {
        let len = self.leb()?;
        String::from_utf8(self.bytes(len)?.to_vec()).map_err(|e| e.to_string())
    }
}

/// SDK helpers that `panic!` on a host status they do not expect (`proxy_wasm::hostcalls`
/// and the `Context` trait methods built on them). A panic kills the VM, so the glue calls the
/// host through `src/wasm/raw.rs`, which hands statuses back. Two SDK calls stay, for reasons
/// given there: `dispatch_http_call` and `set_log_level`.
const PANICKING_SDK_HELPERS: &[&str] = &[
    "hostcalls::",
    "get_http_call_response_header",
    "get_http_call_response_body",
    "get_http_call_response_trailer",
    "get_http_request_header",
    "set_http_request_header",
    "add_http_request_header",
    "get_http_response_header",
    "get_shared_data(",
    "set_shared_data(",
    "get_property(",
    "set_property(",
    "get_plugin_configuration(",
    "get_vm_configuration(",
    "get_buffer(",
    "get_current_time(",
    "set_tick_period(",
    "resume_http_request(",
    "send_http_response(",
    "get_map_bytes",
    "define_metric(",
    "increment_metric(",
    "record_metric(",
    "set_effective_context(",
    "enqueue_shared_queue(",
    "dequeue_shared_queue(",
    "call_foreign_function(",
];

/// The one SDK host call the glue makes: the SDK's dispatcher routes a callout's answer by the
/// token this registers, and Envoy answers it only Ok, BadArgument or InternalFailure, all of
/// which it hands back (`src/wasm/raw.rs`).
const ALLOWED_SDK_CALLS: &[&str] = &["proxy_wasm::hostcalls::dispatch_http_call("];

#[test]
fn no_sdk_helper_that_panics_on_host_data_is_used() {
    let mut found = Vec::new();
    let mut naming_sdk = Vec::new();
    for path in rust_files(std::path::Path::new("src")) {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        let sdk = text
            .lines()
            .any(|l| l.split("//").next().unwrap_or("").contains("proxy_wasm"));
        if name.ends_with("wasm/raw.rs") {
            // The raw calls themselves: extern declarations, never the SDK.
            assert!(!sdk, "{name} must not use the SDK");
            continue;
        }
        if !sdk {
            // Without the SDK nothing can call its helpers: `host::Host` methods of the
            // same names (`define_metric`, `set_property`, ...) are ours.
            continue;
        }
        naming_sdk.push(name.clone());
        found.extend(sdk_helper_uses(&name, &text));
    }
    assert_eq!(
        naming_sdk,
        ["src/wasm.rs"],
        "only the glue names proxy_wasm"
    );
    assert!(
        found.is_empty(),
        "SDK helpers that panic on host data:\n{}",
        found.join("\n")
    );
}

/// The scan itself finds a use, and does not count our raw calls or comments.
#[test]
fn the_sdk_helper_scan_finds_a_use_and_skips_raw_calls() {
    let text = "let v = hostcalls::get_shared_data(key);\n\
                let w = raw::shared_get(key); // not get_shared_data(\n\
                let id = raw::define_metric(raw::COUNTER, name);\n\
                self.set_tick_period(POKE);";
    assert_eq!(
        sdk_helper_uses("x.rs", text),
        [
            "x.rs:1: let v = hostcalls::get_shared_data(key);",
            "x.rs:4: self.set_tick_period(POKE);"
        ]
    );
}

/// Lines of `text` (outside comments) that name a panicking SDK helper other than as one of
/// our `raw::` calls.
fn sdk_helper_uses(name: &str, text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.split("//").next().unwrap_or("");
            // Our own `host::Host` methods are defined in the glue under the same names.
            let defines = code.trim_start().starts_with("fn ");
            let allowed = ALLOWED_SDK_CALLS.iter().any(|a| code.contains(a));
            !defines
                && !allowed
                && PANICKING_SDK_HELPERS
                    .iter()
                    .any(|h| code.contains(h) && !code.contains(&format!("raw::{h}")))
        })
        .map(|(n, line)| format!("{name}:{}: {}", n + 1, line.trim()))
        .collect()
}

fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}
