"""PixTools HTTP API: job submission, job status, downloads and the upload page."""
