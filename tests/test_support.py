import pytest
import torch

from muzero.nn.support import Support, h, h_inverse


def test_transform_round_trip():
    x = torch.linspace(-1000, 1000, 20001, dtype=torch.float64)
    assert torch.allclose(h_inverse(h(x)), x, rtol=1e-6, atol=1e-6)


def test_transform_known_values():
    # h(3) = sqrt(4) - 1 + 0.003 = 1.003
    assert h(torch.tensor(3.0)).item() == pytest.approx(1.003)
    assert h(torch.tensor(-3.0)).item() == pytest.approx(-1.003)
    assert h(torch.tensor(0.0)).item() == 0.0


def test_two_hot_puts_mass_on_neighbouring_bins():
    support = Support(5)
    # h(3) = 1.003: bin for 1 gets 0.997, bin for 2 gets 0.003
    probs = support.scalar_to_probs(torch.tensor([3.0]))[0]
    assert probs[5 + 1].item() == pytest.approx(0.997, abs=1e-5)
    assert probs[5 + 2].item() == pytest.approx(0.003, abs=1e-5)
    assert probs.sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("half_width", [1, 10, 300])
def test_support_round_trip(half_width):
    support = Support(half_width)
    limit = h_inverse(torch.tensor(float(half_width))).item()
    x = torch.linspace(-limit, limit, 101)
    assert torch.allclose(support.probs_to_scalar(support.scalar_to_probs(x)), x, rtol=1e-3, atol=1e-3)


def test_out_of_range_scalars_clip_to_the_edge():
    support = Support(2)
    probs = support.scalar_to_probs(torch.tensor([1e6, -1e6]))
    assert probs[0, -1] == 1.0 and probs[1, 0] == 1.0


def test_bad_half_width():
    with pytest.raises(ValueError, match="half_width"):
        Support(0)
