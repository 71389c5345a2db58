r"""The checks of lab 4's reverse step ``p_sample`` and the sampling loop ``sample`` (Algorithm 2).

``p_sample`` is compared with the reference for a given z; with z left out, the kernel seeds torch's
RNG from the case seed and the judge checks that the noise the student drew is standard normal.
``sample`` gets a recording reference ``p_sample`` as its ``p_sample`` parameter (so a bug in the
student's p_sample never costs this part): the evidence is the t and x_t of every call and the
returned x_0; the judge replays each step itself and accepts a final clamp to [−1, 1].
"""
from __future__ import annotations

import torch

from .. import ddpm as ref
from ._check import VISIBLE, Check
from ._core import Mistake, close, compare, fixed_normal, run_student
from ._ddpm_nets import OFF_BY_ONE, EpsNet, as_evidence, dtype_of, ints, matches_any, small_schedule, tensor_of

_TOL = dict(rtol=1e-4, atol=1e-5)


def _p_mistakes(model, xt, t: int, z, s) -> dict:
    tb = torch.full((xt.shape[0],), t, dtype=torch.long)
    one = lambda buf, i=t: buf[i].to(xt.dtype)  # noqa: E731
    e, a, ab, beta = model(xt, tb), one(s.alpha), one(s.alpha_bar), one(s.beta)
    sig, last = beta.sqrt(), float(t > 1)

    def step(num=beta, den=(1 - ab).sqrt(), scale=a.sqrt(), sigma=sig, noise=last, sign=-1.0, eps=e):
        return (xt + sign * num / den * eps) / scale + noise * sigma * z
    a_p, ab_p = one(s.alpha, max(t - 1, 0)), one(s.alpha_bar, max(t - 1, 0))
    return {
        ("slide-typo", "√(1 − α_t) in the denominator — that is a typo on the slide: the noise coefficient is "
         "(1 − α_t)/√(1 − ᾱ_t), with ᾱ_t (bar)."): step(den=(1 - a).sqrt()),
        ("noise-at-last-step", "noise is added at the final step: for t = 1 return the mean only (z = 0), x_0 "
         "must not get fresh noise."): step(noise=1.0),
        ("wrong-sign", "wrong sign in the mean: subtract the predicted noise, x_t − (1 − α_t)/√(1 − ᾱ_t) · ε_θ."):
            step(sign=1.0),
        ("sigma-is-variance", "σ_t is the variance β_t; the noise is scaled by the standard deviation "
         "σ_t = √β_t."): step(sigma=beta),
        ("sigma-double-sqrt", "σ_t = β_t^{1/4}: the square root was taken twice. σ_t² = β_t, so σ_t = √β_t."):
            step(sigma=beta.sqrt().sqrt()),
        ("numerator-sqrt", "the numerator uses the standard deviation √β_t where the variance β_t = 1 − α_t "
         "belongs."): step(num=beta.sqrt()),
        ("missing-sqrt-denominator", "missing square root on 1 − ᾱ_t in the denominator: divide by "
         "√(1 − ᾱ_t)."): step(den=1 - ab),
        ("missing-sqrt-scale", "missing square root: the mean is divided by √α_t, not α_t."): step(scale=a),
        ("alpha-bar-in-scale", "it uses ᾱ_t where α_t belongs in 1/√α_t (one step back needs α_t alone)."):
            step(scale=ab.sqrt()),
        ("alpha-bar-in-numerator", "it uses ᾱ_t where α_t belongs in the numerator: it is 1 − α_t = β_t."):
            step(num=1 - ab),
        ("off-by-one-t", OFF_BY_ONE): step(den=(1 - ab_p).sqrt()),
        ("all-off-by-one", "off by one in t: it uses α_{t−1}, ᾱ_{t−1} and β_{t−1}; x_{t−1} is computed with the "
         "step-t values."): (xt - (1 - a_p) / (1 - ab_p).sqrt() * e) / a_p.sqrt()
            + last * one(s.beta, max(t - 1, 0)).sqrt() * z,
        ("model-t-minus-one", "the network gets t − 1 instead of t: call model(x_t, t)."):
            step(eps=model(xt, tb - 1)),
        ("beta-tilde", "it uses σ_t² = β̃_t (the posterior variance); this lab uses σ_t² = β_t = sched.beta[t]."):
            step(sigma=one(s.beta_tilde).sqrt()),
    }


