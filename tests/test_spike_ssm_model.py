"""SPikE-SSM block and model: step mode, gradients, paper entries, the WikiText-103 language model,
generation and the tokenizer that ships with the weights."""

import pytest
import torch

import zoo
from zoo.data.wikitext103 import WordTokenizer
from zoo.hub import WeightsUnavailableError
from zoo_spike_ssm import SpikeSSM
from zoo_spike_ssm.model import LRA_SETTINGS

F64 = torch.float64


def tiny_lm(vocab: int = 50, **overrides) -> SpikeSSM:
    config = dict(vocab_size=vocab, adaptive_cutoffs=[10, 25], adaptive_div_val=2, d_model=16, d_state=8,
                  n_layers=2, seq_len=32, embed_dropout=0.0, softmax_dropout=0.0, dropout=0.0)
    return zoo.create("spike-ssm-wikitext103", **{**config, **overrides})


@pytest.mark.parametrize("prenorm,norm", [(False, "batch"), (True, "layer")])
def test_classifier_step_mode_equals_parallel(prenorm, norm):
    torch.manual_seed(0)
    model = zoo.create("spike_ssm", d_model=8, d_state=8, n_layers=2, d_input=2, prenorm=prenorm,
                       norm=norm, tau=0.5).double()
    model(torch.randn(4, 40, 2, dtype=F64))  # training mode: non-trivial BatchNorm statistics
    model.eval()
    x = torch.randn(3, 40, 2, dtype=F64)
    full = model(x)
    state = model.init_state(3, dtype=F64)
    for t in range(40):
        out, state = model.step(x[:, t], state)
    assert torch.allclose(out, full, atol=1e-10)


def test_bidirectional_model_refuses_step_mode_and_runs_in_parallel():
    model = zoo.create("spike_ssm", d_model=8, n_layers=1, bidirectional=True)
    assert model(torch.randn(2, 30, 1)).shape == (2, 10)
    with pytest.raises(RuntimeError, match="bidirectional"):
        model.init_state(1)


def test_gradients_reach_threshold_refractory_and_ssm_parameters():
    torch.manual_seed(1)
    model = zoo.create("spike_ssm", d_model=8, d_state=8, n_layers=2, d_input=1, n_classes=3)
    x = torch.randn(4, 64, 1)
    torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 0])).backward()
    for name, p in model.named_parameters():
        if name.startswith("blocks.0.layer.") and p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    names = {n.split("blocks.0.layer.")[1] for n, _ in model.named_parameters() if n.startswith("blocks.0.layer.")}
    assert {"neuron.log_threshold", "neuron.alpha_raw", "ssm.kernel.log_dt", "ssm.kernel.log_A_real",
            "ssm.kernel.A_imag", "ssm.kernel.C", "ssm.D"} <= names


def test_modes_give_the_same_model_output_and_capped_reports():
    torch.manual_seed(2)
    model = zoo.create("spike_ssm", d_model=8, d_state=8, n_layers=2, d_input=1, tau=0.5).double().eval()
    x = torch.randn(2, 100, 1, dtype=F64)
    outputs = {}
    for mode in ("sequential", "pmbc"):
        for block in model.blocks:
            block.layer.neuron.mode = mode
        outputs[mode] = model(x)
    assert torch.allclose(outputs["sequential"], outputs["pmbc"], atol=1e-12)
    capped = zoo.create("spike_ssm", d_model=8, d_state=8, n_layers=1, neuron_mode="capped", max_passes=1)
    capped(torch.randn(2, 100, 1))
    neuron = capped.blocks[0].layer.neuron
    assert neuron.last_passes == 1 and neuron.last_undecided_fraction > 0


@pytest.mark.parametrize("key", sorted(LRA_SETTINGS))
def test_lra_entries_build_and_run_at_reduced_length(key):
    info = zoo.info(f"spike-ssm-{key}")
    assert info["reported"]["lra_average_accuracy"] == 84.18 and "[S" in info["notes"]
    model = zoo.create(f"spike-ssm-{key}", seq_len=24, n_layers=1).eval()
    x = model.example_input(2)
    out = model(x)
    assert out.shape == (2, model.config.n_classes) and torch.isfinite(out).all()
    with pytest.raises(WeightsUnavailableError):
        zoo.load(f"spike-ssm-{key}")


