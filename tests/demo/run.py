#!/usr/bin/env python3
"""`make run`: the filter in a real Envoy, in front of an echo upstream, with a demo token.

Starts, all on 127.0.0.1:
  - an echo upstream (every request -> 200 with a JSON body: method, path, request headers);
  - Envoy with the built module in envoy.filters.http.wasm, listener on $PORT (10000),
    admin on $ADMIN_PORT (9901); the plugin config is the README's demo (provider "demo",
    inline JWKS derived from tests/demo/demo-key.json, /public open, everything else needs a token);
then prints an RS256 demo token and curl lines, and stays in the foreground until Ctrl-C or
SIGTERM, when it stops Envoy and the upstream and exits 0.

  --check (or DEMO_CHECK=1): instead of waiting, send the three requests itself, assert
  200 / 401 / 200 and what the upstream saw, print PASS or FAIL, exit 0 or 1. In this mode
  PORT and ADMIN_PORT default to 0 (free ports), so it never clashes with a running demo.

  --print-token: print a fresh demo token and exit (for manifests/envoy/envoy.yaml, whose
  JWKS is the public half of the same demo key). --print-config: print the demo plugin
  configuration and exit (tests/manifests.rs validates it).

Environment: PORT, ADMIN_PORT, ENVOY_BIN (default `envoy`), WASM (the module; default
target/wasm32-wasip1/release/jwt_authn_wasm.wasm), DEMO_CHECK. If a real func-e (tetratelabs)
is on PATH it runs Envoy; otherwise `envoy`. Python standard library only: the token is signed
here with textbook RSA PKCS#1 v1.5, which is fine for a demo key and nothing else.
"""

import argparse
import base64
import ctypes
import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
KEY_FILE = HERE / "demo-key.json"

HOST = "127.0.0.1"
PROVIDER = "demo"
ISSUER = "https://demo.jwt-authn-wasm.local"
AUDIENCE = "demo-api"
SUBJECT = "demo-user"
TOKEN_LIFETIME_S = 3600
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10

# DER of DigestInfo{ sha256, NULL } without the digest: the EMSA-PKCS1-v1_5 prefix (RFC 8017 §9.2).
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


# ---------------------------------------------------------------- keys and tokens


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def load_key() -> dict:
    key = json.loads(KEY_FILE.read_text())
    if key.get("kty") != "RSA" or not all(key.get(f) for f in ("n", "e", "d", "kid")):
        raise SystemExit(f"{KEY_FILE}: not an RSA private JWK with n, e, d and kid")
    return key


def public_jwks(key: dict) -> dict:
    """The JWKS the filter trusts: the public half of the demo key."""
    return {"keys": [{"kty": "RSA", "kid": key["kid"], "alg": "RS256", "use": "sig",
                      "n": key["n"], "e": key["e"]}]}


