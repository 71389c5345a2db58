"""The grader-side judge on hostile evidence (no kernel, fast): whatever a kernel displays, it can only
lower a score; malformed, forged, duplicated or mis-seeded evidence is a 0 for that part, never a crash."""
from __future__ import annotations

import base64
import json
import pickle

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from dgm.checks import evidence
from dgm.checks.ae import ReconstructionLoss
from dgm.grading.execute import CellEvent
from dgm.grading.judge import (SanitizeOutputs, declared_cells, hidden_seed, judge_cell, make_plan,
                               submission_sha256, verdict_outputs)

CELL = "test_reconstruction_loss"
CHECK = ReconstructionLoss()
SECRET = b"k" * 64


def good_loss(x, x_hat):
    return ((x - x_hat) ** 2).flatten(1).sum(1).mean()


def mean_loss(x, x_hat):
    return ((x - x_hat) ** 2).mean()


@pytest.fixture(scope="module")
def plan():
    return make_plan({CELL: (CHECK,), "test_other": (CHECK,)}, SECRET, "alice", "01_autoencoder", "sha")


def out(payload):
    return new_output("display_data", data={evidence.MIME: payload, "text/plain": "(evidence)"})


def records(plan, fn=good_loss, cell=CELL):
    return [evidence.to_json(CHECK.record(fn, p.cell, p.case, p.seed)) for p in plan if p.cell == cell]


def passed(verdicts) -> bool:
    return bool(verdicts) and all(v.passed for v in verdicts)


def test_plan_seeds_are_public_for_visible_and_hmac_for_hidden(plan):
    from dgm.checks._check import public_seed

    mine = [p for p in plan if p.cell == CELL]
    assert [p.case for p in mine] == list(CHECK.all_cases())
    assert mine[0].seed == public_seed(CHECK.name, "visible")
    hidden = mine[1].seed
    assert hidden == hidden_seed(SECRET, "alice", "01_autoencoder", CELL, CHECK.name, "hidden-1", "sha")
    again = make_plan({CELL: (CHECK,)}, SECRET, "alice", "01_autoencoder", "sha")
    assert [p.seed for p in again] == [p.seed for p in mine], "re-grading gives the same seeds"
    other = make_plan({CELL: (CHECK,)}, SECRET, "alice", "01_autoencoder", "sha2")
    assert other[1].seed != hidden, "another submission gets other hidden inputs"
    assert make_plan({CELL: (CHECK,)}, b"x" * 64, "alice", "01_autoencoder", "sha")[1].seed != hidden


def test_submission_hash_ignores_outputs_not_code():
    nb = new_notebook(cells=[new_code_cell("x = 1")])
    h = submission_sha256(nb)
    nb.cells[0].outputs = [new_output("stream", name="stdout", text="hi")]
    assert submission_sha256(nb) == h
    nb.cells[0].source = "x = 2"
    assert submission_sha256(nb) != h


def test_honest_evidence_passes_and_a_mistake_is_named(plan):
    assert passed(judge_cell(CELL, (CHECK,), plan, [out(r) for r in records(plan)]))
    verdicts = judge_cell(CELL, (CHECK,), plan, [out(r) for r in records(plan, mean_loss)])
    assert not passed(verdicts) and {v.mistake for v in verdicts} == {"mean-over-pixels"}
    shown = verdict_outputs((CHECK,), verdicts)
    assert shown[0].output_type == "error" and shown[0].ename == "Mistake"
    assert "averages over every pixel" in shown[0].evalue and "[mistake: mean-over-pixels]" in shown[0].traceback