class PSample(Check):
    r"""``p_sample(model, xt, t, sched, z=None)`` — Algorithm 2, line 4 (σ_t² = β_t, no noise at t = 1)."""
    name = "ddpm.p_sample"
    student = "p_sample"
    passed = "x_{t−1} = (x_t − β_t/√(1 − ᾱ_t) ε_θ)/√α_t + σ_t z, no noise at t = 1 — matches the reference."

    def inputs(self, seed: int, case: str) -> dict:
        s = seed % 100_003
        if case == VISIBLE:
            shape, dtype, T, ts, t_r = (3, 1, 4, 4), torch.float32, 10, [4, 10, 1], 5  # t = 1 last: ᾱ_1 = α_1
        else:
            B, C, H, W, T, k = ints(seed, 6, 1, 5)
            shape, dtype, T = (B, 1 + C % 2, 1 + H, 1 + W), dtype_of(seed), 5 + 2 * T  # T in 7..15
            ts, t_r = [2 + k % (T - 1), T, 1], 2 + (k * 7) % (T - 1)
        return {"xt": fixed_normal(*shape, seed=s, dtype=dtype), "z": fixed_normal(*shape, seed=s + 50, dtype=dtype),
                "ts": ts, "sched": small_schedule(T, dtype), "t_r": t_r,
                "x_r": fixed_normal(400, 1, 2, 2, seed=s + 9, dtype=torch.float64), "rng_seed": seed % 2**31}

    def run(self, fn, inputs: dict) -> dict:
        xt, z, s = inputs["xt"], inputs["z"], inputs["sched"]
        forbidden = [ref.p_sample, ref.sample, ref.q_posterior]
        model = EpsNet(xt.dtype)
        with torch.random.fork_rng(devices=[]):  # the noise the student draws is reproducible from the case seed
            torch.manual_seed(inputs["rng_seed"])
            outs = [as_evidence(run_student(fn, model, xt.clone(), t, s, z=z.clone(), name=self.student,
                                            forbidden=forbidden)) for t in inputs["ts"]]
            drawn = run_student(fn, EpsNet(torch.float64), inputs["x_r"].clone(), inputs["t_r"],
                                small_schedule(s.T, torch.float64), name=f"{self.student} (z drawn inside)",
                                forbidden=forbidden)
        return {"outs": outs, "drawn": as_evidence(drawn)}

    def judge(self, inputs: dict, ev: dict) -> None:
        name, xt, z, s, ts = self.student, inputs["xt"], inputs["z"], inputs["sched"], inputs["ts"]
        outs = ev["outs"]
        if not isinstance(outs, list) or len(outs) != len(ts):
            raise ValueError("one output per step expected")
        model = EpsNet(xt.dtype)
        with torch.no_grad():
            for t, out in zip(ts, outs):
                out = tensor_of(out, name, shape=xt.shape, what=" (like xt)")
                expected = ref.p_sample(model, xt, t, s, z=z)
                sigma = s.beta[t].to(xt.dtype).sqrt()
                if t > 1 and close(out, expected - 2 * sigma * z, **_TOL):
                    continue  # −σ_t z is as good as +σ_t z
                mistakes = _p_mistakes(model, xt, t, z, s)
                if t > 1 and not close(out, expected, **_TOL) and not matches_any(out, mistakes, **_TOL):
                    r = (out.to(xt.dtype) - (expected - sigma * z)) / sigma    # the noise the student added
                    if 0.5 < float(r.std()) < 1.5 and abs(float(r.mean())) < 1 and not close(r, z, **_TOL):
                        raise Mistake(f"`{name}` ignores the z it was given: use `z` when it is passed, and draw "
                                      "z only when z is None.", id="ignores-z")
                compare(out, expected, name, mistakes, what=f" (t = {t})", **_TOL)
            self._judge_drawn(inputs, ev["drawn"])

    def _judge_drawn(self, inputs: dict, drawn) -> None:
        name, x, t = f"{self.student} (z drawn inside)", inputs["x_r"], inputs["t_r"]
        s = small_schedule(inputs["sched"].T, torch.float64)
        out = tensor_of(drawn, name, shape=x.shape, what=" (like xt)")
        mean = ref.p_sample(EpsNet(torch.float64), x, t, s, z=torch.zeros_like(x))
        r = (out.double() - mean) / s.beta[t].sqrt()                          # the z the student drew
        if float(r.abs().max()) < 1e-6:
            raise Mistake(f"`{name}`: with z=None and t = {t} > 1 it added no noise; draw z like xt.",
                          id="no-noise-when-z-none")
        m, v = float(r.mean()), float(r.var())
        if abs(m) > 0.15 or abs(v - 1) > 0.2:
            raise Mistake(f"`{name}`: the noise it drew has mean {m:.3f} and variance {v:.3f}; z must be standard "
                          "normal, like xt.", id="z-not-standard-normal")


