"""Small models the chapters share: an MLP and a CNN for 1-D or 2-D inputs."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

__all__ = ["CNN", "MLP"]


def _as_tuple(sizes: int | Sequence[int], what: str) -> tuple[int, ...]:
    sizes = (sizes,) if isinstance(sizes, int) else tuple(sizes)
    if not all(isinstance(s, int) and s > 0 for s in sizes):
        raise ValueError(f"{what} must be positive ints, got {sizes!r}")
    return sizes


def _kaiming_(module: nn.Module) -> None:
    """Kaiming-normal weights (fan-in, ReLU gain) and zero biases, as in the studies."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class MLP(nn.Sequential):
    """A fully connected ReLU network: ``Flatten``, then ``Linear`` + ``ReLU`` per hidden layer,
    then ``Linear``.

    >>> MLP(40, [256, 256], 10)
    MLP(
      (0): Flatten(start_dim=1, end_dim=-1)
      (1): Linear(in_features=40, out_features=256, bias=True)
      (2): ReLU()
      (3): Linear(in_features=256, out_features=256, bias=True)
      (4): ReLU()
      (5): Linear(in_features=256, out_features=10, bias=True)
    )

    ``init="kaiming"`` (default) draws weights from Kaiming-normal and zeroes biases;
    ``init="torch"`` keeps PyTorch's default initialisation.
    """

    def __init__(
        self,
        in_features: int,
        hidden: int | Sequence[int],
        out_features: int,
        bias: bool = True,
        *,
        init: str = "kaiming",
    ) -> None:
        self.in_features = _as_tuple(in_features, "in_features")[0]
        self.hidden = _as_tuple(hidden, "hidden")
        self.out_features = _as_tuple(out_features, "out_features")[0]
        sizes = (self.in_features, *self.hidden)
        layers: list[nn.Module] = [nn.Flatten()]
        for fan_in, fan_out in pairwise(sizes):
            layers += [nn.Linear(fan_in, fan_out, bias=bias), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], self.out_features, bias=bias))
        super().__init__(*layers)
        if init == "kaiming":
            _kaiming_(self)
        elif init != "torch":
            raise ValueError(f"unknown init {init!r}; choose 'kaiming' or 'torch'")

    @property
    def linears(self) -> list[nn.Linear]:
        """The ``Linear`` layers, input to output."""
        return [m for m in self if isinstance(m, nn.Linear)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:].numel() != self.in_features:
            raise ValueError(
                f"MLP expects {self.in_features} input features per example, got shape {tuple(x.shape)}"
            )
        return super().forward(x)


class _ChannelFirst(nn.Module):
    """Adds a channel axis to inputs that have none: ``(N, L)`` → ``(N, 1, L)`` for 1-D, ``(N, H,
    W)`` → ``(N, 1, H, W)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == self.dim + 1:
            return x.unsqueeze(1)
        if x.ndim != self.dim + 2:
            raise ValueError(
                f"a {self.dim}-D CNN expects inputs (N, C, {'L' if self.dim == 1 else 'H, W'}), got shape {tuple(x.shape)}"
            )
        return x


class CNN(nn.Sequential):
    """A small conv net: 3-wide (or 3×3) convs + ReLU, average pooling, global average pool, linear
    head.

    ``channels`` lists the conv widths; ``pool_after`` the indices of convs followed by
    2× average pooling. The default is the study's CNN, 64-64-pool-128-128.
    ``dim=1`` takes ``(N, L)`` or ``(N, C, L)`` (MNIST-1D), ``dim=2`` takes images.
    """

    def __init__(
        self,
        in_channels: int,
        out_features: int,
        channels: Sequence[int] = (64, 64, 128, 128),
        *,
        dim: int = 2,
        pool_after: Sequence[int] = (1,),
        bias: bool = False,
        init: str = "kaiming",
    ) -> None:
        if dim not in (1, 2):
            raise ValueError(f"dim must be 1 or 2, got {dim}")
        self.channels = _as_tuple(channels, "channels")
        self.dim = dim
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        pool = nn.AvgPool1d if dim == 1 else nn.AvgPool2d
        gap = nn.AdaptiveAvgPool1d if dim == 1 else nn.AdaptiveAvgPool2d
        layers: list[nn.Module] = [_ChannelFirst(dim)]
        width = _as_tuple(in_channels, "in_channels")[0]
        for i, c in enumerate(self.channels):
            layers += [conv(width, c, kernel_size=3, padding=1, bias=bias), nn.ReLU()]
            if i in pool_after:
                layers.append(pool(2))
            width = c
        layers += [gap(1), nn.Flatten(), nn.Linear(width, out_features, bias=bias)]
        super().__init__(*layers)
        if init == "kaiming":
            _kaiming_(self)
        elif init != "torch":
            raise ValueError(f"unknown init {init!r}; choose 'kaiming' or 'torch'")
