"""Lab 1 end to end: release → submissions → nbgrader autograde → scores via the Gradebook API."""
from nbgrader_utils import Pipeline

MEAN_LOSS = '''
def reconstruction_loss(x, x_hat):
    return ((x - x_hat) ** 2).mean()
'''
RELU_CODE = '''
class Autoencoder(nn.Module):
    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, latent_dim),
                                     nn.ReLU())  # an activation on the code: the mistake
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 128), nn.ReLU(), nn.Linear(128, 784), nn.Sigmoid())

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z).view(-1, 1, 28, 28)

    def forward(self, x):
        return self.decode(self.encode(x))
'''
LINEAR_QUANTILE = '''
def pick_threshold(normal_scores, max_fpr):
    return torch.quantile(normal_scores, 1 - max_fpr).item()   # interpolates: one false alarm too many
'''
REFERENCE_LOSS = '''
from dgm.ae import reconstruction_loss as my_loss   # imported under another name

def reconstruction_loss(x, x_hat):
    return my_loss(x, x_hat)
'''

globals().update(Pipeline(
    lab="01_autoencoder",
    tests=("test_reconstruction_loss", "test_autoencoder", "test_train_step", "test_anomaly_score",
           "test_pick_threshold"),
    # three parts wrong: each costs its own cell only; train_step is graded with the check's own loss_fn,
    # anomaly_score with the check's own model, pick_threshold on given scores
    mistakes={"autoencoder": RELU_CODE, "reconstruction_loss": MEAN_LOSS, "pick_threshold": LINEAR_QUANTILE},
    named={"test_autoencoder": "The code is squashed by an activation",
           "test_reconstruction_loss": "averages over every pixel",
           "test_pick_threshold": "count the scores above t"},
    reference=("reconstruction_loss", REFERENCE_LOSS, "test_reconstruction_loss"),
).tests())
