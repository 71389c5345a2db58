"""Lab 1 (autoencoder): alternative-correct answers, typical wrong answers, and the tampering variants."""
from . import tamper
from .driver import Case

LAB = "01_autoencoder"
AE, LOSS, STEP = "test_autoencoder", "test_reconstruction_loss", "test_train_step"

TARGET = tamper.Target(
    lab=LAB, sol="reconstruction_loss", test=LOSS, fn="reconstruction_loss", args="x, x_hat",
    good="return ((x - x_hat) ** 2).flatten(1).sum(1).mean()", bad="return ((x - x_hat) ** 2).mean()",
    ref_mod="dgm.ae", ref="reconstruction_loss", mod="ae", attr="check_reconstruction_loss")


def loss(body):
    return TARGET.define(body)


def step(body):
    lines = "".join(f"    {ln}\n" for ln in body.strip("\n").splitlines())
    return f"def train_step(model, optimizer, x, loss_fn=reconstruction_loss):\n{lines}"


EXPLICIT_TANH = '''
class Autoencoder(nn.Module):
    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.e1, self.e2 = nn.Linear(784, 300), nn.Linear(300, latent_dim)
        self.d1, self.d2 = nn.Linear(latent_dim, 300), nn.Linear(300, 784)

    def encode(self, x):
        return self.e2(torch.tanh(self.e1(x.reshape(x.shape[0], -1))))

    def decode(self, z):
        return torch.sigmoid(self.d2(torch.tanh(self.d1(z)))).unflatten(1, (1, 28, 28))

    def forward(self, x):
        return self.decode(self.encode(x))
'''

CONV = '''
class Autoencoder(nn.Module):
    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.conv = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),      # (B, 8, 14, 14)
                                  nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),     # (B, 16, 7, 7)
                                  nn.Flatten())
        self.to_code = nn.Linear(16 * 7 * 7, latent_dim)
        self.from_code = nn.Sequential(nn.Linear(latent_dim, 16 * 7 * 7), nn.ReLU())
        self.deconv = nn.Sequential(nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1), nn.ReLU(),  # (B, 8, 14, 14)
                                    nn.ConvTranspose2d(8, 1, 4, stride=2, padding=1))              # (B, 1, 28, 28)

    def encode(self, x):
        return self.to_code(self.conv(x))

    def decode(self, z):
        return torch.sigmoid(self.deconv(self.from_code(z).view(-1, 16, 7, 7)))

    def forward(self, x):
        return self.decode(self.encode(x))
'''

DOUBLE_SIGMOID = EXPLICIT_TANH.replace("return torch.sigmoid(self.d2(", "return torch.sigmoid(torch.sigmoid(self.d2(") \
    .replace(".unflatten(1, (1, 28, 28))", ").unflatten(1, (1, 28, 28))")

HONEST = [
    Case("alt_explicit_tanh", "correct", "explicit layers, tanh hidden units, unflatten", cells={"autoencoder": EXPLICIT_TANH}),
    Case("alt_conv", "correct", "a convolutional autoencoder (architecture is free)", cells={"autoencoder": CONV}),
    Case("alt_mse_sum", "correct", "F.mse_loss(reduction='sum') / B",
         cells={"reconstruction_loss": "import torch.nn.functional as F\n" + loss(
             "return F.mse_loss(x_hat, x, reduction='sum') / x.shape[0]")}),
    Case("alt_step_keywords", "correct", "loss before model.zero_grad(), keyword loss_fn call, float(); "
         "an in-place pow_ + einsum loss",
         cells={"reconstruction_loss": loss("d = (x - x_hat).reshape(len(x), -1)\nd.pow_(2)\n"
                                            "return torch.einsum('bi->', d) / d.shape[0]"),
                "train_step": step("loss = loss_fn(x_hat=model(x), x=x)\nmodel.zero_grad()\nloss.backward()\n"
                                   "optimizer.step()\nreturn float(loss)")}),
    Case("wrong_step_stale", "wrong", "no zero_grad: stale gradients, costs train_step only",
         cells={"train_step": step("loss = loss_fn(x, model(x))\nloss.backward()\noptimizer.step()\nreturn loss.item()")},
         lose=(STEP,)),
    Case("wrong_step_ignores_loss_fn", "wrong", "train_step calls reconstruction_loss, not loss_fn",
         cells={"train_step": step("optimizer.zero_grad()\nloss = reconstruction_loss(x, model(x))\nloss.backward()\n"
                                   "optimizer.step()\nreturn loss.item()")}, lose=(STEP,)),
    Case("wrong_loss_and_ae", "wrong", "wrong loss AND wrong model: train_step still full marks (ECF)",
         cells={"reconstruction_loss": loss("return ((x - x_hat) ** 2).sum()"), "autoencoder": DOUBLE_SIGMOID},
         lose=(AE, LOSS)),
]

# tampering submissions leave the Autoencoder undone (its check trains a model: seconds per case) — that
# part scores 0 as "not implemented"; what is asserted is the part the tampering targets
STUB = {"autoencoder": (
    "class Autoencoder(nn.Module):\n    def __init__(self, latent_dim: int):\n        super().__init__()\n"
    "        self.latent_dim = latent_dim\n\n    def encode(self, x):\n        raise NotImplementedError()\n\n"
    "    def decode(self, z):\n        raise NotImplementedError()\n\n"
    "    def forward(self, x):\n        return self.decode(self.encode(x))\n")}
CASES = HONEST + tamper.cases(TARGET, stub=STUB, stub_lose=(AE,))
