"""A small synthetic dataset, generated in seconds, for trying pix2pix and CycleGAN end to end.

Each scene is a few random shapes (circles, rectangles, triangles) of four classes. Domain A is
the scene's label map: one flat colour per class on a background colour. Domain B is a rendering
of the same scene: each class a material with its own colour and texture, each shape lit from the
top left. B is a deterministic function of the scene, so the mapping A -> B can be learnt.
"""

from __future__ import annotations

import inspect
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

VERSION = 1
KINDS = ("paired", "unpaired")
MARKER = "DEMO.json"

# Each stream of scenes has its own seed entry, so that no two streams share a scene: trainB
# renders other scenes than trainA, which is what makes the unpaired data unpaired.
_STREAMS = {"train": 0, "test": 1, "trainA": 2, "trainB": 3, "testA": 4, "testB": 5}
# stream -> (folder of its label maps, folder of its renderings); one folder: side by side; None: unused.
_LAYOUT = {
    "paired": {"train": ("train", "train"), "test": ("test", "test")},
    "unpaired": {"trainA": ("trainA", None), "trainB": (None, "trainB"),
                 "testA": ("testA", "testA_target"), "testB": ("testB_target", "testB")},
}

LABEL_BACKGROUND = (30, 30, 140)
LABEL_COLOURS = ((230, 40, 40), (40, 210, 70), (240, 220, 30), (40, 220, 230))
MATERIAL_COLOURS = ((170, 70, 50), (60, 140, 50), (175, 175, 195), (215, 185, 120))
SHAPE_KINDS = ("circle", "rectangle", "triangle")

# Light from the top left and a little towards the viewer (image y points down).
_LIGHT = np.array([-0.55, -0.65, 0.52]) / np.linalg.norm([-0.55, -0.65, 0.52])
_LIGHT_2D = _LIGHT[:2] / np.linalg.norm(_LIGHT[:2])


@dataclass(frozen=True)
class Shape:
    kind: str
    cls: int
    geometry: tuple[float, ...]  # circle: cx, cy, r; rectangle: x0, y0, x1, y1; triangle: 3 (x, y) vertices


def random_scene(rng: np.random.Generator, size: int) -> list[Shape]:
    """3 to 6 shapes, in drawing order (later shapes cover earlier ones)."""
    shapes = []
    for _ in range(int(rng.integers(3, 7))):
        kind = SHAPE_KINDS[int(rng.integers(0, len(SHAPE_KINDS)))]
        cls = int(rng.integers(0, len(LABEL_COLOURS)))
        cx, cy = rng.uniform(0.1, 0.9, size=2) * size
        if kind == "circle":
            geometry = (cx, cy, rng.uniform(0.08, 0.22) * size)
        elif kind == "rectangle":
            half_w, half_h = rng.uniform(0.08, 0.25, size=2) * size
            geometry = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
        else:
            radius = rng.uniform(0.12, 0.3) * size
            angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2, 4]) * np.pi / 3 + rng.uniform(-0.4, 0.4, size=3)
            geometry = tuple(np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1).ravel())
        shapes.append(Shape(kind, cls, tuple(float(g) for g in geometry)))
    return shapes


