"""Tests of the OpenAPI document and the /docs page."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_openapi_documents_process_form(client: TestClient) -> None:
    response = client.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    process = document["paths"]["/api/process"]["post"]
    form = process["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file", "operations"]
    assert set(form["properties"]) == {
        "file",
        "operations",
        "operation_params",
        "webhook_url",
    }
    assert [parameter["name"] for parameter in process["parameters"]] == [
        "Idempotency-Key"
    ]
    assert "202" in process["responses"]
    assert "/api/jobs/{job_id}" in document["paths"]
    assert "/api/health" in document["paths"]
    assert "/api/limits" in document["paths"]


def test_docs_page_served(client: TestClient) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert "swagger" in response.text.lower()


def test_process_documents_every_status(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    responses = document["paths"]["/api/process"]["post"]["responses"]

    expected = ["400", "401", "408", "409", "413", "415", "422", "429", "500", "503"]
    assert sorted(set(responses) - {"202"}) == expected
    for status in expected:
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, status
    for status in ("409", "429", "503"):
        assert "Retry-After" in responses[status]["headers"], status


def test_guarded_operations_declare_security(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]

    assert schemes["ApiKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    assert schemes["BearerKey"]["scheme"] == "bearer"
    job = document["paths"]["/api/jobs/{job_id}"]["get"]
    assert {"ApiKeyHeader": []} in job["security"]
    assert {"401", "404", "429"} <= set(job["responses"])
    assert "security" not in document["paths"]["/api/health"]["get"]
    # The test app has no API_KEYS, so calling without a key is allowed too.
    assert {} in job["security"]
