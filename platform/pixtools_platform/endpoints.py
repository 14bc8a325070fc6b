"""Names and ports that several components agree on.

The workloads create Services with these names, while the configuration builds
BROKER_URL and REDIS_URL from them before the cluster exists.
"""

from __future__ import annotations

NAMESPACE = "pixtools"

API_PORT = 8000
WORKER_METRICS_PORT = 9100
CELERY_EXPORTER_PORT = 9808

RABBITMQ_SERVICE = "rabbitmq"
RABBITMQ_PORT = 5672
RABBITMQ_USER = "pixtools"

REDIS_SERVICE = "redis"
REDIS_PORT = 6379


def service_host(service: str) -> str:
    """Return the in-cluster DNS name of a Service in the PixTools namespace."""
    return f"{service}.{NAMESPACE}.svc.cluster.local"
