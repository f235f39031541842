# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""limits.py: the conversion tables (runc's formulas), size and CPU-list parsing, and normalise_limits."""

from __future__ import annotations

import os

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.limits import (
    MAX,
    Limits,
    blkio_to_io_weight,
    canonical_cpu_list,
    cpus_to_quota,
    io_weight_to_blkio,
    normalise_limits,
    parse_size,
    quota_to_cpus,
    shares_to_weight,
    weight_to_shares,
)
from ansible_collections.dockerless.containers.plugins.module_utils.errors import CgroupError

MiB = 1 << 20


# ---------------------------------------------------------------------------------------------------------------
# conversion tables
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("512m", 512 * MiB),
        ("1g", 1 << 30),
        ("1G", 1 << 30),
        ("1gb", 1 << 30),
        ("1GiB", 1 << 30),
        ("1.5g", 3 * (1 << 29)),
        ("64k", 65536),
        ("1024", 1024),
        ("1024b", 1024),
        ("2t", 2 << 40),
        (1024, 1024),
        (0, 0),
        ("max", MAX),
        ("MAX", MAX),
        ("-1", MAX),
        (-1, MAX),
        (" 10m ", 10 * MiB),
    ],
)
def test_parse_size(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["", "abc", "1x", "-2", -5, "1.2.3g", "m", True, None, [1], "1e3", float("nan")])
def test_parse_size_rejects(value):
    with pytest.raises(CgroupError, match="size"):
        parse_size(value)


@pytest.mark.parametrize(
    "shares, weight",
    [(2, 1), (3, 1), (28, 1), (29, 2), (1024, 39), (2048, 79), (262144, 10000), (262143, 9999), (1, 1), (10**6, 10000)],
)
def test_shares_to_weight_matches_runc(shares, weight):
    # runc/opencontainers cgroups: weight = 1 + ((shares - 2) * 9999) / 262142 (integer division), clamped
    assert shares_to_weight(shares) == weight


def test_weight_to_shares_round_trips_every_weight():
    for weight in range(1, 10001):
        shares = weight_to_shares(weight)
        assert 2 <= shares <= 262144
        assert shares_to_weight(shares) == weight
        # smallest pre-image: one share less maps to the weight below
        assert weight == 1 or shares_to_weight(shares - 1) == weight - 1
    assert weight_to_shares(1) == 2
    assert weight_to_shares(10000) == 262144
    assert weight_to_shares(100) == 2598


@pytest.mark.parametrize("blkio, weight", [(10, 1), (500, 4950), (1000, 10000), (100, 910), (20, 102)])
def test_blkio_to_io_weight_matches_runc(blkio, weight):
    # runc: 1 + (blkioWeight - 10) * 9999 / 990
    assert blkio_to_io_weight(blkio) == weight


@pytest.mark.parametrize("weight, blkio", [(1, 10), (100, 20), (4950, 500), (10000, 1000), (5000, 505)])
def test_io_weight_to_blkio(weight, blkio):
    assert io_weight_to_blkio(weight) == blkio


@pytest.mark.parametrize(
    "cpus, quota", [(1.5, 150000), (0.5, 50000), (0.01, 1000), (2, 200000), (0.333, 33300), (16, 1600000)]
)
def test_cpus_to_quota_and_back(cpus, quota):
    assert cpus_to_quota(cpus) == quota
    assert quota_to_cpus(quota, 100000) == pytest.approx(cpus)


def test_quota_to_cpus_other_period_and_unlimited():
    assert quota_to_cpus(300000, 200000) == 1.5
    assert quota_to_cpus(-1, 100000) == MAX


@pytest.mark.parametrize(
    "text, canonical", [("0-3", "0-3"), ("1,0", "0-1"), ("0,2,4-5", "0,2,4-5"), ("3,1-2,0", "0-3"), ("7", "7"), ("", "")]
)
def test_cpu_lists(text, canonical):
    assert canonical_cpu_list(text) == canonical


@pytest.mark.parametrize("text", ["a", "0-", "1--2", "3-1", "0,,1", "-1"])
def test_cpu_list_rejects(text):
    with pytest.raises(CgroupError, match="list"):
        canonical_cpu_list(text)


# ---------------------------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------------------------


def test_normalise_limits_forms():
    out = normalise_limits(
        Limits(memory="1g", memory_swap=-1, memory_reservation="0", cpus="1.5", cpu_weight="200", pids="max",
               cpuset_cpus="1,0", io_max=[{"device": "8:16", "rbps": "1m"}, {"device": "8:0", "wiops": 20}])
    )
    assert out.memory == 1 << 30 and out.memory_swap == MAX and out.memory_reservation == 0
    assert out.cpus == 1.5 and out.cpu_weight == 200 and out.pids == MAX and out.cpuset_cpus == "0-1"
    assert out.io_max == [{"device": "8:0", "wiops": 20}, {"device": "8:16", "rbps": MiB}]
    assert normalise_limits(Limits(cpus="max")).cpus == MAX
    assert normalise_limits(Limits(cpus=-1)).cpus == MAX
    assert normalise_limits(Limits(pids=-1)).pids == MAX


@pytest.mark.parametrize(
    "limits, message",
    [
        (Limits(memory="1g", memory_swap="512m"), "memory_swap .* below memory"),
        (Limits(memory=100), "below one page"),
        (Limits(cpus=0.001), "cpus"),
        (Limits(cpus="lots"), "cpus"),
        (Limits(cpu_weight=0), "cpu_weight 0: out of range"),
        (Limits(cpu_weight=10001), "out of range"),
        (Limits(io_weight="x"), "io_weight"),
        (Limits(pids=0), "pids .*positive"),
        (Limits(pids="many"), "pids"),
        (Limits(cpuset_cpus=""), "empty"),
        (Limits(cpuset_mems="0-"), "list"),
        (Limits(io_max=[{"rbps": 1}]), "device"),
        (Limits(io_max=[{"device": "8:0"}]), "at least one"),
        (Limits(io_max=[{"device": "8:0", "rbps": 0}]), "positive"),
        (Limits(io_max=[{"device": "8:0", "speed": 1}]), "unknown keys"),
        (Limits(io_max=[{"device": "8:0", "rbps": 1}, {"device": "8:00", "wbps": 1}]), "twice"),
        (Limits(io_max=[{"device": "/dev/null", "rbps": 1}]), "not a block device"),
        (Limits(io_max=[{"device": "/nonexistent/disk", "rbps": 1}]), "No such file"),
        (Limits(io_max={"device": "8:0"}), "list"),
    ],
)
def test_normalise_limits_rejects(limits, message):
    with pytest.raises(CgroupError, match=message):
        normalise_limits(limits)


def test_io_max_device_path_resolves_to_major_minor():
    blocks = [os.path.join("/dev", d) for d in sorted(os.listdir("/sys/block"))] if os.path.isdir("/sys/block") else []
    blocks = [b for b in blocks if os.path.exists(b)]
    if not blocks:
        pytest.skip("no block device node under /dev on this machine to resolve")
    st = os.stat(blocks[0])
    out = normalise_limits(Limits(io_max=[{"device": blocks[0], "rbps": "1m"}]))
    assert out.io_max == [{"device": f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}", "rbps": MiB}]


# ---------------------------------------------------------------------------------------------------------------
