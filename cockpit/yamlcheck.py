"""YAML with line numbers, checked against a JSON Schema, with every problem named.

World and config files are hand-written by SREs, so a problem must point at the line. We build
plain Python values straight from the YAML parser's events and remember the line of every
path. The schema check interprets the subset of JSON Schema (2020-12) our schemas use: the
files in the repo stay usable by editors and by `jsonschema`, and start-up does not pay for
importing it.

Reading is bounded whatever the file holds: only a regular file of at most MAX_BYTES, at most
MAX_VALUES values (an alias counts as all the values it stands for, so an alias bomb is
refused at once), nesting at most MAX_DEPTH deep, and numbers must be finite.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:  # libyaml makes a 2,000-line world parse in milliseconds
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

PathT = tuple[str | int, ...]

MAX_BYTES = 8 * 1024 * 1024  # worlds give host groups with counts, not hosts: real ones are kilobytes
MAX_VALUES = 250_000  # about 150 times the demo world; what follows the parse walks every one
MAX_DEPTH = 64  # mappings and lists inside each other; our schemas need fewer than 10


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
    links: dict[PathT, PathT] = field(default_factory=dict)  # where an alias is -> where its anchor is

    def line(self, path: PathT) -> int:
        # The nearest enclosing path that has a line: a missing key is reported at its parent.
        # Inside what an alias stands for, the line is the one in the anchored text.
        for _ in range(MAX_DEPTH):  # each hop goes back to an earlier anchor; bounded all the same
            near = path
            while near not in self.lines and near:
                near = near[:-1]
            if near == path or near not in self.links:
                break
            path = self.links[near] + path[len(near):]
        return self.lines.get(near, 1)

    def problem(self, path: PathT, message: str) -> Problem:
        return Problem(self.file, self.line(path), field_name(path), message)


# --- reading a file ------------------------------------------------------------------------


def read(path: str | Path) -> tuple[Document, list[Problem]]:
    """Read and parse a file. Only a regular file (or a link to one) of at most MAX_BYTES is
    read: a FIFO or a device would block or never end, and a huge file takes long to refuse."""
    name = str(path)

    def fail(message: str, file: str = name) -> tuple[Document, list[Problem]]:
        return Document(file, None, {}), [Problem(file, 0, "", message)]

    try:
        why = _not_a_file(os.stat(path))  # before opening: opening a device may act on it
        if why:
            return fail(why)
        # O_NONBLOCK: should the path be swapped for a FIFO after the stat, opening it cannot hang.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            why = _not_a_file(os.fstat(fd))
            if why:
                return fail(why)
            raw = _read_at_most(fd, MAX_BYTES + 1)  # a file that grows meanwhile is held to the limit too
        finally:
            os.close(fd)
    except FileNotFoundError:
        return fail("no such file")
    except OSError as e:
        return fail(f"cannot read: {e.strerror}")
    except ValueError:  # a NUL byte in the path
        return fail("not a usable file name", repr(name))
    if len(raw) > MAX_BYTES:
        return fail(_too_big(len(raw)))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return fail(f"not UTF-8 text ({e.reason} at byte {e.start})")
    if "\r" in text:  # as text mode reads it, so the digest does not depend on line endings
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return parse(text, name)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, got = [], 0
    while got < limit:
        chunk = os.read(fd, limit - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _not_a_file(st: os.stat_result) -> str:
    """Why this is not a file we read, or "" when it is one."""
    if stat.S_ISREG(st.st_mode):
        return _too_big(st.st_size) if st.st_size > MAX_BYTES else ""
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(st.st_mode):
        return "is a named pipe (FIFO), not a regular file"
    if stat.S_ISSOCK(st.st_mode):
        return "is a socket, not a regular file"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return "is a device, not a regular file"
    return "is not a regular file"


def _too_big(size: int) -> str:
    return f"too big: {size:,} bytes, more than the {MAX_BYTES // 2**20} MiB a file may have"


# --- parsing -------------------------------------------------------------------------------


def parse(text: str, file: str) -> tuple[Document, list[Problem]]:
    """Parse YAML text; syntax problems and passed limits come back as Problems, never as exceptions."""
    reader = None
    try:
        reader = _Reader(text, file)
        data, documents = reader.read()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        what = " ".join(x for x in (e.context, e.problem) if x) or "invalid YAML"
        return Document(file, None, {}), [Problem(file, line, "", f"YAML syntax: {what}")]
    except yaml.reader.ReaderError as e:  # e.g. a NUL byte: not even a YAML stream
        line = text.count("\n", 0, e.position) + 1 if isinstance(e.position, int) else 1
        what = f"character #x{e.character:04x}" if isinstance(e.character, int) else "a character"
        return Document(file, None, {}), [Problem(file, line, "", f"not YAML: {what}: {e.reason}")]
    except (yaml.YAMLError, ValueError) as e:
        return Document(file, None, {}), [Problem(file, 1, "", f"not YAML: {' '.join(str(e).split())}")]
    except _LimitPassed as e:
        return Document(file, None, {}), reader.problems + [e.problem]
    finally:
        if reader is not None:
            reader.loader.dispose()
    if documents != 1:
        msg = "the file is empty" if not documents else f"expected one YAML document, found {documents}"
        return Document(file, None, {}), [Problem(file, 1, "", msg)]
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Document(file, data, reader.lines, digest, reader.links), reader.problems


class _LimitPassed(Exception):
    """The file passed a limit: the rest of it is not read."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


