"""``train.type: cycle`` lives in :mod:`litesr.unsupervised.cycle`; importing it here registers it with the engine."""

from ..unsupervised.cycle import CycleTrainer  # noqa: F401
