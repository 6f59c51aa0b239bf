"""The model-level operators as named classes: Jacobians, NTK, Hessian and Gauss–Newton.

Each is a :class:`~specinterp.linalg.LinearOperator` built from the Model protocol's products
only (:ref:`theory-notation`), so :mod:`specinterp.linalg` (Lanczos, bidiagonalisation, trace
and density estimators) applies to it, and each keeps what it was built from (``model``,
``x``, …) and its structure: the symmetric ones say so, the positive semi-definite ones
(``NTKOperator``, ``GGNOperator`` for a convex loss) carry ``positive_semidefinite``, and
composing ``G.T @ G`` or ``G @ G.T`` gives a symmetric positive semi-definite operator
(:meth:`LinearOperator.adjoint` remembers what it is the adjoint of).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .capabilities import CompressedCurvature, ReusableGGN, ReusableHVP, use
from .errors import ShapeError
from .linalg import LinearOperator
from .linalg.compression import Compression
from .losses import get_loss
from .model import Model, as_model, input_space
from .structured_ntk import product_form_for_ntk, structured_ntk

Array = Any

__all__ = [
    "GGNOperator",
    "HessianOperator",
    "InputJacobianOperator",
    "NTKOperator",
    "ParamJacobianOperator",
]


def _prepared(model: Any, x: Array) -> Model:
    model = as_model(model)
    model.check_input(x)
    return model


def _space(model: Model) -> dict[str, Any]:
    return {"dtype": model.dtype, "xp": model.xp, "device": getattr(model, "device", None)}


def _bind(op: Any, model: Any, x: Array) -> tuple[Model, int, int]:
    """Wrap and check the model; record ``model``, ``x``, ``N`` and ``C`` on ``op``."""
    op.model, op.x = _prepared(model, x), x
    op.num_samples, op.num_outputs = int(x.shape[0]), int(op.model.apply(x).shape[1])
    return op.model, op.num_samples, op.num_outputs


def natural_outputs(model: Model, x: Array) -> Array:
    """The outputs in the model's own shape ``(N, *out)`` (losses take them so)."""
    z = model.apply(x)
    return model.xp.reshape(z, (int(z.shape[0]), *model.output_shape(x)))


class InputJacobianOperator(LinearOperator):
    """The batch input Jacobian ``J = diag(J_1, …, J_N)``, ``(N·C) × (N·d)``.

    ``J v = (J_i v_i)_i`` is one batched JVP and ``Jᵀ u = (J_iᵀ u_i)_i`` one batched VJP;
    ``J_i = ∂f/∂x(x_i)`` is block-diagonal in the samples. At token ids the inputs are the
    token embeddings ``e = E[x]`` (:ref:`theory-token-inputs`), and :attr:`x` is ``e``.
    """

    def __init__(self, model: Any, x: Array) -> None:
        self.model, self.x = input_space(model, x)
        m, xp = self.model, self.model.xp
        n, d = int(self.x.shape[0]), math.prod(self.x.shape[1:])
        c = int(m.apply(self.x).shape[1])
        shape_x = tuple(self.x.shape)
        super().__init__(
            (n * c, n * d),
            lambda v: xp.reshape(m.jvp_input(self.x, xp.reshape(v, shape_x)), (n * c,)),
            rmatvec=lambda u: xp.reshape(m.vjp_input(self.x, xp.reshape(u, (n, c))), (n * d,)),
            **_space(m),
        )
        self.num_samples, self.num_outputs, self.input_size = n, c, d


class ParamJacobianOperator(LinearOperator):
    """The stacked parameter Jacobian ``G``, ``(N·C) × p``, rows ``i·C + a``.

    ``G v = (G_i v)_i`` is one batched JVP in the parameters and ``Gᵀ u = Σ_i G_iᵀ u_i`` one
    VJP. ``G.T @ G`` (``p × p``) and ``G @ G.T`` (the NTK) compose into symmetric positive
    semi-definite operators.
    """

    def __init__(self, model: Any, x: Array) -> None:
        m, n, c = _bind(self, model, x)
        xp = m.xp
        super().__init__(
            (n * c, m.num_params),
            lambda v: xp.reshape(m.jvp_params(x, v), (n * c,)),
            rmatvec=lambda u: m.vjp_params(x, xp.reshape(u, (n, c))),
            **_space(m),
        )


#: the most memory a structured NTK operator spends on holding ``K`` densely (256 MiB)
STRUCTURED_NTK_BYTES = 2**28


