"""The symbols of archcount, declared once as positive integers.

>>> from analysis.symbols import NIC, NF, k
>>> (k**2 * NIC * NF).is_positive
True
"""
from __future__ import annotations

import sympy as sp

NIC = sp.Symbol("NIC", positive=True, integer=True)  #: input channels
NF = sp.Symbol("NF", positive=True, integer=True)    #: number of filters
NC = sp.Symbol("NC", positive=True, integer=True)    #: number of colours (output classes)
k = sp.Symbol("k", positive=True, integer=True)      #: kernel size
H = sp.Symbol("H", positive=True, integer=True)      #: input height
W = sp.Symbol("W", positive=True, integer=True)      #: input width

#: The zoo hyperparameter each standard symbol stands for.
HPARAM_SYMBOLS: dict[str, sp.Symbol] = {
    "kernel": k,
    "num_in_channels": NIC,
    "num_filters": NF,
    "num_colours": NC,
}

#: Symbols by name, with the aliases accepted in user-written formulas.
ALIASES: dict[str, sp.Symbol] = {
    "NIC": NIC, "N_IC": NIC, "N_{IC}": NIC, "Nic": NIC, "nic": NIC, "C_in": NIC, "Cin": NIC,
    "NF": NF, "N_F": NF, "N_{F}": NF, "Nf": NF, "nf": NF,
    "NC": NC, "N_C": NC, "N_{C}": NC, "Nc": NC, "nc": NC,
    "k": k, "K": k,
    "H": H, "W": W,
}

STANDARD: tuple[sp.Symbol, ...] = (NIC, NF, NC, k, H, W)


def positive_int_symbol(name: str) -> sp.Symbol:
    """A new positive-integer symbol (for user hyperparameters such as N)."""
    return sp.Symbol(name, positive=True, integer=True)


def by_name(name: str) -> sp.Symbol:
    """Look up a standard symbol or alias by name.

    >>> by_name("N_F")
    NF
    """
    try:
        return ALIASES[name]
    except KeyError:
        from .errors import ArchcountError
        raise ArchcountError(f"unknown symbol {name!r}; known: NIC, NF, NC, k, H, W") from None
