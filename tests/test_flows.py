"""dgm.flows (the math: Jacobians, inverses, closed forms, bpd) and the lab-5 checks (answers, mistakes, evidence)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import dgm.flows as F
from dgm.checks import evidence
from dgm.checks import flows as checks
from dgm.checks._check import VISIBLE, public_seed
from dgm.checks._core import Mistake

torch.set_num_threads(1)


# ============================================================================ the reference math
def _jac(f, x):
    d = x.numel()
    return torch.autograd.functional.jacobian(lambda v: f(v.reshape(1, *x.shape)).reshape(d), x.reshape(d)).reshape(d, d)


def _random_net(shape, seed):
    torch.manual_seed(seed)
    c = shape[0]
    net = nn.Conv2d(c, 2 * c, 3, padding=1) if len(shape) == 3 else nn.Linear(c, 2 * c)
    return net.double()


@pytest.mark.parametrize("shape,mask", [
    ((5,), F.alternating_mask(5, 0, dtype=torch.float64)),
    ((1, 4, 4), F.checkerboard_mask(4, 4, 1, dtype=torch.float64)),
    ((4, 3, 3), F.channel_mask(4, 0, dtype=torch.float64)),
])
def test_coupling_inverts_and_logdet_matches_autograd_jacobian(shape, mask):
    net = _random_net(shape, 0)
    x = torch.randn(3, *shape, dtype=torch.float64)
    z, log_det = F.coupling_forward(x, mask, net)
    assert torch.allclose(F.coupling_inverse(z, mask, net), x, atol=1e-12)
    for i in range(3):
        jac = _jac(lambda v: F.coupling_forward(v, mask, net)[0], x[i])
        assert torch.allclose(torch.linalg.slogdet(jac)[1], log_det[i], atol=1e-10)
        keep = mask.expand(shape).reshape(-1) > 0.5  # triangular: kept rows are identity rows
        assert torch.allclose(jac[keep], torch.eye(jac.shape[0], dtype=torch.float64)[keep])


def test_coupling_with_a_loud_conditioner_stays_finite():
    net = nn.Linear(4, 8).double()
    with torch.no_grad():
        net.weight.mul_(1e5)
    z, ld = F.coupling_forward(torch.randn(2, 4, dtype=torch.float64), F.alternating_mask(4, dtype=torch.float64), net)
    assert torch.isfinite(z).all() and torch.isfinite(ld).all() and ld.abs().max() <= 2 + 1e-9  # |s| ≤ 1 on 2 coords


@pytest.mark.parametrize("layer", [F.ActNorm(3), F.Squeeze(), F.LogitTransform(0.05)])
def test_other_layers_invert_and_logdet_matches_jacobian(layer):
    torch.manual_seed(1)
    x = torch.rand(4, 3, 4, 4, dtype=torch.float64) * 0.9 + 0.05
    layer = layer.double().train()
    z, ld = layer(x)  # ActNorm initialises on this batch
    assert torch.allclose(layer.inverse(z), x, atol=1e-10)
    jac = _jac(lambda v: layer(v)[0], x[1])
    assert torch.allclose(torch.linalg.slogdet(jac)[1], ld[1], atol=1e-8)


def test_actnorm_initialises_to_zero_mean_unit_variance():
    x = 3 + 2 * torch.randn(64, 2, 5, 5, dtype=torch.float64)
    z, _ = F.ActNorm(2).double()(x)
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(2, dtype=torch.float64), atol=1e-8)
    assert torch.allclose(z.std((0, 2, 3)), torch.ones(2, dtype=torch.float64), atol=1e-4)


def test_flow_log_prob_matches_the_jacobian_of_the_whole_flow_and_sampling_inverts():
    torch.manual_seed(0)
    flow = F.realnvp(size=4, hidden=8, blocks=(2, 2, 1)).double()
    for m in flow.modules():  # non-zero conditioners, so the test is not trivial
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.3)
    y = torch.rand(3, 1, 4, 4, dtype=torch.float64) * 0.9 + 0.05
    flow.train()
    flow(y)
    flow.eval()
    z, log_det = flow(y)
    jac = _jac(lambda v: flow(v)[0], y[0])
    assert torch.allclose(torch.linalg.slogdet(jac)[1], log_det[0], atol=1e-8)
    assert torch.allclose(flow.inverse(z), y, atol=1e-8)
    expected = -0.5 * z.flatten(1).pow(2).sum(1) - 8 * math.log(2 * math.pi) + log_det
    assert torch.allclose(flow.log_prob(y), expected)
    assert torch.allclose(F.log_likelihood(y, flow.layers), expected)
    assert flow.sample(5).shape == (5, 1, 4, 4)


def test_identity_flow_on_a_standard_normal_gives_the_analytic_bpd():
    """No layers: log p = log N(x; 0, I); the mean bpd over N(0, I) is (½ log 2πe + ln 256)/ln 2 per dim."""
    d = 50
    torch.manual_seed(0)
    x = torch.randn(20000, d, dtype=torch.float64)
    flow = F.Flow([], (d,))
    bpd = F.bits_per_dim(flow.log_prob(x), d).mean().item()
    assert abs(bpd - (0.5 * math.log(2 * math.pi * math.e) + math.log(256)) / math.log(2)) < 5e-3
    # and the exact identity: bpd of the uniform density on [0, 1]^D is exactly 8 bits (log p = 0)
    assert torch.allclose(F.bits_per_dim(torch.zeros(3, dtype=torch.float64), 784), torch.full((3,), 8.0, dtype=torch.float64))


def test_dequantize_fills_each_bin_and_the_logit_keeps_pixels_finite():
    x = torch.arange(256, dtype=torch.float64).div(255).repeat(40)
    y = F.dequantize(x)
    k = torch.floor(y * 256)
    assert torch.equal(k, torch.round(x * 255)) and (y < 1).all()
    v, ld = F.LogitTransform(0.05)(F.dequantize(torch.tensor([[0.0, 1.0]])))
    assert torch.isfinite(v).all() and torch.isfinite(ld).all()


def test_masks():
    m = F.checkerboard_mask(3, 4)
    assert m.shape == (1, 3, 4) and m.sum() == 6 and torch.equal(F.checkerboard_mask(3, 4, 1), 1 - m)
    assert torch.equal(F.channel_mask(4, 0)[:, 0, 0], torch.tensor([1.0, 1, 0, 0]))


def test_meta_device_and_float64_no_hardcoded_device_or_dtype():
    with torch.device("meta"):
        flow = F.realnvp(size=8, hidden=4, blocks=(1, 1, 1))
        y = torch.rand(2, 1, 8, 8)
    z, ld = flow(y)
    assert z.is_meta and ld.is_meta and z.shape == (2, 4, 4, 4) and ld.shape == (2,)
    assert flow.inverse(z).is_meta and flow.log_prob(y).is_meta and flow.sample(3).is_meta
    assert F.bits_per_dim(flow.log_prob(y), 64).is_meta and F.dequantize(y).is_meta
    with torch.device("meta"):
        mflow = F.moons_flow(2, 8)
    assert mflow(torch.zeros(3, 2, device="meta"))[0].is_meta
    flow64 = F.moons_flow(2, 8).double()
    x64 = torch.randn(4, 2, dtype=torch.float64)
    assert flow64.log_prob(x64).dtype == torch.float64 and flow64.sample(3).dtype == torch.float64


def test_a_few_steps_of_training_lower_the_bpd():
    torch.manual_seed(0)
    x = (torch.rand(64, 1, 8, 8) > 0.7).float()
    flow = F.realnvp(size=8, hidden=8, blocks=(1, 2, 1))
    opt = torch.optim.Adam(flow.parameters(), 3e-3)
    first = None
    for _ in range(30):
        loss = F.bpd_loss(flow, x)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first - 0.1


# ============================================================================ the checks
import textwrap  # noqa: E402


def _fn(src: str, name: str):
    ns = {"torch": torch, "math": math, "nn": nn}
    exec(textwrap.dedent(src), ns)  # noqa: S102 - test answers written as source, like a student's cell
    return ns[name]


FORWARD = {
    "solution": """
