"""Helpers shared by the components: resource options and name conventions."""

from __future__ import annotations

import pulumi

PROJECT = "pixtools"
TYPE_PREFIX = "pixtools"


def type_token(module: str, type_name: str) -> str:
    """Build the ``pixtools:<module>:<Type>`` token of a component."""
    return f"{TYPE_PREFIX}:{module}:{type_name}"


def child_options(
    parent: pulumi.Resource,
    **options: object,
) -> pulumi.ResourceOptions:
    """Build resource options for a child resource of ``parent``.

    Every child is parented to its component so that it inherits the component's
    providers and so that its URN is nested under the component.
    """
    return pulumi.ResourceOptions(parent=parent, **options)  # type: ignore[arg-type]


def name_tags(name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return the ``Name`` tag for a resource, merged with ``extra`` tags."""
    tags = {"Name": name}
    if extra:
        tags.update(extra)
    return tags
