"""Seed 002: the retail loyalty API (``POST /v1/...``)."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["Seed 002: retail loyalty"])
