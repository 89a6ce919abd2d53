"""pg_dump + restore into a fresh cluster keeps tables, computed columns, history and snapshots working."""
import subprocess
import tempfile
from pathlib import Path

import psycopg

from pixelgres.cluster import Cluster, pg_bindir


def test_dump_and_restore(server, db, dsn, files):
    from PIL import Image
    Image.new("RGB", (40, 30), (1, 2, 3)).save(files / "a.png")
    db.execute("SELECT pxt.create_table('ml.images', '{\"image\": \"image\", \"label\": \"string\"}')")
    db.execute("SELECT pxt.add_computed_column('ml.images', 'w', 'pxt.width(image)')")
    db.execute("SELECT pxt.add_computed_column('ml.images', 'shout', 'upper(label)')")
    db.execute("INSERT INTO ml.images (image, label) VALUES (%s, 'a'), (%s, 'b')", (str(files / "a.png"),) * 2)
    db.execute("SELECT pxt.create_snapshot('ml.snap', 'ml.images')")
    db.execute("UPDATE ml.images SET label = 'c' WHERE label = 'a'")
    dump = Path(tempfile.mkdtemp()) / "db.dump"
    bindir = pg_bindir()
    subprocess.run([bindir / "pg_dump", "-Fc", "-f", str(dump), dsn], check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as home:
        import os
        os.chmod(home, 0o755)
        other = Cluster(Path(home) / "h", settings={"pixelgres.allowed_roots": f"'{server.files}'"}).start()
        try:
            with psycopg.connect(other.dsn("postgres"), autocommit=True) as c:
                c.execute("CREATE DATABASE restored")
            r = subprocess.run([bindir / "pg_restore", "--exit-on-error", "-d", other.dsn("restored"), str(dump)],
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            with psycopg.connect(other.dsn("restored"), autocommit=True) as c:
                assert c.execute("SELECT label, w, shout FROM ml.images ORDER BY label").fetchall() == [
                    ("b", 40, "B"), ("c", 40, "C")]
                assert sorted(c.execute("SELECT label FROM ml.snap").fetchall()) == [("a",), ("b",)]
                c.execute("INSERT INTO ml.images (image, label) VALUES (%s, 'd')", (str(files / "a.png"),))
                assert c.execute("SELECT w, shout FROM ml.images WHERE label = 'd'").fetchone() == (40, "D")
                hist = c.execute("SELECT version, change_type FROM pxt.history('ml.images') ORDER BY version").fetchall()
                assert [h[0] for h in hist] == list(range(len(hist))) and hist[-1][1] == "data"
                c.execute("SELECT pxt.revert('ml.images')")
                c.execute("SELECT pxt.drop_snapshot('ml.snap')")
                c.execute("SELECT pxt.revert('ml.images')")  # the UPDATE, restored from the history table
                assert c.execute("SELECT label FROM ml.images ORDER BY label").fetchall() == [("a",), ("b",)]
                c.execute("SELECT pxt.add_computed_column('ml.images', 'n', 'length(label)')")
                assert c.execute("SELECT sum(n) FROM ml.images").fetchone()[0] == 2
                # the face came back as a face: the user's columns, following schema changes
                assert [d.name for d in c.execute("SELECT * FROM ml.images LIMIT 0").description] == \
                    ["image", "label", "w", "shout", "n"]
                c.execute("TRUNCATE ml.images")
        finally:
            other.destroy()
