"""The DALI loader against the PIL path: same samples, same geometry, exact epochs, sharding, errors.

DALI's CPU mode (no GPU) runs the same pipelines as GPU mode with the decoder on CPU threads; the
GPU tests at the end compare the two modes where a GPU is present.
"""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_dataset, training_options
from pyi2i.data import DataError, create_loader, epoch_order
from pyi2i.data import dali
from pyi2i.data.transforms import PREPROCESS_MODES

pytestmark = pytest.mark.skipif(dali.unavailable_reason() is not None,
                                reason=f"DALI not installed: {dali.unavailable_reason()}")

CPU = torch.device("cpu")
LEVEL = 1 / 127.5  # one 8-bit level in the [-1, 1] scale
# PIL's and DALI's bicubic filters round differently and clip their overshoot at sharp edges
# differently. The stated tolerance of a resized image: 99% of the values within one 8-bit level,
# none beyond 8 levels (at hard edges), a mean under a quarter of a level. Without a resize (crop,
# none at sizes divisible by 4) the two are equal.
P99_LEVELS, MAX_LEVELS, MEAN_LEVELS = 1, 8, 0.25


def loaders(dataset, batch_size=1, epoch=1, **kwargs):
    """One epoch of the same dataset from the torch loader and from the DALI loader."""
    pil = list(create_loader(dataset, batch_size=batch_size, shuffle=True, num_workers=0, seed=dataset.seed,
                             epoch=epoch))
    loader = dali.DaliLoader(dataset, batch_size=batch_size, shuffle=True, seed=dataset.seed, device=CPU, num_threads=1,
                             **kwargs)
    return pil, list(loader.epoch(epoch))


def assert_same_batches(pil, ours, exact=False):
    assert len(pil) == len(ours)
    for expected, got in zip(pil, ours):
        assert sorted(expected) == sorted(got)
        for key, value in expected.items():
            if key.endswith("_paths"):
                assert list(value) == got[key]
                continue
            assert got[key].shape == value.shape and got[key].dtype == torch.float32
            diff = (got[key] - value).abs()
            if exact:  # the same 8-bit values; normalising rounds the last bit of a float differently
                assert diff.max() <= 1e-6, key
            else:
                assert diff.quantile(0.99) <= P99_LEVELS * LEVEL + 1e-6, (key, diff.quantile(0.99) / LEVEL)
                assert diff.max() <= MAX_LEVELS * LEVEL + 1e-6, (key, diff.max() / LEVEL)
                assert diff.mean() <= MEAN_LEVELS * LEVEL, (key, diff.mean() / LEVEL)


