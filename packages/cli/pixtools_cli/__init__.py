"""`pixtools`: command-line client of the PixTools HTTP API."""
