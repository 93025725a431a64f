import torch

from pyi2i.engine.pool import ImagePool


def images(n, start=0):
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 2, 2).clone()


def test_size_zero_passes_through():
    x = images(3)
    assert torch.equal(ImagePool(0).query(x), x)


def test_fills_first_then_swaps_half_of_the_time():
    pool = ImagePool(4)
    assert torch.equal(pool.query(images(3)), images(3))  # filling: every image returned as is
    assert torch.equal(pool.query(images(2, start=3)), images(2, start=3))
    assert int(pool.count) == 4 and set(pool.buffer[:, 0, 0, 0].tolist()) == {0, 1, 2, 3}
    returned_old = 0
    for step in range(200):
        new = images(1, start=100 + step)
        before = set(pool.buffer[:, 0, 0, 0].tolist())
        out = pool.query(new)
        after = set(pool.buffer[:, 0, 0, 0].tolist())
        if torch.equal(out, new):
            assert after == before  # the new image was not stored
        else:
            returned_old += 1
            old = out[0, 0, 0, 0].item()
            assert old in before and after == before - {old} | {100 + step}  # swapped in its place
    assert 70 < returned_old < 130  # probability 0.5
    assert int(pool.count) == 4


def test_state_round_trip_reproduces_the_choices():
    pool = ImagePool(3)
    for i in range(5):
        pool.query(images(2, start=10 * i))
    clone = ImagePool(3)
    clone.load_state_dict(pool.state_dict())
    rng = torch.get_rng_state()
    first = [pool.query(images(2, start=1000 + i)) for i in range(10)]
    torch.set_rng_state(rng)
    assert all(torch.equal(a, clone.query(images(2, start=1000 + i))) for i, a in enumerate(first))


def test_partially_filled_state_round_trip():
    pool = ImagePool(5)
    pool.query(images(2))
    clone = ImagePool(5)
    clone.load_state_dict(pool.state_dict())
    assert int(clone.count) == 2 and torch.equal(clone.buffer[:2], pool.buffer[:2])
