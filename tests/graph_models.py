"""Small hand-built Keras models for the graph tests, each with its coupled channel groups, the layer
shapes and the parameter count after unit pruning at 50 % worked out by hand (in the comments)."""
from __future__ import annotations

import numpy as np

import pruning  # noqa: F401  (sets KERAS_BACKEND)
import keras

L = keras.layers


def _init(model: keras.Model, seed: int) -> keras.Model:
    """Random weights everywhere (BatchNormalization statistics too), so nothing is trivially 0 or 1."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for v in layer.weights:
            shape = tuple(v.shape)
            if "variance" in v.name:
                v.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
            else:
                v.assign(rng.normal(0, 0.5, shape).astype("float32"))
    return model


def mlp(seed=0):
    """Dense+bias+BN MLP.  Groups: input (6, pinned), d1:out+bn1+d2:in (8), d2:out+bn2+out:in (5),
    out (3, pinned).  At 50 %: 8 -> 4, 5 -> 2 (round(2.5) = 3 removed).
    Shrunk params: d1 6*4+4=28, bn1 4*4=16, d2 4*2=8 (no bias), bn2 (no beta) 3*2=6, out 2*3+3=9: 67."""
    x = keras.Input((6,), name="x")
    h = L.Dense(8, name="d1")(x)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.ReLU(name="r1")(h)
    h = L.Dense(5, use_bias=False, name="d2")(h)
    h = L.BatchNormalization(center=False, name="bn2")(h)
    h = L.Activation("elu", name="e2")(h)
    h = L.Dropout(0.5, name="drop")(h)
    return _init(keras.Model(x, L.Dense(3, name="out")(h), name="mlp"), seed)


def cnn(seed=0):
    """Conv2D+bias+BN+ReLU+pool+Flatten+Dense.  Groups: input (2, pinned), c1:out+bn+flat+out:in (4),
    out (3, pinned).  At 50 %: 4 -> 2.  Shrunk: c1 3*3*2*2+2=38, bn 2*4=8, out (4*4*2)*3+3=99: 145."""
    x = keras.Input((10, 10, 2), name="img")
    h = L.Conv2D(4, 3, name="c1")(x)
    h = L.BatchNormalization(name="bn")(h)
    h = L.ReLU(name="relu")(h)
    h = L.MaxPooling2D(2, name="pool")(h)
    h = L.Flatten(name="flat")(h)
    return _init(keras.Model(x, L.Dense(3, name="out")(h), name="cnn"), seed)


def residual(seed=0):
    """A residual block with a projection shortcut (dilated and strided convolutions).  Groups:
    input (3, pinned: c1:in, proj:in), c1:out+bn1+c2:in (6), c2:out+bn2+proj:out+bnp+add+c3:in (6),
    c3:out+out:in (4), out (2, pinned).  At 50 %: 6 -> 3, 6 -> 3, 4 -> 2.  Shrunk: c1 3*3*3*3+3=84,
    bn1 12, c2 84, bn2 12, proj 3*3+3=12, bnp 12, c3 3*3*3*2+2=56, out 2*2+2=6: 278."""
    x = keras.Input((8, 8, 3), name="img")
    h = L.Conv2D(6, 3, padding="same", name="c1")(x)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.ReLU(name="r1")(h)
    h = L.Conv2D(6, 3, padding="same", dilation_rate=2, name="c2")(h)
    h = L.BatchNormalization(name="bn2")(h)
    p = L.Conv2D(6, 1, name="proj")(x)
    p = L.BatchNormalization(name="bnp")(p)
    h = L.Add(name="add")([h, p])
    h = L.ReLU(name="r2")(h)
    h = L.Conv2D(4, 3, strides=2, name="c3")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return _init(keras.Model(x, L.Dense(2, name="out")(h), name="residual"), seed)


def concat(seed=0):
    """Two branches concatenated.  Groups: input (3, pinned), a:out+cat+c:in (3), b:out+cat+c:in (2),
    c:out+flat+out:in (4), out (2, pinned).  At 50 %: 3 -> 1, 2 -> 1, 4 -> 2.  Shrunk: a 3*1+1=4,
    b 3*3*3*1+1=28, c 1*1*2*2+2=6, out (3*3*2)*2+2=38: 76."""
    x = keras.Input((6, 6, 3), name="img")
    a = L.Conv2D(3, 1, activation="relu", name="a")(x)
    b = L.Conv2D(2, 3, padding="same", name="b")(x)
    b = L.LeakyReLU(name="lr")(b)
    h = L.Concatenate(name="cat")([a, b])
    h = L.Conv2D(4, 1, name="c")(h)
    h = L.AveragePooling2D(2, name="pool")(h)
    h = L.Flatten(name="flat")(h)
    return _init(keras.Model(x, L.Dense(2, name="out")(h), name="concat"), seed)


def dwsep(seed=0):
    """Depthwise (multiplier 2) + separable block.  Groups: input (3, pinned), c1:out+dw+bn+sep:in (4),
    sep:out+out:in (5), out (2, pinned).  At 50 %: 4 -> 2, 5 -> 2.  Shrunk: c1 3*3*3*2+2=56,
    dw 3*3*2*2+4=40 (2 channels in, 2 x 2 out), bn 4*4=16, sep 3*3*4*1+1*1*4*2+2=46, out 2*2+2=6: 164."""
    x = keras.Input((8, 8, 3), name="img")
    h = L.Conv2D(4, 3, name="c1")(x)
    h = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(h)
    h = L.BatchNormalization(name="bn")(h)
    h = L.ReLU(name="relu")(h)
    h = L.SeparableConv2D(5, 3, name="sep")(h)
    h = L.GlobalMaxPooling2D(name="gmp")(h)
    return _init(keras.Model(x, L.Dense(2, name="out")(h), name="dwsep"), seed)


def se(seed=0):
    """Squeeze-and-excitation: a sigmoid gate and Multiply.  Groups: input (3, pinned),
    c1:out+fc1:in+fc2:out+rs+mul+c2:in (4, not pinned: one zero factor is enough), fc1:out+fc2:in (2),
    c2:out+out:in (3), out (2, pinned).  At 50 %: 4 -> 2, 2 -> 1, 3 -> 1.  Shrunk: c1 3*3*3*2+2=56,
    fc1 2*1+1=3, fc2 1*2+2=4, c2 2*1+1=3, out 1*2+2=4: 70."""
    x = keras.Input((6, 6, 3), name="img")
    h = L.Conv2D(4, 3, padding="same", activation="relu", name="c1")(x)
    s = L.GlobalAveragePooling2D(name="sq")(h)
    s = L.Dense(2, activation="relu", name="fc1")(s)
    s = L.Dense(4, activation="sigmoid", name="fc2")(s)
    s = L.Reshape((1, 1, 4), name="rs")(s)
    h = L.Multiply(name="mul")([h, s])
    h = L.Conv2D(3, 1, name="c2")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return _init(keras.Model(x, L.Dense(2, name="out")(h), name="se"), seed)


def nested(seed=0):
    """A Sequential inside a Functional model.  Groups: input (6, pinned), d0:out+i1:in (5),
    i1:out+i2:in (4), i2:out+out:in (3), out (2, pinned).  At 50 %: 5 -> 2, 4 -> 2, 3 -> 1.
    Shrunk: d0 6*2+2=14, i1 2*2+2=6, i2 2*1+1=3, out 1*2+2=4: 27."""
    inner = keras.Sequential([keras.Input((5,)), L.Dense(4, name="i1"), L.ReLU(name="ir"), L.Dense(3, name="i2")],
                             name="inner")
    x = keras.Input((6,), name="x")
    h = L.Dense(5, activation="relu", name="d0")(x)
    h = inner(h)
    h = L.ReLU(name="r")(h)
    return _init(keras.Model(x, L.Dense(2, name="out")(h), name="nested"), seed)


def kinds(seed=0):
    """The remaining layer kinds: Conv1D (causal), Rescaling, ZeroPadding1D, Cropping1D, SpatialDropout1D,
    Subtract, Maximum, Minimum, Average, pooling, UpSampling1D, tanh, GaussianDropout, Identity, a flattening
    Reshape, LayerNormalization and Softmax.  Groups: input (3, pinned), ca:out+cb:out+sub+max+min+avg+cc:in
    (4), cc:out+rs+d:in (5), d:out+ln+out:in (6, pinned by ln), out (3, pinned).  At 50 %: 4 -> 2, 5 -> 2.
    Shrunk: ca 3*3*2+2=20, cb 1*3*2+2=8, cc 3*2*2+2=14, d (5*2)*6+6=66, ln 12, out 6*3+3=21: 141."""
    x = keras.Input((12, 3), name="seq")
    h = L.Rescaling(0.5, name="scale")(x)
    a = L.Conv1D(4, 3, padding="causal", name="ca")(h)
    a = L.ZeroPadding1D(1, name="zp")(a)
    a = L.Cropping1D(1, name="crop")(a)
    b = L.Conv1D(4, 1, name="cb")(h)
    b = L.SpatialDropout1D(0.1, name="sd")(b)
    sub = L.Subtract(name="sub")([a, b])
    mx = L.Maximum(name="max")([a, b])
    mn = L.Minimum(name="min")([a, b])
    h = L.Average(name="avg")([sub, mx, mn])
    h = L.MaxPooling1D(2, name="mp")(h)
    h = L.UpSampling1D(2, name="up")(h)
    h = L.Conv1D(5, 3, name="cc")(h)
    h = L.Activation("tanh", name="tanh")(h)
    h = L.GaussianDropout(0.1, name="gd")(h)
    h = L.Identity(name="id")(h)
    h = L.AveragePooling1D(2, name="ap")(h)
    h = L.Reshape((25,), name="rs")(h)
    h = L.Dense(6, name="d")(h)
    h = L.LayerNormalization(name="ln")(h)
    h = L.Dense(3, name="out")(h)
    return _init(keras.Model(x, L.Softmax(name="sm")(h), name="kinds"), seed)


# name -> (builder, {group parts: size} of the unpinned groups, {layer: shape of its kernel after 50 %},
#          parameter count after unit pruning at 50 % and shrinking)
HAND = {
    "mlp": (mlp, {("d1:out", "bn1", "d2:in"): 8, ("d2:out", "bn2", "out:in"): 5},
            {"d1": (6, 4), "d2": (4, 2), "out": (2, 3)}, 67),
    "cnn": (cnn, {("c1:out", "bn", "flat", "out:in"): 4}, {"c1": (3, 3, 2, 2), "out": (32, 3)}, 145),
    "residual": (residual, {("c1:out", "bn1", "c2:in"): 6, ("c2:out", "bn2", "proj:out", "bnp", "add", "c3:in"): 6,
                            ("c3:out", "out:in"): 4},
                 {"c1": (3, 3, 3, 3), "c2": (3, 3, 3, 3), "proj": (1, 1, 3, 3), "c3": (3, 3, 3, 2), "out": (2, 2)}, 278),
    "concat": (concat, {("a:out", "cat", "c:in"): 3, ("b:out", "cat", "c:in"): 2, ("c:out", "flat", "out:in"): 4},
               {"a": (1, 1, 3, 1), "b": (3, 3, 3, 1), "c": (1, 1, 2, 2), "out": (18, 2)}, 76),
    "dwsep": (dwsep, {("c1:out", "dw", "bn", "sep:in"): 4, ("sep:out", "out:in"): 5},
              {"c1": (3, 3, 3, 2), "dw": (3, 3, 2, 2), "sep": (3, 3, 4, 1), "out": (2, 2)}, 164),
    "se": (se, {("c1:out", "fc1:in", "fc2:out", "rs", "mul", "c2:in"): 4, ("fc1:out", "fc2:in"): 2,
                ("c2:out", "out:in"): 3},
           {"c1": (3, 3, 3, 2), "fc1": (2, 1), "fc2": (1, 2), "c2": (1, 1, 2, 1), "out": (1, 2)}, 70),
    "nested": (nested, {("d0:out", "i1:in"): 5, ("i1:out", "i2:in"): 4, ("i2:out", "out:in"): 3},
               {"d0": (6, 2), "i1": (2, 2), "i2": (2, 1), "out": (1, 2)}, 27),
    "kinds": (kinds, {("ca:out", "cb:out", "sub", "max", "min", "avg", "cc:in"): 4, ("cc:out", "rs", "d:in"): 5},
              {"ca": (3, 3, 2), "cb": (1, 3, 2), "cc": (3, 2, 2), "d": (10, 6), "out": (6, 3)}, 141),
}


def sample(model: keras.Model, n: int = 5, seed: int = 1) -> np.ndarray:
    shape = tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")
