//! The request as the core sees it: the header pairs the host handed over, bytes as sent, or
//! the fact that the host could not hand them over.
//!
//! Client bytes are never trusted to be UTF-8, and bytes that do not decode never become
//! "nothing": a matcher that saw "" where the client sent `/admin?x=\xff` would skip every
//! rule, and "no rule" means "no token needed". So:
//! - values stay `&[u8]` (`get`, `get_all`, `path_bytes`);
//! - where text is compared (route rules, the realm), it is the *lossy* view
//!   (`lossy`, `path`, `method`): each sequence that is not UTF-8 becomes U+FFFD and every other
//!   character stays as sent. For the literal matchers (`prefix`, `path`, `exact`, ...) this is
//!   the same as comparing bytes, as native `jwt_authn` does, because a pattern is UTF-8 text:
//!   a byte string starts with (equals, ends with, contains) a pattern exactly when its lossy
//!   view does, for any pattern without U+FFFD;
//! - a request whose headers the host could not give, or without `:path` or `:method`, is
//!   `Unreadable` (`readable`), and the engine refuses it (400) before any rule is looked at.
//!
//! Pseudo-headers (`:path`, `:authority`, …) are ordinary entries, as in the proxy-wasm map.
//!
//! The request also carries what the host says about its connection's peer (`peer`,
//! `peer::PeerFacts`): unread (so unreadable) unless the glue read it with `with_peer`.

use std::borrow::Cow;
use std::ops::Range;

use crate::pairs;
use crate::peer::PeerFacts;

/// Envoy's limit on the path in a `realm` (`buildOriginalUri`'s `max_path_length`).
pub const MAX_REALM_PATH: usize = 256;

/// Why a request cannot be decided on: it is refused, whatever the rules say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// The host did not give the header map, or gave one that does not parse.
    Headers,
    /// No (or an empty) `:path`.
    NoPath,
    /// No (or an empty) `:method`.
    NoMethod,
    /// `:authority` is absent or not an authority, and a `hosts` matcher needs it.
    Authority,
}

/// Request headers in the order the host gave them. Names are lower-case (Envoy's maps are)
/// and compared as bytes: a name that is not UTF-8 matches no name the filter looks for.
///
/// One buffer holds every name and value (the host's serialized map, as it came), and `pairs`
/// says where each lies: reading a request copies nothing per header.
#[derive(Debug, Clone, Default)]
pub struct RequestHeaders {
    bytes: Vec<u8>,
    /// (name, value) ranges in `bytes`, in the host's order.
    pairs: Vec<(Range<usize>, Range<usize>)>,
    /// The host could not give the map (`from_host(None)`).
    unreadable: bool,
    /// The downstream connection's peer; unread (unreadable) unless `with_peer` set it.
    peer: PeerFacts,
}

/// Equal when they hold the same pairs in the same order (wherever the bytes lie).
impl PartialEq for RequestHeaders {
    fn eq(&self, other: &Self) -> bool {
        self.unreadable == other.unreadable
            && self.peer == other.peer
            && self.entries().eq(other.entries())
    }
}

impl Eq for RequestHeaders {}

impl RequestHeaders {
    pub fn new(pairs: Vec<(String, Vec<u8>)>) -> Self {
        let mut bytes = Vec::new();
        let mut ranges = Vec::with_capacity(pairs.len());
        for (name, value) in &pairs {
            let name_at = bytes.len();
            bytes.extend_from_slice(name.as_bytes());
            let value_at = bytes.len();
            bytes.extend_from_slice(value);
            ranges.push((name_at..value_at, value_at..bytes.len()));
        }
        Self {
            bytes,
            pairs: ranges,
            unreadable: false,
            peer: PeerFacts::default(),
        }
    }

    fn unreadable() -> Self {
        Self {
            unreadable: true,
            ..Self::default()
        }
    }

    /// The map as the host gave it; `None` when it could not (a failed host call, pairs that
    /// do not parse). Such a request is refused, never decided on an empty map.
    pub fn from_host(pairs: Option<Vec<(String, Vec<u8>)>>) -> Self {
        pairs.map_or_else(Self::unreadable, Self::new)
    }

    /// The host's serialized map (`pairs` wire format) as it came, kept whole; `None` when the
    /// host could not give it. A map that does not parse is unreadable, as in `from_host`.
    pub fn from_map(bytes: Option<Vec<u8>>) -> Self {
        let Some(bytes) = bytes else {
            return Self::unreadable();
        };
        match pairs::index(&bytes) {
            Some(pairs) => Self {
                bytes,
                pairs,
                unreadable: false,
                peer: PeerFacts::default(),
            },
            None => Self::unreadable(),
        }
    }

    /// The same request, with what the host said about its connection's peer.
    pub fn with_peer(mut self, peer: PeerFacts) -> Self {
        self.peer = peer;
        self
    }

    /// What the host said about the connection's peer (unreadable when never read).
    pub fn peer(&self) -> &PeerFacts {
        &self.peer
    }