def test_lra_parameter_counts_match_the_spec():
    """Spec 5.3 (derived): ListOps 0.83M, Text 0.86M, Retrieval 1.38M, Image 3.76M, Pathfinder 1.09M
    (Path-X's 1.19M includes a trainable B that zoo.nn's kernel absorbs into C)."""
    expected = {"listops": 0.83e6, "text": 0.86e6, "retrieval": 1.38e6, "image": 3.76e6, "pathfinder": 1.09e6}
    for key, count in expected.items():
        assert abs(zoo.info(f"spike-ssm-{key}")["parameters"] - count) < 0.01e6, key


def test_wikitext103_entry_has_the_paper_configuration_and_no_weights():
    info = zoo.info("spike-ssm-wikitext103")
    config = info["config"]
    assert (config["n_layers"], config["d_model"], config["d_state"], config["seq_len"], config["vocab_size"]) \
        == (16, 1024, 64, 8192, 267_735)
    assert config["adaptive_cutoffs"] == [19997, 39997, 199997] and config["adaptive_div_val"] == 4
    assert 72.5e6 < info["parameters"] < 74e6  # counted on the meta device; spec 5.3: about 73M
    assert info["weights"] == "none" and info["reported"] == {"test_perplexity": 33.2, "firing_rate": 24.5}
    with pytest.raises(WeightsUnavailableError, match="zoo train spike-ssm-wikitext103"):
        zoo.load("spike-ssm-wikitext103")


def test_paper_lm_parameter_count_by_hand():
    """The adaptive embeddings of the paper vocabulary: bands of 19997 x 1024, 20000 x 256,
    160000 x 64 and 67738 x 16, projections 1024 x (256 + 64 + 16), tied with the softmax."""
    with torch.device("meta"):
        model = zoo.create("spike-ssm-wikitext103")
    embedding = sum(p.numel() for p in model.encoder.parameters())
    assert embedding == 19997 * 1024 + 20000 * 256 + 160000 * 64 + 67738 * 16 + 1024 * (256 + 64 + 16)
    decoder_own = sum(p.numel() for p in model.decoder.parameters()) - embedding
    assert decoder_own == 267_735 + 3 * 1024 + 3  # word biases, cluster weights and biases
    per_layer = sum(p.numel() for p in model.blocks[0].parameters())
    assert per_layer == 1024 * 64 + 1024 + 1024 * 64 + 1024 + 2 * 1024 + (2 * 1024 * 1024 + 2048) + 2048


def test_wikitext103_configuration_runs_at_reduced_vocabulary_and_length():
    torch.manual_seed(3)
    model = zoo.create("spike-ssm-wikitext103", vocab_size=1000, adaptive_cutoffs=[100, 300, 600],
                       d_model=64, n_layers=2, seq_len=48).eval()
    assert [t.weight.shape for t in model.encoder.tables] == [(100, 64), (200, 16), (300, 4), (400, 1)]
    x = model.example_input(2)
    log_probs = model(x)
    assert log_probs.shape == (2, 48, 1000)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 48), atol=1e-5)
    nll = model(x[:, :-1], x[:, 1:])
    expected = -log_probs[:, :-1].gather(-1, x[:, 1:, None]).squeeze(-1)
    assert nll.shape == (2, 47) and torch.allclose(nll, expected, atol=1e-5)
    # the cutoffs above a reduced vocabulary are dropped
    assert len(zoo.create("spike-ssm-wikitext103", vocab_size=500, d_model=16, n_layers=1).encoder.tables) == 1


def test_lm_training_step_reaches_every_parameter_and_ties_the_embeddings():
    torch.manual_seed(4)
    model = tiny_lm()
    assert model.decoder.tables[1].weight is model.encoder.tables[1].weight
    x = model.example_input(2, 20)
    model(x[:, :-1], x[:, 1:]).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_lm_is_causal_and_step_mode_equals_parallel():
    torch.manual_seed(5)
    model = tiny_lm().double().eval()
    x = model.example_input(2, 30)
    log_probs = model(x)
    perturbed = x.clone()
    perturbed[:, 18:] = (perturbed[:, 18:] + 7) % 50
    changed = model(perturbed)
    assert torch.allclose(changed[:, :18], log_probs[:, :18], atol=1e-10)
    assert not torch.allclose(changed[:, 18:], log_probs[:, 18:])
    state = model.init_state(2, dtype=F64)
    for t in range(30):
        out, state = model.step(x[:, t], state)
        assert torch.allclose(out, log_probs[:, t], atol=1e-9)


