"""Hand-written networks on any array namespace (NumPy on a CPU, CuPy on a GPU).

``Sequential([Dense(W, b), ReLU(), ...])`` is a plain list of layers with analytic JVPs, VJPs
and Pearlmutter R-operators, so every operator of the framework is computed without an
autodiff framework. One idea per module of ``specinterp.adapters.arraynet``:

* ``layer`` — the layer contract (:class:`Layer`, an abstract base class);
* ``dense``, ``conv``, ``activations`` — the layers;
* ``network`` — :class:`Sequential` and :func:`init_mlp`;
* ``model`` — :class:`ArrayNetModel`, the network behind the Model protocol;
* ``product_form`` — ``J(x) = W_L D_{L−1}(x) ⋯ D_1(x) W_1`` of MLPs (:ref:`theory-t3`);
* ``training`` — :func:`train` (SGD / Adam, with the Jacobian penalty);
* ``convert`` — :func:`from_torch`.

Parameters are flattened in layer order, weight before bias.
"""

from .activations import GELU, Activation, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh
from .conv import Conv2d
from .convert import from_torch
from .dense import Dense, Flatten
from .layer import Layer
from .model import ArrayNetModel
from .network import Sequential, init_mlp
from .product_form import LayerFactors, layer_factors
from .training import train

__all__ = [
    "GELU",
    "Activation",
    "ArrayNetModel",
    "Conv2d",
    "Dense",
    "Flatten",
    "Layer",
    "LayerFactors",
    "LeakyReLU",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softplus",
    "Tanh",
    "from_torch",
    "init_mlp",
    "layer_factors",
    "train",
]
