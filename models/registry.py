"""An explicit model registry: ``build(name, **hparams)``, ``available()`` and a ``register`` decorator."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from analysis.errors import ArchcountError

#: The hyperparameters every zoo model takes, with their symbol names.
STANDARD_HPARAMS = ("kernel", "num_in_channels", "num_filters", "num_colours")


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model."""

    name: str
    factory: Callable[..., Any]
    description: str
    defaults: Mapping[str, Any]
    task: str = "colourization"          #: "colourization" (per-pixel classes) or "classification"
    min_size: int = 1                    #: smallest input height/width the model runs on
    size_multiple: int = 1               #: input height/width must be a multiple of this
    fixed_size: tuple[int, int] | None = None  #: a default input size for models with a fixed one
    max_size: int | None = None          #: largest input height/width (fixed-size models)
    hparam_docs: Mapping[str, str] = field(default_factory=dict)

    def hparams(self, **overrides: Any) -> dict[str, Any]:
        """The defaults with ``overrides`` applied; unknown names are an error."""
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise ArchcountError(
                f"unknown hyperparameter(s) {', '.join(unknown)}; this model takes "
                f"{', '.join(self.defaults)}", model=self.name, argument=unknown[0])
        merged = dict(self.defaults)
        merged.update(overrides)
        return merged

    def valid_size(self, size: int) -> bool:
        return (size >= self.min_size and size % self.size_multiple == 0
                and (self.max_size is None or size <= self.max_size))

    def size_rule(self) -> str:
        """The input sizes the model accepts, in words."""
        rule = f">= {self.min_size}"
        if self.max_size is not None:
            rule = f"{self.min_size}..{self.max_size}"
        if self.size_multiple > 1:
            rule += f" and a multiple of {self.size_multiple}"
        return rule


class ModelRegistry:
    """A registry of model factories.

    Nothing is registered by importing a module: the zoo is added by an explicit
    call (``models.zoo.register_zoo(registry)``), and users add their own with
    :meth:`register`.

    >>> reg = ModelRegistry()
    >>> @reg.register("tiny", description="one conv", defaults={"kernel": 3, "num_in_channels": 1,
    ...               "num_filters": 4, "num_colours": 2})
    ... def tiny(kernel, num_in_channels, num_filters, num_colours):
    ...     import torch.nn as nn
    ...     return nn.Conv2d(num_in_channels, num_colours, kernel, padding=kernel // 2)
    >>> reg.available()
    ['tiny']
    >>> reg.build("tiny", num_colours=3).out_channels
    3
    """

    def __init__(self) -> None:
        self._specs: dict[str, ModelSpec] = {}

    def register(self, name: str, *, description: str, defaults: Mapping[str, Any] | None = None,
                 replace: bool = False, **spec_fields: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a class or factory under ``name``.

        ``defaults`` defaults to the factory's keyword defaults.
        """
        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            self.add(name, factory, description=description, defaults=defaults, replace=replace, **spec_fields)
            return factory
        return decorator

    def add(self, name: str, factory: Callable[..., Any], *, description: str,
            defaults: Mapping[str, Any] | None = None, replace: bool = False, **spec_fields: Any) -> ModelSpec:
        if not isinstance(name, str) or not name.strip():
            raise ArchcountError(f"a model name must be a non-empty string, got {name!r}", argument="name")
        if name in self._specs and not replace:
            raise ArchcountError("is already registered; pass replace=True to override", model=name)
        if defaults is None:
            sig = inspect.signature(factory)
            defaults = {p.name: p.default for p in sig.parameters.values()
                        if p.default is not inspect.Parameter.empty}
        spec = ModelSpec(name=name, factory=factory, description=description, defaults=dict(defaults),
                         **spec_fields)
        self._specs[name] = spec
        return spec

    def unregister(self, name: str) -> None:
        self.spec(name)
        del self._specs[name]

    def spec(self, name: str) -> ModelSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise ArchcountError(
                f"unknown model; available: {', '.join(self.available()) or '(none)'}", model=str(name),
                argument="model") from None

    def available(self) -> list[str]:
        """Registered model names, in registration order."""
        return list(self._specs)

    def build(self, name: str, **hparams: Any) -> Any:
        """Build model ``name`` with the defaults overridden by ``hparams``."""
        spec = self.spec(name)
        return spec.factory(**spec.hparams(**hparams))

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)
