"""YAML with line numbers, checked against a JSON Schema, with every problem named.

World and config files are hand-written by SREs, so a problem must point at the line. PyYAML's
node tree keeps marks; we build plain Python values from it and remember the line of every
path. The schema check interprets the subset of JSON Schema (2020-12) our schemas use: the
files in the repo stay usable by editors and by `jsonschema`, and start-up does not pay for
importing it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

try:  # libyaml makes a 2,000-line world parse in milliseconds
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

PathT = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ProblemsError(Exception):
    """One or more problems in a file; str() gives one line per problem."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def field_name(path: PathT) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class Document:
    """Plain values from a YAML file, plus the line (1-based) of every path in it."""

    file: str
    data: Any
    lines: dict[PathT, int]
    digest: str = ""  # of the text: tells an edited file from the one a store was seeded from

    def line(self, path: PathT) -> int:
        # The nearest enclosing path that has a line: a missing key is reported at its parent.
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)

    def problem(self, path: PathT, message: str) -> Problem:
        return Problem(self.file, self.line(path), field_name(path), message)


class _Builder(yaml.constructor.SafeConstructor):
    pass


def parse(text: str, file: str) -> tuple[Document, list[Problem]]:
    """Parse YAML text; syntax problems come back as Problems, never as exceptions."""
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        what = " ".join(x for x in (e.context, e.problem) if x) or "invalid YAML"
        return Document(file, None, {}), [Problem(file, line, "", f"YAML syntax: {what}")]
    except (yaml.YAMLError, ValueError) as e:  # e.g. a NUL byte: not even a YAML stream
        return Document(file, None, {}), [Problem(file, 1, "", f"not YAML: {e}")]
    if len(nodes) != 1:
        msg = "the file is empty" if not nodes else f"expected one YAML document, found {len(nodes)}"
        return Document(file, None, {}), [Problem(file, 1, "", msg)]
    lines: dict[PathT, int] = {}
    problems: list[Problem] = []
    data = _value(nodes[0], (), lines, problems, file, _Builder(), depth=0)
    return Document(file, data, lines, hashlib.sha256(text.encode()).hexdigest()[:16]), problems


def read(path: str | Path) -> tuple[Document, list[Problem]]:
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return Document(name, None, {}), [Problem(name, 0, "", "no such file")]
    except IsADirectoryError:
        return Document(name, None, {}), [Problem(name, 0, "", "is a directory, not a file")]
    except UnicodeDecodeError as e:
        return Document(name, None, {}), [Problem(name, 0, "", f"not UTF-8 text ({e.reason} at byte {e.start})")]
    except OSError as e:
        return Document(name, None, {}), [Problem(name, 0, "", f"cannot read: {e.strerror}")]
    except ValueError:  # a NUL byte in the path
        return Document(repr(name), None, {}), [Problem(repr(name), 0, "", "not a usable file name")]
    return parse(text, name)


_MAX_DEPTH = 64


def _value(node, path, lines, problems, file, builder, depth):
    lines[path] = node.start_mark.line + 1
    if depth > _MAX_DEPTH:
        problems.append(Problem(file, lines[path], field_name(path), "nested too deeply"))
        return None
    if isinstance(node, yaml.MappingNode):
        try:
            builder.flatten_mapping(node)  # honour `<<` merge keys
        except yaml.YAMLError as e:
            problems.append(Problem(file, lines[path], field_name(path), f"bad merge key: {e}"))
            return None
        out: dict = {}
        for knode, vnode in node.value:
            key = _scalar(knode, builder) if isinstance(knode, yaml.ScalarNode) else None
            if not isinstance(key, (str, int, float, bool)) or key is None:
                problems.append(Problem(file, knode.start_mark.line + 1, field_name(path), "keys must be plain scalars"))
                continue
            key = str(key)
            if key in out:
                problems.append(
                    Problem(file, knode.start_mark.line + 1, field_name(path + (key,)), "duplicate key")
                )
                continue
            out[key] = _value(vnode, path + (key,), lines, problems, file, builder, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _value(item, path + (i,), lines, problems, file, builder, depth + 1) for i, item in enumerate(node.value)
        ]
    try:
        return _scalar(node, builder)
    except (yaml.YAMLError, ValueError, OverflowError) as e:
        problems.append(Problem(file, lines[path], field_name(path), f"bad value: {e}"))
        return None


