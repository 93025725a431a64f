"""--cuda-graphs, the device prefetcher and --profile. The graph tests need a GPU and skip without one."""

import contextlib
import copy

import pytest
import torch

from conftest import training_options
from pyi2i.data import create_loader
from pyi2i.engine.batches import training_dataset
from pyi2i.engine.graphs import CudaGraph, CudaGraphStep, check_graphable, prefetch_to_device
from pyi2i.engine.methods import build_method
from pyi2i.engine.trainer import train

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device; none here")


def batches(opt, n):
    loader = create_loader(training_dataset(opt), batch_size=opt.data.batch_size, shuffle=True, num_workers=0, seed=0,
                           epoch=1)
    return [b for _, b in zip(range(n), loader)]


def test_graphs_are_refused_where_they_cannot_work(demo_root):
    opt = training_options(demo_root / "unpaired", cuda_graphs=True, amp="fp16")
    method = build_method(opt, torch.device("cpu"))
    assert "gradient scaler" in check_graphable(method)
    with pytest.raises(ValueError, match="--cuda-graphs: --amp fp16 needs a gradient scaler"):
        CudaGraphStep(method)


def copy_losses(losses):
    return {k: v.clone() for k, v in losses.items()}  # a replay overwrites the static outputs


@pytest.mark.parametrize("arch", ["cyclegan", "pix2pix"])
def test_graph_shaped_step_equals_eager_steps_on_the_cpu(demo_root, arch):
    """The function a GPU captures (static inputs, the device pool's swaps, the optimizers, the
    random draws), replayed through the graph's bookkeeping, equals plain eager steps bit for bit."""
    data = demo_root / ("unpaired" if arch == "cyclegan" else "paired")
    extra = dict(netG="resnet_6blocks", load_size=36, crop_size=32) if arch == "pix2pix" else {}
    opt = training_options(data, arch, cuda_graphs=True, pool_size=2, **extra)  # the pool swaps from step 3
    eager = build_method(opt, torch.device("cpu"))
    graphed = build_method(opt, torch.device("cpu"))
    graphed.load_state_dict(copy.deepcopy(eager.state_dict()))
    step = CudaGraphStep(graphed, warmup=2)
    data = batches(opt, 6)
    rng = torch.get_rng_state()
    eager_losses = [copy_losses(eager.step(b)) for b in data]
    torch.set_rng_state(rng)
    graphed_losses = [copy_losses(step(b)) for b in data]
    assert len(step.graphs) == 1 and step.graphs[next(iter(step.graphs))].inputs  # replayed on static inputs
    assert all(torch.equal(torch.stack(list(a.values())), torch.stack(list(b.values())))
               for a, b in zip(eager_losses, graphed_losses, strict=True))
    for name, net in eager.nets.items():
        for (key, a), b in zip(net.state_dict().items(), graphed.nets[name].state_dict().values()):
            assert torch.equal(a, b), f"{name}.{key}"
    for name, pool in eager.pools().items():
        assert torch.equal(pool.stored(), graphed.pools()[name].stored())
    assert all(torch.equal(eager.visuals[k], graphed.visuals[k]) for k in eager.visuals if eager.visuals[k] is not None)


def test_capture_lets_other_threads_use_cuda(monkeypatch):
    """The DALI, TensorBoard and pin-memory threads may call CUDA while the step is captured."""
    seen = {}

    class FakeGraph:
        def pool(self):
            return "pool"

        def replay(self):
            pass

    @contextlib.contextmanager
    def graph(cuda_graph, **kwargs):
        seen.update(kwargs)
        yield

    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", graph)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    replay, outputs = CudaGraph(torch.device("cuda")).capture(lambda: {"losses": {}})
    assert seen == {"pool": None, "capture_error_mode": "thread_local"} and outputs == {"losses": {}}


def test_prefetch_on_the_cpu_passes_batches_through(demo_root):
    opt = training_options(demo_root / "unpaired")
    data = batches(opt, 3)
    assert list(prefetch_to_device(iter(data), torch.device("cpu"))) == data


def test_profile_writes_a_trace_and_stops(demo_root, tmp_path):
    opt = training_options(demo_root / "unpaired", checkpoints_dir=tmp_path, profile=tmp_path / "prof")
    trainer = train(opt)
    assert trainer.step == 7  # 2 warm-up + 5 profiled steps
    assert (tmp_path / "prof" / "summary.txt").read_text().count("aten::") > 5
    assert list((tmp_path / "prof").glob("trace_step*.json"))


@needs_cuda
@pytest.mark.parametrize("arch", ["cyclegan", "pix2pix"])
@pytest.mark.parametrize("amp", [None, "bf16"])
def test_graph_replay_equals_eager_steps(demo_root, arch, amp):
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    data = demo_root / ("unpaired" if arch == "cyclegan" else "paired")
    opt = training_options(data, arch, cuda_graphs=True, amp=amp, pool_size=2)
    torch.manual_seed(0)
    eager = build_method(opt, torch.device("cuda"))
    graphed = build_method(opt, torch.device("cuda"))
    graphed.load_state_dict(copy.deepcopy(eager.state_dict()))
    step = CudaGraphStep(graphed, warmup=2)
    rng = torch.cuda.get_rng_state()
    for batch in batches(opt, 6):
        eager.step(batch)
    torch.cuda.set_rng_state(rng)
    for batch in batches(opt, 6):
        losses = step(batch)
    assert len(step.graphs) == 1 and all(torch.isfinite(v) for v in losses.values())
    for name, net in eager.nets.items():
        for (key, a), b in zip(net.state_dict().items(), graphed.nets[name].state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"{name}.{key}")


@needs_cuda
def test_bf16_graphs_track_the_fp32_reference_losses(demo_root):
    """100 steps of the fast configuration against fp32 eager: bf16 keeps 8 bits of mantissa, so single
    steps differ by ~1e-2 relative; over training the two runs stay close in mean loss."""
    opt32 = training_options(demo_root / "unpaired", impl="ref")
    fast = training_options(demo_root / "unpaired", cuda_graphs=True, amp="bf16", channels_last=True)
    data = batches(training_options(demo_root / "unpaired", max_dataset_size=8), 8) * 13
    means = []
    for opt, wrap in ((opt32, lambda m: m.step), (fast, CudaGraphStep)):
        torch.manual_seed(0)
        method = build_method(opt, torch.device("cuda"))
        run = wrap(method)
        history = [{k: v.item() for k, v in run(b).items()} for b in data[:100]]
        means.append({k: sum(h[k] for h in history[-20:]) / 20 for k in history[0]})
    for key in ("cycle_A", "cycle_B", "idt_A", "idt_B"):
        assert abs(means[0][key] - means[1][key]) < 0.15 * means[0][key] + 0.02, key
