//! `jwt-authn-explain` (feature `explain`, never in the wasm module): one request decided
//! offline by the filter's own core, with the reason at each step. This module is the whole
//! tool except the I/O: reading the command line (`parse_args`), building the request the
//! filter would see (`request_headers`), the providers' keys (`Keys`), the decision with its
//! trace (`explain`, `engine::decide_traced`), and both renderings (`Explanation::text`,
//! `Explanation::json`). `src/bin/jwt-authn-explain.rs` reads the files and the clock, prints,
//! and exits with `Explanation::exit_code`.
//!
//! Output never holds a whole token: the trace names tokens by length and last characters
//! (`trace::token_hint`), and the upstream headers print a credential the same way
//! (`shown_value`).

use serde_json::{json, Value};

use crate::config::{Config, JwksSource, ProviderId};
use crate::engine::{decide_traced, Availability, Decision, KeyStore, Vm};
use crate::error::ConfigError;
use crate::jwks::KeySet;
use crate::peer::PeerFacts;
use crate::propagate::HeaderOp;
use crate::request::RequestHeaders;
use crate::signature::PureRust;
use crate::token_cache::TokenCache;
use crate::trace::{describe_op, token_hint, Step};

/// Exit status: the request would be let through.
pub const EXIT_FORWARDED: u8 = 0;
/// Exit status: the filter would answer the request itself (401, 403, 400, 503).
pub const EXIT_ANSWERED: u8 = 1;
/// Exit status: a usage or configuration error; nothing was decided.
pub const EXIT_USAGE: u8 = 2;

/// The usage text (`--help`).
pub const USAGE: &str = "\
jwt-authn-explain: how jwt-authn-wasm decides one request, step by step, offline

usage:
  jwt-authn-explain --config FILE --request 'METHOD URL' [options]
  jwt-authn-explain check-config FILE [--json]

options:
  --config FILE           the plugin configuration (jwt_authn JSON, as the filter gets it)
  --request 'METHOD URL'  e.g. 'GET https://api.example.com/orders/7' (or a path: 'GET /orders/7')
  -H, --header 'NAME: VALUE'
                          a request header; repeat for more (`host` sets :authority;
                          repeated authorization headers are joined with `,`, as in Envoy)
  --jwks [PROVIDER=]FILE  the key set (JWKS or Google's X.509 form) of a provider, e.g. for a
                          remote_jwks provider; one per provider, named when there are several
  --fetch-jwks            fetch the key set of each remote_jwks provider given no --jwks, from
                          its http_uri.uri (or, with oidc_discovery, its issuer's jwks_uri),
                          with curl
  --now SECONDS|RFC3339   the clock: Unix seconds or e.g. 2026-12-02T13:35:31Z (default: now)
  --peer-uri-san URI      the client certificate's URI SAN (default: no client certificate)
  --peer-cert-digest HEX  SHA-256 of the client certificate's DER, lower-case hex
  --json                  one JSON object: status, www_authenticate, upstream_headers, steps
  -h, --help              this text

exit status: 0 the request would be let through, 1 the filter would answer it itself,
2 usage or configuration error. check-config: 0 good, 1 refused (every error with its
field), 2 unreadable file.
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Explain(Options),
    /// `check-config FILE`; `json`: print one JSON object.
    CheckConfig {
        path: String,
        json: bool,
    },
    Help,
}

/// `jwt-authn-explain --config ...`: everything but the files' contents and the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config: String,
    /// `--jwks`: (provider, file), the provider `None` when not named.
    pub jwks: Vec<(Option<String>, String)>,
    pub method: String,
    pub url: String,
    /// `-H`: (name, value) as given, the value bytes as they came.
    pub headers: Vec<(String, Vec<u8>)>,
    /// `--now`, parsed; `None`: the bin's clock.
    pub now: Option<i64>,
    pub peer_uri_san: Option<Vec<u8>>,
    pub peer_cert_digest: Option<Vec<u8>>,
    /// `--fetch-jwks`: fetch the key set of each `remote_jwks` provider without `--jwks`.
    pub fetch_jwks: bool,
    pub json: bool,
}

