"""Hostile and broken HTTP input (issue 13, findings 2, 3 and 7): malformed bodies get one answer in
the route's error shape and never a 500; bodies over the size limit get 413 before parsing; the
bearer scheme is case-insensitive; CORS preflights are answered; reports are not cached."""

import datetime as dt
import json

import pytest

from features.fhir import to_bundle
from features.schema import EXAMPLE_RECORD
from serving.service import MAX_JSON_DEPTH, MalformedBody, check_json, json_depth
from serving.settings import DEFAULT_MAX_BODY_BYTES
from tests.service.test_cds import URL

JSON = {"Content-Type": "application/json"}
DEEP = b"[" * 10_000 + b"]" * 10_000
FHIR_ROUTES = ("/fhir/risk-assessment", "/cds-services/checkup-risk")


def _headers(path: str, cds_client_keys) -> dict:
    if path.startswith("/cds-services"):
        return {**JSON, "Authorization": f"Bearer {cds_client_keys.token(URL)}"}
    return JSON


def _assert_refusal(r, status: int | tuple[int, ...], field: str | None = None) -> None:
    """A 4xx in the route's shape: OperationOutcome on FHIR and CDS routes, `errors` elsewhere."""
    assert r.status_code in ((status,) if isinstance(status, int) else status), r.text
    body = r.json()
    assert "detail" not in body
    if body.get("resourceType") == "OperationOutcome":
        assert body["issue"] and all(i["severity"] == "error" and i["diagnostics"] for i in body["issue"])
        if field:
            assert body["issue"][0]["expression"] == [field]
    else:
        assert body["errors"] and set(body["errors"][0]) == {"index", "field", "message"}
        if field:
            assert body["errors"][0]["field"] == field


# -- parsing (unit) ---------------------------------------------------------------------------------


def test_json_depth_ignores_brackets_in_strings():
    assert json_depth(b"1") == 0 and json_depth(b"[]") == 1
    assert json_depth(b'[{"a": "[[[{{\\"]"}]') == 2
    assert json_depth(DEEP) == 10_000


@pytest.mark.parametrize(
    "body,status,field",
    [
        (b'{"sbp": 9999, "sbp": 134}', 422, "sbp"),
        (b'{"checkups": [{"age": 50, "age": 51}]}', 422, "age"),
        (b"{not json", 400, None),
        (b"\xff\xfe", 400, None),
        (DEEP, 400, None),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), 400, None),
    ],
)
def test_check_json_refuses(body, status, field):
    with pytest.raises(MalformedBody) as caught:
        check_json(body)
    assert (caught.value.status, caught.value.field) == (status, field)


def test_a_body_that_is_not_utf8_is_said_to_be_so():
    # A Korean legacy HIS sending CP949 (EUC-KR): not "invalid JSON", which would send them looking for a typo.
    with pytest.raises(MalformedBody) as caught:
        check_json(json.dumps({"checkups": [{"person_id": "홍길동"}]}, ensure_ascii=False).encode("cp949"))
    assert (caught.value.status, caught.value.field) == (400, None)
    assert caught.value.message == "is not UTF-8: JSON must be sent in UTF-8"
    check_json(json.dumps({"person_id": "홍길동"}, ensure_ascii=False).encode("utf-8"))


def test_check_json_accepts_nesting_up_to_the_limit():
    check_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    check_json(b'{"a": 1, "b": {"a": 2}}')  # the same key in different objects


# -- malformed bodies over HTTP --------------------------------------------------------------------


