"""The web app at ``/`` — placeholder: part B (the web app) replaces this module.

``polisum.serve.app.create_app`` includes ``router``; until the web app lands it serves nothing.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