def coupling_forward(x, mask, net):
    s_hat, t = net(x * mask).chunk(2, dim=1)
    s = torch.tanh(s_hat) * (1 - mask)
    z = mask * x + (1 - mask) * (x * torch.exp(s) + t)
    return z, s.flatten(1).sum(dim=1)
""",
    "alt-where": """
def coupling_forward(x, mask, net):
    out = net(mask * x)
    c = out.shape[1] // 2
    s, t = torch.tanh(out[:, :c]), out[:, c:]
    z = torch.where(mask.bool(), x, x * s.exp() + t)
    log_det = ((1 - mask) * s).reshape(x.shape[0], -1).sum(-1)
    return z, log_det
""",
    "alt-split": """
def coupling_forward(x, mask, net):
    s_hat, t = torch.split(net(x * mask), x.shape[1], dim=1)
    inv = 1.0 - mask
    s = inv * s_hat.tanh()
    z = x * mask + inv * x * torch.exp(s) + inv * t
    return z, torch.sum(s, dim=tuple(range(1, x.dim())))
""",
    "alt-tuple": """
def coupling_forward(x, mask, net):
    s_hat, t = net(x * mask).chunk(2, 1)
    s = (1 - mask) * torch.tanh(s_hat)
    return [x * mask + (1 - mask) * (x * torch.exp(s) + t), s.flatten(1).sum(1)]