def smooth_image(w, h, seed):
    """A photograph-like test image: smooth colour fields with fine detail."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (h // 8 + 2, w // 8 + 2, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR), dtype=np.float64)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def save(path, pixels, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **kwargs)
    return path


# ---- the same samples as the PIL path ----

@pytest.mark.parametrize("preprocess", PREPROCESS_MODES)
@pytest.mark.parametrize("mode", ["aligned", "unaligned", "single"])
def test_same_samples_as_pil_path(demo_root, mode, preprocess):
    root = {"aligned": demo_root / "paired", "unaligned": demo_root / "unpaired",
            "single": demo_root / "unpaired" / "trainA"}[mode]
    # Upscaling (32 -> 36) for the resizing modes; scale_width on the 64-wide aligned halves downscales.
    dataset = tiny_dataset(root, dataset_mode=mode, preprocess=preprocess, load_size=36, crop_size=28)
    pil, ours = loaders(dataset)
    assert_same_batches(pil, ours, exact=preprocess in ("crop", "none"))


@pytest.mark.parametrize("channels_last", [False, True])
def test_direction_grayscale_and_layout(demo_root, channels_last):
    dataset = tiny_dataset(demo_root / "paired", direction="BtoA", input_nc=1, load_size=20, crop_size=16)
    pil, ours = loaders(dataset, batch_size=3, channels_last=channels_last)
    assert_same_batches(pil, ours)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert ours[0]["A"].shape[1] == 1 and ours[0]["B"].shape[1] == 3
    assert all(b[k].is_contiguous(memory_format=layout) for b in ours for k in ("A", "B"))


def test_downscaling_photographs(tmp_path):
    for i in range(4):
        save(tmp_path / "trainA" / f"{i}.jpg", smooth_image(160, 120, i), quality=92)
        save(tmp_path / "trainB" / f"{i}.png", smooth_image(100, 140, 10 + i))
    dataset = tiny_dataset(tmp_path, dataset_mode="unaligned", load_size=72, crop_size=64)
    assert_same_batches(*loaders(dataset))
    dataset = tiny_dataset(tmp_path, dataset_mode="unaligned", preprocess="scale_width_and_crop", load_size=72, crop_size=64)
    assert_same_batches(*loaders(dataset))


def test_image_modes_converted_like_pil(tmp_path):
    """Grayscale, RGBA and palette files all become the RGB the PIL path makes of them (16-bit files
    DALI refuses, see test_image_io)."""
    rgb = smooth_image(24, 20, 0)
    save(tmp_path / "gray.png", rgb[..., 0])
    save(tmp_path / "rgba.png", np.concatenate([rgb, rgb[..., :1]], -1))
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    save(tmp_path / "rgb.bmp", rgb)
    dataset = tiny_dataset(tmp_path, dataset_mode="single", preprocess="crop", crop_size=16)
    pil, ours = loaders(dataset)
    assert len(ours) == 4
    assert_same_batches(pil, ours, exact=True)


def test_exif_orientation_left_alone_as_by_pil(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees to display": PIL's Image.open does not apply it
    Image.fromarray(smooth_image(40, 24, 0)).save(tmp_path / "rotated.jpg", quality=95, exif=exif)
    dataset = tiny_dataset(tmp_path, dataset_mode="single", preprocess="crop", crop_size=16)
    pil, ours = loaders(dataset)
    assert ours[0]["A"].shape == (1, 3, 16, 16)
    assert_same_batches(pil, ours, exact=True)


# ---- geometry: both images of a pair, every sample once, order, shards ----

def test_aligned_halves_get_one_crop_and_flip(tmp_path):
    """B is the negative of A, so B == -A exactly unless the two halves were cut or flipped differently;
    the texture changes at every pixel, so any mismatch shows."""
    yy, xx = np.mgrid[0:30, 0:40]
    for i in range(6):
        a = np.stack([(xx * 7 + yy * 3 + i) % 256, (xx * 5 + yy * 11) % 256, (xx * xx + yy) % 256], -1).astype(np.uint8)
        save(tmp_path / "train" / f"{i}.png", np.concatenate([a, 255 - a], 1))
    dataset = tiny_dataset(tmp_path, preprocess="crop", crop_size=16)
    pil, ours = loaders(dataset, batch_size=2)
    assert_same_batches(pil, ours, exact=True)
    a = torch.cat([b["A"] for b in ours])
    b = torch.cat([b["B"] for b in ours])
    assert torch.allclose(a, -b, rtol=0, atol=1e-6)
    assert (a + b.flip(-1)).abs().mean() > 0.2 and (a[:, :, :-1] + b[:, :, 1:]).abs().mean() > 5 * LEVEL  # would show
    dataset.set_epoch(1)
    specs = [dataset.specs(i, lambda path: (80, 30))["A"].params for i in range(len(dataset))]
    assert {p.flip for p in specs} == {True, False} and len({p.crop_pos for p in specs}) > 1  # both were tried


def aligned_files(tmp_path, n):
    for i in range(n):
        save(tmp_path / "train" / f"{i:02d}.png", smooth_image(32, 16, i))
    return [str(tmp_path / "train" / f"{i:02d}.png") for i in range(n)]


def epoch_paths(loader, epoch, start_batch=0):
    return [p for batch in loader.epoch(epoch, start_batch) for p in batch["A_paths"]]


def test_every_sample_once_per_epoch_with_a_short_last_batch(tmp_path):
    files = aligned_files(tmp_path, 10)
    dataset = tiny_dataset(tmp_path, load_size=16, crop_size=16)
    loader = dali.DaliLoader(dataset, batch_size=3, shuffle=True, seed=5, device=CPU)
    for epoch in (1, 2):
        batches = list(loader.epoch(epoch))
        assert [len(b["A_paths"]) for b in batches] == [3, 3, 3, 1]
        assert [len(b["A"]) for b in batches] == [3, 3, 3, 1]
        paths = [p for b in batches for p in b["A_paths"]]
        assert sorted(paths) == files
        assert paths == [files[i] for i in epoch_order(10, 5, epoch, True)]


def test_unaligned_epoch_visits_each_a_once(demo_root):
    dataset = tiny_dataset(demo_root / "unpaired", dataset_mode="unaligned")
    loader = dali.DaliLoader(dataset, batch_size=3, shuffle=True, seed=0, device=CPU)
    paths = epoch_paths(loader, 1)
    assert sorted(paths) == sorted(dataset.a_paths)


def test_order_follows_the_seed(tmp_path):
    aligned_files(tmp_path, 12)
    dataset = tiny_dataset(tmp_path, load_size=16, crop_size=16)

    def order(seed, epoch):
        return epoch_paths(dali.DaliLoader(dataset, batch_size=4, shuffle=True, seed=seed, device=CPU), epoch)

    assert order(1, 1) == order(1, 1)
    assert order(1, 1) != order(2, 1)
    assert order(1, 1) != order(1, 2)
    serial = dali.DaliLoader(dataset, batch_size=4, shuffle=False, seed=1, device=CPU)
    assert epoch_paths(serial, 1) == sorted(epoch_paths(serial, 1))


def test_ranks_share_an_epoch_without_overlap(tmp_path):
    files = aligned_files(tmp_path, 10)
    dataset = tiny_dataset(tmp_path, load_size=16, crop_size=16)
    shards = [epoch_paths(dali.DaliLoader(dataset, batch_size=2, shuffle=True, seed=3, device=CPU, rank=r,
                                          world_size=3), 1) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]  # 10 padded to 12 so that no rank waits
    every = [p for s in shards for p in s]
    assert sorted(set(every)) == files
    order = epoch_order(10, 3, 1, True)
    assert sorted(every) == sorted(files + [files[i] for i in order[:2]])  # the only repeats are the padding
    for r, shard in enumerate(shards):
        assert shard == [files[i] for i in epoch_order(10, 3, 1, True, r, 3)]


def test_resume_mid_epoch_and_abandoned_epochs(tmp_path):
    aligned_files(tmp_path, 9)
    dataset = tiny_dataset(tmp_path, load_size=16, crop_size=16)
    loader = dali.DaliLoader(dataset, batch_size=2, shuffle=True, seed=0, device=CPU)
    full = list(loader.epoch(4))
    tail = list(loader.epoch(4, start_batch=2))
    assert [b["A_paths"] for b in tail] == [b["A_paths"] for b in full[2:]]
    assert all(torch.equal(x["A"], y["A"]) for x, y in zip(tail, full[2:]))
    next(iter(loader.epoch(5)))  # left part-way: the next epoch starts cleanly all the same
    assert [b["A_paths"] for b in loader.epoch(4)] == [b["A_paths"] for b in full]
    assert list(loader.epoch(4, start_batch=5)) == []


# ---- bad data ----

def test_corrupt_image_is_named(tmp_path):
    aligned_files(tmp_path, 3)
    good = (tmp_path / "train" / "01.png").read_bytes()
    (tmp_path / "train" / "01.png").write_bytes(good[: len(good) // 2])  # header intact, data cut off
    dataset = tiny_dataset(tmp_path, load_size=16, crop_size=16)
    loader = dali.DaliLoader(dataset, batch_size=1, shuffle=False, seed=0, device=CPU)
    with pytest.raises(DataError, match=r"01\.png.*--skip_bad_images"):
        list(loader.epoch(1))
    assert len(list(loader.epoch(1, start_batch=2))) == 1  # the loader recovers for the next epoch

    skipping = tiny_dataset(tmp_path, load_size=16, crop_size=16, skip_bad_images=True)
    assert [p for p, _ in skipping.skipped] == [str(tmp_path / "train" / "01.png")]
    loader = dali.DaliLoader(skipping, batch_size=2, shuffle=True, seed=0, device=CPU)
    assert len(epoch_paths(loader, 1)) == 2


def test_unreadable_header_is_named(tmp_path):
    aligned_files(tmp_path, 2)
    (tmp_path / "train" / "00.png").write_bytes(b"not an image at all")
    dataset = tiny_dataset(tmp_path, load_size=16, crop_size=16)
    with pytest.raises(DataError, match=r"00\.png"):
        list(dali.DaliLoader(dataset, batch_size=1, shuffle=False, seed=0, device=CPU).epoch(1))


def test_image_too_small_to_crop(tmp_path):
    save(tmp_path / "small.png", smooth_image(10, 10, 0))
    dataset = tiny_dataset(tmp_path, dataset_mode="single", preprocess="crop", crop_size=16)
    with pytest.raises(DataError, match=r"small\.png is 10x10.*--crop_size 16"):
        list(dali.DaliLoader(dataset, batch_size=1, shuffle=False, seed=0, device=CPU).epoch(1))


def test_batch_of_different_sizes(tmp_path):
    save(tmp_path / "a.png", smooth_image(16, 16, 0))
    save(tmp_path / "b.png", smooth_image(24, 16, 1))
    dataset = tiny_dataset(tmp_path, dataset_mode="single", preprocess="none")
    with pytest.raises(DataError, match="differ in size.*--batch_size 1"):
        list(dali.DaliLoader(dataset, batch_size=2, shuffle=False, seed=0, device=CPU).epoch(1))


# ---- choosing the loader, and training with it ----

def test_resolve_loader(monkeypatch):
    cuda = torch.device("cuda")
    assert dali.resolve_loader("torch", cuda) == "torch"
    assert dali.resolve_loader("auto", CPU) == "torch"
    assert dali.resolve_loader("auto", cuda) == "dali"
    assert dali.resolve_loader("dali", CPU) == "dali"
    monkeypatch.setattr(dali, "unavailable_reason", lambda: "NVIDIA DALI is not installed")
    assert dali.resolve_loader("auto", cuda) == "torch"
    with pytest.raises(dali.DaliUnavailable, match="--loader dali: NVIDIA DALI is not installed.*--loader torch"):
        dali.resolve_loader("dali", CPU)


def test_missing_dali_message_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_dali(name, *args, **kwargs):
        if name.startswith("nvidia.dali"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dali)
    reason = dali.unavailable_reason()
    assert 'pip install "pyi2i[dali]"' in reason and "nvidia-dali-cuda120" in reason


def test_training_with_the_dali_loader(demo_root, tmp_path):
    from pyi2i.engine.trainer import Trainer

    runs = {}
    for loader in ("torch", "dali"):
        trainer = Trainer(training_options(demo_root / "unpaired", checkpoints_dir=tmp_path, name=loader,
                                           loader=loader, max_steps=2, print_freq=1))
        assert (trainer.batches.dali is not None) == (loader == "dali")
        trainer.train()
        runs[loader] = (tmp_path / loader / "loss_log.csv").read_text().splitlines()
    # The first step's losses: the same images and weights, pixels within interpolation tolerance.
    header, torch_losses = runs["torch"][0].split(","), runs["torch"][1].split(",")
    dali_losses = runs["dali"][1].split(",")
    assert len(runs["dali"]) == 3  # both steps trained and logged
    for name in ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"):
        i = header.index(name)
        assert float(dali_losses[i]) == pytest.approx(float(torch_losses[i]), rel=0.01), name


# ---- GPU mode ----

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: DALI's GPU mode needs one")


@gpu
@pytest.mark.parametrize("mode", ["aligned", "unaligned"])
def test_gpu_mode_matches_cpu_mode(demo_root, mode):
    dataset = tiny_dataset(demo_root / ("paired" if mode == "aligned" else "unpaired"), dataset_mode=mode, input_nc=1)
    cpu = list(dali.DaliLoader(dataset, batch_size=2, shuffle=True, seed=0, device=CPU).epoch(1))
    cuda = list(dali.DaliLoader(dataset, batch_size=2, shuffle=True, seed=0, device=torch.device("cuda")).epoch(1))
    assert_same_batches(cpu, [{k: v.cpu() if torch.is_tensor(v) else v for k, v in b.items()} for b in cuda])
    assert cuda[0]["A"].is_cuda


@gpu
def test_batches_written_into_the_graph_inputs(demo_root, tmp_path):
    from pyi2i.engine.graphs import CudaGraphStep
    from pyi2i.engine.trainer import Trainer

    trainer = Trainer(training_options(demo_root / "unpaired", checkpoints_dir=tmp_path, loader="dali",
                                       cuda_graphs=True, amp="bf16", device="cuda"))
    assert isinstance(trainer.step_fn, CudaGraphStep) and trainer.batches.dali is not None
    out = trainer.step_fn.input_buffers
    batches = trainer.batches.dali.epoch(1, out=out)
    for step, batch in enumerate(batches):
        losses = trainer.step_fn(batch)
        buffers = out({k: tuple(batch[k].shape) for k in ("A", "B")})
        assert batch["A"] is buffers["A"] and batch["B"] is buffers["B"]
        if step >= trainer.step_fn.warmup:  # captured: the graph reads the loader's tensors themselves
            captured = trainer.step_fn.graphs[CudaGraphStep.shape_key(batch)]
            assert captured.inputs["A"] is batch["A"]
            assert all(torch.isfinite(v).item() for v in losses.values())


def test_auto_falls_back_when_dali_cannot_start(demo_root, tmp_path, monkeypatch, caplog):
    from pyi2i.engine import batches
    from pyi2i.engine.trainer import Trainer

    def broken(*args, **kwargs):
        raise RuntimeError("no decoder")

    monkeypatch.setattr(batches, "resolve_loader", lambda name, device: "dali")
    monkeypatch.setattr(batches, "DaliLoader", broken)
    trainer = Trainer(training_options(demo_root / "unpaired", checkpoints_dir=tmp_path, loader="auto"))
    assert trainer.batches.dali is None and "DALI could not start" in caplog.text
    with pytest.raises(dali.DaliUnavailable, match="--loader dali: DALI could not start.*no decoder.*--loader torch"):
        Trainer(training_options(demo_root / "unpaired", checkpoints_dir=tmp_path, loader="dali", name="other"))


def test_translate_with_the_dali_loader(demo_root, tmp_path):
    from pyi2i.models import define_G
    from pyi2i.models.original_format import to_original
    from pyi2i.translate import main

    torch.save(to_original(define_G("resnet_6blocks", 3, 3, 4, "instance")), tmp_path / "latest_net_G_A.pth")
    inputs = tmp_path / "inputs"
    shutil.copytree(demo_root / "unpaired" / "testA", inputs)
    # a size that is not a multiple of 4: translate keeps it, with either loader
    odd = np.random.default_rng(0).integers(0, 256, (37, 30, 3), dtype=np.uint8)
    Image.fromarray(odd).save(inputs / "odd.png")
    outputs = {}
    for loader in ("torch", "dali"):
        main(["--checkpoint", str(tmp_path / "latest_net_G_A.pth"), "--input", str(inputs),
              "--output", str(tmp_path / loader), "--preprocess", "none", "--loader", loader, "--device", "cpu"])
        outputs[loader] = tmp_path / loader
    names = sorted(p.name for p in (outputs["torch"] / "images").iterdir())
    assert len(names) == 10 and names == sorted(p.name for p in (outputs["dali"] / "images").iterdir())
    for name in names:  # no resize with 'none': the same inputs, so the same outputs
        a, b = (np.asarray(Image.open(outputs[k] / "images" / name), dtype=int) for k in ("torch", "dali"))
        assert a.shape == b.shape and np.abs(a - b).max() <= 1, name
    assert Image.open(outputs["dali"] / "images" / "odd_fake.png").size == (30, 37)
