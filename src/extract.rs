//! Tokens from headers, query parameters and cookies, per a provider's `Location`s.
//!
//! Mirrors `jwt_authn`'s extractor: a header with a `value_prefix` yields what follows the
//! prefix, trimmed; without a prefix, the whole value. A query parameter
//! or cookie yields its (first) value. What it adds: a header value that is not UTF-8, or that
//! carries several tokens (Envoy joins repeated `Authorization` headers with a comma), is an
//! error for that location instead of a silently chosen token.

use crate::config::Location;
use crate::error::AuthError;
use crate::request::RequestHeaders;

/// A token found at a location. `token` is `Err` when the location held something that cannot
/// be a single token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'c> {
    pub location: &'c Location,
    pub token: Result<String, AuthError>,
}

/// Every token at `locations`, in location order. Identical tokens found twice are kept once.
pub fn extract<'c>(headers: &RequestHeaders, locations: &'c [Location]) -> Vec<Found<'c>> {
    let mut found: Vec<Found<'c>> = Vec::new();
    for location in locations {
        let mut add = |token: Result<String, AuthError>| {
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
            Location::Param(name) => query_param(headers.path(), name)
                .map(Ok)
                .into_iter()
                .for_each(add),
            Location::Cookie(name) => cookie(headers, name).map(Ok).into_iter().for_each(add),
        }
    }
    found
}

/// The token in one header value, if the value has the prefix.
fn from_header(raw: &[u8], value_prefix: &str) -> Option<Result<String, AuthError>> {
    let Ok(value) = std::str::from_utf8(raw) else {
        return Some(Err(AuthError::BadFormat));
    };
    if value_prefix.is_empty() {
        let value = value.trim();
        return Some(if value.contains(',') {
            Err(AuthError::MultipleTokensInHeader)
        } else {
            Ok(value.to_owned())
        });
    }
    // As Envoy: the token is everything after the prefix, spaces trimmed; trailing junk stays
    // part of it (and fails to parse). A comma means several tokens were joined into one value.
    let start = value.find(value_prefix)? + value_prefix.len();
    let token = value.get(start..)?.trim();
    if token.contains(',') {
        return Some(Err(AuthError::MultipleTokensInHeader));
    }
    if token.is_empty() {
        return Some(Err(AuthError::BadFormat));
    }
    Some(Ok(token.to_owned()))
}

/// The first value of query parameter `name` in `path`, percent-decoded.
pub fn query_param(path: &str, name: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key).as_deref() == Some(name))
            .then(|| percent_decode(value))
            .flatten()
    })
}

/// `path` without any `name=` query parameter (for removing a consumed token).
pub fn remove_query_param(path: &str, name: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            percent_decode(key).as_deref() != Some(name)
        })
        .collect();
    let mut out = base.to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
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
    String::from_utf8(out).ok()
}

/// The first value of cookie `name` across all `cookie` headers.
fn cookie(headers: &RequestHeaders, name: &str) -> Option<String> {
    headers
        .get_all("cookie")
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"').to_owned())
        })
}

#[cfg(test)]
mod tests;
