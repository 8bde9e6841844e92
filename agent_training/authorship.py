"""Does a draft sound like its sender? A judge-free authorship score, trained on this mailbox.

A single similarity metric can crown any method (Jangra et al. 2025), and an LLM judge on this
computer is weak, so the evaluation also asks a classical authorship-attribution model, trained
here on the senders' own earlier mail and nothing else: TF-IDF character n-grams (spelling, case,
punctuation, favourite words) plus function-word n-grams (syntax that survives a change of topic),
with a multinomial logistic regression over the senders (scikit-learn, seconds on 2 cores).

The raw score of a draft is the probability that the model attributes it to its sender. Raw
probabilities depend on how many senders there are and how distinctive each one is, so each sender
gets a calibration measured on real held-out mail that the model never saw:

- floor: the mean probability of the sender for the *other* senders' real held-out emails;
- ceiling: the mean probability of the sender for the sender's *own* real held-out emails.

``calibrated = (raw - floor) / (ceiling - floor)``: 0 sounds like somebody else, 1 sounds as much like
the sender as the sender's own unseen mail (it can leave [0, 1]; it is not clipped).

Training mail is each sender's own text (quoted replies and signatures removed at import) dated
before that sender's first held-out case, so nothing the methods are scored against is learned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from app.store.messages import dated_own_texts

MIN_WORDS = 5  # shorter emails say little about style and add noise
MAX_TRAIN_PER_SENDER = 600  # the biggest mailboxes would drown the small ones

# English function words: topic-independent, the classic stylometric signal (Mosteller & Wallace).
FUNCTION_WORDS = set(
    """
a about above after again against all am an and any are as at be because been before being below between both but by
can could did do does doing down during each few for from further had has have having he her here hers herself him
himself his how i if in into is it its itself just let me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their theirs them themselves then
there these they this those through to too under until up very was we were what when where which while who whom why
will with would you your yours yourself yourselves ok okay thanks thank please hi hello dear regards best cheers
also yes well still yet however though although since unless whether shall may might must
""".split()
)


def function_word_text(text: str) -> str:
    """The text with every content word replaced by one symbol: what is left is its syntax."""
    return " ".join(w if w in FUNCTION_WORDS else "_" for w in re.findall(r"[a-z']+", text.lower()))


@dataclass
class Calibration:
    floor: float
    ceiling: float
    own_n: int
    others_n: int

    def apply(self, raw: float) -> float:
        span = self.ceiling - self.floor
        return (raw - self.floor) / span if span > 1e-9 else float("nan")


@dataclass
class AuthorshipModel:
    """``fit`` on each sender's earlier mail, ``calibrate`` on real held-out mail, then ``score``."""

    senders: list[str]
    pipeline: object = None
    calibration: dict[str, Calibration] = field(default_factory=dict)
    train_counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fit(cls, texts_by_sender: dict[str, list[str]], seed: int = 0) -> AuthorshipModel:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, make_pipeline

        senders = sorted(s for s, texts in texts_by_sender.items() if texts)
        if len(senders) < 2:
            raise ValueError("authorship needs at least two senders with mail to tell apart")
        rng = np.random.default_rng(seed)
        x, y, counts = [], [], {}
        for sender in senders:
            texts = [t for t in texts_by_sender[sender] if len(t.split()) >= MIN_WORDS]
            if len(texts) > MAX_TRAIN_PER_SENDER:  # the newest ones: closest in time to what is scored
                texts = texts[-MAX_TRAIN_PER_SENDER:]
            counts[sender] = len(texts)
            x += texts
            y += [sender] * len(texts)
        order = rng.permutation(len(x))
        x, y = [x[i] for i in order], [y[i] for i in order]
        features = FeatureUnion(
            [
                (
                    "chars",
                    TfidfVectorizer(
                        analyzer="char",
                        ngram_range=(2, 4),
                        sublinear_tf=True,
                        min_df=2,
                        max_features=60_000,
                        lowercase=False,
                    ),
                ),
                (
                    "function_words",
                    TfidfVectorizer(
                        preprocessor=function_word_text,
                        token_pattern=r"[^ ]+",
                        ngram_range=(1, 3),
                        sublinear_tf=True,
                        min_df=2,
                    ),
                ),
            ]
        )
        model = LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced")
        pipeline = make_pipeline(features, model).fit(x, y)
        return cls(senders=senders, pipeline=pipeline, train_counts=counts)

    def probabilities(self, texts: list[str], sender: str) -> list[float]:
        """P(``sender`` wrote it) for each text (an empty text scores 0)."""
        column = list(self.pipeline.classes_).index(sender)
        out = [0.0] * len(texts)
        idx = [i for i, t in enumerate(texts) if t and t.strip()]
        if idx:
            probs = self.pipeline.predict_proba([texts[i] for i in idx])[:, column]
            for i, p in zip(idx, probs):
                out[i] = float(p)
        return out

    def attribute(self, texts: list[str]) -> list[str]:
        return list(self.pipeline.predict(texts))

    def calibrate(self, held_out: dict[str, list[str]]) -> dict[str, Calibration]:
        """Floor and ceiling per sender from real held-out mail (never trained on)."""
        for sender in self.senders:
            own = held_out.get(sender) or []
            others = [t for s, texts in held_out.items() if s != sender for t in texts]
            if not own or not others:
                continue
            self.calibration[sender] = Calibration(
                floor=float(np.mean(self.probabilities(others, sender))),
                ceiling=float(np.mean(self.probabilities(own, sender))),
                own_n=len(own),
                others_n=len(others),
            )
        return self.calibration

    def score(self, texts: list[str], sender: str) -> list[dict]:
        """Raw and calibrated authorship score of each text for ``sender``."""
        cal = self.calibration.get(sender)
        return [
            {"raw": p, "calibrated": cal.apply(p) if cal else float("nan")} for p in self.probabilities(texts, sender)
        ]


def mailbox_mail(db, senders: list[str], before: dict[str, str] | None = None) -> dict[str, list[tuple[str, str]]]:
    """Each sender's (date, own text), oldest first, dated before ``before[sender]`` when given (the
    sender's first held-out case: nothing scored later is learned)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for sender in senders:
        rows = dated_own_texts(db, sender, (before or {}).get(sender))
        out[sender] = [(d, t.strip()) for d, t in rows if t and t.strip()]
    return out


def mailbox_texts(db, senders: list[str], before: dict[str, str] | None = None) -> dict[str, list[str]]:
    return {s: [t for _, t in mail] for s, mail in mailbox_mail(db, senders, before).items()}
