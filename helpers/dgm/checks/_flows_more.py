r"""Lab-5 checks, part 2: the mask (a design decision, judged by behaviour), dequantization and bits/dim."""
from __future__ import annotations

import math

import torch

from .. import flows as ref
from ._check import VISIBLE, Check, tensor_evidence
from ._core import Mistake, compare, fixed_normal, fixed_uniform, run_student
from ._flows_fixtures import FixedNet, image_shape, jacobian, pixels


# ----------------------------------------------------------------------------- the mask: a decision
class ImageMask(Check):
    r"""``image_mask(H, W, parity) -> (1, H, W)``: any binary, balanced, local mask whose parities complement.

    Judged by behaviour: the reference coupling with this mask and a 3×3 conv conditioner must be invertible,
    its autograd Jacobian triangular (no kept pixel depends on another pixel, no transformed pixel on another
    transformed pixel) and its log-determinant equal to slogdet of that Jacobian.
    """
    name = "flows.image_mask"
    student = "image_mask"
    passed = ("binary, half the pixels, parities complementary, every transformed pixel next to a kept one — "
              "and the coupling is invertible with a triangular Jacobian.")

    def inputs(self, seed: int, case: str) -> dict:
        h, w = (4, 4) if case == VISIBLE else (2 * (2 + seed % 3), 2 * (1 + (seed // 4) % 4))  # even: H 4..8, W 2..8
        return {"h": h, "w": w, "x": fixed_normal(2, 1, h, w, seed=seed, dtype=torch.float64),
                "net": FixedNet((1, h, w), seed + 5, torch.float64)}

    def run(self, fn, inputs: dict) -> dict:
        forbidden = [ref.checkerboard_mask, ref.channel_mask, ref.alternating_mask]
        m0 = run_student(fn, inputs["h"], inputs["w"], 0, name=self.student, forbidden=forbidden)
        m1 = run_student(fn, inputs["h"], inputs["w"], 1, name=self.student, forbidden=forbidden)
        return {"type": type(m0).__name__, "out": m0, "other": m1}

    def _mask(self, ev, key, h, w) -> torch.Tensor:
        m = tensor_evidence(ev, self.student, key)
        if tuple(m.shape) not in ((1, h, w), (h, w)):
            raise Mistake(f"`{self.student}({h}, {w}, …)` returned shape {tuple(m.shape)}; expected (1, {h}, {w}).",
                          id="wrong-shape")
        if not bool(torch.isfinite(m.double()).all()):
            raise Mistake(f"`{self.student}` returned NaN or inf.", id="mask-not-binary")
        return m.double().reshape(1, h, w)

    def judge(self, inputs: dict, ev: dict) -> None:
        name, h, w, x, net = self.student, inputs["h"], inputs["w"], inputs["x"], inputs["net"]
        m0, m1 = self._mask(ev, "out", h, w), self._mask(ev, "other", h, w)
        for m in (m0, m1):  # behaviour first: what the coupling does with this mask
            with torch.no_grad():
                z, log_det = ref.coupling_forward(x, m, net)
                back = ref.coupling_inverse(z, m, net)
            if not torch.allclose(back, x, rtol=1e-6, atol=1e-8):
                raise Mistake(f"`{name}`: with your mask the coupling cannot be inverted — the conditioner sees "
                              "coordinates that it also transforms. Use a 0/1 mask.", id="not-invertible")
            jac = jacobian(lambda v: ref.coupling_forward(v, m, net)[0], x[0])  # (D, D)
            keep = m.reshape(-1) > 0.5
            off = jac - torch.diag(torch.diagonal(jac))
            allowed = (~keep)[:, None] & keep[None, :]  # transformed row, kept column: the one non-zero block
            if bool((off.abs() > 1e-9)[~allowed].any()):
                raise Mistake(f"`{name}`: the coupling's Jacobian is not triangular with your mask (a coordinate "
                              "depends on another one of its own group). Use a 0/1 mask.", id="jacobian-not-triangular")
            if abs(torch.linalg.slogdet(jac)[1].item() - log_det[0].item()) > 1e-6:
                raise Mistake(f"`{name}`: log|det J| of the coupling disagrees with the Jacobian. Use a 0/1 mask.",
                              id="jacobian-not-triangular")
        if not bool(((m0 == 0) | (m0 == 1)).all()):
            raise Mistake(f"`{name}` must return 0s and 1s only (1 = kept, 0 = transformed).", id="mask-not-binary")
        if not torch.equal(m1, 1 - m0):
            raise Mistake(f"`{name}(H, W, 1)` must be 1 − `{name}(H, W, 0)`: two consecutive layers must transform "
                          "every pixel between them.", id="masks-not-complementary")
        if int(m0.sum()) != h * w // 2:
            raise Mistake(f"`{name}({h}, {w}, 0)` keeps {int(m0.sum())} of {h * w} pixels; keep exactly half.",
                          id="mask-unbalanced")
        for m in (m0, m1):
            kept = torch.nn.functional.pad(m, (1, 1, 1, 1))[0]  # (H+2, W+2)
            near = kept[:-2, 1:-1] + kept[2:, 1:-1] + kept[1:-1, :-2] + kept[1:-1, 2:]  # kept 4-neighbours
            if bool(((m[0] == 0) & (near == 0)).any()):
                raise Mistake(f"`{name}`: some transformed pixels have no kept pixel among their 4 neighbours, so a "
                              "3×3 conditioner sees nothing near them (e.g. a top/bottom split). Interleave the two "
                              "groups.", id="mask-not-local")


# ----------------------------------------------------------------------------- dequantization
class Dequantize(Check):
    r"""``dequantize(x, u=None)``: y = (k + u)/256 with k = 255·x; u ~ U[0, 1) drawn when not given."""
    name = "flows.dequantize"
    student = "dequantize"
    passed = "y = (k + u)/256 with k = 255·x ∈ {0, …, 255}; without u, uniform noise inside each pixel's bin."

    def inputs(self, seed: int, case: str) -> dict:
        b, shape, dtype = image_shape(seed, case)
        return {"x": pixels(b, shape, seed, dtype), "u": fixed_uniform(b, *shape, seed=seed + 9, dtype=dtype),
                "x_big": pixels(64, (1, 8, 8), seed + 2, dtype)}

    def run(self, fn, inputs: dict) -> dict:
        out = run_student(fn, inputs["x"], inputs["u"], name=self.student, forbidden=[ref.dequantize])
        drawn = run_student(fn, inputs["x_big"], name=self.student, forbidden=[ref.dequantize])
        return {"type": type(out).__name__, "out": out, "drawn": drawn}

    def judge(self, inputs: dict, ev: dict) -> None:
        name, x, u = self.student, inputs["x"], inputs["u"]
        y = tensor_evidence(ev, name)
        if tuple(y.shape) != tuple(x.shape):
            raise Mistake(f"`{name}` returned shape {tuple(y.shape)}; expected {tuple(x.shape)} like x.", id="wrong-shape")
        k = torch.round(x * 255)
        compare(y, ref.dequantize(x, u), name, {
            ("dequant-divide-255", "it divides by 255. With k + u ∈ [0, 256) the bins have width 1/256: y = (k + u)/256."):
                (k + u) / 255,
            ("dequant-noise-on-x", "it adds u/256 to x = k/255; first recover k = 255·x, then y = (k + u)/256."):
                x + u / 256,
            ("dequant-no-noise", "u is not added: y = (k + u)/256 spreads each pixel value over its bin."): k / 256,
            ("dequant-noise-unscaled", "it adds u to x unscaled; y = (k + u)/256 stays in [0, 1)."): x + u,
            ("dequant-k-not-recovered", "it uses x (in [0, 1]) where the integer level k = 255·x belongs."):
                (x + u) / 256,
        }, rtol=1e-5, atol=1e-6)
        drawn, xb = tensor_evidence(ev, name, "drawn"), inputs["x_big"]
        if tuple(drawn.shape) != tuple(xb.shape) or not bool(torch.isfinite(drawn).all()):
            raise Mistake(f"`{name}(x)` without u should return a tensor shaped like x.", id="wrong-shape")
        frac = drawn.double() * 256 - torch.round(xb.double() * 255)  # u itself: in [0, 1)
        if bool((frac < -1e-4).any()) or bool((frac > 1 + 1e-4).any()):
            raise Mistake(f"`{name}(x)` without u leaves some pixels' bins [k/256, (k+1)/256): draw u from U[0, 1) "
                          "(torch.rand_like).", id="dequant-random-out-of-bin")
        if frac.std().item() < 0.2 or abs(frac.mean().item() - 0.5) > 0.1:
            raise Mistake(f"`{name}(x)` without u should draw fresh uniform noise u ~ U[0, 1) for every pixel "
                          "(torch.rand_like(x)).", id="dequant-no-random-noise")


# ----------------------------------------------------------------------------- bits per dimension
class BitsPerDim(Check):
    r"""``bits_per_dim(log_py, x) -> (B,)``: (−log p(y) + D ln 256) / (D ln 2), D = C·H·W of one image."""
    name = "flows.bits_per_dim"
    student = "bits_per_dim"
    passed = "bpd = (−log p(y) + D·ln 256)/(D·ln 2) with D = C·H·W — matches the reference."

    def inputs(self, seed: int, case: str) -> dict:
        b, shape, dtype = image_shape(seed + 3, case)
        d = math.prod(shape)
        log_py = (fixed_uniform(b, seed=seed, dtype=dtype) * 2 + 0.5) * d  # nats, p(y) on [0, 1]^D: (B,)
        return {"log_py": log_py, "x": pixels(b, shape, seed, dtype)}

    def run(self, fn, inputs: dict) -> dict:
        out = run_student(fn, inputs["log_py"], inputs["x"], name=self.student,
                          forbidden=[ref.bits_per_dim, ref.bpd_loss])
        return {"type": type(out).__name__, "out": out}

    def judge(self, inputs: dict, ev: dict) -> None:
        name, lp, x = self.student, inputs["log_py"], inputs["x"]
        out = tensor_evidence(ev, name)
        b, (c, h, w) = x.shape[0], x.shape[1:]
        if out.dim() == 0 and b > 1:
            raise Mistake(f"`{name}` returns one number; return one value per image, shape (B,).", id="batch-reduced")
        if tuple(out.shape) != (b,):
            raise Mistake(f"`{name}` returned shape {tuple(out.shape)}; expected ({b},).", id="wrong-shape")
        d, ln2, ln256 = c * h * w, math.log(2), math.log(256)
        compare(out, ref.bits_per_dim(lp, d), name, {
            ("bpd-nats", "it is in nats per dimension: divide by ln 2 to get bits."): (-lp + d * ln256) / d,
            ("bpd-log256-missing", "the D·ln 256 term is missing: p(y) is a density on [0, 1]^D, and each 8-bit "
             "pixel's bin has width 1/256, so P(k) ≈ p(y)·256^(−D)."): -lp / (d * ln2),
            ("bpd-log256-sign", "the D·ln 256 term has the wrong sign: −log P(k) ≈ −log p(y) + D ln 256."):
                (-lp - d * ln256) / (d * ln2),
            ("bpd-log256-units", "ln 256 (nats) is added to a number in bits; in bits the correction is log₂ 256 = 8."):
                -lp / (d * ln2) + ln256,
            ("bpd-wrong-log-base", "the conversion divides by log₁₀ 2 or log₂ 2; nats → bits is a division by ln 2."):
                (-lp + d * ln256) / (d * math.log10(2)),
            ("bpd-dimension-count", "D counts the wrong things: it is the number of values in ONE image, "
             "C·H·W (not the whole batch, not H·W only)."): (-lp + b * d * ln256) / (b * d * ln2),
            ("bpd-dimension-hw", "D counts the pixels H·W but not the channels: D = C·H·W."):
                (-lp + h * w * ln256) / (h * w * ln2),
            ("bpd-not-per-dim", "it is not divided by the dimension D = C·H·W."): (-lp + d * ln256) / ln2,
        }, rtol=1e-5, atol=1e-5)