def test_duplicate_key_is_refused_naming_it(client):
    body = '{"checkups": [{"person_id": "a", "sex": "M", "age": 50, "sbp": 9999, "sbp": 134}]}'
    r = client.post("/score", content=body, headers=JSON)
    _assert_refusal(r, 422, "sbp")
    assert "9999" not in r.text and "134" not in r.text  # no echo of patient values
    assert r.json()["errors"][0]["index"] == 0
    # The record is named, as in every other refusal of /score; a key twice in the envelope is not one.
    second = '{"checkups": [{"person_id": "a", "sex": "M", "age": 50}, {"person_id": "b", "age": 5, "age": 50}]}'
    assert client.post("/score", content=second, headers=JSON).json()["errors"][0]["index"] == 1
    envelope = '{"checkups": [{"person_id": "a", "sex": "M", "age": 50}], "top_k": 1, "top_k": 2}'
    assert client.post("/score", content=envelope, headers=JSON).json()["errors"][0]["index"] is None


def test_a_record_of_very_many_keys_is_one_error_and_errors_are_capped(client):
    from features.schema import FIELDS
    from serving.schemas import MAX_ERRORS

    # 200,000 unknown keys (about 2.5 MB, under the body limit): one error for the record, not one per
    # key (an outside tester stalled both workers so); the same for the request around the records.
    many = {f"k{i}": 1 for i in range(200_000)}
    r = client.post("/score", json={"checkups": [{"person_id": "a", "sex": "M", "age": 50, **many}]})
    assert r.status_code == 422, r.text[:300]
    message = f"this record has 200,003 keys; it has at most {len(FIELDS)} fields"
    assert r.json()["errors"] == [{"index": 0, "field": None, "message": message}]
    r = client.post("/score", json={"checkups": [dict(EXAMPLE_RECORD)], **many})
    assert r.status_code == 422 and len(r.json()["errors"]) == 1, r.text[:300]
    assert r.json()["errors"][0]["message"].startswith("this request has 200,001 keys")
    r = client.post("/report", json={**dict(EXAMPLE_RECORD), **many})
    assert r.status_code == 422 and len(r.json()["errors"]) == 1, r.text[:300]
    # Within the limit but many: 300 records of 60 unknown keys are 18,000 errors, listed as 100.
    near = [{"person_id": f"p{i}", "sex": "M", "age": 50, **{f"k{j}": 1 for j in range(60)}} for i in range(300)]
    errors = client.post("/score", json={"checkups": near}).json()["errors"]
    assert len(errors) == MAX_ERRORS + 1 and errors[-1]["message"] == f"{18_000 - MAX_ERRORS:,} more errors not listed"
    # Many bad records: the first MAX_ERRORS errors are listed and the rest counted.
    bad = [{"person_id": f"p{i}", "sex": "M", "age": 50, "sbp": 9999} for i in range(300)]
    errors = client.post("/score", json={"checkups": bad}).json()["errors"]
    assert len(errors) == MAX_ERRORS + 1 and all(e["field"] == "sbp" for e in errors[:-1])
    assert errors[-1] == {"index": None, "field": None, "message": f"{300 - MAX_ERRORS} more errors not listed"}


