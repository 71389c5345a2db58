r"""Evidence: what a check's ``run`` half reports, as plain data that crosses the kernel boundary.

When a notebook is graded, the student's kernel decides nothing. Each check's ``run`` half calls
the student's code on inputs regenerated from a seed the grader chose, and the kernel *displays*
one :class:`Record` per case as a ``display_data`` output with the MIME type :data:`MIME`. The
grader reads those outputs back with :func:`parse`, regenerates the same inputs itself and calls
the check's ``judge`` half in its own process.

The wire format (schema :data:`SCHEMA`) is JSON only — never pickle, ``torch.load`` of objects or
``eval``::

    {"schema": "dgm-evidence/1", "cell": "test_kl", "check": "vae.kl_divergence",
     "case": "hidden-1", "seed": 123456, "error": null,
     "values": {"out": {"tensor": {"dtype": "float32", "shape": [4], "b64": "…"}}, "called": true}}

Values are JSON scalars (finite floats, ints, bools, strings), lists, string-keyed dicts, or
tensors as raw little-endian base64 buffers of an allowlisted dtype. :func:`parse` enforces the
schema, the dtype allowlist and size and depth limits, and raises :class:`EvidenceError` on
anything else: malformed evidence is a 0 for its part, never an exception in the grader.
"""
from __future__ import annotations

import base64
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

SCHEMA = "dgm-evidence/1"
MIME = "application/vnd.dgm.evidence+json"
PLAN_ENV = "DGM_GRADE_PLAN"  # path of the grader's plan file, set only in a graded kernel

# dtype name -> (torch dtype, numpy little-endian dtype)
DTYPES = {
    "float32": (torch.float32, "<f4"), "float64": (torch.float64, "<f8"), "float16": (torch.float16, "<f2"),
    "int64": (torch.int64, "<i8"), "int32": (torch.int32, "<i4"), "uint8": (torch.uint8, "|u1"),
    "bool": (torch.bool, "|b1"),
}
_NAMES = {t: name for name, (t, _) in DTYPES.items()}


@dataclass(frozen=True)
class Limits:
    """What one record may hold; anything larger or deeper is malformed."""
    max_bytes: int = 16 * 2**20        # the JSON text of one record
    max_elements: int = 2**22          # elements of one tensor
    max_depth: int = 6                 # nesting of lists/dicts
    max_items: int = 4096              # entries of one list or dict
    max_str: int = 4096                # characters of one string


LIMITS = Limits()


class EvidenceError(ValueError):
    """The evidence is missing, malformed, oversized or does not match the plan."""


@dataclass(frozen=True)
class Record:
    r"""One case of one check, bound to (cell, check, case, seed).

    ``error`` is set when the student's code could not produce evidence (not implemented, an
    exception, a call into the reference): ``{"id": "not-implemented", "message": "…"}``.
    """
    cell: str
    check: str
    case: str
    seed: int
    values: dict = field(default_factory=dict)
    error: dict | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.cell, self.check, self.case)


# ----------------------------------------------------------------------------- encoding (kernel side)
def _encode(v: Any, depth: int = 0):
    if depth > LIMITS.max_depth:
        raise EvidenceError("evidence nested too deeply")
    if isinstance(v, torch.Tensor):
        t = v.detach()
        if t.dtype not in _NAMES:
            t = t.to(torch.float64) if t.is_floating_point() else t.to(torch.int64)
        name = _NAMES[t.dtype]
        arr = t.cpu().contiguous().numpy().astype(DTYPES[name][1], copy=False)
        return {"tensor": {"dtype": name, "shape": list(t.shape), "b64": base64.b64encode(arr.tobytes()).decode()}}
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return {"float": repr(v)} if not math.isfinite(v) else float(v)
    if isinstance(v, (list, tuple)):
        return [_encode(x, depth + 1) for x in v]
    if isinstance(v, dict):
        return {"dict": {str(k): _encode(x, depth + 1) for k, x in v.items()}}
    raise EvidenceError(f"cannot send a {type(v).__name__} as evidence")


def to_json(rec: Record) -> dict:
    return {"schema": SCHEMA, "cell": rec.cell, "check": rec.check, "case": rec.case, "seed": int(rec.seed),
            "error": rec.error, "values": _encode(dict(rec.values))["dict"]}


