"""conftest.Process's start-up failures: a server that does not report its port in time is
stopped and reported with the timeout message and its log (not a ValueError from reading a
log closed by stop()). No build needed: the "server" is a Python process that never writes
its port file; timeout=0 makes the deadline pass on the first check, so nothing waits."""

from __future__ import annotations

import sys

import pytest

from conftest import Process


def test_a_server_that_reports_no_port_fails_with_the_timeout_message():
    args = [sys.executable, "-c", "import time; time.sleep(600)"]
    with pytest.raises(RuntimeError) as err:
        Process(args, timeout=0.0)
    message = str(err.value)
    assert message.startswith(f"{sys.executable} did not report a port in 0.0s:"), message


def test_a_server_that_exits_fails_with_its_exit_code_and_log():
    args = [sys.executable, "-c", "import sys; print('bad flag', flush=True); sys.exit(3)"]
    with pytest.raises(RuntimeError) as err:
        Process(args, timeout=600.0)  # the exit ends the wait, not the deadline
    message = str(err.value)
    assert message.startswith(f"{sys.executable} exited with 3:"), message
    assert "bad flag" in message
