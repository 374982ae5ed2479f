//! The echo upstream: an HTTP/1.1 server on `127.0.0.1:0` (std threads) that answers every
//! request with 200 and a JSON body describing exactly what reached it:
//!
//! ```json
//! {"method":"GET","target":"/p1?x=1","headers":[["host","e2e.test"],["x-jwt-sub","alice"]],"body":""}
//! ```
//!
//! Header names are lowercased, values are lossy UTF-8 strings, order and repeats are kept. The
//! response carries `x-echo-upstream: 1`, so a test can tell an upstream answer from a local
//! reply of a filter. Paths registered with `Upstream::serve` get a fixed body instead (for a
//! JWKS endpoint). Connections are kept alive, as Envoy's connection pool expects.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

/// A running echo server; the thread lives until the test process ends.
pub struct Upstream {
    port: u16,
}

impl Upstream {
    /// Starts an echo server.
    pub fn start() -> Upstream {
        Upstream::serve(BTreeMap::new())
    }

    /// Starts an echo server that answers the paths in `fixed` (exact request target) with 200,
    /// `content-type: application/json` and the given body instead of echoing.
    pub fn serve(fixed: BTreeMap<String, String>) -> Upstream {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("echo upstream: bind 127.0.0.1:0: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let fixed = Arc::new(fixed);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let fixed = Arc::clone(&fixed);
                std::thread::spawn(move || serve_connection(stream, &fixed));
            }
        });
        Upstream { port }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Serves requests on one connection until the peer closes it or sends garbage.
fn serve_connection(stream: TcpStream, fixed: &BTreeMap<String, String>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = stream.set_nodelay(true);
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        let (body, close) = match fixed.get(&request.target) {
            Some(fixed_body) => (fixed_body.clone().into_bytes(), request.close),
            None => (request.to_json().to_string().into_bytes(), request.close),
        };
        let mut head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-echo-upstream: 1\r\n",
            body.len()
        );
        if close {
            head.push_str("connection: close\r\n");
        }
        head.push_str("\r\n");
        // One write: head and body in two segments would meet Nagle + delayed ACK (40 ms).
        let mut response = head.into_bytes();
        response.extend_from_slice(&body);
        if writer.write_all(&response).is_err() {
            return;
        }
        if close {
            return;
        }
    }
}

struct RawRequest {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    close: bool,
}

impl RawRequest {
    fn to_json(&self) -> Value {
        let headers: Vec<Value> = self.headers.iter().map(|(n, v)| json!([n, v])).collect();
        json!({
            "method": self.method,
            "target": self.target,
            "headers": headers,
            "body": String::from_utf8_lossy(&self.body),
        })
    }
}

fn read_line(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    let n = reader.read_until(b'\n', &mut line).ok()?;
    if n == 0 {
        return None;
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Some(line)
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<RawRequest> {
    let request_line = String::from_utf8_lossy(&read_line(reader)?).into_owned();
    let mut parts = request_line.split(' ');
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        let colon = line.iter().position(|b| *b == b':')?;
        let name = String::from_utf8_lossy(&line[..colon]).to_ascii_lowercase();
        let value = String::from_utf8_lossy(line[colon + 1..].trim_ascii()).into_owned();
        headers.push((name, value));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let close = get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let size_line = String::from_utf8_lossy(&read_line(reader)?).into_owned();
            let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                // Trailers, then the empty line.
                while !read_line(reader)?.is_empty() {}
                break;
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk);
            read_line(reader)?;
        }
    } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body = vec![0; len];
        reader.read_exact(&mut body).ok()?;
    }
    Some(RawRequest {
        method,
        target,
        headers,
        body,
        close,
    })
}

/// What reached the upstream, parsed from the echo body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Echo {
    /// The request method.
    pub method: String,
    /// The request target (path and query) as the upstream received it.
    pub target: String,
    /// All headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, lossy UTF-8.
    pub body: String,
}

impl Echo {
    /// Parses an echo body; `None` if it is not one.
    pub fn from_json(body: &[u8]) -> Option<Echo> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let headers = v["headers"]
            .as_array()?
            .iter()
            .filter_map(|pair| Some((pair[0].as_str()?.to_string(), pair[1].as_str()?.to_string())))
            .collect();
        Some(Echo {
            method: v["method"].as_str()?.to_string(),
            target: v["target"].as_str()?.to_string(),
            headers,
            body: v["body"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).first().copied()
    }

    /// Every value of header `name` (lowercase).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        super::header_values(&self.headers, name)
    }

    /// Whether header `name` reached the upstream.
    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}
