"""Read answer files and keys safely: YAML without aliases, duplicate keys refused, long numbers and
deep nesting kept as markers (so one bad entry fails alone), size limits, clear errors naming the path.

>>> data = load_text("- {id: a, formula: 9 NIC NF}", "answers.yaml")
>>> data[0]["formula"]
'9 NIC NF'
>>> load_text("a: &x 1\\nb: *x", "bad.yaml")
Traceback (most recent call last):
    ...
analysis.errors.ArchcountError: argument bad.yaml: line 1: YAML anchors (&x) are not allowed in answer files
"""
from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

from ..errors import ArchcountError

MAX_FILE_BYTES = 20 * 1024 * 1024   #: largest answers or key file
MAX_NESTING = 32                    #: deepest YAML/JSON structure kept (deeper: a TooDeep marker)
MAX_DIGITS = 40                     #: longest integer kept as a number (longer: a LongNumber marker)


class LongNumber(str):
    """An integer literal with more than :data:`MAX_DIGITS` digits (kept as its text)."""

    def describe(self) -> str:
        return f"an integer of {len(self.lstrip('+-'))} digits"


class TooDeep(str):
    """A value nested more than :data:`MAX_NESTING` levels deep (not built)."""

    def describe(self) -> str:
        return f"a structure nested more than {MAX_NESTING} levels deep"


class Record(dict):
    """A mapping read from a file; ``duplicates`` lists keys given twice and ``line`` where it starts."""

    duplicates: list[str]
    line: int | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.duplicates = []
        self.line = None