# ----------------------------------------------------------------------------- the sampling loop
def _as_step(t):
    """A step given as a Python int (or an integer tensor holding one value), else None."""
    if isinstance(t, int) and not isinstance(t, bool):
        return t
    if isinstance(t, torch.Tensor) and t.numel() >= 1 and not t.is_floating_point() and bool((t == t.flatten()[0]).all()):
        return int(t.flatten()[0])
    return None


class _RecordingP:
    """The reference p_sample handed to the student's sample: records (t, x_t, z) of every call."""

    def __init__(self, model, sched, shape, zs, limit: int):
        self.model, self.sched, self.shape, self.zs, self.limit = model, sched, tuple(shape), zs, limit
        self.n, self.ts, self.xts, self.z_given, self.same = 0, [], [], [], []

    def __call__(self, model, xt, t, sched, z=None):
        k, step = self.n, _as_step(t)
        self.n += 1
        if k < self.limit:
            self.ts.append(step)
            self.xts.append(as_evidence(xt))
            self.z_given.append(z.detach().clone() if isinstance(z, torch.Tensor) else None)
            self.same.append(model is self.model and sched is self.sched)
        if step is None or not 1 <= step <= self.sched.T or not isinstance(xt, torch.Tensor) \
                or tuple(xt.shape) != self.shape:
            return xt  # not a step this chain has: the judge names it from the recorded t and x_t
        if not (isinstance(z, torch.Tensor) and tuple(z.shape) == self.shape):
            z = self.zs[min(k, len(self.zs) - 1)]
        return ref.p_sample(self.model, xt, step, self.sched, z=z.to(xt.dtype))


