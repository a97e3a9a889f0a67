"""Expert placement, per-rank load, all-to-all traffic, balance metrics, EP-rank permutation."""

import numpy as np
import pytest

from sim.errors import UserError
from sim.moe import (
    DynamicPlacer,
    Placement,
    a2a_traffic,
    balance_stats,
    imbalance_score,
    place_experts,
    sample_tokens_per_expert,
    split_tokens_by_source,
)


def _skewed_load(e=64, seed=0):
    s = sample_tokens_per_expert(num_experts=e, top_k=8, router="topk", num_groups=None, topk_groups=None,
                                 tokens=8192, num_layers=1, num_samples=1, skew="no_balancing",
                                 rng=np.random.default_rng(seed))
    return s.tokens_per_expert[0, 0]  # (E,)


def test_contiguous_and_group_per_device():
    p = place_experts(16, 4)
    assert p.one_hot and (p.expert_rank.sum(axis=1) == 1).all()
    np.testing.assert_array_equal(p.expert_rank.argmax(axis=1), np.repeat(np.arange(4), 4))
    q = place_experts(16, 4, "group_per_device", num_groups=8)
    np.testing.assert_array_equal(q.expert_rank, p.expert_rank)
    with pytest.raises(UserError, match="group_per_device"):
        place_experts(16, 4, "group_per_device", num_groups=2)
    with pytest.raises(UserError, match="divide"):
        place_experts(16, 3)


def test_rank_load_conserves_tokens_and_keeps_ints():
    tpe = np.arange(2 * 3 * 16).reshape(2, 3, 16)  # (L, S, E)
    out = place_experts(16, 4).rank_load(tpe)
    assert out.shape == (2, 3, 4) and np.issubdtype(out.dtype, np.integer)
    np.testing.assert_array_equal(out.sum(axis=-1), tpe.sum(axis=-1))


def test_redundant_copies_go_to_hot_experts_and_balance():
    load = _skewed_load()
    base = place_experts(64, 8).rank_load(load)
    red = place_experts(64, 8, "redundant", load=load, redundant_slots=8)
    np.testing.assert_allclose(red.expert_rank.sum(axis=1), 1.0)
    assert (red.slots_per_rank == (64 + 8) // 8).all()
    copies = np.count_nonzero(red.expert_rank, axis=1)
    assert copies[np.argmax(load)] > 1 and copies.sum() == 72
    rl = red.rank_load(load)
    assert rl.sum() == pytest.approx(load.sum())
    assert balance_stats(rl)["max_over_mean"] < balance_stats(base)["max_over_mean"]
    with pytest.raises(UserError, match="multiple of ep"):
        place_experts(64, 8, "redundant", load=load, redundant_slots=3)
    with pytest.raises(UserError, match="load"):
        place_experts(64, 8, "redundant")


def test_dynamic_placer_replans_every_n_steps():
    placer = DynamicPlacer(64, 8, every_n_steps=3)
    load = _skewed_load()
    first = placer.placement
    assert placer.observe(load) is first and placer.observe(load) is first
    new = placer.observe(load)
    assert new is not first and new.kind == "dynamic"
    assert balance_stats(new.rank_load(load))["max_over_mean"] < balance_stats(first.rank_load(load))["max_over_mean"]


def test_split_by_source_and_a2a_traffic():
    rng = np.random.default_rng(0)
    load = _skewed_load()
    by_src = split_tokens_by_source(load, 8, rng)  # (ep_src, E)
    assert by_src.shape == (8, 64)
    np.testing.assert_array_equal(by_src.sum(axis=0), load)
    p = place_experts(64, 8)
    tr = a2a_traffic(by_src, p, devices_per_node=4, bytes_per_token=7168 * 2)
    np.testing.assert_array_equal(tr.tokens.sum(axis=0), p.rank_load(load))  # received = rank load
    np.testing.assert_array_equal(tr.tokens.sum(axis=1), by_src.sum(axis=1))  # sent = source's share
    np.testing.assert_allclose(tr.intra_bytes + tr.inter_bytes, tr.bytes)
    assert tr.inter_bytes[:4, :4].sum() == 0 and tr.intra_bytes[:4, 4:].sum() == 0
    assert (tr.inter_bytes[:4, 4:] > 0).all()
    np.testing.assert_allclose(tr.local_bytes, np.diag(tr.bytes))
    with pytest.raises(UserError):
        a2a_traffic(by_src[:, :10], p, devices_per_node=4, bytes_per_token=1.0)


def test_results_invariant_to_permuting_ep_ranks():
    rng = np.random.default_rng(3)
    load = _skewed_load()
    by_src = split_tokens_by_source(load, 8, rng)
    p = place_experts(64, 8)
    perm = rng.permutation(8)
    q = Placement(p.expert_rank[:, perm], "contiguous")  # rank r of q is rank perm[r] of p
    np.testing.assert_array_equal(q.rank_load(load), p.rank_load(load)[perm])
    assert imbalance_score(q.rank_load(load), 8192) == imbalance_score(p.rank_load(load), 8192)
    assert balance_stats(q.rank_load(load)) == balance_stats(p.rank_load(load))
    tp = a2a_traffic(by_src, p, devices_per_node=8, bytes_per_token=1.0)
    tq = a2a_traffic(by_src[perm], q, devices_per_node=8, bytes_per_token=1.0)
    np.testing.assert_array_equal(tq.tokens, tp.tokens[np.ix_(perm, perm)])


def test_metrics_by_hand():
    load = np.array([[10, 20, 30, 40], [25, 25, 25, 25]])
    np.testing.assert_allclose(imbalance_score(load, 50), [0.6, 0.0])
    st = balance_stats(load)
    np.testing.assert_allclose(st["max_over_mean"], [40 / 25, 1.0])
    np.testing.assert_allclose(st["cv"], [np.std([10, 20, 30, 40]) / 25, 0.0])
    assert balance_stats(np.zeros(4))["max_over_mean"] == 1.0
