r"""The framework behind every nbgrader test cell.

A check runs the student's function on fixed, deterministic inputs, compares the result with
the reference implementation and either prints one friendly line or raises
:class:`Mistake` (an ``AssertionError``) whose message names the mistake when it recognises one.

Rules every check follows:

* inputs come from :func:`fixed_uniform` / :func:`fixed_normal` — a hash of ``arange`` computed
  in float64 on the CPU, identical on every device and torch version (never a seeded RNG stream);
* the student's code runs through :func:`run_student`, which silences warnings (nbgrader gives
  0 points to a test cell that writes to stderr), turns ``NotImplementedError`` into a friendly
  message and refuses calls into the reference implementation (the *shortcut guard*);
* a wrong answer is compared with a list of known mistakes (:func:`compare`) before the generic
  "values differ" message;
* ``forbidden`` lists the reference of the part being graded, not of earlier parts the student's
  function may call (their KL inside their ELBO): a shortcut costs its own part, not every later one.

The comparison helpers are bound at import time, so a student who monkeypatches
``torch.allclose`` after ``import dgm`` does not change what the checks compute.
"""
from __future__ import annotations

import builtins
import contextlib
import inspect
import sys
import warnings
from typing import Callable, Iterable, Mapping

import torch

# Bound once, at import: later monkeypatching of torch/builtins by student code has no effect here.
_allclose = torch.allclose
_isfinite = torch.isfinite
_print = builtins.print
_Tensor = torch.Tensor

__all__ = [
    "Mistake", "ok", "fixed_uniform", "fixed_normal", "run_student", "reference_guard",
    "expect_tensor", "compare", "close", "fmt",
]


class Mistake(AssertionError):
    """Raised by a check; the message is written for the student, ``id`` is stable data.

    The id names the mistake for reports that count mistakes across a class ("wrong-reduction",
    "not-implemented", "reference-call", …); code never inspects the message text.
    """

    def __init__(self, message: str = "", id: str = "wrong-value"):  # noqa: A002 - the mistake's id
        super().__init__(message)
        self.id = id


def ok(message: str) -> None:
    """Print the one friendly line of a passed check (stdout only)."""
    _print(f"\u2714 {message}", file=sys.stdout, flush=True)


# ----------------------------------------------------------------------------- fixed inputs
def fixed_uniform(*shape: int, seed: int = 0, low: float = 0.0, high: float = 1.0,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""Deterministic "random-looking" numbers in [low, high).

    u_i = frac(sin(12.9898·i + 78.233·seed) · 43758.5453), computed in float64 on the CPU,
    so every device and torch version gets exactly the same tensor.
    """
    n = 1
    for s in shape:
        n *= int(s)
    i = torch.arange(n, dtype=torch.float64)
    u = torch.frac(torch.abs(torch.sin(i * 12.9898 + 78.233 * (seed + 1)) * 43758.5453))
    return (low + (high - low) * u).reshape(shape).to(dtype)


def fixed_normal(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""Deterministic standard-normal-looking numbers (Box–Muller on two :func:`fixed_uniform`)."""
    u1 = fixed_uniform(*shape, seed=2 * seed + 1, dtype=torch.float64).clamp_min(1e-12)
    u2 = fixed_uniform(*shape, seed=2 * seed + 2, dtype=torch.float64)
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2 * torch.pi * u2)  # z ~ N(0, 1)
    return z.to(dtype)


# ----------------------------------------------------------------------------- shortcut guard
def _code_objects(objs: Iterable) -> set:
    codes = set()
    for obj in objs:
        if inspect.isclass(obj):
            for attr in vars(obj).values():
                fn = getattr(attr, "__func__", attr)
                if hasattr(fn, "__code__"):
                    codes.add(fn.__code__)
        else:
            fn = getattr(obj, "__func__", obj)
            fn = getattr(fn, "__wrapped__", fn)
            if hasattr(fn, "__code__"):
                codes.add(fn.__code__)
    return codes


def _import_before_watching() -> None:
    r"""Import ``torch._dynamo`` now if nothing has: a profile hook sees every Python call, so an import
    under the watcher runs about twice as slowly, and a student's first ``torch.optim`` optimizer imports
    ``torch._dynamo`` (measured: 1.2 s alone, 2.6 s watched, in every fresh kernel). Every lab trains
    with torch.optim, so this import is paid once per kernel either way."""
    if "torch._dynamo" not in sys.modules:
        import torch._dynamo  # noqa: F401


