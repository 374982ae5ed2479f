//! `jwt-authn-explain`: how jwt-authn-wasm decides one request, step by step, offline (feature
//! `explain`). The I/O only: arguments, files, the clock, printing, the exit status; the rest
//! is `jwt_authn_wasm::explain`, which runs the filter's own core.

use std::process::ExitCode;

use jwt_authn_wasm::config::Config;
use jwt_authn_wasm::explain::{
    check_config, explain, parse_args, request_headers, Command, Keys, Options, EXIT_USAGE, USAGE,
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
    let mut given = Vec::new();
    for (name, file) in options.jwks {
        let bytes = read(&file)?;
        given.push((name, file, bytes));
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
