"""Folders with one sub-folder per class: of images (image_folder) or of .txt texts."""

from __future__ import annotations

from pathlib import Path

from tftrain.errors import ConfigError, DataError
from tftrain.init.proposal import Proposal, Setting, batch_size
from tftrain.init.tables import text_model
from tftrain.preprocessing.images import IMAGE_SUFFIXES

LARGEST_SIDE = 128  # bigger images are resized down: a CPU-sized default
SPLIT_FOLDERS = ("train", "test")


def visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith((".", "_")))


def class_folders(root: Path) -> dict[str, dict[str, int]]:
    """{class: {suffix: file count}} for each sub-folder of `root`."""
    classes = {}
    for folder in visible(root):
        if folder.is_dir():
            counts: dict[str, int] = {}
            for file in visible(folder):
                if file.is_file():
                    suffix = file.suffix.lower()
                    counts[suffix] = counts.get(suffix, 0) + 1
            classes[folder.name] = counts
    return classes


def folder_kind(root: Path) -> str | None:
    """'images' or 'texts' when every class sub-folder holds that kind of file, else None."""
    if all((root / split).is_dir() for split in SPLIT_FOLDERS):
        root = root / "train"  # the aclImdb layout: train/ and test/ of class folders
    classes = class_folders(root)
    if len(classes) < 2:
        return None
    images = [sum(n for s, n in c.items() if s in IMAGE_SUFFIXES) for c in classes.values()]
    texts = [c.get(".txt", 0) for c in classes.values()]
    if all(images):
        return "images"
    if all(texts):
        return "texts"
    return None


def count_text(classes: dict[str, int]) -> str:
    shown = ", ".join(f"{name} {n:,}" for name, n in list(classes.items())[:6])
    return shown + (", ..." if len(classes) > 6 else "")


def image_size(root: Path) -> tuple[int, int]:
    """(height, width) of the first image, from its header (Pillow reads no pixels here)."""
    from PIL import Image, UnidentifiedImageError

    first = next(
        f
        for folder in visible(root)
        if folder.is_dir()
        for f in visible(folder)
        if f.suffix.lower() in IMAGE_SUFFIXES
    )
    try:
        with Image.open(first) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError) as error:
        raise DataError(f"cannot read image {first}: {error}") from None
    return height, width


def images(root: Path, options, name: str) -> Proposal:
    split = all((root / s).is_dir() for s in SPLIT_FOLDERS)
    train = root / "train" if split else root
    classes = {
        k: sum(n for s, n in v.items() if s in IMAGE_SUFFIXES)
        for k, v in class_folders(train).items()
    }
    height, width = image_size(train)
    scale = min(1.0, LARGEST_SIDE / max(height, width))
    size = [max(8, round(height * scale)), max(8, round(width * scale))]
    total = sum(classes.values())
    model = options.model or "cnn"
    if model not in ("cnn", "softmax"):
        raise ConfigError(f"usage error: --model {model}: images take cnn or softmax")
    deep = min(size) >= 32
    return Proposal(
        summary=f"Image classification of {train.name}/: {len(classes)} classes, {total:,} images",
        name=name,
        task="classification",
        reason="every sub-folder holds images: one class per sub-folder",
        facts=[
            f"Read {train}: {count_text(classes)} images per class.",
            f"The first image is {height}x{width}"
            + (f"; images are resized to {size[0]}x{size[1]}." if scale < 1 else "."),
        ],
        model=[
            Setting("type", "cnn", "or softmax (an MLP on the pixels)"),
            Setting("filters", [32, 64, 128] if deep else [32, 64], "3x3 conv + 2x2 max pool"),
            Setting("batch_norm", True),
            Setting("dense_units", [128]),
            Setting("dropout", 0.3),
        ]
        if model == "cnn"
        else [Setting("type", "softmax"), Setting("hidden_units", [256])],
        data=[
            Setting("type", "image_folder"),
            Setting("path", str(train), "one sub-folder of images per class"),
            *([Setting("test_path", str(root / "test"))] if split else []),
            Setting("image_size", size, "height, width every image is resized to"),
            Setting("color_mode", "auto", "rgb if any image has colour, else grayscale"),
            Setting("normalize", "per_channel", "mean/std per channel of the training images"),
            Setting("valid_fraction", 0.1),
            Setting("test_fraction", 0.0 if split else 0.2),
            Setting("augment", {"horizontal_flip": True, "crop_padding": 4}, "", True),
        ],
        train=[
            Setting("batch_size", batch_size(total)),
            Setting("epochs", 20),
            Setting("optimizer", {"name": "adam", "learning_rate": 0.001}),
            Setting("early_stopping", {"patience": 5, "metric": "accuracy"}),
        ],
        checkpoint=[Setting("best_metric", "accuracy")],
    )


def texts(root: Path, options, name: str) -> Proposal:
    split = all((root / s).is_dir() for s in SPLIT_FOLDERS)
    train = root / "train" if split else root
    classes = {k: v.get(".txt", 0) for k, v in class_folders(train).items()}
    total = sum(classes.values())
    return Proposal(
        summary=f"Text classification of the .txt files in {root.name}/: {len(classes)} classes",
        name=name,
        task="text_classification",
        reason="every sub-folder holds .txt files: one class per sub-folder"
        + (" (train/ and test/ are the given splits)" if split else ""),
        facts=[f"Read {train}: {count_text(classes)} texts per class ({total:,} in all)."],
        model=text_model(options.model),
        data=[
            Setting("type", "text_classification"),
            Setting("path", str(root)),
            Setting("format", "folders"),
            Setting("max_length", 200, "tokens; longer texts are cut"),
            Setting("max_vocab", 20000),
            Setting("lowercase", True),
            Setting("valid_fraction", 0.1),
            Setting("test_fraction", 0.0 if split else 0.2),
        ],
        train=[
            Setting("batch_size", batch_size(total)),
            Setting("epochs", 10),
            Setting("optimizer", {"name": "adam", "learning_rate": 0.002}),
            Setting("early_stopping", {"patience": 3, "metric": "loss"}),
        ],
        checkpoint=[Setting("best_metric", "accuracy")],
    )
