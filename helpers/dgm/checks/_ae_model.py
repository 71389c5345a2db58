r"""The lab-1 check of the student's ``Autoencoder`` class (re-exported by :mod:`dgm.checks.ae`).

The contract is tested by behaviour, for any architecture the task text allows (MLP of any width, conv
layers, nn.Sequential or explicit layers, ReLU/Tanh/… hidden layers):

* ``encode``: (B, 1, 28, 28) → (B, d), the output of a linear layer — no activation on the code;
* ``decode``: (B, d) → (B, 1, 28, 28) in [0, 1], able to reach the whole range (one sigmoid at the end);
* ``forward(x) = decode(encode(x))``, with gradients flowing through the bottleneck.

"Linear code" and "whole range" are judged after a short fit of a fresh model: the encoder is trained
towards codes ±3 and the decoder towards an image of 0s and 1s. A linear code gets there in a few Adam
steps; a code squashed by ReLU/sigmoid/tanh cannot leave its range, and a sigmoid applied twice keeps
every pixel in [0.5, 0.73].
"""
from __future__ import annotations

import torch
from torch import nn

from .. import ae as ref
from ._check import VISIBLE, Check, tensor_evidence
from ._core import Mistake, close, fixed_normal, fixed_uniform, reference_guard, run_student

__all__ = ["AutoencoderCheck", "images", "guarded_call"]

CODE_TARGET = 3.0       # the fit pulls codes towards ±3 …
CODE_REACH = 1.5        # … and the judge asks that they get beyond ±1.5
PIXEL_LOW, PIXEL_HIGH = 0.05, 0.95
FIT_STEPS, FIT_LR = 200, 0.01  # gentle enough for bias-free layers, 784 inputs and dead ReLUs