def read_file(path: str | os.PathLike, argument: str = "file", limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a regular file, at most ``limit`` bytes; errors name the path and the reason."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ArchcountError(f"no such file: {path}", argument=argument) from None
    except OSError as exc:
        raise ArchcountError(f"cannot read {path}: {exc.strerror or exc}", argument=argument) from None
    if stat.S_ISDIR(st.st_mode):
        raise ArchcountError(f"{path} is a directory, not a file", argument=argument)
    if not stat.S_ISREG(st.st_mode):
        raise ArchcountError(f"{path} is not a regular file (a device, pipe or socket)", argument=argument)
    if st.st_size > limit:
        raise ArchcountError(f"{path} is {st.st_size:,} bytes; at most {limit:,} are read", argument=argument)
    try:
        with open(p, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise ArchcountError(f"cannot read {path}: {exc.strerror or exc}", argument=argument) from None
    if len(data) > limit:
        raise ArchcountError(f"{path} has more than {limit:,} bytes", argument=argument)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArchcountError(f"{path} is not UTF-8 text (byte {exc.start})", argument=argument) from None


def _yaml_loader() -> type:
    import yaml
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    class Loader(yaml.SafeLoader):
        """SafeLoader without aliases; deep structures and long integers become markers."""

        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise _YamlRefused(f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                                   f"allowed in answer files")
            event = self.peek_event()
            if getattr(event, "anchor", None):
                raise _YamlRefused(f"line {event.start_mark.line + 1}: YAML anchors (&{event.anchor}) are not "
                                   f"allowed in answer files")
            if self.depth >= MAX_NESTING and self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
                start = self.get_event()
                level = 1
                while level:
                    ev = self.get_event()
                    if isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                        level += 1
                    elif isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                        level -= 1
                return ScalarNode("tag:archcount,toodeep", "", start.start_mark, ev.end_mark)
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if not isinstance(node, MappingNode):  # pragma: no cover - the constructor checks first
                return super().construct_mapping(node, deep=deep)
            out = Record()
            out.line = node.start_mark.line + 1
            for key_node, value_node in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise _YamlRefused(f"line {key_node.start_mark.line + 1}: a mapping key must be text") from None
                if key in out:
                    out.duplicates.append(str(key))
                    continue
                out[key] = self.construct_object(value_node, deep=True)
            return out

        def construct_yaml_int(self, node: Any) -> Any:
            text = str(node.value)
            if sum(ch.isdigit() for ch in text) > MAX_DIGITS:
                return LongNumber(text)
            return super().construct_yaml_int(node)

    Loader.add_constructor("tag:yaml.org,2002:map", lambda self, node: self.construct_mapping(node))
    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    Loader.add_constructor("tag:archcount,toodeep", lambda self, node: TooDeep("..."))
    del SequenceNode
    return Loader


class _YamlRefused(Exception):
    pass


_TOO_DEEP = "__archcount_too_deep__"


def _cut_deep(text: str, quotes: str) -> str:
    """Replace every bracketed flow structure nested deeper than :data:`MAX_NESTING` by a marker.

    YAML's and JSON's parsers slow down quadratically (or recurse) on deep flow nesting; this
    linear pass keeps a file with one such value readable, so that only its entry fails.
    """
    depth = naive = 0
    for ch in text:
        if ch in "[{":
            naive += 1
            depth = max(depth, naive)
        elif ch in "]}":
            naive -= 1
    if depth <= MAX_NESTING:
        return text
    out: list[str] = []
    level = 0
    quote = ""
    cut_from: int | None = None
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in quotes:
            quote = ch
        elif ch == "#" and '"' in quotes and "'" in quotes and (i == 0 or text[i - 1] in " \t\n"):
            j = text.find("\n", i)
            j = n if j < 0 else j
            if cut_from is None:
                out.append(text[i:j])
            i = j
            continue
        elif ch in "[{":
            level += 1
            if level == MAX_NESTING + 1 and cut_from is None:
                cut_from = i
        elif ch in "]}":
            level -= 1
            if level == MAX_NESTING and cut_from is not None:
                out.append('"' + _TOO_DEEP + '"')
                cut_from = None
                i += 1
                continue
        if cut_from is None:
            out.append(ch)
        i += 1
    if cut_from is not None:   # unbalanced: leave it to the parser to report
        return text
    return "".join(out)


def _mark(value: Any) -> Any:
    """The marker strings back as :class:`TooDeep` values."""
    if isinstance(value, str) and value == _TOO_DEEP:
        return TooDeep("...")
    if isinstance(value, Record):
        out = Record((k, _mark(v)) for k, v in value.items())
        out.duplicates, out.line = value.duplicates, value.line
        return out
    if isinstance(value, list):
        return [_mark(v) for v in value]
    return value


def load_text(text: str, name: str, fmt: str | None = None, argument: str | None = None) -> Any:
    """Parse ``text`` (YAML, JSON or CSV by ``fmt`` or by the suffix of ``name``); errors name ``argument``."""
    fmt = fmt or _format(name)
    try:
        if fmt == "csv":
            return _load_csv(text, argument or name)
        if fmt == "json":
            return _mark(_load_json(_cut_deep(text, '"'), argument or name))
        return _mark(_load_yaml(_cut_deep(text, "\"'"), argument or name))
    except ArchcountError as exc:
        if argument is None or name in exc.reason:
            raise
        raise ArchcountError(f"{name}: {exc.reason}", argument=exc.argument) from None


def _load_yaml(text: str, argument: str) -> Any:
    import yaml
    try:
        return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except _YamlRefused as exc:
        raise ArchcountError(str(exc), argument=argument) from None
    except yaml.YAMLError as exc:
        raise ArchcountError(f"not valid YAML: {' '.join(str(exc).split())}", argument=argument) from None
    except RecursionError:
        raise ArchcountError("nested too deeply", argument=argument) from None


def _format(name: str) -> str:
    suffix = Path(str(name)).suffix.lower()
    return {".json": "json", ".csv": "csv", ".tsv": "csv"}.get(suffix, "yaml")


def _load_json(text: str, argument: str) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> Record:
        out = Record()
        for key, value in items:
            if key in out:
                out.duplicates.append(key)
                continue
            out[key] = value
        return out

    def integer(s: str) -> Any:
        return LongNumber(s) if sum(ch.isdigit() for ch in s) > MAX_DIGITS else int(s)

    def constant(s: str) -> Any:
        raise ArchcountError(f"{s} is not allowed in JSON answers", argument=argument)
    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_int=integer, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise ArchcountError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                             argument=argument) from None
    except RecursionError:
        raise ArchcountError("nested too deeply", argument=argument) from None
    return _cap_depth(data, 0)


def _cap_depth(value: Any, depth: int) -> Any:
    if isinstance(value, (dict, list)) and depth >= MAX_NESTING:
        return TooDeep("...")
    if isinstance(value, Record):
        out = Record((k, _cap_depth(v, depth + 1)) for k, v in value.items())
        out.duplicates = value.duplicates
        return out
    if isinstance(value, list):
        return [_cap_depth(v, depth + 1) for v in value]
    return value


def _load_csv(text: str, argument: str) -> list[Record]:
    old = csv.field_size_limit()
    csv.field_size_limit(100_000)
    try:
        sample = text[:4096]
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t") if sample.strip() else csv.excel
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(io.StringIO(text), dialect)
        rows = list(reader)
    except csv.Error as exc:
        raise ArchcountError(f"not valid CSV: {exc}", argument=argument) from None
    finally:
        csv.field_size_limit(old)
    if not rows:
        raise ArchcountError("the CSV file is empty", argument=argument)
    head = [h.strip() for h in rows[0]]
    if len(set(head)) != len(head):
        dup = next(h for h in head if head.count(h) > 1)
        raise ArchcountError(f"column {dup!r} appears twice in the header", argument=argument)
    out = []
    for i, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        rec = Record(zip(head, (cell.strip() for cell in row)))
        rec.line = i
        if len(row) > len(head):
            rec.duplicates.append(f"(line {i} has {len(row)} cells, the header {len(head)})")
        out.append(rec)
    return out


def load_file(path: str | os.PathLike, argument: str = "file", fmt: str | None = None) -> Any:
    """:func:`read_file` then :func:`load_text`."""
    text = read_file(path, argument)
    return load_text(text, str(path), fmt, argument=argument)


__all__ = ["LongNumber", "MAX_DIGITS", "MAX_FILE_BYTES", "MAX_NESTING", "Record", "TooDeep", "load_file",
           "load_text", "read_file"]
