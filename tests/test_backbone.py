"""The shared backbone: whole-model step mode equals parallel mode; heads; dropout tying."""

import pytest
import torch

import zoo
from zoo.nn import DropoutNd


@pytest.mark.parametrize("prenorm,norm", [(False, "batch"), (True, "layer"), (False, "none")])
@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_s4d_model_step_mode_equals_parallel(prenorm, norm, pooling):
    torch.manual_seed(0)
    model = zoo.create("s4d", d_model=8, d_state=8, n_layers=2, prenorm=prenorm, norm=norm,
                       pooling=pooling, d_input=3).double()
    model.train()
    model(torch.randn(4, 50, 3, dtype=torch.float64))  # non-trivial BatchNorm running statistics
    model.eval()
    x = torch.randn(2, 50, 3, dtype=torch.float64)
    full = model(x)
    state = model.init_state(2, dtype=torch.float64)
    for t in range(50):
        out, state = model.step(x[:, t], state)
    assert torch.allclose(out, full, atol=1e-10)


def test_lm_step_logits_equal_parallel_logits_and_are_causal():
    torch.manual_seed(1)
    model = zoo.create("s4d", d_model=8, d_state=8, n_layers=2, task="lm", vocab_size=11, norm="layer",
                       prenorm=True).double().eval()
    x = torch.randint(0, 11, (2, 30))
    logits = model(x)
    assert logits.shape == (2, 30, 11)
    state = model.init_state(2, dtype=torch.float64)
    for t in range(30):
        out, state = model.step(x[:, t], state)
        assert torch.allclose(out, logits[:, t], atol=1e-10)
    x2 = x.clone()
    x2[:, 20:] = (x2[:, 20:] + 1) % 11
    assert torch.allclose(model(x2)[:, :20], logits[:, :20], atol=1e-12)


def test_bidirectional_model_refuses_step_mode():
    model = zoo.create("s4d", d_model=8, n_layers=1, bidirectional=True)
    with pytest.raises(RuntimeError, match="bidirectional"):
        model.init_state(1)


def test_retrieval_head_reads_two_documents():
    model = zoo.create("s4d", d_model=8, n_layers=1, task="retrieval", vocab_size=20, n_classes=2, seq_len=16)
    x = model.example_input(3)
    assert x.shape == (3, 2, 16) and model(x).shape == (3, 2)
    swapped = model(x.flip(1))  # [u, v, u*v, u-v] is not symmetric: the order of documents matters
    assert not torch.allclose(swapped, model(x))
    with pytest.raises(ValueError, match=r"\(batch, 2, length\)"):
        model(torch.zeros(3, 16, dtype=torch.long))


def test_tied_dropout_shares_the_mask_over_time():
    torch.manual_seed(2)
    drop = DropoutNd(0.5, tie=True).train()
    y = drop(torch.ones(4, 16, 100))
    kept = y[..., 0] != 0
    assert torch.equal(y != 0, kept.unsqueeze(-1).expand_as(y))
    assert set(y.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(drop.eval()(torch.ones(2, 3, 4)), torch.ones(2, 3, 4))
