"""dgm.checks.evidence: the only data that crosses from a graded kernel to the grader.

Round trips are exact; anything that is not a well-formed record — pickles, code, huge or deep
payloads, odd dtypes, extra fields — is refused with EvidenceError, never executed or crashing.
"""
import base64
import json
import pickle

import pytest
import torch

from dgm.checks import evidence as ev


def _record(**values):
    return ev.Record("test_cell", "lab.check", "visible", 7, values, None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.int64, torch.int32,
                                   torch.uint8, torch.bool])
def test_tensors_round_trip_bit_exactly(dtype):
    t = (torch.arange(24, dtype=torch.float64).reshape(2, 3, 4) * 1.37 - 9).to(dtype)
    back = ev.parse(json.dumps(ev.to_json(_record(out=t)))).values["out"]
    assert back.dtype == dtype and back.shape == t.shape and torch.equal(back, t)


def test_scalars_lists_dicts_and_nonfinite_floats_round_trip():
    vals = {"a": 1.5, "n": 3, "b": True, "s": "x", "none": None, "l": [1, [2.0, "y"]],
            "d": {"k": torch.zeros(2)}, "nan": float("nan"), "inf": float("-inf")}
    back = ev.parse(json.dumps(ev.to_json(_record(**vals)))).values
    assert back["a"] == 1.5 and back["n"] == 3 and back["b"] is True and back["l"] == [1, [2.0, "y"]]
    assert torch.equal(back["d"]["k"], torch.zeros(2))
    assert back["nan"] != back["nan"] and back["inf"] == float("-inf")


def test_error_records_round_trip():
    rec = ev.Record("c", "k", "hidden-1", 3, {}, {"id": "not-implemented", "message": "do it"})
    assert ev.parse(ev.to_json(rec)) == rec


def _payload(**over):
    p = ev.to_json(_record(out=torch.ones(3)))
    p.update(over)
    return p


@pytest.mark.parametrize("bad", [
    pickle.dumps({"x": 1}),                                              # a pickle, never unpickled
    "not json",
    json.dumps([1, 2, 3]),
    json.dumps({**_payload(), "schema": "dgm-evidence/0"}),
    json.dumps({**_payload(), "extra": 1}),                              # unexpected field
    json.dumps({k: v for k, v in _payload().items() if k != "seed"}),    # missing field
    json.dumps(_payload(seed=-1)), json.dumps(_payload(seed=True)), json.dumps(_payload(seed="7")),
    json.dumps(_payload(cell="")), json.dumps(_payload(check=["x"])),
    json.dumps(_payload(error={"id": "x"})), json.dumps(_payload(values=[1])),
    json.dumps(_payload(values={"t": {"tensor": {"dtype": "object", "shape": [1], "b64": "AA=="}}})),
    json.dumps(_payload(values={"t": {"tensor": {"dtype": "float32", "shape": [2], "b64": "AAAA"}}})),
    json.dumps(_payload(values={"t": {"tensor": {"dtype": "float32", "shape": [-1], "b64": ""}}})),
    json.dumps(_payload(values={"t": {"tensor": {"dtype": "float32", "shape": [1], "b64": "!!!"}}})),
    json.dumps(_payload(values={"t": {"tensor": {"dtype": "float32", "shape": [2**40], "b64": ""}}})),
    json.dumps(_payload(values={"t": {"pickle": base64.b64encode(pickle.dumps(1)).decode()}})),
    json.dumps(_payload(values={"f": {"float": "1e999"}})),
    '{"schema": "dgm-evidence/1", "values": ' + "[" * 5000 + "]" * 5000 + "}",   # deeply nested
    json.dumps(_payload(values={"s": "x" * 10_000})),
])
def test_malformed_evidence_is_refused_not_executed(bad):
    with pytest.raises(ev.EvidenceError):
        ev.parse(bad)


def _nest(n):
    v = 1
    for _ in range(n):
        v = {"dict": {"a": v}}
    return v


def test_depth_and_size_limits():
    ev.parse(json.dumps(_payload(values={"ok": _nest(ev.LIMITS.max_depth - 1)})))
    with pytest.raises(ev.EvidenceError):
        ev.parse(json.dumps(_payload(values={"deep": _nest(ev.LIMITS.max_depth + 2)})))
    with pytest.raises(ev.EvidenceError):
        ev.parse("x" * (ev.LIMITS.max_bytes + 1))


def test_non_finite_json_numbers_are_refused():
    text = json.dumps(_payload()).replace('"values": {', '"values": {"nan": NaN, ', 1)
    with pytest.raises(ev.EvidenceError):
        ev.parse(text)


def test_plan_round_trip(tmp_path):
    cases = [ev.PlannedCase("test_a", "lab.a", "visible", 1), ev.PlannedCase("test_a", "lab.a", "hidden-1", 99)]
    ev.write_plan(tmp_path / "plan.json", cases)
    assert ev.read_plan(tmp_path / "plan.json") == cases


def test_no_plan_means_not_grading(monkeypatch):
    monkeypatch.delenv(ev.PLAN_ENV, raising=False)
    assert ev.read_plan() is None
