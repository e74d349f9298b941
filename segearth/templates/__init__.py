"""The HTML that segearth writes (evaluation reports, the map file's summary box), as jinja2
templates with autoescaping: a question, an answer or a checkpoint name reaches a page as text,
never as markup, without each value being escaped by hand (and one forgotten)."""
from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined


@cache
def _environment() -> Environment:
    # StrictUndefined: a misspelt name in a template fails loudly instead of rendering as "".
    return Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(name: str, **context: Any) -> str:
    """Template ``name`` of this folder rendered with ``context``, every value escaped."""
    return _environment().get_template(name).render(**context)
