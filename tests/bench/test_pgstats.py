"""``bench/run.py --pg-stats``: PostgreSQL's statements by time over a credit run, counted
from the run's start (``bench/pgstats.py``), on a server of its own with the extension."""

from pathlib import Path

import psycopg

from bench import pgstats
from tests.support.postgres import PostgresServer


def test_the_statements_of_a_run_are_counted_from_its_start(tmp_path: Path) -> None:
    pg = PostgresServer(pgstats.SETTINGS).start()
    try:
        pg.psql("CREATE DATABASE f")
        url = pg.url("f")
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute("CREATE TABLE before_run (n int)")
            pgstats.reset(url)
            conn.execute("CREATE TABLE t (n int)")
            for n in range(3):
                conn.execute("INSERT INTO t VALUES (%s)", (n,))
        lines = pgstats.write(url, tmp_path / "stats.txt")
        assert (tmp_path / "stats.txt").read_text().splitlines() == lines
        [insert] = [line for line in lines if "INSERT INTO t" in line]
        assert insert.startswith("3 | 3 | ")  # three calls, a row each
        assert not any("before_run" in line for line in lines)
    finally:
        pg.destroy()
