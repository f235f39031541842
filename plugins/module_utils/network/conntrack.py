# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Conntrack entries over a NETLINK_NETFILTER socket (ctnetlink), from the standard library.

Why: a UDP "connection" lives in the conntrack table as long as packets keep coming, and the DNAT it was made
with stays attached to it. A client that keeps sending to a published UDP port after the container behind it
went away (or moved to another address) keeps reaching the old address, never the new rule
(netavark#1045). The entries of a changed UDP mapping are deleted, so the next packet goes through the rules
again. Only IPv4 entries are read, as only IPv4 ports are published.
"""

from __future__ import annotations

import _socket as socket  # the C module alone: socket.py brings enum and selectors onto a container's start path
import os
import struct

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_F_NESTED = 0x8000
CTA_TUPLE_ORIG = 1
CTA_TUPLE_REPLY = 2
CTA_TUPLE_IP = 1
CTA_TUPLE_PROTO = 2
CTA_IP_V4_SRC = 1
CTA_IP_V4_DST = 2
CTA_PROTO_NUM = 1
CTA_PROTO_SRC_PORT = 2
CTA_PROTO_DST_PORT = 3
PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}
ENOENT = 2


class ConntrackError(DockerlessError):
    """A ctnetlink request the kernel refused."""


def _attrs(data: bytes) -> dict[int, bytes]:
    out = {}
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        out[kind & ~NLA_F_NESTED & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def _attr(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _tuple(data: bytes) -> dict:
    attrs = _attrs(data)
    ip = _attrs(attrs.get(CTA_TUPLE_IP, b""))
    proto = _attrs(attrs.get(CTA_TUPLE_PROTO, b""))
    if CTA_IP_V4_SRC not in ip or CTA_PROTO_NUM not in proto:
        return {}
    return {"src": socket.inet_ntoa(ip[CTA_IP_V4_SRC]), "dst": socket.inet_ntoa(ip[CTA_IP_V4_DST]),
            "proto": proto[CTA_PROTO_NUM][0],
            "sport": struct.unpack(">H", proto[CTA_PROTO_SRC_PORT])[0] if CTA_PROTO_SRC_PORT in proto else 0,
            "dport": struct.unpack(">H", proto[CTA_PROTO_DST_PORT])[0] if CTA_PROTO_DST_PORT in proto else 0}


def _pack_tuple(entry: dict) -> bytes:
    ip = _attr(CTA_IP_V4_SRC, socket.inet_aton(entry["src"])) + _attr(CTA_IP_V4_DST, socket.inet_aton(entry["dst"]))
    proto = (_attr(CTA_PROTO_NUM, bytes([entry["proto"]])) + _attr(CTA_PROTO_SRC_PORT, struct.pack(">H", entry["sport"]))
             + _attr(CTA_PROTO_DST_PORT, struct.pack(">H", entry["dport"])))
    return _attr(CTA_TUPLE_IP | NLA_F_NESTED, ip) + _attr(CTA_TUPLE_PROTO | NLA_F_NESTED, proto)


class Conntrack:
    """One ctnetlink socket: ``entries()`` dumps the IPv4 table, ``delete(entry)`` removes one by its tuple."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, message_type: int, flags: int, payload: bytes) -> int:
        self.seq += 1
        body = struct.pack("=BBH", socket.AF_INET, 0, 0) + payload
        self.sock.send(struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_CTNETLINK << 8) | message_type, flags,
                                   self.seq, 0) + body)
        return self.seq

    def _replies(self, seq: int):
        """The messages answering ``seq`` until DONE or the ACK/error; an error raises ConntrackError."""
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _flags, got_seq, _pid = struct.unpack_from("=IHHII", data, offset)
                if length < 16:
                    return
                body = data[offset + 16:offset + length]
                offset += (length + 3) & ~3
                if got_seq != seq:
                    continue
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    error = -struct.unpack_from("=i", body)[0]
                    if error:
                        raise ConntrackError(f"conntrack request: {os.strerror(error)}", error)
                    return
                yield body[4:]  # past the nfgenmsg

    def entries(self) -> list[dict]:
        """Every IPv4 entry as ``{"orig": {src, dst, proto, sport, dport}, "reply": {…}}``."""
        out = []
        for body in self._replies(self._send(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, b"")):
            attrs = _attrs(body)
            orig = _tuple(attrs.get(CTA_TUPLE_ORIG, b""))
            reply = _tuple(attrs.get(CTA_TUPLE_REPLY, b""))
            if orig and reply:
                out.append({"orig": orig, "reply": reply})
        return out

    def delete(self, entry: dict) -> bool:
        """Delete the entry of ``entry["orig"]``; False when it was gone already."""
        try:
            for _reply in self._replies(self._send(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK,
                                                   _attr(CTA_TUPLE_ORIG | NLA_F_NESTED, _pack_tuple(entry["orig"])))):
                pass
        except ConntrackError as exc:
            if exc.args[1] == ENOENT:
                return False
            raise
        return True


def flush_port(proto: str, host_port: int, keep: set | frozenset = frozenset()) -> int:
    """Delete the entries of traffic to local ``host_port``/``proto`` except those DNATed to an address in ``keep``.

    ``keep`` holds ``(address, port)`` of the current mapping's target: a flow already going where it should
    stays. Returns the number deleted.
    """
    number = PROTO_NUMBERS[proto]
    deleted = 0
    with Conntrack() as ct:
        for entry in ct.entries():
            orig, reply = entry["orig"], entry["reply"]
            if orig["proto"] != number or orig["dport"] != host_port:
                continue
            if (reply["src"], reply["sport"]) in keep:
                continue
            if ct.delete(entry):
                deleted += 1
    return deleted
