"""ResNet-18, CIFAR variant (3x3 stem, stride 1, no max-pool): architecture and inference.

Module names follow torchvision's ResNet so the paper's layer names apply unchanged:
``conv1, bn1, layer1 ... layer4`` (two ``BasicBlock`` each: ``conv1, bn1, conv2, bn2`` and, where
the shape changes, ``downsample.0`` conv / ``downsample.1`` BN), ``avgpool``, ``fc``.
``width`` scales every channel count (64 = the paper: 64, 128, 256, 512). Any number of input
channels and any image size work: the pooling before ``fc`` is adaptive.
Checkpoints (saving, loading, verifying) live in :mod:`compreps.model.checkpoints`.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHITECTURES = ("resnet18",)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(
        self, blocks: tuple[int, ...], width: int, in_channels: int, num_classes: int
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        planes, layers = width, []
        for stage, n_blocks in enumerate(blocks):
            out_planes = width * 2**stage
            stride = 1 if stage == 0 else 2
            stage_blocks = [BasicBlock(planes, out_planes, stride)]
            stage_blocks += [BasicBlock(out_planes, out_planes) for _ in range(n_blocks - 1)]
            layers.append(nn.Sequential(*stage_blocks))
            planes = out_planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_model(arch: str, width: int, in_channels: int, num_classes: int) -> nn.Module:
    """Build an untrained model. Only ``resnet18`` (CIFAR variant) is defined."""
    if arch != "resnet18":
        raise ValueError(f"unknown architecture {arch!r}; allowed: {', '.join(ARCHITECTURES)}")
    if width < 1:
        raise ValueError(f"model width must be >= 1, got {width}")
    return ResNet((2, 2, 2, 2), width, in_channels, num_classes)


def layer_names(arch: str) -> list[str]:
    """Every named module of ``arch`` that can be probed (the names are width-independent)."""
    # width 1 on the CPU: a few hundred weights (the "meta" device would import torch._dynamo)
    model = build_model(arch, 1, 3, 10)
    # ReLU modules are shared within a block (called twice), so they are not probe points.
    return [name for name, m in model.named_modules() if name and not isinstance(m, nn.ReLU)]


def compressible_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The Conv2d and Linear modules, in definition order (pruning, quantisation, s_w)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def normalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 N×C×H×W -> float32 ``(x / 255 - mean) / std`` on the images' device."""
    mean_t = torch.as_tensor(mean, device=images.device, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, device=images.device, dtype=torch.float32).view(1, -1, 1, 1)
    return (images.float().div_(255) - mean_t) / std_t


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    mean,
    std,
    device: str | torch.device,
    batch_size: int,
) -> torch.Tensor:
    """Logits (float32, on CPU) for uint8 images, in large batches under ``inference_mode``."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = normalize(
            images[start : start + batch_size].to(device, non_blocking=True), mean, std
        )
        outputs.append(model(batch).float().cpu())
    return torch.cat(outputs) if outputs else torch.empty(0)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels.to(logits.device)).float().mean())


def pick_device() -> torch.device:
    """CUDA when the job was given a visible GPU, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"
