"""Run generated Python programs against their unit tests, never in this process (pass@1).

``run_programs`` starts one fresh interpreter (``python -I -S``: no site-packages, no user or
environment paths) in an empty temporary folder, in its own session so that it and everything
under it can be killed at once. That worker runs this same file as a script and forks one child
per program, a few at a time; each child, before it runs the untrusted code:

* redirects stdin/stdout/stderr to ``/dev/null`` and closes every other inherited descriptor but
  its result pipe;
* lowers its limits: address space (``RLIMIT_AS``, ``memory_mb``), CPU seconds (``RLIMIT_CPU``),
  written file size 0 (``RLIMIT_FSIZE``) and no new processes (``RLIMIT_NPROC``);
* installs an audit hook (``sys.addaudithook``) that raises ``PermissionError`` on every
  ``open``, every new ``import`` (modules a program may use are imported beforehand: ``math``,
  ``re``, ``collections``, ...), and every ``os.*``, ``socket.*``, ``subprocess.*``,
  ``shutil.*`` or ``ctypes.*`` event;
* runs the program with ``open``, ``input``, ``exit``, ``quit``, ``help`` and ``breakpoint``
  removed from its builtins.

The worker kills a child that outlives ``timeout`` seconds of wall clock, so a crash, an infinite
loop or a memory hog fails that program alone. This guards against what a small model writes
by accident (loops, recursion, huge lists, stray file or network calls); it is not a security
boundary against code written to escape (that needs a container or a separate user).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import select
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Outcome", "SandboxError", "run_programs"]

#: Modules a program may import: loaded before the audit hook closes ``import``.
PRELOADED = (
    "math", "re", "string", "collections", "itertools", "functools", "heapq", "bisect",
    "operator", "typing", "statistics", "fractions", "decimal", "copy", "random", "hashlib",
)  # fmt: skip
#: Audit events (prefixes) that fail the program.
BLOCKED = ("open", "import", "os.", "socket.", "subprocess.", "shutil.", "ctypes.", "pty.")
#: Builtins a program does not get.
REMOVED_BUILTINS = ("open", "input", "exit", "quit", "help", "breakpoint")
_RESULT_BYTES = 4096


class SandboxError(RuntimeError):
    """The worker itself failed (not a program): it could not start or answered garbage."""


@dataclass(frozen=True)
class Outcome:
    """How one program did: passed, or why not (``AssertionError: ...``, ``timeout ...``)."""

    passed: bool
    error: str = ""


def run_programs(
    programs: Sequence[str],
    timeout: float = 2.0,
    memory_mb: int = 512,
    jobs: int | None = None,
) -> list[Outcome]:
    """Run each program (code plus its tests) in the sandbox; passed = it ran to the end.

    Args:
        programs: Whole programs: the code under test followed by asserts that raise when it
            is wrong.
        timeout: Wall-clock seconds per program (its CPU limit is the same, rounded up).
        memory_mb: Address-space limit per program, in MiB.
        jobs: Programs run at once (default: up to 4, at most the CPU count).

    Returns:
        One ``Outcome`` per program, in order.

    Raises:
        SandboxError: The worker could not start, died or answered something unreadable.
    """
    # Imported here, not at the top: the worker runs this file too, and a module it has loaded
    # is one that a program may import.
    import subprocess
    import tempfile

    if not programs:
        return []
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    spec = {"programs": list(programs), "timeout": timeout, "memory_mb": memory_mb, "jobs": jobs}
    # Every program may take its whole timeout; the rest is the worker's own start and exit.
    limit = timeout * math.ceil(len(programs) / jobs) + 30
    with tempfile.TemporaryDirectory(prefix="adaptnas-code-") as cwd:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env={"PATH": os.defpath, "LC_ALL": "C.UTF-8"},
            start_new_session=True,  # its own process group: killpg reaches every child
        )
        try:
            out, err = proc.communicate(json.dumps(spec).encode(), timeout=limit)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid)
            proc.communicate()
            raise SandboxError(
                f"code sandbox: worker ran past {limit:.0f} s and was killed"
            ) from None
        finally:
            _killpg(proc.pid)  # a child the worker lost track of must not outlive it
    try:
        results = json.loads(out.decode())
        assert len(results) == len(programs)
    except (ValueError, AssertionError):
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise SandboxError(
            f"code sandbox: worker exited {proc.returncode}: {tail[0][:200]}"
        ) from None
    return [Outcome(bool(r["passed"]), str(r["error"])) for r in results]


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ------------------------------------------------------------------ the worker (its own process)


def _guard(event: str, args: tuple) -> None:
    if event.startswith(BLOCKED):
        raise PermissionError(f"sandbox: '{event}' is not allowed")


def _child(source: str, out_fd: int, timeout: float, memory_mb: int) -> None:
    """Run one program in this forked process and write its outcome to ``out_fd``; never returns."""
    import builtins
    import resource

    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, out_fd)
        os.closerange(out_fd + 1, 1 << 16)
        memory = int(memory_mb) << 20
        cpu = max(1, math.ceil(timeout))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        safe = {k: v for k, v in vars(builtins).items() if k not in REMOVED_BUILTINS}
        code = compile(source, "<program>", "exec")
        sys.addaudithook(_guard)
        exec(code, {"__name__": "__main__", "__builtins__": safe})
        result = {"passed": True, "error": ""}
    except BaseException as err:  # noqa: B036 - SystemExit and KeyboardInterrupt fail it too
        result = {"passed": False, "error": f"{type(err).__name__}: {err}"[:300]}
    try:
        os.write(out_fd, json.dumps(result).encode()[:_RESULT_BYTES])
    finally:
        os._exit(0)


def _verdict(data: bytes, status: int) -> dict:
    if data:
        try:
            result = json.loads(data.decode())
            return {"passed": bool(result["passed"]), "error": str(result["error"])}
        except (ValueError, KeyError, TypeError):
            pass
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        why = " (cpu limit)" if sig == signal.SIGXCPU else ""
        return {"passed": False, "error": f"killed by {signal.Signals(sig).name}{why}"}
    return {"passed": False, "error": f"exited with status {os.waitstatus_to_exitcode(status)}"}


def _worker() -> None:
    spec = json.loads(sys.stdin.read())
    programs, timeout = spec["programs"], float(spec["timeout"])
    memory_mb, jobs = int(spec["memory_mb"]), int(spec["jobs"])
    for name in PRELOADED:
        importlib.import_module(name)
    results: list[dict | None] = [None] * len(programs)
    pending = list(range(len(programs)))[::-1]
    running: dict[int, list] = {}  # read fd -> [index, pid, deadline, bytes read]
    while pending or running:
        while pending and len(running) < jobs:
            i = pending.pop()
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                _child(programs[i], write_fd, timeout, memory_mb)
            os.close(write_fd)
            running[read_fd] = [i, pid, time.monotonic() + timeout, b""]
        wait = max(0.0, min(e[2] for e in running.values()) - time.monotonic())
        ready, _, _ = select.select(list(running), [], [], wait)
        for fd in ready:
            entry = running[fd]
            chunk = os.read(fd, _RESULT_BYTES)
            if chunk:
                entry[3] = (entry[3] + chunk)[:_RESULT_BYTES]
                continue
            # End of file: the child wrote its outcome (or died). Kill it in case it closed the
            # pipe and carried on, then reap it.
            del running[fd]
            os.close(fd)
            try:
                os.kill(entry[1], signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status = os.waitpid(entry[1], 0)
            results[entry[0]] = _verdict(entry[3], status)
        now = time.monotonic()
        for fd, entry in list(running.items()):
            if now >= entry[2]:
                os.kill(entry[1], signal.SIGKILL)
                os.waitpid(entry[1], 0)
                del running[fd]
                os.close(fd)
                results[entry[0]] = {"passed": False, "error": f"timeout after {timeout:g} s"}
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    _worker()
