"""`python -m pixtools_api` runs the API server."""

from pixtools_api.main import main

main()
