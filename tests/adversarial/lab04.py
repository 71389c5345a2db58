"""Lab 4 (DDPM): alternative-correct answers, typical wrong answers, and the tampering variants."""
from . import tamper
from .driver import Case

LAB = "04_ddpm"
SCHED, QS, LOSS, PS, LOOP = "test_schedule", "test_q_sample", "test_ddpm_loss", "test_p_sample", "test_sample_loop"

TARGET = tamper.Target(
    lab=LAB, sol="q_sample", test=QS, fn="q_sample", args="x0, t, eps, sched",
    good="ab = sched.alpha_bar[t].view(-1, 1, 1, 1)\nreturn ab.sqrt() * x0 + (1 - ab).sqrt() * eps",
    bad="ab = sched.alpha_bar[t].view(-1, 1, 1, 1)\nreturn ab * x0 + (1 - ab) * eps",
    ref_mod="dgm.ddpm", ref="q_sample", mod="ddpm", attr="check_q_sample")


def fn(sig, body, deco=""):
    lines = "".join(f"    {ln}\n" for ln in body.strip("\n").splitlines())
    return f"{deco}def {sig}:\n{lines}"


SCHED_SRC = ("def linear_beta_schedule(T, beta_1=1e-4, beta_T=0.02):\n    {beta}\n\n\n"
             "def alpha_bar_from_beta(beta):\n    {ab}\n")
LOSS_SIG = "ddpm_loss(model, x0, sched, t=None, eps=None, q_sample=q_sample)"
PS_SIG, LOOP_SIG = "p_sample(model, xt, t, sched, z=None)", "sample(model, shape, sched, p_sample=p_sample)"
NG = "@torch.no_grad()\n"
GOOD_PS = ("if z is None:\n    z = torch.randn_like(xt)\n"
           "eps_theta = model(xt, torch.full((xt.shape[0],), t, device=xt.device, dtype=torch.long))\n"
           "alpha, alpha_bar, beta = sched.alpha[t], sched.alpha_bar[t], sched.beta[t]\n"
           "mean = (xt - (1 - alpha) / (1 - alpha_bar).sqrt() * eps_theta) / alpha.sqrt()\n"
           "{last}\nreturn mean + beta.sqrt() * z")

HONEST = [
    Case("alt_schedule_logspace", "correct", "linspace by keywords, alpha_bar as exp(cumsum(log1p(-beta)))",
         cells={"schedule": SCHED_SRC.format(beta="return torch.linspace(start=beta_1, end=beta_T, steps=T)",
                                             ab="return torch.exp(torch.cumsum(torch.log1p(-beta), dim=0))"),
                "q_sample": fn("q_sample(x0, t, eps, sched)", "ab = sched.alpha_bar.gather(0, t)[:, None, None, None]\n"
                               "return torch.sqrt(ab) * x0 + torch.sqrt(1.0 - ab) * eps")}),
    Case("alt_loss_mse_keywords", "correct", "q_sample called with keywords, F.mse_loss",
         cells={"ddpm_loss": "import torch.nn.functional as F\n" + fn(LOSS_SIG, (
             "B = x0.shape[0]\nt = torch.randint(1, sched.T + 1, (B,), device=x0.device) if t is None else t\n"
             "eps = torch.randn_like(x0) if eps is None else eps\n"
             "xt = q_sample(x0=x0, t=t, eps=eps, sched=sched)\nreturn F.mse_loss(model(xt, t), eps)"))}),
    Case("alt_p_sample_mask", "correct", "sigma_t z multiplied by (t > 1) instead of an early return",
         cells={"p_sample": fn(PS_SIG, GOOD_PS.format(last="z = z * float(t > 1)"), NG)}),
    Case("alt_sample_clamp", "correct", "sampling loop with torch.randn(*shape) and the final x_0 clamped to [-1, 1]",
         cells={"sample": fn(LOOP_SIG, "x = torch.randn(*shape, device=sched.beta.device)\n"
                             "for t in reversed(range(1, sched.T + 1)):\n    x = p_sample(model, x, t, sched)\n"
                             "return x.clamp(-1, 1)", NG)}),
    Case("wrong_alpha_bar_cumsum", "wrong", "alpha_bar as a cumulative SUM and a summed loss: each costs its own cell",
         cells={"schedule": SCHED_SRC.format(beta="return torch.linspace(beta_1, beta_T, T)",
                                             ab="return 1 - torch.cumsum(beta, dim=0)"),
                "ddpm_loss": fn(LOSS_SIG, (
                    "t = torch.randint(1, sched.T + 1, (x0.shape[0],)) if t is None else t\n"
                    "eps = torch.randn_like(x0) if eps is None else eps\n"
                    "return ((eps - model(q_sample(x0, t, eps, sched), t)) ** 2).sum()"))}, lose=(SCHED, LOSS)),
    Case("wrong_p_sample_noise_at_1", "wrong", "noise added at t = 1 too: costs p_sample only (the loop gets the reference)",
         cells={"p_sample": fn(PS_SIG, GOOD_PS.format(last=""), NG)}, lose=(PS,)),
    Case("wrong_loop_off_by_one", "wrong", "the loop stops at t = 2 and q_sample has no square roots: "
         "each costs its own cell (ddpm_loss gets the reference q_sample)",
         cells={"q_sample": TARGET.wrong, "sample": fn(LOOP_SIG, "x = torch.randn(shape)\nfor t in range(sched.T, 1, -1):\n"
                             "    x = p_sample(model, x, t, sched)\nreturn x", NG)}, lose=(QS, LOOP)),
]

CASES = HONEST + tamper.cases(TARGET)
