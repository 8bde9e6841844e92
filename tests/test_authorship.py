"""The judge-free authorship score on real mail: trained on three Enron senders' earlier mail,
calibrated on one half of their newest (never seen) emails, checked on the other half."""

from __future__ import annotations

import numpy as np
import pytest

from agent_training.authorship import AuthorshipModel, function_word_text, mailbox_mail, mailbox_texts
from tests.helpers import run_import

SENDERS = ["kay.mann@enron.com", "dutch.quigley@enron.com", "bill.williams@enron.com"]


@pytest.mark.slow
def test_real_held_out_mail_scores_near_the_ceiling_and_other_senders_near_the_floor(db, enron):
    for folder in ("mann-k", "quigley-d", "williams-w3"):
        run_import(db, enron / "maildir" / folder)
    cut = {}  # each sender's newest 20% are held out, as in the evaluation's split
    held_a, held_b = {}, {}
    for sender, mail in mailbox_mail(db, SENDERS).items():
        assert len(mail) > 100, sender
        start = int(len(mail) * 0.8)
        cut[sender] = mail[start][0]
        newest = [t for _, t in mail[start:] if len(t.split()) >= 5]
        held_a[sender], held_b[sender] = newest[0::2], newest[1::2]
    train = mailbox_texts(db, SENDERS, before=cut)
    assert all(len(train[s]) > 80 for s in SENDERS)
    model = AuthorshipModel.fit(train)
    calibration = model.calibrate(held_a)
    for sender in SENDERS:
        c = calibration[sender]
        assert c.ceiling > c.floor + 0.3, (sender, c)  # the sender's own unseen mail is told apart
        own = np.mean([s["calibrated"] for s in model.score(held_b[sender], sender)])
        others = np.mean([s["calibrated"] for o in SENDERS if o != sender for s in model.score(held_b[o], sender)])
        print(
            f"{sender}: floor {c.floor:.3f} ceiling {c.ceiling:.3f}; held-out half B: own {own:.2f}, others {others:.2f}"
        )
        assert own > 0.7, (sender, own, others)
        assert others < 0.3, (sender, own, others)
    texts = [t for s in SENDERS for t in held_b[s]]
    truth = [s for s in SENDERS for _ in held_b[s]]
    accuracy = np.mean([a == b for a, b in zip(model.attribute(texts), truth)])
    print(f"attribution accuracy {accuracy:.2f} on {len(texts)} held-out emails")
    assert accuracy > 0.6, accuracy  # chance is 1/3
    assert model.score([""], SENDERS[0])[0]["raw"] == 0.0


def test_function_words_keep_syntax_and_hide_topic():
    assert function_word_text("I think the NG contract is ready for them.") == "i _ the _ _ is _ for them"
