"""Search spaces: typed parameters (:mod:`.params`), conditions and the gene encoding."""

from .params import Categorical, Constant, Float, Int, Param, Scalar
from .space import Space

__all__ = ["Categorical", "Constant", "Float", "Int", "Param", "Scalar", "Space"]
