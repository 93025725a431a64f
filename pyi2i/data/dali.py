"""The NVIDIA DALI loader: decoding, region, grayscale, resize, crop, flip and normalisation on the
GPU (`device='mixed'` decoding), or on CPU threads where there is no GPU (`device_id=None`).

It renders the datasets' `ImageSpec`s, the same files, regions, crops and flips that the PIL path
draws for a seed, so the two loaders give the same samples up to interpolation: PIL's and DALI's
bicubic filters round differently, by about 0.2 of an 8-bit level on average.

Python feeds the pipeline through an external source rather than DALI's file readers. The order
of an epoch (`epoch_order`), the random B image of an unaligned pair and every crop and flip then
come from (seed, epoch, index) as on the PIL path: a run can switch loaders, resume mid-epoch or
change its number of ranks and still see the data it would have seen. Each epoch is exactly its
list of indices with a short last batch, so no sample is repeated or dropped (what the readers
need `pad_last_batch=True` for). Python's share per image is reading the file's bytes and its
header (tens of microseconds); DALI decodes and transforms `prefetch` batches ahead of the step.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from pyi2i.data.datasets import AlignedDataset, ImageDataset, ImageSpec, SingleDataset
from pyi2i.data.decode import needs_float_path
from pyi2i.data.images import DataError, image_size, load_rgb, unreadable
from pyi2i.data.loader import epoch_order
from pyi2i.data.transforms import resized_size
from pyi2i.errors import UserError

LOADERS = ("auto", "torch", "dali")
INSTALL = ('pip install "pyi2i[dali]" (the nvidia-dali-cuda130 package; on CUDA 12, '
           'pip install nvidia-dali-cuda120)')


class DaliUnavailable(UserError, RuntimeError):
    """--loader dali was asked for and DALI is not installed, or cannot start on this device."""


class DaliCannotDecode(DataError):
    """The dataset holds files that DALI would decode with less than their precision or channels."""


# Where a loader writes a batch: {side: (N, C, H, W)} -> {side: tensor of that shape}.
OutputBuffers = Callable[[dict[str, tuple[int, ...]]], dict[str, torch.Tensor]]


def unavailable_reason() -> str | None:
    """Why the DALI loader cannot be used here, or None."""
    try:
        import nvidia.dali  # noqa: F401
        import nvidia.dali.plugin.pytorch  # noqa: F401
    except ImportError as e:
        return f"NVIDIA DALI is not installed ({e}); install it with {INSTALL}"
    return None


def refuse_deep_data(dataset: ImageDataset) -> None:
    """DaliCannotDecode if DALI would lose something of `dataset`: its decoder gives 8-bit RGB, so
    it cannot read 16-bit or float values, NumPy arrays, pages after a TIFF's first, or channel
    counts other than 1 and 3. Reads every PNG's and TIFF's header."""
    sides = ("A",) if isinstance(dataset, SingleDataset) else ("A", "B")
    for side in sides:
        channels = dataset.channels(side)
        if channels not in (1, 3):
            raise DaliCannotDecode(f"DALI decodes images of 1 or 3 channels, and side {side} is read with "
                                   f"{channels} (--input_nc / --output_nc); the torch loader reads them")
    for path in dataset.files():
        what = needs_float_path(path)
        if what:
            raise DaliCannotDecode(f"DALI decodes 8-bit images, and {path} is {what}, which it would "
                                   f"decode with less precision or fewer channels; the torch loader keeps them")


def resolve_loader(name: str, device: torch.device) -> str:
    """'torch' or 'dali' for `--loader name` on `device`: auto takes DALI on a GPU when installed."""
    if name not in LOADERS:
        raise ValueError(f"--loader must be one of {', '.join(LOADERS)}, got {name!r}")
    if name == "torch":
        return "torch"
    reason = unavailable_reason()
    if name == "dali":
        if reason:
            raise DaliUnavailable(f"--loader dali: {reason}; or use --loader torch")
        return "dali"
    return "dali" if device.type == "cuda" and reason is None else "torch"


class DaliLoader:
    """Batches of `dataset` as the torch loader gives them ({'A': (N, C, H, W) in [-1, 1], 'B': ...,
    'A_paths': [...], ...}), already on `device`; one pipeline serves every epoch.

    `channels_last` has DALI write HWC, so the tensors come out in channels_last layout at no cost.
    """

    def __init__(self, dataset: ImageDataset, *, batch_size: int, shuffle: bool, seed: int, device: torch.device,
                 num_threads: int = 2, rank: int = 0, world_size: int = 1, channels_last: bool = False,
                 prefetch: int = 2, exact_size: bool = False):
        if type(dataset).__getitem__ is not ImageDataset.__getitem__:
            # The pipeline renders the specs alone; what such a dataset does after loading would be lost.
            raise ValueError(f"{type(dataset).__name__} changes its images after loading them, which the DALI "
                             f"pipeline cannot do")
        reason = unavailable_reason()
        if reason:
            raise ImportError(reason)
        refuse_deep_data(dataset)
        self.dataset, self.data = dataset, dataset.data
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.device, self.channels_last = device, channels_last
        self.num_threads, self.prefetch = max(1, num_threads), prefetch
        # With --preprocess none, training rounds sizes to a multiple of 4 (what the generators need);
        # inference keeps each image's own size, which the Translator pads and crops back.
        self.exact_size = exact_size
        self.sides = ("A",) if isinstance(dataset, SingleDataset) else ("A", "B")
        # Both halves of an aligned pair come from one file, decoded once.
        self.file_of = {"A": "A", "B": "A"} if isinstance(dataset, AlignedDataset) else {s: s for s in self.sides}
        self.files = sorted(set(self.file_of.values()))
        self.crops = "crop" in self.data.preprocess
        self.inputs = self._inputs(boxes=isinstance(dataset, AlignedDataset))
        self.sizes: dict[str, tuple[int, int]] = {}  # header sizes, read once per file
        self.batches: list[list[int]] = []
        self.pending: dict[int, list[dict[str, ImageSpec]]] = {}  # fed but not yet returned, by iteration
        # Built now, so that a DALI that cannot start here fails before training does.
        self.pipe = self._build()
        self.state = "new"  # new: never run; running; finished: ran to the end of an epoch

    # -- epochs -----------------------------------------------------------------------------------
    def epoch(self, epoch: int, start_batch: int = 0, out: OutputBuffers | None = None) -> Iterator[dict]:
        """The batches of `epoch` for this rank from batch `start_batch` on, in `epoch_order`'s order.

        With `out`, each batch is written into the tensors it returns (a CUDA graph's static inputs)."""
        self.dataset.set_epoch(epoch)
        order = epoch_order(len(self.dataset), self.seed, epoch, self.shuffle, self.rank, self.world_size)
        order = order[start_batch * self.batch_size:]
        self.batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        self.pending.clear()
        if self.state == "finished":
            self.pipe.reset()
        elif self.state == "running":  # the last epoch was left part-way: its prefetched batches must go
            self.pipe = self._build()
        self.state = "new"
        return self._batches(out)

    def _batches(self, out: OutputBuffers | None) -> Iterator[dict]:
        if not self.batches:
            return
        self.state = "running"
        iteration = 0
        while True:
            try:
                outputs = self.pipe.run()
            except StopIteration:
                self.state = "finished"
                return
            except RuntimeError as e:  # DALI's own failure; `_feed`'s DataErrors pass through as they are
                raise self._decode_error(e) from e
            yield self._to_torch(outputs, self.pending.pop(iteration), out)
            iteration += 1

    # -- what Python feeds: bytes and geometry -----------------------------------------------------
    def _size_of(self, path: str) -> tuple[int, int]:
        size = self.sizes.get(path)
        if size is None:
            size = self.sizes[path] = image_size(path)
        return size

    def _feed(self, info) -> tuple[list[np.ndarray], ...]:
        """The external source: one batch of encoded files and per-image geometry, in `self.inputs` order."""
        if info.iteration >= len(self.batches):
            raise StopIteration
        specs = [self.dataset.specs(i, self._size_of) for i in self.batches[info.iteration]]
        self.pending[info.iteration] = specs
        columns = {name: [] for name in self.inputs}
        for sample in specs:
            for file in self.files:
                columns[f"encoded_{file}"].append(_read_bytes(sample[file].path))
            for side in self.sides:
                spec = sample[side]
                stored = _box_size(spec.box) if spec.box else self._size_of(spec.path)
                width, height = stored if self.exact_size else resized_size(self.data, stored)
                columns[f"size_{side}"].append(np.array([width, height], np.float32))
                columns[f"flip_{side}"].append(np.array(spec.params.flip, np.int32))
                if spec.box is not None:
                    columns[f"box_start_{side}"].append(np.array(spec.box[:2], np.int32))
                    columns[f"box_shape_{side}"].append(np.array(_box_size(spec.box), np.int32))
                if self.crops:
                    columns[f"crop_{side}"].append(np.array(spec.params.crop_pos, np.int32))
        return tuple(columns.values())

    def _inputs(self, boxes: bool) -> list[str]:
        """The external source's outputs: encoded files, then each side's geometry."""
        names = [f"encoded_{file}" for file in self.files]
        for side in self.sides:
            names += [f"size_{side}", f"flip_{side}"]
            if boxes:
                names += [f"box_start_{side}", f"box_shape_{side}"]
            if self.crops:
                names.append(f"crop_{side}")
        return names

    # -- the pipeline ------------------------------------------------------------------------------
    def _build(self):
        from nvidia.dali import Pipeline, fn, types

        gpu = self.device.type == "cuda"
        device_id = (self.device.index if self.device.index is not None else torch.cuda.current_device()) if gpu else None
        pipe = Pipeline(batch_size=self.batch_size, num_threads=self.num_threads, device_id=device_id,
                        prefetch_queue_depth=self.prefetch, seed=self.seed)
        crop = self.data.crop_size
        with pipe:
            fed = dict(zip(self.inputs, fn.external_source(source=self._feed, batch=True, batch_info=True,
                                                               num_outputs=len(self.inputs))))
            # EXIF orientation is left alone, as PIL's Image.open leaves it.
            decoded = {file: fn.decoders.image(fed[f"encoded_{file}"], device="mixed" if gpu else "cpu",
                                               output_type=types.RGB, adjust_orientation=False)
                       for file in self.files}
            outputs = []
            for side in self.sides:
                # The PIL path's order: region, grayscale, bicubic resize, crop, flip, to [-1, 1].
                img = decoded[self.file_of[side]]
                if f"box_start_{side}" in fed:
                    img = fn.slice(img, start=fed[f"box_start_{side}"], shape=fed[f"box_shape_{side}"],
                                   axis_names="WH")
                if self.dataset.channels(side) == 1:
                    img = fn.color_space_conversion(img, image_type=types.RGB, output_type=types.GRAY)
                size = fed[f"size_{side}"]
                img = fn.resize(img, resize_x=size[0], resize_y=size[1], interp_type=types.INTERP_CUBIC,
                                antialias=True)
                if self.crops:
                    img = fn.slice(img, start=fed[f"crop_{side}"], shape=[crop, crop], axis_names="WH")
                outputs.append(fn.crop_mirror_normalize(
                    img, mirror=fed[f"flip_{side}"], mean=127.5, std=127.5, dtype=types.FLOAT,
                    output_layout="HWC" if self.channels_last else "CHW"))
            pipe.set_outputs(*outputs)
        pipe.build()
        return pipe

    # -- out of DALI -------------------------------------------------------------------------------
    def _to_torch(self, outputs, specs: list[dict[str, ImageSpec]], out: OutputBuffers | None) -> dict:
        from nvidia.dali.plugin.pytorch import feed_ndarray

        shapes, tensors = {}, {}
        for side, images in zip(self.sides, outputs):
            if not images.is_dense_tensor():
                sizes = sorted({tuple(s) for s in images.shape()})
                raise DataError(
                    f"the images of one batch differ in size after --preprocess {self.data.preprocess} "
                    f"({len(sizes)} sizes, e.g. {sizes[0]} and {sizes[-1]}), so they cannot be stacked: "
                    f"use --batch_size 1, or a --preprocess mode that crops to one size")
            tensors[side] = images.as_tensor()
            n, *image = tensors[side].shape()
            c, h, w = (image[2], image[0], image[1]) if self.channels_last else image
            shapes[side] = (n, c, h, w)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        dest = out(shapes) if out is not None else {
            side: torch.empty(shape, device=self.device, memory_format=memory_format) for side, shape in shapes.items()}
        stream = torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None
        batch = {}
        for side, tensor in tensors.items():
            target = dest[side].permute(0, 2, 3, 1) if self.channels_last else dest[side]
            if not target.is_contiguous():
                layout = "NHWC" if self.channels_last else "NCHW"
                raise ValueError(f"the buffer for {side} is not in the layout DALI writes ({layout})")
            feed_ndarray(tensor, target, cuda_stream=stream)
            batch[side] = dest[side]
            batch[f"{side}_paths"] = [sample[side].path for sample in specs]
        return batch

    def _decode_error(self, error: RuntimeError) -> DataError:
        """The error for a batch DALI failed on, naming the file: a file PIL cannot read either gets
        the PIL path's message; otherwise DALI alone could not decode one of the files in flight."""
        paths = sorted({spec.path for specs in self.pending.values() for sample in specs for spec in sample.values()})
        for path in paths:
            load_rgb(path)  # raises the PIL path's DataError for a broken file
        reason = str(error).strip().splitlines()
        detail = next((line for line in reason if "failure" in line or "rror" in line), reason[-1] if reason else "")
        return DataError(f"DALI could not decode one of {', '.join(paths)} ({detail.strip()}), though PIL can: "
                         f"re-save the file as PNG or JPEG, or use --loader torch")


def _read_bytes(path: str) -> np.ndarray:
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise unreadable(path, e) from e


def _box_size(box: tuple[int, int, int, int]) -> tuple[int, int]:
    left, top, right, bottom = box
    return right - left, bottom - top
