# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The three files every container gets in ``/etc``: ``hostname``, ``hosts`` and ``resolv.conf``.

They are written per container in the store (a named container's ``<store>/containers/<name>/etc/``, a
one-shot's ``<store>/containers/<slot>.etc/``) and bind-mounted over the image's files by the init's volume path
(``etc_mounts``): by fd, the target resolved inside the rootfs, as any volume. The image's own files are never
written.

* ``hostname``: the container's hostname (its UTS namespace's; the host's when it shares the host's).
* ``hosts``: Docker's localhost lines, the ``etc_hosts`` entries, then the container's own names (hostname,
  name, short id) on its address; without a network of its own (``none``) on ``127.0.1.1`` (Debian's line for
  the host's own name, answered by the loopback interface every container has). With ``network: host``, the
  host's ``/etc/hosts`` stands in for the localhost lines, as Docker does.
* ``resolv.conf``: the host's, with the nameservers, search domains and options of the ``dns_*`` options when
  given. In a network namespace of its own a loopback nameserver of the host (systemd-resolved's 127.0.0.53,
  dnsmasq's 127.0.0.1) is unreachable: when the host's file names systemd-resolved's stub, the upstream list
  systemd-resolved keeps in ``/run/systemd/resolve/resolv.conf`` is used instead (moby's resolvconf does the
  same), loopback nameservers are dropped, and when none is left Docker's fallback (8.8.8.8, 8.8.4.4) is used.
  With the host's network the host's file is kept as it is: its loopback nameservers answer there.
"""

from __future__ import annotations

import os

HOST_RESOLV_CONF = "/etc/resolv.conf"
SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
SYSTEMD_STUB = "127.0.0.53"
HOST_HOSTS = "/etc/hosts"
DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")  # moby's defaultIPv4Dns, when only loopback servers were left
OWN_ADDRESS_WITHOUT_NETWORK = "127.0.1.1"
ETC_FILES = ("hostname", "hosts", "resolv.conf")
# Docker's /etc/hosts head (libnetwork/etchosts defaultContent).
LOCALHOST_LINES = ("127.0.0.1\tlocalhost\n"
                   "::1\tlocalhost ip6-localhost ip6-loopback\n"
                   "fe00::0\tip6-localnet\n"
                   "ff00::0\tip6-mcastprefix\n"
                   "ff02::1\tip6-allnodes\n"
                   "ff02::2\tip6-allrouters\n")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(1 << 16)
    except OSError:
        return ""


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 (any spelling), and ::ffff:127.x: a nameserver only the host's own namespace reaches."""
    address = address.split("%", 1)[0].lower()
    if address.startswith("127.") or address.startswith("::ffff:127."):
        return True
    if ":" in address:
        import ipaddress

        try:
            return ipaddress.IPv6Address(address).is_loopback
        except ValueError:
            return False
    return False


def parse_resolv_conf(text: str) -> tuple[list[str], list[str], list[str]]:
    """(nameservers, search domains, option lines other than nameserver/search/domain) of a resolv.conf. The last
    ``search`` or ``domain`` line wins, as in glibc's resolver."""
    servers: list[str] = []
    search: list[str] = []
    other: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            search = fields[1:]
        else:
            other.append(" ".join(fields))
    return servers, search, other


def resolv_conf(host_text: str, *, own_network: bool, dns_servers=(), dns_search=(),
                systemd_text: str | None = None) -> str:
    """The container's resolv.conf from the host's (``host_text``); see the module's docstring."""
    servers, search, other = parse_resolv_conf(host_text)
    if own_network and systemd_text and servers and all(s == SYSTEMD_STUB for s in servers):
        servers, search_upstream, _options = parse_resolv_conf(systemd_text)
        search = search or search_upstream
    if dns_servers:
        servers = list(dns_servers)
    elif own_network:
        servers = [s for s in servers if not is_loopback(s)] or list(DEFAULT_NAMESERVERS)
    if dns_search:
        # "." alone means no search domain at all (Docker's --dns-search .).
        search = [] if list(dns_search) == ["."] else list(dns_search)
    lines = [f"nameserver {s}" for s in servers]
    if search:
        lines.append("search " + " ".join(search))
    lines.extend(other)
    return "\n".join(lines) + "\n"


def hosts(*, own_names, address: str | None = None, extra: dict | None = None,
          host_text: str | None = None) -> str:
    """The container's /etc/hosts: localhost lines (or the host's file, ``host_text``), the ``extra`` entries
    (name → address, by name), then ``own_names`` on ``address`` (``127.0.1.1`` without one)."""
    out = [host_text if host_text is not None else LOCALHOST_LINES]
    if out[0] and not out[0].endswith("\n"):
        out.append("\n")
    # By name: the same file whatever order the options came in (spec.json keeps its keys sorted).
    for name, ip in sorted((extra or {}).items()):
        out.append(f"{ip}\t{name}\n")
    names = list(dict.fromkeys(n for n in own_names if n))
    if names:
        out.append(f"{address or OWN_ADDRESS_WITHOUT_NETWORK}\t{' '.join(names)}\n")
    return "".join(out)


def _write(dir_fd: int, name: str, text: str) -> None:
    """Rewrite ``name`` in place (same inode: a container that has it mounted sees the new content; the store
    folder is the caller's own, 0700)."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        write_over(fd, text.encode())
    finally:
        os.close(fd)


def write_over(fd: int, data: bytes) -> None:
    """``data`` written over the file's content from offset 0, then the file cut to its length. Not truncated to
    zero first: on a file system mounted with ``discard`` freeing the block and taking a new one waits for the
    device's discard, 3 ms a file on the test machine, at every container start."""
    view = memoryview(data)
    offset = 0
    while offset < len(data):
        offset += os.pwrite(fd, view[offset:], offset)
    if os.fstat(fd).st_size != len(data):
        os.ftruncate(fd, len(data))


def write(etc_dir: str, *, hostname: str, own_names, own_network: bool, dns_servers=(), dns_search=(),
          etc_hosts: dict | None = None, address: str | None = None, host_resolv_conf: str | None = None,
          host_hosts: str | None = None, systemd_resolv_conf: str | None = None) -> None:
    """Write the three files into ``etc_dir`` (made 0755 when missing). The host's files default to the
    module's HOST_RESOLV_CONF, HOST_HOSTS and SYSTEMD_RESOLV_CONF."""
    try:
        os.mkdir(etc_dir, 0o755)
    except FileExistsError:
        pass
    host_resolv = _read(host_resolv_conf or HOST_RESOLV_CONF)
    systemd = (_read(systemd_resolv_conf or SYSTEMD_RESOLV_CONF)
               if own_network and SYSTEMD_STUB in host_resolv else None)
    files = {
        "hostname": hostname + "\n",
        "hosts": hosts(own_names=own_names, address=address, extra=etc_hosts,
                       host_text=None if own_network else _read(host_hosts or HOST_HOSTS)),
        "resolv.conf": resolv_conf(host_resolv, own_network=own_network, dns_servers=dns_servers,
                                   dns_search=dns_search, systemd_text=systemd),
    }
    dir_fd = os.open(etc_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for name, text in files.items():
            _write(dir_fd, name, text)
    finally:
        os.close(dir_fd)


def etc_mounts(etc_dir: str, taken_targets=()) -> list[dict]:
    """Volume entries (runtime_spec.parse_volume's shape, without pins: the store folder is ours) binding the
    three files on ``/etc/<name>``; a path the user mounts something on already is left to the user's mount."""
    taken = {os.path.normpath(t) for t in taken_targets}
    source_dir = os.path.realpath(etc_dir)  # the init opens sources following no symlink
    return [{"source": os.path.join(source_dir, name), "target": f"/etc/{name}", "read_only": False}
            for name in ETC_FILES if f"/etc/{name}" not in taken]
