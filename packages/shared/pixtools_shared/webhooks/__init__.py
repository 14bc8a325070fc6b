"""Webhook delivery mechanics: address vetting, pinned connections, signatures,
circuit breakers. The Celery task that uses them lives in the standard worker."""
