"""SAGP hyper-parameters (supplement Table 2, Table 3) and the Table 9 ablations."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..activations import get_activation
from ..validation import check_int, check_scalar

__all__ = ["ABLATIONS", "SAGPConfig", "ablation_config", "config_dict"]


@dataclass(frozen=True)
class SAGPConfig:
    """Hyper-parameters of SAGP.

    The SAGP-specific defaults are the supplement's Table 2 (L = 3, alpha = 0.2,
    gamma1 = 0.05, gamma2 = 0.001, beta = 0.5, N = 10, |H|max = 128); swish is the
    default activation (supplement Sec. 3.3); ``batchnorm`` and ``dropout`` are the
    common hyper-parameters of its Table 3.  ``growth``, ``competition`` and
    ``apoptosis`` switch the three mechanisms of its Table 9 ablations.

    Attributes
    ----------
    steps : int
        L, the number of message-passing steps.
    alpha : float
        Temperature of the competition, in SparseLoss (S-Table 2; a smaller alpha makes
        the competition more intense, :func:`refimpl.sagp.masks.sparse_loss`).
    gamma1, gamma2 : float
        Scales of the neuron and synapse terms of AuxLoss.
    beta : float
        Threshold of the apoptosis rule (Rule 1).
    patience : int
        N, the patience of the growth rule (Rule 2).
    h_max : int
        |H|max, the most hidden neurons that may ever grow.
    activation : str
    batchnorm : bool
    dropout : float
    lr, weight_decay : float
        Adam learning rate and L2 weight decay.
    batch_size : int
    growth, competition, apoptosis : bool
    output_self_loops : bool
        The output identity block of S-Eq. 11.
    mask_init : float
        Initial mask logits (> 0: masks start on).
    """

    steps: int = 3
    alpha: float = 0.2
    gamma1: float = 0.05
    gamma2: float = 0.001
    beta: float = 0.5
    patience: int = 10
    h_max: int = 128
    activation: str = "swish"
    batchnorm: bool = False
    dropout: float = 0.0
    lr: float = 0.01
    weight_decay: float = 0.0
    batch_size: int = 64
    growth: bool = True
    competition: bool = True
    apoptosis: bool = True
    output_self_loops: bool = False
    mask_init: float = 1.0

    def __post_init__(self):
        for name, lo in (("steps", 1), ("patience", 1), ("h_max", 0), ("batch_size", 1)):
            check_int(getattr(self, name), name, lo)
        for name in ("alpha", "lr"):
            check_scalar(getattr(self, name), name, minimum=0.0, strict=True)
        for name in ("gamma1", "gamma2", "beta", "weight_decay"):
            check_scalar(getattr(self, name), name, minimum=0.0)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {self.dropout!r}")
        check_scalar(self.mask_init, "mask_init")
        get_activation(self.activation)  # raises ValueError naming 'activation'


#: The ablations of the supplement's Table 9 (Sec. 4.5), as config overrides.
ABLATIONS: dict[str, dict] = {
    "none": {},
    "no-growth": {"growth": False},  # start with |H|max neurons, growth rule off
    "no-competition": {"competition": False},  # no AuxLoss in the backward pass
    "no-apoptosis": {"apoptosis": False},  # apoptosis rule off
}


def ablation_config(config: SAGPConfig, name: str) -> SAGPConfig:
    """The configuration of one ablation of the supplement's Table 9 (Sec. 4.5).

    Parameters
    ----------
    config : SAGPConfig
    name : {"none", "no-growth", "no-competition", "no-apoptosis"}

    Returns
    -------
    SAGPConfig

    Raises
    ------
    ValueError
        If ``name`` is not an ablation.
    """
    if name not in ABLATIONS:
        raise ValueError(f"name: unknown ablation {name!r}; expected one of {sorted(ABLATIONS)}")
    return replace(config, **ABLATIONS[name])



def config_dict(config: SAGPConfig) -> dict:
    """The configuration (supplement Table 2) as a plain dict (for the history file)."""
    return asdict(config)
