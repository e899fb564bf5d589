"""Tests for the reference model: causality of every input path, and the optimiser split over its parameters."""

from __future__ import annotations

import pytest
import torch

from reference.model import GPT, GPTConfig
from reference.train_gpt import Hyperparameters, build_optimizers, model_config


def bigram_gpt(buckets: int = 64) -> GPT:
    """A 2-layer GPT over 64 tokens with a BigramHash embedding whose projection is random (not zero-initialised)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1, mlp_mult=2.0,
                          rope_dims=8, bigram_buckets=buckets, bigram_dim=16))
    with torch.no_grad():
        model.bigram.proj.weight.normal_(std=0.5)
    return model


@pytest.mark.parametrize("position", [0, 5, 11, 15])
def test_changing_a_token_leaves_earlier_logits_unchanged(position):
    """Logits before a changed input position do not move: the pair embedding reads no later token."""
    model = bigram_gpt().eval()
    idx = torch.randint(0, 64, (1, 16), generator=torch.Generator().manual_seed(1))
    changed = idx.clone()
    changed[0, position] = (changed[0, position] + 7) % 64
    with torch.no_grad():
        a, b = model.logits(idx), model.logits(changed)
    assert torch.allclose(a[:, :position], b[:, :position], atol=1e-6)
    assert not torch.allclose(a[:, position], b[:, position], atol=1e-6)


def test_pair_embedding_depends_on_the_previous_token():
    """The same current token after two different previous tokens gets two different pair embeddings."""
    model = bigram_gpt()
    with torch.no_grad():
        x = model.bigram(torch.tensor([[3, 9], [4, 9]]))
    assert not torch.allclose(x[0, 1], x[1, 1])
    assert torch.allclose(model.bigram(torch.tensor([[9]])), model.bigram(torch.tensor([[10]])))  # row start


def test_zero_projection_starts_as_the_plain_model():
    """With its projection at zero (the initialisation) the pair embedding leaves the hidden states unchanged."""
    with_pairs = GPT(GPTConfig(vocab_size=64, num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1,
                               rope_dims=8, bigram_buckets=32, bigram_dim=8))
    plain = GPT(GPTConfig(vocab_size=64, num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1, rope_dims=8))
    plain.load_state_dict({k: v for k, v in with_pairs.state_dict().items() if not k.startswith("bigram.")})
    idx = torch.randint(0, 64, (2, 12))
    with torch.no_grad():
        assert torch.allclose(with_pairs.hidden(idx), plain.hidden(idx), atol=1e-6)


@pytest.mark.parametrize("buckets, sparse", [(0, False), (128, False), (128, True)])
def test_every_parameter_is_in_exactly_one_optimizer(buckets, sparse):
    """Each trainable parameter is stepped by one optimiser, with or without the (sparse) pair embedding."""
    args = Hyperparameters(vocab_size=64, num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1, rope_dims=8,
                           bigram_buckets=buckets, bigram_dim=16, bigram_sparse=sparse)
    model = GPT(model_config(args))
    seen = [id(p) for opt in build_optimizers(model, args) for g in opt.param_groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())


def test_no_pair_spans_two_documents():
    """At a document's BOS the pair embedding is the row-start one, whatever the previous document ended with."""
    model = bigram_gpt()
    bos = model.cfg.bos_id
    with torch.no_grad():
        a, b = model.bigram(torch.tensor([[5, bos, 9], [17, bos, 9]]))
        start = model.bigram(torch.tensor([[bos]]))[0, 0]
    assert torch.allclose(a[1], b[1]) and torch.allclose(a[1], start)
    assert torch.allclose(a[2], b[2])  # (BOS, 9) inside the new document: the same pair in both rows


def test_a_sparse_pair_table_updates_only_the_rows_a_step_touched():
    """With sparse gradients the step leaves every pair-table row that no input pair hashed to unchanged."""
    args = Hyperparameters(vocab_size=64, num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1, rope_dims=8,
                           bigram_buckets=128, bigram_dim=16, bigram_sparse=True)
    torch.manual_seed(0)
    model = GPT(model_config(args))
    with torch.no_grad():
        model.bigram.proj.weight.normal_(std=0.5)  # a non-zero projection: the table gets gradients
    optimizers = build_optimizers(model, args)
    before = model.bigram.emb.weight.detach().clone()
    idx = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(2))
    model(idx, idx.roll(-1, 1)).backward()
    touched = model.bigram.emb.weight.grad.coalesce().indices()[0].unique()
    for opt in optimizers:
        opt.step()
    moved = (model.bigram.emb.weight.detach() != before).any(dim=1).nonzero().flatten()
    assert set(moved.tolist()) <= set(touched.tolist()) and len(moved) > 0
