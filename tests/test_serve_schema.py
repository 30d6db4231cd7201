"""Schemathesis against the OpenAPI spec: for requests generated from the schema (a bounded,
derandomised number per operation), no 500s, and every response — problems included — matches
its documented status, media type and schema."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("schemathesis")

import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from polisum.serve.app import create_app
from polisum.serve.settings import ServeSettings
from tests.serve_support import ScriptedGenerator, client_for, indexed_project

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


PROMPT_REPLY = '{"prompt": "a school roof covered with solar panels, morning light"}'
# Rendering needs an SD3.5 model (GPU-sized): without one /v1/images answers a documented 503
# (tested in test_serve_api); here its responses are checked for conformance and for no 500.
NO_IMAGE_MODEL = "/v1/images"

# The spec does not depend on the index (building the app opens nothing: the lifespan does).
# Loaded from the dict, not with schemathesis.pytest.from_fixture, which pytest 9 broke.
schema = schemathesis.openapi.from_dict(create_app(ServeSettings()).openapi())


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """One in-process client over an app with a real index, its lifespan spanning the module."""
    root = tmp_path_factory.mktemp("serve-schema")
    with indexed_project(root, ["One page about rooftop solar panels."]) as index:
        # Open (no keys: loopback), so every operation is reachable; ingests may read docs/.
        # A scripted model answers and writes image prompts (their model paths are exercised).
        model = ScriptedGenerator(["Rooftop panels ", "cut bills [1]."], reply=PROMPT_REPLY)
        app = client_for(index, model, allowed_ingest_roots=(root / "docs",)).app
        with asgi.get_client(app) as client:
            yield client
            # A write job a generated request started ends before the index closes.
            app.state.polisum.jobs.close(timeout=60)


@schema.parametrize()
@settings(
    max_examples=12,
    derandomize=True,  # the same examples on every run
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms_to_the_openapi_schema(case, session):
    checks = CHECKS
    if case.operation.path == NO_IMAGE_MODEL:
        checks = [c for c in CHECKS if c is not not_a_server_error]
    response = case.call_and_validate(session=session, base_url=session.base_url, checks=checks)
    assert response.status_code != 500