class NTKOperator(LinearOperator):
    """The empirical NTK ``K = G Gᵀ``, symmetric positive semi-definite ``(N·C) × (N·C)``.

    ``K u = G(Gᵀ u)``: one VJP and one JVP in the parameters (T5: its nonzero eigenvalues are
    the squared singular values of ``G``; :ref:`theory-t5`). For an MLP with a product form
    (arraynet, torch ``nn.Sequential``, Equinox / Flax dense stacks) whose ``K`` fits
    :data:`STRUCTURED_NTK_BYTES`, ``K`` is formed once by the layer-wise identity
    (:ref:`theory-structured-ntk`) — cheaper than a handful of products — and each product is
    one matrix product with it. :attr:`path` says which (``"structured"`` or
    ``"Jacobian products"``); :attr:`dense` holds ``K`` on the structured path.
    """

    def __init__(self, model: Any, x: Array) -> None:
        m, n, c = _bind(self, model, x)
        xp = m.xp
        self.dense: Array | None = None
        self.path = "Jacobian products"
        itemsize = xp.finfo(m.dtype).bits // 8
        fac = (
            product_form_for_ntk(m, x) if (n * c) ** 2 * itemsize <= STRUCTURED_NTK_BYTES else None
        )
        if fac is not None:
            self.dense, self.path = structured_ntk(fac), "structured"
            k = self.dense
            super().__init__(
                (n * c, n * c),
                lambda u: k @ u,
                matmat=lambda u: k @ u,
                positive_semidefinite=True,
                **_space(m),
            )
            return
        super().__init__(
            (n * c, n * c),
            lambda u: xp.reshape(m.jvp_params(x, m.vjp_params(x, xp.reshape(u, (n, c)))), (n * c,)),
            positive_semidefinite=True,
            **_space(m),
        )


def _on_first_product(
    model: Model, capability: type, args: tuple, fallback: Callable[[], Callable[[Array], Array]]
) -> Callable[[Array], Array]:
    """``v ↦ A v`` by the model's reusable ``capability``, else by ``fallback()``.

    Built at the first product, not before: ``eigsh`` may solve a compression and never need it.
    """
    built: list[Callable[[Array], Array]] = []

    def mv(v: Array) -> Array:
        if not built:
            try:
                built.append(use(model, capability, *args))
            except NotImplementedError:
                built.append(fallback())
        return built[0](v)

    return mv


class _Compressible:
    """``compression()`` of a curvature operator of a model's loss (Hessian or GGN)."""

    model: Model
    x: Array
    y: Array
    loss: Any
    _ggn = False
    _compression: Compression | bool | None = False  # False: not asked yet

    def compression(self) -> Compression | None:
        """``A = L Ã Lᵀ`` where ``A`` vanishes outside a subspace the model knows, else ``None``.

        An MLP's first dense layer seeing fewer samples than inputs (:ref:`theory-mlp-hvp`).
        Built on first use (:ref:`theory-compression`).
        """
        if self._compression is False:
            model, args = self.model, (self.x, self.y, self.loss, self._ggn)
            try:
                mv, m, lift, restrict = use(model, CompressedCurvature, *args)
            except NotImplementedError:
                self._compression = None
            else:
                psd = self._ggn and self.loss.convex
                small = LinearOperator(
                    (m, m), mv, symmetric=True, positive_semidefinite=psd, **_space(model)
                )
                self._compression = Compression(small, lift, restrict)
        return self._compression


class HessianOperator(_Compressible, LinearOperator):
    """The loss Hessian ``H = ∇²_θ (1/N) Σ_i ℓ(f(x_i), y_i)``, symmetric ``p × p``.

    Products are the adapter's Hessian-vector products (forward-over-reverse, or the
    R-operator), through its work-reusing path where it offers one. ``H = GGN + R``
    (:ref:`theory-notation`); it is indefinite in general.
    """

    def __init__(self, model: Any, x: Array, y: Array, loss: Any) -> None:
        self.model, self.x, self.y = _prepared(model, x), x, y
        self.loss = get_loss(loss)
        m = self.model
        self.loss.check(natural_outputs(m, x), y)  # eagerly: a traced product cannot

        def one_by_one(v: Array) -> Array:
            return m.hvp(x, y, v, loss)

        mv = _on_first_product(m, ReusableHVP, (x, y, loss), lambda: one_by_one)
        super().__init__((m.num_params, m.num_params), mv, symmetric=True, **_space(m))


class GGNOperator(_Compressible, LinearOperator):
    """The generalised Gauss–Newton ``(1/N) Σ_i G_iᵀ Λ_i G_i``, symmetric ``p × p``.

    ``v ↦ (1/N) Gᵀ Λ G v`` with ``Λ`` applied matrix-free (for cross-entropy
    ``p ⊙ u − p⟨p, u⟩`` per token), so memory stays that of the outputs. Positive
    semi-definite for the built-in (convex) losses (T7, :ref:`theory-t7`). An ``nn.Sequential``
    MLP takes the layer-wise sweeps (:ref:`theory-mlp-hvp`; capability ``ReusableGGN``).
    """

    _ggn = True

    def __init__(self, model: Any, x: Array, y: Array, loss: Any) -> None:
        self.model, self.x, self.y = _prepared(model, x), x, y
        lf = self.loss = get_loss(loss)
        m, xp = self.model, self.model.xp
        z = natural_outputs(m, x)
        n = int(x.shape[0])
        if tuple(z.shape[:1]) != (n,):
            raise ShapeError("model outputs must have one row per sample")
        lf.check(z, y)
        c = math.prod(z.shape[1:])

        def jacobian_products() -> Callable[[Array], Array]:
            lam = lf.hessian_at(z, y)

            def product(v: Array) -> Array:
                dz = lam(xp.reshape(m.jvp_params(x, v), tuple(z.shape)))
                return m.vjp_params(x, xp.reshape(dz, (n, c))) / n

            return product

        mv = _on_first_product(m, ReusableGGN, (x, y, lf), jacobian_products)
        super().__init__(
            (m.num_params, m.num_params),
            mv,
            symmetric=True,
            positive_semidefinite=lf.convex,
            **_space(m),
        )
