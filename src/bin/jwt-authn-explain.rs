//! `jwt-authn-explain`: how jwt-authn-wasm decides one request, step by step, offline (feature
//! `explain`). The I/O only: arguments, files, the clock, printing, the exit status; the rest
//! is `jwt_authn_wasm::explain`, which runs the filter's own core.

use std::process::ExitCode;

use jwt_authn_wasm::config::Config;
use jwt_authn_wasm::explain::{
    check_config, discovered_jwks_url, explain, fetched_jwks, fetches, parse_args, request_headers,
    Command, Fetch, Keys, Options, EXIT_USAGE, USAGE,
};
use jwt_authn_wasm::peer::PeerFacts;

fn main() -> ExitCode {
    let args = match arguments() {
        Ok(args) => args,
        Err(e) => return usage_error(&e),
    };
    let code = match parse_args(&args) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            0
        }
        Ok(Command::CheckConfig { path, json }) => match read(&path) {
            Ok(bytes) => {
                let report = check_config(&bytes);
                if json {
                    println!("{}", report.json());
                } else {
                    print!("{}", report.text(&path));
                }
                report.exit_code()
            }
            Err(e) => return fail(&e),
        },
        Ok(Command::Explain(options)) => match run(options) {
            Ok(code) => code,
            Err(e) => return fail(&e),
        },
        Err(e) => return usage_error(&e),
    };
    ExitCode::from(code)
}

/// The arguments as bytes: a header value may be any bytes the shell passes.
fn arguments() -> Result<Vec<Vec<u8>>, String> {
    std::env::args_os()
        .skip(1)
        .map(|arg| {
            #[cfg(unix)]
            {
                use std::os::unix::ffi::OsStrExt;
                Ok(arg.as_bytes().to_vec())
            }
            #[cfg(not(unix))]
            {
                arg.into_string()
                    .map(String::into_bytes)
                    .map_err(|a| format!("argument {a:?} is not UTF-8"))
            }
        })
        .collect()
}

fn run(options: Options) -> Result<u8, String> {
    let bytes = read(&options.config)?;
    let config = match Config::from_json(&bytes) {
        Ok(config) => config,
        Err(_) => {
            let report = check_config(&bytes);
            return Err(report.text(&options.config).trim_end().to_owned());
        }
    };
    let named: Vec<Option<String>> = options.jwks.iter().map(|(n, _)| n.clone()).collect();
    let mut given = Vec::new();
    for (name, file) in options.jwks {
        let bytes = read(&file)?;
        given.push((name, file, bytes));
    }
    if options.fetch_jwks {
        for fetch in fetches(&config, &named) {
            let (url, bytes) = fetch_key_set(&fetch)?;
            given.push((Some(fetch.provider.clone()), url, bytes));
        }
    }
    let keys = Keys::new(&config, given)?;
    let headers = request_headers(&options.method, &options.url, &options.headers)?;
    let peer = PeerFacts {
        uri_san: Ok(options.peer_uri_san),
        digest: Ok(options.peer_cert_digest),
    };
    let now = options.now.unwrap_or_else(system_now);
    let request = format!("{} {}", options.method, options.url);
    let explanation = explain(&config, &keys, request, headers, peer, now);
    if options.json {
        println!("{}", explanation.json());
    } else {
        print!("{}", explanation.text());
    }
    Ok(explanation.exit_code())
}

/// `fetch`'s key set, through the issuer's OpenID configuration when it says so, fetched with
/// curl (no redirects, the provider's timeout, 1 MiB at most) and read as the filter reads it:
/// the key set's URL and bytes.
fn fetch_key_set(fetch: &Fetch) -> Result<(String, Vec<u8>), String> {
    let failed =
        |url: &str, e: String| format!("--fetch-jwks: provider {:?}: {url}: {e}", fetch.provider);
    let mut url = fetch.url.clone();
    if fetch.discovery {
        let (status, body) = curl(&url, fetch.timeout_seconds).map_err(|e| failed(&url, e))?;
        url = discovered_jwks_url(&status, &body).map_err(|e| failed(&url, e))?;
    }
    let (status, body) = curl(&url, fetch.timeout_seconds).map_err(|e| failed(&url, e))?;
    let bytes = fetched_jwks(&status, &body).map_err(|e| failed(&url, e))?;
    Ok((url, bytes))
}

/// GET `url` with curl: the status and the body.
fn curl(url: &str, timeout_seconds: u64) -> Result<(String, Vec<u8>), String> {
    let body = std::env::temp_dir().join(format!("jwt-authn-explain-{}.body", std::process::id()));
    let out = std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--proto", "=http,https"])
        .args(["--max-time", &timeout_seconds.to_string()])
        .args([
            "--max-filesize",
            "1048576",
            "--write-out",
            "%{http_code}",
            "--output",
        ])
        .arg(&body)
        .arg("--")
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    let bytes = std::fs::read(&body).unwrap_or_default();
    let _ = std::fs::remove_file(&body);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok((
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        bytes,
    ))
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
}

fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("jwt-authn-explain: {message}\n(jwt-authn-explain --help for usage)");
    ExitCode::from(EXIT_USAGE)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("jwt-authn-explain: {message}");
    ExitCode::from(EXIT_USAGE)
}
