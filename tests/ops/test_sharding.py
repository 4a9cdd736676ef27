"""The Citus plan (fidelia/ops/sharding.py, docs/scaling.md) against the schema: every
table is placed, and every unique index of a distributed table carries its shard key, or is
one of the few listed with the index that replaces it before the move."""

from sqlalchemy import PrimaryKeyConstraint, UniqueConstraint

from fidelia.models import Base
from fidelia.ops.sharding import PENDING, PLAN


def unique_keys(table):
    for constraint in table.constraints:
        if isinstance(constraint, PrimaryKeyConstraint | UniqueConstraint):
            yield tuple(c.name for c in constraint.columns)
    for index in table.indexes:
        if index.unique:
            yield tuple(c.name for c in index.columns)


def test_every_table_is_placed():
    tables = set(Base.metadata.tables) | {"alembic_version"}
    assert tables - set(PLAN) == set(), "place the new table in fidelia/ops/sharding.py"
    assert set(PLAN) - tables == set(), "the plan names a table that does not exist"


def test_distributed_unique_indexes_carry_the_shard_key():
    missing, pending_seen = [], set()
    for name, table in Base.metadata.tables.items():
        placement = PLAN[name]
        if placement.kind != "distributed":
            continue
        assert placement.key in table.columns, f"{name} has no column {placement.key}"
        for columns in unique_keys(table):
            if columns == ("id",) or placement.key in columns:
                continue  # surrogate key: (shard key, id) at the move
            if (name, columns) in PENDING:
                pending_seen.add((name, columns))
                continue
            missing.append(f"{name} unique {columns} lacks {placement.key}")
    assert missing == []
    assert set(PENDING) - pending_seen == set(), "a PENDING entry is already done: remove it"


def test_colocated_tables_share_their_key():
    groups: dict[str, set[str]] = {}
    for placement in PLAN.values():
        if placement.colocate and placement.key:
            groups.setdefault(placement.colocate, set()).add(placement.key)
    assert all(len(keys) == 1 for keys in groups.values()), groups