/// Reads the arguments after the program name. Arguments are bytes (a header value may be
/// any bytes the shell can pass); every other one must be UTF-8. `Err`: what is wrong, for a
/// usage error (exit 2).
pub fn parse_args(args: &[Vec<u8>]) -> Result<Command, String> {
    let text = |arg: &[u8]| {
        std::str::from_utf8(arg)
            .map(str::to_owned)
            .map_err(|_| format!("argument {:?} is not UTF-8", String::from_utf8_lossy(arg)))
    };
    let mut rest = args.iter();
    let mut config = None;
    let mut request = None;
    let mut jwks = Vec::new();
    let mut headers = Vec::new();
    let mut now = None;
    let mut peer_uri_san = None;
    let mut peer_cert_digest = None;
    let mut json = false;
    let mut fetch_jwks = false;
    let mut check_config = None;
    while let Some(arg) = rest.next() {
        // `--flag=value` is `--flag value`.
        let (flag, inline): (&[u8], Option<&[u8]>) = match arg.iter().position(|&b| b == b'=') {
            Some(at) if arg.starts_with(b"--") => (
                arg.get(..at).unwrap_or_default(),
                arg.get(at + 1..).or(Some(&[])),
            ),
            _ => (arg.as_slice(), None),
        };
        let flag = text(flag)?;
        let mut value = || -> Result<&[u8], String> {
            match inline {
                Some(v) => Ok(v),
                None => rest
                    .next()
                    .map(Vec::as_slice)
                    .ok_or_else(|| format!("{flag} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--json" if inline.is_none() => json = true,
            "--fetch-jwks" if inline.is_none() => fetch_jwks = true,
            "--config" => set_once(&mut config, &flag, text(value()?)?)?,
            "--request" => set_once(&mut request, &flag, text(value()?)?)?,
            "--jwks" => {
                let given = text(value()?)?;
                jwks.push(match given.split_once('=') {
                    Some((name, file)) if !name.is_empty() && !name.contains('/') => {
                        (Some(name.to_owned()), file.to_owned())
                    }
                    _ => (None, given),
                });
            }
            "-H" | "--header" => headers.push(parse_header(value()?)?),
            "--now" => set_once(&mut now, &flag, parse_now(&text(value()?)?)?)?,
            "--peer-uri-san" => set_once(&mut peer_uri_san, &flag, value()?.to_vec())?,
            "--peer-cert-digest" => set_once(&mut peer_cert_digest, &flag, value()?.to_vec())?,
            "check-config" if check_config.is_none() && config.is_none() => {
                check_config = Some(text(value().map_err(|_| {
                    "check-config needs the configuration file: check-config FILE".to_owned()
                })?)?);
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    if let Some(path) = check_config {
        let explain_only = config.is_some()
            || request.is_some()
            || !jwks.is_empty()
            || !headers.is_empty()
            || now.is_some()
            || peer_uri_san.is_some()
            || peer_cert_digest.is_some()
            || fetch_jwks;
        if explain_only {
            return Err("check-config takes only the file and --json".to_owned());
        }
        return Ok(Command::CheckConfig { path, json });
    }
    let config = config.ok_or("--config FILE is required")?;
    let request = request.ok_or("--request 'METHOD URL' is required")?;
    let (method, url) = request
        .trim()
        .split_once(' ')
        .map(|(m, u)| (m.to_owned(), u.trim().to_owned()))
        .ok_or_else(|| format!("--request {request:?}: expected 'METHOD URL'"))?;
    Ok(Command::Explain(Options {
        config,
        jwks,
        method,
        url,
        headers,
        now,
        peer_uri_san,
        peer_cert_digest,
        fetch_jwks,
        json,
    }))
}

fn set_once<T>(slot: &mut Option<T>, flag: &str, value: T) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("{flag} is given twice"));
    }
    *slot = Some(value);
    Ok(())
}

/// `-H 'name: value'`: the name lower-cased (Envoy's maps are), the value without the spaces
/// around it (HTTP's optional white space). A pseudo-header (`:authority: x`) keeps its colon.
fn parse_header(arg: &[u8]) -> Result<(String, Vec<u8>), String> {
    let shown = || String::from_utf8_lossy(arg).into_owned();
    let skip = usize::from(arg.first() == Some(&b':'));
    let colon = arg
        .iter()
        .skip(skip)
        .position(|&b| b == b':')
        .map(|at| at + skip)
        .ok_or_else(|| format!("-H {:?}: expected 'NAME: VALUE'", shown()))?;
    let name = arg.get(..colon).unwrap_or_default();
    let valid = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    if name.len() <= skip || !name.iter().skip(skip).all(valid) {
        return Err(format!("-H {:?}: not a header name", shown()));
    }
    let value = arg.get(colon + 1..).unwrap_or_default();
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    Ok((
        String::from_utf8_lossy(name).to_ascii_lowercase(),
        value.get(start..end).unwrap_or_default().to_vec(),
    ))
}

/// `--now`: Unix seconds (`1796218531`) or an RFC 3339 date-time (`2026-12-02T13:35:31Z`,
/// `2026-12-02T14:35:31.5+01:00`; fractions of a second are dropped).
pub fn parse_now(text: &str) -> Result<i64, String> {
    let refuse = || {
        format!(
            "--now {text:?}: expected Unix seconds or an RFC 3339 date-time such as 2026-12-02T13:35:31Z"
        )
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| refuse());
    }
    parse_rfc3339(text).ok_or_else(refuse)
}

fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let mut at = 19;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let digits = b.iter().skip(at).take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        at += digits;
    }
    let offset = match b.get(at..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == at + 6 && sep(at + 3, b":") => {
            let minutes = num(at + 1, 2)? * 60 + num(at + 4, 2)?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `secs` as an RFC 3339 date-time in UTC (`2026-12-02T13:35:31Z`).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let time = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

/// The request as the filter would see it: `:authority`, `:path`, `:method`, `:scheme`
/// from `METHOD URL`, then `headers` in order. `url` is `http(s)://authority/path?query` or a
/// path (`/path?query`, then no `:authority` unless a `host` header gives one, and no
/// `:scheme`). A `host` header becomes `:authority` (as Envoy makes it), a pseudo-header
/// given with `-H` replaces the one from the URL, and repeated `authorization` headers become
/// one, their values joined with `,` (as Envoy joins them). Nothing is decoded or normalised: the path
/// reaches the rules as given.
pub fn request_headers(
    method: &str,
    url: &str,
    headers: &[(String, Vec<u8>)],
) -> Result<Vec<(String, Vec<u8>)>, String> {
    if method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(format!("--request: {method:?} is not an HTTP method"));
    }
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (Some("http"), rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (Some("https"), rest),
        Some((scheme, _)) => return Err(format!("--request: scheme {scheme:?} is not http(s)")),
        None if url.starts_with('/') => (None, url),
        None => {
            return Err(format!(
                "--request: {url:?} is neither an http(s) URL nor a path starting with /"
            ))
        }
    };
    let (authority, path) = match scheme {
        None => (None, rest.to_owned()),
        Some(_) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            if authority.is_empty() {
                return Err(format!("--request: {url:?} has no host"));
            }
            let path = match path {
                "" => "/".to_owned(),
                p if p.starts_with('?') => format!("/{p}"),
                p => p.to_owned(),
            };
            (Some(authority.to_owned()), path)
        }
    };
    // A fragment never leaves the client.
    let path = path.split('#').next().unwrap_or_default().to_owned();
    let mut pseudo: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(authority) = authority {
        pseudo.push((":authority".into(), authority.into_bytes()));
    }
    pseudo.push((":path".into(), path.into_bytes()));
    pseudo.push((":method".into(), method.as_bytes().to_vec()));
    if let Some(scheme) = scheme {
        pseudo.push((":scheme".into(), scheme.as_bytes().to_vec()));
    }
    let mut rest = Vec::new();
    for (name, value) in headers {
        let name = if name == "host" { ":authority" } else { name };
        if name.starts_with(':') {
            pseudo.retain(|(n, _)| n != name);
            pseudo.push((name.to_owned(), value.clone()));
        } else {
            rest.push((name.to_owned(), value.clone()));
        }
    }
    // Envoy's header map joins the values of a repeated inline header, `authorization` among
    // them, with a comma: the filter sees one `Bearer A,Bearer B`.
    if let Some(first) = rest.iter().position(|(n, _)| n == "authorization") {
        let mut joined = Vec::new();
        for (_, value) in rest.iter().filter(|(n, _)| n == "authorization") {
            if !joined.is_empty() {
                joined.push(b',');
            }
            joined.extend_from_slice(value);
        }
        let mut i = 0;
        rest.retain(|(n, _)| {
            i += 1;
            i - 1 == first || n != "authorization"
        });
        if let Some(slot) = rest.get_mut(first) {
            slot.1 = joined;
        }
    }
    pseudo.append(&mut rest);
    Ok(pseudo)
}

/// Each provider's keys: the configuration's own (`local_jwks`), or what `--jwks` gave, which
/// replaces them. A `remote_jwks` provider without `--jwks` has none: its tokens fail with
/// `keys_unavailable`, as in a filter whose fetch failed.
pub struct Keys<'c> {
    config: &'c Config,
    given: Vec<Option<KeySet>>,
    /// Where each given key set came from (a file, a URL).
    sources: Vec<Option<String>>,
}

