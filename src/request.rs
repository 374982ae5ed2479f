//! The request as the core sees it: the header pairs the host handed over, bytes as sent.
//!
//! Client bytes are never trusted to be UTF-8: values stay `&[u8]` until a caller asks for
//! text, and then non-UTF-8 simply does not match. Pseudo-headers (`:path`, `:authority`, …)
//! are ordinary entries, as in the proxy-wasm header map.

/// Envoy's limit on the path in a `realm` (`buildOriginalUri`'s `max_path_length`).
pub const MAX_REALM_PATH: usize = 256;

/// Request headers in the order the host gave them. Names are lower-case (Envoy's maps are).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeaders {
    pairs: Vec<(String, Vec<u8>)>,
}

impl RequestHeaders {
    pub fn new(pairs: Vec<(String, Vec<u8>)>) -> Self {
        Self { pairs }
    }

    /// The first value of `name` (lower-case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `name` if it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// `:path` (with the query), or "" when absent or not UTF-8.
    pub fn path(&self) -> &str {
        self.get_str(":path").unwrap_or("")
    }

    pub fn method(&self) -> &str {
        self.get_str(":method").unwrap_or("")
    }

    /// The request URL as `jwt_authn` puts it in the `realm`: scheme (as forwarded),
    /// authority, and the path with its query, cut at `MAX_REALM_PATH` bytes.
    pub fn url(&self) -> String {
        let scheme = self
            .get_str("x-forwarded-proto")
            .or_else(|| self.get_str(":scheme"))
            .unwrap_or("http");
        let host = self.get_str(":authority").unwrap_or("");
        let path = self.path();
        let mut end = path.len().min(MAX_REALM_PATH);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        format!("{scheme}://{host}{}", path.get(..end).unwrap_or(""))
    }
}
