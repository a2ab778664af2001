"""Many answers at once (``archcount check --file``, :func:`check_many`): every entry validated on
its own ("entry N: field F must be ..."), the others still checked, and per student the convention
each answer matches, with a flag when a student's answers match only under different conventions.

>>> batch = check_many([
...     {"student": "ana", "model": "pool_upsample", "quantity": "weights",
...      "formula": "k^2 (NIC NF + 4 NF^2 + NF NC + NC^2) + 12 NF + 4 NC"},
...     {"student": "ana", "model": "pool_upsample", "quantity": "connections", "formula": "NF"},
...     {"student": "ana", "model": "unet", "quantity": "weights", "hparams": {"kernel": "three"}}])
>>> [e.verdict for e in batch.entries]
['right (parameters)', 'wrong', 'error']
>>> batch.entries[2].explanation
'entry 3: field formula is missing: give one of formula, shape, padding, scaled'
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..conventions import all_conventions
from ..errors import ArchcountError
from .common import conv_from_label, jsonable, simplest
from .loaders import LongNumber, TooDeep

COMMON_FIELDS = {"id", "name", "note", "notes", "points", "student", "question"}
FIELDS = {
    "formula": {"formula", "model", "quantity", "size", "input_size", "hparams", "kernel", "nic", "nf", "nc",
                "convention", "switches"},
    "shape": {"shape", "layer", "input"},
    "padding": {"padding", "kernel", "stride", "dilation", "transposed", "scale", "output_padding"},
    "scaled": {"scaled", "model", "quantity", "factor", "size", "input_size", "hparams", "kernel", "nic", "nf",
               "nc", "convention", "switches"},
}
REQUIRED = {"formula": ("model", "quantity"), "shape": ("layer", "input"), "padding": ("kernel",),
            "scaled": ("model", "quantity")}
MAX_ENTRIES = 100_000
MAX_TEXT = 2000          #: longest text field


class EntryError(ArchcountError):
    """A batch entry that cannot be checked; names the entry and the field."""


# ============================================================================================ validation

def _describe(value: Any) -> str:
    if isinstance(value, (LongNumber, TooDeep)):
        return value.describe()
    if isinstance(value, str):
        return f"text of {len(value):,} characters" if len(value) > 60 else repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Entry:
    """Typed access to one entry's fields; every failure names the entry and the field."""

    def __init__(self, entry: Mapping[str, Any], index: int) -> None:
        self.entry = entry
        self.index = index

    def fail(self, field: str, what: str) -> EntryError:
        return EntryError(f"entry {self.index}: field {field} {what}", argument=field)

    def must(self, field: str, what: str) -> EntryError:
        return self.fail(field, f"must be {what}, got {_describe(self.entry.get(field))}")

    def text(self, field: str, default: Any = None) -> str | None:
        v = self.entry.get(field, default)
        if v is None:
            return None
        if isinstance(v, bool) or isinstance(v, (TooDeep, LongNumber)) or not isinstance(v, (str, int)):
            raise self.must(field, "text")
        v = str(v)
        if len(v) > MAX_TEXT:
            raise self.fail(field, f"must be at most {MAX_TEXT} characters, got {len(v):,}")
        return v

    def integer(self, field: str, default: Any = None, minimum: int = 1, maximum: int = 10 ** 15,
                symbolic: bool = False) -> Any:
        v = self.entry.get(field, default)
        if v is None:
            return None
        if symbolic and isinstance(v, str) and v.strip() in ("k", "K"):
            return "k"
        if isinstance(v, str) and v.strip().isdigit() and len(v.strip()) <= 20:
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or isinstance(v, LongNumber):
            raise self.must(field, f"an integer from {minimum} to {maximum:,}" + (" (or k)" if symbolic else ""))
        if not minimum <= v <= maximum:
            raise self.fail(field, f"must be an integer from {minimum} to {maximum:,}, got {v}")
        return v

    def boolean(self, field: str, default: bool = False) -> bool:
        v = self.entry.get(field, default)
        if not isinstance(v, bool):
            raise self.must(field, "true or false")
        return v

    def answer(self, field: str) -> Any:
        """A formula or claim: text or a plain number."""
        v = self.entry.get(field)
        if isinstance(v, (TooDeep, LongNumber)):
            raise self.must(field, "text or a number of at most 40 digits")
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise self.must(field, "text or a number")
        if isinstance(v, float) and not math.isfinite(v):
            raise self.must(field, "a finite number")
        if isinstance(v, str) and len(v) > MAX_TEXT:
            raise self.fail(field, f"must be at most {MAX_TEXT} characters, got {len(v):,}")
        return v

    def size(self) -> Any:
        name = "size" if "size" in self.entry else "input_size"
        v = self.entry.get(name)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, str)) or isinstance(v, LongNumber):
            raise self.must(name, "N or HxW")
        return v

    def convention(self) -> Any:
        v = self.entry.get("convention")
        if v is not None and (not isinstance(v, str) or isinstance(v, (TooDeep, LongNumber))):
            raise self.must("convention", "a preset or label such as weighted[bias=true]")
        return v

    def switches(self) -> Any:
        v = self.entry.get("switches")
        if v is None:
            return None
        if isinstance(v, str) and not isinstance(v, (TooDeep, LongNumber)):
            return [v]
        if isinstance(v, list) and all(isinstance(x, str) and not isinstance(x, (TooDeep, LongNumber)) for x in v):
            return v
        if isinstance(v, Mapping) and all(isinstance(x, (str, bool)) for x in v.values()):
            return dict(v)
        raise self.must("switches", "NAME=VALUE text, a list of them or a mapping")

    def hparams(self) -> dict[str, Any]:
        hp: dict[str, Any] = {}
        raw = self.entry.get("hparams")
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise self.must("hparams", "a mapping such as {kernel: 3}")
        pairs = [(str(key), value, "hparams") for key, value in raw.items()]
        pairs += [(name, self.entry[key], key) for key, name in (("kernel", "kernel"), ("nic", "num_in_channels"),
                                                                 ("nf", "num_filters"), ("nc", "num_colours"))
                  if key in self.entry]
        for key, value, field_ in pairs:
            if key in ("kernel", "k") and isinstance(value, str) and value.strip() in ("k", "K"):
                value = "k"
            elif isinstance(value, bool) or not isinstance(value, int) or isinstance(value, LongNumber):
                where = f"hparams.{key}" if field_ == "hparams" else field_
                raise EntryError(f"entry {self.index}: field {where} must be an integer, got {_describe(value)}",
                                 argument=field_)
            if key in hp and hp[key] != value:
                raise EntryError(f"entry {self.index}: field {field_}: {key} given twice ({hp[key]} and {value})",
                                 argument=field_)
            hp[key] = value
        return hp


