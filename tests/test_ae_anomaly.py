"""Lab 1, new graded parts: anomaly_score and pick_threshold (dgm.checks._ae_anomaly), the reference
functions behind them, and the lab-1 helpers for issue 10 (random codes, save_samples, PCA, noise)."""
import copy
import json
import math

import pytest
import torch

from dgm import ae as ref
from dgm.checks import ae as checks
from dgm.checks import evidence
from dgm.checks._check import Verdict
from dgm.checks._core import Mistake

SEEDS = {"visible": (0,), "hidden-1": (3, 1234567, 801), "hidden-2": (98765, 2**31 - 5, 1650),
         "hidden-3": (42, 1999, 2400)}


def _in_kernel(check, fn, case, seed):
    try:
        check.judge(check.inputs(seed, case), check.run(fn, check.inputs(seed, case)))
    except Mistake as m:
        return False, m.id
    return True, None


def _via_record(check, fn, case, seed):
    rec = check.record(fn, "test_cell", case, seed)
    v = check.verdict(case, seed, evidence.parse(json.dumps(evidence.to_json(rec))))
    return v.passed, v.mistake


def outcomes(check, fn):
    """[(passed, id)] over every case and seed, asserting that the kernel's judge and the grader's verdict agree."""
    out = []
    for case in check.all_cases():
        for seed in SEEDS[case]:
            got = _in_kernel(check, fn, case, seed)
            assert _via_record(check, fn, case, seed) == got, (case, seed)
            out.append(got)
    return out


# ----------------------------------------------------------------------------- reference math
def test_pick_threshold_is_the_lowest_threshold_within_the_budget():
    g = torch.Generator().manual_seed(0)
    for n in (1, 7, 58, 100, 333):
        s = torch.rand(n, generator=g, dtype=torch.float64)
        for max_fpr in (0.0, 0.01, 0.05, 0.1, 0.25, 0.5):
            t = ref.pick_threshold(s, max_fpr)
            k = math.floor(max_fpr * n + 1e-9)
            assert int((s > t).sum()) == k                     # exactly k false alarms (distinct scores)
            lower = s[s < t]
            if len(lower):                                     # the next lower score breaks the budget
                assert int((s > lower.max()).sum()) > k
    ties = torch.tensor([1.0, 2, 2, 2, 3])
    assert ref.pick_threshold(ties, 0.2) == 2.0 and ref.pick_threshold(ties, 0.5) == 2.0
    with pytest.raises(ValueError):
        ref.pick_threshold(torch.tensor([]), 0.1)


def test_anomaly_score_is_the_per_image_squared_error_in_eval_mode():
    model = ref.Autoencoder(3)
    model.decoder.insert(1, torch.nn.Dropout(0.5))
    x = torch.rand(4, 1, 28, 28)
    s = ref.anomaly_score(model.train(), x)
    assert not model.training and s.shape == (4,) and not s.requires_grad
    with torch.no_grad():
        assert torch.allclose(s, ((x - model(x)) ** 2).sum(dim=(1, 2, 3)))


def test_random_codes_match_the_mean_and_covariance_of_the_codes():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(4000, 3, generator=g) @ torch.tensor([[2.0, 0, 0], [1, 1, 0], [0, 0, 0.1]]) + 5
    s = ref.random_codes(z, 20000, seed=0)
    assert s.shape == (20000, 3) and s.dtype == z.dtype
    assert torch.allclose(s.mean(0), z.mean(0), atol=0.05)
    assert torch.allclose(torch.cov(s.T), torch.cov(z.T), rtol=0.05, atol=0.02)
    assert torch.equal(ref.random_codes(z, 5, seed=2), ref.random_codes(z, 5, seed=2))
    assert ref.random_codes(z[:, :1], 3).shape == (3, 1)  # d = 1 works


def test_save_samples_writes_images_and_plain_metrics(tmp_path):
    from dgm.metrics import SampleQuality, save_samples

    q = SampleQuality(confident=0.5, n_classes=7, class_entropy=0.8, fid=12.0, n=100)
    path = save_samples("01_autoencoder", torch.rand(100, 1, 28, 28), q, folder=tmp_path / "samples",
                        latent_dim=5)
    assert path == tmp_path / "samples" / "01_autoencoder.pt"
    d = torch.load(path, weights_only=True)
    assert d["images"].shape == (100, 1, 28, 28) and d["latent_dim"] == 5
    assert d["confident"] == 0.5 and d["n_classes"] == 7 and type(d["n_classes"]) is int
    with pytest.raises(ValueError):
        save_samples("x", torch.rand(3, 784), folder=tmp_path)
    with pytest.raises(ValueError):
        save_samples("x", 2 * torch.rand(3, 1, 28, 28), folder=tmp_path)


