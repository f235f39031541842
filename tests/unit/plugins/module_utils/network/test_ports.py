# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Published ports: Docker's -p forms, their one spelling, and host ports taken from the real kernel's sockets."""

from __future__ import annotations

import os
import socket

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.network import ports
from ansible_collections.dockerless.containers.plugins.module_utils.network.ports import PortError


def m(host_ip, host_port, container_port, proto="tcp"):
    return {"host_ip": host_ip, "host_port": host_port, "container_port": container_port, "proto": proto}


@pytest.mark.parametrize("spec, expected", [
    ("8080:80", [m("0.0.0.0", 8080, 80)]),
    (" 8080:80/TCP ", [m("0.0.0.0", 8080, 80)]),
    ("127.0.0.1:8080:80", [m("127.0.0.1", 8080, 80)]),
    ("8080:80/udp", [m("0.0.0.0", 8080, 80, "udp")]),
    ("53:53/sctp", [m("0.0.0.0", 53, 53, "sctp")]),
    ("80", [m("0.0.0.0", 0, 80)]),
    (80, [m("0.0.0.0", 0, 80)]),
    ("127.0.0.1::80", [m("127.0.0.1", 0, 80)]),
    ("0.0.0.0:8080:80/tcp", [m("0.0.0.0", 8080, 80)]),
    ("8000-8002:80-82", [m("0.0.0.0", 8000, 80), m("0.0.0.0", 8001, 81), m("0.0.0.0", 8002, 82)]),
    ("80-81/udp", [m("0.0.0.0", 0, 80, "udp"), m("0.0.0.0", 0, 81, "udp")]),
    ("10.1.2.3:65535:1", [m("10.1.2.3", 65535, 1)]),
])
def test_parse_forms(spec, expected):
    assert ports.parse_publish(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("[::1]:8080:80", "IPv6 host addresses are not supported"),
    ("::1:8080:80", "IPv6 host addresses are not supported"),
    ("8080:80/icmp", "protocol 'icmp' is not one of tcp, udp, sctp"),
    ("0:80", "host port 0 is out of range"),
    ("8080:65536", "container port 65536 is out of range"),
    ("8080:http", "container port 'http' is not a port number"),
    ("8000-8010:80-85", r"the host range \(11 ports\) and the container range \(6 ports\) differ"),
    ("8000-8010:80", "a host port range for one container port is not supported"),
    ("90-80", "ends before it starts"),
    ("1-2000", "more than 1000 ports"),
    ("127.1:8080:80", r"four decimal numbers \(127.0.0.1\)"),
    ("localhost:8080:80", "'localhost' is not an IPv4 address"),
    ("", "give a string"),
    (True, "give a string"),
    ("1:2:3:4", "IPv6 host addresses are not supported"),
])
def test_parse_refusals(spec, message):
    with pytest.raises(PortError, match=message):
        ports.parse_publish(spec)


def test_normalise_makes_docker_spellings_equal_and_sorts():
    one = ports.normalise(["8080:80", "9090:90/udp", {"container_port": 443, "host_port": 8443}])
    two = ports.normalise([{"host_ip": "0.0.0.0", "host_port": 8443, "container_port": "443", "proto": "TCP"},
                           "0.0.0.0:9090:90/udp", "0.0.0.0:8080:80/tcp", "8080:80"])
    assert one == two == [m("0.0.0.0", 8080, 80), m("0.0.0.0", 8443, 443), m("0.0.0.0", 9090, 90, "udp")]


def test_normalise_refuses_one_host_socket_twice():
    with pytest.raises(PortError, match=r"host port 8080/tcp is asked for twice \(0.0.0.0:8080->80/tcp and 127.0.0.1:8080->81/tcp\)"):
        ports.normalise(["8080:80", "127.0.0.1:8080:81"])
    # Same host port on two protocols, or on two distinct addresses: two sockets, allowed.
    assert len(ports.normalise(["8080:80", "8080:80/udp", "127.0.0.1:9000:1", "127.0.0.2:9000:2"])) == 4


def test_matches_keeps_chosen_ports():
    recorded = [m("0.0.0.0", 32771, 80), m("0.0.0.0", 8080, 81)]
    assert ports.matches(ports.normalise(["80", "8080:81"]), recorded)
    assert ports.matches(ports.normalise(["32771:80", "8080:81"]), recorded)
    assert not ports.matches(ports.normalise(["80", "8081:81"]), recorded)
    assert not ports.matches(ports.normalise(["80"]), recorded)
    assert not ports.matches(ports.normalise(["80/udp", "8080:81"]), recorded)


def test_format_mapping():
    assert ports.format_mapping(m("127.0.0.1", 8080, 80, "udp")) == "127.0.0.1:8080->80/udp"


def test_allocate_chooses_free_ports_and_refuses_taken_ones():
    taken = [m("0.0.0.0", 18080, 80)]
    chosen = ports.allocate(ports.normalise(["80", "127.0.0.1::81/udp"]), taken)
    assert all(1024 < mapping["host_port"] <= 65535 for mapping in chosen)
    assert [(c["container_port"], c["proto"], c["host_ip"]) for c in chosen] == [(80, "tcp", "0.0.0.0"), (81, "udp", "127.0.0.1")]
    with pytest.raises(PortError, match=r"host port 18080/tcp is already published by container 'web'; remove that"):
        ports.allocate(ports.normalise(["127.0.0.1:18080:80"]), taken, owners={("0.0.0.0", 18080, "tcp"): "web"})
    # Another protocol on the same number is another socket.
    assert ports.allocate(ports.normalise(["18080:80/udp"]), taken)[0]["host_port"] == 18080


def test_allocate_refuses_a_port_a_process_listens_on_and_names_it():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        comm = open(f"/proc/{os.getpid()}/comm", encoding="utf-8").read().strip()
        with pytest.raises(PortError, match=rf"host port {port}/tcp is already in use by pid {os.getpid()} \({comm}\); stop it"):
            ports.allocate(ports.normalise([f"{port}:80"]), [])
        with pytest.raises(PortError, match=rf"host port {port}/tcp is already in use"):
            ports.allocate(ports.normalise([f"127.0.0.1:{port}:80"]), [])
    # A closed listener leaves the port free again (TIME_WAIT or not).
    assert ports.allocate(ports.normalise([f"127.0.0.1:{port}:80"]), [])[0]["host_port"] == port


def test_allocate_refuses_a_bound_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        port = sock.getsockname()[1]
        with pytest.raises(PortError, match=rf"host port {port}/udp is already in use by pid {os.getpid()}"):
            ports.allocate(ports.normalise([f"{port}:53/udp"]), [])