def entry_kind(entry: Mapping[str, Any], index: int) -> str:
    kinds = [kind for kind in FIELDS if kind in entry]
    if not kinds:
        raise EntryError(f"entry {index}: field formula is missing: give one of formula, shape, padding, scaled",
                         argument="formula")
    if len(kinds) > 1:
        raise EntryError(f"entry {index}: give only one of formula, shape, padding, scaled "
                         f"(got {', '.join(kinds)})", argument=kinds[1])
    return kinds[0]


def check_entry(entry: Any, index: int) -> Any:
    """Check one entry (a mapping); raises :class:`EntryError` naming the entry and the field."""
    from .formula import check
    from .padding import check_padding
    from .scaling import check_scaled
    from .shape import check_shape
    if not isinstance(entry, Mapping):
        raise EntryError(f"entry {index}: must be a mapping of fields, got {_describe(entry)}", argument="entry")
    for key in entry:
        if not isinstance(key, str):
            raise EntryError(f"entry {index}: field names must be text, got {_describe(key)}", argument="entry")
    dups = getattr(entry, "duplicates", [])
    if dups:
        raise EntryError(f"entry {index}: field {dups[0]} is given twice", argument=dups[0])
    kind = entry_kind(entry, index)
    unknown = sorted(set(entry) - FIELDS[kind] - COMMON_FIELDS)
    if unknown:
        raise EntryError(f"entry {index}: field {unknown[0]} is unknown for a {kind} entry; fields: "
                         f"{', '.join(sorted(FIELDS[kind]))}", argument=unknown[0])
    for name in REQUIRED[kind]:
        if entry.get(name) in (None, ""):
            raise EntryError(f"entry {index}: field {name} is missing", argument=name)
    e = _Entry(entry, index)
    for name in ("id", "student", "question"):
        e.text(name)
    try:
        if kind in ("formula", "scaled"):
            model, quantity = e.text("model"), e.text("quantity")
            size, conv, switches, hp = e.size(), e.convention(), e.switches(), e.hparams()
            if kind == "formula":
                return check(e.answer("formula"), model, quantity, input_size=size, convention=conv,
                             switches=switches, **hp)
            return check_scaled(e.answer("scaled"), model, quantity, factor=e.integer("factor", 2, 2, 1024),
                                input_size=size, convention=conv, switches=switches, **hp)
        if kind == "shape":
            return check_shape(e.text("shape"), e.text("layer"), e.text("input"))
        scale = entry.get("scale")
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (str, int, float))
                                  or isinstance(scale, (TooDeep, LongNumber))):
            raise e.must("scale", "a number such as 1/2")
        return check_padding(e.answer("padding"), e.integer("kernel", symbolic=True), e.integer("stride", 1),
                             transposed=e.boolean("transposed"), dilation=e.integer("dilation", 1),
                             output_padding=e.integer("output_padding", None, 0), scale=scale)
    except EntryError:
        raise
    except ArchcountError as exc:
        raise EntryError(f"entry {index}: field {_field_of(exc, entry, kind)}: {exc.reason}",
                         argument=_field_of(exc, entry, kind)) from None
    except RecursionError:
        raise EntryError(f"entry {index}: field {kind}: nested too deeply", argument=kind) from None