@contextlib.contextmanager
def reference_guard(forbidden: Iterable):
    r"""Record every call into the ``forbidden`` reference functions/classes while the block runs.

    It watches code objects (``sys.setprofile``), so it also catches a reference imported
    earlier under another name (``from dgm.ae import reconstruction_loss as my_loss``).
    Yields a list that holds the names of the forbidden functions that were entered.
    """
    codes = _code_objects(forbidden)
    hits: list[str] = []
    previous = sys.getprofile()
    if codes:
        _import_before_watching()

    def profiler(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            hits.append(frame.f_code.co_qualname if hasattr(frame.f_code, "co_qualname") else frame.f_code.co_name)
        if callable(previous):  # chain a Python profiler (cProfile's C profiler is not callable)
            previous(frame, event, arg)

    sys.setprofile(profiler if codes else previous)
    try:
        yield hits
    finally:
        sys.setprofile(previous)


def _reject_reference(hits: list[str], name: str) -> None:
    if hits:
        raise Mistake(
            f"`{name}` calls the dgm reference implementation ({hits[0]}). "
            "Write your own implementation — the check compares your code against that reference.",
            id="reference-call",
        )


def run_student(fn: Callable, *args, name: str, forbidden: Iterable = (), **kwargs):
    """Call the student's ``fn(*args, **kwargs)`` the way every check does.

    Warnings are silenced (stderr must stay clean), ``NotImplementedError`` becomes a friendly
    "not done yet" message, other exceptions are reported with the inputs' shapes, and calls
    into ``forbidden`` reference code fail with "write your own implementation".
    """
    if not callable(fn):
        raise Mistake(f"`{name}` should be a function (or module) you defined above, got {type(fn).__name__}.",
                      id="not-callable")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with reference_guard(forbidden) as hits:
            try:
                out = fn(*args, **kwargs)
            except NotImplementedError:
                raise Mistake(
                    f"`{name}` is not implemented yet: replace `raise NotImplementedError` with your code "
                    "and re-run its cell.", id="not-implemented"
                ) from None
            except Mistake:
                raise
            except Exception as err:  # the student's own bug: say where and with what inputs
                raise Mistake(
                    f"`{name}` raised {type(err).__name__}: {err}\n"
                    f"It was called with {describe(args)}. Check the shapes against the docstring.",
                    id="crash",
                ) from err
    _reject_reference(hits, name)
    return out


# ----------------------------------------------------------------------------- comparisons
def describe(args) -> str:
    parts = []
    for a in args:
        if isinstance(a, _Tensor):
            parts.append(f"a {a.dtype} tensor of shape {tuple(a.shape)}")
        elif isinstance(a, torch.nn.Module):
            parts.append(f"a {type(a).__name__} module")
        else:
            parts.append(repr(a) if len(repr(a)) < 40 else type(a).__name__)
    return ", ".join(parts) if parts else "no arguments"


def fmt(t: torch.Tensor, k: int = 4) -> str:
    """A short printout of a tensor's first values."""
    flat = t.detach().reshape(-1)[:k].double().cpu().tolist()
    more = ", …" if t.numel() > k else ""
    return "[" + ", ".join(f"{v:.4g}" for v in flat) + more + "]"


def expect_tensor(out, name: str, shape=None, scalar: bool = False, what: str = "") -> torch.Tensor:
    """Fail with a clear message unless ``out`` is a tensor of the expected shape."""
    if isinstance(out, (tuple, list)) and not scalar and shape is not None and len(out) == 1:
        out = out[0]
    if not isinstance(out, _Tensor):
        hint = " (a Python float loses the graph — return the tensor)" if isinstance(out, float) else ""
        raise Mistake(f"`{name}` should return a torch.Tensor{what}, got {type(out).__name__}{hint}.",
                      id="not-a-tensor")
    if scalar and out.dim() != 0:
        raise Mistake(
            f"`{name}` should return a single number (a 0-dim tensor), got shape {tuple(out.shape)}. "
            "Did you forget to reduce — sum over the pixels and average over the batch?", id="not-scalar"
        )
    if shape is not None and tuple(out.shape) != tuple(shape):
        raise Mistake(f"`{name}` returned shape {tuple(out.shape)}{what}; expected {tuple(shape)}.", id="wrong-shape")
    if out.is_floating_point() and not bool(_isfinite(out.detach()).all()):
        raise Mistake(f"`{name}` returned NaN or inf values{what}: check for log(0) or division by zero.",
                      id="non-finite")
    return out


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """allclose that tolerates dtype/device differences and never raises on shape mismatch."""
    a = a.detach().double().cpu()
    b = b.detach().double().cpu()
    if a.shape != b.shape:
        return False
    return bool(_allclose(a, b, rtol=rtol, atol=atol))


def compare(out: torch.Tensor, expected: torch.Tensor, name: str,
            mistakes: Mapping = (), rtol: float = 1e-4, atol: float = 1e-5, what: str = "") -> None:
    """Pass if ``out`` ≈ ``expected``; otherwise name the first known mistake that ``out`` matches.

    ``mistakes`` maps ``(id, message)`` — the mistake's stable id and what the student probably did —
    to the value that mistake produces on the same inputs (or a zero-argument function computing it).
    """
    if close(out, expected, rtol, atol):
        return
    for key, value in dict(mistakes).items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise TypeError(f"compare(): key mistakes by (id, message), got {key!r}")
        mistake_id, message = key
        value = value() if callable(value) else value
        if value is not None and close(out, value, rtol, atol):
            raise Mistake(f"`{name}`{what}: {message}", id=mistake_id)
    diff = (out.detach().double().cpu() - expected.detach().double().cpu()).abs().max().item() \
        if out.shape == expected.shape else float("nan")
    raise Mistake(
        f"`{name}`{what} does not match the reference (max abs difference {diff:.3g}, tolerance "
        f"rtol={rtol:g}, atol={atol:g}).\n  yours:    {fmt(out)}\n  expected: {fmt(expected)}",
        id="wrong-value",
    )
