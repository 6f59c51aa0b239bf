"""JAX adapter: ``apply_fn(params, x_batch)`` with a parameter pytree (plain JAX or Flax linen).

Products are ``jax.jvp`` / ``jax.vjp`` on the raveled parameter vector
(``jax.flatten_util.ravel_pytree``: tree-flatten order), the HVP is forward-over-reverse, and
the dense Jacobians use ``vmap(jacrev)``. Every product is ``jit``-compiled once per model.
Float64 needs ``jax.config.update("jax_enable_x64", True)`` — the caller's choice; the library
never flips it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from specinterp import _xp
from specinterp.capabilities import ConvKernel
from specinterp.errors import LabelError, ModelError, ShapeError
from specinterp.gram import gram
from specinterp.model import ModelBase

from ._jax_calls import LinenApply, is_linen, with_context
from ._jax_conv import jax_conv_kernels
from ._jax_curvature import JaxCurvature
from ._jax_equinox import equinox_parts
from ._outputs import output_selector
from .jax_regularizers import (  # noqa: F401 - importable from here, as before the split
    jacobian_entropy,
    jacobian_frobenius,
    jacobian_spectral_norm,
)

__all__ = ["JaxModel"]  # the regularisers are documented in .jax_regularizers


class JaxModel(JaxCurvature, ModelBase):
    """A JAX function of ``(params, x)`` behind the :class:`~specinterp.model.Model` protocol.

    Parameters
    ----------
    fn : callable or flax.linen.Module
        ``fn(params, x)`` returning ``(N, *out)``; for a Flax linen module (one of Flax's own
        layers or a user-defined module) its ``apply`` is used.
    params : pytree
        The parameters. For a linen module, the ``variables`` dict ``module.init`` returned:
        its ``"params"`` collection is differentiated, the others (``"batch_stats"``, ...) are
        held fixed; or the ``"params"`` collection alone.
    input_shape : tuple of int, optional
        Per-sample input shape, checked on every call when given.
    output : str, int or callable, optional
        Which array of a dict / tuple output to analyse (default ``"logits"``), or a
        callable of the raw output.
    embedding : str, optional
        For integer inputs to a linen module: the name of its token ``nn.Embed`` submodule
        (found automatically when the ids feed exactly one).

    """

    accepts_token_ids = True

    def __init__(
        self,
        fn: Callable[..., Any] | Any,
        params: Any = None,
        *,
        input_shape: tuple[int, ...] | None = None,
        output: str | int | Callable[[Any], Any] | None = None,
        embedding: str | None = None,
        embedder: Any = None,
        kind: str | None = None,
    ) -> None:
        self.input_shape = None if input_shape is None else tuple(input_shape)
        if params is None:
            raise ModelError("a JAX model needs params= (the parameter pytree)")
        if not callable(fn) and not hasattr(fn, "apply"):
            raise ModelError("pass apply_fn(params, x) or a Flax linen module")
        linen = is_linen(fn)
        if linen:  # differentiate the "params" collection, hold the others fixed
            module = LinenApply(fn, params)
            params = module.params
        apply = with_context(module.apply if linen else fn)
        if embedder is None and linen:
            from ._flax_embedding import LinenEmbedder

            embedder = LinenEmbedder(module, embedding)
        elif embedding is not None and embedder is None:
            raise ModelError(
                "embedding= names a layer of a Flax linen / NNX module or a torch module; a "
                "plain JAX function has no named layers"
            )
        self._embedder = embedder
        self._kind = kind or (f"flax.linen {type(fn).__name__}" if linen else "function")
        select = output_selector(output)
        self._select = select
        flat, unravel = ravel_pytree(params)
        self.params = params
        self._unravel = unravel
        self.xp = jnp
        self.flat = flat
        self.dtype = flat.dtype
        _xp.check_parameter_precision(self.dtype, jnp)
        self.device = _xp.device(flat)
        self.num_params = int(flat.shape[0])
        self._ids: jax.Array | None = None
        self._factors: Callable[[jax.Array, jax.Array], Any] | None = None
        if linen and type(fn).__name__ == "Sequential":
            from ._jax_mlp import linen_sequential_factors

            self._factors = lambda theta, xx: linen_sequential_factors(fn, unravel(theta), xx)

        def natural(theta: jax.Array, x: jax.Array) -> jax.Array:
            out = select(apply(unravel(theta), x))
            if not hasattr(out, "ndim") or out.ndim < 1 or out.shape[0] != x.shape[0]:
                got = getattr(out, "shape", type(out).__name__)
                raise ModelError(
                    f"the model must return one output row per sample, (N, *out); got {got} "
                    "(output= selects an array from a structured output)"
                )
            return out

        self._build(natural)

    def _build(self, natural: Callable[[jax.Array, jax.Array], jax.Array]) -> None:
        """jit-compile every product of ``natural(theta, x) -> (N, *out)``."""

        def f(theta: jax.Array, x: jax.Array) -> jax.Array:
            out = natural(theta, x)
            return jnp.reshape(out, (out.shape[0], -1))

        self._natural = natural
        self._f = f
        self._apply = jax.jit(f)
        self._jvp_in = jax.jit(lambda t, x, v: jax.jvp(lambda xx: f(t, xx), (x,), (v,))[1])
        self._vjp_in = jax.jit(lambda t, x, u: jax.vjp(lambda xx: f(t, xx), x)[1](u)[0])
        self._jvp_p = jax.jit(lambda t, x, v: jax.jvp(lambda tt: f(tt, x), (t,), (v,))[1])
        self._vjp_p = jax.jit(lambda t, x, u: jax.vjp(lambda tt: f(tt, x), t)[1](u)[0])
        self._hvps: dict[Any, Callable[..., jax.Array]] = {}

        def single(t: jax.Array, xi: jax.Array) -> jax.Array:
            return f(t, xi[None])[0]

        self._jac_in = jax.jit(jax.vmap(jax.jacrev(single, argnums=1), in_axes=(None, 0)))
        self._jac_in_fwd = jax.jit(jax.vmap(jax.jacfwd(single, argnums=1), in_axes=(None, 0)))
        self._jac_p = jax.jit(jax.vmap(jax.jacrev(single, argnums=0), in_axes=(None, 0)))

    def __repr__(self) -> str:
        view = ", embedded view" if self._ids is not None else ""
        return (
            f"JaxModel({self._kind}{view}, p={self.num_params:,}, dtype={self.dtype}, "
            f"device={self.device}{self._shapes_text()}, output={self._select.describe()})"
        )

    @classmethod
    def from_equinox(
        cls,
        module: Any,
        *,
        batched: bool = False,
        input_shape: tuple[int, ...] | None = None,
        output: str | int | Callable[[Any], Any] | None = None,
        embedding: str | None = None,
    ) -> JaxModel:
        """Wrap an Equinox module: its inexact arrays are the parameters.

        Equinox modules usually map one sample; they are ``vmap``-ed over the batch unless
        ``batched=True``. At token ids the per-sample module's ``eqx.nn.Embedding`` (found when
        it has one, or named by its dotted path, ``embedding=``) gives the embedded view.
        """
        apply, params, embedder, factors = equinox_parts(module, batched, embedding)
        model = cls(
            apply,
            params,
            input_shape=input_shape,
            output=output,
            embedder=embedder,
            kind=f"equinox {type(module).__name__}",
        )
        if factors is not None:
            model._factors = factors(model._unravel)
        return model

    # ------------------------------------------------------------------ token inputs
    def check_token_ids(self, x: jax.Array, what: str = "x") -> None:
        """Token ids must index rows of the embedding table (JAX would clamp them silently)."""
        rows = None if self._embedder is None else self._embedder.num_rows(self.params, x)
        lo = _xp.concrete_bool(jnp.min(x) >= 0)
        if rows is None or lo is None:
            return
        if not lo or int(jnp.max(x)) >= rows:
            raise LabelError(
                f"{what} holds token ids from {int(jnp.min(x))} to {int(jnp.max(x))}, but the "
                f"embedding table has {rows} rows (ids 0..{rows - 1}); JAX would clamp them "
                "silently — map them into the model's vocabulary"
            )

    def embedded(self, x: jax.Array) -> tuple[JaxModel, jax.Array]:
        """The view on token embeddings: ``(model_e, e)`` with ``e = E[x]`` ``(N, T, d)``."""
        self.check_input(x)
        if jnp.issubdtype(x.dtype, jnp.floating):
            return self, x
        if self._embedder is None:
            raise ModelError(
                "input-side quantities at token ids are taken with respect to the token "
                f"embeddings, which a {self._kind} does not expose; write the model as a "
                "function of the embeddings (apply_fn(params, e)) for them, or use a Flax "
                "linen / NNX module with an Embed layer"
            )
        e, run = self._embedder.view(self.params, x)
        if e.dtype != self.dtype:
            raise ModelError(f"the embedding layer gives {e.dtype}, the parameters {self.dtype}")
        unravel, select = self._unravel, self._select
        view = copy.copy(self)
        view._ids = x
        view.accepts_token_ids = False
        view.input_shape = tuple(e.shape[1:])

        def natural(theta: jax.Array, ee: jax.Array) -> jax.Array:
            n, m = int(x.shape[0]), int(ee.shape[0])
            if m % n:
                raise ShapeError(f"embeddings for {n} token sequences must have k·{n} rows")
            ids = x if m == n else jnp.repeat(x, m // n, axis=0)
            return select(run(unravel(theta), ids, ee))

        view._build(natural)

        def single(t: jax.Array, ei: jax.Array, idi: jax.Array) -> jax.Array:
            return jnp.reshape(select(run(unravel(t), idi[None], ei[None])), (-1,))

        def bound(mode: Callable[..., Any]) -> Callable[[jax.Array, jax.Array], jax.Array]:
            jac = jax.jit(jax.vmap(mode(single, argnums=1), in_axes=(None, 0, 0)))
            return lambda t, ee: jac(t, ee, jnp.repeat(x, ee.shape[0] // x.shape[0], axis=0))

        view._jac_in, view._jac_in_fwd = bound(jax.jacrev), bound(jax.jacfwd)
        return view, e

    def output_shape(self, x: jax.Array) -> tuple[int, ...]:
        """Per-sample output shape (``jax.eval_shape``: no computation)."""
        self.check_input(x)
        probe = x if self._ids is not None else x[:1]  # an embedded view is bound to its ids
        out = tuple(jax.eval_shape(self._natural, self.flat, probe).shape[1:])
        return self._remember_shapes(x, out)

    def layer_factors(self, x: jax.Array) -> Any:
        """The MLP product form (T3, T4) where the model has one (``eqx.nn.MLP``).

        Raises
        ------
        NotImplementedError
            For models without a known product form.

        """
        self.check_float_input(x, "layer_factors")
        if self._factors is None:
            raise NotImplementedError(
                f"no product form is known for a {self._kind}; an Equinox eqx.nn.MLP and a Flax "
                "nnx.Sequential of nnx.Linear layers and activations have one"
            )
        return self._factors(self.flat, x)

    def weight_matrices(self) -> list[tuple[str, jax.Array]]:
        """The 2-d leaves of the parameter pytree, named by their key path."""
        leaves = jax.tree_util.tree_flatten_with_path(self.params)[0]
        return [
            (jax.tree_util.keystr(path), leaf)
            for path, leaf in leaves
            if getattr(leaf, "ndim", 0) == 2
        ]

    def conv_kernels(self, input_shape: Sequence[int] | None = None) -> list[ConvKernel]:
        """The 2-d convolutions, read from the model's jaxpr (capability ``ConvKernels``)."""
        shape = self.input_shape if input_shape is None else tuple(input_shape)
        leaves = jax.tree_util.tree_flatten_with_path(self.params)[0]
        named = [
            (jax.tree_util.keystr(p), leaf) for p, leaf in leaves if getattr(leaf, "ndim", 0) == 4
        ]
        if shape is None and named:  # 4-d leaves: convolutions, but no input to trace them on
            raise ModelError(
                "the convolutions of a JAX model are read from its trace on an input: pass "
                "model_layers(..., input_shape=...) (one sample's shape), or conv='skip'"
            )
        return jax_conv_kernels(self._natural, self.flat, named, shape)

    def with_params(self, theta: jax.Array) -> JaxModel:
        """The same model with the flat parameter vector ``theta``."""
        self.check_flat_params(theta)
        other = copy.copy(self)
        other.flat = theta
        return other

    @property
    def flat_params(self) -> jax.Array:
        """The current parameters as one flat vector."""
        return self.flat

    def apply(self, x: jax.Array) -> jax.Array:
        """Outputs ``(N, C)``."""
        self.check_input(x)
        return self._apply(self.flat, x)

    def jvp_input(self, x: jax.Array, v: jax.Array) -> jax.Array:
        """``J_i v_i``."""
        self.check_float_input(x, "jvp_input")
        return self._jvp_in(self.flat, x, v)

    def vjp_input(self, x: jax.Array, u: jax.Array) -> jax.Array:
        """``J_iᵀ u_i``."""
        self.check_float_input(x, "vjp_input")
        return self._vjp_in(self.flat, x, u)

    def jvp_params(self, x: jax.Array, v: jax.Array) -> jax.Array:
        """``G_i v``."""
        self.check_input(x)
        self.check_flat_params(v)
        return self._jvp_p(self.flat, x, v)

    def vjp_params(self, x: jax.Array, u: jax.Array) -> jax.Array:
        """``Σ_i G_iᵀ u_i``."""
        self.check_input(x)
        return self._vjp_p(self.flat, x, u)

    def input_jacobian(self, x: jax.Array) -> jax.Array:
        """``(N, C, d)`` by ``vmap(jacrev)`` (``jacfwd`` where ``d < C``)."""
        self.check_float_input(x, "input_jacobian")
        wide = math.prod(x.shape[1:]) < math.prod(self.output_shape(x))
        jac = (self._jac_in_fwd if wide else self._jac_in)(self.flat, x)
        return jnp.reshape(jac, (x.shape[0], jac.shape[1], -1))

    def ntk_gram(self, x: jax.Array) -> jax.Array:
        """The self-NTK ``G Gᵀ`` ``(N·C, N·C)``: ``vmap(jacrev)`` and the Gram, one program."""
        self.check_input(x)
        if "ntk" not in self._hvps:
            jac = self._jac_p

            def fused(t: jax.Array, xx: jax.Array) -> jax.Array:
                g = jac(t, xx)
                return gram(jnp.reshape(g, (-1, g.shape[-1])))

            self._hvps["ntk"] = jax.jit(fused)
        return self._hvps["ntk"](self.flat, x)

    def param_jacobian(self, x: jax.Array) -> jax.Array:
        """``(N, C, p)`` by ``vmap(jacrev)``."""
        self.check_input(x)
        jac = self._jac_p(self.flat, x)
        return jnp.reshape(jac, (x.shape[0], jac.shape[1], -1))
