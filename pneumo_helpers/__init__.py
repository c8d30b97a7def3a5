"""pneumo_helpers: data, models, training, evaluation and use of the pneumo
models (pneumonia vs normal, and normal / bacterial / viral, in pediatric
chest X-rays).

Where things live (see the README's folder table):

- ``data/``: finding, reading, checking and splitting the X-rays (the one
  image reader is ``data.images``);
- ``modeling/``: model builders, preprocessing layers, augmentation,
  training, recipes (a new recipe goes in ``modeling.recipes``);
- ``lungs/``: the lung-field model and the crop to the lung fields;
- ``evaluation/``: the validation instruments (a new stress view goes in
  ``evaluation.stress``), selection among recipes, Grad-CAM and figures;
- ``use/``: the saved model file, scoring new X-rays, the run folder and its
  reports;
- top level: ``info`` (what the data is), ``tasks`` (binary / ternary: a new
  task goes here), ``metrics``, ``errors``, ``parameters``, ``cli``.

Importing this package does not import TensorFlow; its sub-packages do.
"""

__version__ = "0.3.0"
