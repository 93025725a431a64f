import io
import math
import random

import pytest
import torch

from pyi2i.engine.pool import DevicePool, HostPool, make_pool

POOLS = [HostPool, DevicePool]


def images(n, start=0):
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 2, 2).clone()


def stored_values(pool):
    return set(pool.stored()[:, 0, 0, 0].tolist())


def test_the_method_chooses_the_device_pool_only_for_graphs():
    assert isinstance(make_pool(3, on_device=True), DevicePool)
    assert isinstance(make_pool(3, on_device=False), HostPool)


@pytest.mark.parametrize("Pool", POOLS)
def test_size_zero_passes_through(Pool):
    x = images(3)
    assert torch.equal(Pool(0).query(x), x)


@pytest.mark.parametrize("Pool", POOLS)
def test_fills_first_then_swaps_half_of_the_time(Pool):
    pool = Pool(4)
    assert torch.equal(pool.query(images(3)), images(3))  # filling: every image returned as is
    assert torch.equal(pool.query(images(1, start=3)), images(1, start=3))
    assert len(pool.stored()) == 4 and stored_values(pool) == {0, 1, 2, 3}
    returned_old = 0
    for step in range(200):
        new = images(1, start=100 + step)
        before = stored_values(pool)
        out = pool.query(new)
        after = stored_values(pool)
        if torch.equal(out, new):
            assert after == before  # the new image was not stored
        else:
            returned_old += 1
            old = out[0, 0, 0, 0].item()
            assert old in before and after == before - {old} | {100 + step}  # swapped in its place
    assert 70 < returned_old < 130  # probability 0.5
    assert len(pool.stored()) == 4


@pytest.mark.parametrize("Pool", POOLS)
def test_state_round_trip_reproduces_the_choices(Pool):
    """The state (through a checkpoint file) plus torch's generator, which checkpoints keep, make the
    next choices; the host pool's state carries Python's generator itself."""
    pool = Pool(3)
    for i in range(5):
        pool.query(images(2, start=10 * i))
    buffer = io.BytesIO()
    torch.save(pool.state_dict(), buffer)
    rng = torch.get_rng_state()
    first = [pool.query(images(2, start=1000 + i)) for i in range(10)]
    random.seed(1)  # another draw of Python's generator in between: the host pool's state must undo it
    torch.set_rng_state(rng)
    clone = Pool(3)
    clone.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    assert all(torch.equal(a, clone.query(images(2, start=1000 + i))) for i, a in enumerate(first))


@pytest.mark.parametrize("Pool", POOLS)
def test_partially_filled_state_round_trip(Pool):
    pool = Pool(5)
    pool.query(images(2))
    clone = Pool(5)
    clone.load_state_dict(pool.state_dict())
    assert torch.equal(clone.stored(), pool.stored()) and len(clone.stored()) == 2


def test_the_device_pool_swaps_half_of_the_time_with_a_uniform_index():
    """The device pool's draws against the original's distribution: swap with probability 1/2, the
    returned slot uniform. M = 40,000 queries of a full pool of 2 slots. Each count (swaps out of M;
    slot 0's share of the swaps) is tested two-sided at 4 standard deviations: false-alarm rate
    6.3e-5 per count, 1.3e-4 in all. A bias of 5% (a swap rate of 0.525, a slot chosen with
    probability 0.525) moves its count by 10 resp. 7 standard deviations: caught with power > 0.999."""
    m, size = 40_000, 2
    pool = DevicePool(size)
    pool.query(torch.arange(size, dtype=torch.float32).view(size, 1, 1, 1))
    new = torch.arange(size, size + m, dtype=torch.float32).view(m, 1, 1, 1)
    out = pool.query(new).flatten().tolist()
    slots = list(range(size))  # which image each slot holds, replayed from the outputs
    chosen = []
    for j, value in enumerate(out):
        if value != size + j:
            chosen.append(slots.index(value))
            slots[chosen[-1]] = size + j
    assert slots == pool.stored().flatten().tolist()

    def z(count, n, p):
        return (count - n * p) / math.sqrt(n * p * (1 - p))

    assert abs(z(len(chosen), m, 0.5)) < 4, f"swap rate {len(chosen) / m}"
    assert abs(z(chosen.count(0), len(chosen), 1 / size)) < 4, f"slot 0 chosen in {chosen.count(0) / len(chosen)}"
