"""Training and evaluation: the loop, COCO metrics, checkpoints, the worker process.

``python -m engine.training`` is the training command for torchrun (data parallel on several
GPUs or processes): it takes the same arguments as ``frcnn train``.
"""

from .evaluation import EvalResult, evaluate_model
from .job import TrainingJob, run_job
from .settings import TrainSettings
from .trainer import Control, Trainer, TrainingError

__all__ = [
           "Control",
           "EvalResult",
           "TrainSettings",
           "Trainer",
           "TrainingError",
           "TrainingJob",
           "evaluate_model",
           "run_job",
]