impl<'c> Keys<'c> {
    /// `given`: (provider named or not, where the bytes came from, the bytes), from `--jwks`.
    /// An unnamed key set goes to the one `remote_jwks` provider, or the one provider; any
    /// doubt is an error (exit 2), and so is a key set that does not load.
    pub fn new(
        config: &'c Config,
        given: Vec<(Option<String>, String, Vec<u8>)>,
    ) -> Result<Keys<'c>, String> {
        let names = || {
            config
                .providers
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut keys: Vec<Option<KeySet>> = config.providers.iter().map(|_| None).collect();
        let mut sources: Vec<Option<String>> = config.providers.iter().map(|_| None).collect();
        for (name, file, bytes) in given {
            let id = match &name {
                Some(name) => config.provider_id(name).ok_or_else(|| {
                    format!(
                        "--jwks {name}={file}: no provider {name:?} (providers: {})",
                        names()
                    )
                })?,
                None => {
                    let remote: Vec<ProviderId> = (0..config.providers.len())
                        .filter(|&id| {
                            matches!(
                                config.providers.get(id).map(|p| &p.jwks),
                                Some(JwksSource::Remote(_))
                            )
                        })
                        .collect();
                    match (remote.as_slice(), config.providers.len()) {
                        ([only], _) => *only,
                        ([], 1) => 0,
                        _ => {
                            return Err(format!(
                                "--jwks {file}: say which provider it is for, --jwks NAME={file} (providers: {})",
                                names()
                            ))
                        }
                    }
                }
            };
            let provider = config
                .providers
                .get(id)
                .map_or("", |p| p.name.as_str())
                .to_owned();
            let set = KeySet::from_slice(&bytes)
                .map_err(|e| format!("--jwks {file} (provider {provider:?}): {e}"))?;
            match keys.get_mut(id) {
                Some(slot @ None) => *slot = Some(set),
                _ => return Err(format!("--jwks: provider {provider:?} is given twice")),
            }
            if let Some(source) = sources.get_mut(id) {
                *source = Some(file);
            }
        }
        Ok(Keys {
            config,
            given: keys,
            sources,
        })
    }