def state_numel(state) -> int:
    if isinstance(state, torch.Tensor):
        return state.numel()
    if isinstance(state, dict):
        return sum(state_numel(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_numel(v) for v in state)
    return 0


def test_generation_is_greedy_decoding_of_the_parallel_model_with_a_constant_state():
    torch.manual_seed(6)
    model = tiny_lm().double().eval()
    prompt = [3, 14, 15, 9, 2]
    generated = model.generate(prompt, max_new_tokens=8, greedy=True)
    sequence = list(prompt)
    for _ in range(8):  # reference: rerun the whole prefix in parallel mode for every token
        sequence.append(int(model(torch.tensor([sequence]))[0, -1].argmax()))
    assert generated == sequence[len(prompt):]
    # the recurrent state has the same size after 1 and after 200 tokens: cost independent of position
    state = model.init_state(1, dtype=F64)
    _, state = model.step(torch.tensor([1]), state)
    size = state_numel(state)
    for t in range(200):
        _, state = model.step(torch.tensor([t % 50]), state)
    assert state_numel(state) == size
    sampled = [model.generate(prompt, 6, top_k=5, generator=torch.Generator().manual_seed(0)) for _ in range(2)]
    assert sampled[0] == sampled[1] and all(0 <= t < 50 for t in sampled[0])


def test_tokenizer_ships_with_the_weights(tmp_path):
    torch.manual_seed(7)
    words = ["<eos>", "<unk>"] + [f"w{i}" for i in range(48)]
    tokenizer = WordTokenizer(words)
    model = tiny_lm()
    model.attach_tokenizer(tokenizer.to_dict())
    text = model.generate("w1 w2 w3", max_new_tokens=5, greedy=True)
    assert isinstance(text, str) and len(tokenizer.encode(text + "\n")) >= 5
    zoo.save_pretrained(model, tmp_path / "lm", tokenizer=model.tokenizer.to_dict())
    assert (tmp_path / "lm" / "tokenizer.json").is_file()
    loaded = zoo.load(tmp_path / "lm")
    assert loaded.tokenizer is not None and loaded.tokenizer.words == words
    assert loaded.generate("w1 w2 w3", max_new_tokens=5, greedy=True) == text
    assert loaded.tokenizer.decode(loaded.tokenizer.encode("w7 nope w9\nw1")) == "w7 <unk> w9\nw1"


def test_bad_lm_use_is_named():
    model = tiny_lm()
    with pytest.raises(ValueError, match="50"):
        model.attach_tokenizer(WordTokenizer(["<eos>", "<unk>", "a"]).to_dict())
    with pytest.raises(ValueError, match="tokenizer"):
        model.generate("some text", 3)
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))
    classifier = zoo.create("spike_ssm", d_model=8, n_layers=1)
    with pytest.raises(ValueError, match="language model"):
        classifier(torch.randn(1, 5, 1), torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(RuntimeError, match="language model"):
        classifier.generate([1, 2], 3)
    with pytest.raises(ValueError, match="adaptive_cutoffs"):
        zoo.create("spike_ssm", task="lm", vocab_size=100, adaptive_cutoffs=[50, 20])
    with pytest.raises(ValueError, match="tau"):
        zoo.create("spike_ssm", tau=1.0)


def test_card_notes_and_neuron_recipe(tmp_path):
    model = zoo.create("spike_ssm", d_model=8, n_layers=1)
    zoo.save_pretrained(model, tmp_path / "m")
    card = (tmp_path / "m" / "README.md").read_text()
    assert "PMBC" in card and "Reconstructed" in card and "threshold_form" in card
    assert model.neuron_recipe()["neuron"].startswith("SRR")
