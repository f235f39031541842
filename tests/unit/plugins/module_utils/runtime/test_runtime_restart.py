# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restart rules, back-off, stop signals: the pure parts (the real-kernel runs are in test_runtime_supervisor)."""

from __future__ import annotations

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec, spec_diff
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.state import parse_signal, signal_number
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.supervisor import (
    next_delay,
    should_restart,
)


@pytest.mark.parametrize("policy, code, count, retries, by_user, expected", [
    ("no", 1, 0, 0, False, False),
    ("always", 0, 5, 0, False, True),
    ("always", 0, 0, 0, True, True),            # moby: always ignores a manual stop (the stop itself cancels)
    ("unless-stopped", 0, 0, 0, False, True),
    ("unless-stopped", 1, 0, 0, True, False),
    ("on-failure", 0, 0, 0, False, False),
    ("on-failure", 1, 100, 0, False, True),     # 0: no limit
    ("on-failure", 1, 2, 3, False, True),
    ("on-failure", 1, 3, 3, False, False),
    ("on-failure", 255, 0, 1, False, True),
])
def test_should_restart_is_mobys_rule(policy, code, count, retries, by_user, expected):
    assert should_restart(policy, code, count, retries, by_user) is expected


def test_next_delay_doubles_to_a_minute_and_resets_after_10s():
    delays, delay = [], 0.0
    for _step in range(12):
        delay = next_delay(delay, 0.5)
        delays.append(delay)
    assert delays[:5] == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert delays[-1] == 60.0 and max(delays) == 60.0
    assert next_delay(60.0, 10.0) == 0.1 and next_delay(60.0, 9.9) == 60.0


@pytest.mark.parametrize("text, name, number", [
    ("SIGTERM", "SIGTERM", 15), ("usr1", "SIGUSR1", 10), ("9", "SIGKILL", 9), ("SIGRTMIN+3", "SIGRTMIN+3", 37),
    ("rtmax", "SIGRTMAX", 64), (" hup ", "SIGHUP", 1),
])
def test_parse_signal(text, name, number):
    assert parse_signal(text) == name and signal_number(name) == number


@pytest.mark.parametrize("text", ["SIGNOPE", "0", "65", "SIG_DFL", "SIGRTMIN+99", "", "-9"])
def test_parse_signal_refuses(text):
    with pytest.raises(ValueError):
        parse_signal(text)


def _spec(**kwargs):
    return build_spec(image_config=kwargs.pop("image_config", {}), lower_dirs=["/x"], command=["true"], **kwargs)


def test_spec_restart_retries_stop_signal_oom_score_adj():
    spec = _spec(restart_policy="on-failure", restart_retries=3, oom_score_adj=200)
    assert (spec.restart_retries, spec.stop_signal, spec.oom_score_adj) == (3, "SIGTERM", 200)
    assert spec.init_config("id", "/c")["oom_score_adj"] == 200
    assert _spec(image_config={"StopSignal": "SIGQUIT"}).stop_signal == "SIGQUIT"
    assert _spec(image_config={"StopSignal": "SIGQUIT"}, stop_signal="2").stop_signal == "SIGINT"
    with pytest.raises(RuntimeSetupError, match="only limits restart_policy 'on-failure', not 'always'"):
        _spec(restart_policy="always", restart_retries=2)
    with pytest.raises(RuntimeSetupError, match="restart_retries -1"):
        _spec(restart_policy="on-failure", restart_retries=-1)
    with pytest.raises(RuntimeSetupError, match="oom_score_adj 1001"):
        _spec(oom_score_adj=1001)
    with pytest.raises(RuntimeSetupError, match="image x: StopSignal: signal 'SIGNOPE'"):
        _spec(image="x", image_config={"StopSignal": "SIGNOPE"})


def test_spec_diff_recreates_on_the_new_keys_but_not_for_older_records():
    spec = _spec(restart_policy="on-failure")
    recorded = {k: v for k, v in spec.compared().items() if k not in ("restart_retries", "stop_signal", "oom_score_adj")}
    assert spec_diff(recorded, spec) == {}        # a container recorded before these keys existed
    changed = _spec(restart_policy="on-failure", restart_retries=2, stop_signal="SIGUSR1")
    assert set(spec_diff(spec.compared(), changed)) == {"restart_retries", "stop_signal"}
    assert set(spec_diff(spec.compared(), _spec(restart_policy="unless-stopped"))) == {"restart_policy"}
