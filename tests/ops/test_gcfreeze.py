"""A serving process freezes what its startup built (``fidelia/ops/gcfreeze.py``): the
garbage collector's oldest generation then walks only what came after, not the app's
~230,000 objects (a 100–140 ms pause each time). Only when ``fidelia serve`` asks for it
(``FIDELIA_GC_FREEZE``): apps built otherwise, the tests', never freeze."""

import gc

from fastapi.testclient import TestClient

from fidelia.app import create_app
from fidelia.ops import gcfreeze


def test_a_serving_app_freezes_its_startup_objects_once_it_serves(settings):
    gc.unfreeze()
    try:
        with TestClient(create_app(settings, run_worker=False)) as client:
            assert client.get("/healthz").status_code == 200
            assert gc.get_freeze_count() == 0  # not asked: nothing frozen
        frozen = settings.model_copy(update={"gc_freeze": True})
        with TestClient(create_app(frozen, run_worker=False)) as client:
            assert gc.get_freeze_count() > 10_000  # the app, its modules, its mappers
            assert client.get("/healthz").status_code == 200
    finally:
        gc.unfreeze()


def test_the_oldest_generation_then_holds_only_what_came_after():
    gc.unfreeze()
    try:
        kept = [[i] for i in range(1_000)]  # long-lived, as a built app's objects
        assert gcfreeze.freeze() >= len(kept)
        later = [[i] for i in range(10)]
        gc.collect()
        walked = {id(o) for o in gc.get_objects(generation=2)}  # what a full collection walks
        assert not any(id(o) in walked for o in kept)
        assert all(id(o) in walked for o in later)
    finally:
        gc.unfreeze()
