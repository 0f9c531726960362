"""The variants chapter 2 chooses between: its optimizers (:class:`Method`) and the networks they
train (:class:`Kind`).

Both are string enums: ``Method.KFAC == "kfac"`` and ``f"{Method.KFAC}"`` is ``kfac``, so they
key figures and recorded numbers by their plain names.
"""

from __future__ import annotations

import enum

__all__ = ["Kind", "Method"]


class Method(enum.StrEnum):
    """One optimizer of the chapter."""

    SGD = "sgd"  #: heavy-ball momentum 0.9
    ADAM = "adam"
    NATURAL = "natural"  #: the exact natural gradient, its Fisher on an independent batch
    NATURAL_SAME = "natural-same"  #: the exact natural gradient, its Fisher on the gradient's batch
    KFAC = "kfac"  #: heuristic damping
    KFAC_STANDARD = "kfac-standard"  #: standard damping
    FOOF = "foof"

    @property
    def curvature(self) -> bool:
        """Takes a damping λ (and, for KFAC and FOOF, an inversion period)."""
        return self not in (Method.SGD, Method.ADAM)

    @property
    def identical_data(self) -> bool:
        """The natural gradient's Fisher on the gradient's own batch."""
        return self is Method.NATURAL_SAME

    @property
    def tuned_as(self) -> Method:
        """The method whose setting this one uses: the identical-data natural gradient the natural
        gradient's."""
        return Method.NATURAL if self is Method.NATURAL_SAME else self


class Kind(enum.StrEnum):
    """The network and data of an experiment."""

    MLP = "mlp"  #: the classifier
    AUTOENCODER = "autoencoder"  #: tanh, squared error, reconstructing its input
    CONTROL = "control"  #: the classifier on a fixed set of images, full batch

    @property
    def loss(self) -> str:
        """The loss :func:`nnstudies.optim.training_step` minimises."""
        return "mse" if self is Kind.AUTOENCODER else "cross_entropy"
