"""Bling ERP v3 (seed 003): OAuth2 connection, signed webhooks stored then processed,
paced imports and reconciliation. The panel calls ``service``; the worker ``jobs``."""
