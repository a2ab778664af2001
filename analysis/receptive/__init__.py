"""Receptive fields: exact per-layer window sizes, jumps and offsets, symbolic in k, checked on the real model.

Conventions (per spatial axis; H and W are handled separately and are equal for square kernels):

* Positions are integer indices; input pixel ``0`` is the first real pixel (padding is negative or
  past the end).  The *window* of an output unit is the interval ``[lo, hi]`` of input pixels it
  depends on; its **size** is ``hi - lo + 1`` (the extent; every zoo window is also gap-free).
* Windows are computed on an unbounded line, so they are the *interior* windows, not clipped by
  the image border (units near the border see a clipped part of them).
* The **jump** is how many input pixels the window moves per output step (``1/2`` after one
  stride-2 transposed conv or x2 nearest upsampling).  The **start** is the centre of output
  unit 0's window, ``(lo(0) + hi(0)) / 2``; for a plain conv chain it follows the usual recurrence
  ``start_out = start_in + ((d(K-1))/2 - p) * jump_in``.
* Window sizes can depend on the position: a stride-2 transposed conv with odd k gives outputs
  fed by ``(k+1)/2`` and by ``(k-1)/2`` inputs in turn, and a conv after x2 nearest upsampling
  reads either 1 or 2 coarse units at its edges.  The windows are periodic in the position with
  the layer's **period**; ``size`` is the largest window over positions, ``min_size`` the smallest,
  and ``varies`` says whether they differ (for some allowed k).
* Merges (``torch.cat``, addition, ...) take, position by position, the union of the branches'
  windows; when the branches reach a merge with different jumps the union drifts with the position,
  which is reported (``drift``) and no size is claimed after it.
* Normalisation layers count as identity: their statistics (fixed in eval mode for BatchNorm) are
  not part of the receptive field.  Activations and dropout are identity.
* Global layers (adaptive pooling to 1, flatten, view, a linear layer on a flattened tensor) read
  every position: their size is the whole input (``H``, ``W``, or, for a numeric input size and
  kernel, the exact extent of the input rows actually read).  ``last_spatial`` names the last layer
  that still has positions.

The symbolic answer is exact: the kernel is split into residue classes ``k = M*t + c`` in which every
floor is affine in ``t``, the windows are propagated exactly per class, and the classes are joined
into one formula (with ``Mod(k, m)`` where the answer depends on k mod m).  It is cross-checked against
a direct enumeration at several kernels, and :func:`verify_receptive_field` measures it on the real
model: a *connectivity copy* (max pooling -> average pooling, activations and normalisation ->
identity, every weight 1, float64) is back-propagated from single output units at many positions,
and the non-zero input gradient is the unit's support.

Limits: windows are per axis, so a unit's support is the box of its axis windows.  That is exact
unless a transposed conv has a kernel smaller than its stride (some units read nothing) *and* feeds
a merge: there ``min_size`` may be overstated (the layer says so in its notes).  Upsampling must be
nearest with an integer factor; adaptive pooling must be to 1 (global) or None.

>>> from analysis import receptive_field
>>> rf = receptive_field("conv_transpose")
>>> rf.size, rf.varies
((7*k - 6, 7*k - 6), True)
>>> rf.min_size[0]                      # k = 1 leaves every other output of block3.0 reading nothing
Piecewise((0, Eq(k, 1)), (7*k - 10, True))
>>> receptive_field("pool_upsample", kernel=3).size
(26, 26)
"""
from __future__ import annotations

from .fields import receptive_field
from .measure import (MeasuredLayer, RFCheck, RFCheckRow, RFMeasurement, connectivity_copy, connectivity_substitutes,
                      measure_receptive_field, verify_receptive_field)
from .result import LayerRF, ReceptiveField

__all__ = ["LayerRF", "MeasuredLayer", "RFCheck", "RFCheckRow", "RFMeasurement", "ReceptiveField",
           "connectivity_copy", "connectivity_substitutes", "measure_receptive_field", "receptive_field",
           "verify_receptive_field"]
