//! A stand-in identity provider: a JWKS endpoint (and, when set, an OpenID discovery document)
//! on 127.0.0.1 that counts requests and can rotate keys, fail, send garbage or a huge body,
//! answer slowly, hang, hang up, or break a response after its headers in every way a response
//! can break ([`Break`]).
//!
//! It speaks HTTP/1.1 and, on the same port, HTTP/2 with prior knowledge (h2c): each connection
//! is sniffed for the HTTP/2 preface, so the Envoy cluster decides the protocol
//! (`bootstrap::with_cluster` or `bootstrap::with_h2c_cluster`). HTTP/1.1 is std only, one
//! thread per connection; an HTTP/2 connection gets a thread with a current-thread tokio runtime
//! driving hyperium's `h2` server, one task per stream. `Drop` stops it even while connections
//! hang.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::mint;

/// How the endpoint answers.
#[derive(Clone, Debug)]
pub enum Mode {
    /// 200 with `body` as JSON, and `Cache-Control: max-age=N` when set.
    Serve { body: String, max_age: Option<u64> },
    /// This status with a short text body.
    Status(u16),
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with a JSON-looking body of this many bytes.
    Huge(usize),
    /// Waits, then answers as `then`.
    Slow { delay: Duration, then: Box<Mode> },
    /// Reads the request and never answers (until the client gives up or the server stops).
    Hang,
    /// Reads the request and closes the connection without a response (HTTP/2: the whole
    /// connection).
    Close,
    /// Starts a 200 with a JSON body (the fixture JWKS) and breaks it after the headers.
    Broken(Break),
}

/// The ways a response can break after it started. Envoy hands each to the filter as a call
/// with no response (`num_headers == 0`, ENVOY-WASM-FACTS §3.2), never as a short body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Break {
    /// The headers, announcing a body by `content-length`, then the connection closes before
    /// any of it (HTTP/2: the TCP connection closes, as when the IdP's process dies).
    HeadersThenClose,
    /// The headers, then silence until the client gives up (past `http_uri.timeout`).
    HeadersThenStall,
    /// The headers and half the body `content-length` announced, then the connection closes.
    TruncatedBody,
    /// `transfer-encoding: chunked`, cut in the middle of a chunk, then the connection closes.
    /// HTTP/2 has no chunks: half the body with no length announced, then the connection
    /// closes.
    ChunkedCut,
    /// The headers and half the body, then a reset: `RST_STREAM` (INTERNAL_ERROR) on HTTP/2, a
    /// TCP RST on HTTP/1.1.
    Reset,
}

impl Break {
    /// Every way, for tables and the soak's rotation.
    pub const ALL: [Break; 5] = [
        Break::HeadersThenClose,
        Break::HeadersThenStall,
        Break::TruncatedBody,
        Break::ChunkedCut,
        Break::Reset,
    ];

    /// A short name for test rows and provider names (`[a-z_]`).
    pub fn name(self) -> &'static str {
        match self {
            Break::HeadersThenClose => "headers_then_close",
            Break::HeadersThenStall => "headers_then_stall",
            Break::TruncatedBody => "truncated_body",
            Break::ChunkedCut => "chunked_cut",
            Break::Reset => "reset",
        }
    }
}

/// How long the IdP waits after writing the start of a broken response before breaking it, so
/// that the client has read the headers (a reset before the headers is a different fault:
/// Envoy answers a synthetic 503 for it). Generous: the machine is loaded.
const BREAK_AFTER: Duration = Duration::from_millis(150);

struct State {
    mode: Mutex<Mode>,
    /// How `/.well-known/openid-configuration` answers, if it exists; else it is a JWKS
    /// request like any other path.
    discovery: Mutex<Option<Mode>>,
    discovery_requests: AtomicUsize,
    requests: AtomicUsize,
    /// When the last JWKS answer was ready to be written (after any `Mode::Slow` delay).
    answered_at: Mutex<Option<Instant>>,
    h2_connections: AtomicUsize,
    stop: AtomicBool,
}

/// The running endpoint.
pub struct Idp {
    port: u16,
    state: Arc<State>,
    accept: Option<thread::JoinHandle<()>>,
}