# What a mapping being read holds in `key` when the next value is not stored under a key:
_NEXT_IS_KEY = object()  # the next node is a key
_DROP = object()  # the next node follows a bad or duplicate key: read, then thrown away
_MERGE = object()  # the next node is what a `<<` merge key brings in

# How a value is kept: lines recorded and problems reported; problems only (a merged-in
# mapping: its keys' line is the `<<`); neither (a key, or a value thrown away).
_RECORD, _NO_LINES, _SILENT = 0, 1, 2

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_ENDS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


class _Frame:
    """A mapping or list being read."""

    __slots__ = ("value", "path", "mode", "line", "anchor", "size", "key", "merges", "merge_line")

    def __init__(self, value: list | dict, path: PathT, mode: int, line: int, anchor: str | None):
        self.value = value
        self.path = path
        self.mode = mode
        self.line = line
        self.anchor = anchor
        self.size = 1  # values in it, each alias counted as what it stands for
        self.key: Any = _NEXT_IS_KEY
        self.merges: list[dict] = []
        self.merge_line = 0


class _Reader:
    """Builds plain values from the parser's events: one pass, no recursion, bounded.

    Composing PyYAML's node tree first would cost a node object per value before any limit
    could be checked. Here an alias is its anchor's value, shared, never copied, so a
    billion-laughs file costs no memory to read; but its expanded size is counted, as the
    schema check and the world loader walk what it stands for, and that count is held to
    MAX_VALUES."""

    def __init__(self, text: str, file: str):
        self.loader = _Loader(text)
        self.file = file
        self.lines: dict[PathT, int] = {}
        self.links: dict[PathT, PathT] = {}
        self.problems: list[Problem] = []
        self.anchors: dict[str, tuple[Any, int, int, PathT]] = {}  # name -> value, expanded size, line, path
        self.open_anchors: set[str] = set()  # on collections still being read
        self.count = 0
        self.builder = yaml.constructor.SafeConstructor()

    def read(self) -> tuple[Any, int]:
        """The first document's value, and how many documents the stream holds."""
        data, documents = None, 0
        while True:
            event = self.loader.get_event()
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                # Later documents are read only to be counted: they make the file wrong anyway.
                value = self._node(_RECORD if documents == 1 else _SILENT)
                data = value if documents == 1 else data
            elif isinstance(event, yaml.StreamEndEvent):
                return data, documents

    def _problem(self, line: int, path: PathT, message: str, mode: int) -> None:
        if mode != _SILENT:
            self.problems.append(Problem(self.file, line, field_name(path), message))

    def _count(self, n: int, line: int, path: PathT) -> None:
        self.count += n
        if self.count > MAX_VALUES:
            message = f"too many values: more than {MAX_VALUES:,} (an alias counts as all the values it stands for)"
            raise _LimitPassed(Problem(self.file, line, field_name(path), message))

    def _node(self, mode: int) -> Any:
        """Read one whole node (a document's root) from the events."""
        get = self.loader.get_event
        stack: list[_Frame] = []
        while True:
            event = get()
            kind = type(event)
            top = stack[-1] if stack else None
            if kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
                done = stack.pop()
                value, size, line, merge = self._close(done), done.size, done.line, False
                top = stack[-1] if stack else None
            else:
                line = event.start_mark.line + 1
                path, slot_mode = self._slot(top, mode)
                if kind is yaml.ScalarEvent:
                    self._count(1, line, path)
                    value, merge = self._scalar(event, line, path, slot_mode, top)
                    size = 1
                elif kind is yaml.AliasEvent:
                    value, size = self._alias(event.anchor, line, path, slot_mode)
                    merge = False
                else:  # the start of a list or a mapping
                    self._count(1, line, path)
                    if slot_mode == _RECORD:
                        self.lines[path] = line
                    if len(stack) < MAX_DEPTH:
                        anchor = self._open_anchor(event)
                        empty: list | dict = [] if kind is yaml.SequenceStartEvent else {}
                        stack.append(_Frame(empty, path, slot_mode, line, anchor))
                        continue
                    self._problem(line, path, f"nested too deeply (more than {MAX_DEPTH} levels)", slot_mode)
                    self._skip()
                    value, size, merge = None, 1, False
            if top is None:
                return value
            self._fill(top, value, size, line, merge)

    @staticmethod
    def _slot(top: _Frame | None, mode: int) -> tuple[PathT, int]:
        """The path of the node that comes next, and how it is kept."""
        if top is None:
            return (), mode
        if isinstance(top.value, list):
            return top.path + (len(top.value),), top.mode
        key = top.key
        if key is _NEXT_IS_KEY or key is _DROP:
            return top.path, _SILENT
        if key is _MERGE:
            return top.path, _SILENT if top.mode == _SILENT else _NO_LINES
        return top.path + (key,), top.mode

    def _scalar(self, event, line: int, path: PathT, mode: int, top: _Frame | None) -> tuple[Any, bool]:
        """The scalar's value, and whether it is a `<<` merge key."""
        tag, text = event.tag, event.value
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, text, event.implicit)
        if mode == _RECORD:
            self.lines[path] = line
        # Times stay text: "12:30" is a clock time to us, not YAML 1.1's base-60 integer 750,
        # and timestamps are parsed by the world loader, which wants their offset.
        if tag == _STR or tag == _TIMESTAMP or (tag == _INT and ":" in text):
            value: Any = text
        elif tag == _MERGE_TAG and top is not None and top.key is _NEXT_IS_KEY and isinstance(top.value, dict):
            return None, True
        else:
            node = yaml.ScalarNode(tag, text, event.start_mark, event.end_mark, event.style)
            try:
                value = self.builder.construct_object(node, deep=True)
            except (yaml.YAMLError, ValueError, OverflowError) as e:
                why = "a number with too many digits" if "digits" in str(e) else " ".join(str(e).split())
                self._problem(line, path, f"bad value: {why}", mode)
                value = None
            finally:
                self.builder.constructed_objects.clear()
        if event.anchor is not None:
            self._new_anchor(event.anchor, event.start_mark)
            self.anchors[event.anchor] = (value, 1, line, path)
        return value, False

    def _alias(self, name: str, line: int, path: PathT, mode: int) -> tuple[Any, int]:
        if name in self.open_anchors:
            self._count(1, line, path)
            self._problem(line, path, f"*{name} is inside the value it names", mode)
            return None, 1
        if name not in self.anchors:
            raise _syntax(f"found undefined alias {name!r}", line)
        value, size, _, anchor_path = self.anchors[name]
        self._count(size, line, path)
        if mode == _RECORD:
            self.lines[path] = line
            if isinstance(value, (dict, list)) and anchor_path != path:
                self.links[path] = anchor_path
        return value, size

    def _open_anchor(self, event) -> str | None:
        if event.anchor is not None:
            self._new_anchor(event.anchor, event.start_mark)
            self.open_anchors.add(event.anchor)
        return event.anchor

    def _new_anchor(self, name: str, mark) -> None:
        if name in self.anchors or name in self.open_anchors:
            first = f"line {self.anchors[name][2]}" if name in self.anchors else "a value around it"
            raise _syntax(f"anchor &{name} is defined twice (first at {first})", mark.line + 1)

    def _fill(self, top: _Frame, value: Any, size: int, line: int, merge: bool) -> None:
        """Put a finished node into the list or mapping being read, as an item, a key or a value."""
        if isinstance(top.value, list):
            top.value.append(value)
        elif top.key is _NEXT_IS_KEY:
            self._take_key(top, value, line, merge)
            return
        elif top.key is _DROP:
            top.key = _NEXT_IS_KEY
            return
        elif top.key is _MERGE:
            sources = [value] if isinstance(value, dict) else value
            if isinstance(sources, list) and all(isinstance(s, dict) for s in sources):
                top.merges.extend(sources)
            else:
                message = "bad merge key: << takes a mapping or a list of mappings"
                self._problem(top.merge_line, top.path, message, top.mode)
            top.key = _NEXT_IS_KEY
        else:
            top.value[top.key] = value
            top.key = _NEXT_IS_KEY
        top.size += size

    def _take_key(self, top: _Frame, key: Any, line: int, merge: bool) -> None:
        if merge:
            top.key, top.merge_line = _MERGE, line
        elif not isinstance(key, (str, int, float, bool)):
            self._problem(line, top.path, "keys must be plain scalars", top.mode)
            top.key = _DROP
        elif str(key) in top.value:
            self._problem(line, top.path + (str(key),), "duplicate key", top.mode)
            top.key = _DROP
        else:
            top.key = str(key)

    def _close(self, done: _Frame) -> list | dict:
        value = done.value
        for source in done.merges:  # keys written here win, then the first source that has one
            for k, v in source.items():
                if k not in value:
                    value[k] = v
                    if done.mode == _RECORD:
                        self.lines[done.path + (k,)] = done.merge_line
        if done.anchor is not None:
            self.open_anchors.discard(done.anchor)
            self.anchors[done.anchor] = (value, done.size, done.line, done.path)
        return value

    def _skip(self) -> None:
        """Read past the rest of a collection nested too deeply to keep."""
        level = 1
        while level:
            event = self.loader.get_event()
            self._count(1, event.start_mark.line + 1, ())
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                level += 1
            elif isinstance(event, _ENDS):
                level -= 1


def _syntax(message: str, line: int) -> yaml.MarkedYAMLError:
    return yaml.composer.ComposerError(None, None, message, yaml.Mark("", 0, line - 1, 0, None, None))


# --- the JSON Schema subset ----------------------------------------------------------------

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    # Numbers are finite: JSON has no .inf or .nan, and no field of ours can take them.
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and math.isfinite(v)),
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
    if isinstance(v, float) and not math.isfinite(v):
        return ".nan" if math.isnan(v) else (".inf" if v > 0 else "-.inf")  # as YAML spells them
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, int) and v.bit_length() > 128:  # str() of a huge int is slow, or refused
        return f"a number of about {int(v.bit_length() * 0.30103) + 1} digits"
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
            if isinstance(value, float) and not math.isfinite(value) and "number" in tlist:
                want = "a finite number"
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
        elif len(value) > schema.get("maxLength", len(value)):
            n = schema["maxLength"]
            problems.append(doc.problem(path, f"expected at most {n} characters, got {len(value):,}"))
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
