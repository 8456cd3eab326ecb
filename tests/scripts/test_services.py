"""scripts/postgres.sh and scripts/slurm.sh let no one in and touch nothing that is not theirs.

The services are real: the fixtures start them with the scripts (root only; they skip, or fail
under CI=true, where they cannot start). Each test checks what a local user could reach or what
the script could break: permissions, authentication, secrets in command lines, foreign jobs and
configs, system files put back.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest

from tests.conftest import REPO

SCRIPTS = REPO / "scripts"
STATE = Path(os.environ.get("ADAPTNAS_SERVICES_DIR", "/var/lib/adaptnas-services"))
PG = STATE / "pg"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the service scripts run as root")


def script(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPTS / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def owner(path: Path) -> str:
    return pwd.getpwuid(path.lstat().st_uid).pw_name


def as_nobody(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", *cmd],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "PGCONNECT_TIMEOUT": "5"},
    )


def pg_bin() -> Path:
    version = (PG / "data" / "PG_VERSION").read_text().strip()
    return Path(f"/usr/lib/postgresql/{version}/bin")


# ---- PostgreSQL ----------------------------------------------------------------------------------
def test_state_folders_are_closed(postgres_url):
    assert (owner(STATE), mode(STATE)) == ("root", 0o711)  # passable, not listable
    assert (owner(STATE / "secret"), mode(STATE / "secret")) == ("root", 0o700)
    password = STATE / "secret" / "pg-password"
    assert (owner(password), mode(password)) == ("root", 0o600)
    assert password.read_text() == urlsplit(postgres_url).password
    for folder in (PG, PG / "data", PG / "sock"):
        assert (owner(folder), mode(folder)) == ("postgres", 0o700), folder
    (socket,) = [p for p in (PG / "sock").glob(".s.PGSQL.*") if not p.name.endswith(".lock")]
    assert stat.S_ISSOCK(socket.lstat().st_mode) and mode(socket) == 0o700
    conf = (PG / "data" / "postgresql.conf").read_text()
    assert re.search(r"^unix_socket_permissions = 0700$", conf, re.M)


def test_no_trust_only_peer_and_scram(postgres_url):
    rules = [
        line.split()
        for line in (PG / "data" / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert rules and "trust" not in {r[-1] for r in rules}
    assert {r[-1] for r in rules if r[0] == "local"} == {"peer"}
    assert {r[-1] for r in rules if r[0] == "host"} == {"scram-sha-256"}


def test_password_gets_in_and_nothing_else_does(postgres_url):
    parts = urlsplit(postgres_url)
    with psycopg2.connect(postgres_url.replace("+psycopg2", "")) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, inet_server_addr()::text")
            assert cur.fetchone() == ("adaptnas", "127.0.0.1/32")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(
            host="127.0.0.1", port=parts.port, user="adaptnas", password="wrong", dbname="adaptnas"
        )
    psql = str(pg_bin() / "psql")
    # Another local user: the socket folder is closed to them, and TCP wants a password.
    for host, user in ((str(PG / "sock"), "postgres"), ("127.0.0.1", "postgres")):
        proc = as_nobody(
            psql, "-w", "-h", host, "-p", str(parts.port), "-U", user, "-c", "SELECT 1"
        )
        assert proc.returncode != 0, (host, proc.stdout)
        assert re.search(r"Permission denied|password|no password supplied", proc.stderr), (
            proc.stderr
        )


def test_the_server_runs_the_binaries_of_its_data_version(postgres_url):
    version = (PG / "data" / "PG_VERSION").read_text().strip()
    with psycopg2.connect(postgres_url.replace("+psycopg2", "")) as conn:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version_num")
            assert cur.fetchone()[0].startswith(version)
    pid = int((PG / "data" / "postmaster.pid").read_text().split()[0])
    assert os.readlink(f"/proc/{pid}/exe") == str(pg_bin() / "postgres")


def test_no_default_cluster_is_created(postgres_url):
    conf = Path("/etc/postgresql-common/createcluster.conf").read_text()
    assert re.search(r"^\s*create_main_cluster\s*=\s*false", conf, re.M)


def test_the_password_never_appears_in_a_command_line(postgres_url, tmp_path):
    """Every runuser/psql the script runs goes through a shim that records its argv."""
    shim = tmp_path / "bin"
    shim.mkdir()
    log = tmp_path / "argv.log"
    for name in ("runuser", "psql"):
        real = subprocess.run(["bash", "-c", f"command -v {name} || true"], capture_output=True)
        real_path = real.stdout.decode().strip() or "/usr/sbin/runuser"
        (shim / name).write_text(f'#!/bin/sh\necho "$*" >>{log}\nexec {real_path} "$@"\n')
        (shim / name).chmod(0o755)
    proc = script("postgres.sh", "start", env={"PATH": f"{shim}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr
    argv = log.read_text()
    assert "psql" in argv  # the role's password was set again through psql
    assert urlsplit(postgres_url).password not in argv


def test_state_under_a_symlink_or_a_foreign_folder_is_refused(postgres_url, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "link").symlink_to(elsewhere)
    proc = script("postgres.sh", "start", env={"ADAPTNAS_SERVICES_DIR": str(tmp_path / "link")})
    assert proc.returncode != 0 and "symlink" in proc.stderr, proc.stderr
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)  # pre-created by another user
    proc = script("postgres.sh", "start", env={"ADAPTNAS_SERVICES_DIR": str(foreign)})
    assert proc.returncode != 0 and "belongs to uid 65534" in proc.stderr, proc.stderr
    assert list(elsewhere.iterdir()) == [] and list(foreign.iterdir()) == []


# ---- system files and SLURM -----------------------------------------------------------------
@pytest.mark.parametrize("existed", [True, False])
def test_a_rewritten_system_file_is_put_back_however_the_script_exits(tmp_path, existed):
    path = tmp_path / "policy-rc.d"
    if existed:
        path.write_text("#!/bin/sh\nexit 0\n")
    body = f"source {SCRIPTS / 'lib.sh'}; keep_file {path}; echo ours > {path}; exit 3"
    proc = subprocess.run(["bash", "-c", body], capture_output=True, text=True)
    assert proc.returncode == 3
    if existed:
        assert path.read_text() == "#!/bin/sh\nexit 0\n"
    else:
        assert not path.exists()
    assert [p.name for p in tmp_path.iterdir()] == (["policy-rc.d"] if existed else [])


def test_slurm_never_starts_on_a_config_it_did_not_write(slurm_cluster, tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=theirs\n")
    proc = script("slurm.sh", "start", env={"ADAPTNAS_SLURM_CONF": str(conf)})
    assert proc.returncode != 0 and "not written by this script" in proc.stderr, proc.stderr
    assert conf.read_text() == "ClusterName=theirs\n"


def _sbatch(name: str) -> str:
    out = subprocess.run(
        ["sbatch", "--parsable", f"--job-name={name}", "-p", "debug", "-c", "1", "-o", "/dev/null",
         "--wrap", "sleep 600"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return out.strip().split(";")[0]


def _jobs() -> dict[str, str]:
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True, timeout=60
    ).stdout
    return dict(line.split(maxsplit=1) for line in out.strip().splitlines())


def test_slurm_stop_cancels_only_the_projects_jobs(slurm_cluster):
    foreign = _sbatch("someone-elses")
    ours = _sbatch("adaptnas-search")
    try:
        assert {foreign, ours} <= set(_jobs())
        stop = script("slurm.sh", "stop")
        assert stop.returncode == 0, stop.stderr
        assert f"cancelled the project's jobs: {ours}" in stop.stderr
        start = script("slurm.sh", "start")
        assert start.returncode == 0, start.stderr
        for _ in range(50):
            jobs = _jobs()
            if ours not in jobs:
                break
            time.sleep(0.2)
        assert foreign in jobs and jobs[foreign] == "someone-elses"
        assert ours not in jobs
    finally:
        subprocess.run(["scancel", foreign, ours], capture_output=True, timeout=60)


# ---- what a service account can make root do -------------------------------------------------
# Each test plays the service account (postgres, munge) with only that account's rights, aims at
# files in a temporary folder (never a system file), and checks that root did not act for it.
def _run_as(user: str, *cmd: str) -> None:
    subprocess.run(["runuser", "-u", user, "--", *cmd], check=True, timeout=60)


def _account(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pytest.skip(f"no user {name} (its Debian package is not installed)")


@pytest.fixture
def shared_tmp():
    """A temporary root-owned folder (0711) that the service accounts can pass through."""
    path = Path(tempfile.mkdtemp(prefix="adaptnas-services-test-", dir="/tmp"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _shim(folder: Path, name: str, body: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(f"#!/bin/bash\n{body}\n")
    (folder / name).chmod(0o755)


def test_postgres_cannot_choose_the_binaries_root_runs(shared_tmp):
    """PG_VERSION is postgres's file: a path in it must not make root run postgres's programs."""
    pg_user = _account("postgres")
    state = shared_tmp / "state"
    (state / "pg" / "data").mkdir(parents=True)
    state.chmod(0o711)
    for folder in (state / "pg", state / "pg" / "data"):
        os.chown(folder, pg_user.pw_uid, pg_user.pw_gid)
        folder.chmod(0o700)
    marker = shared_tmp / "ran-as-root"  # only root can write here (0711, root's)
    fake = state / "pg" / "mine" / "bin"
    program = f"#!/bin/sh\nid -u > {marker} 2>/dev/null\nexit 0\n"
    # All of it written by postgres: its own programs, a server lock file, and the version file.
    _run_as("postgres", "mkdir", "-p", str(fake))
    for name in ("postgres", "pg_isready", "pg_ctl"):
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "tee", str(fake / name)],
            input=program, text=True, stdout=subprocess.DEVNULL, check=True,
        )  # fmt: skip
        _run_as("postgres", "chmod", "755", str(fake / name))
    data = state / "pg" / "data"
    version = "../../.." + str(fake.parent)  # /usr/lib/postgresql/<version>/bin = fake
    _run_as("postgres", "sh", "-c", f"echo 1 > {data / 'postmaster.pid'}")
    _run_as("postgres", "sh", "-c", f"echo '{version}' > {data / 'PG_VERSION'}")
    env = {"ADAPTNAS_SERVICES_DIR": str(state), "ADAPTNAS_PG_PORT": "1"}  # nothing listens on 1
    for action in ("status", "stop"):
        proc = script("postgres.sh", action, env=env)
        assert not marker.exists(), (action, "root ran a program postgres wrote", proc.stderr)


def test_postgres_cannot_swap_its_socket_folder_for_a_link_root_follows(shared_tmp):
    """safe_dir gives postgres's socket folder to postgres; postgres owns the folder above it, so
    it can swap the socket folder for a symlink at any moment: here, at the first `id` the check
    runs (a shim), the worst moment for a check-then-chown by name."""
    _account("postgres")
    pg = shared_tmp / "pg"
    pg.mkdir()
    sock = pg / "sock"
    sock.mkdir()
    for folder in (pg, sock):
        shutil.chown(folder, "postgres", "postgres")
        folder.chmod(0o700)
    victim = shared_tmp / "victim"  # stands for any file of root's
    victim.write_text("root's\n")
    victim.chmod(0o644)
    swap = f"mv {sock} {pg}/moved && ln -s {victim} {sock}"
    shims = shared_tmp / "bin"
    _shim(
        shims, "id",
        f'[[ -L {sock} ]] || runuser -u postgres -- sh -c "{swap}"\nexec /usr/bin/id "$@"',
    )  # fmt: skip
    body = f"source {SCRIPTS / 'lib.sh'}; safe_dir {sock} postgres 700"
    proc = subprocess.run(
        ["bash", "-c", body], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert sock.is_symlink(), "the shim did not swap the folder: the test proves nothing"
    st = victim.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o644), proc.stderr
    assert victim.read_text() == "root's\n"


def _mount_ns(binds: dict[str, Path], cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run cmd in a private mount namespace in which each system folder of binds is a temporary
    one: the scripts' hard-wired /etc/munge and /run/munge become test folders for them alone."""
    if subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespace here (unshare --mount failed)")
    mounts = "".join(
        f"mount --bind {shlex.quote(str(src))} {shlex.quote(dst)} && " for dst, src in binds.items()
    )
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", mounts + 'exec "$@"', "_",
         *cmd],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env},
    )  # fmt: skip


