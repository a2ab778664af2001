"""The one error type of archcount, carrying context (model, layer path, argument, shapes)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence


class ArchcountError(ValueError):
    """A user-facing error that names what is at fault.

    Every field is optional; whatever is given is rendered into the message.

    >>> str(ArchcountError("must be positive", argument="kernel", model="unet"))
    'unet: argument kernel: must be positive'
    """

    def __init__(
        self,
        reason: str,
        *,
        model: str | None = None,
        layer: str | None = None,
        argument: str | None = None,
        shapes: Mapping[str, Any] | Sequence[Any] | None = None,
        hint: str | None = None,
    ) -> None:
        self.reason = reason
        self.model = model
        self.layer = layer
        self.argument = argument
        self.shapes = shapes
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        parts: list[str] = []
        if self.model:
            parts.append(f"{self.model}:")
        if self.layer:
            parts.append(f"layer {self.layer}:")
        if self.argument:
            parts.append(f"argument {self.argument}:")
        msg = " ".join(parts + [self.reason])
        if self.shapes:
            if isinstance(self.shapes, Mapping):
                shp = ", ".join(f"{k}={_fmt_shape(v)}" for k, v in self.shapes.items())
            else:
                shp = ", ".join(_fmt_shape(v) for v in self.shapes)
            msg += f" (shapes: {shp})"
        if self.hint:
            msg += f". {self.hint}"
        return msg

    def with_context(self, **ctx: Any) -> "ArchcountError":
        """Return a copy with missing context fields filled in."""
        fields = dict(model=self.model, layer=self.layer, argument=self.argument,
                      shapes=self.shapes, hint=self.hint)
        for key, value in ctx.items():
            if fields.get(key) is None:
                fields[key] = value
        return ArchcountError(self.reason, **fields)


def _fmt_shape(shape: Any) -> str:
    if isinstance(shape, (tuple, list)):
        return "[" + ", ".join(str(s) for s in shape) + "]"
    return str(shape)


def require_positive_int(value: Any, argument: str, *, minimum: int = 1, model: str | None = None) -> int:
    """Validate an integer argument (bools are rejected) and return it."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numbers
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                value = int(value)
            else:
                raise TypeError
        except TypeError:
            raise ArchcountError(f"must be an integer >= {minimum}, got {value!r}",
                                 argument=argument, model=model) from None
    if value < minimum:
        raise ArchcountError(f"must be an integer >= {minimum}, got {value}", argument=argument, model=model)
    return value
