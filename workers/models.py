"""Small models sized for the embedded digits data and for MNIST.

Parameter names follow PyTorch's module naming, so LLPF phase patterns (``conv1.*``, ``fc2.weight``) apply.
Larger CIFAR/ImageNet architectures live in ``architectures/``; ``build_model`` knows both.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Two 3×3 conv layers with BatchNorm and one hidden FC layer, for 8×8 single-channel digits (~25k parameters)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16, image_size: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(2 * width * (image_size // 2) ** 2, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


class MLP(nn.Module):
    """Fully connected net: flatten → fc1 → ReLU → fc2 → ReLU → fc3."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 8, hidden: int = 128):
        super().__init__()
        self.fc1 = nn.Linear(in_channels * image_size * image_size, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x.flatten(1)))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(nn.Module):
    """LeNet5 as in LLPF: conv 1→6 k5 pad 2, conv 6→16 k5, FC 400→120→84→10, ReLU, 2×2 max-pool."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2)
        side = ((image_size // 2) - 4) // 2
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.relu(self.fc1(x.flatten(1)))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def resnet18_imagenet(num_classes: int = 1000, in_channels: int = 3, image_size: int = 224) -> nn.Module:
    """torchvision's ImageNet ResNet18 (7×7 stem with max-pool), the model of LLPF Table 2's ImageNet row."""
    import torchvision

    model = torchvision.models.resnet18(num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    return model


SMALL_MODELS: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    "mlp": MLP,
    "lenet5": LeNet5,
    "resnet18": resnet18_imagenet,
}

# torchvision's pretrained weights of the models that have them (name -> torchvision model builder name)
PRETRAINED = {"resnet18": "resnet18"}


def load_pretrained(name: str, weights: str) -> dict:
    """The state of torchvision's pretrained ``weights`` (e.g. "IMAGENET1K_V1") for model ``name``, read from
    torchvision's cache ($TORCH_HOME/hub/checkpoints) or downloaded there where there is internet."""
    import torchvision

    enum = torchvision.models.get_model_weights(PRETRAINED[name])
    return enum[weights].get_state_dict(progress=False, weights_only=True)


def model_names() -> list[str]:
    """All model names ``build_model`` accepts."""
    try:
        from .architectures import ARCHITECTURES
    except ImportError:  # architectures are optional at import time
        ARCHITECTURES = {}
    return sorted(set(SMALL_MODELS) | set(ARCHITECTURES))


def build_model(name: str, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """Build a model by name for data of the given shape."""
    if name in SMALL_MODELS:
        return SMALL_MODELS[name](num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    from .architectures import TAKES_IMAGE_SIZE, build_architecture

    if name in TAKES_IMAGE_SIZE:
        return build_architecture(name, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    return build_architecture(name, num_classes=num_classes, in_channels=in_channels)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
