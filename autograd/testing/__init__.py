"""Test helpers users need too: hypothesis strategies for tensors (``strategies``) and the op
database the generated op tests run from (``opdb``).

Importing this package needs ``hypothesis`` (a test dependency, not a runtime one).
"""
from __future__ import annotations

from . import strategies
from .opdb import OP_DB, ErrorInput, OpInfo, Sample, op_db_by_id

__all__ = ["OP_DB", "ErrorInput", "OpInfo", "Sample", "op_db_by_id", "strategies"]
