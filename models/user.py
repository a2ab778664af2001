"""The user's own model on the command line: ``path/to/file.py:NAME`` or ``package.module:NAME``.

**This imports and runs the user's code** (the file's top level, then the class or factory), as
``python file.py`` would: only point it at code you trust.

``NAME`` is an ``nn.Module`` class, a factory (a function returning a module) or an instance;
a dotted name reaches inside (``file.py:Zoo.resnet18``).  Classes and factories are returned as
they are, so that counting can lift their hyperparameters (``kernel``, ``num_filters``, ...) like
the zoo's; ``hparams`` given on the command line are passed to them.

>>> import tempfile, pathlib
>>> src = pathlib.Path(tempfile.mkdtemp()) / "net.py"
>>> _ = src.write_text("import torch.nn as nn\\nclass Net(nn.Module):\\n    def __init__(self):\\n"
...                    "        super().__init__(); self.c = nn.Conv2d(3, 8, 3)\\n    def forward(self, x):\\n"
...                    "        return self.c(x)\\n")
>>> name, model = resolve_model(f"{src}:Net")
>>> name, model.__name__
('Net', 'Net')
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from analysis.errors import ArchcountError

#: Characters that make an argument a user model rather than a zoo name.
_MARKERS = (":", "/", os.sep, ".py")


def is_user_model(text: str) -> bool:
    """Whether ``text`` names user code (``file.py:NAME``, ``pkg.mod:NAME``) rather than a zoo model."""
    return isinstance(text, str) and any(m in text for m in _MARKERS)


def resolve_model(text: str, argument: str = "--model") -> tuple[str, Any]:
    """``(display name, model)`` for a zoo name (returned as the name itself) or user code.

    The model is a class, factory or ``nn.Module`` instance from the user's file or package.
    """
    if not isinstance(text, str) or not text.strip():
        raise ArchcountError("expected a zoo model name, path/to/file.py:NAME or package.module:NAME",
                             argument=argument)
    text = text.strip()
    if not is_user_model(text):
        import models as zoo
        zoo.spec(text)  # a clear error listing the zoo when unknown
        return text, text
    where, sep, name = text.rpartition(":")
    if not sep or not where or not name:
        raise ArchcountError(f"{text!r}: give the class or factory after a colon, e.g. {text.rstrip(':')}:Net",
                             argument=argument)
    module = _import(where, argument)
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            raise ArchcountError(f"{where} has no {name!r}" + _candidates(module), argument=argument)
        obj = getattr(obj, part)
    return name.rsplit(".", 1)[-1], _check(obj, f"{where}:{name}", argument)


def _import(where: str, argument: str) -> Any:
    path = Path(where).expanduser()
    is_file = where.endswith(".py") or os.sep in where or "/" in where
    try:
        if is_file:
            if not path.exists():
                raise ArchcountError(f"no such file: {path}", argument=argument)
            if not path.is_file():
                raise ArchcountError(f"{path} is not a file", argument=argument)
            mod_name = f"_archcount_user_{abs(hash(str(path.resolve())))}"
            spec = importlib.util.spec_from_file_location(mod_name, path)
            if spec is None or spec.loader is None:
                raise ArchcountError(f"cannot import {path} as Python", argument=argument)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            folder = str(path.resolve().parent)
            added = folder not in sys.path
            if added:
                sys.path.insert(0, folder)  # the file may import its neighbours
            try:
                spec.loader.exec_module(module)
            finally:
                if added:
                    sys.path.remove(folder)
            return module
        return importlib.import_module(where)
    except ArchcountError:
        raise
    except ModuleNotFoundError as exc:
        if not is_file and exc.name and where.startswith(exc.name):
            raise ArchcountError(f"no module named {where!r} (not a file either)", argument=argument) from None
        raise _user_error(exc, where, argument) from None
    except SyntaxError as exc:
        raise ArchcountError(f"{exc.filename}:{exc.lineno}: syntax error: {exc.msg}", argument=argument) from None
    except BaseException as exc:  # noqa: BLE001 - the user's code raised while importing
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not isinstance(exc, SystemExit):
            raise
        raise _user_error(exc, where, argument) from None


def _user_error(exc: BaseException, where: str, argument: str) -> ArchcountError:
    frames = traceback.extract_tb(exc.__traceback__)
    here = os.path.dirname(os.path.abspath(__file__))
    line = ""
    for fs in reversed(frames):
        if not os.path.abspath(fs.filename).startswith(here) and "importlib" not in fs.filename:
            line = f" at {fs.filename}:{fs.lineno}"
            break
    msg = str(exc).splitlines()[0] if str(exc).strip() else ""
    return ArchcountError(f"importing {where} raised {type(exc).__name__}{': ' + msg if msg else ''}{line}",
                          argument=argument)


def _check(obj: Any, label: str, argument: str) -> Any:
    import inspect

    import torch.nn as nn
    if isinstance(obj, nn.Module):
        return obj
    if inspect.isclass(obj):
        if not issubclass(obj, nn.Module):
            raise ArchcountError(f"{label} is a class but not an nn.Module", argument=argument)
        return obj
    if callable(obj):
        return obj
    raise ArchcountError(f"{label} is a {type(obj).__name__}, not an nn.Module class, factory or instance",
                         argument=argument)


def _candidates(module: Any) -> str:
    import inspect

    import torch.nn as nn
    names = []
    for key, value in vars(module).items():
        if key.startswith("_"):
            continue
        if inspect.isclass(value) and issubclass(value, nn.Module) and value.__module__ == module.__name__:
            names.append(key)
        elif isinstance(value, nn.Module):
            names.append(key)
        elif inspect.isfunction(value) and value.__module__ == module.__name__:
            names.append(key)
    return f"; it defines {', '.join(sorted(names)[:12])}" if names else "; it defines no nn.Module class or factory"


def build_user(model: Any, hparams: dict[str, Any], label: str) -> Any:
    """A concrete module from a class or factory with ``hparams`` (for commands that need one)."""
    import torch.nn as nn
    if isinstance(model, nn.Module):
        if hparams:
            raise ArchcountError("hyperparameters cannot be set on a model instance; name its class or factory",
                                 argument="--hp", model=label)
        return model
    try:
        out = model(**hparams)
    except TypeError as exc:
        raise ArchcountError(f"building it failed: {exc}", model=label,
                             hint="pass its arguments with --hp NAME=VALUE") from None
    except ArchcountError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ArchcountError(f"building it raised {type(exc).__name__}: {exc}", model=label) from None
    if not isinstance(out, nn.Module):
        raise ArchcountError(f"calling it returned a {type(out).__name__}, not an nn.Module", model=label)
    return out


__all__ = ["build_user", "is_user_model", "resolve_model"]
