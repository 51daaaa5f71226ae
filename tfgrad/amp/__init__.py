"""Mixed precision (``import tfgrad.amp as amp``): dynamic loss scaling with PyTorch
``GradScaler`` semantics (:class:`AMPConfig`, :class:`AMPPolicy`, :class:`StabilityMetrics`)
and :func:`autocast`, which picks each op's compute dtype (float16 or bfloat16 for matmul,
float32 for exp, sums and softmax) through the core's one cast hook.

A feature layer: it imports the core and the core never imports it. float16 and bfloat16 are
real 16-bit storage in every backend (bfloat16 as its 16 bits, rounded to nearest even);
kernels compute and accumulate them in float32 and round once on store.
"""

from .autocast import AUTOCAST_ALLOW, AUTOCAST_DENY, autocast, autocast_dtype
from .scaler import AMPConfig, AMPPolicy, ScaleRecord, StabilityMetrics

__all__ = [
    "AMPConfig", "AMPPolicy", "ScaleRecord", "StabilityMetrics", "autocast", "autocast_dtype",
    "AUTOCAST_ALLOW", "AUTOCAST_DENY",
]  # fmt: skip
