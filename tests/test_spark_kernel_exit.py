"""A Jupyter kernel that started Spark exits without asyncio noise on the terminal of ``segkit run``.

At exit such a kernel could log "Task was destroyed but it is pending! task: <Task pending …
coro=<Kernel.dispatch_control() …>>" (the JVM's shutdown hooks delay the exit while the kernel's control
channel still waits); it reached the terminal of a ``--quiet`` Spark run. :func:`segkit.data.spark.spark_session`
installs :func:`~segkit.data.spark.quiet_kernel_shutdown`, which drops that one message and nothing else.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PENDING_TASK = textwrap.dedent("""
    import asyncio, gc, sys
    if sys.argv[1] == "quiet":
        from segkit.data.spark import quiet_kernel_shutdown
        quiet_kernel_shutdown()

    class Kernel:  # the coroutine's qualified name is what the message shows: Kernel.{name}()
        async def dispatch_control(self):
            await asyncio.Future()

        async def other_work(self):
            await asyncio.Future()

    loop = asyncio.new_event_loop()
    tasks = [loop.create_task(getattr(Kernel(), name)()) for name in sys.argv[2:]]
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    del tasks
    gc.collect()
""")


def destroyed_task_messages(mode: str, *coroutines: str) -> str:
    """What a Python process prints when pending tasks running ``Kernel.<coroutine>`` are destroyed."""
    done = subprocess.run([sys.executable, "-c", PENDING_TASK, mode, *coroutines],
                          capture_output=True, text=True, check=True)
    return done.stderr


def test_without_the_filter_a_destroyed_dispatch_control_task_is_printed():
    """The noise this module is about (so the next test can fail)."""
    printed = destroyed_task_messages("loud", "dispatch_control")
    assert "Task was destroyed but it is pending" in printed and "Kernel.dispatch_control" in printed


@pytest.mark.parametrize("coroutines", [("dispatch_control",), ("dispatch_control", "other_work")])
def test_the_filter_drops_only_the_kernels_dispatch_control_task(coroutines):
    printed = destroyed_task_messages("quiet", *coroutines)
    assert "Kernel.dispatch_control" not in printed
    if "other_work" in coroutines:  # any other destroyed task still shows
        assert "Task was destroyed but it is pending" in printed and "Kernel.other_work" in printed
    else:
        assert printed == ""
