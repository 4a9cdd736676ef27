"""The connector's share of the worker: stored webhook events (every round), one page of a
due import (every round), reconciliation of each connection (in the periodic sweep)."""

import logging
from datetime import timedelta

from fidelia.connectors.bling import imports, intake
from fidelia.connectors.bling.client import TOKEN_CACHE_SECONDS, Bling
from fidelia.kit.db import Database
from fidelia.kit.settings import Settings

log = logging.getLogger("fidelia.bling")


class BlingJobs:
    def __init__(self, db: Database, settings: Settings, batch: int = 50) -> None:
        self.db = db
        self.bling = Bling(db, settings, token_cache_seconds=TOKEN_CACHE_SECONDS)
        self.batch = batch
        self.every = timedelta(minutes=settings.bling_reconcile_minutes)
        self.runner = imports.runner_id(":worker")

    @classmethod
    def for_settings(cls, db: Database, settings: Settings) -> "BlingJobs | None":
        """None when no Bling app is configured."""
        if not settings.bling_client_id:
            return None
        return cls(db, settings)

    def run_once(self) -> int:
        """Due events, then one page of a due import; how much was done."""
        done = intake.process_due(self.db, self.bling, self.batch)
        import_id = imports.due_import(self.db, self.runner)
        if import_id is not None:
            try:
                imports.run_import(self.db, self.bling, import_id, runner=self.runner, max_pages=1)
                done += 1
            except Exception as exc:  # recorded on the import; retried after its lease
                log.warning("Bling import %s: %s", import_id, exc)
        return done

    def sweep(self) -> None:
        """Reconcile every connection not looked at for ``bling_reconcile_minutes``."""
        for tenant_id in imports.due_reconciliations(self.db, self.every):
            try:
                imports.reconcile(self.db, self.bling, tenant_id)
            except Exception as exc:
                log.warning("Bling reconciliation of tenant %s: %s", tenant_id, exc)

    def close(self) -> None:
        self.bling.close()
