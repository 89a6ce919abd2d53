"""``pixelgres up | down | status | psql | demo | worker | models | allow-host | model-server | media-server | role``: the embedded default cluster.

State lives under $PIXELGRES_HOME (default ~/.local/share/pixelgres). ``up`` creates and
starts the cluster, creates database ``pixelgres`` with the extension and prints its DSN.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys

from .cluster import embedded_cluster


def cmd_up(args) -> int:
    c = embedded_cluster()
    if args.replica_of:
        if c.initialized and not c.is_replica():
            print(f"error: {c.home} already holds a primary cluster; use another PIXELGRES_HOME for the replica",
                  file=sys.stderr)
            return 2
        c.init_replica(args.replica_of)
    c.start()
    dsn = c.dsn() if c.is_replica() else c.ensure_database()  # a replica has its primary's databases
    if args.listen is not None:
        if args.listen in ("*", "0.0.0.0", "::"):
            print("warning: listening on every interface; only roles with passwords (SCRAM) can log in over TCP",
                  file=sys.stderr)
        c.listen(args.listen)
        if args.listen:
            print(f"listening on {args.listen}:{c.port} (scram-sha-256); 'pixelgres role add NAME --reader' "
                  "makes a login", file=sys.stderr)
    print(dsn)
    base = os.environ.get("OPENAI_BASE_URL")
    if base:  # a local OpenAI-compatible server (vLLM, Ollama, llama.cpp...): its owner may reach it
        import urllib.parse

        import psycopg

        from .hosts import allow_host

        host = urllib.parse.urlparse(base).hostname
        if host:
            with psycopg.connect(dsn, autocommit=True) as conn:
                role, hosts = allow_host(conn, host)
            print(f"allowed {host} (OPENAI_BASE_URL) for role {role}: pixelgres.allowed_url_hosts = {hosts}",
                  file=sys.stderr)
    return 0


def cmd_down(args) -> int:
    embedded_cluster().stop()
    print("stopped")
    return 0


def cmd_status(args) -> int:
    c = embedded_cluster()
    if not c.initialized:
        print(f"no cluster under {c.home}")
        return 3
    if not c.running():
        print(f"stopped (data in {c.datadir})")
        return 3
    print(f"running: {c.dsn()}  (data in {c.datadir})")
    return 0


def cmd_psql(args) -> int:
    c = embedded_cluster().start()
    dsn = c.ensure_database()
    os.execvp("psql", ["psql", dsn, *args.rest])


def cmd_demo(args) -> int:
    from . import demo

    c = embedded_cluster().start()
    return demo.run(c)


def cmd_worker(args) -> int:
    """Fill deferred computed columns until stopped (or once with --once), with a progress bar
    per column fed by the server's progress reports (rows/s, errors so far)."""
    import time

    import psycopg

    from .client.progress import LazyBar, parse

    dsn = args.dsn or os.environ.get("PIXELGRES_DSN") or embedded_cluster().start().ensure_database()
    if args.ray:
        return _ray_worker(args, dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        done, bars = [], {}

        def notice(d) -> None:
            done.append(d.message_primary)
            report = parse(d)
            if report and report.get("op") == "process_pending" and report.get("columns"):
                what = f"{report['table']}.{report['columns'][0]}"
                if what not in bars:
                    bars[what] = LazyBar(f"computing {what}", report["total"], unit="cells")
                bars[what].update_to(report["done"], report["total"], report.get("errors"))
        conn.add_notice_handler(notice)
        while True:
            done.clear()
            conn.execute("CALL pxt.process_pending(%s, %s)", (args.table, args.batch_size))
            for bar in bars.values():
                bar.close()
            bars.clear()
            n = sum(int(m.split()[2]) for m in done if m.startswith("pixelgres: processed"))
            if n:
                print(f"processed {n} pending cells", flush=True)
            if args.once:
                return 0
            if not n:
                time.sleep(args.interval)


def _ray_worker(args, dsn: str) -> int:
    """``worker --ray``: batches computed by Ray actors (pixelgres.workers.ray_engine), one bar per column."""
    from .client.work import Bars
    from .workers.ray_engine import RayWorker

    with RayWorker(dsn, args.table, args.column, args.batch_size, args.concurrency, args.lease, args.address,
                   num_cpus=args.num_cpus) as w, Bars(dsn) as bars:
        print(f"worker {w.id}: {args.concurrency} Ray actors", file=sys.stderr, flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            totals = w.run(once=args.once, on_batch=bars.update, idle_wait=args.interval)
        except KeyboardInterrupt:
            totals = w.totals
    print(f"processed {totals.written} pending cells ({totals.errors} errors, {totals.stale + totals.lost} "
          f"discarded as stale) in {totals.batches} batches", flush=True)
    return 0


def cmd_allow_host(args) -> int:
    import psycopg

    from .hosts import allow_host

    dsn = args.dsn or os.environ.get("PIXELGRES_DSN") or embedded_cluster().start().ensure_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        role, hosts = allow_host(conn, args.host, args.role)
    print(f"role {role}: pixelgres.allowed_url_hosts = {hosts}")
    return 0


def cmd_models(args) -> int:
    import psycopg

    from . import models_cli

    def connect():
        if args.dsn or os.environ.get("PIXELGRES_DSN"):
            return psycopg.connect(args.dsn or os.environ["PIXELGRES_DSN"], autocommit=True), None
        c = embedded_cluster().start()
        return psycopg.connect(c.ensure_database(), autocommit=True), c.home
    return models_cli.main(args, connect)


def cmd_model_server(args) -> int:
    """Run the embedded cluster's shared model server in the foreground; while it runs, every
    backend's local embedding models (CLIP, MiniLM) are its one loaded copy."""
    import psycopg

    c = embedded_cluster().start()
    with psycopg.connect(c.ensure_database(), autocommit=True) as conn:
        python_dir = conn.execute("SELECT current_setting('pixelgres.python_dir')").fetchone()[0]
    proc = c.start_model_server(python_dir, args.threads, args.max_models)
    _set_system(c, {"pixelgres.model_server": str(c.model_socket)})
    print(f"model server {c.model_socket} (pid {proc.pid}); pixelgres.model_server is set; Ctrl-C stops it",
          file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop: the same clean-up as Ctrl-C
    try:
        return proc.wait()
    except KeyboardInterrupt:
        c.stop_model_server(proc)
        return 0
    finally:
        _set_system(c, {"pixelgres.model_server": None})  # backends go back to their own models


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _set_system(c, settings: dict) -> None:
    """ALTER SYSTEM SET (None: RESET) on the embedded cluster, then reload."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(c.dsn("postgres"), autocommit=True) as conn:
        for name, value in settings.items():
            ident = sql.Identifier(*name.split("."))
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(ident, sql.Literal(value)) if value is not None
                         else sql.SQL("ALTER SYSTEM RESET {}").format(ident))
        conn.execute("SELECT pg_reload_conf()")


def cmd_media_server(args) -> int:
    """Serve the links pxt.media_url signs for local media, in the foreground (Ctrl-C stops it:
    its links then stop working, and a restart signs with a new key)."""
    from .media_server import make_server
    from .server.media import links

    c = embedded_cluster().start()
    key_file = c.sockdir / "media-url.key"  # the server's OS user's 0700 directory
    key = links.new_key_file(str(key_file))
    if os.geteuid() == 0:  # backends read it as the cluster's OS user
        st = os.stat(c.sockdir)
        os.chown(key_file, st.st_uid, st.st_gid)
    if args.listen in ("0.0.0.0", "::", "*"):
        print(f"warning: the media server listens on every interface ({args.listen}); a link works for "
              "whoever has it until it expires", file=sys.stderr)
    server = make_server("0.0.0.0" if args.listen == "*" else args.listen, args.port, key)
    host = args.listen if args.listen not in ("0.0.0.0", "::", "*") else "127.0.0.1"
    base = (args.public_url or f"http://{'[' + host + ']' if ':' in host else host}:{server.server_port}").rstrip("/")
    _set_system(c, {"pixelgres.media_url_base": base, "pixelgres.media_url_key_file": str(key_file)})
    print(f"media server {base} (pixelgres.media_url_base); pxt.media_url signs links to it; Ctrl-C stops it",
          file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop: the same clean-up as Ctrl-C
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it stops
            server.serve_forever()
    finally:
        server.server_close()
        _set_system(c, {"pixelgres.media_url_base": None, "pixelgres.media_url_key_file": None})
    return 0


def cmd_role(args) -> int:
    import psycopg

    from . import roles_cli

    c = embedded_cluster().start()
    dsn = c.ensure_database()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            if args.action == "add":
                password = roles_cli.add(conn, args.name, args.level)
                listen = conn.execute("SELECT current_setting('listen_addresses')").fetchone()[0]
                host = args.host or ("127.0.0.1" if listen in ("", "*", "0.0.0.0", "localhost") else listen.split(",")[0])
                print(f"role {args.name} ({roles_cli.LEVELS[args.level]}); its password is shown only now")
                for kind, s in roles_cli.connection_strings(args.name, password, host, c.port, "pixelgres").items():
                    print(f"  {kind:<10} {s}")
                if not listen:
                    print("the cluster listens on its socket only: 'pixelgres up --listen 127.0.0.1' opens TCP",
                          file=sys.stderr)
            elif args.action == "list":
                for name, roles, has_password in roles_cli.listing(conn):
                    print(f"{name}\t{roles}\t{'password' if has_password else 'no password'}")
            else:
                roles_cli.drop(conn, args.name)
                print(f"dropped {args.name}")
    except (ValueError, psycopg.Error) as e:
        print(f"pixelgres role: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pixelgres", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up", help="create/start the embedded cluster and print its DSN")
    u.add_argument("--replica-of", metavar="CONNINFO",
                   help="make this cluster a streaming read replica of the primary CONNINFO reaches (a role that may "
                        "replicate; for the embedded primary on this machine: its socket, see pixelgres status)")
    u.add_argument("--listen", metavar="ADDRESS", help="also accept TCP connections on this address (127.0.0.1; "
                                                       "* for every interface), scram-sha-256 passwords only; "
                                                       "'' for the socket only")
    u.set_defaults(f=cmd_up)
    sub.add_parser("down", help="stop the embedded cluster").set_defaults(f=cmd_down)
    sub.add_parser("status", help="is the embedded cluster running?").set_defaults(f=cmd_status)
    p = sub.add_parser("psql", help="psql into the embedded cluster")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(f=cmd_psql)
    sub.add_parser("demo", help="run the demo pipeline on the embedded cluster").set_defaults(f=cmd_demo)
    w = sub.add_parser("worker", help="fill deferred computed columns (FOR UPDATE SKIP LOCKED; run several)")
    w.add_argument("--dsn", help="database to work on (default: $PIXELGRES_DSN, else the embedded cluster)")
    w.add_argument("--table", help="only this table")
    w.add_argument("--batch-size", type=int, default=100)
    w.add_argument("--interval", type=float, default=1.0, help="seconds to wait when nothing is pending")
    w.add_argument("--once", action="store_true", help="one sweep, then exit")
    w.add_argument("--ray", action="store_true", help="compute on a Ray cluster (pip install 'pixelgres[ray]')")
    w.add_argument("--address", help="--ray: the Ray cluster ('auto', 'ray://head:10001'; default: start a local one)")
    w.add_argument("--concurrency", type=int, default=2, help="--ray: actors computing at once (default 2)")
    w.add_argument("--column", help="--ray: only this deferred column")
    w.add_argument("--lease", type=float, default=300.0,
                   help="--ray: seconds a claimed batch stays reserved without a heartbeat (default 300)")
    w.add_argument("--num-cpus", type=int, help="--ray: CPUs of the local Ray cluster (default: --concurrency)")
    w.set_defaults(f=cmd_worker)
    h = sub.add_parser("allow-host", help="let one role's sessions reach a private or loopback host "
                                          "(a local OpenAI-compatible server)")
    h.add_argument("host", help="host name, address or CIDR")
    h.add_argument("--role", help="the role (default: the one connecting, e.g. the embedded cluster's owner)")
    h.add_argument("--dsn", help="server (default: $PIXELGRES_DSN, else the embedded cluster)")
    h.set_defaults(f=cmd_allow_host)
    m = sub.add_parser("models", help="install or list local model weights (pixelgres.model_dir)")
    m.add_argument("--dsn", help="server to install for (default: $PIXELGRES_DSN, else the embedded cluster)")
    msub = m.add_subparsers(dest="action", required=True)
    a = msub.add_parser("add", help="copy a model directory (save_pretrained layout) into pixelgres.model_dir")
    a.add_argument("name")
    a.add_argument("path")
    a.add_argument("--replace", action="store_true")
    msub.add_parser("list", help="models in pixelgres.model_dir")
    m.set_defaults(f=cmd_models)
    r = sub.add_parser("role", help="login roles for BI tools and SQL clients (passwords, pxt_* privileges)")
    rsub = r.add_subparsers(dest="action", required=True)
    ra = rsub.add_parser("add", help="create a login role with a generated password; print connection strings")
    ra.add_argument("name")
    lv = ra.add_mutually_exclusive_group(required=True)
    for level in ("reader", "user", "admin"):
        lv.add_argument(f"--{level}", dest="level", action="store_const", const=level)
    ra.add_argument("--host", help="host name to put in the connection strings")
    rsub.add_parser("list", help="login roles with a pxt_* role")
    rd = rsub.add_parser("drop", help="drop a login role made by 'role add'")
    rd.add_argument("name")
    r.set_defaults(f=cmd_role)
    ms = sub.add_parser("model-server", help="run the cluster's shared model server: one copy of each local "
                                             "model for every connection, requests batched across them")
    ms.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    ms.add_argument("--max-models", type=int, default=2, help="models kept loaded")
    ms.set_defaults(f=cmd_model_server)
    md = sub.add_parser("media-server", help="serve the signed, expiring links pxt.media_url makes for local media")
    md.add_argument("--listen", default="127.0.0.1", help="address to listen on (default 127.0.0.1; '*': every interface)")
    md.add_argument("--port", type=int, default=0, help="port (default: any free one, printed)")
    md.add_argument("--public-url", help="base URL the links use, when clients reach the server by another name")
    md.set_defaults(f=cmd_media_server)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["psql"]:  # everything after "psql" is psql's
        return cmd_psql(argparse.Namespace(rest=argv[1:]))
    args = ap.parse_args(argv)
    return args.f(args)


if __name__ == "__main__":
    sys.exit(main())
