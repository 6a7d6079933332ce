"""The one-line comments of a config dataclass's fields, read from its source: the comment
that ends a field's line (``lr: float = 0.3  # the paper's``), else the comment lines just
above it. ``selfsup config`` prints them beside the keys."""
from __future__ import annotations

import dataclasses
import inspect
import io
import tokenize


def field_comments(cls: type) -> dict[str, str]:
    """{field name: comment} for ``cls`` and its dataclass bases (a subclass's comment wins)."""
    out: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        out.update(own_comments(klass))
    return out


def own_comments(cls: type) -> dict[str, str]:
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    comments: dict[str, str] = {}
    above: list[str] = []
    line_field: dict[int, str] = {}
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.NAME and tok.string in names and tok.start[1] == 4 and i + 1 < len(tokens) \
                and tokens[i + 1].string == ":":
            line_field[tok.start[0]] = tok.string
            if above:
                comments[tok.string] = " ".join(above)
            above = []
        elif tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            if tok.start[0] in line_field:
                comments[line_field[tok.start[0]]] = text
            elif tok.start[1] == 4:
                above.append(text)
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT):
            if tok.start[0] not in line_field and tok.start[1] == 4:
                above = []
    return comments