    /// Every (name, value), in order.
    fn entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.pairs.iter().filter_map(|(name, value)| {
            Some((
                self.bytes.get(name.clone())?,
                self.bytes.get(value.clone())?,
            ))
        })
    }

    /// `Ok` when the request can be decided on: the map was read, `:path` and `:method` are
    /// there and not empty.
    pub fn readable(&self) -> Result<(), Unreadable> {
        if self.unreadable {
            return Err(Unreadable::Headers);
        }
        if self.get(":path").is_none_or(<[u8]>::is_empty) {
            return Err(Unreadable::NoPath);
        }
        if self.get(":method").is_none_or(<[u8]>::is_empty) {
            return Err(Unreadable::NoMethod);
        }
        Ok(())
    }

    /// The first value of `name` (lower-case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries()
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
    }

    /// Every value of `name`, in order (borrowed from the request, whatever `name` lives).
    pub fn get_all<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        self.entries()
            .filter(move |(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
    }

    /// The first value of `name` as text: invalid UTF-8 becomes U+FFFD, nothing is dropped.
    pub fn lossy(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(String::from_utf8_lossy)
    }

    /// `:path` (with the query) as sent; `None` when absent.
    pub fn path_bytes(&self) -> Option<&[u8]> {
        self.get(":path")
    }

    /// `:path` (with the query), lossy; "" when absent (such a request is `Unreadable`).
    pub fn path(&self) -> Cow<'_, str> {
        self.lossy(":path").unwrap_or_default()
    }

    /// `:method`, lossy; "" when absent (such a request is `Unreadable`).
    pub fn method(&self) -> Cow<'_, str> {
        self.lossy(":method").unwrap_or_default()
    }

    /// The request URL as `jwt_authn` puts it in the `realm`: scheme, authority, and the path
    /// with its query, cut at `MAX_REALM_PATH` bytes. Lossy text; the realm is escaped for its
    /// quoted-string anyway. The scheme is `:scheme` as native reads it (over HTTP/1 Envoy sets
    /// it from `x-forwarded-proto`; over HTTP/2 the client sent it), else `x-forwarded-proto`.
    pub fn url(&self) -> String {
        let scheme = self
            .lossy(":scheme")
            .or_else(|| self.lossy("x-forwarded-proto"))
            .unwrap_or(Cow::Borrowed("http"));
        let host = self.lossy(":authority").unwrap_or_default();
        let path = self.path();
        let mut end = path.len().min(MAX_REALM_PATH);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        format!("{scheme}://{host}{}", path.get(..end).unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> RequestHeaders {
        RequestHeaders::new(
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
                .collect(),
        )
    }

    #[test]
    fn non_utf8_path_keeps_every_other_character() {
        let h = headers(&[(":path", b"/admin/users?x=\xff"), (":method", b"GET")]);
        assert_eq!(h.path(), "/admin/users?x=\u{fffd}");
        assert_eq!(h.path_bytes(), Some(&b"/admin/users?x=\xff"[..]));
        assert_eq!(h.readable(), Ok(()));
    }

    #[test]
    fn unreadable_requests_are_told_apart() {
        assert_eq!(
            RequestHeaders::from_host(None).readable(),
            Err(Unreadable::Headers)
        );
        assert_eq!(
            headers(&[(":method", b"GET")]).readable(),
            Err(Unreadable::NoPath)
        );
        assert_eq!(
            headers(&[(":path", b""), (":method", b"GET")]).readable(),
            Err(Unreadable::NoPath)
        );
        assert_eq!(
            headers(&[(":path", b"/")]).readable(),
            Err(Unreadable::NoMethod)
        );
    }

    #[test]
    fn the_host_map_reads_as_the_pairs_it_holds() {
        let pairs: &[(&str, &str)] = &[(":path", "/a"), (":method", "GET"), ("x", "1"), ("x", "")];
        let h = RequestHeaders::from_map(Some(pairs::serialize(pairs)));
        assert_eq!(
            h,
            headers(&[
                (":path", b"/a"),
                (":method", b"GET"),
                ("x", b"1"),
                ("x", b"")
            ])
        );
        assert_eq!(h.get_all("x").collect::<Vec<_>>(), [&b"1"[..], b""]);
        assert_eq!(h.readable(), Ok(()));
        let mut cut = pairs::serialize(pairs);
        cut.pop();
        assert_eq!(
            RequestHeaders::from_map(Some(cut)).readable(),
            Err(Unreadable::Headers)
        );
        assert_eq!(
            RequestHeaders::from_map(None).readable(),
            Err(Unreadable::Headers)
        );
    }

    #[test]
    fn realm_of_non_utf8_request_keeps_the_rest() {
        let h = headers(&[(":path", b"/p\xff/x"), (":authority", b"api.test")]);
        assert_eq!(h.url(), "http://api.test/p\u{fffd}/x");
    }
}
