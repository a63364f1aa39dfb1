"""Fuzzing the HTTP surface with hypothesis: arbitrary JSON and mutations of valid payloads must
never produce a 5xx (the test client re-raises any server exception, so a crash fails here too)."""

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.fhir import to_bundle
from features.schema import EXAMPLE_RECORD
from tests.service.test_cds import URL, cds_call

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _mutate(document, data) -> object:
    """Replace or delete one randomly chosen node of a valid document."""
    doc = copy.deepcopy(document)
    paths = [p for p in _paths(doc) if p]
    path = data.draw(st.sampled_from(paths))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(json_values)
    return doc


def _assert_not_5xx(response):
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body.get("errors") or body.get("resourceType") == "OperationOutcome"


@SETTINGS
@given(body=json_values)
def test_arbitrary_json_everywhere(client, cds_client_keys, body):
    raw = json.dumps(body)
    _assert_not_5xx(client.post("/score", content=raw, headers={"Content-Type": "application/json"}))
    _assert_not_5xx(client.post("/fhir/risk-assessment", content=raw))
    _assert_not_5xx(
        client.post(
            "/cds-services/checkup-risk", content=raw, headers={"Authorization": f"Bearer {cds_client_keys.token(URL)}"}
        )
    )


@SETTINGS
@given(data=st.data())
def test_mutated_score_requests(client, data):
    body = _mutate({"checkups": [dict(EXAMPLE_RECORD)], "explain": True, "top_k": 5}, data)
    _assert_not_5xx(client.post("/score", json=body))


@SETTINGS
@given(data=st.data())
def test_mutated_fhir_bundles(client, data):
    _assert_not_5xx(client.post("/fhir/risk-assessment", json=_mutate(to_bundle(EXAMPLE_RECORD), data)))


@SETTINGS
@given(data=st.data())
def test_mutated_cds_calls(client, cds_client_keys, data):
    body = _mutate(cds_call(EXAMPLE_RECORD), data)
    _assert_not_5xx(
        client.post(
            "/cds-services/checkup-risk", json=body, headers={"Authorization": f"Bearer {cds_client_keys.token(URL)}"}
        )
    )