def _coverage_and_light(shape: Shape, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where `shape` covers the pixel centres (x, y), and its brightness there in [0, 1]."""
    g = shape.geometry
    if shape.kind == "circle":
        cx, cy, r = g
        dx, dy = (x - cx) / r, (y - cy) / r
        covered = dx * dx + dy * dy <= 1.0
        dz = np.sqrt(np.clip(1.0 - dx * dx - dy * dy, 0.0, None))
        # A sphere: Lambertian shading of its surface normal (dx, dy, dz).
        lambert = np.clip(dx * _LIGHT[0] + dy * _LIGHT[1] + dz * _LIGHT[2], 0.0, 1.0)
        return covered, 0.3 + 0.7 * lambert
    if shape.kind == "rectangle":
        x0, y0, x1, y1 = g
        covered = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        cx, cy, extent = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2
    else:
        (ax, ay), (bx, by), (qx, qy) = g[0:2], g[2:4], g[4:6]
        sides = [(px - x) * (ry - y) - (py - y) * (rx - x)
                 for (px, py), (rx, ry) in (((ax, ay), (bx, by)), ((bx, by), (qx, qy)), ((qx, qy), (ax, ay)))]
        covered = ((sides[0] >= 0) & (sides[1] >= 0) & (sides[2] >= 0)) | (
            (sides[0] <= 0) & (sides[1] <= 0) & (sides[2] <= 0))
        cx, cy = (ax + bx + qx) / 3, (ay + by + qy) / 3
        extent = max(np.hypot(ax - cx, ay - cy), np.hypot(bx - cx, by - cy), np.hypot(qx - cx, qy - cy))
    # A flat face: brighter towards the light, by distance along the light direction.
    towards_light = ((x - cx) * _LIGHT_2D[0] + (y - cy) * _LIGHT_2D[1]) / extent
    return covered, np.clip(0.65 + 0.3 * towards_light, 0.0, 1.0)


def _material_texture(cls: int, xi: np.ndarray, yi: np.ndarray, size: int) -> np.ndarray:
    """A multiplicative texture per class: bricks, leaves, brushed metal, speckled sand."""
    period = max(4, size // 12)
    if cls == 0:
        course = yi // period
        mortar = (yi % period == 0) | ((xi + (course % 2) * period) % (2 * period) == 0)
        return np.where(mortar, 0.6, 1.0)
    if cls == 1:
        return 1.0 + 0.2 * np.sin(xi * 1.3) * np.cos(yi * 1.1)
    if cls == 2:
        return 1.0 + 0.12 * np.sin((xi + yi) * 2 * np.pi / period)
    return np.where((xi * 7 + yi * 13) % 11 == 0, 0.75, 1.0)


def draw_scene(shapes: list[Shape], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(label map, rendering) of a scene, both (size, size, 3) uint8."""
    yi, xi = np.mgrid[0:size, 0:size]
    x, y = xi + 0.5, yi + 0.5
    label = np.empty((size, size, 3), np.uint8)
    label[:] = LABEL_BACKGROUND
    sky = (y / size)[..., None]
    render = (1 - sky) * np.array([175.0, 205.0, 235.0]) + sky * np.array([85.0, 105.0, 150.0])
    for shape in shapes:
        covered, light = _coverage_and_light(shape, x, y)
        label[covered] = LABEL_COLOURS[shape.cls]
        shade = light * _material_texture(shape.cls, xi, yi, size)
        render[covered] = (shade[..., None] * np.array(MATERIAL_COLOURS[shape.cls], float))[covered]
    return label, np.clip(np.rint(render), 0, 255).astype(np.uint8)


def _scenes(stream: str, n: int, size: int, seed: int):
    for i in range(n):
        rng = np.random.default_rng([seed, _STREAMS[stream], i])
        yield f"{i:04d}.png", draw_scene(random_scene(rng, size), size)


def _save(folder: Path, name: str, pixels: np.ndarray) -> None:
    Image.fromarray(pixels).save(folder / name)


def _settings(kind: str, size: int, n_train: int, n_test: int, seed: int) -> dict:
    return {"generator": "pyi2i.data.demo", "version": VERSION, "kind": kind,
            "size": size, "n_train": n_train, "n_test": n_test, "seed": seed}


def _read_marker(root: Path) -> dict | None:
    try:
        return json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None


def make_demo(root, kind: str, *, size: int = 64, n_train: int = 200, n_test: int = 20, seed: int = 0) -> Path:
    """Write the demo dataset of `kind` ('paired' or 'unpaired') under `root`; returns `root`.

    paired (pix2pix, --dataset_mode aligned): train/ and test/ hold label map | rendering side by side.
    unpaired (CycleGAN, --dataset_mode unaligned): trainA/ label maps and trainB/ renderings of other
    scenes, testA/ and testB/ likewise, with the unseen answers in testA_target/ (the rendering of each
    testA scene) and testB_target/ (the label map of each testB scene), under the same file names.
    The same arguments always give byte-identical files.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if size < 8 or n_train < 1 or n_test < 1:
        raise ValueError(f"need size >= 8 and at least one train and one test image, got "
                         f"size={size}, n_train={n_train}, n_test={n_test}")
    root = Path(root)
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).exists():
        raise FileExistsError(f"{root} is not empty and holds no {MARKER}; refusing to write demo data over it")
    root.mkdir(parents=True, exist_ok=True)
    settings = _settings(kind, size, n_train, n_test, seed)
    # Written first, marked incomplete, so that an interrupted run leaves a folder that is regenerated
    # (not refused) next time.
    (root / MARKER).write_text(json.dumps({**settings, "complete": False}, indent=2) + "\n")
    for sub in sorted({d for dirs in _LAYOUT[kind].values() for d in dirs if d}):
        shutil.rmtree(root / sub, ignore_errors=True)
        (root / sub).mkdir()

    for stream, (label_dir, render_dir) in _LAYOUT[kind].items():
        n = n_train if stream.startswith("train") else n_test
        for name, (label, render) in _scenes(stream, n, size, seed):
            if label_dir == render_dir:
                _save(root / label_dir, name, np.concatenate([label, render], axis=1))
            else:
                for folder, pixels in ((label_dir, label), (render_dir, render)):
                    if folder:
                        _save(root / folder, name, pixels)

    (root / MARKER).write_text(json.dumps({**settings, "complete": True}, indent=2) + "\n")
    return root


def ensure_demo(root, kind: str, **kwargs) -> Path:
    """`root` holding the demo dataset of `kind`, generated only if absent or made with other arguments."""
    args = inspect.signature(make_demo).bind(root, kind, **kwargs)
    args.apply_defaults()
    settings = _settings(**{k: v for k, v in args.arguments.items() if k != "root"})
    if _read_marker(Path(root)) != {**settings, "complete": True}:
        make_demo(root, kind, **kwargs)
    return Path(root)
