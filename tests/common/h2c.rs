//! A minimal HTTP/2 client over cleartext TCP with prior knowledge ("h2c"), one request per
//! connection, blocking: the HTTP/2 counterpart of [`super::http`], taking the same `Request`
//! and giving the same `Response`.
//!
//! Why it exists: Envoy's HTTP/1 codec refuses bytes >= 0x80 in the request target (400), but
//! its HTTP/2 codec forwards them in `:path` to the filters, and it forwards `:method` as sent
//! (`delete`). Tests of what a filter does with such requests need HTTP/2.
//!
//! How: the request frames are written by hand (connection preface, SETTINGS, one HEADERS
//! block split into CONTINUATION frames when large, DATA for a body), because `h2`/`http`
//! validate every pseudo-header (`http::uri` refuses a `:path` that is not UTF-8, `Method`
//! refuses bytes outside a token), and sending such bytes is the point. The header block uses
//! only HPACK "literal without indexing, new name" with no Huffman coding (RFC 7541 §6.2.2),
//! which every decoder must accept. The response is read with hyperium `h2`'s own frame codec
//! (`h2::Codec`, feature `unstable`): its HPACK decoder (Huffman, dynamic table) and framing, so
//! there is no hand-written decoder to trust.
//!
//! `Request` mapping: `method` → `:method`, `target` → `:path`, a `host` header → `:authority`
//! (else `DEFAULT_HOST`), `:scheme` is `http`. A header whose name starts with `:` replaces that
//! pseudo-header (or adds one); with the value `OMIT` the pseudo-header is not sent at all.
//! Names are lower-cased (HTTP/2 requires it). Connection-specific headers (`connection`,
//! `keep-alive`, `transfer-encoding`, `upgrade`, `proxy-connection`) are not sent.

use std::future::poll_fn;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use h2::frame::{Frame, Settings};
use h2::Codec;

use super::http::{Request, Response, DEFAULT_HOST};

/// Read and write timeout of one exchange.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A pseudo-header value that means "do not send this pseudo-header".
pub const OMIT: &str = "\u{0}omit";

/// The largest frame payload every peer accepts (SETTINGS_MAX_FRAME_SIZE's initial value).
const MAX_FRAME: usize = 16_384;

/// Headers HTTP/2 forbids (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: &[&[u8]] = &[
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"upgrade",
    b"proxy-connection",
    b"host",
];

/// Sends `req` to `127.0.0.1:port` over h2c; panics on I/O errors (with the request line).
pub fn send(port: u16, req: &Request) -> Response {
    match try_send(port, req) {
        Ok(resp) => resp,
        Err(e) => panic!(
            "h2c {} {} to 127.0.0.1:{port} failed: {e}",
            req.method,
            String::from_utf8_lossy(&req.target)
        ),
    }
}

/// Sends `req` to `127.0.0.1:port` over h2c. A stream reset or GOAWAY before the response is
/// an `Err` (Envoy refused the request at the protocol level).
pub fn try_send(port: u16, req: &Request) -> io::Result<Response> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    stream.write_all(&request_bytes(req))?;
    stream.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::from_std(stream)?;
        match tokio::time::timeout(IO_TIMEOUT, read_response(stream)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete response in time",
            )),
        }
    })
}

/// The pseudo-headers and headers of `req`, in the order they are sent.
pub fn fields(req: &Request) -> Vec<(Vec<u8>, Vec<u8>)> {
    let host = req
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"host"))
        .map_or(DEFAULT_HOST.as_bytes().to_vec(), |(_, v)| v.clone());
    let mut pseudo: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b":method".to_vec(), req.method.as_bytes().to_vec()),
        (b":scheme".to_vec(), b"http".to_vec()),
        (b":authority".to_vec(), host),
        (b":path".to_vec(), req.target.clone()),
    ];
    for (name, value) in req.headers.iter().filter(|(n, _)| n.starts_with(b":")) {
        let name = name.to_ascii_lowercase();
        match pseudo.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value.clone(),
            None => pseudo.push((name, value.clone())),
        }
    }
    pseudo.retain(|(_, v)| v != OMIT.as_bytes());
    let regular = req
        .headers
        .iter()
        .filter(|(n, _)| !n.starts_with(b":"))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| !CONNECTION_SPECIFIC.contains(&n.as_slice()));
    pseudo.into_iter().chain(regular).collect()
}

