//! Log lines about one request: what of the request they may show, and how many of them may
//! be written. Pure; the wasm glue asks before it writes a per-request line.
//!
//! A per-request line is written for a failure let through (`report_only`, a failure policy
//! `allow`) and for a denial (at debug), and its request data comes from the client:
//! - the request is shown as `METHOD PATH`: the query string is never shown (it may hold a
//!   token, `?access_token=…`), only that there was one (`?<query elided>`);
//! - method and path are cut to `MAX_METHOD` / `MAX_PATH` bytes of *output*, followed by
//!   `...(N bytes)` with the length as sent; a 60 KiB `:path` costs 256 bytes of log;
//! - every byte outside printable ASCII (control characters, DEL, bytes ≥ 0x80 whether UTF-8
//!   or not) and the backslash are written `\xNN`, so a line cannot be split, coloured, or
//!   made to look like another one;
//! - lines are rate-limited by a token bucket (`RateLimit`, `BURST` lines at once, refilled at
//!   `PER_SECOND` lines per second, host time), so a flood of failures cannot fill the disk;
//!   what was suppressed is counted and reported once, in one line (`suppressed_line`), when
//!   the bucket allows the next line.
//!
//! Nothing here reads a token, a claim or a header other than `:method` and `:path`.

use std::fmt::Write as _;

/// The most bytes of `:path` (before the query, escapes included) a line shows.
pub const MAX_PATH: usize = 256;
/// The most bytes of `:method` (escapes included) a line shows.
pub const MAX_METHOD: usize = 16;
/// Lines a quiet filter may write at once.
pub const BURST: u64 = 20;
/// Lines per second the bucket refills.
pub const PER_SECOND: u64 = 5;

/// Where a query string was.
const QUERY_ELIDED: &str = "?<query elided>";

/// `METHOD PATH` as a log line shows them: escaped, cut, query elided.
pub fn request(method: &[u8], path: &[u8]) -> String {
    let mut out = String::with_capacity(MAX_METHOD + MAX_PATH + 32);
    escape_into(method, MAX_METHOD, &mut out);
    out.push(' ');
    let (before, query) = match path.iter().position(|b| *b == b'?') {
        Some(at) => (path.get(..at).unwrap_or_default(), true),
        None => (path, false),
    };
    escape_into(before, MAX_PATH, &mut out);
    if query {
        out.push_str(QUERY_ELIDED);
    }
    out
}

/// Appends `bytes` escaped, at most `max` bytes of output; when that cuts, `...(N bytes)`
/// follows with the length as sent. An escape is never cut in two.
fn escape_into(bytes: &[u8], max: usize, out: &mut String) {
    let start = out.len();
    for byte in bytes {
        let printable = byte.is_ascii_graphic() || *byte == b' ';
        let width = if printable && *byte != b'\\' { 1 } else { 4 };
        if out.len() - start + width > max {
            let _ = write!(out, "...({} bytes)", bytes.len());
            return;
        }
        if width == 1 {
            out.push(char::from(*byte));
        } else {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
}

/// The line that reports lines the bucket of plugin instance `plugin` suppressed (Envoy does
/// not name the plugin in lines written from a timer tick, so the line does).
pub fn suppressed_line(plugin: &str, count: u64) -> String {
    format!(
        "jwt-authn-wasm: {plugin}: {count} per-request log line(s) suppressed (rate limit: {BURST} at once, {PER_SECOND}/s per VM)"
    )
}

/// Milliseconds, from the host clock.
pub type Millis = u64;

/// What the bucket says about one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Write it; first report `suppressed` lines if that is not 0 (`suppressed_line`).
    Write { suppressed: u64 },
    /// Drop it (counted).
    Drop,
}

/// A token bucket of log lines, one per plugin instance and VM. Time only moves forward: a
/// clock that goes back refills nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    burst: u64,
    per_second: u64,
    /// Thousandths of a line.
    milli: u64,
    last: Option<Millis>,
    suppressed: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new(BURST, PER_SECOND)
    }
}

impl RateLimit {
    /// A full bucket of `burst` lines, refilled at `per_second`.
    pub const fn new(burst: u64, per_second: u64) -> Self {
        Self {
            burst,
            per_second,
            milli: burst.saturating_mul(1000),
            last: None,
            suppressed: 0,
        }
    }

    fn refill(&mut self, now: Millis) {
        if let Some(last) = self.last {
            // `per_second` lines per 1000 ms is `per_second` thousandths per ms.
            let gained = now.saturating_sub(last).saturating_mul(self.per_second);
            self.milli = self
                .milli
                .saturating_add(gained)
                .min(self.burst.saturating_mul(1000));
        }
        self.last = Some(self.last.map_or(now, |last| last.max(now)));
    }

    /// Whether a line may be written at `now`.
    pub fn admit(&mut self, now: Millis) -> Admit {
        self.refill(now);
        if self.milli >= 1000 {
            self.milli -= 1000;
            Admit::Write {
                suppressed: std::mem::take(&mut self.suppressed),
            }
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            Admit::Drop
        }
    }

    /// Lines suppressed so far and not yet reported.
    pub fn pending(&self) -> u64 {
        self.suppressed
    }

    /// At a timer tick: the count to report now, if lines were suppressed and the bucket
    /// allows one line (which this takes).
    pub fn flush(&mut self, now: Millis) -> Option<u64> {
        if self.suppressed == 0 {
            return None;
        }
        self.refill(now);
        if self.milli < 1000 {
            return None;
        }
        self.milli -= 1000;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests;
