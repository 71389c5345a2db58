r"""Checks for Lab 5 (normalizing flows): the affine coupling, its inverse, the mask, log p(x), dequantization, bits/dim.

Every check is a :class:`~dgm.checks._check.Check`: ``run`` calls the student's function in the kernel and
returns evidence, ``judge`` regenerates the inputs, computes the reference and names the mistake.
Later parts get reference layers passed in explicitly (error carried forward): ``log_likelihood`` is
graded with fixed reference couplings, so a bug in ``coupling_forward`` costs that part only.
"""
from __future__ import annotations

import math

import torch

from .. import flows as ref
from ._check import Check, tensor_evidence
from ._core import Mistake, close, compare, expect_tensor, run_student
from ._flows_fixtures import coupling_case, flow_case
from ._flows_more import BitsPerDim, Dequantize, ImageMask

__all__ = ["check_coupling_forward", "check_coupling_inverse", "check_image_mask", "check_log_likelihood",
           "check_dequantize", "check_bits_per_dim", "CELLS"]


def _pair(out, name: str) -> dict:
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        return {"type": type(out).__name__ + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")}
    return {"type": "pair", "z": out[0], "log_det": out[1]}


def _shape(t: torch.Tensor, want, name: str, what: str = "") -> torch.Tensor:
    if tuple(t.shape) != tuple(want):
        raise Mistake(f"`{name}` returned {what}of shape {tuple(t.shape)}; expected {tuple(want)}.", id="wrong-shape")
    return t


# ----------------------------------------------------------------------------- coupling forward
def _forward_variants(x, mask, net) -> dict:
    """What the usual mistakes produce on these inputs: {name: (z, log_det)}."""
    with torch.no_grad():
        s_hat, t = net(x * mask).chunk(2, dim=1)
        s = torch.tanh(s_hat)
        keep, free = mask, 1 - mask
        z = keep * x + free * (x * torch.exp(s) + t)
        out = {
            "unbounded": (keep * x + free * (x * torch.exp(s_hat) + t), (free * s_hat).flatten(1).sum(1)),
            "swapped": (free * x + keep * (x * torch.exp(s) + t), (keep * s).flatten(1).sum(1)),
            "no-exp": (keep * x + free * (x * s + t), None),
            "all-s": (z, s.flatten(1).sum(1)),
            "mean": (z, (free * s).flatten(1).mean(1)),
            "exp-det": (z, torch.exp(free * s).flatten(1).prod(1)),
        }
        s_u, t_u = net(x).chunk(2, dim=1)
        s_u = torch.tanh(s_u)
        out["unmasked"] = (keep * x + free * (x * torch.exp(s_u) + t_u), (free * s_u).flatten(1).sum(1))
    return out


class CouplingForward(Check):
    r"""``coupling_forward(x, mask, net) -> (z, log_det)``: the affine coupling and log|det ∂z/∂x|."""
    name = "flows.coupling_forward"
    student = "coupling_forward"
    passed = "z = b⊙x + (1−b)⊙(x⊙exp(s) + t) with s = tanh(ŝ), and log|det| = Σ(1−b)⊙s — matches the reference."

    def inputs(self, seed: int, case: str) -> dict:
        return coupling_case(seed, case)

    def run(self, fn, inputs: dict) -> dict:
        x, mask = inputs["x"].clone().requires_grad_(True), inputs["mask"]
        out = run_student(fn, x, mask, inputs["net"], name=self.student, forbidden=[ref.coupling_forward, ref.AffineCoupling])
        ev = _pair(out, self.student)
        if ev["type"] == "pair" and all(isinstance(v, torch.Tensor) for v in out):
            parts = [v.sum() for v in out if v.requires_grad]
            grad = torch.autograd.grad(sum(parts), x, allow_unused=True)[0] if parts else None
            ev.update(z=out[0].detach(), log_det=out[1].detach(), grad=grad)
        big = run_student(fn, inputs["x"], mask, inputs["big_net"], name=self.student,
                          forbidden=[ref.coupling_forward, ref.AffineCoupling])
        if isinstance(big, (tuple, list)) and len(big) == 2:
            ev.update(z_big=big[0], log_det_big=big[1])
        return ev

    def judge(self, inputs: dict, ev: dict) -> None:
        name, x, mask, net = self.student, inputs["x"], inputs["mask"], inputs["net"]
        if ev.get("type") != "pair":
            raise Mistake(f"`{name}` should return a pair (z, log_det), got {ev.get('type')}.", id="not-a-pair")
        z, log_det = tensor_evidence(ev, name, "z"), tensor_evidence(ev, name, "log_det")
        b = x.shape[0]
        _shape(z, x.shape, name, "z ")
        if tuple(log_det.shape) == tuple(x.shape):
            raise Mistake(f"`{name}` returns log_det per coordinate, shape {tuple(log_det.shape)}: sum it over every "
                          "coordinate of a sample, one number per sample (B,).", id="logdet-not-summed")
        _shape(log_det, (b,), name, "log_det ")
        z_ref, ld_ref = ref.coupling_forward(x, mask, net)
        bad = _forward_variants(x, mask, net)
        z_big, ld_big = tensor_evidence(ev, name, "z_big"), tensor_evidence(ev, name, "log_det_big")
        unbounded = ("unbounded-scale", "the log-scale is not bounded: use s = tanh(ŝ) (the task asks for it) — "
                     "with an unbounded ŝ, exp(ŝ) overflows as soon as the conditioner outputs large values.")
        if z_big.shape != x.shape or not bool(torch.isfinite(z_big).all()) or not bool(torch.isfinite(ld_big).all()):
            raise Mistake(f"`{name}`: with a conditioner whose outputs are large (~1e4) it returned inf/NaN — "
                          + unbounded[1], id=unbounded[0])
        compare(z, z_ref, name, {
            unbounded: bad["unbounded"][0],
            ("mask-swapped", "it transforms the coordinates the mask keeps (b = 1) and copies the others. Keep "
             "b ⊙ x unchanged and transform (1 − b) ⊙ x — otherwise the Jacobian is not triangular."): bad["swapped"][0],
            ("net-input-unmasked", "the conditioner sees all of x. Feed it b ⊙ x only: if ŝ, t depend on the "
             "coordinates being transformed, the Jacobian is not triangular and the inverse is lost."): bad["unmasked"][0],
            ("missing-exp", "the scale is s, not exp(s): multiply by exp(s) so that it is positive and invertible."):
                bad["no-exp"][0],
        }, rtol=1e-4, atol=1e-5, what=" (z)")
        compare(log_det, ld_ref, name, {
            ("logdet-sign", "log_det has the wrong sign. For z = x⊙exp(s) + t the log-determinant of ∂z/∂x is +Σ s "
             "(the −Σ s belongs to the inverse direction)."): -ld_ref,
            ("logdet-includes-kept", "log_det sums s over all coordinates, but the kept ones (b = 1) are copied: "
             "only the transformed coordinates contribute, Σ (1 − b) ⊙ s."): bad["all-s"][1],
            ("logdet-mean", "log_det averages over the coordinates; the log-determinant is a sum."): bad["mean"][1],
            ("logdet-not-log", "log_det is the determinant Π exp(s), not its logarithm Σ s."): bad["exp-det"][1],
            unbounded: bad["unbounded"][1],
        }, rtol=1e-4, atol=1e-5, what=" (log_det)")
        zb_ref, ldb_ref = ref.coupling_forward(x, mask, inputs["big_net"])
        compare(z_big, zb_ref, name, {}, rtol=1e-4, atol=1e-3, what=" (z, with a loud conditioner)")
        compare(ld_big.reshape(-1), ldb_ref, name, {}, rtol=1e-4, atol=1e-4, what=" (log_det, with a loud conditioner)")
        xg = x.clone().requires_grad_(True)
        z2, ld2 = ref.coupling_forward(xg, mask, net)
        (g_ref,) = torch.autograd.grad(z2.sum() + ld2.sum(), xg)
        grad = ev.get("grad")
        if not isinstance(grad, torch.Tensor) or not close(grad, g_ref, 1e-4, 1e-5):
            raise Mistake(f"`{name}` returns the right numbers but gradients do not flow back to x through them: "
                          "use torch operations only (no .detach(), .item(), numpy).", id="no-gradient")


check_coupling_forward = CouplingForward()


# ----------------------------------------------------------------------------- coupling inverse
class CouplingInverse(Check):
    r"""``coupling_inverse(z, mask, net) -> x``: undoes :class:`CouplingForward` exactly."""
    name = "flows.coupling_inverse"
    student = "coupling_inverse"
    passed = "x = b⊙z + (1−b)⊙((z − t)⊙exp(−s)) — inverts the coupling exactly, also with a loud conditioner."

    def inputs(self, seed: int, case: str) -> dict:
        c = coupling_case(seed + 1, case)
        c["z"] = ref.coupling_forward(c.pop("x"), c["mask"], c["net"])[0].detach()  # a z the forward pass produced
        return c

    def run(self, fn, inputs: dict) -> dict:
        forbidden = [ref.coupling_inverse, ref.AffineCoupling]
        out = run_student(fn, inputs["z"], inputs["mask"], inputs["net"], name=self.student, forbidden=forbidden)
        big = run_student(fn, inputs["z"], inputs["mask"], inputs["big_net"], name=self.student, forbidden=forbidden)
        return {"type": type(out).__name__, "out": out, "big": big}

    def judge(self, inputs: dict, ev: dict) -> None:
        name, z, mask, net = self.student, inputs["z"], inputs["mask"], inputs["net"]
        x = _shape(tensor_evidence(ev, name), z.shape, name)
        x_ref = ref.coupling_inverse(z, mask, net)
        s_hat, t = net(z * mask).chunk(2, dim=1)
        s, keep, free = torch.tanh(s_hat), mask, 1 - mask
        big = tensor_evidence(ev, name, "big")
        if big.shape != z.shape or not bool(torch.isfinite(big).all()):
            raise Mistake(f"`{name}`: with a conditioner whose outputs are large (~1e4) it returned inf/NaN — bound "
                          "the log-scale with s = tanh(ŝ) as in the forward pass.", id="unbounded-scale")
        s_u, t_u = net(z).chunk(2, dim=1)
        compare(x, x_ref, name, {
            ("inverse-wrong-order", "the operations are undone in the wrong order: the forward pass scales, then "
             "shifts, so the inverse first subtracts t, then divides by exp(s): (z − t) ⊙ exp(−s)."):
                keep * z + free * (z * torch.exp(-s) - t),
            ("inverse-scale-sign", "it multiplies by exp(s) again; the inverse divides: (z − t) ⊙ exp(−s)."):
                keep * z + free * ((z - t) * torch.exp(s)),
            ("unbounded-scale", "the log-scale is not bounded: use s = tanh(ŝ), the same as in the forward pass."):
                keep * z + free * ((z - t) * torch.exp(-s_hat)),
            ("net-input-unmasked", "the conditioner sees all of z. Feed it b ⊙ z: it equals b ⊙ x, so ŝ and t come "
             "out exactly as in the forward pass."): keep * z + free * ((z - t_u) * torch.exp(-torch.tanh(s_u))),
        }, rtol=1e-4, atol=1e-5)
        compare(big, ref.coupling_inverse(z, mask, inputs["big_net"]), name, {}, rtol=1e-4, atol=1e-3,
                what=" (with a loud conditioner)")


check_coupling_inverse = CouplingInverse()


# ----------------------------------------------------------------------------- log-likelihood (ECF)
class LogLikelihood(Check):
    r"""``log_likelihood(x, layers) -> (B,)``: log π(z) + Σ log|det|, with reference layers passed in."""
    name = "flows.log_likelihood"
    student = "log_likelihood"
    passed = "log p(x) = log N(z; 0, I) + Σ_k log|det J_k|, layers applied in order — matches the reference."

    def inputs(self, seed: int, case: str) -> dict:
        return flow_case(seed, case)

    def run(self, fn, inputs: dict) -> dict:
        x = inputs["x"].clone().requires_grad_(True)
        out = run_student(fn, x, inputs["layers"], name=self.student,
                          forbidden=[ref.log_likelihood, ref.Flow, ref.standard_normal_log_prob])
        if not isinstance(out, torch.Tensor):
            return {"type": type(out).__name__}
        grad = torch.autograd.grad(out.sum(), x, allow_unused=True)[0] if out.requires_grad else None
        return {"type": "Tensor", "out": out.detach(), "grad": grad}

    def judge(self, inputs: dict, ev: dict) -> None:
        name, x, layers = self.student, inputs["x"], inputs["layers"]
        out = tensor_evidence(ev, name)
        if out.dim() == 0 and x.shape[0] > 1:
            raise Mistake(f"`{name}` returns one number for the whole batch; return log p(x) per sample, shape (B,).",
                          id="batch-reduced")
        out = expect_tensor(_shape(out, (x.shape[0],), name), name)
        with torch.no_grad():
            hs, lds, h = [x], [], x
            for layer in layers:
                h, ld = layer(h)
                hs.append(h)
                lds.append(ld)
            z, total, d = h, sum(lds), x[0].numel()
            sq = -0.5 * z.flatten(1).pow(2).sum(1)
            prior = sq - 0.5 * d * math.log(2 * math.pi)
            rev = x
            rev_lds = []
            for layer in reversed(layers):
                rev, ld = layer(rev)
                rev_lds.append(ld)
            expected = prior + total
            compare(out, expected, name, {
                ("logdet-sign", "the log-determinants are subtracted. In the data → latent direction, "
                 "log p(x) = log π(z) + Σ log|det ∂h_k/∂h_{k−1}| (the lecture's minus sign is for the other direction, "
                 "f_i: z_{i−1} → z_i)."): prior - total,
                ("missing-prior", "the prior term log π(z) is missing: add log N(z; 0, I) of the final z."): total,
                ("prior-constant-missing", "the Gaussian's normalising constant is missing: log N(z; 0, I) = "
                 "−½‖z‖² − (D/2)·log 2π, with D the number of coordinates of one sample."): sq + total,
                ("prior-missing-half", "log N(z; 0, I) has −½‖z‖², not −‖z‖²."):
                    2 * sq - 0.5 * d * math.log(2 * math.pi) + total,
                ("prior-on-x", "the prior is evaluated at x; evaluate it at z, the output of the last layer."):
                    -0.5 * x.flatten(1).pow(2).sum(1) - 0.5 * d * math.log(2 * math.pi) + total,
                ("layers-wrong-order", "the layers are applied in the reverse order: apply layers[0] first (x → … → z)."):
                    -0.5 * rev.flatten(1).pow(2).sum(1) - 0.5 * d * math.log(2 * math.pi) + sum(rev_lds),
                ("logdet-not-accumulated", "only the last layer's log-determinant is counted: add them up over all layers."):
                    prior + lds[-1],
            }, rtol=1e-4, atol=1e-4)
        xg = x.clone().requires_grad_(True)
        (g_ref,) = torch.autograd.grad(ref.log_likelihood(xg, layers).sum(), xg)
        grad = ev.get("grad")
        if not isinstance(grad, torch.Tensor) or not close(grad, g_ref, 1e-4, 1e-5):
            raise Mistake(f"`{name}` returns the right numbers but no gradient flows back through them — training "
                          "maximises this value: keep it a torch computation.", id="no-gradient")


check_log_likelihood = LogLikelihood()
check_image_mask = ImageMask()
check_dequantize = Dequantize()
check_bits_per_dim = BitsPerDim()

#: test cell grade_id → the checks it runs (visible case; its hidden cases with hidden=True)
CELLS = {
    "test_coupling_forward": (check_coupling_forward,),
    "test_coupling_inverse": (check_coupling_inverse,),
    "test_image_mask": (check_image_mask,),
    "test_log_likelihood": (check_log_likelihood,),
    "test_dequantize": (check_dequantize,),
    "test_bits_per_dim": (check_bits_per_dim,),
}
