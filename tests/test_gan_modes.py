"""Lab 3's count_modes check (mode coverage with stated rules), the reference count, the EMA and saving."""
from __future__ import annotations

import copy
import json

import pytest
import torch

import dgm.gan as Gm
from dgm.checks import evidence
from dgm.checks import gan as C
from dgm.checks._check import Verdict
from dgm.checks._core import Mistake

check = C.check_count_modes


# ----------------------------------------------------------------------------- the reference
def test_count_modes_agrees_with_mode_coverage_on_the_ring():
    g = torch.Generator().manual_seed(0)
    x = Gm.ring_of_gaussians(2000, generator=g)
    cov = Gm.mode_coverage(x)
    assert Gm.count_modes(x, Gm.ring_centers(), 0.05) == (cov.modes, cov.high_quality) == (8, cov.high_quality)
    assert cov.high_quality > 0.95
    one = Gm.ring_centers()[:1] + 0.01 * torch.randn(500, 2, generator=g)  # every sample on mode 0
    assert Gm.count_modes(one, Gm.ring_centers(), 0.05)[0] == 1


def test_mode_share_is_of_all_samples_not_of_the_high_quality_ones():
    c = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    good = torch.cat([torch.zeros(9, 2), torch.full((1, 2), 5.0).mul(torch.tensor([1.0, 0.0]))])  # 9 + 1
    junk = torch.full((90, 2), 50.0)
    x = torch.cat([good, junk])  # N = 100: the threshold 0.1·100/2 = 5 → mode 1 (1 sample) is not covered
    assert Gm.count_modes(x, c, 0.05) == (1, 0.1)
    assert Gm.mode_coverage(torch.cat([good, junk]), modes=2, radius=2.5).total == 2


def test_ema_forgets_the_initial_weights_and_copies_buffers():
    torch.manual_seed(0)
    G = Gm.DCGenerator(z_dim=4, channels=2)
    ema = Gm.EMA(G, decay=0.9)
    with torch.no_grad():
        for p in G.parameters():
            p.fill_(1.0)
        G.train()(torch.randn(8, 4))  # batch-norm statistics move
    for _ in range(200):
        ema.update(G)
    for p in ema.model.parameters():
        torch.testing.assert_close(p, torch.ones_like(p))
    for b, b_ref in zip(ema.model.buffers(), G.buffers()):
        torch.testing.assert_close(b, b_ref)
    assert not ema.model.training and not any(p.requires_grad for p in ema.model.parameters())


def test_save_samples_writes_plain_metrics_and_labels(tmp_path):
    from dgm.metrics import SampleQuality, save_samples

    q = SampleQuality(confident=0.7, n_classes=10, class_entropy=0.9, fid=1.5, n=100)
    x = torch.rand(100, 1, 28, 28)
    path = save_samples("03_gan", x, q, folder=tmp_path, labels=torch.arange(100) % 10)
    rec = torch.load(path, weights_only=True)
    assert path == tmp_path / "03_gan.pt" and torch.equal(rec["images"], x)
    assert rec["confident"] == 0.7 and rec["n_classes"] == 10 and type(rec["n"]) is int
    assert torch.equal(rec["labels"], torch.arange(100) % 10)
    with pytest.raises(ValueError):
        save_samples("03_gan", 2 * x, folder=tmp_path)


# ----------------------------------------------------------------------------- the check: right answers
def good(x, centers, std, quality=3.0, min_share=0.1):
    d = torch.cdist(x, centers)
    d_min, k = d.min(dim=1)
    hq = d_min <= quality * std
    counts = torch.bincount(k[hq], minlength=len(centers))
    return int((counts >= min_share * len(x) / len(centers)).sum()), hq.float().mean().item()


def loops(x, centers, std, quality=3.0, min_share=0.1):
    """Plain Python loops, squared distances against a squared radius, tensors returned."""
    K, N = len(centers), len(x)
    counts = [0] * K
    n_good = 0
    for p in x:
        d2 = ((centers - p) ** 2).sum(1)
        k = int(d2.argmin())
        if d2[k] <= (quality * std) ** 2:
            counts[k] += 1
            n_good += 1
    covered = sum(c >= min_share * N / K for c in counts)
    return torch.tensor(covered), torch.tensor(n_good / N)


def broadcast(x, centers, std, quality=3.0, min_share=0.1):
    """Broadcasting norms, one-hot counts, a list and numpy numbers."""
    d = (x[:, None, :] - centers[None]).norm(dim=-1)  # (N, K)
    nearest = d.argmin(1)
    hq = d.gather(1, nearest[:, None]).squeeze(1) <= quality * std
    onehot = torch.nn.functional.one_hot(nearest, len(centers)) * hq[:, None]
    share = onehot.sum(0).double() / len(x)  # each mode's share of ALL samples
    return [(share >= min_share / len(centers)).sum().numpy(), hq.double().mean().numpy()]


GOOD = {"cdist": good, "loops": loops, "broadcast": broadcast}


@pytest.mark.parametrize("fn", list(GOOD.values()), ids=list(GOOD))
@pytest.mark.parametrize("hidden", [False, True])
def test_correct_answers_pass(fn, hidden, capsys):
    before = torch.random.get_rng_state()
    check(fn, hidden=hidden)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("\n") == 1 and out.out.startswith("\u2714")
    assert torch.equal(before, torch.random.get_rng_state())


