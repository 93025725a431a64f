"""Drop-in for the original release: its command lines for training and testing (with
`python -m pyi2i.train` / `python -m pyi2i.test` for train.py / test.py), its results layout, its
options (those served another way too), fine-tuning from its weight files, and plug-ins."""

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pyi2i import checkpoints
from pyi2i.config import ConfigError, TrainConfig
from pyi2i.registry import METHODS
from pyi2i.test import main as run_test_command
from pyi2i.train import main as train_main

# Small networks and images, so that the original's command lines run in seconds.
SMALL = ["--ngf", "4", "--ndf", "4", "--n_epochs", "1", "--n_epochs_decay", "0", "--num_threads", "0",
         "--no_progress", "--eval_freq", "0", "--no_tensorboard"]


def cyclegan_run(demo_root, tmp_path, *extra):
    # python train.py --dataroot ./datasets/maps --name maps_cyclegan --model cycle_gan
    train_main(["--dataroot", str(demo_root / "unpaired"), "--name", "maps_cyclegan", "--model", "cycle_gan",
                "--checkpoints_dir", str(tmp_path / "checkpoints"), "--netG", "resnet_6blocks", "--load_size", "36",
                "--crop_size", "32", *SMALL, *extra])
    return tmp_path / "checkpoints" / "maps_cyclegan"


def test_the_original_cyclegan_train_and_test_commands(demo_root, tmp_path, caplog):
    run = cyclegan_run(demo_root, tmp_path, "--display_id", "-1")
    assert (run / "latest_net_G_A.pth").is_file() and (run / "latest_net_D_B.pth").is_file()
    assert "--display_id -1: pyi2i has no visdom display" in caplog.text
    opt = (run / "train_opt.txt").read_text()
    assert "model: cycle_gan" not in opt and "arch: cyclegan" in opt and "display_id: -1" in opt
    assert "pool_size: 50" in opt and "no_dropout: True" in opt  # the method's defaults, resolved

    # python test.py --dataroot ./datasets/maps --name maps_cyclegan --model cycle_gan
    with caplog.at_level(logging.INFO, logger="pyi2i"):
        run_test_command(["--dataroot", str(demo_root / "unpaired"), "--name", "maps_cyclegan", "--model", "cycle_gan",
                   "--checkpoints_dir", str(tmp_path / "checkpoints"), "--results_dir", str(tmp_path / "results"),
                   "--crop_size", "32", "--num_test", "3"])
    folder = tmp_path / "results" / "maps_cyclegan" / "test_latest"
    stems = sorted(p.stem for p in (demo_root / "unpaired" / "testA").iterdir())[:3]
    labels = ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B")
    assert sorted(p.name for p in (folder / "images").iterdir()) == sorted(f"{s}_{k}.png" for s in stems
                                                                         for k in labels)
    page = (folder / "index.html").read_text()
    assert "Experiment = maps_cyclegan, Phase = test, Epoch = latest" in page and f"images/{stems[0]}_rec_B.png" in page
    assert "tested the first 3 images (--num_test 3): 1 more" in caplog.text
    real = np.asarray(Image.open(folder / "images" / f"{stems[0]}_real_A.png"))
    source = np.asarray(Image.open(demo_root / "unpaired" / "testA" / f"{stems[0]}.png").convert("RGB"))
    assert real.shape == (32, 32, 3) and np.abs(real.astype(int) - source.astype(int)).max() <= 1  # resized, not cropped