""",
}
FORWARD_BUGS = {
    "logdet-sign": ("s.flatten(1).sum(dim=1)", "-s.flatten(1).sum(dim=1)"),
    "unbounded-scale": ("s = torch.tanh(s_hat) * (1 - mask)", "s = s_hat * (1 - mask)"),
    "mask-swapped": ("z = mask * x + (1 - mask) * (x * torch.exp(s) + t)",
                     "z = (1 - mask) * x + mask * (x * torch.exp(torch.tanh(s_hat)) + t)"),
    "net-input-unmasked": ("net(x * mask)", "net(x)"),
    "missing-exp": ("x * torch.exp(s) + t", "x * s + t"),
    "logdet-includes-kept": ("s.flatten(1).sum(dim=1)", "torch.tanh(s_hat).flatten(1).sum(dim=1)"),
    "logdet-mean": ("s.flatten(1).sum(dim=1)", "s.flatten(1).mean(dim=1)"),
    "logdet-not-summed": ("s.flatten(1).sum(dim=1)", "s"),
    "no-gradient": ("return z, s", "return z.detach(), s"),
    "not-a-pair": ("return z, s.flatten(1).sum(dim=1)", "return z"),
    "not-implemented": ("s_hat, t =", "raise NotImplementedError\n    s_hat, t ="),
}

INVERSE = {
    "solution": """
def coupling_inverse(z, mask, net):
    s_hat, t = net(z * mask).chunk(2, dim=1)
    s = torch.tanh(s_hat)
    return mask * z + (1 - mask) * ((z - t) * torch.exp(-s))
""",
    "alt-div": """
def coupling_inverse(z, mask, net):
    out = net(mask * z)
    s_hat, t = out[:, : z.shape[1]], out[:, z.shape[1]:]
    return torch.where(mask > 0, z, (z - t) / torch.exp(torch.tanh(s_hat)))
""",
    "alt-masked-s": """
def coupling_inverse(z, mask, net):
    s_hat, t = torch.chunk(net(z * mask), 2, dim=1)
    s, t = (1 - mask) * torch.tanh(s_hat), (1 - mask) * t
    return (z - t) * torch.exp(-s)