def test_pca_is_the_best_linear_reconstruction():
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(4, 784, generator=g, dtype=torch.float64)
    x = (0.5 + 0.01 * torch.randn(300, 4, generator=g, dtype=torch.float64) @ basis).view(-1, 1, 28, 28)
    m, U = ref.pca_fit(x, 4)
    assert U.shape == (784, 4) and torch.allclose(U.T @ U, torch.eye(4, dtype=U.dtype), atol=1e-8)
    assert torch.allclose(ref.pca_reconstruct(x, m, U), x.clamp(0, 1), atol=1e-8)  # rank-4 data: exact
    m2, U2 = ref.pca_fit(x, 2)
    err = lambda U_: (x - ref.pca_reconstruct(x, m2, U_)).pow(2).sum()  # noqa: E731
    q, _ = torch.linalg.qr(torch.randn(784, 2, generator=g, dtype=torch.float64))
    assert err(U2) < err(q)


def test_add_noise_stays_in_the_unit_interval():
    x = torch.rand(3, 1, 28, 28)
    y = ref.add_noise(x, 0.5, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1 and not torch.equal(x, y)


# ----------------------------------------------------------------------------- anomaly_score: the check
def score_solution(model, x):
    model.eval()
    with torch.no_grad():
        return ((x - model(x)) ** 2).flatten(1).sum(dim=1)


def score_detach(model, x):  # decode(encode(x)), sum over dims, .detach()
    model.eval()
    return (x - model.decode(model.encode(x))).pow(2).sum(dim=(1, 2, 3)).detach()


def score_mse(model, x):  # F.mse_loss(reduction="none"), inference_mode, train(False)
    import torch.nn.functional as F

    model.train(False)
    with torch.inference_mode():
        return F.mse_loss(model(x), x, reduction="none").view(len(x), -1).sum(-1).clone()


def score_loop(model, x):  # one image at a time, a list stacked
    model.eval()
    with torch.no_grad():
        return torch.stack([torch.sum((xi - model(xi[None])[0]) ** 2) for xi in x])


@pytest.mark.parametrize("fn", [score_solution, score_detach, score_mse, score_loop])
def test_anomaly_score_alternatives_pass(fn):
    assert all(p for p, _ in outcomes(checks.check_anomaly_score, fn))


def _eval(fn):
    def wrapped(model, x):
        model.eval()
        with torch.no_grad():
            return fn(model, x)
    return wrapped


SCORE_MISTAKES = {
    "train-mode": lambda m, x: ((x - m(x)) ** 2).flatten(1).sum(1).detach(),
    "one-number": _eval(lambda m, x: ((x - m(x)) ** 2).flatten(1).sum(1).mean()),
    "no-reduction": _eval(lambda m, x: (x - m(x)) ** 2),
    "mean-over-pixels": _eval(lambda m, x: ((x - m(x)) ** 2).flatten(1).mean(1)),
    "norm-not-squared": _eval(lambda m, x: (x - m(x)).flatten(1).norm(dim=1)),
    "missing-square": _eval(lambda m, x: (x - m(x)).abs().flatten(1).sum(1)),
    "keeps-graph": lambda m, x: (m.eval(), ((x - m(x)) ** 2).flatten(1).sum(1))[1],
    "not-a-tensor": _eval(lambda m, x: ((x - m(x)) ** 2).flatten(1).sum(1).tolist()),
    "not-implemented": lambda m, x: (_ for _ in ()).throw(NotImplementedError()),
    "reference-call": ref.anomaly_score,
}


@pytest.mark.parametrize("mistake", SCORE_MISTAKES)
def test_anomaly_score_mistakes_are_named(mistake):
    assert set(outcomes(checks.check_anomaly_score, SCORE_MISTAKES[mistake])) == {(False, mistake)}


# ----------------------------------------------------------------------------- pick_threshold: the check
def threshold_solution(s, max_fpr):
    s = s.flatten().sort().values
    k = int(max_fpr * len(s) + 1e-9)
    return s[len(s) - k - 1].item()


def threshold_kthvalue(s, max_fpr):  # a 0-dim tensor, kthvalue
    k = math.floor(max_fpr * len(s))
    return torch.kthvalue(s, len(s) - k).values


def threshold_topk(s, max_fpr):
    return s.topk(math.floor(max_fpr * len(s)) + 1).values[-1].item()


def threshold_midpoint(s, max_fpr):  # halfway to the next score above: splits the normal scores the same way
    s = sorted(s.tolist())
    k = math.floor(max_fpr * len(s))
    t = s[len(s) - k - 1]
    above = [v for v in s if v > t]
    return (t + min(above)) / 2 if above else t


def threshold_scan(s, max_fpr):  # try every score, keep the lowest within budget (numpy)
    import numpy as np

    a = np.sort(s.numpy())
    for t in a:
        if (a > t).mean() <= max_fpr:
            return float(t)


@pytest.mark.parametrize("fn", [threshold_solution, threshold_kthvalue, threshold_topk, threshold_midpoint,
                                threshold_scan])
def test_pick_threshold_alternatives_pass(fn):
    assert all(p for p, _ in outcomes(checks.check_pick_threshold, fn))


THRESHOLD_MISTAKES = {  # each named on the visible case; hidden cases may let a lucky one through
    "fpr-too-high": lambda s, f: torch.quantile(s, 1 - f).item(),               # interpolated quantile
    "wrong-tail": lambda s, f: torch.quantile(s, f).item(),
    "too-strict": lambda s, f: s.max().item(),
    "not-a-number": lambda s, f: "high",
    "not-finite": lambda s, f: float("inf"),
    "reference-call": ref.pick_threshold,
}


@pytest.mark.parametrize("mistake", THRESHOLD_MISTAKES)
def test_pick_threshold_mistakes_are_named(mistake):
    got = outcomes(checks.check_pick_threshold, THRESHOLD_MISTAKES[mistake])
    assert got[0] == (False, mistake)
    assert {m for p, m in got if not p} == {mistake}


def test_off_by_one_thresholds_are_caught():
    one_low = lambda s, f: s.sort().values[len(s) - math.floor(f * len(s)) - 2].item()   # noqa: E731
    one_high = lambda s, f: s.sort().values[len(s) - math.floor(f * len(s))].item()      # noqa: E731
    for fn, mistake in ((one_low, "fpr-too-high"), (one_high, "too-strict")):
        got = outcomes(checks.check_pick_threshold, fn)
        assert got[0] == (False, mistake)  # with ties, a neighbour can be the same score: then it is right
        assert {m for p, m in got if not p} == {mistake} and sum(not p for p, _ in got) >= len(got) - 3


def test_hidden_threshold_cases_vary_and_include_ties():
    seen = set()
    for seed in range(0, 3200, 37):
        inp = checks.check_pick_threshold.inputs(seed, "hidden-1")
        s = inp["scores"]
        seen.add((len(s), inp["max_fpr"], len(s.unique()) < len(s)))
    assert len({n for n, _, _ in seen}) > 20 and len({f for _, f, _ in seen}) == 4
    assert {t for _, _, t in seen} == {True, False}


# ----------------------------------------------------------------------------- forged evidence, notebook API
def _leaves(v, path=()):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _leaves(x, path + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _leaves(x, path + (i,))
    else:
        yield path, v


def _replaced(values, path, new):
    out = copy.deepcopy(values)
    node = out
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = new
    return out


@pytest.mark.parametrize("check,fn,essential", [
    (checks.check_anomaly_score, score_solution, [("out",), ("requires_grad",)]),
    (checks.check_pick_threshold, threshold_solution, [("t",)]),
    (checks.check_pick_threshold, threshold_kthvalue, [("t",)]),
])
def test_forged_evidence_gives_a_failed_verdict_never_an_exception(check, fn, essential):
    seed, case = 11, "hidden-1"
    rec = evidence.parse(json.dumps(evidence.to_json(check.record(fn, "cell", case, seed))))
    assert check.verdict(case, seed, rec).passed

    def verdict(values):
        return check.verdict(case, seed, evidence.Record(rec.cell, rec.check, case, seed, values, None))

    for path, leaf in _leaves(rec.values):
        forged = ["a string", float("nan"), None, [1, 2], {"x": 1}, float("inf")]
        if isinstance(leaf, torch.Tensor):
            forged += [torch.full_like(leaf.double(), float("nan")), leaf.reshape(-1)[:1].repeat(3),
                       leaf.double()[..., :1] if leaf.dim() else leaf + 100, leaf.double() * 2]
        for new in forged:
            v = verdict(_replaced(rec.values, path, new))
            assert isinstance(v, Verdict)
            if path in essential:
                assert not v.passed, (path, new)
        v = verdict({k: x for k, x in rec.values.items() if k != path[0]})
        assert isinstance(v, Verdict)
        if path in essential:
            assert not v.passed, path
    assert not check.verdict(case, seed, None).passed


def test_new_checks_in_the_notebook_api(capfd):
    checks.check_anomaly_score(score_solution, hidden=True)
    checks.check_pick_threshold(threshold_solution, hidden=True)
    out = capfd.readouterr()
    assert out.out.count("✔") == 2 and out.err == ""
    with pytest.raises(Mistake, match="one too low|count the scores"):
        checks.check_pick_threshold(THRESHOLD_MISTAKES["fpr-too-high"])


def test_new_checks_are_cheap():
    import time

    t = time.perf_counter()
    for check, fn in ((checks.check_anomaly_score, score_solution), (checks.check_pick_threshold, threshold_solution)):
        for case in check.all_cases():
            check.judge(check.inputs(7, case), check.run(fn, check.inputs(7, case)))
    assert time.perf_counter() - t < 5
