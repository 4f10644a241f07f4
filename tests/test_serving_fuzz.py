"""Schemathesis over the service's OpenAPI schema: no 5xx and no response that breaks the schema."""

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from backdrop.serving.app import create_app
from backdrop.serving.settings import load_settings

KEY = "fuzz-key"
EXAMPLES = 30  # per operation: bounded, the whole fuzz run takes seconds


def test_api_never_errs_and_keeps_its_schema(small_store, tmp_path):
    app = create_app(load_settings(None, store=small_store, db=str(tmp_path / "events.sqlite"), api_key=KEY))
    with TestClient(app):  # runs the lifespan (closes the service after)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
            "POST /v1/decide",
            "POST /v1/feedback",
            "GET /v1/creatives/{key}",
            "POST /v1/activate",
            "POST /v1/events",
            "POST /personalizer/v1.0/rank",
        }
        for op in operations:

            @given(case=op.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def fuzz(case):
                # with the key, so the write endpoints get past authentication to their validation; a model
                # upload is any bytes to the schema, so only the service can say it is not a model (422);
                # Personalizer's context and action features are free-form objects in its schema, which only
                # the service's feature and body limits bound (400, 413)
                free_form = ("/v1/models", "/personalizer/v1.0/rank")
                excluded = [positive_data_acceptance] if case.operation.path in free_form else []
                case.call_and_validate(headers={"X-API-Key": KEY, "Ocp-Apim-Subscription-Key": KEY}, excluded_checks=excluded)

            fuzz()