    /// What a reader should know about the keys: remote providers without `--jwks`, keys a
    /// key set skipped or loaded with a warning.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let given = self.given.iter().zip(&self.sources);
        for (provider, (given, source)) in self.config.providers.iter().zip(given) {
            let lines = match (given, &provider.jwks) {
                (Some(set), _) => {
                    let mut lines = vec![format!(
                        "keys from {} ({} usable)",
                        source.as_deref().unwrap_or("--jwks"),
                        set.len()
                    )];
                    lines.extend(set.log_lines());
                    lines
                }
                (None, JwksSource::Local(set)) => set.log_lines(),
                (None, JwksSource::Remote(_)) => vec![
                    "remote_jwks and no --jwks: no keys (its tokens fail as keys_unavailable)"
                        .to_owned(),
                ],
            };
            let revocation = provider.revocation.as_ref().map(|_| {
                "revocation list not fetched offline: its verified tokens fail as \
                 revocation_unavailable"
                    .to_owned()
            });
            notes.extend(
                lines
                    .into_iter()
                    .chain(revocation)
                    .map(|line| format!("provider {:?}: {line}", provider.name)),
            );
        }
        notes
    }
}

impl KeyStore for Keys<'_> {
    fn keys(&self, provider: ProviderId) -> Availability<'_> {
        match self.given.get(provider) {
            Some(Some(set)) => Availability::Ready(set),
            _ => self.config.keys(provider),
        }
    }
}

/// One key set `--fetch-jwks` fetches: the provider, the URL, and whether it is the
/// issuer's OpenID configuration (whose `jwks_uri` is fetched next).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub provider: String,
    pub url: String,
    pub discovery: bool,
    /// `http_uri.timeout`, in whole seconds (at least 1).
    pub timeout_seconds: u64,
}

