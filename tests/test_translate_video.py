"""translate --input clip.mp4 --output out.mp4: frame rate, size and frame count kept, audio left out."""

from fractions import Fraction

import numpy as np
import pytest
import torch

from pyi2i.errors import UserError
from pyi2i.models import define_G
from pyi2i.models.original_format import to_original
from pyi2i.translate import main
from pyi2i.translator import Translator

av = pytest.importorskip("av", reason="video needs PyAV (the video extra)")


def _clip(path, frames):
    """An H.264 clip at 12 frames/s with a short AAC audio track."""
    with av.open(str(path), "w") as c:
        video = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=Fraction(12))
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        audio = c.add_stream("aac", rate=16000)
        for array in frames:
            c.mux(video.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        c.mux(video.encode(None))
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        sound.sample_rate, sound.pts = 16000, 0
        c.mux(audio.encode(sound))
        c.mux(audio.encode(None))


def _decode(path):
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(stream)])
        return frames, stream.average_rate, len(c.streams.audio)


def test_a_video_is_translated_frame_by_frame(tmp_path):
    torch.save(to_original(define_G("resnet_6blocks", 3, 3, 4, "instance")), tmp_path / "latest_net_G_A.pth")
    y, x = np.mgrid[0:32, 0:48]
    frames = np.stack([np.stack([127 + 100 * np.sin(2 * np.pi * ((i % 5 + 1) * x / 48 + (i // 5) * y / 32 + c / 3))
                                 for c in range(3)], -1) for i in range(10)]).astype(np.uint8)  # ten distinct patterns
    _clip(tmp_path / "clip.mp4", frames)
    decoded, _, audio = _decode(tmp_path / "clip.mp4")
    assert audio == 1
    args = ["--checkpoint", str(tmp_path / "latest_net_G_A.pth"), "--input", str(tmp_path / "clip.mp4"),
            "--output", str(tmp_path / "out.mp4"), "--device", "cpu", "--batch_size", "4", "--no_progress"]
    main(args)
    out, rate, audio = _decode(tmp_path / "out.mp4")
    assert out.shape == decoded.shape and rate == 12 and audio == 0
    # the same frames as the Translator gives for the decoded input, up to the encoder's loss
    expected = Translator.from_checkpoint(tmp_path / "latest_net_G_A.pth", "cpu", eval=False)(decoded)
    # up to the encoder's loss (large on an untrained network's fine-grained output): each output frame
    # is clearly nearest to its own expected frame
    distance = np.abs(out[:, None].astype(float) - expected[None].astype(float)).mean(axis=(2, 3, 4))
    others = np.where(np.eye(10, dtype=bool), np.inf, distance).min(axis=1)
    assert (distance.diagonal() < 0.85 * others).all(), distance
    with pytest.raises(UserError, match="out.mp4 exists .* pass --overwrite"):
        main(args)
    main(args + ["--overwrite"])


def _vp9_clip(path, frames):
    """A VP9 clip, which DALI's CPU decoder takes (its H.264 decoder needs a GPU)."""
    with av.open(str(path), "w") as c:
        video = c.add_stream("libvpx-vp9", rate=Fraction(12))
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        video.options = {"lossless": "1"}
        for array in frames:
            c.mux(video.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        c.mux(video.encode(None))


@pytest.mark.skipif("libvpx-vp9" not in av.codecs_available, reason="this FFmpeg build has no VP9 encoder")
def test_dali_decodes_the_frames_ffmpeg_decodes(tmp_path):
    from pyi2i.data import dali

    if dali.unavailable_reason():
        pytest.skip(dali.unavailable_reason())
    torch.save(to_original(define_G("resnet_6blocks", 3, 3, 4, "instance")), tmp_path / "latest_net_G_A.pth")
    # 11 frames of smooth colour waves, each shifted from the last: sharp colour edges would be blurred
    # differently by each decoder's chroma upsampling, which is not what is compared here
    y, x = np.mgrid[0:32, 0:48]
    frames = np.stack([np.stack([127 + 90 * np.sin(2 * np.pi * (x / 48 + y / 64 + i / 11) + 2 * c) for c in range(3)], -1)
                       for i in range(11)]).astype(np.uint8)
    _vp9_clip(tmp_path / "clip.webm", frames)
    outputs = {}
    for loader in ("torch", "dali"):  # PyAV, then DALI's decoder (on CPU threads here), 4 frames at a time
        main(["--checkpoint", str(tmp_path / "latest_net_G_A.pth"), "--input", str(tmp_path / "clip.webm"),
              "--output", str(tmp_path / f"{loader}.webm"), "--device", "cpu", "--batch_size", "4", "--no_progress",
              "--loader", loader])
        outputs[loader], rate, _ = _decode(tmp_path / f"{loader}.webm")
        assert rate == 12
    assert outputs["dali"].shape == outputs["torch"].shape == (11, 32, 48, 3)
    distance = np.abs(outputs["dali"][:, None].astype(float) - outputs["torch"][None].astype(float)).mean(axis=(2, 3, 4))
    assert (distance.argmin(axis=1) == np.arange(11)).all()  # every frame, in order

    # The decoded frames themselves. FFmpeg repeats each chroma sample over 2x2 pixels, DALI
    # interpolates: a few levels apart (neighbouring frames are about 30 apart, channels swapped more).
    from pyi2i.video import _dali_frames

    ffmpeg, _, _ = _decode(tmp_path / "clip.webm")
    ours = torch.cat(list(_dali_frames(tmp_path / "clip.webm", 11, 4, torch.device("cpu"))))
    ours = ((ours + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert ours.shape == ffmpeg.shape and np.abs(ours.astype(float) - ffmpeg.astype(float)).mean() < 6
