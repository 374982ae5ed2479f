//! A real Envoy process for end-to-end tests.
//!
//! `Envoy::start` writes a bootstrap into a fresh directory under `CARGO_TARGET_TMPDIR`, runs
//! `envoy` (or `$ENVOY_BIN`) with `--concurrency 1`, and returns once the admin `/ready`
//! endpoint answers `LIVE`. Bootstraps bind every port to 0: Envoy picks free ports, writes the
//! admin address to a file (`--admin-address-path`), and the listener ports are read from the
//! admin `/listeners` endpoint. Nothing is guessed, so tests in parallel threads never race for a
//! port.
//!
//! Envoy runs under a tiny `sh` watchdog whose stdin is a pipe held by this process: when the
//! test process exits (even without running destructors, as with shared `static` instances) the
//! pipe closes and the watchdog kills Envoy. `Drop` closes the pipe early and waits.
//!
//! This module must not know about JWTs or filters; bootstraps come from `bootstrap.rs`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use super::http::Request;

/// How long Envoy gets to become `LIVE` (or to exit, for configs it must refuse).
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines of log shown when Envoy fails to start.
const LOG_TAIL_LINES: usize = 40;

/// Runs Envoy in the background and kills it when stdin (a pipe from the test process) closes.
/// `$1` = envoy binary, `$2` = log file, `$3` = pid file, the rest = Envoy's arguments.
const WATCHDOG: &str = r#"
bin=$1; log=$2; pidfile=$3; shift 3
exec 3<&0
"$bin" "$@" >"$log" 2>&1 </dev/null &
e=$!
echo "$e" >"$pidfile"
( read -r _ <&3; kill "$e" 2>/dev/null ) >/dev/null 2>&1 &
exec 3<&-
wait "$e"
"#;

static NEXT_INSTANCE: AtomicU32 = AtomicU32::new(0);
static PRUNE: Once = Once::new();

/// Why `Envoy::try_start` returned without a `LIVE` Envoy.
#[derive(Debug)]
pub enum StartError {
    /// Envoy exited before becoming ready (a refused config lands here).
    Exited {
        /// Envoy's exit code; `None` if it died from a signal.
        code: Option<i32>,
        /// The whole log (stdout and stderr).
        log: String,
    },
    /// Envoy neither became `LIVE` nor exited within `START_TIMEOUT`; it has been killed.
    Timeout {
        /// The whole log.
        log: String,
    },
    /// The process could not be spawned at all (no `envoy` on PATH?).
    Spawn(String),
}

impl StartError {
    /// The log Envoy wrote before failing (empty for `Spawn`).
    pub fn log(&self) -> &str {
        match self {
            StartError::Exited { log, .. } | StartError::Timeout { log } => log,
            StartError::Spawn(_) => "",
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Exited { code, log } => write!(
                f,
                "Envoy exited before becoming ready (exit code {code:?}); last log lines:\n{}",
                tail(log, LOG_TAIL_LINES)
            ),
            StartError::Timeout { log } => write!(
                f,
                "Envoy was not LIVE after {START_TIMEOUT:?}; last log lines:\n{}",
                tail(log, LOG_TAIL_LINES)
            ),
            StartError::Spawn(msg) => write!(f, "could not run Envoy: {msg}"),
        }
    }
}

/// A running Envoy. Dropping it stops the process.
pub struct Envoy {
    dir: PathBuf,
    log_path: PathBuf,
    watchdog: Child,
    watchdog_stdin: Option<ChildStdin>,
    admin_port: u16,
    listeners: BTreeMap<String, u16>,
}

impl Envoy {
    /// Starts Envoy with `bootstrap` (JSON if it starts with `{`, YAML otherwise) and waits until
    /// it is `LIVE`. Panics with the last log lines if it exits early or times out.
    pub fn start(bootstrap: &str) -> Envoy {
        match Envoy::try_start(bootstrap) {
            Ok(envoy) => envoy,
            Err(err) => panic!("{err}"),
        }
    }

    /// `start` with `--concurrency n`: n worker threads, each with its own wasm VM.
    pub fn start_with_concurrency(bootstrap: &str, concurrency: u32) -> Envoy {
        match Envoy::try_start_with(bootstrap, concurrency, "debug") {
            Ok(envoy) => envoy,
            Err(err) => panic!("{err}"),
        }
    }

