"""The TFTrainingJob API: the schema, resolve() and validate(). Depends on pydantic and pyyaml only."""

from tftj.api.models import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    TFTrainingJob,
    TFTrainingJobSpec,
)
from tftj.api.resolve import ResolvedParameters, resolve, resolved_from_dict, resolved_to_dict

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "ResolvedParameters",
    "TFTrainingJob",
    "TFTrainingJobSpec",
    "resolve",
    "resolved_from_dict",
    "resolved_to_dict",
]
