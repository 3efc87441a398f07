"""Model resolution: ``from podium.models import resolve_model``."""

from podium.agents._local import local_model_status
from podium.agents._models import describe_default, is_local_model, resolve_model

__all__ = ["describe_default", "is_local_model", "local_model_status", "resolve_model"]
