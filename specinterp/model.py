"""The Model protocol: the seam between the backend-neutral core and the adapters.

An adapter turns a framework model into an object with batched products in its own array
namespace (docs/models.md); every model-level operator of :mod:`specinterp.operators` and every
diagnostic is written once against these products. Inputs ``x`` have shape
``(N, *input_shape)``; outputs ``(N, C)``; parameters are one flat vector of length ``p`` in the
framework's own order (torch ``named_parameters()``, JAX tree-flatten order, arraynet layer
order).

:func:`as_model` recognises a model by the *module name* of its type (as array-api-compat
recognises arrays) and imports the matching adapter lazily, so ``import specinterp`` never
imports torch or jax.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

from . import _xp
from .capabilities import TokenEmbedding, offers, use
from .errors import DTypeError, EmptyInputError, ModelError, ShapeError

Array = Any

__all__ = ["Model", "ModelBase", "as_model", "input_space"]


@runtime_checkable
class Model(Protocol):
    """What the core needs from a model: batched products in the model's own namespace.

    Outputs are presented *flattened*: a model whose per-sample output has shape ``out``
    (``(C,)`` for a classifier, ``(T, V)`` for a language model, ``()`` for a scalar
    regression) gives ``(N, C)`` with ``C = prod(out)`` in row-major (C) order, so ``J_i``,
    ``G_i`` and the NTK are the Jacobians of that flattening; :meth:`output_shape` says how to
    fold them back (losses see the folded outputs ``(N, *out)``).

    Inputs are ``(N, *input_shape)`` — real floating of the parameters' dtype, or integer token
    ids for a model that starts with an embedding; parameters are one flat vector of length
    ``p`` in the framework's own order (torch ``named_parameters()``, JAX tree-flatten order,
    arraynet layer order).

    Attributes
    ----------
    xp : namespace
        Array namespace of inputs, outputs and parameter vectors.
    dtype : dtype
        Real floating dtype of the parameters (and of float inputs).
    device : object
        Device of the parameters (``None`` where the library has one device).
    num_params : int
        ``p``, the length of the flat parameter vector.

    Optional capabilities are the named protocols of :mod:`specinterp.capabilities`
    (``hvp_operator``, native ``input_jacobian`` / ``param_jacobian``,
    ``input_jacobian_factor``, ``layer_factors``, ``region_boundaries``, ``embedded``,
    ``weight_matrices``); a capability that is missing or does not apply to a particular model
    is reported by ``NotImplementedError``, and the core then takes the derived route.

    """

    xp: Any
    dtype: Any
    device: Any
    num_params: int

    def check_input(self, x: Array, what: str = "x") -> None:
        """Raise a specific error unless ``x`` is a batch this model can take."""
        ...

    def output_shape(self, x: Array) -> tuple[int, ...]:
        """Per-sample output shape ``out`` for the batch ``x`` (``C = prod(out)``)."""
        ...

    def apply(self, x: Array) -> Array:
        """Flattened outputs ``f(x_i)``, shape ``(N, C)``."""
        ...

    def jvp_input(self, x: Array, v: Array) -> Array:
        """``J_i v_i`` for tangents ``v`` shaped like ``x``; returns ``(N, C)``."""
        ...

    def vjp_input(self, x: Array, u: Array) -> Array:
        """``J_iᵀ u_i`` for cotangents ``u`` of shape ``(N, C)``; returns the shape of ``x``."""
        ...

    def jvp_params(self, x: Array, v: Array) -> Array:
        """``G_i v`` for a flat parameter tangent ``v`` ``(p,)``; returns ``(N, C)``."""
        ...

    def vjp_params(self, x: Array, u: Array) -> Array:
        """``Σ_i G_iᵀ u_i`` for ``u`` of shape ``(N, C)``; returns ``(p,)``."""
        ...

    def hvp(self, x: Array, y: Array, v: Array, loss: Any) -> Array:
        """``H v`` with ``H = ∇²_θ (1/N) Σ_i ℓ(f(x_i), y_i)``; returns ``(p,)``.

        ``loss`` is anything :func:`specinterp.losses.get_loss` accepts.
        """
        ...


class ModelBase:
    """Shared input checks for adapters (namespace, dtype, shape, finiteness)."""

    xp: Any
    dtype: Any
    device: Any = None
    num_params: int
    input_shape: tuple[int, ...] | None = None
    #: whether integer inputs (token ids for an embedding layer) are accepted
    accepts_token_ids: bool = False

    @property
    def bound_to_ids(self) -> bool:
        """Whether this is an embedded view bound to its token ids.

        Its inputs are those ids' embeddings (``k·N`` rows for ``N`` sequences), so it cannot
        be called on a subset of the samples: a per-sample computation in chunks starts from
        the base model and the ids instead.
        """
        if getattr(self, "_ids", None) is not None:
            return True
        return bool(getattr(getattr(self, "base", None), "bound_to_ids", False))

    def check_input(self, x: Array, what: str = "x") -> None:
        """Raise a specific error unless ``x`` is a usable batch for this model."""
        if not _xp.is_array(x) or not _xp.same_namespace(_xp.namespace(x), self.xp):
            raise _xp.NamespaceMismatchError(
                f"{what} must be a {_xp.backend_name(self.xp)} array for this model; "
                "convert it explicitly (no silent copies between libraries or devices)"
            )
        if x.ndim < 2:
            raise ShapeError(
                f"{what} must be a batch (N, *input_shape); got shape {tuple(x.shape)} — "
                "add a batch axis with x[None]"
            )
        if int(x.shape[0]) == 0:
            raise EmptyInputError(f"{what} is an empty batch; pass at least one sample")
        if self.input_shape is not None and tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ShapeError(
                f"{what} has per-sample shape {tuple(x.shape[1:])} but the model takes "
                f"{tuple(self.input_shape)}"
            )
        if self.xp.isdtype(x.dtype, "integral") and self.accepts_token_ids:
            self.check_token_ids(x, what)
            return
        if not self.xp.isdtype(x.dtype, "real floating"):
            raise DTypeError(
                f"{what} has dtype {x.dtype}; this model takes real floating inputs — convert "
                f"with an explicit cast to {self.dtype}"
            )
        if x.dtype != self.dtype:
            raise DTypeError(
                f"{what} has dtype {x.dtype} but the model's parameters are {self.dtype}; cast "
                "one of them explicitly (no silent up- or down-cast)"
            )
        _xp.check_finite(x, self.xp, what)

    def check_token_ids(self, x: Array, what: str = "x") -> None:
        """Token-id checks (range against the vocabulary) where the adapter knows it."""

    def check_float_input(self, x: Array, what: str) -> None:
        """:meth:`check_input`, and that ``x`` is not token ids (``what`` differentiates in x)."""
        self.check_input(x)
        if not self.xp.isdtype(x.dtype, "real floating"):
            raise ModelError(
                f"{what} differentiates with respect to the inputs, which are token ids here; "
                "take it on the embedded view: model_e, e = specinterp.model.input_space(model, x)"
            )

    _seen_shapes: tuple[tuple[int, ...], tuple[int, ...], str] | None = None

    def _remember_shapes(self, x: Array, out: tuple[int, ...]) -> tuple[int, ...]:
        """Note the per-sample input and output shapes of a call (for ``repr``); return ``out``."""
        kind = "token ids" if self.xp.isdtype(x.dtype, "integral") else "inputs"
        self._seen_shapes = (tuple(int(s) for s in x.shape[1:]), tuple(out), kind)
        return tuple(out)

    def _shapes_text(self) -> str:
        """``", input_shape=…"`` and the last seen input → output shapes, for ``repr``."""
        text = "" if self.input_shape is None else f", input_shape={self.input_shape}"
        if self._seen_shapes is not None:
            inp, out, kind = self._seen_shapes
            text += f", {kind} {inp} → outputs {out}"
        return text

    def output_shape(self, x: Array) -> tuple[int, ...]:
        """Per-sample output shape; ``(C,)`` for adapters whose outputs are ``(N, C)``."""
        return self._remember_shapes(x, (int(self.apply(x[:1, ...]).shape[1]),))

    def check_flat_params(self, v: Array, what: str = "v") -> None:
        """Raise unless ``v`` is a flat parameter vector of this model."""
        if v.ndim != 1 or int(v.shape[0]) != self.num_params:
            raise ShapeError(
                f"{what} must be a flat parameter vector of shape ({self.num_params},); "
                f"got {tuple(v.shape)}"
            )

    @property
    def num_inputs_per_sample(self) -> int | None:
        """``d``: the flattened input dimension, if known."""
        return None if self.input_shape is None else math.prod(self.input_shape)


def input_space(model: Any, x: Array) -> tuple[Model, Array]:
    """The model and point at which input-side quantities (``J``, attributions) are taken.

    For real floating inputs that is ``(model, x)``. For integer token ids it is the
    *embedded view* ``(model_e, e)``: ``e = E[x]`` is the output of the model's token
    embedding layer, shape ``(N, T, d)``, and ``model_e`` is the same network with that layer's
    output replaced by its input, so ``J_i = ∂f(x_i)/∂e_i`` (:ref:`theory-token-inputs`).

    Raises
    ------
    ModelError
        If the model takes token ids but its embedding layer cannot be found (the message
        names the ``embedding=`` option of :func:`as_model`).

    """
    model = as_model(model)
    model.check_input(x)
    if model.xp.isdtype(x.dtype, "real floating"):
        return model, x
    if not offers(model, TokenEmbedding):
        raise ModelError(
            "input-side quantities at integer inputs are taken with respect to the token "
            f"embeddings, and this {type(model).__name__} cannot find an embedding layer; "
            "wrap the model with as_model(..., embedding=...) naming it"
        )
    return use(model, TokenEmbedding, x)


def as_model(obj: Any, params: Any = None, **options: Any) -> Model:
    """Wrap ``obj`` as a :class:`Model`, importing only the adapter it needs.

    Parameters
    ----------
    obj
        A ``torch.nn.Module`` (Hugging Face ``transformers`` and TransformerLens models
        included), or a batch-first torch callable with ``params=`` a dict of tensors; a JAX
        function ``apply_fn(params, x_batch)`` or a Flax ``linen`` module with ``params=`` its
        variables; a Flax NNX module; an Equinox module (per-sample, ``vmap``-ed); a fitted
        scikit-learn ``MLPClassifier`` / ``MLPRegressor`` (converted to an arraynet network);
        an arraynet ``Sequential``; or an object that already implements :class:`Model`
        (returned unchanged).
    params
        Parameters for function-style models.
    **options
        Passed to the adapter: ``output=`` (a key or callable selecting the array to analyse
        from a dict / dataclass output, default ``"logits"``), ``embedding=`` (the token
        embedding layer's name, for integer inputs), ``pad_token_id=`` (torch modules that
        take an ``attention_mask``: the mask ``ids != pad_token_id``), ``param_names=`` (a
        torch parameter subset), ``input_shape=``.

    Raises
    ------
    ModelError
        If ``obj`` is none of these, with the accepted kinds in the message.

    """
    if isinstance(obj, Model) and params is None and not options:
        return obj
    from .adapters._dispatch import wrap  # imports only the adapter the object needs

    return wrap(obj, params, **options)
