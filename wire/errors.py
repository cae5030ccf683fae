"""The one error of the wire conversions."""

from __future__ import annotations


class MalformedMessage(ValueError):
    """A message whose fields do not make a valid value; says which field and why."""
