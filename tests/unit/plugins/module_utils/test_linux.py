# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""linux.py's libc bindings through ``_ctypes`` (no ``import ctypes`` on the container start path): the
same results and errno handling as ctypes.CDLL(None, use_errno=True), checked against the kernel."""

from __future__ import annotations

import ctypes
import errno
import os
import sys

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils import linux

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
from fresh_python import run_fresh  # noqa: E402


def test_a_failing_call_raises_oserror_with_the_calls_errno(tmp_path):
    missing = str(tmp_path / "missing")
    with pytest.raises(OSError) as info:
        linux.umount2(missing)
    assert info.value.errno in (errno.ENOENT, errno.EPERM)
    reference = ctypes.CDLL(None, use_errno=True)
    assert reference.umount2(missing.encode(), 0) == -1
    assert ctypes.get_errno() == info.value.errno
    with pytest.raises(OSError) as info:
        linux.prctl(linux.PR_CAPBSET_READ, 4096)   # no such capability
    assert info.value.errno == errno.EINVAL and "prctl(23, 4096)" in str(info.value)


def test_values_come_back_as_ctypes_gives_them():
    reference = ctypes.CDLL(None, use_errno=True)
    assert linux.prctl(linux.PR_GET_NO_NEW_PRIVS) == reference.prctl(linux.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
    assert linux.prctl(linux.PR_GET_KEEPCAPS) == reference.prctl(linux.PR_GET_KEEPCAPS, 0, 0, 0, 0)
    with open("/proc/self/status") as handle:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)
    effective, permitted, inheritable = linux.capget()
    assert (effective, permitted, inheritable) == (int(status["CapEff"], 16), int(status["CapPrm"], 16),
                                                   int(status["CapInh"], 16))
    # A function of the process found by name, with a pointer argument and a long result (syscall(2)).
    getpid = linux.libc_function("syscall", None, linux.c_long)
    assert getpid(linux.c_long(39 if os.uname().machine == "x86_64" else 172)) == os.getpid()


def test_structures_and_arrays_have_the_c_layout():
    assert ctypes.sizeof(linux._CapHeader) == 8 and ctypes.sizeof(linux._CapData * 2) == 24
    buf = (linux.c_char * 4).from_buffer_copy(b"abcd")
    assert ctypes.string_at(linux.addressof(buf), 4) == b"abcd"


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: unshare, mount, sethostname")
def test_namespace_calls_work_in_a_child():
    code = (
        "import os\n"
        "from ansible_collections.dockerless.containers.plugins.module_utils import linux\n"
        "linux.unshare(linux.CLONE_NEWUTS | linux.CLONE_NEWNS)\n"
        "linux.sethostname('bound')\n"
        "linux.mount(None, '/', None, linux.MS_REC | linux.MS_PRIVATE, None)\n"
        "linux.mount('tmpfs', '/mnt', 'tmpfs', 0, 'size=1m')\n"
        "print(os.uname().nodename, os.statvfs('/mnt').f_blocks * os.statvfs('/mnt').f_frsize,\n"
        "      'ctypes' in sys.modules)\n"
    )
    out = run_fresh(code, timeout=30)
    assert out.stdout.split() == ["bound", str(1 << 20), "False"]
