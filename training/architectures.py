"""The architecture registry: every model the trainer can build, chosen by name in the config.

All models take raw pixels (0..255) and end in softmax; the input scaling each one expects is the first layer
of its graph, built only from stock Keras layers so the daemon can load the bundle without this package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class ArchitectureOptions(Protocol):
    """The ``[model]`` section of a training config (training/config.py), as the builders read it; a
    structural type, so the registry stays below the config that names its architectures."""

    arch: str
    lenet: Any
    cnn4: Any
    mini_xception: Any
    vit: Any
    transfer: Any

IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
BASE_LAYER = "base"


@dataclass(frozen=True)
class ArchSpec:
    name: str
    build: Callable[[tuple[int, int, int], int, ArchitectureOptions], Any]
    default_color: str
    transfer: bool
    min_size: int
    description: str
    in_model: str
    base_min_input: int = 0  # transfer models: the pretrained base's smallest input; smaller faces are upsampled


def _l2(value: float) -> Any:
    import keras

    return keras.regularizers.L2(value) if value else None


def build_lenet(shape: tuple[int, int, int], classes: int, cfg: ArchitectureOptions) -> Any:
    """The seeds' configurable LeNet-style stack: [conv → max-pool] per filter count, then dense layers."""
    import keras
    from keras import layers

    c = cfg.lenet
    inputs = keras.Input(shape, name="pixels")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for i, filters in enumerate(c.filters):
        x = layers.Conv2D(filters, c.kernel_size, strides=c.strides, padding="same", activation="relu",
                          kernel_regularizer=_l2(c.l2), name=f"conv{i + 1}")(x)
        if c.pool_size > 1:
            x = layers.MaxPooling2D(c.pool_size, name=f"pool{i + 1}")(x)
    x = layers.Flatten()(x)
    for i, units in enumerate(c.dense):
        x = layers.Dense(units, activation="relu", kernel_regularizer=_l2(c.l2), name=f"dense{i + 1}")(x)
        if c.dropout:
            x = layers.Dropout(c.dropout)(x)
    outputs = layers.Dense(classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="lenet")


