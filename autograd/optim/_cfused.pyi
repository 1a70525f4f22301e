"""Type stub for autograd.optim._cfused: autograd/optim/_fused.py compiled by Cython (same
functions)."""
from ._fused import KERNEL_ONLY_UPDATES as KERNEL_ONLY_UPDATES
from ._fused import adam_update as adam_update
from ._fused import sgd_update as sgd_update
from ._fused import step as step
from ._fused import update_groups as update_groups
from ._fused import zero_grad as zero_grad

__all__ = ["zero_grad", "step", "update_groups", "sgd_update", "adam_update", "KERNEL_ONLY_UPDATES"]
