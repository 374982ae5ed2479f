//! A minimal HTTP/1.1 client over `std::net`, one request per connection (`connection: close`).
//!
//! Header names and values are raw bytes, so tests can send what a browser never would
//! (non-UTF-8 values, repeated `Authorization` headers, 20 kB tokens). Only what the tests need:
//! no TLS, no redirects, no keep-alive.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use super::upstream::Echo;

/// The `Host` sent unless a test sets its own; the WWW-Authenticate realm is built from it.
pub const DEFAULT_HOST: &str = "e2e.test";

/// Read and write timeout of one exchange.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One request to send. Build with `Request::get(path)` and the chained setters.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `OPTIONS`, ...
    pub method: String,
    /// The request target as sent (path and query), raw.
    pub target: Vec<u8>,
    /// Headers in order, raw. `host` and `connection` are added when sending if absent.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The body; `content-length` is added when it is non-empty.
    pub body: Vec<u8>,
}

impl Request {
    /// A request with `method` and `target`.
    pub fn new(method: &str, target: impl AsRef<[u8]>) -> Request {
        Request {
            method: method.to_string(),
            target: target.as_ref().to_vec(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `GET target`.
    pub fn get(target: impl AsRef<[u8]>) -> Request {
        Request::new("GET", target)
    }

    /// Adds a header (a repeated name adds a second line).
    pub fn header(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Request {
        self.headers
            .push((name.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Adds `authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Request {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Adds `cookie: <name>=<value>`.
    pub fn cookie(self, name: &str, value: &str) -> Request {
        self.header("cookie", format!("{name}={value}"))
    }

    /// Sets the `Host` header (replacing the default).
    pub fn host(mut self, host: &str) -> Request {
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(b"host"));
        self.headers
            .push((b"host".to_vec(), host.as_bytes().to_vec()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Request {
        self.body = body.as_ref().to_vec();
        self
    }

    /// The bytes put on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let has = |name: &[u8]| {
            self.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        if !has(b"host") {
            out.extend_from_slice(format!("host: {DEFAULT_HOST}\r\n").as_bytes());
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if !has(b"connection") {
            out.extend_from_slice(b"connection: close\r\n");
        }
        if !self.body.is_empty() && !has(b"content-length") {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// Sends to `127.0.0.1:port`; panics on I/O errors (with the request line).
    pub fn send(&self, port: u16) -> Response {
        match self.try_send(port) {
            Ok(resp) => resp,
            Err(e) => panic!(
                "{} {} to 127.0.0.1:{port} failed: {e}",
                self.method,
                String::from_utf8_lossy(&self.target)
            ),
        }
    }

    /// Sends to `127.0.0.1:port`.
    pub fn try_send(&self, port: u16) -> std::io::Result<Response> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.write_all(&self.to_bytes())?;
        // Read until the response is complete rather than until EOF: after a local reply Envoy
        // waits up to its delayed-close timeout (1 s) for the client to close first.
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            if response_complete(&raw, &self.method) {
                break;
            }
        }
        Response::parse(&raw)
    }
}

/// A parsed response.
#[derive(Clone, Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding removed).
    pub body: Vec<u8>,
}

impl Response {
    /// Parses a complete HTTP/1.1 response (read until the server closed).
    pub fn parse(raw: &[u8]) -> std::io::Result<Response> {
        let bad = |msg: &str| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{msg}: {:?}",
                    String::from_utf8_lossy(&raw[..raw.len().min(300)])
                ),
            )
        };
        let head_end = find(raw, b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
        let head = String::from_utf8_lossy(&raw[..head_end]);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let rest = &raw[head_end + 4..];
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let body = if chunked {
            dechunk(rest).ok_or_else(|| bad("bad chunked body"))?
        } else if let Some(len) = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
        {
            rest[..len.min(rest.len())].to_vec()
        } else {
            rest.to_vec()
        };
        Ok(Response {
            status,
            headers,
            body,
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

    /// The body as (lossy) text.
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// What the echo upstream saw, if this response came from it (a 200 through the proxy).
    pub fn echo(&self) -> Option<Echo> {
        self.header("x-echo-upstream")?;
        Echo::from_json(&self.body)
    }

    /// Like `echo`, but panics with the response if it did not come from the upstream.
    pub fn upstream(&self) -> Echo {
        match self.echo() {
            Some(echo) => echo,
            None => panic!("response did not come from the echo upstream: {self}"),
        }
    }

    /// Panics if any of `headers` reached the upstream (identity a client may have forged).
    pub fn assert_upstream_lacks(&self, headers: &[&str]) {
        let echo = self.upstream();
        for h in headers {
            assert!(
                !echo.has(h),
                "upstream got {h}: {:?}\n{self}",
                echo.header(h)
            );
        }
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?} body={:?}",
            self.status,
            self.headers,
            self.body_str()
        )
    }
}

/// Whether `raw` holds a whole response (headers plus the body they announce).
fn response_complete(raw: &[u8], method: &str) -> bool {
    let Some(head_end) = find(raw, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let body = &raw[head_end + 4..];
    let status_has_no_body = head
        .split(' ')
        .nth(1)
        .is_some_and(|s| s == "204" || s == "304");
    if method == "HEAD" || status_has_no_body {
        return true;
    }
    let header = |name: &str| {
        head.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    if header("transfer-encoding").is_some_and(|v| v == "chunked") {
        return body.ends_with(b"0\r\n\r\n") && dechunk(body).is_some();
    }
    match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => body.len() >= len,
        None => false,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a chunked body; `None` if it is malformed.
pub fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
