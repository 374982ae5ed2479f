//! Tokens from headers, query parameters and cookies, per a provider's `Location`s.
//!
//! Mirrors `jwt_authn`'s extractor: a header with a `value_prefix` yields what follows the
//! prefix, trimmed; without a prefix, the whole value. A query parameter or cookie yields its
//! value. What it adds, so that the token verified is the token the upstream reads:
//! - a header value that is not UTF-8, or that carries several tokens (Envoy joins repeated
//!   `Authorization` headers with a comma), is an error for that location;
//! - a token cookie or query parameter that occurs more than once is an error
//!   (`RepeatedTokenLocation`): cookies are never removed, and many frameworks read the last
//!   copy where Envoy reads the first;
//! - a token cookie or query parameter whose value does not decode (bad percent-encoding, not
//!   UTF-8) is an error (`UndecodableToken`), never skipped as if it were absent.
//!
//! Everything is read from the bytes that arrived: a `:path` or `cookie` header with bytes that
//! are not UTF-8 elsewhere (another parameter, another cookie) still yields its token.

use std::borrow::Cow;

use crate::error::AuthError;
use crate::request::RequestHeaders;

/// Where a provider looks for tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A request header (lower-cased name); the token follows `value_prefix` when one is set.
    Header { name: String, value_prefix: String },
    /// A query parameter.
    Param(String),
    /// A cookie.
    Cookie(String),
}

/// A token found at a location. `token` is `Err` when the location held something that cannot
/// be a single token. A token in a header is borrowed from the request (nothing is copied);
/// one that had to be decoded (a query parameter) is owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'c, 'h> {
    pub location: &'c Location,
    pub token: Result<Cow<'h, str>, AuthError>,
}

/// Every token at `locations`, in location order. Identical tokens found twice (at two
/// different locations) are kept once.
pub fn extract<'c, 'h>(
    headers: &'h RequestHeaders,
    locations: &'c [Location],
) -> Vec<Found<'c, 'h>> {
    let mut found: Vec<Found<'c, 'h>> = Vec::new();
    for location in locations {
        let mut add = |token: Result<Cow<'h, str>, AuthError>| {
            if !found.iter().any(|f| f.token == token) {
                found.push(Found { location, token });
            }
        };
        match location {
            // Every value of a repeated header is a token, as in Envoy.
            Location::Header { name, value_prefix } => headers
                .get_all(name)
                .filter_map(|value| from_header(value, value_prefix))
                .for_each(&mut add),
            Location::Param(name) => {
                if let Some(token) = query_param(headers.path_bytes().unwrap_or_default(), name) {
                    add(token.map(Cow::Owned));
                }
            }
            Location::Cookie(name) => {
                if let Some(token) = cookie(headers, name) {
                    add(token.map(Cow::Borrowed));
                }
            }
        }
    }
    found
}

/// The token in one header value, if the value has the prefix.
fn from_header<'h>(raw: &'h [u8], value_prefix: &str) -> Option<Result<Cow<'h, str>, AuthError>> {
    let Ok(value) = std::str::from_utf8(raw) else {
        return Some(Err(AuthError::BadFormat));
    };
    if value_prefix.is_empty() {
        let value = value.trim();
        return Some(if value.contains(',') {
            Err(AuthError::MultipleTokensInHeader)
        } else {
            Ok(Cow::Borrowed(value))
        });
    }
    // As Envoy: the token is everything after the prefix, spaces trimmed; trailing junk stays
    // part of it (and fails to parse). A comma means several tokens were joined into one value.
    // The usual case first (the value starts with the prefix): the same start as `find`'s.
    let start = if value.starts_with(value_prefix) {
        value_prefix.len()
    } else {
        value.find(value_prefix)? + value_prefix.len()
    };
    let token = value.get(start..)?.trim();
    if token.contains(',') {
        return Some(Err(AuthError::MultipleTokensInHeader));
    }
    if token.is_empty() {
        return Some(Err(AuthError::BadFormat));
    }
    Some(Ok(Cow::Borrowed(token)))
}

