"""Fixtures: each stack's program is run once per session under mocks."""

from __future__ import annotations

import functools

import pytest

from pixtools_platform.testing.harness import StackRun, discover_stacks, run_stack

STACKS = discover_stacks()


@functools.cache
def cached_run(stack: str, preview: bool = False) -> StackRun:
    """Run the program for ``stack`` once and reuse the result."""
    return run_stack(stack, preview=preview)


@pytest.fixture(scope="session", params=STACKS)
def stack_run(request: pytest.FixtureRequest) -> StackRun:
    """A finished run of the program for each stack file."""
    return cached_run(request.param)


@pytest.fixture(scope="session")
def dev_run() -> StackRun:
    return cached_run("dev")


@pytest.fixture(scope="session")
def prod_run() -> StackRun:
    return cached_run("prod")
