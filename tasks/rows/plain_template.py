"""Plain templates: literal text and reads like `{{ question }}` or `{{ steps.answer.output }}`.

Most prompts are text with a few fields in it. For those, Jinja's per-row context and render
generator cost ~15 µs a row, which is most of what a resumed run spends to find a row already
done; joining the pieces costs ~1 µs. A template is plain when its parsed tree is one output of
literal text and reads of names, attributes and constant string keys (no filter, test, call,
condition or loop). A row is filled in only when every value read is a string reached through
plain dicts; anything else (a missing key, a number, a struct read as an attribute that is also
a dict method) gives None, and the row is rendered by Jinja, which gives what it always gave:
the text, or the error naming the undefined value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes

# Where a read starts: the row's columns, or the earlier steps' records.
ROW, STEPS = "row", "steps"
# On a dict, Jinja's `a.b` finds the attribute before the key: `row.items` is the method, so a read
# of such a name is never plain. Private names are left to the sandbox.
_DICT_ATTRIBUTES = frozenset(dir(dict))


@dataclass(frozen=True, slots=True)
class Read:
    """One `{{ ... }}` of a plain template: where it starts and the keys it follows."""

    root: str
    keys: tuple[str, ...]


Piece = str | Read


@dataclass(frozen=True, slots=True)
class PlainTemplate:
    """A plain template's pieces, in order: literal text and reads."""

    pieces: tuple[Piece, ...]

    @classmethod
    def of(cls, tree: nodes.Template) -> PlainTemplate | None:
        """The plain form of a parsed template, or None when it is not plain."""
        if not tree.body:
            return cls(())
        if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
            return None
        pieces: list[Piece] = []
        for node in tree.body[0].nodes:
            if isinstance(node, nodes.TemplateData):
                pieces.append(node.data)
                continue
            read = _read(node)
            if read is None:
                return None
            pieces.append(read)
        return cls(tuple(pieces))

    def fill(self, row: Mapping[str, Any], steps: Mapping[str, Any]) -> str | None:
        """The template filled in for this row, or None when Jinja must render it."""
        parts: list[str] = []
        for piece in self.pieces:
            if type(piece) is str:
                parts.append(piece)
                continue
            assert isinstance(piece, Read)
            value: Any = row if piece.root == ROW else steps
            for key in piece.keys:
                # Exactly a dict: a dict subclass could resolve keys its own way.
                if type(value) is not dict or key not in value:
                    return None
                value = value[key]
            if type(value) is not str:  # Jinja writes str(value): only a str is itself
                return None
            parts.append(value)
        return "".join(parts)


def _read(node: nodes.Node) -> Read | None:
    """`name`, `name.key`, `name['key']`, ... as a read, or None."""
    keys: list[str] = []
    while not isinstance(node, nodes.Name):
        if isinstance(node, nodes.Getattr):
            key = node.attr
            if key in _DICT_ATTRIBUTES or key.startswith("_"):
                return None
        elif isinstance(node, nodes.Getitem):
            arg = node.arg
            if not isinstance(arg, nodes.Const) or type(arg.value) is not str:
                return None
            key = arg.value
        else:
            return None
        keys.append(key)
        node = node.node
    keys.reverse()
    if node.name in (ROW, STEPS):
        # `{{ row }}` or `{{ steps }}` alone writes a dict: never plain.
        return Read(node.name, tuple(keys)) if keys else None
    # Any other name is a column (the renderer's context is the row, with `row` and `steps` over it).
    return Read(ROW, (node.name, *keys))
