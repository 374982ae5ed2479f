//! Route rules → requirement: which `rules` entry a request matches, and the matchers it is
//! built from (path, headers, `StringMatcher`), compiled once at configuration time.
//!
//! Semantics follow Envoy's route matching as `jwt_authn` uses it: `prefix` compares against
//! the whole `:path` (query included); `path`, `safe_regex` and `path_separated_prefix` against
//! the path with query and fragment removed; `case_sensitive` (default true) applies to
//! `prefix`, `path` and `path_separated_prefix`; every `headers` matcher must match too.
//! Our extensions `methods` (any one of them is `:method`, compared ASCII-case-insensitively)
//! and `hosts` (any one matches `:authority` the way Envoy matches virtual host `domains`, but
//! case-insensitively, with any port, and with one trailing dot removed) must match as well
//! when set.
//!
//! On the bytes that arrived: a matcher never sees "nothing" because bytes did not decode.
//! Paths and header values are compared through their lossy view (`RequestHeaders::lossy`:
//! each invalid UTF-8 sequence becomes U+FFFD, every other character stays), which for the
//! literal matchers is the same as native's byte comparison (see `request`). `safe_regex` runs
//! on that view too (regex-lite matches `str`): there `.` and negated classes match a U+FFFD
//! where RE2 in UTF-8 mode matches no invalid byte, so a regex rule can match where native's
//! does not (it then asks for a token); only an `invert`ed regex header matcher can turn that
//! the other way. An `:authority` a `hosts` matcher cannot parse is not "no host": the
//! request is `Unreadable` and refused.

use regex_lite::Regex;

use crate::error::ConfigError;
use crate::request::{RequestHeaders, Unreadable};

/// Compiles an RE2-syntax regex. Envoy's `safe_regex` must match the whole input, so the
/// pattern is anchored at both ends.
pub fn compile_regex(field: &str, pattern: &str) -> Result<Regex, ConfigError> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| ConfigError::new(field, format!("invalid regex {pattern:?}: {e}")))
}

/// `envoy.type.matcher.v3.StringMatcher`.
#[derive(Debug, Clone)]
pub enum StringMatcher {
    /// A literal comparison; with `ignore_case` the pattern is stored lower-case (ASCII).
    Text {
        op: TextOp,
        pattern: String,
        ignore_case: bool,
    },
    /// `safe_regex`, anchored: it must match the whole value.
    Regex(Regex),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOp {
    Exact,
    Prefix,
    Suffix,
    Contains,
}

impl StringMatcher {
    pub fn text(op: TextOp, pattern: String, ignore_case: bool) -> Self {
        let pattern = if ignore_case {
            pattern.to_ascii_lowercase()
        } else {
            pattern
        };
        StringMatcher::Text {
            op,
            pattern,
            ignore_case,
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        let (op, pattern, ignore_case) = match self {
            StringMatcher::Regex(re) => return re.is_match(value),
            StringMatcher::Text {
                op,
                pattern,
                ignore_case,
            } => (*op, pattern.as_str(), *ignore_case),
        };
        let lowered;
        let value = if ignore_case {
            lowered = value.to_ascii_lowercase();
            lowered.as_str()
        } else {
            value
        };
        match op {
            TextOp::Exact => value == pattern,
            TextOp::Prefix => value.starts_with(pattern),
            TextOp::Suffix => value.ends_with(pattern),
            TextOp::Contains => value.contains(pattern),
        }
    }
}

/// How a rule matches the path.
#[derive(Debug, Clone)]
pub enum PathMatcher {
    Prefix(String),
    Exact(String),
    Regex(Regex),
    SeparatedPrefix(String),
}

/// How a header matcher judges the header's value.
#[derive(Debug, Clone)]
pub enum ValueMatch {
    /// `present_match: true` matches when the header exists; `false` when it does not.
    Present(bool),
    String(StringMatcher),
}

/// `config.route.v3.HeaderMatcher`, the subset `jwt_authn` users need.
#[derive(Debug, Clone)]
pub struct HeaderMatcher {
    pub name: String,
    pub value_match: ValueMatch,
    pub invert: bool,
    pub treat_missing_as_empty: bool,
}

impl HeaderMatcher {
    fn matches(&self, headers: &RequestHeaders) -> bool {
        // Several values of one header are judged joined with commas, as Envoy does.
        let mut values = headers.get_all(&self.name).peekable();
        let joined: Option<Vec<u8>> = if values.peek().is_none() {
            self.treat_missing_as_empty.then(Vec::new)
        } else {
            Some(values.collect::<Vec<_>>().join(&b","[..]))
        };
        let matched = match (&self.value_match, joined) {
            (ValueMatch::Present(want), value) => value.is_some() == *want,
            (ValueMatch::String(_), None) => false,
            (ValueMatch::String(m), Some(value)) => m.matches(&String::from_utf8_lossy(&value)),
        };
        matched != self.invert
    }
}

/// One entry of `hosts`, as Envoy's virtual host `domains`: an exact name, `*.suffix`-style
/// or `prefix.*`-style wildcards (the `*` stands for at least one character), or `*` alone.
/// Compared case-insensitively, without the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatcher {
    Any,
    Exact(String),
    /// `*` then this.
    Suffix(String),
    /// This then `*`.
    Prefix(String),
}

impl HostMatcher {
    /// `None` for an empty name or a `*` anywhere but at one end.
    pub fn parse(pattern: &str) -> Option<HostMatcher> {
        // `api.test.` is the same name as `api.test` (as a request's `:authority` is read).
        let p = pattern.to_ascii_lowercase();
        let p = match p.strip_suffix('.') {
            Some(stripped) if !p.ends_with("*.") => stripped.to_owned(),
            _ => p,
        };
        if p == "*" {
            return Some(HostMatcher::Any);
        }
        let (matcher, rest) = if let Some(rest) = p.strip_prefix('*') {
            (HostMatcher::Suffix(rest.to_owned()), rest)
        } else if let Some(rest) = p.strip_suffix('*') {
            (HostMatcher::Prefix(rest.to_owned()), rest)
        } else {
            (HostMatcher::Exact(p.clone()), p.as_str())
        };
        let ok = !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
        ok.then_some(matcher)
    }

