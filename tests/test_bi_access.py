"""BI tools' way in: the embedded cluster on TCP with SCRAM passwords, and login roles from the
CLI (``pixelgres up --listen``, ``pixelgres role add | list | drop``), on a throwaway embedded
cluster of its own (listen_addresses needs a restart, which the shared test cluster must not see).
"""
import re

import psycopg
import pytest

from pixelgres import cli
from pixelgres.cluster import embedded_cluster


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    h = tmp_path_factory.mktemp("bi-home")
    h.chmod(0o755)
    mp.setenv("PIXELGRES_HOME", str(h))
    mp.delenv("OPENAI_BASE_URL", raising=False)
    yield h
    embedded_cluster().destroy()
    mp.undo()


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_tcp_with_scram_and_roles_from_the_cli(home, capsys):
    rc, out, err = run(capsys, "up", "--listen", "127.0.0.1")
    assert rc == 0 and "scram-sha-256" in err
    c = embedded_cluster()
    hba = [line for line in (c.datadir / "pg_hba.conf").read_text().splitlines() if line and not line.startswith("#")]
    assert hba[0] == "local all all trust"
    assert all(line.split()[0] == "host" and line.split()[-1] == "scram-sha-256" for line in hba[1:]) and hba[1:]
    with psycopg.connect(c.dsn(), autocommit=True) as admin:
        assert admin.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
        admin.execute("""SELECT pxt.create_table('ml.t', '{"s": "string"}')""")
        admin.execute("INSERT INTO ml.t (s) VALUES ('visible')")

    rc, out, _ = run(capsys, "role", "add", "bi_reader", "--reader")
    assert rc == 0
    urls = dict(re.findall(r"^\s+(\S+)\s+(\S+)$", out, re.M))
    assert set(urls) == {"libpq", "JDBC", "SQLAlchemy"}
    assert urls["JDBC"].startswith(f"jdbc:postgresql://127.0.0.1:{c.port}/pixelgres?user=bi_reader&password=")
    with psycopg.connect(urls["libpq"], autocommit=True) as bi:  # over TCP, with the password
        assert bi.info.host == "127.0.0.1"
        assert bi.execute("SELECT s FROM ml.t").fetchall() == [("visible",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bi.execute("INSERT INTO ml.t (s) VALUES ('no')")
    import sqlalchemy

    engine = sqlalchemy.create_engine(urls["SQLAlchemy"])
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT count(*) FROM ml.t")).scalar() == 1
    engine.dispose()

    with psycopg.connect(c.dsn(), autocommit=True) as admin:
        assert admin.execute("SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid "
                             "WHERE rolname = 'bi_reader'").fetchone()[0]
    wrong = re.sub(r":[^:@]+@", ":wrong@", urls["libpq"])
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)
    with pytest.raises(psycopg.OperationalError):  # no trust over TCP, not even for the owner
        psycopg.connect(c.tcp_dsn("postgres") + " password=")

    rc, out, _ = run(capsys, "role", "list")
    assert rc == 0 and re.search(r"^bi_reader\tpxt_reader\tpassword$", out, re.M)
    rc, out, _ = run(capsys, "role", "drop", "bi_reader")
    assert rc == 0
    rc, out, _ = run(capsys, "role", "list")
    assert "bi_reader" not in out


def test_hostile_names_and_addresses_are_refused(home, capsys):
    run(capsys, "up")
    for name in ("x; DROP TABLE ml.t", "Bob", "pxt_admin", "pg_x", "a" * 64):
        rc, _, err = run(capsys, "role", "add", name, "--user")
        assert rc == 1 and "role name" in err
    rc, _, err = run(capsys, "role", "drop", "postgres")
    assert rc == 1 and "not a login role made by" in err
    with pytest.raises(ValueError, match="IP address"):
        embedded_cluster().listen("127.0.0.1/0; host all all 0.0.0.0/0 trust")
