"""Versioned schema migrations.

Each migration is a function registered with a version number; ``migrate()`` applies the missing
ones in order, each inside its own transaction, and records it in ``_migrations`` and in
``PRAGMA user_version``. Never edit a released migration: add a new one.

Rows produced by a model or a prompt carry ``model_id``/``prompt_version`` columns (added by the
distillation migrations); imported messages carry the ``parser_version`` that split them, so a
changed splitter can re-split only what it affects.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from app.clock import utc_now

Migration = Callable[[sqlite_utils.Database], None]
MIGRATIONS: list[tuple[int, str, Migration]] = []


def migration(version: int, name: str) -> Callable[[Migration], Migration]:
    def register(fn: Migration) -> Migration:
        if any(v == version for v, _, _ in MIGRATIONS):
            raise ValueError(f"duplicate migration version {version}")
        MIGRATIONS.append((version, name, fn))
        MIGRATIONS.sort(key=lambda m: m[0])
        return fn

    return register


def schema_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database) -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    current = schema_version(db)
    newest = MIGRATIONS[-1][0] if MIGRATIONS else 0
    if current > newest:
        from app.exceptions import DatabaseTooNew

        raise DatabaseTooNew(
            f"database schema version {current} is newer than this Tiller understands ({newest}); upgrade Tiller"
        )
    applied = []
    for version, name, fn in MIGRATIONS:
        if version <= current:
            continue
        conn = db.conn
        conn.execute("BEGIN IMMEDIATE")
        if schema_version(db) >= version:  # another process opening the same new database got here first
            conn.execute("COMMIT")
            continue
        try:
            fn(db)
            conn.execute(
                "INSERT INTO _migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, utc_now()),
            )
            conn.execute(f"PRAGMA user_version = {int(version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


@migration(1, "mail import: sources, import runs, per-item outcomes, identities, messages")
def _m001_mail(db: sqlite_utils.Database) -> None:
    db.table("sources").create(
        {"id": int, "kind": str, "location": str, "added_at": str, "last_import_at": str},
        pk="id",
        not_null={"kind", "location", "added_at"},
    )
    db.table("sources").create_index(["kind", "location"], unique=True)
    db.table("import_runs").create(
        {
            "id": int,
            "source_id": int,
            "started_at": str,
            "finished_at": str,
            "status": str,  # running | completed | cancelled | failed
            "seen": int,
            "stored": int,
            "duplicates": int,
            "skipped": int,
            "already_imported": int,
            "warnings": int,
            "app_version": str,
            "error": str,
        },
        pk="id",
        foreign_keys=[("source_id", "sources", "id")],
        defaults={"seen": 0, "stored": 0, "duplicates": 0, "skipped": 0, "already_imported": 0, "warnings": 0},
    )
    db.table("identities").create(
        {"id": int, "address": str, "display_name": str, "origin": str, "sent_count": int},
        pk="id",
        not_null={"address", "origin"},
    )
    db.table("identities").create_index(["address"], unique=True)
    db.table("messages").create(
        {
            "id": int,
            "source_id": int,
            "item_key": str,
            "folder": str,
            "is_sent_folder": int,
            "message_id": str,
            "content_key": str,
            "date": str,  # ISO 8601 UTC, None when missing or unparseable
            "date_raw": str,
            "from_addr": str,
            "from_name": str,
            "to_addrs": str,  # JSON lists
            "cc_addrs": str,
            "subject": str,
            "in_reply_to": str,
            "references_": str,
            "body_text": str,
            "own_text": str,
            "previous_context": str,
            "signature": str,
            "flags": str,  # JSON list: reply, forward, pure_forward, html_only, truncated, charset_fallback, ...
            "attachments": str,  # JSON list of {filename, content_type, bytes}
            "attachment_count": int,
            "identity_id": int,
            "parser_version": int,
            "imported_at": str,
        },
        pk="id",
        foreign_keys=[("source_id", "sources", "id"), ("identity_id", "identities", "id")],
    )
    db.execute("CREATE UNIQUE INDEX idx_messages_message_id ON messages(message_id) WHERE message_id IS NOT NULL")
    db.execute("CREATE UNIQUE INDEX idx_messages_content_key ON messages(content_key)")
    db.table("messages").create_index(["from_addr"])
    db.table("messages").create_index(["identity_id", "date"])
    db.table("source_items").create(
        {
            "source_id": int,
            "item_key": str,
            "run_id": int,
            "status": str,  # stored | duplicate | skipped
            "message_ref": int,  # the stored message (or the one this duplicates)
            "reason": str,  # skip reason or warning kind
            "detail": str,
        },
        pk=("source_id", "item_key"),
        foreign_keys=[
            ("source_id", "sources", "id"),
            ("run_id", "import_runs", "id"),
            ("message_ref", "messages", "id"),
        ],
    )
    db.table("source_items").create_index(["run_id", "status"])


@migration(2, "backends: named large-model endpoints, settings, privacy ledger")
def _m002_backends(db: sqlite_utils.Database) -> None:
    # Endpoints hold no key: keys live only in the OS keyring (app/secrets.py).
    db.table("backends").create(
        {
            "name": str,
            "provider": str,
            "model": str,
            "base_url": str,
            "options": str,  # JSON, validated by the provider's strict options model
            "created_at": str,
            "updated_at": str,
        },
        pk="name",
        not_null={"provider", "created_at"},
    )
    db.table("settings").create({"key": str, "value": str}, pk="key")  # value: JSON
    # Every request that left the machine, written before it is sent (so a crash cannot hide one)
    # and completed when its answer ends.
    db.table("ledger").create(
        {
            "id": int,
            "started_at": str,
            "finished_at": str,
            "backend": str,
            "provider": str,
            "model": str,
            "purpose": str,  # draft | distill | test | eval
            "method": str,
            "url": str,  # query parameters named like keys are redacted
            "request_headers": str,  # JSON; authorization headers are dropped, never stored
            "request_bytes": int,
            "request_payload": str,  # the body exactly as sent (UTF-8 text)
            "response_status": int,
            "response_bytes": int,
            "duration_ms": int,
            "outcome": str,  # sent | ok | http_error | connection_error | cancelled
            "error": str,
        },
        pk="id",
    )
    db.table("ledger").create_index(["started_at"])
    db.table("ledger").create_index(["backend", "started_at"])


@migration(3, "distillation: consents, intents, zero-shot baselines, rules")
def _m003_distillation(db: sqlite_utils.Database) -> None:
    # Explicit, per-backend permission to send the user's sent mail (distillation only).
    db.table("consents").create(
        {"backend": str, "scope": str, "granted_at": str, "statement": str},
        pk=("backend", "scope"),
        not_null={"granted_at", "statement"},
    )
    # Every model-produced row records who produced it: backend, model id, prompt version and
    # temperature; ``source`` = "backend|model|prompt" is the key that makes reruns skip done work
    # and makes a changed prompt version recompute only its own rows.
    common = {
        "status": str,  # ok | failed
        "backend": str,
        "model": str,
        "prompt_version": str,
        "temperature": float,
        "source": str,
        "raw": str,  # the model's whole answer, kept for failed rows too
        "error": str,
        "attempts": int,
        "created_at": str,
    }
    db.table("intents").create(
        {"id": int, "message_id": int, "variant": int, "text": str, "scratchpad": str, **common},
        pk="id",
        foreign_keys=[("message_id", "messages", "id")],
    )
    db.table("intents").create_index(["message_id", "variant", "source"], unique=True)
    db.table("baselines").create(
        {"id": int, "intent_id": int, "text": str, **common},
        pk="id",
        foreign_keys=[("intent_id", "intents", "id")],
    )
    db.table("baselines").create_index(["intent_id", "source"], unique=True)
    db.table("rules").create(
        {
            "id": int,
            "message_id": int,
            "intent_id": int,
            "baseline_id": int,
            "strategy": str,  # R1 | R2 | R3 | measured
            "rules": str,  # the training target: one rule per line, "- " bullets
            "thinking": str,  # stored, never a training target
            "dropped": str,  # JSON: rule lines removed for quoting the real email wholesale
            **common,
        },
        pk="id",
        foreign_keys=[
            ("message_id", "messages", "id"),
            ("intent_id", "intents", "id"),
            ("baseline_id", "baselines", "id"),
        ],
    )
    db.table("rules").create_index(["message_id", "intent_id", "strategy", "source"], unique=True)


@migration(4, "models: GGUF files the user registers (the embedded ones are known without a row)")
def _m004_models(db: sqlite_utils.Database) -> None:
    db.table("models").create(
        {
            "name": str,
            "path": str,
            "role": str,  # agent-base | drafting
            "size": int,
            "sha256": str,  # recorded when added, so `tiller check` sees a changed file
            "architecture": str,
            "display_name": str,
            "quantization": str,
            "parameters": int,
            "chat_template": int,
            "license": str,
            "added_at": str,
        },
        pk="name",
        not_null={"path", "role"},
    )


@migration(5, "messages: index on parser_version (finding mail an older splitter split is a lookup)")
def _m005_parser_version_index(db: sqlite_utils.Database) -> None:
    # app/mail/resplit.py asks this on every database open (the GUI opens one per action)
    db.table("messages").create_index(["parser_version"], index_name="idx_messages_parser_version")


@migration(6, "accounts: IMAP accounts (server, user, security, folders; the password lives in the keyring)")
def _m006_accounts(db: sqlite_utils.Database) -> None:
    db.table("accounts").create(
        {
            "name": str,
            "kind": str,  # imap
            "host": str,
            "port": int,  # NULL: the security's usual port
            "user": str,
            "security": str,  # tls | starttls | plaintext
            "auth": str,  # password | xoauth2
            "ca_file": str,
            "verify_tls": int,
            "sent_folder": str,  # NULL: found on the server (\Sent flag, else the name)
            "context_folders": str,  # JSON list
            "created_at": str,
            "updated_at": str,
        },
        pk="name",
        not_null={"kind", "host", "user", "security", "auth"},
    )


@migration(7, "drafts: every draft Tiller wrote, what the user did with it, the sent mail it became; scoped rules")
def _m007_drafts(db: sqlite_utils.Database) -> None:
    # One row per draft shown (a PREMIUM run of 3 candidates is 3 rows sharing ``compose_id``).
    # ``final_text`` is what the user made of it: the text edited in the draft box or $EDITOR, or
    # the own text of the sent email it was matched to (``sent_message_id``).
    db.table("drafts").create(
        {
            "id": int,
            "compose_id": int,  # the first draft's id of the same compose run
            "created_at": str,
            "identity": str,  # the address that writes (NULL: "all my identities")
            "recipient": str,
            "subject": str,
            "intent": str,
            "previous_email": str,
            "agent_rules": str,  # JSON list: what the agent said
            "scoped_rules": str,  # JSON list: learned scoped rules that replaced or joined them
            "rules": str,  # JSON list: the rules the draft was written with
            "rules_source": str,  # agent | given | none
            "profile": str,
            "backend": str,
            "model": str,
            "tags": str,  # JSON list
            "text": str,  # the draft as shown (after the rule check's repairs)
            "status": str,  # shown | edited | copied | opened | discarded | sent
            "picked": int,  # 1 when the user picked this one of several candidates
            "final_text": str,
            "final_source": str,  # edit | sent
            "final_at": str,
            "sent_message_id": int,
            "match_similarity": float,
            "edit_distance": float,  # normalized word edit distance, draft -> final
            "r3_rules": str,  # JSON list: a model's rules from draft vs final (the retrain's target)
            "r3_source": str,  # "backend|model|prompt" that wrote them, and the final text's hash
        },
        pk="id",
        foreign_keys=[("sent_message_id", "messages", "id")],
    )
    db.table("drafts").create_index(["identity", "created_at"])
    db.table("drafts").create_index(["sent_message_id"])
    db.table("draft_events").create(
        {"id": int, "draft_id": int, "at": str, "action": str, "detail": str},
        pk="id",
        foreign_keys=[("draft_id", "drafts", "id")],
    )
    db.table("draft_events").create_index(["draft_id"])
    # A match the user undid is never made again.
    db.table("refused_matches").create(
        {"draft_id": int, "message_id": int, "at": str},
        pk=("draft_id", "message_id"),
    )
    # Learned from (draft, final) pairs, verified against the user's real emails; rebuilt whole
    # each time (so forgetting a draft forgets what it taught).
    db.table("scoped_rules").create(
        {
            "id": int,
            "identity": str,  # NULL: every identity
            "scope": str,  # all | domain | recipient
            "scope_value": str,  # "" | example.com | sylvia@example.com (or the name typed)
            "aspect": str,  # greeting | signoff | contractions | case | punctuation | length
            "rule": str,
            "evidence": str,  # JSON list of draft ids
            "verified_on": int,  # the user's real emails to that scope it was checked against
            "verified_kept": int,  # of which keep it
            "created_at": str,
        },
        pk="id",
    )
    db.table("scoped_rules").create_index(["identity", "scope", "scope_value"])
    # Background retraining from edits: each attempt, and whether the new adapter was kept.
    db.table("retrains").create(
        {
            "id": int,
            "profile": str,
            "started_at": str,
            "finished_at": str,
            "pairs": int,  # (draft, final) pairs trained on
            "held_out": int,
            "old_score": float,
            "new_score": float,
            "decision": str,  # running | kept_new | kept_old | failed | cancelled
            "note": str,
        },
        pk="id",
    )


@migration(8, "distillation batches: jobs submitted to a provider's batch service, so a closed app can collect them")
def _m008_distill_batches(db: sqlite_utils.Database) -> None:
    db.table("distill_batches").create(
        {
            "id": int,
            "backend": str,  # the endpoint's name
            "provider": str,
            "model": str,
            "batch_id": str,  # the provider's id (msgbatch_…, batch_…, batches/…)
            "stage": str,  # intents | baselines | R1 | R2 | R3
            "sender": str,  # NULL: every identity
            "config": str,  # JSON: the DistillConfig fields that pick the rows (limit, strategies, seed …)
            "custom_ids": str,  # JSON list: what each request was for (a row's key), in submission order
            "requests": int,
            "estimate": str,  # JSON: tokens and cost shown before submitting
            "state": str,  # submitted | running | collected | failed | expired | cancelled
            "provider_state": str,  # the provider's own word, last seen
            "counts": str,  # JSON: succeeded / errored / expired … as last seen, then as collected
            "submitted_at": str,
            "checked_at": str,
            "collected_at": str,
            "error": str,
        },
        pk="id",
    )
    db.table("distill_batches").create_index(["backend", "state"])


@migration(9, "accounts: saving drafts to the server's Drafts folder (off unless the user turns it on)")
def _m009_account_drafts(db: sqlite_utils.Database) -> None:
    db.table("accounts").add_column("save_drafts", int, not_null_default=0)
    db.table("accounts").add_column("drafts_folder", str)  # NULL: found on the server (\\Drafts flag, else the name)


@migration(10, "plain rewrites: each sent email said again in a generic style (the voice stage's training input)")
def _m010_plain_rewrites(db: sqlite_utils.Database) -> None:
    # Keyed by the sent email, not by an intent: the rewrite is made from the email itself, so it
    # holds the same facts (the content guard checks it) in the style a large model drafts in.
    db.table("plain_rewrites").create(
        {
            "id": int,
            "message_id": int,
            "text": str,
            "status": str,  # ok | failed
            "backend": str,
            "model": str,
            "prompt_version": str,
            "temperature": float,
            "source": str,
            "raw": str,
            "error": str,
            "attempts": int,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("message_id", "messages", "id")],
    )
    db.table("plain_rewrites").create_index(["message_id", "source"], unique=True)
