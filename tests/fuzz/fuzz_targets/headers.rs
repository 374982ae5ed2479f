//! Token extraction from arbitrary header maps, through `engine::decide`: the input is read
//! both as the host's serialized pairs (`pairs::parse`) and as `name: value` lines, so the
//! extractor sees any names, values, repeats, query strings and cookies.
#![no_main]

#[path = "common.rs"]
mod common;

use jwt_authn_wasm::pairs;
use jwt_authn_wasm::request::RequestHeaders;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(parsed) = pairs::parse(data) {
        common::decide_and_check(&RequestHeaders::new(parsed));
    }
    let lines = data
        .split(|b| *b == b'\n')
        .map(|line| {
            let at = line.iter().position(|b| *b == b':').unwrap_or(line.len());
            let (name, value) = line.split_at(at);
            let value = value.get(1..).unwrap_or_default();
            (String::from_utf8_lossy(name).into_owned(), value.to_vec())
        })
        .collect();
    common::decide_and_check(&RequestHeaders::new(lines));
});