def test_the_original_pix2pix_commands_with_their_defaults(demo_root, tmp_path):
    # python train.py --dataroot ./datasets/facades --name facades_pix2pix --model pix2pix --direction BtoA
    argv = ["--dataroot", str(demo_root / "paired"), "--name", "facades_pix2pix", "--model", "pix2pix",
            "--direction", "BtoA", "--checkpoints_dir", str(tmp_path / "checkpoints")]
    config = TrainConfig.from_args(argv + ["--netG", "unet_128", "--load_size", "128", "--crop_size", "128",
                                           *SMALL]).resolve()
    assert (config.model.norm, config.loss.gan_mode, config.data.dataset_mode, config.loss.pool_size) == \
        ("batch", "vanilla", "aligned", 0)
    train_main(argv + ["--netG", "unet_128", "--load_size", "128", "--crop_size", "128", "--max_steps", "2", *SMALL])
    # python test.py --dataroot ./datasets/facades --name facades_pix2pix --model pix2pix --direction BtoA
    run_test_command(["--dataroot", str(demo_root / "paired"), "--name", "facades_pix2pix", "--model", "pix2pix",
               "--direction", "BtoA", "--checkpoints_dir", str(tmp_path / "checkpoints"),
               "--results_dir", str(tmp_path / "results"), "--crop_size", "128", "--eval"])
    images = sorted(p.name for p in (tmp_path / "results" / "facades_pix2pix" / "test_latest" / "images").iterdir())
    assert len(images) == 3 * 4 and images[:3] == ["0000_fake_B.png", "0000_real_A.png", "0000_real_B.png"]


def test_model_test_runs_one_generator_on_one_folder(demo_root, tmp_path):
    run = cyclegan_run(demo_root, tmp_path, "--max_steps", "1")
    pretrained = tmp_path / "checkpoints" / "horse2zebra_pretrained"
    pretrained.mkdir()
    (pretrained / "latest_net_G.pth").write_bytes((run / "latest_net_G_A.pth").read_bytes())
    # python test.py --dataroot datasets/horse2zebra/testA --name horse2zebra_pretrained --model test --no_dropout
    run_test_command(["--dataroot", str(demo_root / "unpaired" / "testA"), "--name", "horse2zebra_pretrained",
               "--model", "test", "--no_dropout", "--checkpoints_dir", str(tmp_path / "checkpoints"),
               "--results_dir", str(tmp_path / "results"), "--crop_size", "32", "--aspect_ratio", "2"])
    images = tmp_path / "results" / "horse2zebra_pretrained" / "test_latest" / "images"
    assert sorted(p.name for p in images.iterdir())[:2] == ["0000_fake.png", "0000_real.png"]
    assert Image.open(images / "0000_fake.png").size == (64, 32)  # --aspect_ratio 2 widens
    with pytest.raises(checkpoints.MissingCheckpoint, match="latest_net_G_C.pth not found.*has latest_net_G_A.pth"):
        run_test_command(["--dataroot", str(demo_root / "unpaired" / "testA"), "--name", "maps_cyclegan",
                          "--model", "test", "--model_suffix", "_C", "--checkpoints_dir", str(tmp_path / "checkpoints")])


def test_fine_tuning_from_the_original_weight_files(demo_root, tmp_path, caplog):
    run = cyclegan_run(demo_root, tmp_path, "--max_steps", "2")
    for path in list(run.glob("*.pt")) + list(run.glob("*.pt.sha256")):  # what the original leaves: weights only
        path.unlink()
    weights = {name: torch.load(run / f"latest_net_{name}.pth") for name in ("G_A", "G_B", "D_A", "D_B")}
    with caplog.at_level(logging.INFO, logger="pyi2i"):
        cyclegan_run(demo_root, tmp_path, "--continue_train", "--lr", "0", "--max_steps", "2")
    assert "fine-tuning from the original release's weights latest_net_G_A.pth" in caplog.text
    assert "optimizers, schedules and image pools start fresh" in caplog.text
    for name, state in weights.items():  # lr 0: the weights trained on are the loaded ones
        after = torch.load(run / f"latest_net_{name}.pth")
        assert all(torch.equal(after[k], v) for k, v in state.items()), name


def test_epoch_and_load_iter_choose_the_weights_to_resume(demo_root, tmp_path, caplog):
    run = cyclegan_run(demo_root, tmp_path, "--save_latest_freq", "2", "--save_by_iter")
    assert (run / "iter_4.pt").is_file() and (run / "iter_4_net_G_A.pth").is_file()
    with caplog.at_level(logging.INFO, logger="pyi2i"):
        cyclegan_run(demo_root, tmp_path, "--continue_train", "--load_iter", "4", "--n_epochs", "2", "--max_steps", "5")
    assert f"resumed {run / 'iter_4.pt'} at epoch 1, step 4" in caplog.text


