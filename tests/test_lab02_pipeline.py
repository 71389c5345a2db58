"""Lab 2 end to end: release → submissions → nbgrader autograde → scores via the Gradebook API."""
from nbgrader_utils import Pipeline

# The classic slip: sigma taken as exp(logvar), the variance, instead of exp(0.5 * logvar).
SIGMA_IS_VARIANCE = '''
def reparameterize(mu, logvar, eps=None):
    if eps is None:
        eps = torch.randn_like(mu)
    return mu + torch.exp(logvar) * eps
'''
# A decision gone wrong: the spread measured by the standard deviation against a variance threshold.
ACTIVE_BY_STD = '''
def active_units(mu, threshold=0.01):
    return mu.std(dim=0) > threshold
'''
REFERENCE_KL = '''
from dgm.vae import kl_divergence as my_kl   # imported under another name

def kl_divergence(mu, logvar):
    return my_kl(mu, logvar)
'''


globals().update(Pipeline(
    lab="02_vae",
    tests=("test_kl_divergence", "test_reparameterize", "test_vae", "test_elbo_loss", "test_train_step",
           "test_active_units"),
    mistakes={"reparameterize": SIGMA_IS_VARIANCE, "active_units": ACTIVE_BY_STD},
    named={"test_reparameterize": "exp(logvar) is the variance", "test_active_units": "standard deviation"},
    reference=("kl_divergence", REFERENCE_KL, "test_kl_divergence"),
).tests())
