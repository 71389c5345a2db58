r"""The lab-2 checks of ``elbo_loss`` and ``train_step`` (re-exported by :mod:`dgm.checks.vae`).

Error carried forward: ``elbo_loss(..., kl_fn=kl_divergence)`` is graded with a spy of the reference KL
passed as ``kl_fn``, and ``train_step(..., loss_fn=elbo_loss)`` with a spy of the reference loss passed as
``loss_fn`` — so a mistake in the student's KL or ELBO costs that part only. The spies record what was
handed to them (which mu/logvar, which β, logits or probabilities), so the judge sees the hand-off.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import vae as _ref
from ._check import VISIBLE, Check
from ._core import Mistake, close, compare, fixed_normal, fixed_uniform, run_student
from ._vae_fixtures import (_dtype, _flat, _gaussian, _handed_mistake, _kl_mistakes, _kl_terms, _pick, _plain,
                            _scalar, _step_result, _takes, _tensor, _tiny_vae)

_FORBID_ELBO = (_ref.elbo_loss, _ref.vae_loss)
_FORBID_STEP = (_ref.train_step, _ref.vae_loss)


# ----------------------------------------------------------------------------- ELBO
class ElboLoss(Check):
    r"""(loss, reconstruction, kl) with loss = mean_b[ Σ_pixels BCE + β · KL ], the KL from ``kl_fn``."""
    name = "vae.elbo_loss"
    student = "elbo_loss"
    passed = "reconstruction (nats/image, summed over pixels), KL (from kl_fn) and the β-weighted loss are right."

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            b, k, dtype, betas, binary = 4, 5, torch.float32, (1.0, 3.0), False
        else:
            b, k, dtype = _pick(seed, 1, (1, 2, 3, 5)), _pick(seed, 2, (2, 3, 5, 8)), _dtype(seed)
            betas, binary = (_pick(seed, 3, (0.25, 0.5, 2.0)), _pick(seed, 4, (4.0, 6.0, 10.0))), bool(seed % 2)
        x = fixed_uniform(b, 1, 28, 28, seed=seed + 1, dtype=dtype)  # (B, 1, 28, 28)
        mu, logvar = _gaussian(b, k, dtype, seed + 2)
        return {"x_logits": (2.5 * fixed_normal(b, 1, 28, 28, seed=seed, dtype=torch.float64)).to(dtype),
                "x": (x > 0.5).to(dtype) if binary else x, "mu": mu, "logvar": logvar, "betas": betas}

    def run(self, fn, inputs: dict) -> dict:
        if not _takes(fn, "kl_fn"):
            raise Mistake("`elbo_loss` has no parameter `kl_fn`: its signature is "
                          "elbo_loss(x_logits, x, mu, logvar, beta=1.0, kl_fn=kl_divergence).", id="missing-kl-fn")
        return {"betas": [self._run_one(fn, inputs, beta) for beta in inputs["betas"]]}

    def _run_one(self, fn, inputs: dict, beta: float) -> dict:
        xl, m, lv = (inputs[k].clone().requires_grad_(True) for k in ("x_logits", "mu", "logvar"))
        handed = []

        def kl_fn(mu, logvar):  # the reference KL, recording what it was handed
            handed.append([mu.detach().clone(), logvar.detach().clone()])
            return _ref.kl_divergence(mu, logvar)

        try:
            out = run_student(fn, xl, inputs["x"], m, lv, beta, kl_fn=kl_fn, name=self.student, forbidden=_FORBID_ELBO)
        except Mistake as err:
            if err.id == "crash" and self._takes_probabilities(fn, inputs, beta, kl_fn):
                raise Mistake("`elbo_loss`: the logits were given to a loss that expects probabilities "
                              "(F.binary_cross_entropy); use F.binary_cross_entropy_with_logits(x_logits, x).",
                              id="logits-as-probabilities") from None
            raise
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            return {"type": type(out).__name__, "length": len(out) if isinstance(out, (tuple, list)) else -1}
        loss, recon, kl = out
        ev = {"type": "tuple", "loss": _plain(loss), "recon": _plain(recon), "kl": _plain(kl),
              "requires_grad": isinstance(loss, torch.Tensor) and loss.requires_grad,
              "kl_calls": len(handed), "kl_handed": handed[:1]}
        if ev["requires_grad"] and loss.numel() == 1:
            g_xl, g_mu = torch.autograd.grad(loss.reshape(()), [xl, m], allow_unused=True)
            ev.update(g_logits=g_xl, g_mu=g_mu)
        return ev

    def _takes_probabilities(self, fn, inputs, beta, kl_fn) -> bool:
        """After a crash: does the same call succeed when the logits are squashed into [0, 1]?"""
        try:
            run_student(fn, torch.sigmoid(inputs["x_logits"]), inputs["x"], inputs["mu"], inputs["logvar"], beta,
                        kl_fn=kl_fn, name=self.student, forbidden=_FORBID_ELBO)
        except Mistake:
            return False
        return True

    def judge(self, inputs: dict, ev: dict) -> None:
        records = ev.get("betas")
        if not isinstance(records, list) or len(records) != len(inputs["betas"]):
            raise Mistake(f"`{self.student}`: the check's result is incomplete.", id="malformed-evidence")
        for beta, rec in zip(inputs["betas"], records):
            self._judge_one(inputs, beta, rec if isinstance(rec, dict) else {})

    def _judge_one(self, inputs: dict, beta: float, ev: dict) -> None:
        name = self.student
        x_logits, x, mu, logvar = (inputs[k].double() for k in ("x_logits", "x", "mu", "logvar"))
        b = x.shape[0]
        if ev.get("type") != "tuple":
            n = ev.get("length", -1)
            raise Mistake(f"`{name}` should return a tuple (loss, reconstruction, kl), got {ev.get('type')}"
                          + (f" of length {n}" if isinstance(n, int) and n >= 0 else "") + ".", id="not-a-tuple")
        loss_s, recon_s, kl_s = (_scalar(ev.get(k), name, f" ({w}, beta={beta:g})")
                                 for k, w in (("loss", "loss"), ("recon", "reconstruction"), ("kl", "kl")))
        bce = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none")  # (B, 1, 28, 28)
        recon = bce.flatten(1).sum(1)  # (B,)
        kl = _kl_terms(mu, logvar).sum(-1)  # (B,)
        p = torch.sigmoid(x_logits)
        compare(recon_s, recon.mean(), name, {
            ("recon-mean-over-pixels", "the reconstruction is averaged over the pixels (F.binary_cross_entropy_with_"
             "logits averages by default); −log p(x|z) is a SUM over the pixels: reduction='none', .sum over pixels, "
             "then .mean over the batch — or reduction='sum' divided by the batch size."): bce.mean(),
            ("recon-sum-over-batch", "the reconstruction is summed over the batch as well; average it over the batch "
             "(nats per image)."): recon.sum() if b > 1 else None,
            ("probabilities-as-logits", "probabilities were passed where logits are expected: x_logits are raw "
             "decoder outputs; give them to binary_cross_entropy_with_logits without applying torch.sigmoid first."):
                F.binary_cross_entropy_with_logits(p, x, reduction="none").flatten(1).sum(1).mean(),
            ("probabilities-as-logits", "probabilities were passed where logits are expected (and averaged over "
             "pixels): give the raw x_logits to binary_cross_entropy_with_logits."):
                F.binary_cross_entropy_with_logits(p, x).mean(),
            ("mse-not-bce", "that is a squared error; a Bernoulli decoder's −log p(x|z) is the binary "
             "cross-entropy."): (p - x).pow(2).flatten(1).sum(1).mean(),
            ("mse-not-bce", "that is a squared error on the logits; a Bernoulli decoder's −log p(x|z) is the binary "
             "cross-entropy with logits."): (x_logits - x).pow(2).flatten(1).sum(1).mean(),
            ("recon-wrong-sign", "the reconstruction has the wrong sign: −log p(x|z) = BCE ≥ 0."): -recon.mean(),
        }, what=f" (reconstruction, beta={beta:g})")
        if not isinstance(ev.get("kl_calls"), int) or ev["kl_calls"] < 1:
            raise Mistake(f"`{name}` never called its `kl_fn` argument: compute the KL with kl_fn(mu, logvar) "
                          "(one value per sample), then average it over the batch.", id="kl-fn-not-used")
        handed = ev.get("kl_handed")
        if not (isinstance(handed, list) and handed and isinstance(handed[0], list) and len(handed[0]) == 2):
            raise Mistake(f"`{name}`: the check's result is incomplete.", id="malformed-evidence")
        _handed_mistake(name, "kl_fn", mu, logvar, _tensor({"v": handed[0][0]}, "v", name, mu.shape),
                        _tensor({"v": handed[0][1]}, "v", name, mu.shape))
        kl_mistakes = {("kl-includes-beta", "the returned `kl` already includes β; return the plain KL and use β only "
                        "in `loss`."): beta * kl.mean() if beta != 1 else None,
                       ("kl-sum-over-batch", "the KL is summed over the batch; average it over the batch."):
                           kl.sum() if b > 1 else None}
        kl_mistakes.update(_kl_mistakes(mu, logvar, lambda v: v.mean()))
        compare(kl_s, kl.mean(), name, kl_mistakes, what=f" (kl, beta={beta:g})")
        r, q = recon.mean(), kl.mean()
        compare(loss_s, r + beta * q, name, {
            ("beta-on-recon", "β multiplies the reconstruction; it weights the KL only: loss = reconstruction + "
             "β · KL."): beta * r + q,
            ("beta-ignored", "β is ignored: loss = reconstruction + β · KL."): r + q,
            ("kl-wrong-sign-in-loss", "the KL enters with the wrong sign: −ELBO = reconstruction + β · KL."):
                r - beta * q,
            ("returns-elbo", "that is the ELBO itself; the loss to minimise is −ELBO = reconstruction + β · KL."):
                -(r + beta * q),
            ("beta-twice", "β is applied twice (to kl and again in loss)."): r + beta * beta * q,
        }, what=f" (loss, beta={beta:g})")
        g_xl, g_mu = ev.get("g_logits"), ev.get("g_mu")
        if ev.get("requires_grad") is not True or not (isinstance(g_xl, torch.Tensor)
                                                       and isinstance(g_mu, torch.Tensor)):
            raise Mistake(f"`{name}`: the loss is detached (no gradient reaches x_logits and mu) — keep it a "
                          "tensor built from them, no .item().", id="loss-detached")
        if not close(g_xl, (p - x) / b, 1e-4, 1e-7) or not close(g_mu, beta * mu / b, 1e-4, 1e-7):
            raise Mistake(f"`{name}`: the loss has the right value but not the gradient of reconstruction + "
                          "β · KL (averaged over the batch) with respect to x_logits and mu.", id="wrong-gradient")


# ----------------------------------------------------------------------------- training step
class TrainStep(Check):
    r"""One optimisation step: forward → loss_fn → zero_grad → backward → step; returns the loss."""
    name = "vae.train_step"
    student = "train_step"
    passed = "one gradient step on −ELBO (forward → loss_fn → zero_grad → backward → step) is right."

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            b, dtype, beta, lr = 3, torch.float32, 3.0, 0.1
        else:
            b, dtype = _pick(seed, 1, (1, 2, 4)), _dtype(seed)
            beta, lr = _pick(seed, 2, (0.5, 2.5, 4.0)), _pick(seed, 3, (0.05, 0.1))
        model_seed = seed % 1000
        n = _flat(_tiny_vae(dtype, b, model_seed)).numel()
        return {"x": fixed_uniform(b, 1, 28, 28, seed=seed + 1, dtype=dtype), "beta": beta, "lr": lr,
                "model_seed": model_seed, "stale": fixed_normal(n, seed=seed + 2, dtype=dtype)}

    def run(self, fn, inputs: dict) -> dict:
        if not _takes(fn, "loss_fn"):
            raise Mistake("`train_step` has no parameter `loss_fn`: its signature is "
                          "train_step(model, optimizer, x, beta=1.0, loss_fn=elbo_loss).", id="missing-loss-fn")
        x = inputs["x"]
        model = _tiny_vae(x.dtype, x.shape[0], inputs["model_seed"])
        offset = 0
        for p in model.parameters():  # old gradients left over from a previous step
            p.grad = inputs["stale"][offset: offset + p.numel()].reshape(p.shape).clone()
            offset += p.numel()
        optimizer = torch.optim.SGD(model.parameters(), lr=inputs["lr"])
        calls = []

        def loss_fn(x_logits, x, mu, logvar, beta=1.0, kl_fn=None):  # the reference loss, recording its inputs
            calls.append({"x_logits": _plain(x_logits), "beta": _plain(beta)})
            return _ref.elbo_loss(x_logits, x, mu, logvar, beta)

        out = run_student(fn, model, optimizer, x, inputs["beta"], loss_fn=loss_fn, name=self.student,
                          forbidden=_FORBID_STEP)
        return {"after": _flat(model), "out": _plain(out), "calls": calls[:2], "n_calls": len(calls)}

    def judge(self, inputs: dict, ev: dict) -> None:
        name, beta = self.student, inputs["beta"]
        x = inputs["x"]
        n_calls, calls = ev.get("n_calls"), ev.get("calls")
        if not isinstance(n_calls, int) or n_calls < 1:
            raise Mistake(f"`{name}` never called its `loss_fn` argument: compute the loss with "
                          "loss_fn(x_logits, x, mu, logvar, beta).", id="loss-fn-not-called")
        first = calls[0] if isinstance(calls, list) and calls and isinstance(calls[0], dict) else {}
        with torch.no_grad():
            x_logits = _tiny_vae(x.dtype, x.shape[0], inputs["model_seed"])(x)[0].double()
        handed = _tensor(first, "x_logits", name, x_logits.shape, " (the x_logits handed to loss_fn)")
        if not close(handed, x_logits):
            if close(handed, torch.sigmoid(x_logits)):
                raise Mistake(f"`{name}`: probabilities were passed to loss_fn where logits are expected: model(x) "
                              "already returns logits.", id="probabilities-to-loss")
            raise Mistake(f"`{name}` hands loss_fn other x_logits than model(x) returns.", id="wrong-arguments-handed")
        handed_beta = first.get("beta")
        handed_beta = float(handed_beta.reshape(-1)[0]) if isinstance(handed_beta, torch.Tensor) \
            and handed_beta.numel() == 1 else handed_beta
        if not isinstance(handed_beta, float) or abs(handed_beta - beta) > 1e-9:
            raise Mistake(f"`{name}`: β is not passed on to loss_fn (the step used β = {handed_beta}).",
                          id="beta-not-passed")
        expected, loss = _step_result(inputs)
        after = _tensor(ev, "after", name, expected.shape, " (parameters after the step)")
        start = _flat(_tiny_vae(x.dtype, x.shape[0], inputs["model_seed"])).double()
        if close(after, start, rtol=0, atol=0):
            raise Mistake(f"`{name}` did not change the parameters: the order is optimizer.zero_grad() → "
                          "loss.backward() → optimizer.step().", id="no-step")
        compare(after, expected, name, {
            ("no-zero-grad", "optimizer.zero_grad() is missing, so old gradients were added to the new ones."):
                lambda: _step_result(inputs, zero=False)[0],
            ("ascent", "the step went uphill: minimise the loss (−ELBO), do not negate it."):
                lambda: _step_result(inputs, sign=-1.0)[0],
        }, what=" (parameters after the step)", rtol=1e-4, atol=1e-6)
        out = _scalar(ev.get("out"), name, " (the loss: return loss.item())")
        if not close(out, loss.double(), rtol=1e-4, atol=1e-4):
            raise Mistake(f"`{name}` returned {float(out):.6g}, but the loss on this batch before the update is "
                          f"{float(loss):.6g}: return the loss you called backward() on (loss.item()).",
                          id="wrong-loss-returned")
