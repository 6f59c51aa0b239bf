"""Matrix-free spectral algorithms on the array API (:ref:`theory-algorithms`).

Everything here touches an operator only through products, so it applies unchanged to dense
arrays of any namespace and to model-level operators (Jacobians, NTKs, Hessians) that are never
materialised.
"""

from .bidiag import svds
from .density import slq_nodes, spectral_density, trace_function
from .lanczos import eigsh
from .operator import LinearOperator, aslinearoperator
from .randomized import nystrom, randomized_svd
from .results import Density, EigResult, SVDResult, TraceResult
from .trace import trace
from .tridiagonal import lanczos_tridiagonal

__all__ = [
    "Density",
    "EigResult",
    "LinearOperator",
    "SVDResult",
    "TraceResult",
    "aslinearoperator",
    "eigsh",
    "lanczos_tridiagonal",
    "nystrom",
    "randomized_svd",
    "slq_nodes",
    "spectral_density",
    "svds",
    "trace",
    "trace_function",
]