    /// Starts Envoy and returns it once `LIVE`, or why it is not.
    pub fn try_start(bootstrap: &str) -> Result<Envoy, StartError> {
        Envoy::try_start_with(bootstrap, 1, "debug")
    }

    /// `start` for measurements: the `wasm` logger at `info`, so a denial's debug line costs
    /// nothing in the host (Envoy's default; tests keep `debug` for the story of a failure).
    pub fn start_quiet(bootstrap: &str) -> Envoy {
        match Envoy::try_start_with(bootstrap, 1, "info") {
            Ok(envoy) => envoy,
            Err(err) => panic!("{err}"),
        }
    }

    /// The Envoy process id.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("envoy.pid"))
            .ok()
            .and_then(|pid| pid.trim().parse().ok())
    }

    fn try_start_with(
        bootstrap: &str,
        concurrency: u32,
        wasm_log_level: &str,
    ) -> Result<Envoy, StartError> {
        let instance = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("envoy");
        PRUNE.call_once(|| prune_dead_runs(&root));
        let dir = root.join(format!("{pid}-{instance}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| StartError::Spawn(format!("{dir:?}: {e}")))?;
        let ext = if bootstrap.trim_start().starts_with('{') {
            "json"
        } else {
            "yaml"
        };
        let config_path = dir.join(format!("envoy.{ext}"));
        std::fs::write(&config_path, bootstrap)
            .map_err(|e| StartError::Spawn(format!("{config_path:?}: {e}")))?;
        let log_path = dir.join("envoy.log");
        let admin_path = dir.join("admin-address");
        // --base-id is unused with --disable-hot-restart, but keep it unique anyway so that an
        // accidental hot-restart setting can never make two test Envoys share memory.
        let base_id = (pid % 1_000_000) * 64 + instance % 64;
        let bin = std::env::var("ENVOY_BIN").unwrap_or_else(|_| "envoy".to_string());

        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("envoy-watchdog")
            .arg(&bin)
            .arg(&log_path)
            .arg(dir.join("envoy.pid"))
            .arg("-c")
            .arg(&config_path)
            .arg("--concurrency")
            .arg(concurrency.to_string())
            .arg("--base-id")
            .arg(base_id.to_string())
            .args(["--disable-hot-restart", "--log-level", "warn"])
            .arg("--component-log-level")
            .arg(format!("wasm:{wasm_log_level}"))
            .arg("--admin-address-path")
            .arg(&admin_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| StartError::Spawn(format!("sh: {e}")))?;
        let watchdog_stdin = watchdog.stdin.take();
        let mut envoy = Envoy {
            dir,
            log_path,
            watchdog,
            watchdog_stdin,
            admin_port: 0,
            listeners: BTreeMap::new(),
        };

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = envoy.watchdog.try_wait() {
                return Err(StartError::Exited {
                    code: status.code(),
                    log: envoy.log(),
                });
            }
            if envoy.admin_port == 0 {
                envoy.admin_port = read_admin_port(&admin_path).unwrap_or(0);
            }
            if envoy.admin_port != 0 {
                if let Some(resp) = envoy.admin_try("/ready") {
                    if resp.status == 200 && resp.body_str().trim() == "LIVE" {
                        envoy.listeners = envoy.read_listener_ports();
                        return Ok(envoy);
                    }
                }
            }
            if Instant::now() > deadline {
                envoy.stop();
                return Err(StartError::Timeout { log: envoy.log() });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Runs Envoy with a config it must refuse: returns its exit code and log. Panics if Envoy
    /// becomes `LIVE` instead (the config was accepted) or never exits.
    pub fn expect_refused(bootstrap: &str) -> (Option<i32>, String) {
        match Envoy::try_start(bootstrap) {
            Ok(envoy) => panic!(
                "Envoy accepted a config it should refuse; last log lines:\n{}",
                tail(&envoy.log(), LOG_TAIL_LINES)
            ),
            Err(StartError::Exited { code, log }) => (code, log),
            Err(err) => panic!("{err}"),
        }
    }

    /// The port Envoy bound for the listener called `name`.
    pub fn port(&self, listener: &str) -> u16 {
        match self.listeners.get(listener) {
            Some(port) => *port,
            None => panic!("no listener {listener:?}; Envoy has {:?}", self.listeners),
        }
    }

    /// The admin port.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// The directory holding the bootstrap and the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Everything Envoy has logged so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` log lines, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log(), n)
    }

    /// GET an admin path; panics if the admin interface does not answer.
    pub fn admin(&self, path: &str) -> super::http::Response {
        match self.admin_try(path) {
            Some(resp) => resp,
            None => panic!(
                "Envoy admin {path} did not answer; last log lines:\n{}",
                self.log_tail(40)
            ),
        }
    }

    /// Log lines that show the wasm VM failed: a panic (the SDK's hook says `panicked`, ours
    /// `PANIC`), a trap, a failed callback, a fail-closed stream. A crash must never hide
    /// behind a plausible status.
    pub fn wasm_failures(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| {
                l.contains("panicked")
                    || l.contains("PANIC")
                    || l.contains("RuntimeError")
                    || l.contains("wasm_fail_stream")
                    || l.contains("Function: proxy_")
                    || l.contains("][critical][")
                    || (l.contains("][error][wasm]") && l.contains("failed"))
            })
            .map(str::to_owned)
            .collect()
    }

    /// All stats from admin `/stats` as `name -> value` (values as text: histograms are not
    /// numbers).
    pub fn stats(&self) -> BTreeMap<String, String> {
        let resp = self.admin("/stats");
        resp.body_str()
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                Some((name.to_string(), value.to_string()))
            })
            .collect()
    }

    /// One counter or gauge; `None` if Envoy does not have it.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let resp = self.admin(&format!("/stats?filter=^{}$", name.replace('.', "\\.")));
        resp.body_str().lines().find_map(|line| {
            let (n, v) = line.split_once(": ")?;
            if n == name {
                v.trim().parse().ok()
            } else {
                None
            }
        })
    }

    /// Envoy's `wasm.*` stats whose name says failure and whose value is not 0
    /// (`vm_reload_failure`, ...).
    pub fn wasm_failure_stats(&self) -> Vec<(String, String)> {
        self.stats()
            .into_iter()
            .filter(|(k, v)| k.starts_with("wasm.") && k.contains("fail") && v != "0")
            .collect()
    }

    fn admin_try(&self, path: &str) -> Option<super::http::Response> {
        Request::get(path)
            .host("127.0.0.1")
            .try_send(self.admin_port)
            .ok()
    }

    fn read_listener_ports(&self) -> BTreeMap<String, u16> {
        let resp = self.admin("/listeners?format=json");
        let json: serde_json::Value = match serde_json::from_slice(&resp.body) {
            Ok(v) => v,
            Err(e) => panic!("admin /listeners is not JSON ({e}): {}", resp.body_str()),
        };
        let mut ports = BTreeMap::new();
        for l in json["listener_statuses"].as_array().into_iter().flatten() {
            let name = l["name"].as_str().unwrap_or_default().to_string();
            let port = l["local_address"]["socket_address"]["port_value"]
                .as_u64()
                .unwrap_or(0);
            ports.insert(name, port as u16);
        }
        ports
    }

    /// Stops Envoy (closing the watchdog's stdin makes it send SIGTERM) and waits for it.
    fn stop(&mut self) {
        if let Some(mut stdin) = self.watchdog_stdin.take() {
            let _ = stdin.flush();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.watchdog.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Envoy ignored SIGTERM: SIGKILL it by pid, then reap the watchdog.
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("envoy.pid")) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

impl Drop for Envoy {
    /// Stops Envoy; keeps its directory (bootstrap, log) when the test is failing.
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes the directories of earlier test processes that are gone (shared `static` Envoys
/// never run `Drop`, so their directories stay until then).
fn prune_dead_runs(root: &Path) {
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().unwrap_or_default();
        if pid != std::process::id().to_string() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn read_admin_port(path: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().rsplit(':').next()?.parse().ok()
}

/// The last `n` lines of `log`.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
