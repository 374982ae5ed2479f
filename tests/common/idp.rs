//! A stand-in identity provider: an HTTP/1.1 JWKS endpoint on 127.0.0.1 that counts requests
//! and can rotate keys, fail, send garbage or a huge body, answer slowly, hang, or hang up.
//! std only; one thread per connection; `Drop` stops it even while connections hang.

use std::io::{Read, Write};
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
    /// Reads the request and never answers (until the server stops).
    Hang,
    /// Reads the request and closes the connection without a response.
    Close,
    /// Sends a 200's headers announcing `body`'s length, then half of `body`, then closes:
    /// the response is reset after it started.
    HeadersThenClose { body: String },
}

struct State {
    mode: Mutex<Mode>,
    /// The OpenID configuration served at `/.well-known/openid-configuration`, if any.
    discovery: Mutex<Option<String>>,
    discovery_requests: AtomicUsize,
    requests: AtomicUsize,
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
            stop: AtomicBool::new(false),
        });
        let accept_state = Arc::clone(&state);
        let accept = thread::spawn(move || {
            while !accept_state.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let state = Arc::clone(&accept_state);
                        thread::spawn(move || serve(stream, &state));
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

    /// Serves `document` (an OpenID configuration) at `/.well-known/openid-configuration`.
    pub fn set_discovery(&self, document: Option<String>) {
        *self.state.discovery.lock().expect("discovery lock") = document;
    }

    /// Requests for the OpenID configuration so far (not counted in `requests`).
    pub fn discovery_requests(&self) -> usize {
        self.state.discovery_requests.load(Ordering::SeqCst)
    }

    /// JWKS requests received so far (counted when the request has been read).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().expect("mode lock") = mode;
    }

    /// Serves a new key set (the identity provider rotated its keys).
    pub fn rotate(&self, jwks: &str) {
        self.set_mode(Mode::Serve {
            body: jwks.to_owned(),
            max_age: None,
        });
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

fn serve(mut stream: TcpStream, state: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
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
    if path.ends_with("/.well-known/openid-configuration") {
        let document = state.discovery.lock().expect("discovery lock").clone();
        if let Some(document) = document {
            state.discovery_requests.fetch_add(1, Ordering::SeqCst);
            return respond(
                &mut stream,
                200,
                "application/json",
                "",
                document.as_bytes(),
            );
        }
    }
    state.requests.fetch_add(1, Ordering::SeqCst);
    let mut mode = state.mode.lock().expect("mode lock").clone();
    loop {
        match mode {
            Mode::Slow { delay, then } => {
                sleep_unless_stopped(state, delay);
                mode = *then;
            }
            Mode::Hang => {
                sleep_unless_stopped(state, Duration::from_secs(3600));
                return;
            }
            Mode::Close => return,
            Mode::HeadersThenClose { body } => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body.as_bytes()[..body.len() / 2]);
                let _ = stream.flush();
                return;
            }
            Mode::Serve { body, max_age } => {
                let cache = max_age
                    .map(|s| format!("cache-control: max-age={s}\r\n"))
                    .unwrap_or_default();
                return respond(
                    &mut stream,
                    200,
                    "application/json",
                    &cache,
                    body.as_bytes(),
                );
            }
            Mode::Status(code) => {
                return respond(
                    &mut stream,
                    code,
                    "text/plain",
                    "",
                    b"identity provider error",
                )
            }
            Mode::Garbage => return respond(&mut stream, 200, "text/html", "", b"<html>oops"),
            Mode::Huge(size) => {
                let mut body = br#"{"keys":[],"pad":""#.to_vec();
                body.resize(size.saturating_sub(2), b'x');
                body.extend_from_slice(b"\"}");
                return respond(&mut stream, 200, "application/json", "", &body);
            }
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