class SampleLoop(Check):
    r"""``sample(model, shape, sched, p_sample=p_sample)``: x_T ~ N(0, I), then p_sample for t = T, …, 1."""
    name = "ddpm.sample"
    student = "sample"
    passed = "x_T ~ N(0, I), then p_sample for t = T, …, 1, each result fed into the next step."

    def inputs(self, seed: int, case: str) -> dict:
        s = seed % 100_003
        if case == VISIBLE:
            T, shape = 6, (250, 1, 2, 2)
        else:
            T, B, k = ints(seed, 3, 3, 8)
            B = 200 + 20 * B
            shape = (B, 1, 2, 2) if k % 2 else (B, 2, 1, 2)
        zs = [fixed_normal(*shape, seed=s + 100 + k) for k in range(T + 2)]
        return {"T": T, "shape": shape, "sched": small_schedule(T, torch.float32, 0.1, 0.4), "zs": zs,
                "rng_seed": seed % 2**31}

    def run(self, fn, inputs: dict) -> dict:
        model, s = EpsNet(torch.float32), inputs["sched"]
        p = _RecordingP(model, s, inputs["shape"], inputs["zs"], limit=inputs["T"] + 2)
        with torch.random.fork_rng(devices=[]):  # x_T drawn by the student is reproducible from the case seed
            torch.manual_seed(inputs["rng_seed"])
            out = run_student(fn, model, tuple(inputs["shape"]), s, p_sample=p, name=self.student,
                              forbidden=[ref.sample])
        if isinstance(out, (tuple, list)) and out:
            out = out[0]
        return {"out": as_evidence(out), "ts": p.ts, "xts": p.xts, "z_given": p.z_given, "same": p.same,
                "n_calls": p.n}

    def judge(self, inputs: dict, ev: dict) -> None:
        name, T, shape, s, zs = self.student, inputs["T"], tuple(inputs["shape"]), inputs["sched"], inputs["zs"]
        ts, n = ev["ts"], ev["n_calls"]
        want = list(range(T, 0, -1))
        if n == 0:
            raise Mistake(f"`{name}` never called the `p_sample` it was given: run the chain with that parameter.",
                          id="p-sample-not-called")
        if ts == want[::-1]:
            raise Mistake(f"`{name}` runs the chain forwards (t = 1, …, T); denoise from t = T down to t = 1.",
                          id="runs-forwards")
        if ts == list(range(T - 1, -1, -1)):
            raise Mistake(f"`{name}` uses t = T−1, …, 0 (0-based); the steps are t = T, …, 1.", id="zero-based-t")
        if ts != want or n != T:
            raise Mistake(f"`{name}` should call p_sample once per step with t = T, …, 1 = {want} (a Python int), "
                          f"but it used t = {ts[:12]}{' …' if n > 12 else ''}.", id="wrong-steps")
        if not all(v is True for v in ev["same"]):
            raise Mistake(f"`{name}` should pass the model and sched it was given to p_sample.", id="wrong-arguments")
        xts = [tensor_of(x, "the x_t handed to p_sample", shape=shape) for x in ev["xts"]]
        x_T = xts[0].double()
        if float(x_T.var()) < 1e-8:
            raise Mistake(f"`{name}` does not start from noise: x_T is constant. Draw x_T from N(0, I).",
                          id="starts-from-constant")
        m, v = float(x_T.mean()), float(x_T.var())
        if abs(m) > 0.18 or abs(v - 1) > 0.25:
            raise Mistake(f"`{name}` does not start from noise: x_T has mean {m:.3f} and variance {v:.3f}; it must "
                          "be standard normal with the given shape.", id="x-T-not-standard-normal")
        model = EpsNet(torch.float32)
        with torch.no_grad():
            for k, (t, xt) in enumerate(zip(ts, xts)):
                z = self._z(ev["z_given"][k], zs[k], shape)
                expected = ref.p_sample(model, xt, t, s, z=z.to(xt.dtype))
                if k + 1 < T:
                    if not close(xts[k + 1], expected, **_TOL):
                        raise Mistake(f"`{name}`: the x_t handed to p_sample at t = {t - 1} is not the result of the "
                                      f"step at t = {t}. Feed each x_{{t−1}} into the next step unchanged (only the "
                                      "final x_0 may be clamped).", id="not-chained")
                    continue
                out = tensor_of(ev["out"], name, shape=shape)
                if close(out, expected, **_TOL) or close(out, expected.clamp(-1, 1), **_TOL):
                    return  # the final x_0, unclamped or clamped to [−1, 1]
                if close(out, xts[0], **_TOL):
                    raise Mistake(f"`{name}` returns x_T: return the result of the last step, x_0.", id="returns-x-T")
                raise Mistake(f"`{name}` does not return the result of the last p_sample step (t = 1).",
                              id="wrong-return")

    @staticmethod
    def _z(given, planned: torch.Tensor, shape) -> torch.Tensor:
        if given is None:
            return planned
        z = tensor_of(given, "the z passed to p_sample", shape=shape).double()
        if abs(float(z.mean())) > 0.18 or abs(float(z.var()) - 1) > 0.25:
            raise Mistake("`sample` passes p_sample a z that is not standard normal noise; let p_sample draw it "
                          "(z=None).", id="z-not-standard-normal")
        return z