/// What `--fetch-jwks` fetches: every `remote_jwks` provider not in `given` (the providers
/// named by `--jwks`).
pub fn fetches(config: &Config, given: &[Option<String>]) -> Vec<Fetch> {
    let remote = || {
        config
            .providers
            .iter()
            .filter(|p| matches!(p.jwks, JwksSource::Remote(_)))
    };
    // An unnamed `--jwks` is the one remote provider's (`Keys::new`).
    let unnamed_is = (given.contains(&None) && remote().count() == 1)
        .then(|| remote().next().map(|p| p.name.clone()))
        .flatten();
    config
        .providers
        .iter()
        .filter(|p| !given.iter().flatten().any(|g| *g == p.name))
        .filter(|p| unnamed_is.as_ref() != Some(&p.name))
        .filter_map(|p| match &p.jwks {
            JwksSource::Remote(remote) => Some(Fetch {
                provider: p.name.clone(),
                url: target_url(&remote.target),
                discovery: remote.oidc_discovery,
                timeout_seconds: remote.timeout.as_secs().max(1),
            }),
            JwksSource::Local(_) => None,
        })
        .collect()
}

fn target_url(target: &crate::jwks_cache::Target) -> String {
    format!("{}://{}{}", target.scheme, target.authority, target.path)
}

/// The `jwks_uri` of a fetched OpenID configuration (`status` as the server answered), as
/// the filter reads it.
pub fn discovered_jwks_url(status: &str, body: &[u8]) -> Result<String, String> {
    crate::jwks_cache::read_discovery(Some(status), body)
        .map(|target| target_url(&target))
        .map_err(|e| e.to_string())
}

/// A fetched key set (`status` as the server answered), accepted as the filter accepts one:
/// status 200, at most 1 MiB, a key set that loads.
pub fn fetched_jwks(status: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let policy = crate::jwks_cache::FetchPolicy::default();
    crate::jwks_cache::read_response(&policy, Some(status), body.len(), body, None)
        .map(|_| body.to_vec())
        .map_err(|e| e.to_string())
}

/// What the filter would do with the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Let through; `headers` are what the upstream receives, `operations` what the filter
    /// changed (`set x-jwt-sub: alice`, `remove authorization`).
    Forwarded {
        headers: Vec<(String, Vec<u8>)>,
        operations: Vec<String>,
    },
    /// Answered by the filter itself.
    Answered {
        status: u32,
        www_authenticate: Option<String>,
        body: String,
    },
}

/// One decision with its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// `GET https://api.example.com/orders/7`, as given.
    pub request: String,
    pub now: i64,
    pub steps: Vec<Step>,
    pub outcome: Outcome,
    /// The failure the requirement ended with, even when a policy let it through: its
    /// stat reason and message.
    pub failure: Option<(&'static str, &'static str)>,
    pub notes: Vec<String>,
}

/// Decides `headers` (with `peer`) at `now` with the filter's core, recording every step.
pub fn explain(
    config: &Config,
    keys: &Keys<'_>,
    request: String,
    headers: Vec<(String, Vec<u8>)>,
    peer: PeerFacts,
    now: i64,
) -> Explanation {
    let request_headers = RequestHeaders::new(headers.clone()).with_peer(peer);
    let mut steps: Vec<Step> = Vec::new();
    let mut cache = TokenCache::disabled();
    let vm = Vm {
        keys,
        signatures: &PureRust,
        cache: &mut cache,
    };
    let decision = decide_traced(config, vm, &request_headers, now, &mut steps);
    let mut notes = keys.notes();
    let (outcome, verdict) = match decision {
        Decision::Allow { ops, verdict } => (
            Outcome::Forwarded {
                headers: apply(headers, &ops),
                operations: ops.iter().map(describe_op).collect(),
            },
            Some(verdict),
        ),
        Decision::Deny { denial, verdict } => (
            Outcome::Answered {
                status: denial.status,
                www_authenticate: denial.www_authenticate,
                body: denial.body.to_owned(),
            },
            Some(verdict),
        ),
        // Offline, keys are there or not: nothing is on its way. Should the core still wait,
        // the filter would answer once its wait ends; say so rather than guess the answer.
        Decision::Wait(_) => {
            notes.push("the filter would wait for the provider's keys".to_owned());
            (
                Outcome::Answered {
                    status: 503,
                    www_authenticate: None,
                    body: String::new(),
                },
                None,
            )
        }
    };
    Explanation {
        request,
        now,
        steps,
        outcome,
        failure: verdict
            .and_then(|v| v.failure)
            .map(|f| (f.reason(), f.message())),
        notes,
    }
}

