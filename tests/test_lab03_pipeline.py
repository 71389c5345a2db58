"""Lab 3 end to end: release → submissions → nbgrader autograde → scores via the Gradebook API."""
from nbgrader_utils import Pipeline

SWAPPED_LABELS = '''
def discriminator_loss(real_logits, fake_logits):
    real_term = F.binary_cross_entropy_with_logits(real_logits, torch.zeros_like(real_logits))
    fake_term = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    return 0.5 * real_term + 0.5 * fake_term
'''
NO_DETACH = '''
def train_step(G, D, opt_g, opt_d, real, z, kind="nonsaturating", d_loss=None, g_loss=None):
    d_loss = d_loss or discriminator_loss
    g_loss = g_loss or generator_loss
    opt_d.zero_grad()
    loss_d = d_loss(D(real), D(G(z)))          # forgot .detach(): J_D reaches G
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad()
    loss_g = g_loss(D(G(z)), kind=kind)
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()
'''
REFERENCE_LOSS = '''
from dgm.gan import generator_loss as my_generator_loss   # imported under another name

def generator_loss(fake_logits, kind="nonsaturating"):
    return my_generator_loss(fake_logits, kind)
'''


globals().update(Pipeline(
    lab="03_gan",
    tests=("test_generator_loss", "test_sample_noise", "test_discriminator_loss", "test_train_step", "test_count_modes"),
    mistakes={"discriminator_loss": SWAPPED_LABELS, "train_step": NO_DETACH},
    named={"test_discriminator_loss": "labels are swapped", "test_train_step": "missing detach"},
    reference=("generator_loss", REFERENCE_LOSS, "test_generator_loss"),
).tests())
