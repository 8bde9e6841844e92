"""Operations: one object or function per user action, free of Qt and of the terminal.

Each runs the whole action (checks, transactions, the key in the keyring, events for progress) so the
CLI, the desktop app, ``tiller mcp`` and the evaluation only render what it yields or returns:
composing an email (:mod:`app.ops.compose`: rules, one or several drafts, the voice stage, the rule
check and its re-ask), importing mail and learning from it (:mod:`app.ops.imports`), starting the
trainer on the agent-base role's model (:mod:`app.ops.training`), adding and removing a backend with
its key (:mod:`app.ops.backends`).
Long ones are generators of events cancelled by a token (``app.jobs.CancelToken``), like the mail
import (``app.mail.importer.MailImport``) and the trainer (``app.agent.trainer.TrainerProcess``).
"""