def _scalar(node, builder):
    # Times stay text: "12:30" is a clock time to us, not YAML 1.1's base-60 integer 750, and
    # timestamps are parsed by the world loader, which wants their offset.
    if node.tag == "tag:yaml.org,2002:timestamp":
        return node.value
    if node.tag == "tag:yaml.org,2002:int" and ":" in node.value:
        return node.value
    return builder.construct_object(node, deep=True)


# --- the JSON Schema subset ----------------------------------------------------------------

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "text",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}


def _describe(v: Any) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, bool):
        return f"the boolean {str(v).lower()}"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 40 else text[:37] + "..."


def validate(doc: Document, schema: dict) -> list[Problem]:
    """Check `doc.data` against the schema; integral floats where integers are wanted (`count: 3.0`)
    become ints in place, as JSON Schema counts them as integers."""
    problems: list[Problem] = []
    doc.data = _check(doc.data, schema, schema, (), doc, problems)
    return problems


def _unique_key(v: Any):
    # JSON Schema's equality: true is not 1, but 1 is 1.0.
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, (int, float)):
        return ("n", v)
    return ("o", repr(v) if not isinstance(v, (dict, list)) else _canon(v))


def _canon(v: Any):
    if isinstance(v, dict):
        return ("d", tuple(sorted((k, _canon(x)) for k, x in v.items())))
    if isinstance(v, list):
        return ("l", tuple(_canon(x) for x in v))
    return _unique_key(v)


def _resolve(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/"), ref
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        schema = node
    return schema


def _check(value, schema, root, path, doc, problems):
    """Record the problems of `value`; return it, with integral floats made ints where wanted."""
    schema = _resolve(schema, root)
    expected = schema.get("title")
    types = schema.get("type")
    if types is not None:
        tlist = [types] if isinstance(types, str) else types
        if not any(_TYPES[t](value) for t in tlist):
            want = expected or " or ".join(_TYPE_WORDS[t] for t in tlist)
            problems.append(doc.problem(path, f"expected {want}, got {_describe(value)}"))
            return value
        if isinstance(value, float) and "integer" in tlist and "number" not in tlist:
            value = int(value)
    if "enum" in schema and not any(_unique_key(value) == _unique_key(c) for c in schema["enum"]):
        choices = ", ".join(str(c) for c in schema["enum"])
        problems.append(doc.problem(path, f"expected one of {choices}; got {_describe(value)}"))
        return value
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            problems.append(doc.problem(path, "must not be empty"))
        elif "pattern" in schema and not re.search(schema["pattern"], value):
            want = expected or f"text matching {schema['pattern']}"
            problems.append(doc.problem(path, f"expected {want}, got {_describe(value)}"))
    if _TYPES["number"](value):
        for key, ok, words in (
            ("minimum", lambda v, b: v >= b, ">="),
            ("maximum", lambda v, b: v <= b, "<="),
            ("exclusiveMinimum", lambda v, b: v > b, ">"),
            ("exclusiveMaximum", lambda v, b: v < b, "<"),
        ):
            if key in schema and not ok(value, schema[key]):
                problems.append(doc.problem(path, f"expected a number {words} {schema[key]}, got {_describe(value)}"))
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            n = schema["minItems"]
            problems.append(doc.problem(path, f"expected at least {n} item{'s' if n > 1 else ''}"))
        if schema.get("uniqueItems"):
            seen: set = set()
            for i, item in enumerate(value):
                key = _unique_key(item)
                if key in seen:
                    problems.append(doc.problem(path + (i,), f"{_describe(item)} is listed twice"))
                seen.add(key)
        if "items" in schema:
            for i, item in enumerate(value):
                value[i] = _check(item, schema["items"], root, path + (i,), doc, problems)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems.append(doc.problem(path + (key,), "is required"))
        extra = schema.get("additionalProperties", True)
        names = schema.get("propertyNames")
        for key, item in value.items():
            if key in props:
                value[key] = _check(item, props[key], root, path + (key,), doc, problems)
            elif extra is False:
                known = ", ".join(sorted(props)) or "none"
                problems.append(doc.problem(path + (key,), f"unknown key (expected one of: {known})"))
            else:
                if names is not None:
                    _check(key, names, root, path + (key,), doc, problems)
                if isinstance(extra, dict):
                    value[key] = _check(item, extra, root, path + (key,), doc, problems)
    return value