def _field_of(exc: ArchcountError, entry: Mapping[str, Any], kind: str) -> str:
    arg = exc.argument or ""
    if arg in entry:
        return arg
    mapped = {"input_size": "size" if "size" in entry else "input_size", "claim": kind, "formula": kind,
              "num_in_channels": "nic", "num_filters": "nf", "num_colours": "nc", "input": "input",
              "switches": "switches", "--set": "switches" if "switches" in entry else "convention",
              "output_padding": "output_padding" if "output_padding" in entry else kind}.get(arg)
    if mapped and (mapped in entry or mapped == kind):
        return mapped
    if arg in ("kernel", "num_in_channels", "num_filters", "num_colours") and "hparams" in entry:
        return "hparams"
    return kind if not arg or arg not in FIELDS[kind] else arg


# ============================================================================================ results

@dataclass(frozen=True)
class EntryResult:
    """One checked entry (``result`` None when it could not be checked: ``error`` says why)."""

    index: int
    id: str
    student: str
    question: str
    kind: str
    what: str
    answer: str
    result: Any = None
    error: str = ""
    field: str = ""

    @property
    def ok(self) -> bool:
        return self.result is not None and bool(self.result.ok)

    @property
    def verdict(self) -> str:
        return "error" if self.result is None else self.result.verdict

    @property
    def explanation(self) -> str:
        if self.result is None:
            return self.error
        return self.result.explanation or ("right" if self.result.ok else "")

    @property
    def quantity(self) -> str:
        return getattr(self.result, "quantity", "") if self.result is not None else ""

    @property
    def matches(self) -> tuple[str, ...]:
        """The conventions under which the answer is right (formula and scaling answers)."""
        r = self.result
        if r is None:
            return ()
        if r.kind == "formula":
            return tuple(r.matches)
        if r.kind == "scaled":
            return tuple(r.holds_under) if r.formula_check is None else tuple(r.formula_check.matches)
        return ()

    @property
    def convention(self) -> str:
        m = self.matches
        return simplest(m) if m else ""

    def to_dict(self) -> dict[str, Any]:
        return {"#": self.index, "id": self.id, "student": self.student, "question": self.question,
                "kind": self.kind, "check": self.what, "answer": self.answer, "verdict": self.verdict,
                "ok": self.ok, "field": self.field or None, "convention": self.convention or None,
                "explanation": self.explanation,
                "result": self.result.to_dict() if self.result is not None else None}


@dataclass(frozen=True)
class AnswerConvention:
    index: int
    question: str
    quantity: str
    convention: str                 #: the simplest convention the answer matches ("" if none)
    matches: tuple[str, ...]

    @property
    def right_somewhere(self) -> bool:
        return bool(self.matches)

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.index, "question": self.question, "quantity": self.quantity,
                "convention": self.convention or None, "matches": len(self.matches)}


@dataclass(frozen=True)
class StudentConventions:
    """The conventions one student's answers match; ``mixed`` when no single one makes them all right."""

    student: str
    answers: tuple[AnswerConvention, ...]
    best: str                       #: the single convention making the most answers right
    best_count: int
    right_somewhere: int            #: answers right under some convention
    mixed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"student": self.student, "answers": [a.to_dict() for a in self.answers], "best": self.best or None,
                "best_count": self.best_count, "right_somewhere": self.right_somewhere, "mixed": self.mixed}