def _munge_folders(tmp: Path, munge) -> dict[str, Path]:
    binds = {}
    for system in ("/etc/munge", "/run/munge", "/var/lib/munge", "/var/log/munge"):
        if not Path(system).is_dir():
            pytest.skip(f"{system} is missing (munge is not installed)")
        folder = tmp / system.strip("/").replace("/", "-")
        folder.mkdir()
        binds[system] = folder
    for name in ("run-munge", "var-lib-munge", "var-log-munge"):
        os.chown(tmp / name, munge.pw_uid, munge.pw_gid)
    (tmp / "etc-munge").chmod(0o755)  # as `mkdir -p /etc/munge` leaves it
    return binds


@pytest.mark.parametrize("maker", ["dd", "mungekey"])
def test_the_munge_key_is_never_readable_by_others(shared_tmp, maker):
    """`start` makes a munge key (here in a test /etc/munge). Whatever command the script runs
    once the key exists, the key has no group or other bits and user nobody cannot read it."""
    munge = _account("munge")
    binds = _munge_folders(shared_tmp, munge)
    key = shared_tmp / "etc-munge" / "munge.key"
    log = shared_tmp / "probes"
    shims = shared_tmp / "bin"
    probe = (
        "if [[ -e /etc/munge/munge.key ]]; then\n"
        "  if setpriv --reuid=65534 --regid=65534 --clear-groups cat /etc/munge/munge.key"
        " >/dev/null 2>&1; then r=read; else r=denied; fi\n"
        f'  echo "$(basename "$0") $(stat -c %a /etc/munge/munge.key) $r" >> {log}\n'
        "fi"
    )
    for name in ("chown", "chmod", "dd", "rm", "mv", "install", "mungekey"):
        real = f"/usr/sbin/{name}" if name == "mungekey" else f"/usr/bin/{name}"
        if name == "mungekey" and not Path(real).exists():
            continue
        _shim(shims, name, f'{probe}\n{real} "$@"; rc=$?\n{probe}\nexit $rc')
    # The munged start is where the test stops; scontrol would talk to the live controller.
    _shim(shims, "runuser", f"{probe}\nexit 1")
    _shim(shims, "scontrol", "exit 0")
    if maker == "dd":
        (shims / "mungekey").unlink(missing_ok=True)
        path = f"{shims}:/usr/local/bin:/usr/bin:/bin"  # no mungekey: the dd fallback
    else:
        if not Path("/usr/sbin/mungekey").exists():
            pytest.skip("no mungekey")
        path = f"{shims}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env = {
        "PATH": path,
        "ADAPTNAS_SERVICES_DIR": str(shared_tmp / "state"),
        "ADAPTNAS_SLURM_CONF": str(shared_tmp / "slurm.conf"),
    }
    proc = _mount_ns(binds, ["bash", str(SCRIPTS / "slurm.sh"), "start"], env)
    probes = log.read_text().splitlines() if log.exists() else []
    assert probes, ("no command ran while the key existed", proc.stderr)
    assert [p for p in probes if p.endswith(" read")] == [], (probes, proc.stderr)
    assert all(int(p.split()[1], 8) & 0o077 == 0 for p in probes), probes
    assert owner(key) == "munge" and mode(key) == 0o400, proc.stderr


