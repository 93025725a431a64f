"""Video in, video out: `translate --input clip.mp4 --output out.mp4` (PyAV, the `video` extra).

Frames are decoded, translated in batches by a Translator, and encoded by FFmpeg through PyAV into
the output at the source's frame rate and size; audio and other streams are left out. The output is
written to a temporary file beside its destination and renamed when complete.

Decoding: on a GPU with DALI installed (`--loader auto` or `dali`), DALI's video decoder streams the
frames onto the GPU (NVDEC: H.264, HEVC, VP9, AV1 as the GPU supports), `batch_size` at a time, so a
long clip never sits in memory whole; elsewhere FFmpeg decodes on the CPU through PyAV. DALI's CPU
decoder (`--loader dali` without a GPU) takes fewer codecs (VP9, not H.264).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm import tqdm

import torch

from pyi2i import fileio
from pyi2i.data.dali import DaliUnavailable, resolve_loader
from pyi2i.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
# container format and preferred codecs per output suffix (the first one FFmpeg has is used)
_CONTAINERS = {".mp4": ("mp4", ("libx264", "h264", "mpeg4")), ".m4v": ("mp4", ("libx264", "h264", "mpeg4")),
               ".mov": ("mov", ("libx264", "h264", "mpeg4")), ".mkv": ("matroska", ("libx264", "h264", "mpeg4")),
               ".avi": ("avi", ("mpeg4",)), ".webm": ("webm", ("libvpx-vp9", "libvpx"))}


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES and Path(path).is_file()


def _av():
    try:
        import av
    except ImportError as e:
        raise UserError(f"translating a video needs PyAV ({e}): pip install 'pyi2i[video]'") from e
    return av


def _codec(av, suffix: str) -> tuple[str, str]:
    if suffix not in _CONTAINERS:
        raise UserError(f"--output for a video input must end in one of {', '.join(_CONTAINERS)}, got {suffix!r}")
    container, codecs = _CONTAINERS[suffix]
    for codec in codecs:
        if codec in av.codecs_available:
            return container, codec
    raise UserError(f"this FFmpeg build has none of the encoders {', '.join(codecs)} for {suffix} files; "
                    "choose another --output suffix")


def _dali_frames(path: str | os.PathLike, frames: int, batch_size: int, device: torch.device):
    """The frames of `path` as (N, 3, H, W) float tensors in [-1, 1] on `device`, `batch_size` at a
    time, decoded by DALI (the last batch may be short)."""
    from nvidia.dali import fn, pipeline_def
    from nvidia.dali.plugin.pytorch import feed_ndarray

    gpu = device.type == "cuda"

    @pipeline_def(batch_size=1, num_threads=2, device_id=(device.index or 0) if gpu else None, prefetch_queue_depth=1)
    def pipeline():
        return fn.experimental.inputs.video(name="video", sequence_length=batch_size, last_sequence_policy="partial",
                                            device="mixed" if gpu else "cpu")

    pipe = pipeline()
    pipe.build()
    pipe.feed_input("video", [np.fromfile(path, dtype=np.uint8)])
    stream = torch.cuda.current_stream(device) if gpu else None
    for _ in range(-(-frames // batch_size)):  # the decoder needs to be asked exactly as often as it has sequences
        (sequence,) = pipe.run()
        tensor = sequence.as_tensor()
        decoded = torch.empty(tensor.shape(), dtype=torch.uint8, device=device)  # (1, N, H, W, 3)
        feed_ndarray(tensor, decoded, cuda_stream=stream)
        yield decoded[0].permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def _decoder(loader: str, channels: tuple[int, int], device: torch.device) -> str:
    """"dali" or "pyav": DALI on a GPU where it is installed, for generators of RGB frames."""
    if channels[0] != 3:
        if loader == "dali":
            raise DaliUnavailable("--loader dali decodes RGB video frames, and this generator takes gray ones; "
                                  "use --loader torch")
        return "pyav"
    return "dali" if resolve_loader(loader, device) == "dali" else "pyav"


def translate_video(translator, input: str | os.PathLike, output: str | os.PathLike, *, batch_size: int = 8,
                    overwrite: bool = False, progress: bool = True, loader: str = "torch") -> Path:
    """Every frame of the video `input` through `translator`, into the video `output` (same frame
    rate and size, no audio). `loader` chooses the decoder as translate's --loader does."""
    av = _av()
    channels = (translator.options["input_nc"], translator.options["output_nc"])
    if not set(channels) <= {1, 3}:
        raise UserError(f"video frames are gray or RGB, and this generator's images have {channels[0]} channels "
                        f"in and {channels[1]} out")
    # FFmpeg converts each frame from and to the generator's gray or RGB
    frame_in, frame_out = ("gray" if c == 1 else "rgb24" for c in channels)
    decoder = _decoder(loader, channels, translator.device)
    output = Path(output)
    if output.exists() and not overwrite:
        raise UserError(f"{output} exists (from an earlier run?); pass --overwrite to replace it")
    container_format, codec = _codec(av, output.suffix.lower())
    try:
        source = av.open(str(input))
    except av.FFmpegError as e:
        raise UserError(f"{input}: not a readable video ({e})") from e
    with source:
        if not source.streams.video:
            raise UserError(f"{input} holds no video stream")
        stream = source.streams.video[0]
        stream.thread_type = "AUTO"  # FFmpeg decodes with its own threads
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        with fileio.atomic_write(output, "wb") as f, av.open(f, "w", format=container_format) as sink:
            out = sink.add_stream(codec, rate=rate)
            out.width, out.height = stream.codec_context.width, stream.codec_context.height
            out.pix_fmt = "yuv420p"
            count = 0
            bar = tqdm(total=stream.frames or None, unit="frame", disable=not progress, desc="translate")

            def encode(translated: np.ndarray) -> None:
                nonlocal count
                for array in translated:
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array.squeeze(2) if frame_out == "gray"
                                                                            else array), format=frame_out)
                    frame.pts, frame.time_base = count, Fraction(1) / rate
                    count += 1
                    sink.mux(out.encode(frame))
                bar.update(len(translated))

            if decoder == "dali":
                frames = sum(1 for packet in source.demux(stream) if packet.size)  # no decoding
                for x in _dali_frames(input, frames, batch_size, translator.device):
                    encode(translator.to_uint8(translator.translate_tensor(x)))
            else:
                batch: list[np.ndarray] = []
                for frame in source.decode(stream):
                    batch.append(frame.to_ndarray(format=frame_in).reshape(frame.height, frame.width, -1))
                    if len(batch) == batch_size:
                        encode(translator(np.stack(batch)))
                        batch = []
                if batch:
                    encode(translator(np.stack(batch)))
            sink.mux(out.encode(None))  # flush the encoder's delayed frames
            bar.close()
    if count == 0:
        output.unlink(missing_ok=True)
        raise UserError(f"{input} holds no decodable video frames")
    return output
