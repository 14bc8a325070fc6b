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