/// Preface, SETTINGS (no push, large windows), the HEADERS block, DATA.
fn request_bytes(req: &Request) -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS_ENABLE_PUSH = 0, SETTINGS_INITIAL_WINDOW_SIZE = 2^31 - 1.
    let mut settings = Vec::new();
    settings.extend_from_slice(&[0, 2, 0, 0, 0, 0]);
    settings.extend_from_slice(&[0, 4, 0x7f, 0xff, 0xff, 0xff]);
    frame(&mut out, 0x4, 0, 0, &settings);
    // The connection window too (it starts at 65535 whatever SETTINGS say).
    frame(
        &mut out,
        0x8,
        0,
        0,
        &(0x7fff_ffffu32 - 65_535).to_be_bytes(),
    );
    let mut block = Vec::new();
    for (name, value) in fields(req) {
        block.push(0x00); // literal without indexing, new name
        string(&mut block, &name);
        string(&mut block, &value);
    }
    let end_stream = if req.body.is_empty() { 0x1 } else { 0 };
    let chunks: Vec<&[u8]> = if block.is_empty() {
        vec![&[]]
    } else {
        block.chunks(MAX_FRAME).collect()
    };
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let end_headers = if i == last { 0x4 } else { 0 };
        let (kind, flags) = if i == 0 {
            (0x1, end_stream | end_headers)
        } else {
            (0x9, end_headers)
        };
        frame(&mut out, kind, flags, 1, chunk);
    }
    if !req.body.is_empty() {
        let chunks: Vec<&[u8]> = req.body.chunks(MAX_FRAME).collect();
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            frame(&mut out, 0x0, if i == last { 0x1 } else { 0 }, 1, chunk);
        }
    }
    out
}

/// One frame: 24-bit length, type, flags, 31-bit stream id, payload.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK string literal without Huffman coding: 7-bit-prefix length, then the bytes.
fn string(out: &mut Vec<u8>, s: &[u8]) {
    integer(out, s.len(), 7, 0x00);
    out.extend_from_slice(s);
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1); `high` holds the bits above it.
fn integer(out: &mut Vec<u8>, mut value: usize, n: u32, high: u8) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// Reads frames until stream 1 ends: status and headers from HEADERS, the body from DATA.
async fn read_response(stream: tokio::net::TcpStream) -> io::Result<Response> {
    let mut codec: Codec<tokio::net::TcpStream, Bytes> = Codec::new(stream);
    let mut status: Option<u16> = None;
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    let protocol = |what: String| io::Error::new(io::ErrorKind::ConnectionAborted, what);
    loop {
        let next = poll_fn(|cx| Pin::new(&mut codec).poll_next(cx)).await;
        let frame = match next {
            None => {
                return Err(protocol(
                    "connection closed before the response ended".into(),
                ))
            }
            Some(Err(e)) => return Err(protocol(format!("HTTP/2 error: {e}"))),
            Some(Ok(frame)) => frame,
        };
        match frame {
            Frame::Settings(s) if !s.is_ack() => {
                codec
                    .buffer(Settings::ack().into())
                    .map_err(|e| protocol(format!("SETTINGS ack: {e:?}")))?;
                poll_fn(|cx| codec.flush(cx)).await?;
            }
            Frame::Headers(h) => {
                let end = h.is_end_stream();
                let (pseudo, fields) = h.into_parts();
                match pseudo.status.map(|s| s.as_u16()) {
                    // Informational responses (100 Continue) come before the real one.
                    Some(s) if (100..200).contains(&s) => continue,
                    Some(s) => status = Some(s),
                    None => {} // trailers
                }
                for (name, value) in &fields {
                    headers.push((
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    ));
                }
                if end {
                    break;
                }
            }
            Frame::Data(d) => {
                let end = d.is_end_stream();
                body.extend_from_slice(d.payload());
                if end {
                    break;
                }
            }
            Frame::Reset(r) => return Err(protocol(format!("stream reset: {:?}", r.reason()))),
            Frame::GoAway(g) => return Err(protocol(format!("GOAWAY: {:?}", g.reason()))),
            _ => {}
        }
    }
    let status = status.ok_or_else(|| protocol("no :status".into()))?;
    Ok(Response {
        status,
        headers,
        body,
    })
}
