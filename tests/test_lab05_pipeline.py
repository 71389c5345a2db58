"""Lab 5 end to end: release → submissions → nbgrader autograde → scores via the Gradebook API."""
from nbgrader_utils import Pipeline

# The classic slip: the log-determinant with the sign of the inverse direction.
LOGDET_SIGN = '''
def coupling_forward(x, mask, net):
    s_hat, t = net(x * mask).chunk(2, dim=1)
    s = torch.tanh(s_hat) * (1 - mask)
    z = mask * x + (1 - mask) * (x * torch.exp(s) + t)
    return z, -s.flatten(1).sum(dim=1)
'''
REFERENCE_LOGLIK = '''
from dgm.flows import log_likelihood as my_log_likelihood   # imported under another name

def log_likelihood(x, layers):
    return my_log_likelihood(x, layers)
'''


globals().update(Pipeline(
    lab="05_flows",
    tests=("test_coupling_forward", "test_coupling_inverse", "test_image_mask", "test_log_likelihood",
           "test_dequantize", "test_bits_per_dim"),
    mistakes={"coupling_forward": LOGDET_SIGN},
    named={"test_coupling_forward": "log_det has the wrong sign"},
    reference=("log_likelihood", REFERENCE_LOGLIK, "test_log_likelihood"),
).tests())
