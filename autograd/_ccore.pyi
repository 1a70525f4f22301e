"""Type stub for autograd._ccore: autograd/_core.py compiled by Cython (same names)."""
from ._core import G as G
from ._core import Node as Node
from ._core import OUT as OUT
from ._core import TensorBase as TensorBase
from ._core import X as X
from ._core import Y as Y
from ._core import apply as apply
from ._core import broadcast_shape as broadcast_shape
from ._core import bump_versions as bump_versions
from ._core import kernel_backward as kernel_backward
from ._core import kernel_forward as kernel_forward
from ._core import kernels as kernels
from ._core import pair as pair
from ._core import set_operators as set_operators
from ._core import set_tensor_class as set_tensor_class
from ._core import wrap as wrap
