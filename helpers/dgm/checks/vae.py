r"""Checks for lab 2 (variational autoencoder).

    from dgm.checks import vae as checks
    checks.check_reparameterize(reparameterize)
    checks.check_kl_divergence(kl_divergence)
    checks.check_elbo_loss(elbo_loss)        # elbo_loss(..., kl_fn=kl_divergence): graded with the reference KL
    checks.check_vae_model(VAE)              # VAE(k, reparameterize=...): graded with the reference sampler
    checks.check_train_step(train_step)      # train_step(..., loss_fn=elbo_loss): graded with the reference loss
    checks.check_active_units(active_units)  # active_units(mu, threshold) -> bool mask (k,)

Each check is a :class:`~dgm.checks._check.Check`: ``run`` collects evidence in the student's kernel,
``judge`` decides from it. Deterministic parts use a fixed ε; the random part of ``reparameterize``
(ε drawn when ``eps=None``) is judged with statistics over many samples, never against a seeded stream.
Error carried forward: a later part gets the reference of the earlier parts as explicit parameters,
so a wrong KL costs the KL cell only.
"""
from __future__ import annotations

import warnings

import torch

from .. import vae as _ref
from ._check import VISIBLE, Check
from ._core import Mistake, close, compare, fixed_normal, fixed_uniform, run_student
from ._vae_active import check_active_units
from ._vae_elbo import ElboLoss, TrainStep
from ._vae_fixtures import _dtype, _gaussian, _kl_mistakes, _kl_terms, _pick, _plain, _tensor
from ._vae_model import VaeModel

__all__ = ["check_reparameterize", "check_kl_divergence", "check_elbo_loss", "check_vae_model", "check_train_step",
           "check_active_units", "CELLS"]

_FORBID_REPARAM = (_ref.reparameterize,)
_FORBID_KL = (_ref.kl_divergence, _ref.kl_per_dim, _ref.elbo_loss)

_NO_GRAD = ("no gradient reaches μ and log σ²: z must be computed as μ + σ ⊙ ε with ordinary tensor "
            "operations (no .detach(), torch.no_grad(), .item() or Normal(...).sample(), which cut the graph, and "
            "no torch.normal(mu, sigma), whose gradient PyTorch defines as zero; Normal(...).rsample() is fine — "
            "that is the whole point of the reparameterization trick).")
_N = 8000  # samples for the statistics of ε