/// The headers after the filter's operations, as Envoy applies them: a removal removes every
/// value, a set replaces every value with one (in the place of the first).
fn apply(mut headers: Vec<(String, Vec<u8>)>, ops: &[HeaderOp<'_>]) -> Vec<(String, Vec<u8>)> {
    for op in ops {
        match op {
            HeaderOp::Remove(name) => headers.retain(|(n, _)| n != name),
            HeaderOp::Set(name, value) => {
                let value = value.as_bytes().to_vec();
                match headers.iter().position(|(n, _)| n == name) {
                    Some(first) => {
                        let mut i = 0;
                        headers.retain(|(n, _)| {
                            i += 1;
                            i - 1 == first || n != name
                        });
                        if let Some(slot) = headers.get_mut(first) {
                            slot.1 = value;
                        }
                    }
                    None => headers.push(((*name).to_owned(), value)),
                }
            }
            // Filter state is not a header: it never reaches the upstream.
            HeaderOp::FilterState(..) => {}
        }
    }
    headers
}

/// A header value as the tool prints it: text (bytes that are not UTF-8 as `\xNN`), and a
/// credential (`authorization`, a cookie, or anything that looks like a JWT) by its length
/// and last characters only.
pub fn shown_value(name: &str, value: &[u8]) -> String {
    let text = escape(value);
    let looks_like_jwt = text.split('.').count() == 3 && text.len() > 40 && !text.contains(' ');
    let credential = matches!(name, "authorization" | "proxy-authorization" | "cookie");
    if credential || looks_like_jwt {
        let scheme = match text.split_once(' ') {
            Some((scheme, _)) if credential && name != "cookie" => format!("{scheme} "),
            _ => String::new(),
        };
        let token = text.get(scheme.len()..).unwrap_or_default();
        format!("{scheme}<{}>", token_hint(token))
    } else {
        text
    }
}

fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

impl Explanation {
    /// 0 let through, 1 answered locally.
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::Forwarded { .. } => EXIT_FORWARDED,
            Outcome::Answered { .. } => EXIT_ANSWERED,
        }
    }

    /// The status the client would get: the upstream's own for a forwarded request (200 from
    /// the point of view of the filter), the filter's answer otherwise.
    pub fn status(&self) -> u32 {
        match &self.outcome {
            Outcome::Forwarded { .. } => 200,
            Outcome::Answered { status, .. } => *status,
        }
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut out = format!(
            "request  {}\nclock    {} ({})\n",
            self.request,
            self.now,
            rfc3339(self.now)
        );
        for note in &self.notes {
            out.push_str(&format!("note     {note}\n"));
        }
        let mut depth = 0usize;
        for step in &self.steps {
            if matches!(step, Step::Left { .. }) {
                depth = depth.saturating_sub(1);
            }
            out.push_str(&"  ".repeat(depth));
            out.push_str(&step_line(step));
            out.push('\n');
            if matches!(step, Step::Entered { .. }) {
                depth += 1;
            }
        }
        match &self.outcome {
            Outcome::Forwarded {
                headers,
                operations,
            } => {
                out.push_str("result   let through (exit 0)");
                if let Some((reason, message)) = self.failure {
                    out.push_str(&format!(", although it failed: {message} ({reason})"));
                }
                out.push('\n');
                if operations.is_empty() {
                    out.push_str("filter   changed no header\n");
                } else {
                    out.push_str(&format!("filter   {}\n", operations.join("; ")));
                }
                out.push_str("upstream receives:\n");
                for (name, value) in headers {
                    out.push_str(&format!("  {name}: {}\n", shown_value(name, value)));
                }
            }
            Outcome::Answered {
                status,
                www_authenticate,
                body,
            } => {
                out.push_str(&format!(
                    "result   {status}, answered by the filter (exit 1)"
                ));
                if let Some((reason, _)) = self.failure {
                    out.push_str(&format!(": {reason}"));
                }
                out.push('\n');
                match www_authenticate {
                    Some(value) => out.push_str(&format!("  www-authenticate: {value}\n")),
                    None => out.push_str("  (no www-authenticate)\n"),
                }
                out.push_str(&format!("  body: {body:?}\n"));
            }
        }
        out
    }

    /// The report for machines: one object with `status`, `www_authenticate` (or null),
    /// `upstream_headers` (null when answered locally), `steps` and more.
    pub fn json(&self) -> Value {
        let (upstream, operations, www_authenticate, body) = match &self.outcome {
            Outcome::Forwarded {
                headers,
                operations,
            } => (
                Value::from(
                    headers
                        .iter()
                        .map(|(n, v)| json!({ "name": n, "value": shown_value(n, v) }))
                        .collect::<Vec<_>>(),
                ),
                json!(operations),
                Value::Null,
                Value::Null,
            ),
            Outcome::Answered {
                www_authenticate,
                body,
                ..
            } => (Value::Null, json!([]), json!(www_authenticate), json!(body)),
        };
        json!({
            "request": self.request,
            "now": self.now,
            "now_rfc3339": rfc3339(self.now),
            "status": self.status(),
            "let_through": matches!(self.outcome, Outcome::Forwarded { .. }),
            "www_authenticate": www_authenticate,
            "body": body,
            "reason": self.failure.map(|(reason, _)| reason),
            "upstream_headers": upstream,
            "filter_operations": operations,
            "steps": self.steps.iter().map(step_json).collect::<Vec<_>>(),
            "notes": self.notes,
            "exit": self.exit_code(),
        })
    }
}