@dataclass(frozen=True)
class BatchResult:
    """Every entry's result, and the conventions per student."""

    entries: tuple[EntryResult, ...]
    students: tuple[StudentConventions, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        n_err = sum(e.result is None for e in self.entries)
        n_ok = sum(e.ok for e in self.entries)
        return {"entries": len(self.entries), "right": n_ok, "wrong": len(self.entries) - n_ok - n_err,
                "errors": n_err, "mixed": sum(s.mixed for s in self.students)}

    def to_dict(self) -> dict[str, Any]:
        return {"entries": [e.to_dict() for e in self.entries], "students": [s.to_dict() for s in self.students],
                "counts": self.counts}


def _answer_text(entry: Any) -> str:
    if not isinstance(entry, Mapping):
        return ""
    for key in FIELDS:
        if key in entry:
            v = entry[key]
            return v.describe() if isinstance(v, (TooDeep, LongNumber)) else str(jsonable(v))
    return ""


def _what(entry: Any) -> str:
    if not isinstance(entry, Mapping):
        return ""
    g = lambda key, default="?": str(jsonable(entry.get(key, default)))[:60]  # noqa: E731
    if "formula" in entry or "scaled" in entry:
        parts = [g("model"), g("quantity")]
        size = entry.get("size", entry.get("input_size"))
        if size is not None:
            parts.append(f"size {str(jsonable(size))[:20]}")
        if "scaled" in entry:
            parts.append(f"input x{g('factor', 2)}")
        return " ".join(parts)
    if "shape" in entry:
        return f"{g('layer')} on {g('input')}"
    if "padding" in entry:
        t = "tconv" if entry.get("transposed") is True else "conv"
        return f"{t} k={g('kernel')} s={g('stride', 1)}"
    return ""


def _ident(entry: Any, key: str) -> str:
    if not isinstance(entry, Mapping):
        return ""
    v = entry.get(key)
    if isinstance(v, (str, int)) and not isinstance(v, (bool, TooDeep, LongNumber)):
        return str(v)[:100]
    return ""


def check_many(entries: Iterable[Any]) -> BatchResult:
    """Check every entry (mappings as in ``check --file``); a bad entry becomes an error row, never an
    exception.  Answers are grouped by ``student`` (else by ``id``) for the conventions per student."""
    if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Iterable):
        raise ArchcountError(f"must be a list of entries (mappings), got {type(entries).__name__}",
                             argument="entries")
    out = []
    for i, entry in enumerate(entries, start=1):
        if i > MAX_ENTRIES:
            raise ArchcountError(f"more than {MAX_ENTRIES:,} entries", argument="entries")
        ident = _ident(entry, "id") or _ident(entry, "name")
        kind = next((k for k in FIELDS if isinstance(entry, Mapping) and k in entry), "")
        base = dict(index=i, id=ident, student=_ident(entry, "student"), question=_ident(entry, "question") or ident,
                    kind=kind or "error", what=_what(entry), answer=_answer_text(entry))
        try:
            result = check_entry(entry, i)
        except ArchcountError as exc:
            out.append(EntryResult(**base, error=exc.reason if isinstance(exc, EntryError) else
                                   f"entry {i}: {exc.reason}", field=exc.argument or ""))
        else:
            out.append(EntryResult(**dict(base, kind=result.kind), result=result))
    return BatchResult(tuple(out), consistency(out))


def consistency(entries: Sequence[EntryResult]) -> tuple[StudentConventions, ...]:
    """Per student (``student`` field, else ``id``): the convention of each formula/scaling answer,
    the single convention that makes the most of them right, and whether they are mixed."""
    groups: dict[str, list[EntryResult]] = {}
    for e in entries:
        if e.result is None or e.result.kind not in ("formula", "scaled"):
            continue
        key = e.student or e.id
        if key:
            groups.setdefault(key, []).append(e)
    order = [c.label for c in all_conventions()]
    rank = {label: i for i, label in enumerate(order)}
    out = []
    for student in sorted(groups):
        items = groups[student]
        answers = tuple(AnswerConvention(e.index, e.question, e.quantity, e.convention, e.matches) for e in items)
        tally: dict[str, int] = {}
        for a in answers:
            for label in a.matches:
                tally[label] = tally.get(label, 0) + 1
        right = sum(a.right_somewhere for a in answers)
        if tally:
            best = min(tally, key=lambda lab: (-tally[lab], rank.get(lab, 999), len(conv_from_label(lab).changed)))
            best_count = tally[best]
        else:
            best, best_count = "", 0
        out.append(StudentConventions(student, answers, best, best_count, right, right >= 2 and best_count < right))
    return tuple(out)


__all__ = ["AnswerConvention", "BatchResult", "EntryError", "EntryResult", "StudentConventions", "check_entry",
           "check_many", "consistency", "entry_kind"]
