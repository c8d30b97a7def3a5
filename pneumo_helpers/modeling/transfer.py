"""Transfer learning: an ImageNet-pretrained ``keras.applications`` backbone,
first frozen under a new head, then with its top layers fine-tuned.

The model takes the same ``(image_size, image_size, 1)`` images in [0, 1] as
the CNNs trained from scratch, and adds, in this order: the reframing
augmentation (training only), the gray channel copied three times, the
backbone's own input scaling (as a ``Rescaling`` layer, so the model saves
and loads as a ``.keras`` file without custom code), the backbone (frozen,
run in inference mode), global average pooling, dropout and the head.

ImageNet weights come from Keras itself (``weights="imagenet"``): Keras
downloads each weight file once into ``$KERAS_HOME/models/`` (``KERAS_HOME``
defaults to ``~/.keras``) and loads it from there afterwards. Offline, copy
the file there beforehand; when it is missing and cannot be downloaded,
:class:`MissingWeightsError` says in one line which file and where. Keras
reads ``KERAS_HOME`` once, when it is imported: set it before starting
Python, Jupyter or papermill.
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import keras
import numpy as np
from keras import layers

from ..errors import MissingWeightsError
from ..tasks import get_task
from .models import augmentation

# Input scaling of each ``keras.applications`` family, for images in [0, 1]:
# (scale, offset) per channel, so that ``x * scale + offset`` equals the
# family's ``preprocess_input`` applied to ``255 * x``.
_CAFFE_MEAN = (103.939, 116.779, 123.68)  # BGR; the channels are equal copies here
_TORCH_MEAN, _TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PREPROCESSING = {
    # "tf" mode: [-1, 1]
    "tf": (2.0, -1.0),
    # "caffe" mode: 0-255 less the ImageNet mean per channel
    "caffe": (255.0, [-m for m in _CAFFE_MEAN]),
    # "torch" mode: [0, 1] less the ImageNet mean, over the ImageNet std
    "torch": ([1 / s for s in _TORCH_STD], [-m / s for m, s in zip(_TORCH_MEAN, _TORCH_STD)]),
    # the model rescales its 0-255 input itself
    "raw": (255.0, 0.0),
}
_FAMILY_MODE = (
    (r"^(MobileNet|MobileNetV2|InceptionV3|InceptionResNetV2|Xception|NASNet\w+|ResNet\d+V2)$",
     "tf"),
    (r"^(VGG\d+|ResNet\d+)$", "caffe"),
    (r"^DenseNet\d+$", "torch"),
    (r"^(EfficientNet\w+|ConvNeXt\w+|MobileNetV3\w+)$", "raw"),
)


def preprocessing_mode(backbone: str) -> str:
    """``"tf"``, ``"caffe"``, ``"torch"`` or ``"raw"``: how ``backbone`` wants its input."""
    for pattern, mode in _FAMILY_MODE:
        if re.match(pattern, backbone):
            return mode
    raise ValueError(f"unknown input scaling for backbone {backbone!r}; pass "
                     f"preprocessing= one of {sorted(PREPROCESSING)}")


def preprocessing_layer(backbone: str, mode: str | None = None) -> layers.Rescaling:
    """The backbone's ``preprocess_input`` for [0, 1] images, as one ``Rescaling`` layer."""
    scale, offset = PREPROCESSING[mode or preprocessing_mode(backbone)]
    return layers.Rescaling(scale, offset, name="backbone_preprocessing")


def keras_home() -> Path:
    """The folder Keras keeps downloads in, found the way Keras finds it:
    ``$KERAS_HOME``, else ``~/.keras``; ``/tmp/.keras`` when that folder is
    not writable."""
    home = os.path.expanduser(os.environ.get("KERAS_HOME") or os.path.join("~", ".keras"))
    if os.path.isdir(home) and not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return Path(home)


def weights_folder() -> Path:
    """Where Keras looks for (and downloads) ``weights="imagenet"`` files."""
    return keras_home() / "models"


def _download_failure(err: Exception) -> str | None:
    """The URL of a failed weight download, if ``err`` is one."""
    text = str(err)
    if "URL fetch failure" not in text and not isinstance(err, OSError):
        return None
    match = re.search(r"https?://\S+", text)
    return match.group(0).rstrip(":,.;") if match else None


