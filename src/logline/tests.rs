use super::*;

#[test]
fn a_plain_request_is_shown_as_sent() {
    assert_eq!(request(b"GET", b"/orders/7"), "GET /orders/7");
}

#[test]
fn the_query_string_is_never_shown() {
    let line = request(b"GET", b"/orders?access_token=eyJhbGciOi.secret.sig&x=1");
    assert_eq!(line, "GET /orders?<query elided>");
    assert!(!line.contains("secret"));
    // Only the first `?` starts the query; what follows is elided whatever it holds.
    assert_eq!(request(b"GET", b"/a?b?c"), "GET /a?<query elided>");
    assert_eq!(request(b"GET", b"/a?"), "GET /a?<query elided>");
}

#[test]
fn control_characters_backslash_and_non_ascii_bytes_are_escaped() {
    assert_eq!(
        request(b"GET", b"/a\r\nfake: line\x1b[31m\x7f\\"),
        "GET /a\\x0d\\x0afake: line\\x1b[31m\\x7f\\x5c"
    );
    // Not UTF-8, and UTF-8 that is not ASCII (here U+202E, which turns text around): bytes.
    assert_eq!(request(b"GET", b"/p\xff"), "GET /p\\xff");
    assert_eq!(
        request(b"GET", "/\u{202e}x".as_bytes()),
        "GET /\\xe2\\x80\\xaex"
    );
    assert_eq!(request(b"g\0t", b"/"), "g\\x00t /");
}

#[test]
fn a_60_kib_path_is_cut_to_max_path_bytes_with_its_length() {
    let path = format!("/{}", "a".repeat(60 * 1024 - 1));
    let line = request(b"GET", path.as_bytes());
    assert_eq!(
        line,
        format!("GET /{}...(61440 bytes)", "a".repeat(MAX_PATH - 1))
    );
    assert!(line.len() <= MAX_METHOD + MAX_PATH + 32, "{}", line.len());
}

#[test]
fn the_cut_counts_escapes_and_never_splits_one() {
    // 100 bytes of 0xff escape to 400 bytes: 64 escapes fit in 256, the 65th does not.
    let line = request(b"GET", &[0xff; 100]);
    assert_eq!(line, format!("GET {}...(100 bytes)", "\\xff".repeat(64)));
    // One byte short of room for an escape: the escape goes, whole.
    let mut path = vec![b'/'; MAX_PATH - 3];
    path.push(0x01);
    let line = request(b"GET", &path);
    assert!(
        line.ends_with(&format!("{}...({} bytes)", "/", MAX_PATH - 2)),
        "{line}"
    );
    // Exactly the limit is not cut.
    let exact = vec![b'/'; MAX_PATH];
    assert_eq!(request(b"GET", &exact).len(), 4 + MAX_PATH);
}

#[test]
fn a_long_method_is_cut_too() {
    let line = request(&[b'X'; 1000], b"/");
    assert_eq!(line, format!("{}...(1000 bytes) /", "X".repeat(MAX_METHOD)));
}

#[test]
fn the_bucket_lets_a_burst_through_then_refills_at_its_rate() {
    let mut limit = RateLimit::new(20, 5);
    let written = (0..400)
        .filter(|_| limit.admit(1_000) != Admit::Drop)
        .count();
    assert_eq!(written, 20);
    assert_eq!(limit.pending(), 380);
    // 199 ms later: not yet one line (5/s is one per 200 ms).
    assert_eq!(limit.admit(1_199), Admit::Drop);
    assert_eq!(
        limit.admit(1_400),
        Admit::Write { suppressed: 381 },
        "the next line written reports what was dropped, once"
    );
    assert_eq!(limit.pending(), 0);
    // A long quiet spell refills to the burst, not beyond.
    let written = (0..100)
        .filter(|_| limit.admit(1_000_000) != Admit::Drop)
        .count();
    assert_eq!(written, 20);
}

#[test]
fn a_flood_of_one_minute_writes_burst_plus_rate_times_time() {
    let mut limit = RateLimit::default();
    let mut written = 0;
    // 1000 failures per second for 60 s.
    for ms in 0..60_000 {
        if let Admit::Write { .. } = limit.admit(ms) {
            written += 1;
        }
    }
    // 20 at once, then one per 200 ms.
    assert!(
        (BURST + PER_SECOND * 59..=BURST + PER_SECOND * 60).contains(&written),
        "{written}"
    );
}

#[test]
fn the_summary_comes_at_a_tick_when_no_line_follows() {
    let mut limit = RateLimit::new(2, 5);
    assert_eq!(limit.flush(0), None, "nothing suppressed, nothing to say");
    for _ in 0..5 {
        limit.admit(0);
    }
    assert_eq!(
        limit.flush(0),
        None,
        "the bucket is empty: the summary waits too"
    );
    assert_eq!(limit.flush(200), Some(3));
    assert_eq!(limit.flush(10_000), None, "said once");
    assert_eq!(
        suppressed_line("ns.jwt", 3),
        "jwt-authn-wasm: ns.jwt: 3 per-request log line(s) suppressed (rate limit: 20 at once, 5/s per VM)"
    );
}

#[test]
fn a_clock_that_goes_back_refills_nothing() {
    let mut limit = RateLimit::new(1, 5);
    assert_eq!(limit.admit(10_000), Admit::Write { suppressed: 0 });
    assert_eq!(limit.admit(0), Admit::Drop);
    assert_eq!(
        limit.admit(10_100),
        Admit::Drop,
        "100 ms after the latest time seen"
    );
    assert_eq!(limit.admit(10_200), Admit::Write { suppressed: 2 });
}