    /// `host` as `host_of` gives it.
    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatcher::Any => true,
            HostMatcher::Exact(h) => host == h,
            HostMatcher::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
            HostMatcher::Prefix(p) => host.len() > p.len() && host.starts_with(p.as_str()),
        }
    }
}

/// `:authority` as the host a `hosts` matcher compares: without the port (`api.test:8080` →
/// `api.test`, `[::1]:8080` → `[::1]`), without one trailing dot (`api.test.` → `api.test`),
/// lower-case. `None` when it is not an authority (RFC 3986 §3.2: a reg-name of unreserved,
/// sub-delim and `%` characters, or a bracketed IP literal, then an optional `:port` of digits;
/// no userinfo, nothing outside ASCII).
pub fn host_of(authority: &[u8]) -> Option<String> {
    let authority = std::str::from_utf8(authority).ok()?;
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (literal, after) = rest.split_once(']')?;
            if literal.is_empty()
                || !literal
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return None;
            }
            let port = match after {
                "" => "",
                _ => after.strip_prefix(':')?,
            };
            (authority.get(..literal.len() + 2)?, port)
        }
        None => {
            let (host, port) = authority.rsplit_once(':').unwrap_or((authority, ""));
            let reg_name = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b);
            if !host.bytes().all(reg_name) {
                return None;
            }
            (host, port)
        }
    };
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// One rule's `match`.
#[derive(Debug, Clone)]
pub struct RouteMatcher {
    path: PathMatcher,
    case_sensitive: bool,
    headers: Vec<HeaderMatcher>,
    /// Empty: any method.
    methods: Vec<String>,
    /// Empty: any host.
    hosts: Vec<HostMatcher>,
}

impl RouteMatcher {
    pub fn new(path: PathMatcher, case_sensitive: bool, headers: Vec<HeaderMatcher>) -> Self {
        let path = match path {
            PathMatcher::Prefix(p) if !case_sensitive => {
                PathMatcher::Prefix(p.to_ascii_lowercase())
            }
            PathMatcher::Exact(p) if !case_sensitive => PathMatcher::Exact(p.to_ascii_lowercase()),
            PathMatcher::SeparatedPrefix(p) if !case_sensitive => {
                PathMatcher::SeparatedPrefix(p.to_ascii_lowercase())
            }
            other => other,
        };
        Self {
            path,
            case_sensitive,
            headers,
            methods: Vec::new(),
            hosts: Vec::new(),
        }
    }

    /// Also requires `:method` to be one of `methods` (when not empty), ASCII case ignored:
    /// Envoy forwards `delete` over HTTP/2, and frameworks route it as `DELETE`.
    pub fn with_methods(mut self, methods: Vec<String>) -> Self {
        self.methods = methods;
        self
    }

    /// Also requires `:authority` to match one of `hosts` (when not empty).
    pub fn with_hosts(mut self, hosts: Vec<HostMatcher>) -> Self {
        self.hosts = hosts;
        self
    }

    /// Whether the request matches; `Err` when a part this rule must look at cannot be read
    /// (an `:authority` that is not one, with `hosts` set), which refuses the request.
    pub fn matches(&self, headers: &RequestHeaders) -> Result<bool, Unreadable> {
        if !self.path_matches(&headers.path()) {
            return Ok(false);
        }
        if !self.methods.is_empty() {
            let method = headers.method();
            if !self.methods.iter().any(|m| m.eq_ignore_ascii_case(&method)) {
                return Ok(false);
            }
        }
        if !self.hosts.is_empty() {
            let host = headers
                .get(":authority")
                .and_then(host_of)
                .ok_or(Unreadable::Authority)?;
            if !self.hosts.iter().any(|h| h.matches(&host)) {
                return Ok(false);
            }
        }
        Ok(self.headers.iter().all(|h| h.matches(headers)))
    }

    /// `s` as compared with the (pre-folded) patterns.
    fn fold<'s>(&self, s: &'s str) -> std::borrow::Cow<'s, str> {
        if self.case_sensitive {
            s.into()
        } else {
            s.to_ascii_lowercase().into()
        }
    }

    fn path_matches(&self, full_path: &str) -> bool {
        let without_query = full_path
            .find(['?', '#'])
            .and_then(|i| full_path.get(..i))
            .unwrap_or(full_path);
        match &self.path {
            PathMatcher::Prefix(p) => self.fold(full_path).starts_with(p.as_str()),
            PathMatcher::Exact(p) => self.fold(without_query) == p.as_str(),
            PathMatcher::Regex(re) => re.is_match(without_query),
            PathMatcher::SeparatedPrefix(p) => {
                let path = self.fold(without_query);
                path.strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        }
    }
}

#[cfg(test)]
mod tests;
