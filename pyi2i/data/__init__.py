"""Datasets, preprocessing and loaders of the original release's layouts, plus synthetic demo data."""

from pyi2i.data.datasets import (
    DATASET_MODES, AlignedDataset, ImageDataset, SingleDataset, UnalignedDataset, create_dataset,
)
from pyi2i.data.decode import FloatImage, load_image
from pyi2i.data.demo import ensure_demo, make_demo
from pyi2i.data.images import IMG_EXTENSIONS, DataError, load_rgb, make_dataset
from pyi2i.data.loader import create_loader, epoch_order
from pyi2i.data.transforms import PREPROCESS_MODES, TransformParams, apply_transform, get_params

__all__ = [
    "DATASET_MODES", "IMG_EXTENSIONS", "PREPROCESS_MODES",
    "AlignedDataset", "DataError", "FloatImage", "ImageDataset", "SingleDataset", "TransformParams", "UnalignedDataset",
    "apply_transform", "create_dataset", "create_loader", "ensure_demo", "epoch_order", "get_params",
    "load_image", "load_rgb", "make_dataset", "make_demo",
]
