"""docs/architecture.md against the code it describes: the model names and the default.

The Models contract's "Names:" paragraph once kept calling the former default the
default after the registry had moved on; held to ``list_models()`` and ``DEFAULT_MODEL``
here, a new model or a new default cannot land without the paragraph following it.
"""

from __future__ import annotations

import re
from pathlib import Path

from roadseg_ros.models import DEFAULT_MODEL, list_models

ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def section(text: str, heading: str) -> str:
    """The body of the markdown section under ``heading`` (up to the next heading of any level)."""
    match = re.search(rf"^{re.escape(heading)}\s*$(.*?)(?=^#)", text, re.M | re.S)
    assert match, f"docs/architecture.md has no section {heading!r}"
    return match.group(1)


def bullet(body: str, start: str) -> str:
    """The list item of ``body`` that begins with ``start``, its continuation lines joined."""
    match = re.search(rf"^- {re.escape(start)}(.*?)(?=^- |^\s*$|\Z)", body, re.M | re.S)
    assert match, f"no bullet starting {start!r}"
    return " ".join(match.group(1).split())


def names_paragraph() -> str:
    return bullet(section(ARCHITECTURE.read_text(), "### Models (`roadseg_ros.models`)"), "Names:")


def test_the_names_paragraph_lists_exactly_the_registered_models():
    paragraph = names_paragraph()
    named = {n for n in re.findall(r"`([^`]+)`", paragraph) if re.fullmatch(r"[a-z][a-z0-9_]*", n)}
    assert named == set(list_models()), (
        f"docs/architecture.md's model names differ from list_models(): missing "
        f"{sorted(set(list_models()) - named)}, not registered {sorted(named - set(list_models()))}")


def test_the_names_paragraph_calls_the_default_what_the_registry_does():
    paragraph = names_paragraph()
    marked = re.findall(r"`(\w+)` \(`DEFAULT_MODEL`", paragraph)
    assert marked == [DEFAULT_MODEL], f"the name marked (`DEFAULT_MODEL`) is {marked}, not {DEFAULT_MODEL!r}"
    # "the default X" / "the real-time default X" only ever names DEFAULT_MODEL ("the former default" aside).
    called_default = re.findall(r"\bthe (?:[\w-]+ )?default `(\w+)`", paragraph)
    assert called_default and set(called_default) == {DEFAULT_MODEL}, called_default