/// Query parameter `name` in `path` (bytes as sent), percent-decoded: `None` when absent;
/// `RepeatedTokenLocation` when it occurs more than once (however its values read);
/// `UndecodableToken` when its value does not decode to UTF-8. A parameter whose *name* does
/// not decode is not `name`, whatever it holds.
pub fn query_param(path: &[u8], name: &str) -> Option<Result<String, AuthError>> {
    let mut values = params(path)
        .filter(|(key, _)| percent_decode(key).as_deref() == Some(name.as_bytes()))
        .map(|(_, value)| value);
    let value = values.next()?;
    if values.next().is_some() {
        return Some(Err(AuthError::RepeatedTokenLocation));
    }
    Some(
        percent_decode(value)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(AuthError::UndecodableToken),
    )
}

/// The `key=value` pairs of the query of `path` (before any `#`).
fn params(path: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let query = path
        .iter()
        .position(|&b| b == b'?')
        .and_then(|i| path.get(i + 1..))
        .unwrap_or_default();
    let query = query.split(|&b| b == b'#').next().unwrap_or_default();
    query
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(i) => (
                pair.get(..i).unwrap_or_default(),
                pair.get(i + 1..).unwrap_or_default(),
            ),
            None => (pair, &[][..]),
        })
}

/// `path` without any `name=` query parameter (for removing a consumed token), as text: bytes
/// of the rest that are not UTF-8 are written percent-encoded (`%FF`), their RFC 3986 form;
/// everything else is kept as sent.
pub fn remove_query_param(path: &[u8], name: &str) -> String {
    let Some(q) = path.iter().position(|&b| b == b'?') else {
        return percent_encode_invalid(path);
    };
    let (base, rest) = (
        path.get(..q).unwrap_or_default(),
        path.get(q + 1..).unwrap_or_default(),
    );
    let (query, fragment) = match rest.iter().position(|&b| b == b'#') {
        Some(h) => (rest.get(..h).unwrap_or_default(), rest.get(h..)),
        None => (rest, None),
    };
    let kept: Vec<&[u8]> = query
        .split(|&b| b == b'&')
        .filter(|pair| {
            let key = pair.split(|&b| b == b'=').next().unwrap_or_default();
            percent_decode(key).as_deref() != Some(name.as_bytes())
        })
        .collect();
    let mut out = base.to_vec();
    if !kept.is_empty() {
        out.push(b'?');
        out.extend_from_slice(&kept.join(&b'&'));
    }
    if let Some(fragment) = fragment {
        out.extend_from_slice(fragment);
    }
    percent_encode_invalid(&out)
}

/// `bytes` as text, each byte of an invalid UTF-8 sequence as `%XX`.
fn percent_encode_invalid(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `application/x-www-form-urlencoded` decoding of bytes (`+` is a space); `None` for a `%`
/// not followed by two hex digits.
fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Cookie `name` across all `cookie` headers: `None` when absent; `RepeatedTokenLocation` when
/// it occurs more than once; `UndecodableToken` when its value is not UTF-8. Other cookies'
/// bytes do not matter.
fn cookie<'h>(headers: &'h RequestHeaders, name: &str) -> Option<Result<&'h str, AuthError>> {
    let mut values = headers
        .get_all("cookie")
        .flat_map(|v| v.split(|&b| b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            let key = pair.get(..eq)?.trim_ascii();
            (key == name.as_bytes()).then(|| pair.get(eq + 1..).unwrap_or_default())
        });
    let value = values.next()?;
    if values.next().is_some() {
        return Some(Err(AuthError::RepeatedTokenLocation));
    }
    let value = value.trim_ascii();
    let value = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value);
    Some(std::str::from_utf8(value).map_err(|_| AuthError::UndecodableToken))
}

#[cfg(test)]
mod tests;
