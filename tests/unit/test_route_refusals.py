"""404 and 405 in the service's error shape, whichever router gave them: a bare Starlette app (as
BentoML's outer app answers an unknown path) and the service's own FastAPI routes."""

from fastapi.responses import JSONResponse
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.fhir_out import FHIR_JSON
from serving.refusals import RouteRefusals
from serving.service import build_app
from serving.settings import Settings


def _errors(response) -> list[dict]:
    assert response.headers["content-type"] == "application/json"
    return response.json()["errors"]


def test_the_outer_apps_plain_text_refusals_get_the_error_shape():
    async def ready(request):
        return JSONResponse({})

    client = TestClient(RouteRefusals(Starlette(routes=[Route("/readyz", ready)])))
    missing = client.get("/P000123")
    assert missing.status_code == 404
    assert _errors(missing) == [
        {"index": None, "field": "path", "message": "no route has this path: the routes are listed at /docs"}
    ]
    assert "P000123" not in missing.text  # the path may hold a person's id
    wrong = client.put("/readyz")
    assert wrong.status_code == 405 and "GET" in wrong.headers["allow"]
    [error] = _errors(wrong)
    assert error["field"] == "method" and error["message"].startswith("PUT is not allowed on this route; it takes ")
    assert client.head("/nope").status_code == 404  # no body to shape


def test_the_services_routes_refuse_in_their_own_shapes(tmp_path):
    client = TestClient(RouteRefusals(build_app(Settings(home=tmp_path))))
    wrong = client.get("/score")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert _errors(wrong) == [
        {"index": None, "field": "method", "message": "GET is not allowed on this route; it takes POST"}
    ]
    assert _errors(client.get("/nope"))[0]["field"] == "path"
    # FHIR routes answer with an OperationOutcome, as their other refusals do.
    fhir = client.get("/fhir/risk-assessment")
    assert fhir.status_code == 405 and fhir.headers["content-type"] == FHIR_JSON
    [issue] = fhir.json()["issue"]
    assert fhir.json()["resourceType"] == "OperationOutcome" and issue["code"] == "not-supported"
    assert client.get("/fhir/nope").json()["issue"][0]["code"] == "not-found"
