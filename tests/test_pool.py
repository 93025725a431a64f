import torch

from pyi2i.engine.pool import ImagePool


def images(n, start=0):
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 2, 2).clone()


def test_size_zero_passes_through():
    x = images(3)
    assert torch.equal(ImagePool(0).query(x), x)


def test_fills_first_then_swaps_half_of_the_time():
    pool = ImagePool(4, seed=1)
    assert torch.equal(pool.query(images(4)), images(4))  # filling: every image returned as is
    returned_old = 0
    for step in range(200):
        new = images(1, start=100 + step)
        out = pool.query(new)
        if not torch.equal(out, new):
            returned_old += 1
            assert out[0, 0, 0, 0].item() < 100 + step  # an image stored earlier
    assert 70 < returned_old < 130  # probability 0.5
    stored = set(pool.buffer[:, 0, 0, 0].tolist())
    assert len(stored) == 4


def test_state_round_trip_reproduces_the_choices():
    pool = ImagePool(3, seed=5)
    for i in range(5):
        pool.query(images(2, start=10 * i))
    clone = ImagePool(3, seed=0)
    clone.load_state_dict(pool.state_dict())
    for i in range(10):
        x = images(2, start=1000 + i)
        assert torch.equal(pool.query(x), clone.query(x))
