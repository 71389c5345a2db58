"""Lab 2 (VAE): alternative-correct answers, typical wrong answers, and the tampering variants."""
from . import tamper
from .driver import Case

LAB = "02_vae"
REP, VAE, KL, ELBO, STEP = "test_reparameterize", "test_vae", "test_kl_divergence", "test_elbo_loss", "test_train_step"

TARGET = tamper.Target(
    lab=LAB, sol="kl_divergence", test=KL, fn="kl_divergence", args="mu, logvar",
    good="return -0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp(), dim=1)",
    bad="return 0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp(), dim=1)",
    ref_mod="dgm.vae", ref="kl_divergence", mod="vae", attr="check_kl_divergence")


def fn(sig, body):
    lines = "".join(f"    {ln}\n" for ln in body.strip("\n").splitlines())
    return f"def {sig}:\n{lines}"


REPARAM = "reparameterize(mu, logvar, eps=None)"
ELBO_SIG = "elbo_loss(x_logits, x, mu, logvar, beta=1.0, kl_fn=kl_divergence)"
STEP_SIG = "train_step(model, optimizer, x, beta=1.0, loss_fn=elbo_loss)"

VAE_EXPLICIT = '''
class VAE(nn.Module):
    def __init__(self, latent_dim: int, reparameterize=reparameterize):
        super().__init__()
        self.latent_dim = latent_dim
        self.reparameterize = reparameterize
        self.fc1, self.fc2 = nn.Linear(784, 400), nn.Linear(400, 200)
        self.mu_head, self.logvar_head = nn.Linear(200, latent_dim), nn.Linear(200, latent_dim)
        self.dec1, self.dec2 = nn.Linear(latent_dim, 400), nn.Linear(400, 784)

    def encode(self, x):
        h = F.relu(self.fc2(F.relu(self.fc1(torch.flatten(x, 1)))))
        return self.mu_head(h), self.logvar_head(h)

    def decode(self, z):
        return self.dec2(torch.tanh(self.dec1(z))).reshape(-1, 1, 28, 28)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar) if self.training else mu   # eval mode: decode the mean
        return self.decode(z), mu, logvar
'''
VAE_SIGMOID = VAE_EXPLICIT.replace("return self.dec2(torch.tanh(self.dec1(z))).reshape(-1, 1, 28, 28)",
                                   "return torch.sigmoid(self.dec2(torch.tanh(self.dec1(z)))).reshape(-1, 1, 28, 28)")
assert VAE_SIGMOID != VAE_EXPLICIT

HONEST = [
    Case("alt_reparam_distributions", "correct", "Normal(mu, sigma).rsample() when eps is None",
         cells={"reparameterize": fn(REPARAM, "sigma = torch.exp(0.5 * logvar)\nif eps is None:\n"
                                     "    return torch.distributions.Normal(mu, sigma).rsample()\nreturn mu + sigma * eps")}),
    Case("alt_vae_explicit_eval_mu", "correct", "explicit layers, widths 400/200, tanh decoder, eval mode decodes mu",
         cells={"vae": VAE_EXPLICIT}),
    Case("alt_kl_distributions", "correct", "torch.distributions.kl_divergence summed over the latent dims",
         cells={"kl_divergence": "from torch.distributions import Normal, kl_divergence as _kl\n" + fn(
             "kl_divergence(mu, logvar)", "q = Normal(mu, torch.exp(0.5 * logvar))\n"
             "p = Normal(torch.zeros_like(mu), torch.ones_like(mu))\nreturn _kl(q, p).sum(-1)")}),
    Case("alt_elbo_floats_keywords", "correct", "BCE sum / B, kl_fn called with keywords, floats for the "
         "parts; train_step zeroes first (set_to_none) and unpacks model(x) generically",
         cells={"train_step": fn(STEP_SIG, "optimizer.zero_grad(set_to_none=True)\nout = model(x)\n"
                                 "loss = loss_fn(*out[:1], x, *out[1:], beta)[0]\nloss.backward()\noptimizer.step()\n"
                                 "return float(loss.detach())"),
                "elbo_loss": fn(ELBO_SIG, "B = x.shape[0]\n"
                                "rec = F.binary_cross_entropy_with_logits(x_logits, x, reduction='sum') / B\n"
                                "kl = kl_fn(mu=mu, logvar=logvar).sum() / B\nloss = rec + beta * kl\n"
                                "return loss, rec.item(), kl.item()")}),
    Case("wrong_reparam_variance", "wrong", "sigma = exp(logvar) and a decoder returning probabilities: "
         "each costs its own cell (the VAE gets the reference sampler)",
         cells={"vae": VAE_SIGMOID, "reparameterize": fn(REPARAM, "if eps is None:\n    eps = torch.randn_like(mu)\nreturn mu + torch.exp(logvar) * eps")},
         lose=(REP, VAE)),
    Case("wrong_elbo_pixel_mean", "wrong", "BCE averaged over pixels: costs the ELBO only (train_step gets loss_fn)",
         cells={"elbo_loss": fn(ELBO_SIG, "rec = F.binary_cross_entropy_with_logits(x_logits, x)\n"
                                "kl = kl_fn(mu, logvar).mean()\nreturn rec + beta * kl, rec, kl")}, lose=(ELBO,)),
    Case("wrong_everything_but_step", "wrong", "wrong sampler, KL and ELBO: train_step still full marks (ECF)",
         cells={"reparameterize": fn(REPARAM, "return mu"), "kl_divergence": TARGET.wrong,
                "elbo_loss": fn(ELBO_SIG, "rec = F.binary_cross_entropy(torch.sigmoid(x_logits), x)\n"
                                "return rec, rec, rec")}, lose=(REP, KL, ELBO)),
]

CASES = HONEST + tamper.cases(TARGET)