impl Idp {
    /// Serves `jwks` (no `Cache-Control`).
    pub fn serving(jwks: &str) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the JWKS server");
        listener.set_nonblocking(true).expect("nonblocking accept");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(State {
            mode: Mutex::new(Mode::Serve {
                body: jwks.to_owned(),
                max_age: None,
            }),
            discovery: Mutex::new(None),
            discovery_requests: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            answered_at: Mutex::new(None),
            h2_connections: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let accept_state = Arc::clone(&state);
        let accept = thread::spawn(move || {
            while !accept_state.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let state = Arc::clone(&accept_state);
                        thread::spawn(move || serve(stream, state));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Idp {
            port,
            state,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves `document` (an OpenID configuration) at `/.well-known/openid-configuration`;
    /// `None`: that path is a JWKS request like any other.
    pub fn set_discovery(&self, document: Option<String>) {
        self.set_discovery_mode(document.map(|body| Mode::Serve {
            body,
            max_age: None,
        }));
    }

    /// How `/.well-known/openid-configuration` answers (`None`: as a JWKS request).
    pub fn set_discovery_mode(&self, mode: Option<Mode>) {
        *self.state.discovery.lock().expect("discovery lock") = mode;
    }

    /// Requests for the OpenID configuration so far (not counted in `requests`).
    pub fn discovery_requests(&self) -> usize {
        self.state.discovery_requests.load(Ordering::SeqCst)
    }

    /// JWKS requests received so far (counted when the request has been read).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// When the last JWKS answer was ready to be written (after its `Mode::Slow` delay).
    pub fn answered_at(&self) -> Option<Instant> {
        *self.state.answered_at.lock().expect("answered_at lock")
    }

    /// HTTP/2 connections accepted so far (the client spoke h2c).
    pub fn h2_connections(&self) -> usize {
        self.state.h2_connections.load(Ordering::SeqCst)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().expect("mode lock") = mode;
    }

    /// Serves `body` from now on (no `Cache-Control`): a new revocation list, say.
    pub fn serve(&self, body: &str) {
        self.set_mode(Mode::Serve {
            body: body.to_owned(),
            max_age: None,
        });
    }

    /// Serves a new key set (the identity provider rotated its keys).
    pub fn rotate(&self, jwks: &str) {
        self.serve(jwks);
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// The fixture JWKS with only the keys whose kid is listed.
pub fn jwks_only(kids: &[&str]) -> String {
    let mut doc: Value = serde_json::from_str(mint::JWKS).expect("fixture JWKS");
    if let Some(keys) = doc["keys"].as_array_mut() {
        keys.retain(|k| k["kid"].as_str().is_some_and(|kid| kids.contains(&kid)));
    }
    doc.to_string()
}

/// What one request gets, once `Slow` delays have passed.
enum Answer {
    Full {
        status: u16,
        content_type: &'static str,
        max_age: Option<u64>,
        body: Vec<u8>,
    },
    Hang,
    Close,
    Broken(Break),
}

/// Counts the request for `path` and picks its answer (sleeping through `Slow`).
fn answer(state: &State, path: &str) -> Answer {
    let discovery = path
        .ends_with("/.well-known/openid-configuration")
        .then(|| state.discovery.lock().expect("discovery lock").clone())
        .flatten();
    let mut mode = match discovery {
        Some(mode) => {
            state.discovery_requests.fetch_add(1, Ordering::SeqCst);
            mode
        }
        None => {
            state.requests.fetch_add(1, Ordering::SeqCst);
            state.mode.lock().expect("mode lock").clone()
        }
    };
    while let Mode::Slow { delay, then } = mode {
        sleep_unless_stopped(state, delay);
        mode = *then;
    }
    if !path.ends_with("/.well-known/openid-configuration") {
        *state.answered_at.lock().expect("answered_at lock") = Some(Instant::now());
    }
    match mode {
        // `Slow` was unwound above.
        Mode::Slow { .. } | Mode::Hang => Answer::Hang,
        Mode::Close => Answer::Close,
        Mode::Broken(how) => Answer::Broken(how),
        Mode::Serve { body, max_age } => Answer::Full {
            status: 200,
            content_type: "application/json",
            max_age,
            body: body.into_bytes(),
        },
        Mode::Status(code) => Answer::Full {
            status: code,
            content_type: "text/plain",
            max_age: None,
            body: b"identity provider error".to_vec(),
        },
        Mode::Garbage => Answer::Full {
            status: 200,
            content_type: "text/html",
            max_age: None,
            body: b"<html>oops".to_vec(),
        },
        Mode::Huge(size) => {
            let mut body = br#"{"keys":[],"pad":""#.to_vec();
            body.resize(size.saturating_sub(2), b'x');
            body.extend_from_slice(b"\"}");
            Answer::Full {
                status: 200,
                content_type: "application/json",
                max_age: None,
                body,
            }
        }
    }
}

/// The body a broken response starts to send.
fn broken_body() -> &'static [u8] {
    mint::JWKS.as_bytes()
}

fn serve(stream: TcpStream, state: Arc<State>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    // The HTTP/2 connection preface starts with "PRI"; no HTTP/1.1 method does.
    let mut first = [0u8; 3];
    let sniffed = loop {
        match stream.peek(&mut first) {
            Ok(n) if n >= first.len() => break true,
            Ok(0) | Err(_) => break false,
            Ok(_) => thread::sleep(Duration::from_millis(1)),
        }
    };
    if !sniffed {
        return;
    }
    if &first == b"PRI" {
        state.h2_connections.fetch_add(1, Ordering::SeqCst);
        h2c::serve(stream, state);
    } else {
        serve_http1(stream, &state);
    }
}

fn serve_http1(mut stream: TcpStream, state: &State) {
    // One request per connection; read up to the end of the headers.
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&request);
    let path = line.split(' ').nth(1).unwrap_or("");
    match answer(state, path) {
        Answer::Full {
            status,
            content_type,
            max_age,
            body,
        } => {
            let cache = max_age
                .map(|s| format!("cache-control: max-age={s}\r\n"))
                .unwrap_or_default();
            respond(&mut stream, status, content_type, &cache, &body);
        }
        Answer::Hang => wait_for_client_to_leave(&mut stream, state),
        Answer::Close => {}
        Answer::Broken(how) => break_http1(stream, state, how),
    }
}

fn break_http1(mut stream: TcpStream, state: &State, how: Break) {
    let body = broken_body();
    let half = &body[..body.len() / 2];
    let length = format!("content-length: {}\r\n", body.len());
    let (framing, sent): (&str, Vec<u8>) = match how {
        Break::HeadersThenClose | Break::HeadersThenStall => (&length, Vec::new()),
        Break::TruncatedBody | Break::Reset => (&length, half.to_vec()),
        // One chunk announced with the whole body's size; half of it follows.
        Break::ChunkedCut => (
            "transfer-encoding: chunked\r\n",
            [format!("{:x}\r\n", body.len()).as_bytes(), half].concat(),
        ),
    };
    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{framing}\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&sent);
    let _ = stream.flush();
    match how {
        Break::HeadersThenStall => wait_for_client_to_leave(&mut stream, state),
        Break::Reset => {
            thread::sleep(BREAK_AFTER);
            // SO_LINGER 0: closing sends RST instead of FIN. The socket is blocking, which
            // does not matter here: it is only configured and closed.
            let socket = tokio::net::TcpSocket::from_std_stream(stream);
            let _ = socket.set_zero_linger();
        }
        Break::HeadersThenClose | Break::TruncatedBody | Break::ChunkedCut => {
            thread::sleep(BREAK_AFTER);
        }
    }
}

/// Returns once the client has closed the connection (it gave up), or the server stops.
fn wait_for_client_to_leave(stream: &mut TcpStream, state: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let end = Instant::now() + Duration::from_secs(3600);
    let mut buf = [0u8; 256];
    while Instant::now() < end && !state.stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn sleep_unless_stopped(state: &State, total: Duration) {
    let end = Instant::now() + total;
    while Instant::now() < end && !state.stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(10));
    }
}

fn respond(stream: &mut TcpStream, status: u16, content_type: &str, extra: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// The HTTP/2 side: `h2`'s server on one connection, a task per stream. A stream that breaks
/// the whole connection (`Close`, and the breaks that close it) raises `kill`; the connection
/// loop then drops the TCP connection without a GOAWAY, as a dying process would.
mod h2c {
    use std::future::poll_fn;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::task::Poll;
    use std::time::Duration;

    use bytes::Bytes;
    use h2::server::SendResponse;
    use h2::Reason;

    use super::{answer, broken_body, Answer, Break, State, BREAK_AFTER};

    /// How often the loops look at `stop` and `kill`.
    const POLL: Duration = Duration::from_millis(20);

    pub(super) fn serve(stream: std::net::TcpStream, state: Arc<State>) {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            if stream.set_nonblocking(true).is_err() {
                return;
            }
            let Ok(tcp) = tokio::net::TcpStream::from_std(stream) else {
                return;
            };
            let Ok(mut conn) = h2::server::handshake(tcp).await else {
                return;
            };
            let kill = Arc::new(AtomicBool::new(false));
            // `accept` also drives the connection: frames the stream tasks queue go out here.
            while !state.stop.load(Ordering::SeqCst) && !kill.load(Ordering::SeqCst) {
                match tokio::time::timeout(POLL, conn.accept()).await {
                    Err(_) => {}
                    Ok(Some(Ok((request, respond)))) => {
                        let path = request.uri().path().to_owned();
                        tokio::spawn(stream_task(
                            Arc::clone(&state),
                            Arc::clone(&kill),
                            path,
                            respond,
                        ));
                    }
                    Ok(None | Some(Err(_))) => break,
                }
            }
            // Dropping `conn` closes the TCP connection.
        });
    }

    async fn stream_task(
        state: Arc<State>,
        kill: Arc<AtomicBool>,
        path: String,
        mut respond: SendResponse<Bytes>,
    ) {
        // `answer` sleeps through `Mode::Slow`: not on the connection's thread.
        let picked = {
            let state = Arc::clone(&state);
            tokio::task::spawn_blocking(move || answer(&state, &path)).await
        };
        let Ok(picked) = picked else { return };
        let how = match picked {
            Answer::Full {
                status,
                content_type,
                max_age,
                body,
            } => {
                let mut head = http::Response::builder()
                    .status(status)
                    .header("content-type", content_type)
                    .header("content-length", body.len());
                if let Some(seconds) = max_age {
                    head = head.header("cache-control", format!("max-age={seconds}"));
                }
                let Ok(head) = head.body(()) else { return };
                if let Ok(mut send) = respond.send_response(head, body.is_empty()) {
                    if !body.is_empty() {
                        let _ = send.send_data(Bytes::from(body), true);
                    }
                }
                return;
            }
            Answer::Hang => {
                until_reset(&state, |cx| respond.poll_reset(cx)).await;
                return;
            }
            Answer::Close => {
                kill.store(true, Ordering::SeqCst);
                return;
            }
            Answer::Broken(how) => how,
        };
        let body = broken_body();
        let mut head = http::Response::builder()
            .status(200)
            .header("content-type", "application/json");
        if how != Break::ChunkedCut {
            head = head.header("content-length", body.len());
        }
        let Ok(head) = head.body(()) else { return };
        let Ok(mut send) = respond.send_response(head, false) else {
            return;
        };
        if matches!(how, Break::TruncatedBody | Break::ChunkedCut | Break::Reset) {
            let half = Bytes::from_static(&body[..body.len() / 2]);
            let _ = send.send_data(half, false);
        }
        if how == Break::HeadersThenStall {
            until_reset(&state, |cx| send.poll_reset(cx)).await;
            return;
        }
        // Let the connection loop write what is queued before breaking it.
        tokio::time::sleep(BREAK_AFTER).await;
        match how {
            Break::Reset => send.send_reset(Reason::INTERNAL_ERROR),
            _ => kill.store(true, Ordering::SeqCst),
        }
    }

    /// Waits until the client resets the stream (it gave up), the connection ends, or the
    /// server stops.
    async fn until_reset<F>(state: &State, mut poll_reset: F)
    where
        F: FnMut(&mut std::task::Context<'_>) -> Poll<Result<Reason, h2::Error>>,
    {
        while !state.stop.load(Ordering::SeqCst) {
            let reset = poll_fn(&mut poll_reset);
            if tokio::time::timeout(POLL, reset).await.is_ok() {
                return;
            }
        }
    }
}
