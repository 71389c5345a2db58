r"""The lab-2 check of the student's ``VAE`` class (re-exported by :mod:`dgm.checks.vae`).

The contract (stated in the lab): ``VAE(latent_dim, reparameterize=reparameterize)`` keeps the sampling
function it is given; ``encode(x) -> (mu, logvar)``, ``decode(z) -> logits (B, 1, 28, 28)``; in training mode
``forward(x)`` samples z by calling that function as ``reparameterize(mu, logvar)`` and returns
``(decode(z), mu, logvar)`` (in eval mode it may decode μ instead).

The check constructs the model with a spy of the reference ``reparameterize`` (a fixed ε), so a wrong
``reparameterize`` of the student costs its own part only, and the judge sees exactly what ``forward``
hands to it (logvar, not σ) and whether the logits returned are ``decode`` of the sampled z.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import vae as _ref
from ._check import VISIBLE, Check
from ._core import Mistake, close, fixed_normal, run_student
from ._vae_fixtures import _handed_mistake, _images, _pick, _plain, _takes, _tensor

_FORBID = (_ref.VAE,)
_SCALES = (0.0, 3.0, 30.0)  # decoder probes at z = s · N(0, I): logits leave [0, 1], probabilities cannot


def _grad_norms(out: torch.Tensor, targets: list) -> list[float]:
    """‖∂ out.sum() / ∂t‖ for every t (0.0 where no gradient flows)."""
    live = [t for t in targets if isinstance(t, torch.Tensor) and t.requires_grad]
    grads = torch.autograd.grad(out.sum(), live, allow_unused=True, retain_graph=True) if live else []
    found = dict(zip(map(id, live), grads))
    return [float(found[id(t)].abs().sum()) if found.get(id(t)) is not None else 0.0 for t in targets]


class VaeModel(Check):
    r"""``VAE(k, reparameterize=...)``: two heads → (μ, log σ²), decode → logits, forward samples z via the sampler."""
    name = "vae.VAE"
    student = "VAE"
    passed = ("encode → (μ, log σ²) from two heads, decode → logits (B, 1, 28, 28), forward samples z with the "
              "reparameterize it was given.")

    def inputs(self, seed: int, case: str) -> dict:
        k, b = (16, 5) if case == VISIBLE else (_pick(seed, 1, (3, 8, 16, 20)), _pick(seed, 2, (2, 3, 5)))
        return {"k": k, "x": _images(b, seed), "eps": fixed_normal(b, k, seed=seed + 1),
                "z_probe": fixed_normal(b, k, seed=seed + 2), "torch_seed": seed % 2**31}

    def run(self, VAE, inputs: dict) -> dict:
        if not callable(VAE):
            raise Mistake(f"`VAE` should be the class you defined above, got {type(VAE).__name__}.", id="not-callable")
        if not _takes(VAE, "reparameterize"):
            raise Mistake("`VAE` takes no parameter `reparameterize`: its signature is "
                          "VAE(latent_dim, reparameterize=reparameterize).", id="missing-reparameterize-parameter")
        with torch.random.fork_rng(devices=[]):  # weights are drawn from a seeded stream; the notebook's is untouched
            torch.manual_seed(inputs["torch_seed"])
            return self._run(VAE, inputs)

    def _run(self, VAE, inputs: dict) -> dict:
        k, x = inputs["k"], inputs["x"]
        calls = []

        def reparameterize(mu, logvar, eps=None):  # the reference sampler with a fixed ε, recording its inputs
            z = _ref.reparameterize(mu, logvar, inputs["eps"].to(mu) if eps is None else eps)
            calls.append((mu, logvar, z))
            return z

        def call(fn, *args, name):
            return run_student(fn, *args, name=name, forbidden=_FORBID)

        model = call(lambda: VAE(k, reparameterize=reparameterize), name=f"VAE({k}, reparameterize=...)")
        if not isinstance(model, nn.Module):
            raise Mistake(f"`VAE({k})` should create an nn.Module, got {type(model).__name__}.", id="not-a-module")
        if any(isinstance(m, _ref.VAE) for m in model.modules()):
            raise Mistake("`VAE` uses dgm.vae.VAE — build your own encoder, heads and decoder.", id="reference-call")
        for method in ("encode", "decode"):
            if not callable(getattr(model, method, None)):
                raise Mistake(f"`VAE` needs a method `{method}`.", id="missing-method")
        model.train()
        enc = call(model.encode, x, name="encode")
        ev = {"encode": [_plain(v) for v in enc] if isinstance(enc, (tuple, list)) else _plain(enc)}
        calls.clear()
        fwd = call(model, x, name="VAE.forward")
        ev["n_calls"] = len(calls)
        if isinstance(fwd, (tuple, list)) and len(fwd) == 3 and all(isinstance(t, torch.Tensor) for t in fwd):
            ev["forward"] = [_plain(t) for t in fwd]
            ev["handed"] = [[mu.detach().clone(), lv.detach().clone()] for mu, lv, _ in calls[:3]]
            with torch.no_grad():
                ev["decoded"] = [_plain(call(model.decode, z.detach(), name="decode")) for _, _, z in calls[:3]]
                if tuple(fwd[1].shape) == (x.shape[0], k):
                    ev["decode_mu"] = _plain(call(model.decode, fwd[1].detach(), name="decode"))
            if calls and fwd[0].requires_grad:  # where gradients flow: from the logits back through z to the encoder
                params = [p for p in model.parameters() if p.requires_grad]
                g_mu, g_lv, *g_params = _grad_norms(fwd[0], [calls[0][0], calls[0][1], *params])
                z_leaf = calls[0][2].detach().requires_grad_(True)
                g_dec = _grad_norms(call(model.decode, z_leaf, name="decode"), params)
                ev.update(g_mu=g_mu, g_logvar=g_lv, reach_forward=sum(g > 0 for g in g_params),
                          reach_decode=sum(g > 0 for g in g_dec))
        else:
            ev["forward"] = _plain(fwd)
        model.eval()
        with torch.no_grad():
            ev["probes"] = [_plain(call(model.decode, s * inputs["z_probe"], name="decode")) for s in _SCALES]
            out = call(model, x, name="VAE.forward (eval mode)")
        ev["eval_forward"] = _plain(out[0]) if isinstance(out, (tuple, list)) and len(out) == 3 else _plain(out)
        return ev

    def judge(self, inputs: dict, ev: dict) -> None:
        k, b = inputs["k"], inputs["x"].shape[0]
        img = (b, 1, 28, 28)
        enc = ev.get("encode")
        if not isinstance(enc, list) or len(enc) != 2:
            raise Mistake("`encode` should return a pair (mu, logvar) — one tensor from each head.",
                          id="encode-not-a-pair")
        mu = _tensor({"v": enc[0]}, "v", "encode", (b, k), " (mu)")
        logvar = _tensor({"v": enc[1]}, "v", "encode", (b, k), " (logvar)")
        if close(mu, logvar, rtol=0, atol=1e-7):
            raise Mistake("`encode` returns the same tensor as mu and logvar: use two separate heads "
                          "(two nn.Linear layers on the shared features).", id="same-head")
        if bool((logvar >= 0).all()) and k >= 16:  # 16 random-init heads are never all ≥ 0 by chance
            raise Mistake("`encode`: logvar is never negative. log σ² must be free to be any real number "
                          "(σ < 1 ⇔ log σ² < 0): no ReLU / softplus / exp after the logvar head.",
                          id="logvar-nonnegative")
        probes = ev.get("probes")
        if not isinstance(probes, list) or len(probes) != len(_SCALES):
            raise Mistake("`decode`: the check's result is incomplete.", id="malformed-evidence")
        for p in probes:
            if isinstance(p, torch.Tensor) and p.numel() == b * 784 and tuple(p.shape) != img:
                raise Mistake(f"`decode` returned shape {tuple(p.shape)}, expected (B, 1, 28, 28). Reshape with "
                              ".view(-1, 1, 28, 28).", id="flat-output")
        probes = [_tensor({"v": p}, "v", "decode", img) for p in probes]
        if all(bool((p >= 0).all() and (p <= 1).all()) for p in probes):
            raise Mistake("`decode` seems to end with a sigmoid (all outputs in [0, 1], even for codes far from 0): "
                          "it must return logits; elbo_loss applies the sigmoid inside "
                          "binary_cross_entropy_with_logits.", id="decoder-sigmoid")
        self._judge_forward(inputs, ev, mu, logvar)
        _tensor(ev, "eval_forward", "VAE.forward", img, " (x_logits in eval mode)")

    def _judge_forward(self, inputs: dict, ev: dict, mu: torch.Tensor, logvar: torch.Tensor) -> None:
        name, b = "VAE.forward", mu.shape[0]
        fwd = ev.get("forward")
        if not isinstance(fwd, list) or len(fwd) != 3:
            raise Mistake("`forward(x)` should return (x_logits, mu, logvar).", id="forward-not-a-triple")
        xl = _tensor({"v": fwd[0]}, "v", name, (b, 1, 28, 28), " (x_logits)")
        m = _tensor({"v": fwd[1]}, "v", name, mu.shape, " (mu)")
        lv = _tensor({"v": fwd[2]}, "v", name, mu.shape, " (logvar)")
        if not close(m, mu) or not close(lv, logvar):
            raise Mistake("`forward(x)` should return (x_logits, mu, logvar) with (mu, logvar) = encode(x).",
                          id="forward-mu-logvar")
        decode_mu = ev.get("decode_mu")
        decodes_mu = isinstance(decode_mu, torch.Tensor) and decode_mu.shape == xl.shape and close(xl, decode_mu)
        if not isinstance(ev.get("n_calls"), int) or ev["n_calls"] < 1:
            raise Mistake(
                ("`forward` decodes μ in training mode. " if decodes_mu else "`forward` never called the sampler. ")
                + "In training mode it must sample z = self.reparameterize(mu, logvar) with the function given to "
                "VAE(latent_dim, reparameterize=...) and decode z.",
                id="decodes-mu" if decodes_mu else "forward-no-reparameterize")
        handed, decoded = ev.get("handed"), ev.get("decoded")
        if not (isinstance(handed, list) and handed and isinstance(decoded, list) and len(decoded) == len(handed)
                and all(isinstance(h, list) and len(h) == 2 for h in handed)):
            raise Mistake(f"`{name}`: the check's result is incomplete.", id="malformed-evidence")
        pairs = [(_tensor({"v": h[0]}, "v", name, mu.shape), _tensor({"v": h[1]}, "v", name, mu.shape)) for h in handed]
        right = [i for i, (mu_h, lv_h) in enumerate(pairs) if close(mu_h, mu) and close(lv_h, logvar)]
        if not right:
            _handed_mistake(name, "reparameterize", mu, logvar, *pairs[0])
        dec = _tensor({"v": decoded[right[0]]}, "v", "decode", xl.shape)
        if not close(xl, dec):
            if close(xl, torch.sigmoid(dec)):
                raise Mistake("`forward` returns probabilities (a sigmoid of the decoder's output); it must return "
                              "the logits decode(z) — the loss applies the sigmoid.", id="forward-returns-probabilities")
            if decodes_mu:
                raise Mistake("`forward` samples z but decodes μ: return decode(z) with z from reparameterize.",
                              id="decodes-mu")
            raise Mistake("`forward`'s x_logits are not decode(z) of the z that reparameterize returned.",
                          id="forward-not-decoding-z")
        g = [ev.get(key) for key in ("g_mu", "g_logvar", "reach_forward", "reach_decode")]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in g) \
                or not (g[0] > 0 and g[1] > 0 and g[2] > g[3]):
            raise Mistake("No gradient reaches the encoder through z: hand reparameterize the encoder's own mu and "
                          "logvar (no .detach(), .item(), numpy or torch.no_grad() in forward).",
                          id="no-gradient-to-encoder")
