"""Per-layer counting rules: a registry keyed by layer type, resolved along the type's MRO.

A rule is a pure function ``rule(spec, in_shapes) -> LayerCounts`` returning every count of one
layer together as sympy expressions: its output shape, weights split into kernel weights, bias
and normalisation affine, outputs, and connections under each connection convention.  Which of
them a total uses is decided afterwards by a :class:`~analysis.conventions.Convention`.

Keys are strings: ``"module.QualName"`` of a layer class (``"torch.nn.modules.conv.Conv2d"``), or
a function key (``"torch.cat"``, ``"operator.add"``, ``"Tensor.flatten"``).  Nothing here imports
torch; classes passed to :func:`register_rule` are turned into their key.

>>> from analysis.rules import LayerSpec, apply_rule
>>> spec = LayerSpec("conv", "torch.nn.modules.conv.Conv2d", ("torch.nn.modules.conv.Conv2d",),
...     dict(in_channels=1, out_channels=8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1),
...          dilation=(1, 1), groups=1, has_bias=True))
>>> c = apply_rule(spec, [(1, 32, 32)])
>>> c.out_shape, c.weight, c.bias, c.connections["include"]
((8, 32, 32), 72, 8, 73728)
"""
from __future__ import annotations

from . import layers as _layers  # noqa: F401  (registers the module rules)
from .core import (CATEGORIES, RULES, LayerCounts, LayerSpec, Rule, RuleRegistry, Shape, apply_rule, prod,
                   register_rule, type_key)
from .layers import (adaptive_pool_rule_factory, conv_rule_factory, elementwise_rule, flatten_rule, linear_rule,
                     norm_rule_factory, pool_rule_factory, transposed_rule_factory, upsample_rule)
from . import ops as _ops  # noqa: F401,E402  (registers the operator rules)
from .taps import exact_taps_1d, exact_transposed_taps_1d

__all__ = ["CATEGORIES", "RULES", "LayerCounts", "LayerSpec", "Rule", "RuleRegistry", "Shape",
           "adaptive_pool_rule_factory", "apply_rule", "conv_rule_factory", "elementwise_rule", "exact_taps_1d",
           "exact_transposed_taps_1d", "flatten_rule", "linear_rule", "norm_rule_factory", "pool_rule_factory", "prod",
           "register_rule", "transposed_rule_factory", "type_key", "upsample_rule"]