fn outcome(result: &Result<(), crate::error::AuthError>) -> String {
    match result {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("FAILED: {} ({})", e.message(), e.reason()),
    }
}

/// One step on one line.
pub fn step_line(step: &Step) -> String {
    match step {
        Step::Stripped(ops) => format!(
            "strip    headers the filter emits, sent by the client: {}",
            ops.join("; ")
        ),
        Step::Unreadable => {
            "request  cannot be read (no :path or :method, or an :authority a rule cannot parse)"
                .to_owned()
        }
        Step::CorsPreflight => {
            "cors     a CORS preflight, let through (bypass_cors_preflight)".to_owned()
        }
        Step::Rule { index, requires } => format!(
            "rule     rules[{index}] matches; {}",
            if *requires {
                "its requirement applies"
            } else {
                "it has no `requires`: no token needed"
            }
        ),
        Step::NoRule => "rule     no rule matches: no token needed".to_owned(),
        Step::Entered { what } => format!("require  {what}"),
        Step::Left { what, result } => format!("=> {what}: {}", outcome(result)),
        Step::NoToken {
            provider,
            locations,
        } => format!("token    {provider}: none at {}", locations.join(", ")),
        Step::Token {
            provider,
            location,
            token,
        } => match token {
            Ok(hint) => format!("token    {provider}: at {location}: {hint}"),
            Err(e) => format!(
                "token    {provider}: at {location}: not a token: {} ({})",
                e.message(),
                e.reason()
            ),
        },
        Step::Parsed { result } => match result {
            Ok(text) => format!("parsed   {text}"),
            Err(e) => format!("parsed   FAILED: {} ({})", e.message(), e.reason()),
        },
        Step::NoProviderForIssuer { issuer } => match issuer {
            Some(iss) => format!("issuer   no provider has issuer {iss:?}"),
            None => "issuer   the token has no iss, and no provider takes any issuer".to_owned(),
        },
        Step::Checked {
            provider,
            check,
            result,
            detail,
        } => {
            let mut line = format!(
                "check    {provider} {:<9} {}",
                check.name(),
                outcome(result)
            );
            if !detail.is_empty() {
                line.push_str(&format!(" — {detail}"));
            }
            line
        }
        Step::Identity { provider, headers } => {
            if headers.is_empty() {
                format!("identity {provider}: no header to set")
            } else {
                format!("identity {provider}: {}", headers.join("; "))
            }
        }
        Step::Wait { provider, kid } => match kid {
            Some(kid) => format!("wait     for {provider}'s keys (kid {kid:?})"),
            None => format!("wait     for {provider}'s keys"),
        },
        // Forbidden (403, or 503 for a peer the host cannot describe): not a policy class.
        Step::Policy { failure, class, .. } if class.starts_with("forbidden") => format!(
            "policy   {} is forbidden: no failure_policy applies",
            failure.reason()
        ),
        Step::Policy {
            failure,
            class,
            policy,
        } => format!(
            "policy   {} is {class}: failure_policy says {policy}",
            failure.reason()
        ),
    }
}

