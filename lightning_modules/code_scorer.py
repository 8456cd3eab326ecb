"""Run generated Python programs against their unit tests, never in this process (pass@1).

``run_programs`` starts one fresh interpreter (``python -I -S``: no site-packages, no user or
environment paths) in an empty temporary folder, in its own session so that it and everything
under it can be killed at once. That worker runs this same file as a script. At its start it
moves itself into a new network namespace (``unshare(CLONE_NEWNET)``; when not root, inside a
new user namespace that maps only its own uid; when the kernel refuses both, there is no network
isolation but the audit hook below) and sets ``no_new_privs``. It then forks one child per
program, a few at a time; each child, before it runs the untrusted code:

* redirects stdin/stdout/stderr to ``/dev/null`` and keeps, of every other descriptor, only its
  two pipes to the worker;
* moves into its own empty folder (``0700``, owned by the sandbox user, removed after);
* when it runs as root: drops every supplementary group, then its gid and uid to ``nobody``
  (``nogroup``), so that file permissions and ``RLIMIT_NPROC`` apply to it;
* lowers its limits: address space (``RLIMIT_AS``, ``memory_mb``), CPU seconds (``RLIMIT_CPU``),
  written file size 0 (``RLIMIT_FSIZE``), no new processes or threads (``RLIMIT_NPROC`` = 0),
  no new descriptors (``RLIMIT_NOFILE``), no core file;
* removes from ``os`` (``posix``) every function but a few harmless ones (so no ``os.write``,
  ``os.read``, ``os._exit``, ``os.mkfifo``, ...), ``signal.signal``, ``setitimer``, ``alarm``
  and ``set_wakeup_fd``, and ``_imp``'s module builders, keeping its own references to what it
  needs;
* installs an audit hook (``sys.addaudithook``) that raises ``PermissionError`` on every
  ``open``, every new ``import`` (modules a program may use are imported beforehand: ``math``,
  ``re``, ``collections``, ...), and every ``os.*``, ``socket.*``, ``subprocess.*``, ``sys.*``
  (``sys._getframe``, ``sys.settrace``, ...), ``gc.*``, ``ctypes.*``, ``object.__getattr__`` (a
  traceback's or generator's frame) ... event, so that the program cannot reach the child's
  own frames and the references kept there;
* runs the program with ``open``, ``input``, ``exit``, ``quit``, ``help`` and ``breakpoint``
  removed from its builtins.

The verdict is the worker's, not the program's. A child whose program ran to its end writes
``D`` on its result pipe; only then does the worker generate a random nonce and send it on the
child's second pipe, and the program passes only if the child echoes exactly that nonce and
exits with status 0. A program that writes a verdict of its own, or ends its process
(``os._exit``, a signal) before its asserts, has no nonce to show and fails. The worker kills a
child that outlives ``timeout`` seconds of wall clock, so a crash, an infinite loop or a memory
hog fails that program alone.

What this is not: a boundary against code that takes control of its own interpreter (through a
CPython bug, say). Such code could report what it likes, since the asserts run in its process
and no report from that process can be more trusted than the process; the kernel-level layers
(unprivileged uid, network namespace, limits) still hold against it, kernel exploits aside.
Run untrusted code from elsewhere in a container or VM as well.
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
from typing import Any

__all__ = ["Outcome", "SandboxError", "run_programs"]

#: Modules a program may import: loaded before the audit hook closes ``import``.
PRELOADED = (
    "math", "re", "string", "collections", "itertools", "functools", "heapq", "bisect",
    "operator", "typing", "statistics", "fractions", "decimal", "copy", "random", "hashlib",
)  # fmt: skip
#: Audit events (prefixes) that fail the program.
BLOCKED = (
    "open", "import", "os.", "socket.", "subprocess.", "shutil.", "ctypes.", "pty.", "sys.",
    "gc.", "object.__getattr__", "code.", "marshal.", "mmap.", "fcntl.", "resource.",
)  # fmt: skip
#: Builtins a program does not get.
REMOVED_BUILTINS = ("open", "input", "exit", "quit", "help", "breakpoint")
#: The functions of ``os`` (``posix``) a program keeps; every other one is removed.
KEPT_OS_FUNCTIONS = (
    "fspath", "urandom", "cpu_count", "strerror", "getpid", "getppid", "getuid", "geteuid",
    "getgid", "getegid", "getgroups", "getcwd", "WIFEXITED", "WEXITSTATUS", "WIFSIGNALED",
    "WTERMSIG", "WIFSTOPPED", "WSTOPSIG", "major", "minor", "makedev",
)  # fmt: skip
#: The user and group a child runs as when the worker is root (looked up by name first).
SANDBOX_USER, SANDBOX_GROUP = ("nobody", 65534), ("nogroup", 65534)
_RESULT_BYTES = 4096
_CLONE_NEWNET, _CLONE_NEWUSER, _PR_SET_NO_NEW_PRIVS = 0x40000000, 0x10000000, 38


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
    return _run_programs(programs, timeout, memory_mb, jobs)[0]


def _run_programs(
    programs: Sequence[str],
    timeout: float = 2.0,
    memory_mb: int = 512,
    jobs: int | None = None,
    guard: bool = True,
) -> tuple[list[Outcome], dict[str, Any]]:
    """``run_programs``, plus the worker's account of its isolation.

    ``guard=False`` (tests only) leaves out the in-process layer (audit hook, stripped ``os``
    and builtins) to show what the kernel-level layers hold on their own.
    """
    # Imported here, not at the top: the worker runs this file too, and a module it has loaded
    # is one that a program may import.
    import subprocess
    import tempfile

    if not programs:
        return [], {}
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    spec = {
        "programs": list(programs),
        "timeout": timeout,
        "memory_mb": memory_mb,
        "jobs": jobs,
        "guard": guard,
    }
    # Every program may take its whole timeout; the rest is the worker's own start and exit.
    limit = timeout * math.ceil(len(programs) / jobs) + 30
    # Each program gets a folder under this one: on tmpfs where there is one (/dev/shm), since
    # creating and removing a folder per program costs milliseconds on some disks.
    shm = "/dev/shm"
    where = shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None
    with tempfile.TemporaryDirectory(prefix="adaptnas-code-", dir=where) as cwd:
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
        answer = json.loads(out.decode())
        results, isolation = answer["results"], answer["isolation"]
        assert len(results) == len(programs)
    except (ValueError, KeyError, TypeError, AssertionError):
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise SandboxError(
            f"code sandbox: worker exited {proc.returncode}: {tail[0][:200]}"
        ) from None
    broken = [r["error"] for r in results if r.get("setup_failed")]
    if broken:
        raise SandboxError(f"code sandbox: a child could not isolate itself: {broken[0]}")
    outcomes = [Outcome(bool(r["passed"]), str(r["error"])) for r in results]
    return outcomes, isolation


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ------------------------------------------------------------------ the worker (its own process)


class SandboxPermissionError(PermissionError, ValueError):
    """A blocked call. A ``ValueError`` too, so that the standard library's fallbacks for a
    platform without ``sys._getframe`` (``collections.namedtuple``, ``typing``, ``enum``) work."""


def _guard(event: str, args: tuple) -> None:
    if event.startswith(BLOCKED):
        raise SandboxPermissionError(f"sandbox: '{event}' is not allowed")


def _isolate_worker() -> dict[str, Any]:
    """Put the worker (so every child) in a new network namespace, set no_new_privs.

    Returns what held, for the record. ``ctypes`` is dropped from ``sys.modules`` after use,
    so that a program's ``import ctypes`` is a new import (which the audit hook refuses).
    """
    loaded = set(sys.modules)
    uid, gid = os.geteuid(), os.getegid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        no_new_privs = libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
        if libc.unshare(_CLONE_NEWNET) == 0:
            network = "network namespace"
        elif uid != 0 and libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
            # Map only our own ids, so files and permissions look the same inside, then give up
            # the capabilities the new user namespace granted (children need none).
            for name, text in (
                ("setgroups", "deny"),
                ("uid_map", f"{uid} {uid} 1"),
                ("gid_map", f"{gid} {gid} 1"),
            ):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
            header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
            if libc.capset(header, (ctypes.c_uint32 * 6)()) != 0:
                raise OSError(ctypes.get_errno(), "capset")
            network = "network namespace (in a user namespace)"
        else:
            error = os.strerror(ctypes.get_errno())
            network = f"none (unshare: {error}); the audit hook blocks sockets"
    except (OSError, AttributeError) as err:
        network, no_new_privs = f"none ({err}); the audit hook blocks sockets", False
    finally:
        for name in set(sys.modules) - loaded:
            del sys.modules[name]
    return {"network": network, "no_new_privs": no_new_privs}


def _sandbox_ids() -> tuple[int, int] | None:
    """The uid and gid a child drops to: ``nobody``/``nogroup`` when root, else None."""
    if os.geteuid() != 0:
        return None
    loaded = set(sys.modules)
    try:
        import grp
        import pwd

        ids = []
        for lookup, (name, fallback) in (
            (lambda n: pwd.getpwnam(n).pw_uid, SANDBOX_USER),
            (lambda n: grp.getgrnam(n).gr_gid, SANDBOX_GROUP),
        ):
            try:
                ids.append(lookup(name))
            except KeyError:
                ids.append(fallback)
        return ids[0], ids[1]
    finally:
        for name in set(sys.modules) - loaded:
            del sys.modules[name]


def _strip_plan() -> tuple[list[tuple[dict, str]], list[tuple[set, Any]]]:
    """Where the loaded modules hold a way to raw descriptors, exit or module loading.

    Every function of ``posix`` but ``KEPT_OS_FUNCTIONS``, signal handlers and wakeup fds (a
    handler would run inside the child's own frames, a wakeup fd writes bytes), and ``_imp``'s
    module builders: as (module namespace, name) pairs and as members of sets such as
    ``os.supports_dir_fd``. The worker works this out once; each child removes them.
    """
    import posix

    removed = {}
    for name, value in vars(posix).items():
        if callable(value) and not isinstance(value, type) and name not in KEPT_OS_FUNCTIONS:
            removed[id(value)] = value
    for module_name, names in (
        ("_signal", ("signal", "set_wakeup_fd", "setitimer", "alarm", "siginterrupt")),
        ("_imp", ("create_builtin", "exec_builtin", "create_dynamic", "exec_dynamic")),
    ):
        module = sys.modules.get(module_name)
        for name in names:
            if hasattr(module, name):
                removed[id(getattr(module, name))] = getattr(module, name)

    def gone(value: Any) -> bool:
        return id(value) in removed and removed[id(value)] is value

    names, members, seen = [], [], set()
    for module in list(sys.modules.values()):  # one module may stand under two names
        space = getattr(module, "__dict__", None)
        if not isinstance(space, dict) or id(space) in seen:
            continue
        seen.add(id(space))
        for name, value in space.items():
            if gone(value):
                names.append((space, name))
            elif isinstance(value, set):  # os.supports_fd, os.supports_dir_fd, ...
                members.extend((value, f) for f in value if gone(f))
    return names, members


def _child(
    source: str,
    pipes: tuple[int, int],
    workdir: str,
    ids: tuple[int, int] | None,
    limits: tuple[float, int],
    strip: tuple[list[tuple[dict, str]], list[tuple[set, Any]]] | None,
) -> None:
    """Run one program in this forked process; report on ``pipes`` (result, key); never returns."""
    import builtins
    import resource

    # Our own references: the program loses these names from ``os`` before it runs.
    write, read, exit_now = os.write, os.read, os._exit
    result_fd, key_fd = 3, 4
    report_fd = pipes[0]  # until the pipes have moved
    # From exec on, this function uses only its locals: the program may rebind any global or
    # builtin, but (with frames out of its reach) cannot get at these.
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        # Move the two pipes to 3 and 4 (through copies, so neither overwrites the other), close
        # every other descriptor.
        high = [os.dup(fd) for fd in pipes]
        os.dup2(high[0], result_fd)
        os.dup2(high[1], key_fd)
        os.closerange(key_fd + 1, 1 << 16)
        report_fd = result_fd
        os.chdir(workdir)
        if ids is not None:
            os.setgroups([])
            os.setgid(ids[1])
            os.setuid(ids[0])  # real, effective and saved: there is no way back to root
            if 0 in (os.getuid(), os.geteuid(), os.getgid(), os.getegid()):
                raise OSError("still root after setuid")
        timeout, memory_mb = limits
        memory = int(memory_mb) << 20
        cpu = max(1, math.ceil(timeout))
        for limit, value in (
            (resource.RLIMIT_AS, (memory, memory)),
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),
            (resource.RLIMIT_FSIZE, (0, 0)),
            (resource.RLIMIT_NPROC, (0, 0)),  # binds once not root: no fork, no thread
            (resource.RLIMIT_NOFILE, (16, 16)),
            (resource.RLIMIT_CORE, (0, 0)),
        ):
            resource.setrlimit(limit, value)
    except BaseException as err:  # noqa: B036 - a child that cannot isolate itself runs nothing
        write(report_fd, f"E{type(err).__name__}: {err}"[:300].encode())
        exit_now(0)
    try:
        safe = dict(vars(builtins))
        if strip is not None:
            safe = {k: v for k, v in safe.items() if k not in REMOVED_BUILTINS}
        code = compile(source, "<program>", "exec")
        if strip is not None:
            for space, name in strip[0]:
                del space[name]
            for members, member in strip[1]:
                members.discard(member)
            sys.addaudithook(_guard)
        exec(code, {"__name__": "__main__", "__builtins__": safe})
        report = b"D"  # ran to its end: ask the worker for the nonce
    except BaseException as err:  # noqa: B036 - SystemExit and KeyboardInterrupt fail it too
        report = b"F" + f"{type(err).__name__}: {err}"[:300].encode(errors="replace")
    try:
        write(result_fd, report)
        if report == b"D":
            write(result_fd, read(key_fd, 64))
    finally:
        exit_now(0)


def _verdict(data: bytes, status: int, nonce: bytes | None) -> dict:
    if data[:1] == b"E":
        return {"passed": False, "error": data[1:].decode(errors="replace"), "setup_failed": True}
    if nonce is not None and data == b"D" + nonce and os.WIFEXITED(status):
        if os.WEXITSTATUS(status) == 0:
            return {"passed": True, "error": ""}
    if data[:1] == b"F":
        return {"passed": False, "error": data[1:].decode(errors="replace")}
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        why = {signal.SIGXCPU: " (cpu limit)", signal.SIGXFSZ: " (file size limit)"}.get(sig, "")
        return {"passed": False, "error": f"killed by {signal.Signals(sig).name}{why}"}
    code = os.waitstatus_to_exitcode(status)
    return {"passed": False, "error": f"no verdict from the sandbox (exited with status {code})"}


def _remove_tree(path: str) -> None:
    """Remove a child's folder (it may hold empty files, folders, links); never follow links."""
    try:
        for root, dirs, files in os.walk(path, topdown=False):
            for name in files:
                os.unlink(os.path.join(root, name))
            for name in dirs:
                full = os.path.join(root, name)
                os.unlink(full) if os.path.islink(full) else os.rmdir(full)
        os.rmdir(path)
    except OSError:
        pass  # what is left goes with the worker's temporary folder


def _worker() -> None:
    spec = json.loads(sys.stdin.read())
    programs, timeout = spec["programs"], float(spec["timeout"])
    memory_mb, jobs, guard = int(spec["memory_mb"]), int(spec["jobs"]), bool(spec["guard"])
    isolation = _isolate_worker()
    ids = _sandbox_ids()
    isolation["user"] = f"uid {ids[0]}, gid {ids[1]}" if ids else f"uid {os.geteuid()} (not root)"
    # Without the in-process layer (tests only) the socket module is there to be tried: the
    # sandbox user may not be able to read the standard library to import it.
    for name in PRELOADED if guard else (*PRELOADED, "socket"):
        importlib.import_module(name)
    strip = _strip_plan() if guard else None
    results: list[dict | None] = [None] * len(programs)
    pending = list(range(len(programs)))[::-1]
    # result read fd -> {index, pid, deadline, data, key (write fd), dir, nonce}
    running: dict[int, dict] = {}

    def finish(fd: int, entry: dict, status: int | None) -> None:
        del running[fd]
        os.close(fd)
        os.close(entry["key"])
        if status is None:  # past its deadline
            os.kill(entry["pid"], signal.SIGKILL)
            os.waitpid(entry["pid"], 0)
            result = {"passed": False, "error": f"timeout after {timeout:g} s"}
        else:
            result = _verdict(entry["data"], status, entry["nonce"])
        results[entry["index"]] = result
        _remove_tree(entry["dir"])

    while pending or running:
        while pending and len(running) < jobs:
            i = pending.pop()
            workdir = f"program-{i}"
            os.mkdir(workdir, 0o700)
            if ids is not None:
                os.chown(workdir, *ids)
            result_r, result_w = os.pipe()
            key_r, key_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(result_r)
                os.close(key_w)
                _child(programs[i], (result_w, key_r), workdir, ids, (timeout, memory_mb), strip)
            os.close(result_w)
            os.close(key_r)
            running[result_r] = {
                "index": i, "pid": pid, "deadline": time.monotonic() + timeout, "data": b"",
                "key": key_w, "dir": workdir, "nonce": None,
            }  # fmt: skip
        wait = max(0.0, min(e["deadline"] for e in running.values()) - time.monotonic())
        ready, _, _ = select.select(list(running), [], [], wait)
        for fd in ready:
            entry = running[fd]
            chunk = os.read(fd, _RESULT_BYTES)
            if chunk:
                entry["data"] = (entry["data"] + chunk)[:_RESULT_BYTES]
                if entry["data"] == b"D" and entry["nonce"] is None:
                    # The child says its program ran to the end: only now does a nonce exist.
                    entry["nonce"] = os.urandom(16).hex().encode()
                    try:
                        os.write(entry["key"], entry["nonce"])
                    except OSError:
                        pass  # it closed its end: no echo, no pass
                continue
            # End of file: the child reported (or died). Kill it in case it closed the pipe and
            # carried on, then reap it.
            try:
                os.kill(entry["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status = os.waitpid(entry["pid"], 0)
            finish(fd, entry, status)
        now = time.monotonic()
        for fd, entry in list(running.items()):
            if now >= entry["deadline"]:
                finish(fd, entry, None)
    sys.stdout.write(json.dumps({"results": results, "isolation": isolation}))


if __name__ == "__main__":
    _worker()