def test_original_option_spellings(tmp_path):
    config = TrainConfig.from_args(["--model", "cycle_gan", "--norm", "sync_batch", "--suffix", "{netG}_{load_size}",
                                    "--dataroot", str(tmp_path / "maps"), "--name", "maps"]).resolve()
    assert config.model.arch == "cyclegan" and config.model.norm == "syncbatch"
    assert config.run.name == "maps_resnet_9blocks_286"
    assert TrainConfig.from_args(["--norm", "sync_instance"]).model.norm == "instance"
    with pytest.raises(ConfigError, match="'nosuch' is not an option"):
        TrainConfig(run=TrainConfig().run.__class__(suffix="{nosuch}")).resolve()


def test_options_the_original_has_are_all_accepted():
    names = """dataroot name gpu_ids checkpoints_dir model input_nc output_nc ngf ndf netD netG n_layers_D norm
    init_type init_gain no_dropout dataset_mode direction serial_batches num_threads batch_size load_size crop_size
    max_dataset_size preprocess no_flip display_winsize epoch load_iter verbose suffix display_freq display_ncols
    display_id display_server display_env display_port update_html_freq print_freq no_html save_latest_freq
    save_epoch_freq save_by_iter continue_train epoch_count phase n_epochs n_epochs_decay beta1 lr gan_mode pool_size
    lr_policy lr_decay_iters lambda_A lambda_B lambda_identity lambda_L1""".split()
    from pyi2i.options import test_parser, training_parser

    train_flags = {o for a in training_parser()._actions for o in a.option_strings}
    assert not [n for n in names if f"--{n}" not in train_flags]
    test_flags = {o for a in test_parser()._actions for o in a.option_strings}
    test_names = "results_dir aspect_ratio phase eval num_test model model_suffix dataroot name epoch".split()
    assert not [n for n in test_names if f"--{n}" not in test_flags]


EXAMPLES = Path(__file__).parent.parent / "examples"


def test_a_plugin_method_and_dataset_with_their_own_options(demo_root, tmp_path, monkeypatch, caplog):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # the documented template, as a user would use it
    argv = ["--plugin", "template_plugin", "--model", "l2pix2pix", "--lambda_L2", "3", "--dataroot", str(demo_root / "paired"),
            "--checkpoints_dir", str(tmp_path / "runs"), "--netG", "unet_128", "--load_size", "128", "--crop_size",
            "128", "--max_steps", "2", *SMALL]
    config = TrainConfig.from_args(argv).resolve()
    assert config.method.lambda_L2 == 3.0 and config.data.dataset_mode == "flipped"
    train_main(argv)
    plugin = sys.modules["template_plugin"]
    assert plugin.L2Pix2Pix.seen[:1] == [3.0]
    saved = (tmp_path / "runs" / "paired_l2pix2pix" / "config.toml").read_text()
    assert "[method]\nlambda_L2 = 3.0" in saved
    # resumed from its saved configuration, with one of the method's own options changed
    with caplog.at_level(logging.INFO, logger="pyi2i"):
        train_main(["--plugin", "template_plugin", "--name", "paired_l2pix2pix", "--checkpoints_dir",
                    str(tmp_path / "runs"), "--continue_train", "--lambda_L2", "5", "--max_steps", "3"])
    assert "--lambda_L2 3.0 -> 5.0" in caplog.text and plugin.L2Pix2Pix.seen[-1] == 5.0
    with pytest.raises(ConfigError, match="takes no options of its own"):
        TrainConfig.from_dict({"model": {"arch": "pix2pix"}, "method": {"lambda_L2": 1.0}})
    with pytest.raises(SystemExit):  # an option of another method
        TrainConfig.from_args(["--model", "pix2pix", "--plugin", "template_plugin", "--lambda_L2", "1"])
    assert "l2pix2pix" in METHODS.names()