def load_backbone(backbone: str = "MobileNet", image_size: int = 224, weights="imagenet",
                  **kwargs) -> keras.Model:
    """``keras.applications.<backbone>(include_top=False, weights=weights, ...)``
    for ``(image_size, image_size, 3)`` inputs. Keyword arguments the backbone
    does not take (e.g. ``alpha`` for a ResNet) are dropped. Raises
    :class:`MissingWeightsError` when the ImageNet weights are not in
    ``$KERAS_HOME/models`` and cannot be downloaded."""
    try:
        builder = getattr(keras.applications, backbone)
    except AttributeError:
        raise ValueError(f"keras.applications has no backbone {backbone!r}") from None
    accepted = inspect.signature(builder).parameters
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    if "name" in accepted:
        kwargs.setdefault("name", "backbone")
    shape = (image_size, image_size, 3)
    try:
        return builder(include_top=False, weights=weights, input_shape=shape, **kwargs)
    except Exception as err:
        url = _download_failure(err) if weights == "imagenet" else None
        if url is None:
            raise
        fname = url.rsplit("/", 1)[-1]
        # Keras looked in the KERAS_HOME it read at import; the variable may
        # have been set since (in a notebook, in a test): look there too
        local = weights_folder() / fname
        if local.is_file():
            return builder(include_top=False, weights=str(local), input_shape=shape, **kwargs)
        raise MissingWeightsError(
            f"ImageNet weights for {backbone} not found: put {fname} in {weights_folder()} "
            f"(that is $KERAS_HOME/models; Keras could not download it from {url})") from None


def transfer_model(backbone: str = "MobileNet", image_size: int = 224, alpha: float = 0.25,
                   augment: str = "strong", seed: int = 42, task="binary",
                   weights="imagenet", dropout: float = 0.3, preprocessing: str | None = None,
                   name: str | None = None) -> keras.Model:
    """A pretrained ``keras.applications`` backbone under a new head, backbone frozen.

    ``alpha`` (width) is passed to backbones that take it (the MobileNets).
    ``preprocessing`` overrides the input scaling (``"tf"``, ``"caffe"``,
    ``"torch"``, ``"raw"``) for backbones this module does not know. The
    backbone runs in inference mode (``training=False``) even when fine-tuned,
    so its batch-norm statistics stay those of ImageNet.
    """
    base = load_backbone(backbone, image_size, weights, alpha=alpha)
    base.trainable = False
    inputs = keras.Input((image_size, image_size, 1))
    x = augmentation(augment, seed=seed)(inputs)
    x = layers.Concatenate(axis=-1, name="gray_to_rgb")([x, x, x])
    x = preprocessing_layer(backbone, preprocessing)(x)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, seed=seed)(x)
    return keras.Model(inputs, get_task(task).head(x),
                       name=name or f"transfer_{backbone.lower()}")


def backbone_of(model: keras.Model) -> keras.Model:
    """The pretrained backbone inside a :func:`transfer_model`."""
    nested = [layer for layer in model.layers
              if isinstance(layer, keras.Model) and layer.name != "augmentation"]
    if not nested:
        raise ValueError(f"{model.name} has no nested backbone model")
    return max(nested, key=lambda m: m.count_params())


def unfreeze_top(model: keras.Model, n_layers: int) -> keras.Model:
    """Make the last ``n_layers`` layers of the backbone trainable, except its
    batch-normalisation layers (as in keras.io's fine-tuning guide). Compile
    the model again afterwards (``training.train`` does). For MobileNet, each
    depthwise-separable block is 6 layers: ``n_layers=12`` is the top two."""
    base = backbone_of(model)
    base.trainable = True
    cut = len(base.layers) - max(0, int(n_layers))
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= cut and not isinstance(layer, layers.BatchNormalization)
    return model


def trainable_summary(model: keras.Model) -> dict:
    """Trainable and frozen parameter counts (for the notebooks)."""
    trainable = int(sum(np.prod(v.shape) for v in model.trainable_weights))
    return {"trainable": trainable, "frozen": int(model.count_params()) - trainable}
