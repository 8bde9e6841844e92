"""The database the benchmarks start from: the Enron sample imported and distilled offline.

Opens the store in ``$TILLER_HOME`` (set it first), imports the sample when the store has no mail,
and runs the offline distillation (extractive intents, measured style rules), which skips what an
earlier run already finished.
"""

from __future__ import annotations


def sample_database():
    from agent_training.distill import Distillation, DistillConfig
    from app.cli.demo import find_sample_mail
    from app.mail.importer import MailImport
    from app.mail.sources import open_source
    from app.store import open_database

    db = open_database()
    if db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0:
        for _ in MailImport(db, open_source(find_sample_mail())).run():
            pass
    for _ in Distillation(db, DistillConfig()).run():
        pass
    return db