def _tamper(plan, how):
    recs = records(plan)
    r = json.loads(json.dumps(recs[1]))
    if how == "pickle":
        r["values"]["out"] = {"tensor": {"dtype": "object", "shape": [1],
                                         "b64": base64.b64encode(pickle.dumps(1.0)).decode()}}
    elif how == "huge":
        r = json.dumps(r)[:-1] + ', "pad": "' + "x" * (17 * 2**20) + '"}'
    elif how == "deep":
        deep = 1.0
        for _ in range(100):
            deep = [deep]
        r["values"]["out"] = deep
    elif how == "nan":
        r["values"]["out"] = {"tensor": {**r["values"]["out"]["tensor"]}}
        r["values"]["out"] = float("nan")
    elif how == "dtype":
        r["values"]["out"]["tensor"]["dtype"] = "complex128"
    elif how == "extra":
        r["extra"] = 1
    elif how == "wrong-seed":
        r["seed"] = r["seed"] + 1
    elif how == "duplicate":
        return [out(x) for x in recs] + [out(recs[1])]
    elif how == "foreign":
        return [out(x) for x in recs] + [out(x) for x in records(plan, cell="test_other")[:1]]
    elif how == "missing":
        return [out(x) for x in recs[:-1]]
    elif how == "forged-pass":  # the visible case's values sent for every case: wrong for the hidden inputs
        fake = [dict(recs[0], case=x["case"], seed=x["seed"]) for x in recs]
        return [out(x) for x in fake]
    recs[1] = r
    return [out(x) for x in recs]


@pytest.mark.parametrize("how", ["pickle", "huge", "deep", "nan", "dtype", "extra", "wrong-seed", "duplicate",
                                 "foreign", "missing", "forged-pass"])
def test_hostile_evidence_scores_zero_and_never_raises(plan, how):
    verdicts = judge_cell(CELL, (CHECK,), plan, _tamper(plan, how))
    assert not passed(verdicts), how
    assert all(isinstance(v.mistake, str) and v.mistake for v in verdicts if not v.passed)


def test_unserialisable_or_odd_payloads_are_refused(plan):
    assert not passed(judge_cell(CELL, (CHECK,), plan, [out("not json"), out(12), out(None)]))
    assert not passed(judge_cell(CELL, (CHECK,), plan, []))


def test_a_dead_kernel_gives_its_reason():
    plan = make_plan({CELL: (CHECK,)}, SECRET, "a", "l", "s")
    ev = CellEvent(CELL, "time-limit", "TimeLimit: this cell ran longer than 5 s")
    verdicts = judge_cell(CELL, (CHECK,), plan, [], ev)
    assert {v.mistake for v in verdicts} == {"time-limit"} and "longer than 5 s" in verdicts[0].message


def test_a_judge_that_raises_is_a_zero(plan, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("judge bug")

    monkeypatch.setattr(CHECK, "verdict", boom)
    verdicts = judge_cell(CELL, (CHECK,), plan, [out(r) for r in records(plan)])
    assert {v.mistake for v in verdicts} == {"judge-error"}


def test_unknown_or_unconverted_labs_fall_back_to_nbgrader():
    assert declared_cells("00_bare") is None
    assert declared_cells("01_autoencoder") is not None


def test_sanitize_keeps_text_and_images_only():
    cell = new_code_cell("x", outputs=[
        new_output("display_data", data={"text/html": "<script>alert(1)</script>", "text/plain": "x"}),
        new_output("display_data", data={"application/javascript": "alert(1)"}),
        new_output("display_data", data={"image/svg+xml": "<svg onload=alert(1)/>", "image/png": "iVBOR"}),
        new_output("execute_result", data={"text/markdown": "<img src=x onerror=alert(1)>"}, execution_count=1),
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "m"}}),
    ])
    resources = {}
    cell, _ = SanitizeOutputs().preprocess_cell(cell, resources, 0)
    text = nbformat.writes(new_notebook(cells=[cell]))
    for bad in ("<script", "onerror", "onload", "alert(1)"):
        assert bad not in text
    assert cell.outputs[0].data == {"text/plain": "x"} and "image/png" in cell.outputs[2].data
    assert "removed" in cell.outputs[1].data["text/plain"]


def test_dgm_and_the_checks_do_not_import_nbgrader():
    import subprocess
    import sys

    code = ("import sys, dgm, dgm.checks, dgm.checks.ae, dgm.checks.evidence, dgm.course\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('nbgrader', 'nbconvert', 'nbclient')]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
