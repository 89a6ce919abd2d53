"""The foreground services of the CLI (`pixelgres model-server`): a service manager's SIGTERM
stops them as Ctrl-C does, and the settings that point backends at them are reset."""
import os
import signal
import subprocess
import sys

import psycopg
import pytest

from pixelgres.cluster import embedded_cluster


@pytest.fixture
def home(tmp_path, monkeypatch):
    tmp_path.chmod(0o755)
    monkeypatch.setenv("PIXELGRES_HOME", str(tmp_path / "home"))
    yield tmp_path / "home"
    embedded_cluster().destroy()


def setting(name: str) -> str:
    with psycopg.connect(embedded_cluster().dsn("postgres"), autocommit=True) as c:
        return c.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]


def test_model_server_sigterm_resets_the_setting(home):
    env = {**os.environ, "PYTHONPATH": str(os.path.join(os.path.dirname(__file__), "..", "python"))}
    p = subprocess.Popen([sys.executable, "-m", "pixelgres.cli", "model-server"], env=env,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stderr.readline()  # printed once the server listens and the setting is made
        assert line.startswith("model server "), line
        sock = line.split()[2]
        assert setting("pixelgres.model_server") == sock
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=120) == 0
    finally:
        if p.poll() is None:
            p.kill()
    assert setting("pixelgres.model_server") == ""  # backends use their own models again
    import socket

    with socket.socket(socket.AF_UNIX) as s, pytest.raises(OSError):  # nothing listens any more
        s.connect(sock)