def build_cnn4(shape: tuple[int, int, int], classes: int, cfg: ArchitectureOptions) -> Any:
    """Four conv blocks (2 x conv-BN-ReLU, pool, dropout) with He-normal init and L2, then a dense head."""
    import keras
    from keras import layers

    c = cfg.cnn4
    inputs = keras.Input(shape, name="pixels")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for block, filters in enumerate(c.filters, start=1):
        for j in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                              kernel_regularizer=_l2(c.l2), name=f"block{block}_conv{j}")(x)
            x = layers.BatchNormalization(momentum=c.batchnorm_momentum, name=f"block{block}_bn{j}")(x)
            x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2, padding="same", name=f"block{block}_pool")(x)
        x = layers.Dropout(c.dropout)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(c.dense, use_bias=False, kernel_initializer="he_normal", kernel_regularizer=_l2(c.l2))(x)
    x = layers.BatchNormalization(momentum=c.batchnorm_momentum)(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(c.dense_dropout)(x)
    outputs = layers.Dense(classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn4")


def build_mini_xception(shape: tuple[int, int, int], classes: int, cfg: ArchitectureOptions) -> Any:
    """mini-Xception (Arriaga et al., 2017): two convs, four separable residual modules, conv-to-classes + GAP."""
    import keras
    from keras import layers

    c = cfg.mini_xception
    reg = _l2(c.l2)
    inputs = keras.Input(shape, name="pixels")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for i in (1, 2):
        x = layers.Conv2D(c.base_filters, 3, use_bias=False, kernel_regularizer=reg, name=f"stem_conv{i}")(x)
        x = layers.BatchNormalization(momentum=c.batchnorm_momentum)(x)
        x = layers.Activation("relu")(x)
    for m, filters in enumerate(c.module_filters, start=1):
        residual = layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False, name=f"m{m}_shortcut")(x)
        residual = layers.BatchNormalization(momentum=c.batchnorm_momentum)(residual)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, depthwise_regularizer=reg,
                                   pointwise_regularizer=reg, name=f"m{m}_sep1")(x)
        x = layers.BatchNormalization(momentum=c.batchnorm_momentum)(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, depthwise_regularizer=reg,
                                   pointwise_regularizer=reg, name=f"m{m}_sep2")(x)
        x = layers.BatchNormalization(momentum=c.batchnorm_momentum)(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.Add()([x, residual])
    x = layers.Conv2D(classes, 3, padding="same", name="class_conv")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mini_xception")


def build_vit_small(shape: tuple[int, int, int], classes: int, cfg: ArchitectureOptions) -> Any:
    """A small Vision Transformer for face crops, from stock Keras layers only.

    Non-overlapping patches (a strided convolution) become tokens; pre-norm encoder blocks (multi-head
    self-attention and a GELU MLP, each residual); position comes from a 3x3 depthwise convolution over the
    token grid after the first block (the positional encoding generator of Chu et al., 2021, "Conditional
    Positional Encodings for Vision Transformers"), which needs no custom layer and no fixed token count; the
    tokens are averaged (no class token) for the softmax head.
    """
    import keras
    from keras import layers

    from emotiond.training.errors import TrainingConfigError

    c = cfg.vit
    side = shape[0]
    grid = c.patches_per_side
    if side % grid:
        raise TrainingConfigError(f"vit_small: image_size {side} is not a multiple of model.vit.patches_per_side "
                                  f"{grid} (use e.g. 48, 64 or 96 with 8)")
    if c.dim % c.heads:
        raise TrainingConfigError(f"vit_small: model.vit.dim {c.dim} is not a multiple of model.vit.heads {c.heads}")
    patch, tokens = side // grid, grid * grid
    inputs = keras.Input(shape, name="pixels")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = layers.Conv2D(c.dim, patch, strides=patch, name="patch_embedding")(x)
    x = layers.Reshape((tokens, c.dim), name="tokens")(x)
    for i in range(1, c.depth + 1):
        y = layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm1")(x)
        y = layers.MultiHeadAttention(c.heads, c.dim // c.heads, dropout=c.attention_dropout,
                                      name=f"block{i}_attention")(y, y)
        x = layers.Add(name=f"block{i}_add1")([x, layers.Dropout(c.dropout)(y)])
        y = layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm2")(x)
        y = layers.Dense(int(c.dim * c.mlp_ratio), activation="gelu", name=f"block{i}_mlp1")(y)
        y = layers.Dense(c.dim, name=f"block{i}_mlp2")(layers.Dropout(c.dropout)(y))
        x = layers.Add(name=f"block{i}_add2")([x, layers.Dropout(c.dropout)(y)])
        if i == 1:
            grid_tokens = layers.Reshape((grid, grid, c.dim), name="token_grid")(x)
            position = layers.DepthwiseConv2D(3, padding="same", name="position_encoding")(grid_tokens)
            x = layers.Add(name="add_position")([x, layers.Reshape((tokens, c.dim))(position)])
    x = layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    x = layers.GlobalAveragePooling1D(name="token_mean")(x)
    if c.head_dropout:
        x = layers.Dropout(c.head_dropout)(x)
    outputs = layers.Dense(classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="vit_small")


def _caffe_preprocess(x: Any) -> Any:
    """RGB → BGR and ImageNet mean subtraction as a frozen Dense(3): a stock layer, so no custom objects."""
    import keras
    import numpy as np

    layer = keras.layers.Dense(3, trainable=False, name="imagenet_caffe_preprocess")
    out = layer(x)
    kernel = np.zeros((3, 3), dtype=np.float32)
    kernel[2, 0] = kernel[1, 1] = kernel[0, 2] = 1.0  # output channel 0 (B) takes input channel 2, etc.
    layer.set_weights([kernel, -np.asarray(IMAGENET_BGR_MEAN, dtype=np.float32)])
    return out


def base_input_side(face_side: int, min_input: int, requested: int) -> int:
    """The side the pretrained base sees: ``requested`` if set, else the base's minimum when faces are smaller,
    else the faces' own size (never smaller than the faces)."""
    return max(face_side, requested or min_input)


def _transfer(app: str, min_input: int) -> Callable[[tuple[int, int, int], int, ArchitectureOptions], Any]:
    def build(shape: tuple[int, int, int], classes: int, cfg: ArchitectureOptions) -> Any:
        import keras
        from keras import applications, layers

        t = cfg.transfer
        weights = t.weights_path or None
        inputs = keras.Input(shape, name="pixels")
        x = inputs if shape[-1] == 3 else layers.Concatenate(name="gray_to_rgb")([inputs, inputs, inputs])
        side = base_input_side(shape[0], min_input, t.base_input_size)
        if side != shape[0]:
            # Small faces are upsampled inside the graph, so bundles still take the face size the daemon crops.
            x = layers.Resizing(side, side, interpolation="bilinear", name="upsample")(x)
        base_shape = (side, side, 3)
        if app == "vgg16":
            x = _caffe_preprocess(x)
            base = applications.VGG16(include_top=False, weights=weights, input_shape=base_shape)
        elif app == "resnet50":
            x = _caffe_preprocess(x)
            base = applications.ResNet50(include_top=False, weights=weights, input_shape=base_shape)
        elif app == "efficientnet_b0":
            base = applications.EfficientNetB0(include_top=False, weights=weights, input_shape=base_shape)
        elif app == "efficientnet_b4":
            base = applications.EfficientNetB4(include_top=False, weights=weights, input_shape=base_shape)
        elif app == "inception_v3":
            x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="inception_preprocess")(x)
            base = applications.InceptionV3(include_top=False, weights=weights, input_shape=base_shape)
        else:
            base = applications.MobileNetV3Small(include_top=False, weights=weights, input_shape=base_shape,
                                                 include_preprocessing=True)
        base.name = BASE_LAYER
        x = base(x)
        x = layers.GlobalAveragePooling2D()(x)
        if t.dense:
            x = layers.Dense(t.dense, activation="relu")(x)
        if t.dropout:
            x = layers.Dropout(t.dropout)(x)
        outputs = layers.Dense(classes, activation="softmax", dtype="float32", name="probabilities")(x)
        return keras.Model(inputs, outputs, name=f"{app}_transfer")

    return build