""",
}
INVERSE_BUGS = {
    "inverse-wrong-order": ("(z - t) * torch.exp(-s)", "z * torch.exp(-s) - t"),
    "inverse-scale-sign": ("(z - t) * torch.exp(-s)", "(z - t) * torch.exp(s)"),
    "unbounded-scale": ("s = torch.tanh(s_hat)", "s = s_hat"),
    "net-input-unmasked": ("net(z * mask)", "net(z)"),
}

MASK = {
    "solution": """
def image_mask(H, W, parity):
    i = torch.arange(H)[:, None]
    j = torch.arange(W)[None, :]
    return ((i + j + parity) % 2 == 0).float()[None]
""",
    "alt-columns": """
def image_mask(H, W, parity):
    m = torch.zeros(1, H, W)
    m[..., parity::2] = 1.0
    return m
""",
    "alt-rows-bool": """
def image_mask(H, W, parity):
    rows = (torch.arange(H) % 2 == parity)
    return rows[:, None].expand(H, W).unsqueeze(0).clone()
""",
    "alt-2d-shape": """
def image_mask(H, W, parity):
    idx = torch.arange(H * W).reshape(H, W)
    return ((idx // W + idx % W + parity) % 2 == 1).double()
""",
}
MASK_BUGS = {
    "mask-not-local": """
def image_mask(H, W, parity):
    m = torch.zeros(1, H, W)
    if parity == 0: m[:, : H // 2] = 1
    else: m[:, H // 2:] = 1
    return m
""",
    "not-invertible": """
def image_mask(H, W, parity):
    return torch.full((1, H, W), 0.5)
""",
    "masks-not-complementary": """
def image_mask(H, W, parity):
    i, j = torch.arange(H)[:, None], torch.arange(W)[None, :]
    return ((i + j) % 2 == 0).float()[None]
""",
    "mask-unbalanced": """
def image_mask(H, W, parity):
    return torch.ones(1, H, W) if parity == 0 else torch.zeros(1, H, W)
""",
    "wrong-shape": """
def image_mask(H, W, parity):
    i, j = torch.arange(H)[:, None], torch.arange(W)[None, :]
    return ((i + j + parity) % 2 == 0).float().flatten()
""",
}

LOGLIK = {
    "solution": """
def log_likelihood(x, layers):
    h, total = x, 0
    for layer in layers:
        h, log_det = layer(h)
        total = total + log_det
    D = h[0].numel()
    return -0.5 * h.flatten(1).pow(2).sum(1) - 0.5 * D * math.log(2 * math.pi) + total
""",
    "alt-distributions": """
def log_likelihood(x, layers):
    log_dets = []
    for layer in layers:
        x, ld = layer.forward(x)
        log_dets.append(ld)
    prior = torch.distributions.Normal(torch.zeros_like(x), torch.ones_like(x))
    return prior.log_prob(x).flatten(1).sum(-1) + torch.stack(log_dets).sum(0)
""",
    "alt-mvn": """
def log_likelihood(x, layers):
    total = torch.zeros(x.shape[0], dtype=x.dtype)
    for i in range(len(layers)):
        x, ld = layers[i](x)
        total += ld
    z = x.reshape(x.shape[0], -1)
    d = z.shape[1]
    mvn = torch.distributions.MultivariateNormal(torch.zeros(d, dtype=z.dtype), torch.eye(d, dtype=z.dtype))
    return mvn.log_prob(z) + total
""",
}
LOGLIK_BUGS = {
    "logdet-sign": ("+ total", "- total"),
    "missing-prior": ("return -0.5 * h.flatten(1).pow(2).sum(1) - 0.5 * D * math.log(2 * math.pi) + total",
                      "return total"),
    "prior-constant-missing": (" - 0.5 * D * math.log(2 * math.pi)", ""),
    "layers-wrong-order": ("for layer in layers:", "for layer in reversed(layers):"),
    "logdet-not-accumulated": ("total = total + log_det", "total = log_det"),
    "prior-missing-half": ("-0.5 * h.flatten", "-h.flatten"),
    "no-gradient": ("return -0.5", "return (-0.5"),  # completed below
    "batch-reduced": ("return -0.5", "return (-0.5"),
}

DEQUANT = {
    "solution": """
def dequantize(x, u=None):
    if u is None:
        u = torch.rand_like(x)
    return (torch.round(x * 255) + u) / 256
""",
    "alt-floor": """
def dequantize(x, u=None):
    k = torch.floor(255 * x + 0.5)
    noise = u if u is not None else torch.rand(x.shape, dtype=x.dtype, device=x.device)
    return (k + noise) / 256.0
""",
    "alt-no-round": """
def dequantize(x, u=None):
    u = torch.rand_like(x) if u is None else u
    return (x * 255 + u) / 256
""",
}
DEQUANT_BUGS = {
    "dequant-divide-255": ("/ 256", "/ 255"),
    "dequant-noise-on-x": ("return (torch.round(x * 255) + u) / 256", "return x + u / 256"),
    "dequant-no-noise": ("return (torch.round(x * 255) + u) / 256", "return torch.round(x * 255) / 256"),
    "dequant-k-not-recovered": ("torch.round(x * 255)", "x"),
    "dequant-no-random-noise": ("u = torch.rand_like(x)", "u = torch.zeros_like(x)"),
    "dequant-random-out-of-bin": ("u = torch.rand_like(x)", "u = torch.randn_like(x)"),
}

BPD = {
    "solution": """
def bits_per_dim(log_py, x):
    D = x[0].numel()
    return (-log_py + D * math.log(256)) / (D * math.log(2))
""",
    "alt-plus8": """
def bits_per_dim(log_py, x):
    C, H, W = x.shape[1:]
    return -log_py / (C * H * W * math.log(2)) + 8
""",
    "alt-log2": """
def bits_per_dim(log_py, x):
    D = math.prod(x.shape[1:])
    nats = -log_py / D + math.log(256)
    return nats / torch.log(torch.tensor(2.0, dtype=log_py.dtype))
""",
}
BPD_BUGS = {
    "bpd-nats": (" / (D * math.log(2))", " / D"),
    "bpd-log256-missing": ("(-log_py + D * math.log(256))", "(-log_py)"),
    "bpd-log256-sign": ("-log_py + D", "-log_py - D"),
    "bpd-wrong-log-base": ("D * math.log(2)", "D * math.log10(2)"),
    "bpd-dimension-count": ("D = x[0].numel()", "D = x.numel()"),
    "bpd-dimension-hw": ("D = x[0].numel()", "D = x.shape[-1] * x.shape[-2]"),
    "bpd-not-per-dim": ("(D * math.log(2))", "math.log(2)"),
    "batch-reduced": ("return (", "return torch.mean("),
}

CASES = [  # (check, student name, answers, bugs)
    (checks.check_coupling_forward, "coupling_forward", FORWARD, FORWARD_BUGS),
    (checks.check_coupling_inverse, "coupling_inverse", INVERSE, INVERSE_BUGS),
    (checks.check_image_mask, "image_mask", MASK, MASK_BUGS),
    (checks.check_log_likelihood, "log_likelihood", LOGLIK, LOGLIK_BUGS),
    (checks.check_dequantize, "dequantize", DEQUANT, DEQUANT_BUGS),
    (checks.check_bits_per_dim, "bits_per_dim", BPD, BPD_BUGS),
]


def _bug_source(answers, bug):
    if not isinstance(bug, tuple):
        return bug
    old, new = bug
    src = answers["solution"]
    assert old in src, old
    src = src.replace(old, new, 1)
    return src


def _bug(answers, bug_id, bug):
    src = _bug_source(answers, bug)
    if bug_id in ("no-gradient", "batch-reduced") and "return (-0.5" in src:  # log_likelihood: wrap the result
        src = src.rstrip() + (").detach()\n" if bug_id == "no-gradient" else ").mean()\n")
    return src


ANSWERS = [(c, n, key, src) for c, n, ans, _ in CASES for key, src in ans.items()]
BUGS = [(c, n, bid, _bug(ans, bid, b)) for c, n, ans, bugs in CASES for bid, b in bugs.items()]
SEEDS = [VISIBLE, 1, 2, 5, 11, 17, 23, 40, 77, 123456, 987654321]


def _outcome(check, fn, case, seed):
    """(in-kernel judge(run), the grader's verdict from the JSON round trip) for one case."""
    try:
        check.judge(check.inputs(seed, case), check.run(fn, check.inputs(seed, case)))
        kernel = (True, None)
    except Mistake as m:
        kernel = (False, m.id)
    rec = evidence.parse(json.dumps(evidence.to_json(check.record(fn, "cell", case, seed))))
    v = check.verdict(case, seed, rec)
    return kernel, (v.passed, v.mistake)


def _all_cases(check):
    out = [(VISIBLE, public_seed(check.name, VISIBLE))]
    out += [(c, public_seed(check.name, c)) for c in check.all_cases()[1:]]
    out += [(f"hidden-{1 + i % check.n_hidden}", s) for i, s in enumerate(SEEDS[1:])]
    return out


@pytest.mark.parametrize("check,name,key,src", ANSWERS, ids=[f"{a[1]}-{a[2]}" for a in ANSWERS])
def test_correct_answers_pass_every_case_in_kernel_and_in_the_grader(check, name, key, src):
    fn = _fn(src, name)
    for case, seed in _all_cases(check):
        kernel, grader = _outcome(check, fn, case, seed)
        assert kernel == (True, None) and grader == (True, None), (key, case, seed, kernel, grader)


@pytest.mark.parametrize("check,name,bug_id,src", BUGS, ids=[f"{b[1]}-{b[2]}" for b in BUGS])
def test_typical_mistakes_are_named_by_id_in_kernel_and_grader_alike(check, name, bug_id, src):
    fn = _fn(src, name)
    outcomes = []
    for case, seed in _all_cases(check):
        kernel, grader = _outcome(check, fn, case, seed)
        assert kernel == grader, (case, seed, kernel, grader)
        outcomes.append((case, seed, kernel))
    assert any(k[1] == bug_id for _, _, k in outcomes), (bug_id, outcomes)
    if bug_id not in ONLY_SOME_CASES:
        assert all(not k[0] for _, _, k in outcomes), (bug_id, outcomes)


ONLY_SOME_CASES = {"bpd-dimension-hw"}  # H·W = C·H·W for grey images: only the colour (hidden) cases see it


def test_the_reference_call_is_refused():
    fn = _fn("def coupling_forward(x, mask, net):\n    from dgm.flows import coupling_forward as f\n"
             "    return f(x, mask, net)\n", "coupling_forward")
    rec = checks.check_coupling_forward.record(fn, "c", VISIBLE, 1)
    assert rec.error is not None and "write your own" in rec.error["message"].lower()
    with pytest.raises(Mistake, match="(?i)write your own"):
        checks.check_coupling_forward(fn)


@pytest.mark.parametrize("forged", [
    {}, {"type": "pair", "z": "x", "log_det": 1.0}, {"type": "pair", "z": torch.zeros(2), "log_det": torch.zeros(4)},
    {"type": "Tensor", "out": torch.full((5,), float("nan"))}, {"out": torch.zeros(3, 3, 3, 3, 3)},
    {"out": [1, 2], "other": "mask", "drawn": None, "big": 3},
])
def test_forged_evidence_fails_and_never_raises(forged):
    for check, *_ in CASES:
        rec = evidence.parse(json.dumps(evidence.to_json(evidence.Record("c", check.name, VISIBLE, 4, forged, None))))
        v = check.verdict(VISIBLE, 4, rec)
        assert not v.passed and v.mistake


def test_cells_cover_the_notebook_test_cells():
    import nbformat
    from pathlib import Path

    nb = nbformat.read(Path(__file__).parents[1] / "course/source/05_flows/05_flows.ipynb", as_version=4)
    graded = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.cell_type == "code"
              and c.metadata.get("nbgrader", {}).get("grade")}
    assert graded == set(checks.CELLS)
