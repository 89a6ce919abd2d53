"""Embedded PostgreSQL clusters that pixelgres creates and runs itself.

One class serves both the embedded default (``pixelgres up``, state under $PIXELGRES_HOME)
and the test suite's throwaway clusters. The server listens on a Unix socket only, in a
0700 directory, so ``trust`` authentication admits only the owner (and root). Postgres
refuses to run as root: when we are root it runs as the ``postgres`` user, and its files
live where that user can reach them (``runtime``), which may differ from ``home``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
from pathlib import Path

SUPERUSER = "postgres"


def pg_bindir() -> Path:
    """The newest installed server's bin directory (PIXELGRES_PG_BINDIR overrides)."""
    if os.environ.get("PIXELGRES_PG_BINDIR"):
        return Path(os.environ["PIXELGRES_PG_BINDIR"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("no PostgreSQL server installed; run 'make setup' (scripts/setup.sh)")
    return found[-1].parent


def server_python() -> str:
    """The Python plpython3u links against (and the server's Python packages are built for)."""
    import re

    lib = pg_bindir().parent / "lib" / "plpython3.so"  # Debian's pkglibdir
    ldd = subprocess.run(["ldd", str(lib)], capture_output=True, text=True).stdout
    m = re.search(r"libpython(3\.\d+)", ldd)
    return f"/usr/bin/python{m.group(1)}" if m else "python3"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_home() -> Path:
    return Path(os.environ.get("PIXELGRES_HOME") or Path.home() / ".local/share/pixelgres")


def _as_root() -> bool:
    return os.geteuid() == 0


def _server_user_can_reach(path: Path) -> bool:
    if not _as_root():
        return True
    r = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(path)],
                       capture_output=True)
    return r.returncode == 0


