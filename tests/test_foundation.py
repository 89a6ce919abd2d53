"""The ground everything stands on: install, server Python, CLI, demo.

The version, the extension's lifecycle, a missing server Python and the superuser-only
settings are pg_regress tests: test/sql/foundation.sql.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

import pixelgres
from pixelgres.cluster import Cluster

ROOT = Path(__file__).resolve().parent.parent


def test_server_info_reports_private_directory(db):
    info = db.execute("SELECT pxt.server_info()").fetchone()[0]
    pydir = info["python_dir"]
    assert pydir.endswith("/" + pixelgres.__version__)
    assert info["pixelgres"] == pixelgres.__version__
    for name in ("PIL", "av", "numpy", "openai"):
        pkg = info["packages"][name]
        assert pkg["path"].startswith(pydir + "/"), (name, pkg)
        assert pkg["version"]
    # pinned versions are the ones loaded
    pins = dict(line.split("==") for line in (ROOT / "requirements-server.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert info["packages"]["av"]["version"] == pins["av"]
    assert info["packages"]["numpy"]["version"] == pins["numpy"]


def test_missing_dependency_is_a_clear_error(db, files):
    # a private directory holding pixelgres but none of its dependencies
    shutil.copytree(ROOT / "python" / "pixelgres", files / "pixelgres")
    os.system(f"chmod -R a+rX {files}")
    db.execute(f"SET pixelgres.python_dir = '{files}'")
    with pytest.raises(psycopg.Error, match="dependency 'PIL' cannot be imported"):
        db.execute("SELECT pxt.server_info()")
    assert db.execute("SELECT 1").fetchone()[0] == 1


def test_wrong_server_version_is_a_clear_error(db, files):
    shutil.copytree(ROOT / "python" / "pixelgres", files / "pixelgres")
    (files / "pixelgres" / "_version.py").write_text('__version__ = "0.0.0-wrong"\n')
    os.system(f"chmod -R a+rX {files}")
    db.execute(f"SET pixelgres.python_dir = '{files}'")
    with pytest.raises(psycopg.Error, match="is version 0.0.0-wrong"):
        db.execute("SELECT pxt.server_info()")


def _cli(home, *args, check=True):
    env = dict(os.environ, PIXELGRES_HOME=str(home))
    r = subprocess.run([sys.executable, "-m", "pixelgres.cli", *args], env=env,
                       capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"pixelgres {' '.join(args)} failed: {r.stdout}{r.stderr}")
    return r


def test_cli_up_status_down(tmp_path):
    home = tmp_path / "home"
    try:
        assert _cli(home, "status", check=False).returncode == 3
        dsn = _cli(home, "up").stdout.strip().splitlines()[-1]
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT pxt.version()").fetchone()[0] == pixelgres.__version__
        assert "running" in _cli(home, "status").stdout
        assert _cli(home, "up").stdout.strip().splitlines()[-1] == dsn  # idempotent
        assert "stopped" in _cli(home, "down").stdout
        assert _cli(home, "status", check=False).returncode == 3
        _cli(home, "up")  # restarts the same cluster
        assert "running" in _cli(home, "status").stdout
    finally:
        Cluster(home).destroy()


def test_cli_demo_runs(tmp_path):
    home = tmp_path / "home"
    try:
        out = _cli(home, "demo").stdout
        assert "Inserted 4 rows with 0 errors" in out
        similar = out.split("most similar to 'a yellow sun in the sky':")[1].splitlines()
        assert "yellow_sun.jpg" in similar[2]  # the top hit (after the header line)
        frames = out.split("== video -> frames")[1].split("==")[0]
        assert frames.count("media://") == 3  # a 3 s video at fps=1
        assert "reverted the relabeling; snapshot rows: 4, categories: ['unknown']" in out
        clip = out.split("== CLIP")[1].split("==")[0]  # no weights in a fresh home: it says so
        assert "skipped: no clip-vit-base-patch32 in pixelgres.model_dir" in clip and "pixelgres models add" in clip
    finally:
        Cluster(home).destroy()
