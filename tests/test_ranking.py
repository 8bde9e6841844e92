"""PREMIUM-Embed (app/ranking): the selector learns a simulated user's hidden tags from rankings."""

from __future__ import annotations

import random
import statistics
import sys

import numpy as np
import pytest

from tests.helpers import REPO


@pytest.fixture(scope="module")
def encoder():
    from app.ranking.premium import TextEncoder

    return TextEncoder()


def test_the_encoder_places_related_texts_closer(encoder):
    v = encoder.encode(["legal review of the contract", "contract", "birthday party"])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1


def test_candidates_are_distinct_tag_sets_and_unknown_tags_are_refused(encoder):
    from app.ranking.premium import STYLE_TAGS, PremiumConfig, PremiumEmbed

    tags = ["contract", "budget", "schedule", "travel", "golf", "audit"] + list(STYLE_TAGS)
    selector = PremiumEmbed(tags, encoder, PremiumConfig(k=3, seed=1))
    sets = selector.propose("Tell Sylvia the contract is ready", m=4)
    assert len(sets) == 4
    assert all(len(s) == 3 for s in sets)
    assert len({frozenset(s) for s in sets}) == 4
    assert sets[0] == tuple(selector.top_tags("Tell Sylvia the contract is ready"))
    with pytest.raises(ValueError, match="unknown tags"):
        selector.update("q", [("contract", "nope", "golf"), sets[1]])


@pytest.mark.slow
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
    # 40 rankings: the exploring candidate swaps one tag of the best set at a time (PremiumConfig.explore),
    # so "Brief" (1 of 20 tags) has to be drawn before it can win; 10 were enough for whole random sets
    for _ in range(40):
        candidates = selector.propose("Send the budget")
        seconds = selector.update(
            "Send the budget", sorted(candidates, key=lambda s: -("Brief" in s) - rng.random() / 2)
        )
        assert seconds < 1.0
    learned = selector.probabilities("Send the budget")
    assert learned[tags.index("Brief")] > before[tags.index("Brief")]
    selector.save(tmp_path / "ranking.json")
    restored = PremiumEmbed(tags, encoder, PremiumConfig(seed=0))
    restored.load(tmp_path / "ranking.json")
    np.testing.assert_allclose(restored.probabilities("Send the budget"), learned, rtol=1e-5)
    restored.reset()
    np.testing.assert_allclose(restored.probabilities("Send the budget"), before, rtol=1e-5)


# -- "give me 3 drafts" in the CLI: real selector (MiniLM), loopback Claude, state on disk ---------


def test_parse_ranking_full_and_single_pick():
    from app.cli.drafting import parse_ranking

    assert parse_ranking("2,1,3", 3) == ([1, 0, 2], False)
    assert parse_ranking("2 > 3 > 1", 3) == ([1, 2, 0], False)
    assert parse_ranking("3", 3) == ([2, 0, 1], True)
    for bad in ("", "4", "1,1,2", "1,2", "x"):
        with pytest.raises(ValueError):
            parse_ranking(bad, 3)


def test_three_drafts_ranked_teach_the_selector_and_tags_can_be_reset(db, anthropic_server):
    import re

    from click.testing import CliRunner

    from app import secrets
    from app.backends.base import EndpointConfig
    from app.backends.config import save_endpoint
    from app.cli import cli
    from app.ranking.selector import state_path
    from tests.helpers import ANTHROPIC_TEST_KEY

    save_endpoint(db, EndpointConfig("claude", "anthropic", "claude-test", anthropic_server.url))
    secrets.set_key("claude", ANTHROPIC_TEST_KEY)
    runner = CliRunner()
    intent = "tell Sylvia the NG contract is ready for legal review"
    result = runner.invoke(
        cli, ["draft", intent, "--no-agent", "--backend", "claude", "--candidates", "3", "--rank", "2,1,3"]
    )
    assert result.exit_code == 0, result.output
    # three requests, each carrying its own tag set as style lines, and nothing else new
    tag_sets = [re.findall(r"^- Style: (.+)$", _user_text(r.json()), re.M) for r in anthropic_server.requests]
    assert len(tag_sets) == 3
    assert all(len(t) == 3 for t in tag_sets)
    assert len({frozenset(t) for t in tag_sets}) == 3
    for n, tags in enumerate(tag_sets, 1):
        assert f"Draft {n} · tags: {', '.join(tags)}" in result.output
    assert "Learned from your ranking" in result.output
    assert state_path(None).is_file()
    out = runner.invoke(cli, ["tags"]).output
    weights = dict(re.findall(r"│ (.+?)\s+│\s+([+-]\d\.\d\d) │", out))
    assert "(1 rankings)" in out
    assert weights
    # The proposed sets are random (the CLI seeds from os.urandom), so assert what every ranking
    # implies: a tag the best draft had and the worst lacked wins in both pairs it appears in
    # (best>middle and best>worst, or best>worst and middle>worst), and the reverse loses. Two
    # distinct 3-tag sets always differ, so neither side is empty. (A tag only in the best set, as
    # this test asked before, is absent in about 1 ranking in 12: that made it flaky.)
    best, worst = set(tag_sets[1]), set(tag_sets[2])
    assert best - worst
    assert worst - best
    assert all(float(weights[t]) > 0 for t in best - worst), (tag_sets, weights)
    assert all(float(weights[t]) < 0 for t in worst - best), (tag_sets, weights)
    assert "Forgotten" in runner.invoke(cli, ["tags", "--reset"]).output
    assert not state_path(None).exists()
    assert "Nothing learned yet" in runner.invoke(cli, ["tags"]).output


def test_selector_state_keeps_replay_buffer_and_counts(tmp_path):
    from app.ranking.selector import load_selector

    selector = load_selector(None, seed=1)
    sets = selector.propose("send the Q3 numbers to finance", m=3)
    selector.update("send the Q3 numbers to finance", sets)
    selector.save(tmp_path / "s.json")
    again = load_selector(None, seed=1)
    again.load(tmp_path / "s.json")
    assert len(again.buffer) == 3
    assert again.updates == 1
    assert again.shown == selector.shown
    assert again.top_tags("send the Q3 numbers to finance") == selector.top_tags("send the Q3 numbers to finance")


def _user_text(body: dict) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)
