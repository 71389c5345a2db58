"""Lab 4 end to end: release → submissions → nbgrader autograde → scores via the Gradebook API."""
from nbgrader_utils import Pipeline

SLIDE_TYPO = '''
@torch.no_grad()
def p_sample(model, xt, t, sched, z=None):
    if z is None:
        z = torch.randn_like(xt)
    eps_theta = model(xt, torch.full((xt.shape[0],), t))
    alpha, beta = sched.alpha[t], sched.beta[t]
    mean = (xt - (1 - alpha) / (1 - alpha).sqrt() * eps_theta) / alpha.sqrt()   # √(1 − α_t) as on the slide
    return mean + beta.sqrt() * z if t > 1 else mean
'''
MISSING_SQRT = '''
def q_sample(x0, t, eps, sched):
    alpha_bar = sched.alpha_bar[t].view(-1, 1, 1, 1)
    return alpha_bar * x0 + (1 - alpha_bar) * eps                  # no square roots
'''
CLAMPED_SAMPLE = '''
@torch.no_grad()
def sample(model, shape, sched, p_sample=p_sample):
    x = torch.randn(shape, device=sched.beta.device)
    for t in range(sched.T, 0, -1):
        x = p_sample(model, x, t, sched)
    return x.clamp(-1, 1)                                           # allowed: a clamp of the final x_0
'''
NO_CLIP = '''
def cosine_beta_schedule(T, s=0.008, max_beta=0.999):
    t = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((t + s) / (1 + s) * torch.pi / 2) ** 2
    return 1 - f[1:] / f[:-1]                                       # β_T = 1: not clipped
'''
REFERENCE_Q_SAMPLE = '''
from dgm.ddpm import q_sample as my_q_sample   # imported under another name

def q_sample(x0, t, eps, sched):
    return my_q_sample(x0, t, eps, sched)
'''


globals().update(Pipeline(
    lab="04_ddpm",
    tests=("test_p_sample", "test_schedule", "test_cosine_schedule", "test_q_sample", "test_ddpm_loss",
           "test_sample_loop"),
    # a wrong q_sample and p_sample cost only their own cells (ddpm_loss and sample get the references);
    # the clamped sample is correct
    mistakes={"p_sample": SLIDE_TYPO, "q_sample": MISSING_SQRT, "sample": CLAMPED_SAMPLE, "cosine_schedule": NO_CLIP},
    named={"test_p_sample": "typo on the slide", "test_q_sample": "missing square roots",
           "test_cosine_schedule": "clip every"},
    reference=("q_sample", REFERENCE_Q_SAMPLE, "test_q_sample"),
).tests())