def images(b: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    return fixed_uniform(b, 1, 28, 28, seed=seed, dtype=dtype)  # (B, 1, 28, 28) in [0, 1)


def guarded_call(fn, *args, name: str, forbidden, **kwargs):
    """:func:`run_student` whose calls into ``forbidden`` reference code fail with the id "reference-call"."""
    with reference_guard(forbidden) as hits:
        try:
            out = run_student(fn, *args, name=name, **kwargs)
        except Mistake:
            if not hits:
                raise
            out = None
    if hits:
        raise Mistake(f"`{name}` calls the dgm reference implementation ({hits[0]}). Write your own "
                      "implementation — the check compares your code against that reference.", id="reference-call")
    return out


def _grad_sums(out, params: list, seed: int) -> torch.Tensor:
    r"""Σ|∂⟨w, out⟩/∂θ| per parameter tensor (0 where no gradient arrives): where gradients flow."""
    sums = torch.zeros(len(params), dtype=torch.float64)
    if not isinstance(out, torch.Tensor) or not out.requires_grad or not params:
        return sums
    w = fixed_normal(*out.shape, seed=seed, dtype=out.dtype).to(out.device)
    grads = torch.autograd.grad((out * w).sum(), params, allow_unused=True, retain_graph=True)
    for i, g in enumerate(grads):
        if g is not None:
            sums[i] = g.detach().abs().sum().double().cpu()
    return sums


def _fit(model, x, t, c, y) -> None:
    """A short Adam fit: codes of x towards t (±3), decoded c towards y (0s and 1s). Stops once there."""
    opt = torch.optim.Adam(model.parameters(), lr=FIT_LR)
    for step in range(FIT_STEPS):
        opt.zero_grad()
        z, x_c = model.encode(x), model.decode(c)  # (B, d), (2, 1, 28, 28)
        ((z - t).pow(2).mean() + (x_c - y).pow(2).mean()).backward()
        opt.step()
        if step % 5 == 4:
            with torch.no_grad():
                z, x_c = model.encode(x), model.decode(c)
                if z.min() < -2 and z.max() > 2 and x_c.min() < 0.03 and x_c.max() > 0.97:
                    return


def _cpu(t):
    return t.detach().cpu() if isinstance(t, torch.Tensor) else t


class AutoencoderCheck(Check):
    r"""``Autoencoder(latent_dim)``: z = encode(x) ∈ R^d linear, x̂ = decode(z) ∈ [0, 1], forward = decode∘encode."""
    name = "ae.autoencoder"
    student = "Autoencoder"
    passed = ("encode → (B, d) linear codes, decode → (B, 1, 28, 28) reaching all of [0, 1], "
              "forward = decode(encode(x)) with gradients through the bottleneck.")
    n_hidden = 2

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            dims, b = (2, 5), 4
        else:  # hidden: a small and a large bottleneck, batch 2..6, all from the seed
            dims, b = (2 + seed % 3, 8 + (seed // 3) % 25), 2 + (seed // 7) % 5
        y = torch.zeros(2, 1, 28, 28)
        y[:, :, :, 14:] = 1.0  # target image of the decoder fit: left half 0, right half 1
        models = []
        for k, d in enumerate(dims):
            sign = torch.tensor([(-1.0) ** j for j in range(d)])  # (d,)  +, −, +, …
            models.append({"d": d, "init_seed": (seed + 7919 * k) % 2**31, "fit": k == 0,  # one fit per case
                           "t": CODE_TARGET * sign.expand(b, d).clone(),            # (B, d)
                           "c": 3.0 * fixed_normal(2, d, seed=seed + 11 + k)})      # (2, d)
        return {"x": images(b, seed), "y": y, "models": models}

    # ------------------------------------------------------------------ kernel side
    def run(self, fn, inputs: dict) -> dict:
        return {"models": [self._run_one(fn, inputs, spec) for spec in inputs["models"]]}

    def _run_one(self, fn, inputs: dict, spec: dict) -> dict:
        d, forbidden = spec["d"], [ref.Autoencoder]
        with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the notebook's RNG stream alone
            torch.manual_seed(spec["init_seed"])
            model = guarded_call(fn, d, name=f"Autoencoder({d})", forbidden=forbidden)
        if not isinstance(model, nn.Module):
            raise Mistake(f"`Autoencoder({d})` should create an nn.Module, got {type(model).__name__}.",
                          id="not-a-module")
        if any(isinstance(m, ref.Autoencoder) for m in model.modules()):
            raise Mistake("`Autoencoder` uses dgm.ae.Autoencoder. Write your own implementation: your own "
                          "encoder and decoder.", id="reference-call")
        for method in ("encode", "decode"):
            if not callable(getattr(model, method, None)):
                raise Mistake(f"`Autoencoder` needs a method `{method}`.", id="missing-method")
        params = [p for p in model.parameters() if p.requires_grad]
        device = params[0].device if params else torch.device("cpu")
        x, y = inputs["x"].to(device), inputs["y"].to(device)  # (B, 1, 28, 28), (2, 1, 28, 28)
        t, c = spec["t"].to(device), spec["c"].to(device)      # (B, d), (2, d)
        model.eval()  # dropout off, batch-norm on running statistics: the check's numbers are deterministic
        z = guarded_call(model.encode, x, name="encode", forbidden=forbidden)
        if not isinstance(z, torch.Tensor) or tuple(z.shape) != (x.shape[0], d):
            return {"d": d, "z": _cpu(z)} if isinstance(z, torch.Tensor) else {"d": d, "type": type(z).__name__}
        x_dec = guarded_call(model.decode, z, name="decode", forbidden=forbidden)
        enc_grad = _grad_sums(z, params, seed=5)
        x_hat = guarded_call(model, x, name="Autoencoder.forward", forbidden=forbidden)
        fwd_grad = _grad_sums(x_hat, params, seed=6)
        ev = {"d": d, "z": _cpu(z), "x_dec": _cpu(x_dec), "x_hat": _cpu(x_hat),
              "enc_grad": enc_grad, "fwd_grad": fwd_grad}
        image = (x.shape[0], 1, 28, 28)
        if spec["fit"] and params and all(isinstance(o, torch.Tensor) and tuple(o.shape) == image
                                          for o in (x_hat, x_dec)):
            guarded_call(_fit, model, x, t, c, y, name="training your Autoencoder briefly", forbidden=forbidden)
            with torch.no_grad():
                ev["z_fit"] = _cpu(guarded_call(model.encode, x, name="encode", forbidden=forbidden))
                ev["x_fit"] = _cpu(guarded_call(model.decode, c, name="decode", forbidden=forbidden))
        return ev

    # ------------------------------------------------------------------ grader side
    def judge(self, inputs: dict, ev: dict) -> None:
        per = ev.get("models")
        if not isinstance(per, list) or len(per) != len(inputs["models"]) or not all(isinstance(e, dict) for e in per):
            raise Mistake("`Autoencoder`: the check's evidence is incomplete.", id="malformed-evidence")
        for spec, e in zip(inputs["models"], per):
            self._judge_one(inputs["x"].shape[0], spec["d"], spec["fit"], e)

    @staticmethod
    def _judge_one(b: int, d: int, fitted: bool, ev: dict) -> None:
        at = f" (latent_dim={d})"
        z = tensor_evidence(ev, "encode", "z")
        if z.dim() != 2 or z.shape[0] != b:
            raise Mistake(f"`encode` should return codes of shape (B, latent_dim) = ({b}, {d}){at}, got "
                          f"{tuple(z.shape)}. Flatten the image before the first nn.Linear.", id="code-shape")
        if z.shape[1] != d:
            raise Mistake(f"Wrong bottleneck size: with latent_dim={d}, `encode` returned codes of size "
                          f"{z.shape[1]}. The encoder's last layer must output latent_dim numbers.",
                          id="wrong-latent-size")
        x_hat, x_dec = tensor_evidence(ev, "forward", "x_hat"), tensor_evidence(ev, "decode", "x_dec")
        for name, out in (("forward", x_hat), ("decode", x_dec)):
            if tuple(out.shape) != (b, 1, 28, 28):
                hint = " Reshape the decoder's output with .view(-1, 1, 28, 28)." if out.numel() == b * 784 else ""
                raise Mistake(f"Wrong output shape: `{name}` returned {tuple(out.shape)}{at}, expected "
                              f"({b}, 1, 28, 28) like the input images.{hint}", id="output-shape")
        for name, out in (("encode", z), ("forward", x_hat), ("decode", x_dec)):
            if not bool(torch.isfinite(out).all()):
                raise Mistake(f"`{name}` returned NaN or inf values{at}.", id="not-finite")
        _in_unit_interval(x_hat, "forward", at)
        if not close(x_dec, x_hat, rtol=1e-4, atol=1e-5):
            raise Mistake("`forward(x)` should be `decode(encode(x))`: the image must pass through the "
                          f"bottleneck{at}.", id="forward-not-decode-encode")
        enc, fwd = ev.get("enc_grad"), ev.get("fwd_grad")
        if not (isinstance(enc, torch.Tensor) and isinstance(fwd, torch.Tensor) and enc.shape == fwd.shape
                and enc.dim() == 1):
            raise Mistake("`Autoencoder`: the check's gradient evidence is missing.", id="malformed-evidence")
        if not bool((fwd > 0).any()):
            raise Mistake("No gradient reaches your parameters from forward(x): build the encoder and decoder "
                          "from trainable layers (nn.Linear, …) and avoid .detach(), .item() or numpy.",
                          id="no-gradient")
        if not bool((enc > 0).any()) or not bool((fwd[enc > 0] > 0).any()):
            raise Mistake("No gradient flows from forward(x) back into the encoder: keep the code z in the graph "
                          "between encode and decode (no .detach(), torch.no_grad() or .data).",
                          id="no-gradient-to-encoder")
        if not fitted:
            return
        z_fit, x_fit = tensor_evidence(ev, "encode", "z_fit"), tensor_evidence(ev, "decode", "x_fit")
        if tuple(z_fit.shape) != (b, d) or tuple(x_fit.shape) != (2, 1, 28, 28) \
                or not bool(torch.isfinite(z_fit).all() and torch.isfinite(x_fit).all()):
            raise Mistake("`Autoencoder`: after a short training your model returned codes or images of the wrong "
                          "shape, or NaN.", id="not-finite")
        lo, hi = z_fit.min().item(), z_fit.max().item()
        if hi <= CODE_REACH or lo >= -CODE_REACH:
            raise Mistake(f"The code is squashed by an activation{at}: trained briefly towards codes ±{CODE_TARGET:g}, "
                          f"your codes stayed in [{lo:.3g}, {hi:.3g}]. The code is the output of a linear layer: no "
                          "ReLU, sigmoid or tanh after the encoder's last nn.Linear.", id="code-activation")
        _in_unit_interval(x_fit, "decode", at)
        lo, hi = x_fit.min().item(), x_fit.max().item()
        if lo >= PIXEL_LOW or hi <= PIXEL_HIGH:
            raise Mistake(f"The decoder cannot reach the whole range [0, 1]{at}: trained briefly towards an image "
                          f"of 0s and 1s, its pixels stayed in [{lo:.3g}, {hi:.3g}]. Apply exactly one sigmoid, at "
                          "the end (a sigmoid applied twice is stuck in [0.5, 0.73]).", id="decoder-range-limited")


def _in_unit_interval(out: torch.Tensor, name: str, at: str) -> None:
    lo, hi = out.min().item(), out.max().item()
    if lo < 0 or hi > 1:
        raise Mistake(f"Wrong output range: `{name}` returned values in [{lo:.3g}, {hi:.3g}]{at}, but pixels lie in "
                      "[0, 1]. End the decoder with a sigmoid.", id="output-range")
