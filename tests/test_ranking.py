"""PREMIUM-Embed (app/ranking): the selector learns a simulated user's hidden tags from rankings."""

from __future__ import annotations

import random
import statistics
import sys

import numpy as np
import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def encoder():
    from app.ranking.premium import TextEncoder

    return TextEncoder()


def test_the_encoder_places_related_texts_closer(encoder):
    v = encoder.encode(["legal review of the contract", "contract", "birthday party"])
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1


def test_candidates_are_distinct_tag_sets_and_unknown_tags_are_refused(encoder):
    from app.ranking.premium import STYLE_TAGS, PremiumConfig, PremiumEmbed

    tags = ["contract", "budget", "schedule", "travel", "golf", "audit"] + list(STYLE_TAGS)
    selector = PremiumEmbed(tags, encoder, PremiumConfig(k=3, seed=1))
    sets = selector.propose("Tell Sylvia the contract is ready", m=4)
    assert len(sets) == 4 and all(len(s) == 3 for s in sets) and len({frozenset(s) for s in sets}) == 4
    assert sets[0] == tuple(selector.top_tags("Tell Sylvia the contract is ready"))
    with pytest.raises(ValueError, match="unknown tags"):
        selector.update("q", [("contract", "nope", "golf"), sets[1]])


def test_a_simulated_user_is_learned_and_the_state_survives_a_restart(encoder, tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import premium_sim

    accuracies = [premium_sim.run_user(encoder, "3/20", 3, 0.0, seed, False)[0] for seed in range(3)]
    assert statistics.mean(accuracies) >= 0.4, accuracies  # random choice scores 0.15

    from app.ranking.premium import PremiumConfig, PremiumEmbed

    tags = premium_sim.library(20)
    selector = PremiumEmbed(tags, encoder, PremiumConfig(seed=0))
    before = selector.probabilities("Send the budget")
    rng = random.Random(0)
    for _ in range(10):
        candidates = selector.propose("Send the budget")
        seconds = selector.update("Send the budget", sorted(candidates, key=lambda s: -("Brief" in s) - rng.random() / 2))
        assert seconds < 1.0
    learned = selector.probabilities("Send the budget")
    assert learned[tags.index("Brief")] > before[tags.index("Brief")]
    selector.save(tmp_path / "ranking.json")
    restored = PremiumEmbed(tags, encoder, PremiumConfig(seed=0))
    restored.load(tmp_path / "ranking.json")
    np.testing.assert_allclose(restored.probabilities("Send the budget"), learned, rtol=1e-5)
    restored.reset()
    np.testing.assert_allclose(restored.probabilities("Send the budget"), before, rtol=1e-5)