# ----------------------------------------------------------------------------- decoding (grader side)
def _decode(obj: Any, limits: Limits, depth: int = 0):
    if depth > limits.max_depth:
        raise EvidenceError("evidence nested too deeply")
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise EvidenceError("non-finite JSON number")
        return obj
    if isinstance(obj, str):
        if len(obj) > limits.max_str:
            raise EvidenceError("string too long")
        return obj
    if isinstance(obj, list):
        if len(obj) > limits.max_items:
            raise EvidenceError("list too long")
        return [_decode(x, limits, depth + 1) for x in obj]
    if isinstance(obj, dict) and len(obj) == 1:
        (kind, body), = obj.items()
        if kind == "float" and body in ("nan", "inf", "-inf"):
            return float(body)
        if kind == "dict" and isinstance(body, dict):
            if len(body) > limits.max_items:
                raise EvidenceError("dict too large")
            return {str(k): _decode(x, limits, depth + 1) for k, x in body.items()}
        if kind == "tensor" and isinstance(body, dict):
            return _tensor(body, limits)
    raise EvidenceError(f"unexpected value of type {type(obj).__name__} in evidence")


def _tensor(body: dict, limits: Limits) -> torch.Tensor:
    if set(body) != {"dtype", "shape", "b64"}:
        raise EvidenceError("tensor fields must be dtype, shape, b64")
    name, shape, b64 = body["dtype"], body["shape"], body["b64"]
    if name not in DTYPES:
        raise EvidenceError(f"dtype {name!r} is not allowed")
    if not isinstance(shape, list) or len(shape) > 8 or \
            not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= limits.max_elements for s in shape):
        raise EvidenceError("bad tensor shape")
    n = math.prod(shape)
    if n > limits.max_elements:
        raise EvidenceError("tensor too large")
    if not isinstance(b64, str):
        raise EvidenceError("tensor data must be base64 text")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (ValueError, TypeError) as err:
        raise EvidenceError("tensor data is not base64") from err
    dt = np.dtype(DTYPES[name][1])
    if len(raw) != n * dt.itemsize:
        raise EvidenceError("tensor data does not match its shape")
    arr = np.frombuffer(raw, dtype=dt).reshape(shape).copy()
    return torch.from_numpy(arr)


def parse(payload: Any, limits: Limits = LIMITS) -> Record:
    """Validate one evidence payload (a dict, or its JSON text) and return the :class:`Record`."""
    if isinstance(payload, (str, bytes)):
        if len(payload) > limits.max_bytes:
            raise EvidenceError("evidence record too large")
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError) as err:
            raise EvidenceError("evidence is not valid JSON") from err
    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
        raise EvidenceError(f"evidence must be a {SCHEMA} record")
    if set(payload) != {"schema", "cell", "check", "case", "seed", "error", "values"}:
        raise EvidenceError("evidence record has unexpected or missing fields")
    cell, check, case, seed = payload["cell"], payload["check"], payload["case"], payload["seed"]
    if not all(isinstance(s, str) and 0 < len(s) <= 200 for s in (cell, check, case)):
        raise EvidenceError("cell, check and case must be short strings")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise EvidenceError("seed must be a non-negative integer")
    error = payload["error"]
    if error is not None:
        if not (isinstance(error, dict) and set(error) == {"id", "message"}
                and all(isinstance(v, str) and len(v) <= limits.max_str for v in error.values())):
            raise EvidenceError("error must be {id, message} strings")
    values = payload["values"]
    if not isinstance(values, dict):
        raise EvidenceError("values must be a dict")
    try:
        decoded = _decode({"dict": values}, limits)
    except RecursionError as err:
        raise EvidenceError("evidence nested too deeply") from err
    return Record(cell, check, case, seed, decoded, error)


# ----------------------------------------------------------------------------- the grader's plan
@dataclass(frozen=True)
class PlannedCase:
    cell: str
    check: str
    case: str
    seed: int


def read_plan(path: str | os.PathLike | None = None) -> list[PlannedCase] | None:
    """The grader's plan in a graded kernel (``$DGM_GRADE_PLAN``), or None when not grading."""
    path = path or os.environ.get(PLAN_ENV)
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return [PlannedCase(c["cell"], c["check"], c["case"], int(c["seed"])) for c in data["cases"]]


def write_plan(path: str | os.PathLike, cases: list[PlannedCase]) -> None:
    """Written by the grader into the submission's scratch folder before the kernel starts."""
    rows = [{"cell": c.cell, "check": c.check, "case": c.case, "seed": int(c.seed)} for c in cases]
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"schema": "dgm-plan/1", "cases": rows}, f)
