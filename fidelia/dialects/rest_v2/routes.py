"""Seed 004: the server-to-server REST API v2 (``/v2/...``)."""

from fastapi import APIRouter

router = APIRouter(prefix="/v2", tags=["Seed 004: REST v2"])
