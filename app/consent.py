"""Consent to send the user's sent mail to a cloud backend (for distillation).

Drafting never sends sent mail, so it needs no consent. Distilling through a backend that leaves
the machine sends each sent email to that provider: it requires a consent recorded for that
backend, stating what is sent. Without it, distillation runs on this machine only.
"""

from __future__ import annotations

from app.clock import utc_now

DISTILL = "distill"


class ConsentRequired(PermissionError):
    """Sent mail would go to a backend the user has not allowed to receive it."""


def distill_statement(backend: str) -> str:
    return (
        f"Send the text of my sent emails (my own words, the quoted previous message, recipients and subjects) "
        f"to the backend {backend!r} to extract intents and writing rules for training my on-device agent."
    )


def grant(db, backend: str, scope: str = DISTILL) -> None:
    db["consents"].upsert(
        {
            "backend": backend,
            "scope": scope,
            "granted_at": utc_now(),
            "statement": distill_statement(backend),
        },
        pk=("backend", "scope"),
    )


def revoke(db, backend: str, scope: str = DISTILL) -> bool:
    cur = db.execute("DELETE FROM consents WHERE backend = ? AND scope = ?", [backend, scope])
    return cur.rowcount > 0


def has_consent(db, backend: str, scope: str = DISTILL) -> bool:
    return db.execute("SELECT 1 FROM consents WHERE backend = ? AND scope = ?", [backend, scope]).fetchone() is not None


def ensure(db, endpoint, *, given_now: bool, why: str, alternative: str = "") -> None:
    """Pass for a backend on this machine or one with recorded consent; record it when the user
    gives it now; otherwise raise ConsentRequired saying ``why``, what would be sent and how to allow it."""
    from app.backends.registry import provider_class

    if not provider_class(endpoint.provider).leaves_machine or has_consent(db, endpoint.name):
        return
    if not given_now:
        raise ConsentRequired(
            f"{why} {distill_statement(endpoint.name)} To allow this, rerun with --i-consent-to-send-sent-mail "
            f"(recorded for this backend){alternative}."
        )
    grant(db, endpoint.name)
