"""Lab 1 end to end: release → submissions → nbgrader autograde → scores via the Gradebook API."""
from nbgrader_utils import Pipeline

MEAN_LOSS = '''
def reconstruction_loss(x, x_hat):
    return ((x - x_hat) ** 2).mean()
'''
REFERENCE_LOSS = '''
from dgm.ae import reconstruction_loss as my_loss   # imported under another name

def reconstruction_loss(x, x_hat):
    return my_loss(x, x_hat)
'''

globals().update(Pipeline(
    lab="01_autoencoder",
    tests=("test_reconstruction_loss", "test_autoencoder", "test_train_step"),
    mistakes={"reconstruction_loss": MEAN_LOSS},
    named={"test_reconstruction_loss": "averages over every pixel"},
    reference=("reconstruction_loss", REFERENCE_LOSS, "test_reconstruction_loss"),
).tests())