def test_entry_points_register_installed_plugins(tmp_path, monkeypatch):
    from importlib.metadata import EntryPoint

    from pyi2i import registry

    (tmp_path / "ep_plugin.py").write_text("from pyi2i.engine.cyclegan import CycleGAN\n\n"
                                           "class Mine(CycleGAN):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    points = {"pyi2i.methods": [EntryPoint("mine", "ep_plugin:Mine", "pyi2i.methods")]}
    monkeypatch.setattr(registry, "entry_points", lambda group: points.get(group, []))
    fresh = registry.Registry("method", "--model", "pyi2i.methods", ("pyi2i.engine.methods",))
    assert "mine" in fresh.names() and fresh.get("mine").__name__ == "Mine"
    with pytest.raises(registry.UnknownName, match="'nosuch' is not a known method: choose one of mine"):
        fresh.get("nosuch")


def test_installed_commands_report_bad_usage_as_the_original(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pyi2i.test", "--name", "x"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "--dataroot is required" in r.stderr
    r = subprocess.run([sys.executable, "-m", "pyi2i.test", "--dataroot", str(tmp_path), "--name", "nothing",
                        "--checkpoints_dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "latest_net_G.pth not found" in r.stderr and "Traceback" not in r.stderr


def test_a_colorization_run_and_its_test_outputs(demo_root, tmp_path):
    # the colour renderings of the demo data as photographs: its trainB/ and testB/ folders
    checkpoints_dir, data = str(tmp_path / "checkpoints"), str(demo_root / "unpaired")
    argv = ["--model", "colorization", "--dataroot", data, "--phase", "trainB", "--name", "colour",
            "--checkpoints_dir", checkpoints_dir, "--netG", "unet_128", "--load_size", "128", "--crop_size", "128",
            *SMALL]
    config = TrainConfig.from_args(argv).resolve()
    assert (config.model.input_nc, config.model.output_nc, config.data.dataset_mode) == (1, 2, "colorization")
    train_main(argv)
    run = tmp_path / "checkpoints" / "colour"
    grid = np.asarray(Image.open(run / "samples" / "epoch_001.png"))
    assert grid.ndim == 3 and grid.shape[-1] == 3  # RGB samples, not L and ab
    run_test_command(["--model", "colorization", "--dataroot", data, "--phase", "testB", "--name", "colour",
                      "--checkpoints_dir", checkpoints_dir, "--results_dir", str(tmp_path / "results"),
                      "--crop_size", "128", "--num_test", "2"])
    images = tmp_path / "results" / "colour" / "testB_latest" / "images"
    assert sorted(p.name for p in images.iterdir()) == sorted(f"{s}_{k}.png" for s in ("0000", "0001")
                                                              for k in ("real_A", "real_B_rgb", "fake_B_rgb"))
    true_colour = np.asarray(Image.open(images / "0000_real_B_rgb.png").convert("RGB"), dtype=int)
    source = np.asarray(Image.open(demo_root / "unpaired" / "testB" / "0000.png").convert("RGB")
                        .resize((128, 128), Image.BICUBIC), dtype=int)
    assert np.abs(true_colour - source).mean() < 2  # L and ab of the test image give its colours back


def test_test_reads_a_pyi2i_checkpoint_where_the_weight_files_are_missing(demo_root, tmp_path):
    run = cyclegan_run(demo_root, tmp_path, "--max_steps", "1")

    def fake_B(results):
        run_test_command(["--dataroot", str(demo_root / "unpaired"), "--name", "maps_cyclegan", "--model", "cycle_gan",
                          "--checkpoints_dir", str(tmp_path / "checkpoints"), "--results_dir", str(results),
                          "--crop_size", "32", "--num_test", "1"])
        return np.asarray(Image.open(results / "maps_cyclegan" / "test_latest" / "images" / "0000_fake_B.png"))

    from_files = fake_B(tmp_path / "a")
    for path in run.glob("*_net_*"):
        path.unlink()
    assert np.array_equal(fake_B(tmp_path / "b"), from_files)  # the files are exports of latest.pt's networks