def rs256_sign(key: dict, message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-256: EMSA-PKCS1-v1_5 encoding, then m^d mod n."""
    n, e, d = (b64url_int(key[f]) for f in ("n", "e", "d"))
    k = (n.bit_length() + 7) // 8
    t = SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    if k < len(t) + 11:
        raise SystemExit("demo key too short for RS256")
    em = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    m = int.from_bytes(em, "big")
    s = pow(m, d, n)
    if pow(s, e, n) != m:  # a key file with mismatched n/e/d would make every request a 401
        raise SystemExit(f"{KEY_FILE}: d does not match n and e")
    return s.to_bytes(k, "big")


def mint_token(key: dict) -> str:
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": key["kid"]}
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": SUBJECT, "iat": now,
              "exp": now + TOKEN_LIFETIME_S}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
    return signing_input + "." + b64url(rs256_sign(key, signing_input.encode()))


def plugin_config(jwks: dict) -> dict:
    """The README's demo configuration, in Envoy jwt_authn JSON."""
    return {
        "providers": {
            PROVIDER: {
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
                "local_jwks": {"inline_string": json.dumps(jwks)},
                "forward_payload_header": "x-jwt-payload",
                "claim_to_headers": [{"header_name": "x-jwt-sub", "claim_name": "sub"}],
            }
        },
        "rules": [
            {"match": {"prefix": "/public"}},
            {"match": {"prefix": "/"}, "requires": {"provider_name": PROVIDER}},
        ],
    }


# ---------------------------------------------------------------- echo upstream


class EchoHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request 200 with {method, path, headers} as pretty JSON."""

    protocol_version = "HTTP/1.1"  # keep-alive, as Envoy's upstream connections expect
    server_version = "jwt-authn-wasm-demo-echo"

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _echo(self) -> None:
        body = self._read_body()
        headers: dict = {}
        for name, value in self.headers.items():
            name = name.lower()
            if name in headers:
                previous = headers[name]
                headers[name] = (previous if isinstance(previous, list) else [previous]) + [value]
            else:
                headers[name] = value
        seen = {"method": self.command, "path": self.path, "headers": headers}
        if body:
            seen["body_bytes"] = len(body)
        self.server.seen.append(seen)
        if self.server.verbose:
            sub = f"  x-jwt-sub: {headers['x-jwt-sub']}" if "x-jwt-sub" in headers else ""
            print(f"upstream <- {self.command} {self.path}{sub}", flush=True)
        out = (json.dumps(seen, indent=2, sort_keys=True) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _echo

    def log_message(self, format, *args):  # noqa: A002 - quiet; _echo prints its own line
        pass


class EchoServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, verbose: bool):
        super().__init__((HOST, 0), EchoHandler)
        self.verbose = verbose
        self.seen: list = []


# ---------------------------------------------------------------- Envoy


def bootstrap(port: int, admin_port: int, upstream_port: int, wasm: Path, config: dict) -> dict:
    def address(p):
        return {"socket_address": {"address": HOST, "port_value": p}}

    wasm_filter = {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "jwt_authn_wasm",
                "root_id": "jwt_authn_wasm",
                "failure_policy": "FAIL_CLOSED",
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": json.dumps(config),
                },
                "vm_config": {
                    "vm_id": "jwt_authn_wasm",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": str(wasm)}},
                },
            },
        },
    }
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }
    hcm = {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "demo",
            "route_config": {"virtual_hosts": [{
                "name": "demo", "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "echo"}}],
            }]},
            "http_filters": [wasm_filter, router],
        },
    }
    return {
        "node": {"id": "jwt-authn-wasm-demo", "cluster": "jwt-authn-wasm-demo"},
        "admin": {"address": address(admin_port)},
        "static_resources": {
            "listeners": [{"name": "demo", "address": address(port),
                           "filter_chains": [{"filters": [hcm]}]}],
            "clusters": [{
                "name": "echo", "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": "echo", "endpoints": [
                    {"lb_endpoints": [{"endpoint": {"address": address(upstream_port)}}]}]},
            }],
        },
    }


def real_func_e():
    """The path of tetratelabs' func-e if it is on PATH. PyPI's `func-e` is unrelated: skip it."""
    path = shutil.which("func-e")
    if not path:
        return None
    try:
        text = "".join(
            (r.stdout or "") + (r.stderr or "")
            for r in (subprocess.run([path, arg], capture_output=True, text=True, timeout=10,
                                     stdin=subprocess.DEVNULL) for arg in ("--version", "--help")))
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "envoy" in text.lower() else None


try:
    _PRCTL = ctypes.CDLL(None).prctl
except (OSError, AttributeError):  # not Linux
    _PRCTL = None


def die_with_parent(parent: int = os.getpid()):
    """In the forked child: get SIGTERM when this script dies, even by SIGKILL (Linux only)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl
            os.kill(os.getpid(), signal.SIGTERM)


def port_is_free(port: int) -> bool:
    if port == 0:
        return True
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def http_get(url: str, headers=None, timeout=10.0):
    """(status, body) without following proxies from the environment."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of Envoy's log, the warnings and errors first."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    bad = [line for line in text if any(f"][{lvl}][" in line for lvl in ("warning", "error", "critical"))]
    return "\n".join((bad or text)[-lines:] + ([text[-1]] if bad and text[-1] not in bad else []))


class Stop(Exception):
    """Raised by the SIGINT/SIGTERM handler."""


class Demo:
    def __init__(self, port: int, admin_port: int, wasm: Path, config: dict, verbose: bool):
        self.port, self.admin_port = port, admin_port
        self.wasm, self.config, self.verbose = wasm, config, verbose
        self.dir = Path(tempfile.mkdtemp(prefix="jwt-authn-wasm-demo-"))
        self.log = self.dir / "envoy.log"
        self.upstream = None
        self.serving = None
        self.envoy = None
        self.keep_dir = False

    def start(self) -> None:
        for name, port in (("PORT", self.port), ("ADMIN_PORT", self.admin_port)):
            if not port_is_free(port):
                raise SystemExit(f"{HOST}:{port} is in use (another `make run`?); "
                                 f"set {name}=<free port>")
        # Bind the upstream first (its port goes into the bootstrap); serve it after Envoy is
        # spawned, so that no thread exists while the child is forked.
        self.upstream = EchoServer(self.verbose)
        config_path = self.dir / "envoy.json"
        config_path.write_text(json.dumps(
            bootstrap(self.port, self.admin_port, self.upstream.server_address[1], self.wasm,
                      self.config), indent=2))
        admin_file = self.dir / "admin-address"
        func_e = real_func_e()
        launcher = [func_e, "run"] if func_e else [os.environ.get("ENVOY_BIN") or "envoy"]
        base_id = (os.getpid() % 1_000_000) * 64 + 63
        cmd = launcher + [
            "-c", str(config_path), "--concurrency", "1", "--base-id", str(base_id),
            "--disable-hot-restart", "--log-level", "warn",
            "--component-log-level", "wasm:debug", "--admin-address-path", str(admin_file)]
        self.launcher = " ".join(launcher)
        with open(self.log, "wb") as log:
            try:
                self.envoy = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches only us; we stop Envoy in order
                    preexec_fn=die_with_parent)
            except OSError as err:
                raise SystemExit(f"cannot start {launcher[0]}: {err}. Is Envoy installed? "
                                 "`make run` installs it (tests/ensure-envoy.sh).") from None
        self.serving = threading.Thread(target=self.upstream.serve_forever,
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self.serving.start()
        self._wait_ready(admin_file)

    def _wait_ready(self, admin_file: Path) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.envoy.poll() is not None:
                self.fail(f"Envoy exited with code {self.envoy.returncode} before it was ready")
            if admin_file.is_file() and admin_file.read_text().strip():
                self.admin_port = int(admin_file.read_text().strip().rsplit(":", 1)[1])
                try:
                    status, body = http_get(self.admin_url("/ready"), timeout=2)
                except OSError:
                    status, body = 0, ""
                if status == 200 and body.strip() == "LIVE":
                    listeners = json.loads(http_get(self.admin_url("/listeners?format=json"))[1])
                    self.port = listeners["listener_statuses"][0]["local_address"][
                        "socket_address"]["port_value"]
                    return
            time.sleep(0.2)
        self.fail(f"Envoy was not ready after {READY_TIMEOUT_S}s")

    def fail(self, why: str):
        self.keep_dir = True
        raise SystemExit(f"{why}. From {self.log}:\n{tail(self.log)}")

    def admin_url(self, path: str) -> str:
        return f"http://{HOST}:{self.admin_port}{path}"

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def wait(self) -> None:
        """Until a signal (raises Stop) or until Envoy dies on its own."""
        while self.envoy.poll() is None:
            time.sleep(0.5)
        self.fail(f"Envoy exited unexpectedly with code {self.envoy.returncode}")

    def stop(self) -> None:
        if self.envoy is not None and self.envoy.poll() is None:
            self.envoy.terminate()
            try:
                self.envoy.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.envoy.kill()
                self.envoy.wait()
        if self.upstream is not None:
            if self.serving is not None:
                self.upstream.shutdown()
            self.upstream.server_close()
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- modes


def print_instructions(demo: Demo, token: str) -> None:
    url = demo.url("/hello")
    print(f"""
jwt-authn-wasm demo is up ({demo.launcher}; module {demo.wasm})
  client -> Envoy {HOST}:{demo.port} -> jwt-authn-wasm -> echo upstream {HOST}:{demo.upstream.server_address[1]}

Demo token (RS256, kid "demo", iss {ISSUER}, aud {AUDIENCE}, sub {SUBJECT}, valid 1 hour):
{token}

# 200: the echo shows x-jwt-sub: demo-user and x-jwt-payload, and no Authorization header
curl -s -H 'Authorization: Bearer {token}' {url}

# 401: no token
curl -i {url}

# 200: /public needs no token
curl -s {demo.url("/public")}

# Envoy admin, the filter's stats:
{demo.admin_url("/stats?filter=wasm")}

Envoy log: {demo.log}
Press Ctrl-C to stop.
""", flush=True)


def run_check(demo: Demo, token: str) -> bool:
    results = []

    def expect(ok: bool, what: str, detail: str = "") -> None:
        results.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {what}" + ("" if ok or not detail else f": {detail}"),
              flush=True)

    status, body = http_get(demo.url("/hello"), {"Authorization": f"Bearer {token}"})
    expect(status == 200, "GET /hello with the demo token -> 200", f"got {status} {body[:300]!r}")
    try:
        seen = json.loads(body)["headers"] if status == 200 else {}
    except (ValueError, KeyError, TypeError):
        seen = {}
    expect(seen.get("x-jwt-sub") == SUBJECT, f"upstream saw x-jwt-sub: {SUBJECT}",
           f"upstream headers {json.dumps(seen)}")
    expect(status == 200 and "authorization" not in seen,
           "upstream saw no Authorization header", f"upstream headers {json.dumps(seen)}")

    before = len(demo.upstream.seen)
    status, body = http_get(demo.url("/hello"))
    expect(status == 401, "GET /hello without a token -> 401", f"got {status} {body[:300]!r}")
    expect(len(demo.upstream.seen) == before, "the 401 request never reached the upstream")

    status, body = http_get(demo.url("/public"))
    expect(status == 200, "GET /public without a token -> 200", f"got {status} {body[:300]!r}")

    passed = sum(results)
    print(f"check: {passed} passed, {len(results) - passed} failed")
    print("PASS" if all(results) else f"FAIL (Envoy log: {demo.log})", flush=True)
    return all(results)


def env_port(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) > 65535:
        raise SystemExit(f"{name}={value!r} is not a port number")
    return int(value)


def on_signal(signum, _frame):
    raise Stop(signum)


def main() -> int:
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        return demo_main()
    except Stop:
        return 0


def demo_main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="send the demo requests, assert the answers, exit (also DEMO_CHECK=1)")
    parser.add_argument("--print-token", action="store_true",
                        help="print a fresh demo token (valid one hour) and exit")
    parser.add_argument("--print-config", action="store_true",
                        help="print the demo plugin configuration (JSON) and exit")
    args = parser.parse_args()
    if args.print_token:
        print(mint_token(load_key()))
        return 0
    if args.print_config:
        print(json.dumps(plugin_config(public_jwks(load_key())), indent=2))
        return 0
    check = args.check or os.environ.get("DEMO_CHECK", "").strip() not in ("", "0")

    target_dir = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    wasm = Path(os.environ.get("WASM") or target_dir / "wasm32-wasip1/release/jwt_authn_wasm.wasm")
    if not wasm.is_file():
        raise SystemExit(f"{wasm} not found: run `make build` first (or `make run`)")
    key = load_key()
    token = mint_token(key)
    demo = Demo(env_port("PORT", 0 if check else 10000),
                env_port("ADMIN_PORT", 0 if check else 9901),
                wasm.resolve(), plugin_config(public_jwks(key)), verbose=not check)
    try:
        demo.start()
        if check:
            return 0 if run_check(demo, token) else 1
        print_instructions(demo, token)
        demo.wait()
    except Stop:
        print("\nstopping Envoy and the echo upstream", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        demo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
