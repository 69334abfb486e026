"""Networks of a user's own, for ``--model tests/user_models.py:FUNCTION`` (tests/test_user_model.py):
each takes ``(input_shape, num_classes)`` and returns a keras.Model, as the toolkit asks."""
import keras

L = keras.layers


def small_cnn(input_shape, num_classes):
    """Conv(4)+bias+BN+ReLU -> pool -> Flatten -> Dense(num_classes): 8x8x3 inputs give 3*3*3*4+4 + 16
    + (3*3*4)*n + n parameters."""
    x = keras.Input(input_shape, name="img")
    h = L.Conv2D(4, 3, name="conv")(x)
    h = L.BatchNormalization(name="bn")(h)
    h = L.ReLU(name="relu")(h)
    h = L.MaxPooling2D(2, name="pool")(h)
    h = L.Flatten(name="flat")(h)
    return keras.Model(x, L.Dense(num_classes, name="out")(h), name="small_cnn")


def softmax_mlp(input_shape, num_classes):
    """A Sequential MLP whose output layer is a softmax."""
    return keras.Sequential([keras.Input(input_shape), L.Flatten(), L.Dense(6, activation="relu", name="hidden"),
                             L.Dense(num_classes, activation="softmax", name="out")])


def softmax_layer(input_shape, num_classes):
    x = keras.Input(input_shape)
    h = L.Dense(num_classes, name="logits")(L.Flatten()(x))
    return keras.Model(x, L.Dropout(0.1)(L.Softmax()(h)))


def fixed_shape(input_shape, num_classes):
    """Ignores input_shape: reads 5x5x1 images whatever the data."""
    x = keras.Input((5, 5, 1))
    return keras.Model(x, L.Dense(num_classes)(L.Flatten()(x)))


def fixed_classes(input_shape, num_classes):
    """Ignores num_classes: always 7 outputs."""
    x = keras.Input(input_shape)
    return keras.Model(x, L.Dense(7)(L.Flatten()(x)))


def raises(input_shape, num_classes):
    raise RuntimeError("widths do not divide")


def not_a_model(input_shape, num_classes):
    return "a model"


def with_lambda(input_shape, num_classes):
    x = keras.Input(input_shape)
    h = L.Dense(5, name="d")(L.Flatten()(x))
    h = L.Lambda(lambda t: t * 2, name="double")(h)
    return keras.Model(x, L.Dense(num_classes, name="out")(h))


def residual_cnn(input_shape, num_classes):
    """A functional CNN with biases, BatchNormalization and a residual Add (stem + block share 8 channels),
    then a hidden Dense(16) and the output: what the study trains end to end (tests/test_user_study.py)."""
    x = keras.Input(input_shape, name="img")
    h = L.Conv2D(8, 3, padding="same", name="stem")(x)
    h = L.BatchNormalization(name="stem_bn")(h)
    h = L.ReLU(name="stem_relu")(h)
    r = L.Conv2D(8, 3, padding="same", name="block")(h)
    r = L.BatchNormalization(name="block_bn")(r)
    h = L.ReLU(name="block_relu")(L.Add(name="residual")([h, r]))
    h = L.Flatten(name="flat")(L.MaxPooling2D(2, name="pool")(h))
    h = L.Dense(16, activation="relu", name="hidden")(h)
    return keras.Model(x, L.Dense(num_classes, name="out")(h), name="residual_cnn")