def _in_kernel(fn, case, seed):
    try:
        check.judge(check.inputs(seed, case), check.run(fn, check.inputs(seed, case)))
    except Mistake as m:
        return False, m.id
    return True, None


def _via_record(fn, case, seed):
    rec = check.record(fn, "test_count_modes", case, seed)
    v = check.verdict(case, seed, evidence.parse(json.dumps(evidence.to_json(rec))))
    return v.passed, v.mistake


def test_reference_answer_passes_hidden_cases_of_many_seeds():
    for seed in range(0, 2000, 37):
        for case in check.all_cases():
            assert _in_kernel(good, case, seed) == (True, None), (case, seed)


# ----------------------------------------------------------------------------- the check: named mistakes
def _variant(*, share_of_good=False, all_samples=False, strict=False, any_centre=False, no_quality=False,
             squared=False, ring=False, count_as_fraction=False, hq_as_count=False, single=False):
    def fn(x, centers, std, quality=3.0, min_share=0.1):
        if ring:
            centers = Gm.ring_centers(8, 2.0, dtype=x.dtype)
        d = torch.cdist(x, centers)
        d_min, k = d.min(dim=1)
        radius = std if no_quality else quality * std
        hq = (d_min ** 2 if squared else d_min) <= radius
        if any_centre:
            counts = (d <= radius).sum(0)
        elif all_samples:
            counts = torch.bincount(k, minlength=len(centers))
        else:
            counts = torch.bincount(k[hq], minlength=len(centers))
        n = int(hq.sum()) if share_of_good else len(x)
        thr = min_share * n / len(centers)
        covered = int((counts > thr).sum()) if strict else int((counts >= thr).sum())
        if single:
            return covered
        return (covered / len(centers) if count_as_fraction else covered,
                float(hq.sum()) if hq_as_count else hq.float().mean().item())
    return fn


MISTAKES = {
    "share_of_good": (_variant(share_of_good=True), "fair-share-of-high-quality"),
    "all_samples": (_variant(all_samples=True), "counts-low-quality-samples"),
    "strict": (_variant(strict=True), "strict-threshold"),
    "any_centre": (_variant(any_centre=True), "double-counted"),
    "no_quality": (_variant(no_quality=True), "radius-without-quality"),
    "squared": (_variant(squared=True), "squared-distance"),
    "ring": (_variant(ring=True), "ignores-centers"),
    "fraction": (_variant(count_as_fraction=True), "covered-not-a-count"),
    "hq_count": (_variant(hq_as_count=True), "high-quality-not-a-fraction"),
    "single": (_variant(single=True), "not-a-pair"),
    "not_implemented": (lambda x, centers, std, quality=3.0, min_share=0.1: (_ for _ in ()).throw(
        NotImplementedError), "not-implemented"),
}


@pytest.mark.parametrize("fn,mistake_id", list(MISTAKES.values()), ids=list(MISTAKES))
def test_each_known_mistake_is_named_by_its_id(fn, mistake_id, capsys):
    for hidden in (False, True):
        with pytest.raises(Mistake) as err:
            check(fn, hidden=hidden)
        assert err.value.id == mistake_id, (hidden, str(err.value))
    for seed in range(0, 600, 41):  # and in hidden cases of other seeds
        assert _in_kernel(fn, "hidden-1", seed) == (False, mistake_id), seed
    assert capsys.readouterr().err == ""


ALL = list(GOOD.values()) + [fn for fn, _ in MISTAKES.values()]


@pytest.mark.parametrize("fn", ALL)
def test_verdict_from_json_evidence_agrees_with_the_in_kernel_judge(fn):
    for case in check.all_cases():
        seed = 7 + 1000 * len(case)
        assert _via_record(fn, case, seed) == _in_kernel(fn, case, seed), case


def test_forged_evidence_gives_a_failed_verdict_never_an_exception():
    seed, case = 11, "hidden-1"
    rec = evidence.parse(json.dumps(evidence.to_json(check.record(good, "cell", case, seed))))
    assert check.verdict(case, seed, rec).passed

    def verdict(values):
        v = check.verdict(case, seed, evidence.Record(rec.cell, rec.check, case, seed, values, None))
        assert isinstance(v, Verdict)
        return v

    for i in range(len(rec.values["results"])):
        for key in ("covered", "high_quality", "type"):
            for new in ["a string", float("nan"), None, [1, 2], {"x": 1}, torch.zeros(3), -1.0, 1e9]:
                forged = copy.deepcopy(rec.values)
                forged["results"][i][key] = new
                assert not verdict(forged).passed, (i, key, new)
            forged = copy.deepcopy(rec.values)
            del forged["results"][i][key]
            assert not verdict(forged).passed
    for new in [{}, {"results": "x"}, {"results": [None, None]}, {"results": rec.values["results"][:1]}]:
        assert not verdict(new).passed
    assert not check.verdict(case, seed, None).passed


def test_reference_calls_are_rejected_even_under_another_name():
    from dgm.gan import count_modes as mine

    for fn in (lambda x, c, s, quality=3.0, min_share=0.1: mine(x, c, s, quality, min_share), Gm.count_modes):
        with pytest.raises(Mistake, match="reference implementation"):
            check(fn)
        assert not _via_record(fn, "hidden-1", 5)[0]
