"""What the data is, in one table every module reads: splits, class folders,
pneumonia types, the subsets a run uses, and reference figures.

The layout is Kaggle's "Chest X-Ray Images (Pneumonia)" download
(Kermany, Zhang, Goldbaum; Mendeley Data v2, CC BY 4.0)::

    <data_dir>/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg
"""

SPLITS = ("train", "val", "test")  # Kaggle's folders
CLASS_FOLDERS = ("NORMAL", "PNEUMONIA")  # folder -> label 0 / 1
TYPES = ("normal", "bacteria", "virus")  # pneumonia type from file names -> type_label 0 / 1 / 2

# Kaggle folder -> the subset a run uses it as. Validation patients are carved
# out of ``train`` (``splits.patient_split``); Kaggle's 16-image ``val`` is too
# small to select on and is kept as a sanity check of images drawn like the
# official test split.
SUBSET_OF_SPLIT = {"train": "train", "val": "sanity", "test": "test"}

EXPECTED_LAYOUT = "<data_dir>/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg"
DATA_HELP = ("download the Kaggle dataset 'chest-xray-pneumonia' and unzip it so that "
             f"the layout is {EXPECTED_LAYOUT}")

# Kermany et al. (Cell, 2018), bacterial vs viral with a pretrained InceptionV3
# (on their own test split: a reference point, not a like-for-like comparison).
PAPER_BACTERIAL_VS_VIRAL = {"accuracy": 0.907, "sensitivity": 0.886, "specificity": 0.909,
                            "roc_auc": 0.940}
