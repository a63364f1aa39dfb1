"""A JSON body sent under another media type gets 415 naming the expected one (outside finding L7),
in the route's error shape; JSON types (application/json, application/fhir+json, none) pass."""

import json

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from features.fhir import to_bundle
from features.schema import EXAMPLE_RECORD
from serving.service import BodyGuard, MalformedBody, check_media_type
from tests.service.test_cds import URL, cds_call


@pytest.mark.parametrize(
    "value", [None, b"", b"application/json", b"application/json; charset=utf-8", b"Application/FHIR+JSON"]
)
def test_json_media_types_pass(value):
    check_media_type(value, "/score")


@pytest.mark.parametrize("value", [b"text/plain", b"application/x-www-form-urlencoded", b"text/json"])
def test_other_media_types_refused(value):
    with pytest.raises(MalformedBody) as e:
        check_media_type(value, "/score")
    assert e.value.status == 415 and e.value.field == "Content-Type"
    assert "send the body as application/json" in e.value.message


def test_guard_alone():
    """Without a model: the guard refuses before any route runs, and lets empty bodies through."""
    app = FastAPI()

    @app.post("/echo")
    async def echo(body: dict) -> dict:
        return body

    @app.post("/nobody")
    async def nobody() -> dict:
        return {"ok": True}

    guarded = TestClient(BodyGuard(app, max_bytes=1 << 20))
    r = guarded.post("/echo", content=b'{"a": 1}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json() == {
        "errors": [
            {
                "index": None,
                "field": "Content-Type",
                "message": "'text/plain' is not supported: send the body as application/json",
            }
        ]
    }
    assert guarded.post("/echo", json={"a": 1}).json() == {"a": 1}
    assert guarded.post("/nobody", headers={"Content-Type": "text/plain"}).status_code == 200


def test_score_text_plain_is_415(client):
    body = json.dumps({"checkups": [EXAMPLE_RECORD]})
    r = client.post("/score", content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415, r.text
    assert r.json()["errors"][0]["field"] == "Content-Type"
    assert "application/json" in r.json()["errors"][0]["message"]
    assert client.post("/score", content=body, headers={"Content-Type": "application/json"}).status_code == 200


@pytest.mark.parametrize("route", ["/score", "/report"])
@pytest.mark.parametrize("header", [None, ""])
def test_a_body_without_a_content_type_is_read_as_json(client, route, header):
    body = json.dumps({"checkups": [EXAMPLE_RECORD]} if route == "/score" else EXAMPLE_RECORD).encode()
    headers = {} if header is None else {"Content-Type": header}
    request = client.build_request("POST", route, content=body, headers=headers)
    if header is None:
        request.headers.pop("Content-Type", None)
    assert request.headers.get("Content-Type") == header
    r = client.send(request)
    assert r.status_code == 200, r.text


def test_fhir_routes_take_their_types_and_refuse_others(client, cds_client_keys):
    bundle = json.dumps(to_bundle(EXAMPLE_RECORD))
    for media in ("application/fhir+json", "application/json", "application/fhir+json; fhirVersion=4.0"):
        r = client.post("/fhir/risk-assessment", content=bundle, headers={"Content-Type": media})
        assert r.status_code == 200, (media, r.text)
    r = client.post("/fhir/risk-assessment", content=bundle, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "not-supported"
    assert "application/fhir+json or application/json" in outcome["issue"][0]["diagnostics"]

    auth = {"Authorization": f"Bearer {cds_client_keys.token(URL)}"}
    call = json.dumps(cds_call(EXAMPLE_RECORD))
    r = client.post("/cds-services/checkup-risk", content=call, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    auth = {"Authorization": f"Bearer {cds_client_keys.token(URL)}"}
    r = client.post("/cds-services/checkup-risk", content=call, headers={**auth, "Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json()["resourceType"] == "OperationOutcome"


def test_cds_calls_are_authenticated_before_their_body_is_judged(client, cds_client_keys):
    # An unauthenticated caller gets 401 whatever it sends, and learns nothing of the body's faults.
    for headers, body in (
        ({"Authorization": "Bearer a.b.c", "Content-Type": "application/json"}, "not json"),
        ({"Content-Type": "text/plain"}, json.dumps(cds_call(EXAMPLE_RECORD))),
        ({"Authorization": "Bearer a.b.c"}, '{"hook": "patient-view", "hook": "x"}'),
    ):
        for path in ("/cds-services/checkup-risk", "/cds-services/checkup-risk/feedback"):
            r = client.post(path, content=body, headers=headers)
            assert r.status_code == 401, (path, headers, r.text)
            assert r.json()["issue"][0]["code"] == "security"
    # Authenticated, the same faults are named as before.
    auth = {"Authorization": f"Bearer {cds_client_keys.token(URL)}", "Content-Type": "application/json"}
    r = client.post("/cds-services/checkup-risk", content="not json", headers=auth)
    assert r.status_code == 400 and r.json()["issue"][0]["code"] == "structure"
    auth = {"Authorization": f"Bearer {cds_client_keys.token(URL)}"}
    r = client.post("/cds-services/checkup-risk", content='{"hook": 1, "hook": 2}', headers=auth)
    assert r.status_code == 422 and r.json()["issue"][0]["code"] == "duplicate"


@pytest.mark.parametrize("body", [b"", b"[]", b"[{}]", b"42"])
def test_a_body_that_is_no_request_names_the_body(client, body):
    # An empty body or a bare list had got 422 with no field named.
    r = client.post("/score", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["body"]
