"""Token-level routers: selection rules, conservation, capacity, the Pangu Pro MoE Monte Carlo."""

import numpy as np
import pytest

from sim.errors import UserError
from sim.moe import count_routed, imbalance_score, place_experts, route, topk_mask
from sim.moe.capacity import drop_by_position, expert_capacity


def _device_load(counts, num_experts, devices):
    return place_experts(num_experts, devices).rank_load(counts)


def test_pangu_pro_moe_monte_carlo():
    """N=64, K=8, M=8 devices, |X|=16, uniform random scores: P(IS>0) ~1 for top-k, 0 for MoGE."""
    rng = np.random.default_rng(2025)
    trials, n, k, m, x = 500, 64, 8, 8, 16
    scores = rng.random((trials, x, n))  # (trials, |X|, N)
    is_topk, is_moge = [], []
    for s in scores:
        for router, out in (("topk", is_topk), ("moge", is_moge)):
            counts = count_routed(s, top_k=k, router=router, num_groups=m)
            out.append(imbalance_score(_device_load(counts, n, m), x))
    assert np.mean(np.array(is_topk) > 0) >= 0.99
    assert np.all(np.array(is_moge) == 0)


@pytest.mark.parametrize("dist", ["normal", "integers", "constant"])
def test_moge_imbalance_zero_for_any_scores(dist):
    rng = np.random.default_rng(1)
    shape = (257, 64)
    logits = {"normal": rng.standard_normal(shape) * 5, "integers": rng.integers(0, 3, shape).astype(float),
              "constant": np.zeros(shape)}[dist]
    out = route(logits, top_k=8, router="moge", num_groups=8)
    assert (out.routing_map.sum(axis=1) == 8).all()
    per_group = out.routing_map.reshape(257, 8, 8).sum(axis=2)  # (T, M)
    assert (per_group == 1).all()
    assert imbalance_score(_device_load(out.tokens_per_expert, 64, 8), 257) == 0


def test_topk_matches_sort_reference_and_breaks_ties():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 32)).astype(np.float32)
    out = route(x, top_k=4)
    ref = np.sort(np.argsort(-x, axis=1, kind="stable")[:, :4], axis=1)
    np.testing.assert_array_equal(out.expert_idx, ref)
    ties = rng.integers(0, 2, (300, 32)).astype(np.float32)  # many ties at the threshold
    assert (topk_mask(ties, 5).sum(axis=1) == 5).all()
    chosen = np.where(topk_mask(ties, 5), ties, np.inf).min(axis=1)
    unchosen = np.where(topk_mask(ties, 5), -np.inf, ties).max(axis=1)
    assert (chosen >= unchosen).all()


def test_group_limited_respects_topk_groups():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((1000, 256))
    for sf in ("softmax", "sigmoid"):
        out = route(logits, top_k=8, router="group_limited", num_groups=8, topk_groups=4, score_function=sf)
        groups_used = (out.routing_map.reshape(1000, 8, 32).sum(axis=2) > 0).sum(axis=1)
        assert groups_used.max() <= 4 and (out.routing_map.sum(axis=1) == 8).all()


def test_group_limited_picks_best_groups():
    # group 0 holds two strong experts, group 1 one very strong, group 2 weak: top-2 sums rank 0 > 1 > 2
    logits = np.array([[5.0, 5.0, 0.0, 0.0, 5.5, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]])
    out = route(logits, top_k=2, router="group_limited", num_groups=3, topk_groups=1)
    np.testing.assert_array_equal(out.expert_idx[0], [0, 1])  # 5.5 alone is not picked: its group loses


def test_counts_conserved_with_capacity():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((2048, 64)) + np.linspace(0, 2, 64)  # skewed toward high ids
    out = route(logits, top_k=8, capacity_factor=1.0)
    cap = expert_capacity(2048, 64, 8, 1.0)
    assert out.dropped > 0 and out.tokens_per_expert.max() <= cap
    assert out.tokens_per_expert.sum() == 2048 * 8 - out.dropped
    np.testing.assert_array_equal(out.routing_map.sum(axis=0), out.tokens_per_expert)
    np.testing.assert_array_equal(count_routed(logits, top_k=8), route(logits, top_k=8).tokens_per_expert)


def test_drop_by_position_keeps_earliest_tokens():
    idx = np.array([[0, 1], [0, 2], [0, 1], [1, 2]])
    kept = drop_by_position(idx, 3, capacity=2)
    np.testing.assert_array_equal(kept, [[True, True], [True, True], [False, True], [False, True]])


def test_balanced_router_exact():
    out = route(np.zeros((10, 16)), top_k=4, router="balanced")
    assert (out.routing_map.sum(axis=1) == 4).all()  # distinct experts per token
    np.testing.assert_array_equal(out.tokens_per_expert, [3] * 8 + [2] * 8)  # 40 = 16*2 + 8


def test_same_seed_same_result():
    a = np.random.default_rng(9).standard_normal((512, 64))
    b = np.random.default_rng(9).standard_normal((512, 64))
    ra, rb = route(a, top_k=8, router="group_limited", num_groups=8, topk_groups=2), \
        route(b, top_k=8, router="group_limited", num_groups=8, topk_groups=2)
    np.testing.assert_array_equal(ra.expert_idx, rb.expert_idx)


@pytest.mark.parametrize("kwargs, msg", [
    (dict(top_k=6, router="moge", num_groups=8), "divisible"),
    (dict(top_k=8, router="moge", num_groups=7), "divisible by num_groups"),
    (dict(top_k=8, router="group_limited", num_groups=8), "topk_groups"),
    (dict(top_k=8, router="group_limited", num_groups=8, topk_groups=9), "<= num_groups"),
    (dict(top_k=80, router="topk"), "top_k"),
    (dict(top_k=-1, router="topk"), "positive"),
    (dict(top_k=8, router="nope"), "unknown router"),
    (dict(top_k=8, capacity_factor=-1.0), "capacity_factor"),
])
def test_bad_input_raises_user_error(kwargs, msg):
    with pytest.raises(UserError, match=msg):
        route(np.zeros((4, 64)), **kwargs)
