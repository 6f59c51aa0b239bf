"""Array-namespace helpers: the only part of the core that names backends.

Everything else in :mod:`specinterp` is written once against the Python array API standard;
these helpers supply what the standard leaves out, one idea per module:

* :mod:`.namespaces` — which library and device an array belongs to, checks with clear errors,
  dtype queries, conversion to and from NumPy for reporting;
* :mod:`.random` — a seeded random-number source for every namespace (the standard has none);
* :mod:`.kernels` — batched SVD and eigenvalue kernels, and scaling against over- and underflow;
* :mod:`.host_threads` — one host BLAS thread for a solver's small problems while another
  library runs its products.
"""

from .host_threads import host_blas_single
from .kernels import (
    QR_FIRST_ASPECT,
    eigvalsh,
    minus_product,
    power_of_two_scaled,
    safe_magnitudes,
    svdvals,
)
from .namespaces import (
    NamespaceMismatchError,
    all_finite,
    backend_name,
    check_finite,
    check_matrix,
    check_parameter_precision,
    check_real_floating,
    check_same_device,
    check_working_precision,
    concrete_bool,
    contiguous,
    default_namespace,
    device,
    eps,
    from_host,
    has_writeable_storage,
    is_array,
    is_lazy,
    namespace,
    same_namespace,
    to_numpy,
)
from .random import Generator, as_generator, host_generator

__all__ = [
    "QR_FIRST_ASPECT",
    "Generator",
    "NamespaceMismatchError",
    "all_finite",
    "as_generator",
    "backend_name",
    "check_finite",
    "check_matrix",
    "check_parameter_precision",
    "check_real_floating",
    "check_same_device",
    "check_working_precision",
    "concrete_bool",
    "contiguous",
    "default_namespace",
    "device",
    "eigvalsh",
    "eps",
    "from_host",
    "has_writeable_storage",
    "host_blas_single",
    "host_generator",
    "is_array",
    "is_lazy",
    "minus_product",
    "namespace",
    "power_of_two_scaled",
    "safe_magnitudes",
    "same_namespace",
    "svdvals",
    "to_numpy",
]
