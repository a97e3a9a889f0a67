"""Property tests over random expert counts, top-k, groups and token counts."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.moe import imbalance_score, place_experts, route, sample_tokens_per_expert

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def grouped_shape(draw):
    m = draw(st.integers(1, 8))
    per = draw(st.integers(1, 8))
    k_per = draw(st.integers(1, per))
    return m * per, m * k_per, m  # N, K, M with K divisible by M


@SETTINGS
@given(grouped_shape(), st.integers(1, 300), st.integers(0, 2**31 - 1))
def test_moge_imbalance_zero_and_conserved(shape, tokens, seed):
    n, k, m = shape
    logits = np.random.default_rng(seed).standard_normal((tokens, n))
    out = route(logits, top_k=k, router="moge", num_groups=m)
    assert out.tokens_per_expert.sum() == tokens * k
    assert imbalance_score(place_experts(n, m).rank_load(out.tokens_per_expert), tokens) == 0


@SETTINGS
@given(grouped_shape(), st.integers(1, 300), st.integers(0, 2**31 - 1), st.data())
def test_group_limited_group_count_and_conservation(shape, tokens, seed, data):
    n, _, m = shape
    per = n // m
    g = data.draw(st.integers(1, m))
    k = data.draw(st.integers(1, g * per))
    cf = data.draw(st.one_of(st.none(), st.floats(0.1, 3.0)))
    logits = np.random.default_rng(seed).standard_normal((tokens, n))
    out = route(logits, top_k=k, router="group_limited", num_groups=m, topk_groups=g, capacity_factor=cf)
    used = _full_map(out).reshape(tokens, m, per).any(axis=2).sum(axis=1)
    assert used.max() <= g
    assert out.tokens_per_expert.sum() == tokens * k - out.dropped


def _full_map(out):  # routing map before drops
    rm = np.zeros((out.expert_idx.shape[0], out.num_experts), dtype=bool)
    np.put_along_axis(rm, out.expert_idx.astype(np.int64), True, axis=1)
    assert (rm.sum(axis=1) == out.expert_idx.shape[1]).all()  # distinct experts per token
    return rm


@SETTINGS
@given(grouped_shape(), st.integers(1, 5000), st.sampled_from(["balanced", "aux_loss", "no_balancing", 0.7]),
       st.sampled_from(["topk", "moge", "group_limited", "balanced"]), st.integers(0, 2**31 - 1),
       st.one_of(st.none(), st.floats(0.5, 2.0)))
def test_sampler_conservation(shape, tokens, skew, router, seed, cf):
    n, k, m = shape
    g = max(1, (m + 1) // 2) if k <= max(1, (m + 1) // 2) * (n // m) else m
    s = sample_tokens_per_expert(num_experts=n, top_k=k, router=router, num_groups=m, topk_groups=g,
                                 tokens=tokens, num_layers=2, num_samples=2, skew=skew,
                                 rng=np.random.default_rng(seed), capacity_factor=cf)
    assert (s.tokens_per_expert >= 0).all()
    np.testing.assert_array_equal(s.tokens_per_expert.sum(axis=-1) + s.dropped, tokens * k)
    if router == "moge" and cf is None:
        groups = s.tokens_per_expert.reshape(2, 2, m, n // m).sum(axis=-1)  # (L, S, M)
        assert (groups == tokens * k // m).all()