_IMAGENET_CAFFE = "RGB→BGR and ImageNet mean subtraction"
_UPSAMPLE = "upsampled in the graph to the model's minimum input ({} px) when smaller"

REGISTRY: dict[str, ArchSpec] = {spec.name: spec for spec in (
    ArchSpec("lenet", build_lenet, "gray", False, 8, "LeNet-style CNN from a configuration dict",
             "Rescaling(1/255)"),
    ArchSpec("cnn4", build_cnn4, "gray", False, 16, "4-block CNN with BatchNorm, dropout, He-normal, L2",
             "Rescaling(1/255)"),
    ArchSpec("mini_xception", build_mini_xception, "gray", False, 24, "mini-Xception (Arriaga et al. 2017)",
             "Rescaling(1/255)"),
    ArchSpec("vit_small", build_vit_small, "gray", False, 16,
             "small Vision Transformer (patch tokens, conv position encoding) for 48-96 px faces",
             "Rescaling to -1..1"),
    ArchSpec("vgg16", _transfer("vgg16", 32), "rgb", True, 32, "VGG16 transfer, two-stage fine-tuning",
             f"grey→RGB if 1 channel; {_IMAGENET_CAFFE}", 32),
    ArchSpec("resnet50", _transfer("resnet50", 32), "rgb", True, 32, "ResNet50 transfer, two-stage fine-tuning",
             f"grey→RGB if 1 channel; {_IMAGENET_CAFFE}", 32),
    ArchSpec("efficientnet_b0", _transfer("efficientnet_b0", 32), "rgb", True, 32,
             "EfficientNetB0 transfer, two-stage fine-tuning", "grey→RGB if 1 channel; EfficientNet's own "
             "Rescaling and Normalization", 32),
    ArchSpec("efficientnet_b4", _transfer("efficientnet_b4", 32), "rgb", True, 16,
             "EfficientNetB4 transfer, two-stage fine-tuning", "grey→RGB if 1 channel; "
             f"{_UPSAMPLE.format(32)}; EfficientNet's own Rescaling and Normalization", 32),
    ArchSpec("inception_v3", _transfer("inception_v3", 75), "rgb", True, 16,
             "InceptionV3 transfer, two-stage fine-tuning", "grey→RGB if 1 channel; "
             f"{_UPSAMPLE.format(75)}; Rescaling to -1..1", 75),
    ArchSpec("mobilenet_v3_small", _transfer("mobilenet_v3_small", 32), "rgb", True, 32,
             "MobileNetV3Small transfer, two-stage fine-tuning", "grey→RGB if 1 channel; Rescaling to -1..1", 32),
)}


def build_model(arch: str, image_size: int, channels: int, classes: int, cfg: ArchitectureOptions) -> Any:
    spec = REGISTRY[arch]
    if image_size < spec.min_size:
        from emotiond.training.errors import TrainingConfigError

        raise TrainingConfigError(f"{arch} needs image_size >= {spec.min_size} (got {image_size})")
    return spec.build((image_size, image_size, channels), classes, cfg)