class Cluster:
    """A local cluster: ``init()`` once, then ``start()``/``stop()``; state in home/cluster.json."""

    def __init__(self, home: Path | str, *, settings: dict[str, str] | None = None):
        self.home = Path(home)
        self.settings = settings or {}
        self.state_file = self.home / "cluster.json"
        state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        self.runtime = Path(state["runtime"]) if "runtime" in state else None
        self.port = state.get("port")

    # -- paths -------------------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        return self.runtime / "data"

    @property
    def sockdir(self) -> Path:
        return self.runtime / "run"

    @property
    def logfile(self) -> Path:
        return self.runtime / "postgres.log"

    @property
    def initialized(self) -> bool:
        return self.runtime is not None and (self.datadir / "PG_VERSION").exists()

    def dsn(self, dbname: str = "pixelgres") -> str:
        return f"host={self.sockdir} port={self.port} user={SUPERUSER} dbname={dbname}"

    # -- running commands as the server's OS user ----------------------------------------
    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = [str(c) for c in cmd]
        if _as_root():
            argv = ["runuser", "-u", "postgres", "--"] + argv
        r = subprocess.run(argv, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    def _own(self, path: Path) -> None:
        if _as_root():
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    # -- lifecycle -----------------------------------------------------------------------
    def init(self) -> "Cluster":
        if self.initialized:
            return self
        self._runtime()
        self._run(pg_bindir() / "initdb", "-D", self.datadir, "-U", SUPERUSER, "-A", "trust",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        self._configure()
        return self

    def init_replica(self, primary: str) -> "Cluster":
        """A streaming hot standby of ``primary`` (a conninfo of a role that may replicate, e.g.
        another cluster's ``dsn()``): pg_basebackup copies it and writes standby.signal and
        primary_conninfo, then this cluster's own port, socket and settings are set. Media files
        are not WAL: point pixelgres.media_dir at the primary's store (shared storage) or keep
        media in buckets (docs/scale-out.md)."""
        if self.initialized:
            return self
        self._runtime()
        self._run(pg_bindir() / "pg_basebackup", "-D", self.datadir, "-d", primary, "-R", "-X", "stream",
                  "--checkpoint=fast", "--no-sync")
        for f in ("postmaster.pid", "postmaster.opts"):
            (self.datadir / f).unlink(missing_ok=True)
        self._configure()
        return self

    def _runtime(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        runtime = self.home / "cluster"
        runtime.mkdir(exist_ok=True)
        self._own(runtime)
        if not _server_user_can_reach(runtime):
            # e.g. root's home is 0700: keep the server's files where postgres can reach them
            tag = hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:12]
            runtime.rmdir()
            runtime = Path("/var/lib/pixelgres") / tag
            runtime.mkdir(parents=True, exist_ok=True)
            os.chmod(runtime.parent, 0o755)
            self._own(runtime)
        self.runtime = runtime
        for d in (self.sockdir,):
            d.mkdir(mode=0o700, exist_ok=True)
            self._own(d)
        self.port = self.port or free_port()

    def _configure(self) -> None:
        """This cluster's settings, after those initdb (or a base backup's copy) wrote: the last wins."""
        conf = {
            "port": str(self.port),
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.sockdir}'",
            "unix_socket_permissions": "0700",
            "logging_collector": "off",
            # defines pixelgres.* settings at session start, so superuser-only ones are
            # refused at SET time (without it they are discarded when first used)
            "shared_preload_libraries": "'pixelgres'",
            **{k: v for k, v in self.settings.items()},
        }
        lines = "".join(f"{k} = {v}\n" for k, v in conf.items())
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write("\n# pixelgres embedded cluster\n" + lines)
        self.state_file.write_text(json.dumps({"runtime": str(self.runtime), "port": self.port}))

    def running(self) -> bool:
        if not self.initialized:
            return False
        return self._run(pg_bindir() / "pg_ctl", "-D", self.datadir, "status", check=False).returncode == 0

    def is_replica(self) -> bool:
        return self.initialized and (self.datadir / "standby.signal").exists()

    def start(self) -> "Cluster":
        if not self.initialized:
            self.init()
        if not self.running():
            self._run(pg_bindir() / "pg_ctl", "-D", self.datadir, "-l", self.logfile,
                      "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        if self.running():
            self._run(pg_bindir() / "pg_ctl", "-D", self.datadir, "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        self.stop()
        if self.runtime:
            shutil.rmtree(self.runtime, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)

    def listen(self, address: str) -> None:
        """Accept TCP connections on ``address`` (a host or IP; '' for the socket only) with
        scram-sha-256 passwords, never trust; the socket keeps trust for the cluster's owner.
        Restarts the server when the address changes (listen_addresses needs it)."""
        import ipaddress

        if address not in ("", "localhost", "*"):
            try:
                address = str(ipaddress.ip_address(address))
            except ValueError:
                raise ValueError(f"--listen takes an IP address, 'localhost' or '*', not {address!r}") from None
        hba = self.datadir / "pg_hba.conf"
        lines = ["# pixelgres: the owner over the 0700 socket (and replicas started from it); passwords (SCRAM) over TCP",
                 "local all all trust", "local replication all trust"]
        if address:
            nets = ["0.0.0.0/0", "::/0"] if address in ("0.0.0.0", "*", "::") else ["127.0.0.1/32", "::1/128"] \
                if address in ("127.0.0.1", "localhost", "::1") else [f"{address}/32" if ":" not in address
                                                                        else f"{address}/128"]
            lines += [f"host all all {n} scram-sha-256" for n in nets]
        tmp = hba.with_suffix(".new")
        tmp.write_text("\n".join(lines) + "\n")
        self._own(tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, hba)
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            now = conn.execute("SELECT current_setting('listen_addresses')").fetchone()[0]
            conn.execute("ALTER SYSTEM SET password_encryption = 'scram-sha-256'")
            conn.execute("ALTER SYSTEM SET listen_addresses = %s" % _literal(address or ""))
            conn.execute("SELECT pg_reload_conf()")  # pg_hba.conf and password_encryption
        if now != (address or ""):
            self._run(pg_bindir() / "pg_ctl", "-D", self.datadir, "-l", self.logfile, "-m", "fast", "-w", "-t", "60",
                      "restart")

    def tcp_dsn(self, user: str, dbname: str = "pixelgres", host: str = "127.0.0.1") -> str:
        return f"host={host} port={self.port} user={user} dbname={dbname}"

    @property
    def model_socket(self) -> Path:
        """Where the cluster's shared model server listens (in the server's 0700 socket directory)."""
        return self.sockdir / "models.sock"

    def start_model_server(self, python_dir: str, threads: int | None = None, max_models: int = 2,
                           socket_path: Path | None = None) -> subprocess.Popen:
        """Start the shared model server (pixelgres.server.ai.model_server) as the server's OS
        user, with the server's Python; return once it listens (it prints a ready line)."""
        sock = str(socket_path or self.model_socket)
        argv = [server_python(), "-m", "pixelgres.server.ai.model_server", "--socket", sock,
                "--max-models", str(max_models), "--threads", str(threads or os.cpu_count() or 1)]
        argv = ["env", f"PYTHONPATH={python_dir}"] + argv
        if _as_root():
            argv = ["runuser", "-u", "postgres", "--"] + argv
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()  # the server's ready line, or EOF if it failed to start
        if not line.startswith("ready"):
            proc.wait()
            raise RuntimeError(f"the model server did not start (exit code {proc.returncode}): {' '.join(argv)}")
        proc.server_pid = int(line.split()[-1])  # the server itself (proc may be runuser's)
        return proc

    @staticmethod
    def stop_model_server(proc: subprocess.Popen) -> None:
        """Stop a server start_model_server started (signal the server itself, not runuser)."""
        with contextlib.suppress(ProcessLookupError):  # it has stopped already
            os.kill(proc.server_pid, signal.SIGTERM)
        proc.wait()

    def ensure_database(self, dbname: str = "pixelgres", settings: dict[str, str] | None = None) -> str:
        """Create the database (if missing) with the extension, updated to the installed release
        (this cluster is pixelgres's own); return its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pixelgres CASCADE")
            if conn.execute("SELECT extversion <> default_version FROM pg_extension e "
                            "JOIN pg_available_extensions a ON a.name = e.extname "
                            "WHERE extname = 'pixelgres'").fetchone()[0]:
                conn.execute("ALTER EXTENSION pixelgres UPDATE")
        return self.dsn(dbname)


def embedded_cluster() -> Cluster:
    """The default cluster under $PIXELGRES_HOME: what `pixelgres up` and `pxt.init()` start."""
    home = default_home()
    c = Cluster(home)
    if not c.initialized:
        c = Cluster(home, settings={
            # where the demo's sample media live; extend with ALTER SYSTEM as superuser
            "pixelgres.allowed_roots": f"'{home / 'cluster'},/var/lib/pixelgres'",
        })
    return c
