"""Sandbox teardown when the harness itself stops: nothing of the tree may outlive it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from harness.run import sandbox

ROOT = Path(__file__).resolve().parents[3]
HANG = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)  # {token}']); "
        "print('started', flush=True); time.sleep(300)")


def _alive(token: str) -> list[int]:
    from tests.harness.repro.test_reproduce import _processes_with

    return _processes_with(token)


def test_a_failing_callback_still_kills_the_tree(tmp_path, isolation_level):
    """An exception in the harness while the run is live takes the whole tree down before it propagates."""
    token = f"pgolf-test-{uuid.uuid4().hex}"

    def explode(_t: float, line: str) -> None:
        if line == "started":
            time.sleep(0.2)  # let the grandchild start
            raise RuntimeError("harness broke")

    spec = sandbox.SandboxSpec([sys.executable, "-c", HANG.format(token=token)], tmp_path, dict(os.environ))
    with pytest.raises(RuntimeError, match="harness broke"):
        sandbox.run_sandboxed(spec, explode, lambda _now: None)
    assert _alive(token) == []


def test_killed_harness_takes_the_namespace_down(tmp_path):
    """SIGKILL of the harness process ends the run's PID namespace (parent-death signal + --kill-child)."""
    sandbox.detect_isolation.cache_clear()
    if not sandbox.detect_isolation().namespaces:
        pytest.skip("no PID namespace on this machine")
    token = f"pgolf-test-{uuid.uuid4().hex}"
    driver = ("import os, sys; from pathlib import Path; from harness.run import sandbox; "
              f"spec = sandbox.SandboxSpec([sys.executable, '-c', {HANG.format(token=token)!r}], Path('.'), "
              "dict(os.environ)); sandbox.run_sandboxed(spec, lambda t, l: print(l, flush=True), lambda n: None)")
    proc = subprocess.Popen([sys.executable, "-c", driver], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.3)
    assert _alive(token)  # the grandchild runs before the harness dies
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    deadline = time.monotonic() + 2.0
    while _alive(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(token) == []