def test_munge_cannot_make_stop_kill_another_process(shared_tmp):
    """munged.pid is munge's to write: a pid of another process in it (a sleep of root's, which
    must survive) must not be killed by `stop`."""
    munge = _account("munge")
    binds = _munge_folders(shared_tmp, munge)
    state = shared_tmp / "state"
    (state / "slurm").mkdir(parents=True)
    (state / "slurm" / "munged.ours").touch()  # as `start` leaves it after starting munged
    conf = shared_tmp / "slurm.conf"
    conf.write_text("ClusterName=theirs\n")  # not ours: stop cancels no job and asks no daemon
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        subprocess.run(
            ["runuser", "-u", "munge", "--", "tee", str(shared_tmp / "run-munge" / "munged.pid")],
            input=f"{bystander.pid}\n", text=True, stdout=subprocess.DEVNULL, check=True,
        )  # fmt: skip
        env = {"ADAPTNAS_SERVICES_DIR": str(state), "ADAPTNAS_SLURM_CONF": str(conf)}
        proc = _mount_ns(binds, ["bash", str(SCRIPTS / "slurm.sh"), "stop"], env)
        time.sleep(0.5)
        assert bystander.poll() is None, ("stop killed the pid munge named", proc.stderr)
        assert "left alone" in proc.stderr, proc.stderr
    finally:
        bystander.kill()
        bystander.wait()


