"""Lab 3 (GAN): alternative-correct answers, typical wrong answers, and the tampering variants."""
from . import tamper
from .driver import Case

LAB = "03_gan"
NOISE, DL, GL, STEP = "test_sample_noise", "test_discriminator_loss", "test_generator_loss", "test_train_step"

TARGET = tamper.Target(
    lab=LAB, sol="discriminator_loss", test=DL, fn="discriminator_loss", args="real_logits, fake_logits",
    good="return 0.5 * F.softplus(-real_logits).mean() + 0.5 * F.softplus(fake_logits).mean()",
    bad="return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()",
    ref_mod="dgm.gan", ref="discriminator_loss", mod="gan", attr="check_discriminator_loss")


def fn(sig, body):
    lines = "".join(f"    {ln}\n" for ln in body.strip("\n").splitlines())
    return f"def {sig}:\n{lines}"


NOISE_SIG, GL_SIG = "sample_noise(n, dim)", 'generator_loss(fake_logits, kind="nonsaturating")'
STEP_SIG = 'train_step(G, D, opt_g, opt_d, real, z, kind="nonsaturating", d_loss=None, g_loss=None)'
STEP_HEAD = "d_loss = d_loss or discriminator_loss\ng_loss = g_loss or generator_loss\n"
GOOD_STEP = (STEP_HEAD + "fake = G(z)\nopt_d.zero_grad()\nloss_d = d_loss(D(real), D(fake.detach()))\nloss_d.backward()\n"
             "opt_d.step()\nopt_g.zero_grad()\nloss_g = g_loss(D(fake), kind=kind)\nloss_g.backward()\nopt_g.step()\n"
             "return loss_d.item(), loss_g.item()")

HONEST = [
    Case("alt_noise_normal", "correct", "torch.normal(0, 1, size=...); D loss with F.logsigmoid",
         cells={"discriminator_loss": fn("discriminator_loss(real_logits, fake_logits)",
                                         "return -(F.logsigmoid(real_logits).mean() + F.logsigmoid(-fake_logits).mean()) / 2"),
                "sample_noise": fn(NOISE_SIG, "return torch.normal(0.0, 1.0, size=(n, dim))")}),
    Case("alt_noise_distributions", "correct", "torch.distributions.Normal(0, 1).sample((n, dim)), float64",
         cells={"sample_noise": fn(NOISE_SIG, "return torch.distributions.Normal(0.0, 1.0).sample((n, dim)).double()")}),
    Case("alt_g_loss_bce", "correct", "both generator losses through binary_cross_entropy_with_logits",
         cells={"generator_loss": fn(GL_SIG, "if kind == 'minimax':\n"
                                     "    return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))\n"
                                     "return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))")}),
    Case("alt_step_keywords", "correct", "keyword loss calls, set_to_none, one D forward on a concatenated batch",
         cells={"train_step": fn(STEP_SIG, STEP_HEAD + "fake = G(z)\nopt_d.zero_grad(set_to_none=True)\n"
                                 "logits = D(torch.cat([real, fake.detach()]))\n"
                                 "loss_d = d_loss(real_logits=logits[:len(real)], fake_logits=logits[len(real):])\n"
                                 "loss_d.backward()\nopt_d.step()\nopt_g.zero_grad(set_to_none=True)\n"
                                 "loss_g = g_loss(fake_logits=D(fake), kind=kind)\nloss_g.backward()\nopt_g.step()\n"
                                 "return float(loss_d), float(loss_g)")}),
    Case("wrong_d_loss_sigmoid", "wrong", "sigmoid then BCE (unstable at confident logits): costs the D loss only",
         cells={"discriminator_loss": fn("discriminator_loss(real_logits, fake_logits)",
                                         "r, f = torch.sigmoid(real_logits), torch.sigmoid(fake_logits)\n"
                                         "return 0.5 * F.binary_cross_entropy(r, torch.ones_like(r)) + "
                                         "0.5 * F.binary_cross_entropy(f, torch.zeros_like(f))")}, lose=(DL,)),
    Case("wrong_step_no_detach", "wrong", "the D step sees fakes with their graph to G: costs train_step only",
         cells={"train_step": fn(STEP_SIG, GOOD_STEP.replace("D(fake.detach())", "D(fake)").replace(
             "loss_d.backward()", "loss_d.backward(retain_graph=True)"))}, lose=(STEP,)),
    Case("wrong_both_losses", "wrong", "both losses wrong, the step right: train_step full marks (ECF)",
         cells={"discriminator_loss": TARGET.wrong, "sample_noise": fn(NOISE_SIG, "return torch.rand(n, dim)"),
                "generator_loss": fn(GL_SIG, "if kind == 'minimax':\n    return F.softplus(fake_logits).mean()\n"
                                     "return F.softplus(-fake_logits).mean()")}, lose=(NOISE, DL, GL)),
]

CASES = HONEST + tamper.cases(TARGET)
