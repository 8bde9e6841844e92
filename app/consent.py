"""Consent to send the user's sent mail to a cloud backend (for distillation).

Drafting never sends sent mail, so it needs no consent. Distilling through a backend that leaves
the machine sends each sent email to that provider: it requires a consent recorded for that
backend, stating what is sent. Without it, distillation runs on this machine only.
"""

from __future__ import annotations

from app.store.consents import consent_exists, delete_consent, save_consent

DISTILL = "distill"


class ConsentRequired(PermissionError):
    """Sent mail would go to a backend the user has not allowed to receive it."""


def distill_statement(backend: str) -> str:
    return (
        f"Send the text of my sent emails (my own words, the quoted previous message, recipients and subjects) "
        f"to the backend {backend!r} to extract intents and writing rules for training my on-device agent."
    )


def grant(db, backend: str, scope: str = DISTILL) -> None:
    save_consent(db, backend, scope, distill_statement(backend))


def revoke(db, backend: str, scope: str = DISTILL) -> bool:
    return delete_consent(db, backend, scope)


def has_consent(db, backend: str, scope: str = DISTILL) -> bool:
    return consent_exists(db, backend, scope)


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