fn result_json(result: &Result<(), crate::error::AuthError>) -> Value {
    match result {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "reason": e.reason(), "message": e.message() }),
    }
}

/// One step as an object: `step` says which, the other members depend on it; `text` is the
/// line `text()` prints.
pub fn step_json(step: &Step) -> Value {
    let mut value = match step {
        Step::Stripped(ops) => json!({ "step": "stripped", "operations": ops }),
        Step::Unreadable => json!({ "step": "unreadable" }),
        Step::CorsPreflight => json!({ "step": "cors_preflight" }),
        Step::Rule { index, requires } => {
            json!({ "step": "rule", "index": index, "requires": requires })
        }
        Step::NoRule => json!({ "step": "no_rule" }),
        Step::Entered { what } => json!({ "step": "entered", "requirement": what }),
        Step::Left { what, result } => {
            json!({ "step": "left", "requirement": what, "result": result_json(result) })
        }
        Step::NoToken {
            provider,
            locations,
        } => json!({ "step": "no_token", "provider": provider, "locations": locations }),
        Step::Token {
            provider,
            location,
            token,
        } => match token {
            Ok(hint) => json!({ "step": "token", "provider": provider, "location": location,
                "token": hint }),
            Err(e) => json!({ "step": "token", "provider": provider, "location": location,
                "result": result_json(&Err(*e)) }),
        },
        Step::Parsed { result } => match result {
            Ok(text) => json!({ "step": "parsed", "token": text, "result": { "ok": true } }),
            Err(e) => json!({ "step": "parsed", "result": result_json(&Err(*e)) }),
        },
        Step::NoProviderForIssuer { issuer } => {
            json!({ "step": "no_provider_for_issuer", "issuer": issuer })
        }
        Step::Checked {
            provider,
            check,
            result,
            detail,
        } => json!({
            "step": "check",
            "provider": provider,
            "check": check.name(),
            "result": result_json(result),
            "detail": detail,
        }),
        Step::Identity { provider, headers } => {
            json!({ "step": "identity", "provider": provider, "headers": headers })
        }
        Step::Wait { provider, kid } => json!({ "step": "wait", "provider": provider, "kid": kid }),
        Step::Policy {
            failure,
            class,
            policy,
        } => json!({
            "step": "policy",
            "reason": failure.reason(),
            "class": class,
            "policy": policy,
        }),
    };
    if let Value::Object(members) = &mut value {
        members.insert("text".into(), json!(step_line(step)));
    }
    value
}

/// `check-config`: every error with its field, and what loads with a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigReport {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<String>,
    /// Providers and rules, when it loads.
    pub loaded: Option<(usize, usize)>,
}

/// Checks a configuration as the filter loads it (`Config::check`).
pub fn check_config(bytes: &[u8]) -> ConfigReport {
    match Config::from_json(bytes) {
        Ok(config) => ConfigReport {
            errors: Vec::new(),
            warnings: config.warnings(),
            loaded: Some((config.providers.len(), config.rules.len())),
        },
        Err(_) => ConfigReport {
            errors: Config::check(bytes),
            warnings: Vec::new(),
            loaded: None,
        },
    }
}

impl ConfigReport {
    /// 0 good, 1 refused.
    pub fn exit_code(&self) -> u8 {
        if self.errors.is_empty() {
            EXIT_FORWARDED
        } else {
            EXIT_ANSWERED
        }
    }

    pub fn text(&self, path: &str) -> String {
        let mut out = String::new();
        for e in &self.errors {
            out.push_str(&format!("{path}: {e}\n"));
        }
        for w in &self.warnings {
            out.push_str(&format!("{path}: warning: {w}\n"));
        }
        match self.loaded {
            Some((providers, rules)) => out.push_str(&format!(
                "{path}: ok ({providers} providers, {rules} rules)\n"
            )),
            None => out.push_str(&format!(
                "{path}: refused, {} error{}\n",
                self.errors.len(),
                if self.errors.len() == 1 { "" } else { "s" }
            )),
        }
        out
    }

    pub fn json(&self) -> Value {
        json!({
            "ok": self.errors.is_empty(),
            "errors": self.errors.iter().map(|e| json!({
                "field": e.field,
                "reason": e.reason,
                "message": e.to_string(),
            })).collect::<Vec<_>>(),
            "warnings": self.warnings,
        })
    }
}

#[cfg(test)]
mod tests;
