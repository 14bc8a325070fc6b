"""Offline test support: realistic mocks and a runner for the real program."""