def test_a_number_of_thousands_of_digits_is_out_of_range_not_bad_json(client):
    # Valid JSON that Python's int() refuses (over 4,300 digits): refused as a value, naming its field.
    body = '{"checkups": [{"person_id": "a", "sex": "M", "age": ' + "9" * 5000 + "}]}"
    r = client.post("/score", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert [(e["index"], e["field"]) for e in r.json()["errors"]] == [(0, "age")]
    assert "9999" not in r.text
    in_a_list = '{"checkups": [{"person_id": "a", "sex": "M", "age": 50}], "x": [' + "9" * 5000 + "]}"
    assert client.post("/score", content=in_a_list, headers=JSON).status_code == 422
    # Nested in the second record (a list, an object): that record is named.
    for nested in ("[" + "9" * 5000 + "]", '{"b": ' + "9" * 5000 + "}"):
        body = '{"checkups": [{"person_id": "a", "sex": "M", "age": 50}, {"person_id": "b", "sbp": ' + nested + "}]}"
        r = client.post("/score", content=body, headers=JSON)
        assert r.status_code == 422 and r.json()["errors"][0]["index"] == 1, r.text
    # On a FHIR route the OperationOutcome says what it is (not a duplicated key).
    from serving.refusals import malformed_body

    refused = malformed_body(
        "/fhir/risk-assessment", 422, "value", "is a number of more than 4,000 digits: out of range"
    )
    assert json.loads(refused.body)["issue"][0]["code"] == "too-long"
    twice = malformed_body("/fhir/risk-assessment", 422, "id", "appears more than once in one JSON object")
    assert json.loads(twice.body)["issue"][0]["code"] == "duplicate"


def test_duplicate_key_in_a_fhir_bundle_is_refused(client):
    text = json.dumps(to_bundle(EXAMPLE_RECORD))
    text = text.replace('"resourceType": "Bundle"', '"resourceType": "Bundle", "resourceType": "Bundle"', 1)
    _assert_refusal(client.post("/fhir/risk-assessment", content=text, headers=JSON), 422, "resourceType")


@pytest.mark.parametrize("path", ["/score", "/report", *FHIR_ROUTES])
def test_deep_json_is_refused_without_a_500(client, cds_client_keys, path):
    _assert_refusal(client.post(path, content=DEEP, headers=_headers(path, cds_client_keys)), 400)


@pytest.mark.parametrize("path", ["/score", "/report", *FHIR_ROUTES])
def test_invalid_json_is_refused_in_the_route_shape(client, cds_client_keys, path):
    _assert_refusal(client.post(path, content=b"{not json", headers=_headers(path, cds_client_keys)), 400)


def test_score_still_works_after_refusals(client):
    r = client.post("/score", json={"checkups": [EXAMPLE_RECORD]})
    assert r.status_code == 200, r.text


# -- body size --------------------------------------------------------------------------------------


def test_max_body_bytes_defaults_to_8_mb(service_settings):
    assert DEFAULT_MAX_BODY_BYTES == 8 * 1024 * 1024 == service_settings.max_body_bytes


@pytest.mark.parametrize("path", ["/score", "/fhir/risk-assessment"])
def test_oversize_content_length_gets_413(client, path):
    body = b'{"checkups": [' + b" " * DEFAULT_MAX_BODY_BYTES + b"]}"
    _assert_refusal(client.post(path, content=body, headers=JSON), 413)


def test_oversize_streamed_body_gets_413(client):
    def chunks():
        yield b'{"checkups": ['
        for _ in range(DEFAULT_MAX_BODY_BYTES // 65536 + 1):
            yield b" " * 65536
        yield b"]}"

    # A generator is sent chunked, with no Content-Length: the limit is counted as it arrives.
    _assert_refusal(client.post("/score", content=chunks(), headers=JSON), 413)


# -- conventions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", ["bearer test-token", "BEARER test-token", "Bearer  test-token", "Bearer test-token "]
)
def test_bearer_scheme_is_case_insensitive_and_spaces_are_as_rfc_9110_allows(client, header):
    r = client.get("/model", headers={"Authorization": header})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "header",
    ["test-token", "Basic test-token", "bearer wrong", "bearer", "", "Bearer test-token x", "Bearertest-token"],
)
def test_wrong_credentials_still_get_401(client, header):
    assert client.get("/model", headers={"Authorization": header}).status_code == 401


def test_cors_preflight_is_answered_not_refused(client):
    headers = {
        "Origin": "https://his.example.org",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type",
        "Authorization": "",
    }
    r = client.options("/score", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] in ("*", "https://his.example.org")
    assert "POST" in r.headers["access-control-allow-methods"]
    # A plain OPTIONS (no preflight headers) still needs the token.
    assert client.options("/score", headers={"Authorization": ""}).status_code == 401


def _assert_report_headers(r):
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "style-src 'unsafe-inline'" in csp and "script-src" not in csp


def test_report_is_not_cached_and_has_a_csp(client, report_links):
    _assert_report_headers(client.post("/report", json={"checkup": EXAMPLE_RECORD}))
    today = dt.date.today().isoformat()
    _assert_report_headers(client.get(report_links.put([dict(EXAMPLE_RECORD, exam_date=today)])))