def test_stop_still_stops_the_munged_it_started(shared_tmp):
    """The check that spares other processes still stops munged itself (a real one, on a key and
    folders of the test's own, in a private mount namespace)."""
    munge = _account("munge")
    binds = _munge_folders(shared_tmp, munge)
    state = shared_tmp / "state"
    (state / "slurm").mkdir(parents=True)
    (state / "slurm" / "munged.ours").touch()
    conf = shared_tmp / "slurm.conf"
    conf.write_text("ClusterName=theirs\n")
    started = shared_tmp / "started.pid"
    body = (
        "set -e; (umask 077; dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1"
        " status=none); chown munge:munge /etc/munge /etc/munge/munge.key;"
        " chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key;"
        " runuser -u munge -- /usr/sbin/munged;"
        f" cat /run/munge/munged.pid > {started}; bash {SCRIPTS / 'slurm.sh'} stop"
    )
    env = {"ADAPTNAS_SERVICES_DIR": str(state), "ADAPTNAS_SLURM_CONF": str(conf)}
    proc = _mount_ns(binds, ["bash", "-c", body], env)
    assert proc.returncode == 0 and "stopped munged" in proc.stderr, proc.stderr
    pid = int(started.read_text())
    status = Path(f"/proc/{pid}/status")
    alive = status.exists() and "\nState:\tZ" not in status.read_text()
    if alive:
        os.kill(pid, 15)
    assert not alive, f"munged {pid} still runs"