# ----------------------------------------------------------------------------- reparameterize
def _meta_probe(fn, *args) -> str:
    """Where ``fn`` puts its result when μ lives on the ``meta`` device (data-free: only device rules).

    torch.distributions' argument validation reads values, which meta tensors do not have; it is
    switched off during the probe so that ``Normal(mu, sigma).rsample()`` answers are judged fairly.
    """
    dist = torch.distributions.Distribution
    previous = dist._validate_args
    dist.set_default_validate_args(False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(*(a.to("meta") for a in args))
    except Exception:  # noqa: BLE001 - judged by comparing with the call that is given ε
        return "raised"
    finally:
        dist.set_default_validate_args(previous)
    return out.device.type if isinstance(out, torch.Tensor) else "not-a-tensor"


class Reparameterize(Check):
    r"""z = μ + σ ⊙ ε with σ = exp(½ logvar): values (fixed ε), gradients, and ε's statistics."""
    name = "vae.reparameterize"
    student = "reparameterize"
    passed = "z = μ + σ ⊙ ε is right, differentiable in μ and log σ², and ε ~ N(0, I) on μ's device."

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            b, k, dtype = 6, 4, torch.float32
        else:
            b, k, dtype = _pick(seed, 1, (1, 2, 3, 5, 7)), _pick(seed, 2, (1, 2, 4, 7, 9)), _dtype(seed)
        mu, logvar = _gaussian(b, k, dtype, seed)  # (B, k)
        mu_n = fixed_uniform(1, 3, seed=seed + 7, low=-2.0, high=2.0, dtype=dtype).expand(_N, 3).contiguous()
        logvar_n = torch.tensor([[-1.0, 0.0, 1.0]], dtype=dtype).expand(_N, 3).contiguous()  # σ ≠ σ² off column 1
        return {"mu": mu, "logvar": logvar, "eps": fixed_normal(b, k, seed=seed + 3, dtype=dtype),
                "mu_n": mu_n, "logvar_n": logvar_n, "device_probe": case != VISIBLE}  # meta's first use costs seconds

    def run(self, fn, inputs: dict) -> dict:
        mu, logvar, eps = inputs["mu"].requires_grad_(True), inputs["logvar"].requires_grad_(True), inputs["eps"]

        def call(*args):
            return run_student(fn, *args, name=self.student, forbidden=_FORBID_REPARAM)

        z = call(mu, logvar, eps)
        ev = {"z": _plain(z), "requires_grad": isinstance(z, torch.Tensor) and z.requires_grad}
        if ev["requires_grad"] and tuple(z.shape) == tuple(mu.shape):
            g_mu, g_lv = torch.autograd.grad(z.sum(), [mu, logvar], allow_unused=True)
            ev.update(g_mu=g_mu, g_logvar=g_lv)
        ev["z_again"] = _plain(call(mu, logvar, eps.clone()))
        mu_n, logvar_n = inputs["mu_n"], inputs["logvar_n"]
        try:  # a crash without eps is reported after the values with eps, which name more mistakes
            ev["noise"] = _plain(call(mu_n, logvar_n))
            ev["noise_again"] = _plain(call(mu_n, logvar_n))
        except Mistake as m:
            ev["noise_error"] = [m.id, str(m)[:2000]]
        if inputs["device_probe"]:
            ev["meta"] = _meta_probe(fn, mu_n[:2], logvar_n[:2])
            ev["meta_with_eps"] = _meta_probe(fn, mu_n[:2], logvar_n[:2], mu_n[:2])
        return ev

    def judge(self, inputs: dict, ev: dict) -> None:
        name = self.student
        mu, logvar, eps = (inputs[k].detach().double() for k in ("mu", "logvar", "eps"))
        z = _tensor(ev, "z", name, mu.shape, " (with a given eps)")
        sigma = torch.exp(0.5 * logvar)
        expected = mu + sigma * eps
        if not close(z, expected):
            z_again = ev.get("z_again")
            if isinstance(z_again, torch.Tensor) and z_again.shape == z.shape and not close(z, z_again, 0, 0):
                raise Mistake(f"`{name}` ignores the `eps` argument (two calls with the same eps gave different z). "
                              "Use the eps you are given and draw torch.randn_like(mu) only when eps is None.",
                              id="ignores-eps")
            compare(z, expected, name, {
                ("sigma-is-variance", "σ must be the standard deviation exp(½·logvar); exp(logvar) is the "
                 "variance σ²."): mu + logvar.exp() * eps,
                ("returns-mu", "it returns μ without noise: z = μ + σ ⊙ ε."): mu,
                ("logvar-as-sigma", "logvar is log σ², not σ: use σ = exp(½·logvar)."): mu + logvar * eps,
                ("sigma-sign", "the exponent has the wrong sign: σ = exp(+½·logvar)."): mu + torch.exp(-0.5 * logvar) * eps,
                ("missing-mu", "μ is missing: z = μ + σ ⊙ ε."): sigma * eps,
                ("missing-eps", "ε is missing: z = μ + σ ⊙ ε."): mu + sigma,
            }, what=" (with a given eps)")
        g_mu, g_lv = ev.get("g_mu"), ev.get("g_logvar")
        if ev.get("requires_grad") is not True or not (isinstance(g_mu, torch.Tensor)
                                                       and isinstance(g_lv, torch.Tensor)):
            raise Mistake(f"`{name}`: {_NO_GRAD}", id="no-gradient")
        if not close(g_mu, torch.ones_like(mu)) or not close(g_lv, 0.5 * sigma * eps):
            raise Mistake(f"`{name}`: the gradients ∂z/∂μ and ∂z/∂logvar are not those of μ + exp(½·logvar) ⊙ ε.",
                          id="wrong-gradient")
        self._judge_noise(inputs, ev)

    def _judge_noise(self, inputs: dict, ev: dict) -> None:
        """eps=None: ε = (z − μ)/σ must look like fresh, independent N(0, 1) draws on μ's device."""
        name = self.student
        mu, logvar = inputs["mu_n"].double(), inputs["logvar_n"].double()
        error = ev.get("noise_error")
        if isinstance(error, list) and len(error) == 2 and all(isinstance(v, str) for v in error):
            raise Mistake(error[1], id=error[0])
        z = _tensor(ev, "noise", name, mu.shape, " (called without eps)")
        e = (z - mu) / torch.exp(0.5 * logvar)  # should be ε ~ N(0, I)
        if bool(e.abs().max() < 1e-9):
            raise Mistake(f"`{name}` returns μ when eps is None: draw eps = torch.randn_like(mu) and return "
                          "μ + σ ⊙ ε.", id="mu-without-eps")
        if bool((e.std(dim=0) < 1e-9).all()):
            raise Mistake(f"`{name}` reuses the same ε for every sample in the batch: draw one ε per entry "
                          "with torch.randn_like(mu).", id="eps-shared-over-batch")
        if close((z - mu).std(dim=0), logvar[0].exp(), rtol=0.07, atol=0):
            raise Mistake(f"`{name}` (without eps): σ must be exp(½·logvar); exp(logvar) is the variance.",
                          id="sigma-is-variance")
        if bool((e.min() >= 0) and (e.max() <= 1)):
            raise Mistake(f"`{name}`: ε looks uniform on [0, 1) — use torch.randn_like (standard normal), "
                          "not torch.rand_like.", id="uniform-eps")
        mean, std = e.mean(dim=0), e.std(dim=0)
        if bool((mean.abs() > 0.07).any() or ((std - 1).abs() > 0.07).any()):
            raise Mistake(f"`{name}`: ε = (z − μ)/σ is not standard normal over {_N} samples (mean "
                          f"{[round(v, 3) for v in mean.tolist()]}, std {[round(v, 3) for v in std.tolist()]}; "
                          "expected 0 and 1). Draw eps = torch.randn_like(mu).", id="eps-not-standard-normal")
        if bool((torch.corrcoef(e.T) - torch.eye(3, dtype=e.dtype)).abs().max() > 0.1):
            raise Mistake(f"`{name}`: the latent dimensions share their noise (ε entries are correlated): "
                          "draw an independent ε for every entry with torch.randn_like(mu).", id="eps-correlated")
        again = ev.get("noise_again")
        if isinstance(again, torch.Tensor) and again.shape == z.shape and close(again, z, rtol=0, atol=0):
            raise Mistake(f"`{name}` reuses ε between calls (two calls gave the same z): draw fresh noise inside "
                          "the function on every call.", id="eps-reused-between-calls")
        meta, with_eps = ev.get("meta"), ev.get("meta_with_eps")
        if inputs["device_probe"] and (meta not in ("meta", "raised", "not-a-tensor")
                                       or (meta == "raised" and with_eps == "meta")):
            raise Mistake(f"`{name}` does not create ε on μ's device: use torch.randn_like(mu) "
                          "(torch.randn(shape) always lands on the CPU, which breaks on a GPU).", id="eps-wrong-device")


check_reparameterize = Reparameterize()


# ----------------------------------------------------------------------------- KL
class KlDivergence(Check):
    r"""KL(N(μ, σ²) ‖ N(0, I)) = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²), one value per sample."""
    name = "vae.kl_divergence"
    student = "kl_divergence"
    passed = "the closed-form KL to N(0, I) is right (one value per sample, summed over latent dims)."

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            b, k, dtype = 5, 3, torch.float32
        else:
            b, k, dtype = _pick(seed, 1, (1, 2, 4, 6)), _pick(seed, 2, (2, 3, 6, 10)), _dtype(seed)
        mu, logvar = _gaussian(b, k, dtype, seed)
        return {"mu": mu, "logvar": logvar}

    def run(self, fn, inputs: dict) -> dict:
        mu, logvar = inputs["mu"].requires_grad_(True), inputs["logvar"].requires_grad_(True)
        out = run_student(fn, mu, logvar, name=self.student, forbidden=_FORBID_KL)
        ev = {"out": _plain(out), "requires_grad": isinstance(out, torch.Tensor) and out.requires_grad}
        if ev["requires_grad"]:
            g_mu, g_lv = torch.autograd.grad(out.sum(), [mu, logvar], allow_unused=True)
            ev.update(g_mu=g_mu, g_logvar=g_lv)
        return ev

    def judge(self, inputs: dict, ev: dict) -> None:
        name = self.student
        mu, logvar = inputs["mu"].detach().double(), inputs["logvar"].detach().double()
        b = mu.shape[0]
        expected = _kl_terms(mu, logvar).sum(-1)  # (B,)
        out = _tensor(ev, "out", name)
        if tuple(out.shape) != (b,):
            for (mistake_id, message), value in {
                ("kl-batch-mean", "it averages over the batch; return one KL value per sample, shape (B,)."):
                    expected.mean(),
                ("kl-batch-sum", "it sums over the batch; return one KL value per sample, shape (B,)."): expected.sum(),
                ("kl-no-reduction", "it returns the per-dimension terms (B, k): sum them over the latent dims "
                 "(dim=-1) to get shape (B,)."): _kl_terms(mu, logvar),
            }.items():
                if out.numel() == value.numel() and close(out.reshape(value.shape), value):
                    raise Mistake(f"`{name}`: {message}", id=mistake_id)
            raise Mistake(f"`{name}` returned shape {tuple(out.shape)}; expected ({b},): one KL per sample.",
                          id="wrong-shape")
        compare(out, expected, name, _kl_mistakes(mu, logvar, lambda v: v))
        g_mu, g_lv = ev.get("g_mu"), ev.get("g_logvar")
        if ev.get("requires_grad") is not True or not (isinstance(g_mu, torch.Tensor)
                                                       and isinstance(g_lv, torch.Tensor)):
            raise Mistake(f"`{name}` is detached from μ and logvar (no gradient): keep it a torch expression, "
                          "no .item()/numpy.", id="no-gradient")
        if not close(g_mu, mu) or not close(g_lv, 0.5 * (logvar.exp() - 1)):
            raise Mistake(f"`{name}`: the gradients to μ and logvar are not those of the KL formula.",
                          id="wrong-gradient")


check_kl_divergence = KlDivergence()
check_elbo_loss = ElboLoss()
check_vae_model = VaeModel()
check_train_step = TrainStep()

#: test cell grade_id → the checks it runs (visible case, then the hidden cases)
CELLS = {
    "test_reparameterize": (check_reparameterize,),
    "test_vae": (check_vae_model,),
    "test_kl_divergence": (check_kl_divergence,),
    "test_elbo_loss": (check_elbo_loss,),
    "test_train_step": (check_train_step,),
    "test_active_units": (check_active_units,),
}
