# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start and stop Debian's ``docker-registry`` (CNCF distribution 2.8) on 127.0.0.1 for tests and the demo.

Command line::

    python3 scripts/registry.py start --root DIR [--port 5000] [--tls] [--htpasswd USER:PASS]
                                      [--token-realm URL --token-cert PEM --token-service S --token-issuer I]
    python3 scripts/registry.py status --root DIR     # exit 0 if the registry under DIR answers /v2/
    python3 scripts/registry.py stop --root DIR

As a library (the integration tests' fixtures)::

    reg = start_registry(tmp_dir, tls=True, htpasswd=("user", "secret"))
    reg.url, reg.host, reg.ca_path, reg.username, reg.password, reg.request_log(), reg.stop()

Everything lives under the root directory: ``config.yml`` (written as JSON, which is YAML), ``data/`` (filesystem
storage), ``tls/`` (a self-signed CA and a server certificate for IP:127.0.0.1 made with the ``openssl`` CLI),
``auth/htpasswd`` (bcrypt, made with ``htpasswd -B``), ``access.log`` (the registry's combined-format access
log, one line per request), ``registry.log`` (its own log), ``registry.pid`` and ``registry.json`` (url, host,
ca_path, username; never the password). The packaged config and systemd unit are never used.

Only the standard library is used, so the script runs with any ``python3`` >= 3.9.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Optional

REGISTRY_BINARY = "docker-registry"
LOOPBACK = "127.0.0.1"
STATE_FILE = "registry.json"
PID_FILE = "registry.pid"
ACCESS_LOG = "access.log"
REGISTRY_LOG = "registry.log"
CONFIG_FILE = "config.yml"

# Registries started by this process in library mode; stopped at interpreter exit so no test leaks one.
_LIVE: dict[int, RegistryProcess] = {}


class RegistryStartError(RuntimeError):
    """The registry (or a tool it needs: openssl, htpasswd) could not be started or prepared."""


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed test CA made by :func:`make_ca`: PEM certificate and its unencrypted key."""

    cert_path: str
    key_path: str


@dataclass(frozen=True)
class IssuedCert:
    """A certificate signed by a :class:`CertificateAuthority`: PEM certificate and its unencrypted key."""

    cert_path: str
    key_path: str


@dataclass(frozen=True)
class TokenAuth:
    """The registry side of Docker's token protocol: where clients get tokens and whose signatures to trust.

    ``rootcertbundle`` holds the CA certificate(s) that the token signer's ``x5c`` chain must verify against.
    """

    realm: str
    service: str
    issuer: str
    rootcertbundle: str


@dataclass(frozen=True)
class AccessLogEntry:
    """One request as the registry's access log (Apache combined format) recorded it."""

    method: str
    path: str
    status: int
    size: int
    user_agent: str
    remote: str
    time: str


_ACCESS_RE = re.compile(
    r'^(?P<remote>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) [^"]*" '
    r'(?P<status>\d{3}) (?P<size>\d+|-) "[^"]*" "(?P<ua>[^"]*)"'
)


def parse_access_log(text: str) -> list[AccessLogEntry]:
    """Parse the registry's combined-format access log; lines that are not requests are ignored."""
    entries = []
    for line in text.splitlines():
        m = _ACCESS_RE.match(line)
        if not m:
            continue
        size = m.group("size")
        entries.append(
            AccessLogEntry(
                method=m.group("method"),
                path=m.group("path"),
                status=int(m.group("status")),
                size=0 if size == "-" else int(size),
                user_agent=m.group("ua"),
                remote=m.group("remote"),
                time=m.group("time"),
            )
        )
    return entries


@dataclass
class RegistryProcess:
    """A running registry. ``stop()`` ends it; it is also stopped at interpreter exit if started here."""

    url: str
    host: str
    port: int
    root: str
    pid: int
    tls: bool = False
    ca_path: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    token: Optional[TokenAuth] = None
    # Filled in by test fixtures that pair the registry with a token server (tests/integration/token_server.py).
    token_server: Any = field(default=None, repr=False, compare=False)
    _popen: Optional[subprocess.Popen] = field(default=None, repr=False, compare=False)

    @property
    def access_log_path(self) -> str:
        return os.path.join(self.root, ACCESS_LOG)

    @property
    def log_path(self) -> str:
        return os.path.join(self.root, REGISTRY_LOG)

    @property
    def data_dir(self) -> str:
        return os.path.join(self.root, "data")

    def ssl_context(self) -> Optional[ssl.SSLContext]:
        """An SSL context that trusts only this registry's CA (None for plain http)."""
        return ssl.create_default_context(cafile=self.ca_path) if self.tls else None

    def ping(self, timeout: float = 5.0) -> int:
        """GET /v2/ without credentials; returns the HTTP status (200 open, 401 auth required)."""
        return _ping(self.url, self.ssl_context(), timeout)

    def alive(self) -> bool:
        """True while the registry process exists."""
        if self._popen is not None:
            return self._popen.poll() is None
        return _is_our_registry(self.pid, self.root)

    def request_log(self, since: int = 0) -> list[AccessLogEntry]:
        """Requests the registry has logged, optionally only those after a :meth:`mark`.

        The registry writes a log line just after it answers, so this waits briefly until the log stops
        growing: a request a test just made is in the list.
        """
        previous = None
        deadline = time.monotonic() + 1.0
        while True:
            try:
                with open(self.access_log_path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
            except FileNotFoundError:
                text = ""
            if text == previous or time.monotonic() > deadline:
                break
            previous = text
            time.sleep(0.05)
        return parse_access_log(text)[since:]

    def request_count(self) -> int:
        """How many requests the registry has answered so far."""
        return len(self.request_log())

    def mark(self) -> int:
        """A position in the request log: ``request_log(since=reg.mark())`` lists only later requests."""
        return self.request_count()

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the registry (SIGTERM, then SIGKILL) and remove its pid file. Idempotent."""
        if self._popen is not None:
            if self._popen.poll() is None:
                self._popen.terminate()
                try:
                    self._popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._popen.kill()
                    self._popen.wait(timeout)
        elif _is_our_registry(self.pid, self.root):
            _kill_and_wait(self.pid, timeout)
        _LIVE.pop(self.pid, None)
        for name in (PID_FILE, STATE_FILE):
            try:
                os.unlink(os.path.join(self.root, name))
            except FileNotFoundError:
                pass

    def to_state(self) -> dict[str, Any]:
        """What ``registry.json`` records (no password)."""
        return {
            "url": self.url,
            "host": self.host,
            "port": self.port,
            "pid": self.pid,
            "tls": self.tls,
            "ca_path": self.ca_path,
            "username": self.username,
            "token_realm": self.token.realm if self.token else None,
        }


@atexit.register
def _stop_all() -> None:
    for reg in list(_LIVE.values()):
        try:
            reg.stop(timeout=5)
        except Exception:  # noqa: BLE001 - best effort at exit; nothing left to report to
            pass


# --- TLS material (openssl CLI) ---------------------------------------------------------------------------


def _run(cmd: list[str], what: str, stdin: Optional[str] = None) -> str:
    exe = shutil.which(cmd[0])
    if exe is None:
        raise RegistryStartError(f"{what}: {cmd[0]} is not installed. Run scripts/install-deps.sh as root.")
    proc = subprocess.run(
        [exe] + cmd[1:], input=stdin, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RegistryStartError(f"{what}: {cmd[0]} failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return proc.stdout


# EC P-256 keys are made in milliseconds (RSA takes up to a second); the token signer needs RSA for RS256.
_NEWKEY = {
    "ec": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
    "rsa": ["-newkey", "rsa:2048"],
}


def make_ca(directory: str, name: str = "dockerless test CA") -> CertificateAuthority:
    """Create (or reuse) a self-signed CA in ``directory``: ``ca.crt`` and ``ca.key`` (0600)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    ca = CertificateAuthority(os.path.join(directory, "ca.crt"), os.path.join(directory, "ca.key"))
    if os.path.exists(ca.cert_path) and os.path.exists(ca.key_path):
        return ca
    _run(
        [
            "openssl", "req", "-x509", *_NEWKEY["ec"], "-nodes", "-sha256", "-days", "3650",
            "-keyout", ca.key_path, "-out", ca.cert_path, "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ],
        f"creating test CA in {directory}",
    )
    os.chmod(ca.key_path, 0o600)
    return ca


def issue_cert(
    ca: CertificateAuthority,
    directory: str,
    name: str,
    *,
    common_name: str = LOOPBACK,
    san: str = "IP:127.0.0.1,DNS:localhost",
    usage: str = "server",
) -> IssuedCert:
    """Create (or reuse) ``<name>.crt``/``<name>.key`` in ``directory`` signed by ``ca``.

    ``usage`` is ``server`` (serverAuth, with the subjectAltName ``san``; EC P-256 key) or ``signing``
    (digitalSignature only, RSA 2048: a token server's RS256 JWT signing certificate).
    """
    os.makedirs(directory, mode=0o700, exist_ok=True)
    cert = IssuedCert(os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key"))
    if os.path.exists(cert.cert_path) and os.path.exists(cert.key_path):
        return cert
    csr = os.path.join(directory, f"{name}.csr")
    ext = os.path.join(directory, f"{name}.ext")
    _run(
        ["openssl", "req", "-new", *_NEWKEY["rsa" if usage == "signing" else "ec"], "-nodes", "-sha256", "-keyout", cert.key_path,
         "-out", csr, "-subj", f"/CN={common_name}"],
        f"creating a key and CSR for {name} in {directory}",
    )
    os.chmod(cert.key_path, 0o600)
    if usage == "server":
        lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature",
            "extendedKeyUsage=serverAuth",
            f"subjectAltName={san}",
        ]
    elif usage == "signing":
        lines = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature"]
    else:
        raise ValueError(f"issue_cert: usage must be 'server' or 'signing', not {usage!r}")
    with open(ext, "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
    _run(
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca.cert_path, "-CAkey", ca.key_path, "-CAcreateserial",
         "-sha256", "-days", "825", "-extfile", ext, "-out", cert.cert_path],
        f"signing the certificate for {name} with {ca.cert_path}",
    )
    for leftover in (csr, ext):
        os.unlink(leftover)
    return cert


def htpasswd_line(username: str, password: str) -> str:
    """A bcrypt htpasswd line made by ``htpasswd -niB`` (the password goes through stdin, never argv)."""
    if not username or ":" in username:
        raise RegistryStartError(f"htpasswd user {username!r}: must be non-empty and contain no ':'")
    out = _run(["htpasswd", "-niB", "-C", "5", username], f"hashing the password of {username}", stdin=password)
    line = out.strip().splitlines()[0]
    if not line.startswith(f"{username}:$2"):
        raise RegistryStartError(f"htpasswd for {username}: unexpected output; check apache2-utils")
    return line


# --- process management -------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _set_pdeathsig() -> None:
    """In the child: get SIGTERM when the parent dies (a killed pytest leaves no registry behind)."""
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _ping(url: str, context: Optional[ssl.SSLContext], timeout: float) -> int:
    req = urllib.request.Request(url + "/v2/", headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            status = resp.status
            headers = resp.headers
    except urllib.error.HTTPError as exc:
        status = exc.code
        headers = exc.headers
    if "Docker-Distribution-Api-Version" not in headers:
        raise RegistryStartError(f"{url}/v2/ answered {status} without Docker-Distribution-Api-Version: not a registry")
    return status


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [p.decode(errors="replace") for p in f.read().split(b"\0") if p]
    except OSError:
        return []


def _is_our_registry(pid: int, root: str) -> bool:
    """True if ``pid`` is a docker-registry serving the config under ``root`` (never kill a recycled pid)."""
    cmd = _cmdline(pid)
    if not cmd or not os.path.basename(cmd[0]).startswith(REGISTRY_BINARY):
        return False
    if _exited(pid):
        return False
    return os.path.join(os.path.abspath(root), CONFIG_FILE) in cmd


def _exited(pid: int) -> bool:
    """True once ``pid`` is gone or a zombie (dead; its parent, maybe init, has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _kill_and_wait(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # Reap it if it is our child; otherwise this raises and we poll /proc.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        if _exited(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


def write_config(
    root: str,
    port: int,
    *,
    tls: Optional[IssuedCert] = None,
    htpasswd_path: Optional[str] = None,
    token: Optional[TokenAuth] = None,
) -> str:
    """Write ``<root>/config.yml`` (JSON is valid YAML) and return its path."""
    if htpasswd_path and token:
        raise RegistryStartError("registry config: choose htpasswd or token auth, not both")
    http: dict[str, Any] = {
        "addr": f"{LOOPBACK}:{port}",
        "secret": secrets.token_hex(16),
        "headers": {"X-Content-Type-Options": ["nosniff"]},
    }
    if tls:
        http["tls"] = {"certificate": tls.cert_path, "key": tls.key_path}
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": os.path.join(root, "data")},
            "delete": {"enabled": True},
            # No blob descriptor cache: tests delete and re-push, and a cache would serve stale answers.
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": http,
    }
    if htpasswd_path:
        config["auth"] = {"htpasswd": {"realm": "dockerless-test", "path": htpasswd_path}}
    elif token:
        config["auth"] = {
            "token": {
                "realm": token.realm,
                "service": token.service,
                "issuer": token.issuer,
                "rootcertbundle": token.rootcertbundle,
            }
        }
    path = os.path.join(root, CONFIG_FILE)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    os.chmod(path, 0o600)
    return path


def start_registry(
    root: str,
    *,
    port: int = 0,
    tls: bool = False,
    ca: Optional[CertificateAuthority] = None,
    htpasswd: Optional[tuple[str, str] | str] = None,
    token: Optional[TokenAuth] = None,
    detach: bool = False,
    timeout: float = 20.0,
) -> RegistryProcess:
    """Start ``docker-registry serve`` on 127.0.0.1 with its storage under ``root``; wait until /v2/ answers.

    ``port=0`` picks a free port (retrying if another process grabs it first). ``tls`` makes a server
    certificate for IP:127.0.0.1 signed by ``ca`` (created under ``root/tls`` when not given).
    ``htpasswd`` is ``(user, password)`` or ``"user:password"``. ``detach`` starts the registry in its own
    session to outlive this process (the command line's ``start``); otherwise it dies with this process.
    """
    if shutil.which(REGISTRY_BINARY) is None:
        raise RegistryStartError(
            f"starting a registry under {root}: {REGISTRY_BINARY} is not installed. Run scripts/install-deps.sh as root."
        )
    root = os.path.abspath(root)
    os.makedirs(os.path.join(root, "data"), mode=0o700, exist_ok=True)
    existing = _read_state(root)
    if existing and _is_our_registry(int(existing.get("pid", 0)), root):
        raise RegistryStartError(
            f"starting a registry under {root}: one is already running (pid {existing['pid']}, {existing['url']}). "
            f"Stop it first: python3 scripts/registry.py stop --root {root}"
        )

    server_cert = None
    ca_path = None
    if tls:
        ca = ca or make_ca(os.path.join(root, "tls"))
        server_cert = issue_cert(ca, os.path.join(root, "tls"), "server")
        ca_path = ca.cert_path
    username = password = None
    htpasswd_path = None
    if htpasswd:
        if isinstance(htpasswd, str):
            username, sep, password = htpasswd.partition(":")
            if not sep:
                raise RegistryStartError("--htpasswd must be USER:PASS")
        else:
            username, password = htpasswd
        os.makedirs(os.path.join(root, "auth"), mode=0o700, exist_ok=True)
        htpasswd_path = os.path.join(root, "auth", "htpasswd")
        with open(htpasswd_path, "w", encoding="utf-8") as f:
            f.write(htpasswd_line(username, password) + "\n")
        os.chmod(htpasswd_path, 0o600)

    attempts = 3 if port == 0 else 1
    last_error = ""
    for _attempt in range(attempts):
        use_port = port or free_port()
        config = write_config(root, use_port, tls=server_cert, htpasswd_path=htpasswd_path, token=token)
        scheme = "https" if tls else "http"
        url = f"{scheme}://{LOOPBACK}:{use_port}"
        access_log = open(os.path.join(root, ACCESS_LOG), "wb")  # noqa: SIM115 - handed to the child
        registry_log = open(os.path.join(root, REGISTRY_LOG), "wb")  # noqa: SIM115
        try:
            popen = subprocess.Popen(
                [shutil.which(REGISTRY_BINARY) or REGISTRY_BINARY, "serve", config],
                stdin=subprocess.DEVNULL,
                stdout=access_log,
                stderr=registry_log,
                cwd=root,
                close_fds=True,
                start_new_session=detach,
                preexec_fn=None if detach else _set_pdeathsig,  # noqa: PLW1509 - prctl only, no locks taken
            )
        finally:
            access_log.close()
            registry_log.close()
        reg = RegistryProcess(
            url=url, host=f"{LOOPBACK}:{use_port}", port=use_port, root=root, pid=popen.pid, tls=tls,
            ca_path=ca_path, username=username, password=password, token=token,
            _popen=None if detach else popen,
        )
        if not detach:
            _LIVE[popen.pid] = reg
        context = reg.ssl_context()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                break
            try:
                _ping(url, context, 1.0)
            except (OSError, RegistryStartError):
                time.sleep(0.05)
                continue
            _write_state(reg)
            return reg
        log = _tail(reg.log_path)
        reg.stop()
        if detach:
            popen.wait(5)
        last_error = log
        if "address already in use" not in log:
            break
    raise RegistryStartError(
        f"starting a registry under {root}: it did not answer /v2/ within {timeout:.0f}s. "
        f"Its log ({os.path.join(root, REGISTRY_LOG)}) ends with:\n{last_error}"
    )


def _write_state(reg: RegistryProcess) -> None:
    with open(os.path.join(reg.root, PID_FILE), "w", encoding="ascii") as f:
        f.write(f"{reg.pid}\n")
    tmp = os.path.join(reg.root, STATE_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(reg.to_state(), f, indent=2)
    os.replace(tmp, os.path.join(reg.root, STATE_FILE))


def _read_state(root: str) -> Optional[dict[str, Any]]:
    try:
        with open(os.path.join(root, STATE_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def attach(root: str) -> Optional[RegistryProcess]:
    """The registry started under ``root`` (by the command line or another process), or None if not running."""
    root = os.path.abspath(root)
    state = _read_state(root)
    if not state or not _is_our_registry(int(state.get("pid", 0)), root):
        return None
    return RegistryProcess(
        url=state["url"], host=state["host"], port=int(state["port"]), root=root, pid=int(state["pid"]),
        tls=bool(state.get("tls")), ca_path=state.get("ca_path"), username=state.get("username"),
    )


def stop_registry(root: str, timeout: float = 10.0) -> bool:
    """Stop the registry running under ``root``. Returns False if none was running."""
    reg = attach(root)
    if reg is None:
        for name in (PID_FILE, STATE_FILE):
            try:
                os.unlink(os.path.join(os.path.abspath(root), name))
            except FileNotFoundError:
                pass
        return False
    reg.stop(timeout)
    return True


# --- command line -----------------------------------------------------------------------------------------


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Run Debian's docker-registry on 127.0.0.1 for tests and demos.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="start a registry in the background and print its URL")
    p_start.add_argument("--root", required=True, help="directory for config, storage, TLS files, logs, pid")
    p_start.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (0 picks a free one)")
    p_start.add_argument("--tls", action="store_true", help="serve https with a self-signed CA (ROOT/tls/ca.crt)")
    p_start.add_argument("--htpasswd", metavar="USER:PASS", help="require basic auth for this user")
    p_start.add_argument("--token-realm", metavar="URL", help="token auth: the token server's URL")
    p_start.add_argument("--token-cert", metavar="PEM", help="token auth: CA bundle the token signer chains to")
    p_start.add_argument("--token-service", metavar="S", help="token auth: service name (token audience)")
    p_start.add_argument("--token-issuer", metavar="I", help="token auth: issuer name")
    p_start.add_argument("--timeout", type=float, default=20.0)
    for name, text in (("status", "exit 0 if the registry under ROOT answers"), ("stop", "stop it")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--root", required=True)
    args = parser.parse_args(argv)

    try:
        if args.command == "start":
            token = None
            token_args = (args.token_realm, args.token_cert, args.token_service, args.token_issuer)
            if any(token_args):
                if not all(token_args):
                    parser.error("token auth needs --token-realm, --token-cert, --token-service and --token-issuer")
                token = TokenAuth(
                    realm=args.token_realm, service=args.token_service, issuer=args.token_issuer,
                    rootcertbundle=os.path.abspath(args.token_cert),
                )
            reg = start_registry(
                args.root, port=args.port, tls=args.tls, htpasswd=args.htpasswd, token=token, detach=True,
                timeout=args.timeout,
            )
            print(reg.url)
            if reg.ca_path:
                print(f"ca: {reg.ca_path}", file=sys.stderr)
            return 0
        if args.command == "status":
            reg = attach(args.root)
            if reg is None:
                print(f"no registry running under {args.root}", file=sys.stderr)
                return 1
            status = reg.ping()
            print(f"{reg.url} answers /v2/ with {status} (pid {reg.pid})")
            return 0
        if not stop_registry(args.root):
            print(f"no registry was running under {args.root}", file=sys.stderr)
        return 0
    except (RegistryStartError, OSError) as exc:
        print(f"registry.py {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
