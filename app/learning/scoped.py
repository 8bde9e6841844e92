"""Scoped preferences: what the user's edits say about one recipient, one domain, or all their mail.

Each (draft, final) pair is measured on both sides (app/measured_style.py); an aspect the user changed
(greeting, sign-off, contractions, lower case, exclamation marks, length) gives a correction: the
measured rule of the final text for that aspect, in the wording the rule check reads. Corrections
become rules at three scopes:

- **recipient**: the newest correction for an aspect to that recipient;
- **domain**: the same name-free rule from edits to at least ``DOMAIN_MIN`` recipients at a domain;
- **all**: the same name-free rule from at least ``ALL_MIN`` recipients.

Length is the exception: two length corrections almost never read the same ("about 5 words",
"about 8 words"), so at the domain and all-mail scopes they count as one preference when they
point the same way (the user shortened, or lengthened, the drafts to each of those recipients),
and the rule asks for the median of those final lengths. Length is also what the edit distance
of a draft depends on most after its content: in the edit replay (benchmarks/edit_replay.py), a
draft within the length bounds of the real email was 0.80 away from it, one outside them 0.91.

Before a rule is kept it is verified (PROSE's check) against the user's real sent emails in its
scope: it must hold in at least ``VERIFY_SHARE`` of them when there are ``VERIFY_MIN`` or more
(one edit does not overrule years of mail); with fewer, the edits alone decide. The table is
rebuilt from all pairs each time (``learn``), so forgetting a draft forgets what it taught.

At drafting time (app/ops/compose.py) the rules for the email's recipient replace the agent's rules on
the same aspect, the most specific scope winning: "Sylvia: first name, no greeting line" applies to
Sylvia only.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from email.utils import parseaddr

from sqlite_utils import Database

from app.measured_style import measure, style_rules
from app.rule_grammar import length_rule, parse_rule, rule_aspect
from app.rulecheck import BROKEN, KEPT, REPAIRED, check_draft
from app.store import drafts as store
from app.store.db import write_transaction

DOMAIN_MIN = 2
ALL_MIN = 3
VERIFY_MIN = 3
VERIFY_SHARE = 0.6
MAX_VERIFY_EMAILS = 200  # the newest-first order of the store does not matter: a sample is enough

NAME_FREE = ("signoff", "contractions", "case", "punctuation")  # "No greeting" too (see _name_free)


def recipient_key(recipient: str | None) -> str | None:
    """ "Sylvia Ortiz <sylvia@x.com>" -> "sylvia@x.com"; "Sylvia" -> "sylvia"; None when empty."""
    if not recipient or not recipient.strip():
        return None
    name, address = parseaddr(recipient.strip())
    if address and "@" in address:
        return address.lower()
    return (name or recipient).strip().lower()


def domain_of(key: str | None) -> str | None:
    return key.rsplit("@", 1)[1] if key and "@" in key else None


def rules_by_aspect(rules: list[str]) -> dict[str, str]:
    """aspect -> the first rule on it."""
    out: dict[str, str] = {}
    for rule in rules:
        aspect = rule_aspect(rule)
        if aspect and aspect not in out:
            out[aspect] = rule
    return out


def corrections(draft: str, final: str) -> dict[str, str]:
    """aspect -> the final text's rule, for each aspect the user changed."""
    before, after = measure(draft), measure(final)
    wanted = rules_by_aspect(style_rules(after))
    had = rules_by_aspect(style_rules(before))
    out = {}
    if (before.greeting or "").strip().lower() != (after.greeting or "").strip().lower():
        out["greeting"] = wanted["greeting"]
    if (before.signoff, before.signature_name) != (after.signoff, after.signature_name):
        out["signoff"] = wanted["signoff"]
    if "contractions" in wanted and _kind(wanted["contractions"]) != _kind(had.get("contractions")):
        out["contractions"] = wanted["contractions"]
    if "case" in wanted and "case" not in had:
        out["case"] = wanted["case"]
    if _kind(wanted.get("punctuation")) == "plain_punctuation" and before.exclamations:
        out["punctuation"] = wanted["punctuation"]
    if before.word_count and after.word_count and not 0.67 <= after.word_count / before.word_count <= 1.5:
        out["length"] = length_rule(after.word_count, after.paragraphs)  # no comparison with a generic draft
    return out


def _kind(rule: str | None) -> str | None:
    form = parse_rule(rule) if rule else None
    return form.kind if form is not None else None


def _name_free(aspect: str, rule: str) -> bool:
    return aspect in NAME_FREE or (aspect == "greeting" and rule.lower().startswith("no greeting"))


def rule_status(text: str, rule: str) -> str | None:
    """What the rule check says of ``rule`` on ``text`` as it is (kept, repaired, broken, not
    checkable; repaired means the text did not keep it)."""
    wanted = re.sub(r"^\s*[-*•]\s*", "", rule).strip()
    found = [c for c in check_draft(text, [rule]).checks if c.rule == wanted]
    return found[0].status if found else None


def kept_share(rule: str, texts: list[str]) -> tuple[int, int]:
    """(emails the rule was checkable on, emails that keep it)."""
    on = kept = 0
    for text in texts[:MAX_VERIFY_EMAILS]:
        status = rule_status(text, rule)
        if status not in (KEPT, REPAIRED, BROKEN):
            continue
        on += 1
        kept += status == KEPT
    return on, kept


@dataclass
class LearnReport:
    rules: list[store.ScopedRuleRow]
    rejected: list[tuple[str, str, str, int, int]]  # (scope, value, rule, verified on, kept)


def learn(db: Database, *, before: str | None = None) -> LearnReport:
    """Rebuild the scoped rules from every (draft, final) pair; see the module docstring.
    ``before``: verify against the user's emails dated earlier only (the edit replay)."""
    pairs = store.learning_pairs(db)
    # (identity, recipient) -> aspect -> [(draft id, rule)], oldest first
    by_recipient: dict[tuple[str | None, str], dict[str, list[tuple[int, str]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    # identity -> recipient -> (draft id, final length, shorter?) of the newest length correction
    draft_lengths: dict[str | None, dict[str, tuple[int, int, bool]]] = defaultdict(dict)
    for pair in pairs:
        key = recipient_key(pair.recipient)
        if key is None:
            key = ""  # no recipient given: evidence for the broader scopes only
        for aspect, rule in corrections(pair.text, pair.final_text or "").items():
            by_recipient[(pair.identity, key)][aspect].append((pair.id, rule))
            if aspect == "length":
                final_words, draft_words = measure(pair.final_text or "").word_count, measure(pair.text).word_count
                draft_lengths[pair.identity][key] = (pair.id, final_words, final_words < draft_words)
    candidates: list[store.ScopedRuleRow] = []
    # (identity, aspect, rule) -> {recipient: draft ids}
    spread: dict[tuple[str | None, str, str], dict[str, list[int]]] = defaultdict(dict)
    for (identity, key), aspects in by_recipient.items():
        for aspect, found in aspects.items():
            draft_id, rule = found[-1]  # the newest correction is the user's current preference
            if key:
                candidates.append(
                    store.ScopedRuleRow(identity, "recipient", key, aspect, rule, [d for d, _ in found], 0, 0)
                )
            if _name_free(aspect, rule):
                spread[(identity, aspect, rule)].setdefault(key, []).extend(d for d, r in found if r == rule)
    for (identity, aspect, rule), recipients in spread.items():
        for domain, members in _by_domain(recipients).items():
            if len(members) >= DOMAIN_MIN:
                evidence = sorted(d for k in members for d in recipients[k])
                candidates.append(store.ScopedRuleRow(identity, "domain", domain, aspect, rule, evidence, 0, 0))
        if len(recipients) >= ALL_MIN:
            evidence = sorted(d for ids in recipients.values() for d in ids)
            candidates.append(store.ScopedRuleRow(identity, "all", "", aspect, rule, evidence, 0, 0))
    for identity, per_recipient in draft_lengths.items():
        candidates += _length_rules(identity, per_recipient)
    kept_rules, rejected = [], []
    for row in candidates:
        if row.scope == "recipient":
            texts = (
                store.own_texts_to(db, row.identity, address=row.scope_value, before=before)
                if "@" in row.scope_value
                else []
            )
        elif row.scope == "domain":
            texts = store.own_texts_to(db, row.identity, domain=row.scope_value, before=before)
        else:
            texts = store.own_texts_to(db, row.identity, before=before)
        row.verified_on, row.verified_kept = kept_share(row.rule, texts)
        if row.verified_on >= VERIFY_MIN and row.verified_kept < VERIFY_SHARE * row.verified_on:
            rejected.append((row.scope, row.scope_value, row.rule, row.verified_on, row.verified_kept))
            continue
        kept_rules.append(row)
    with write_transaction(db.conn):
        store.replace_scoped_rules(db, kept_rules)
    return LearnReport(kept_rules, rejected)


def _by_domain(recipients) -> dict[str, list[str]]:
    """domain -> the recipient addresses at it (names without an address and "" have none)."""
    domains: dict[str, list[str]] = defaultdict(list)
    for key in recipients:
        if domain := domain_of(key):
            domains[domain].append(key)
    return domains


def _length_rules(identity: str | None, corrected: dict[str, tuple[int, int, bool]]) -> list[store.ScopedRuleRow]:
    """Domain and all-mail length rules from the recipients whose drafts the user cut (or, if more
    of them, lengthened): "Length: about M words.", M the median of their final lengths; the
    recipients whose newest correction went the other way do not count (see the module docstring).
    ``corrected``: recipient -> (draft id, final length, shorter than the draft?)."""
    shorter = sum(s for _, _, s in corrected.values())
    if shorter * 2 == len(corrected):
        return []  # as many cut as lengthened: no preference
    way = shorter * 2 > len(corrected)
    recipients = {k: v for k, v in corrected.items() if v[2] == way}

    def row(scope: str, value: str, members: list[str]) -> store.ScopedRuleRow:
        median = round(statistics.median(recipients[k][1] for k in members))
        rule = length_rule(max(1, median))
        return store.ScopedRuleRow(
            identity, scope, value, "length", rule, sorted(recipients[k][0] for k in members), 0, 0
        )

    out = [row("domain", d, members) for d, members in _by_domain(recipients).items() if len(members) >= DOMAIN_MIN]
    if len(recipients) >= ALL_MIN:
        out.append(row("all", "", list(recipients)))
    return out


_SCOPE_ORDER = {"all": 0, "domain": 1, "recipient": 2}


def rules_for(rows: list[store.ScopedRuleRow], recipient: str | None) -> list[store.ScopedRuleRow]:
    """The scoped rules that apply to an email to ``recipient``: one per aspect, the most specific."""
    key = recipient_key(recipient)
    domain = domain_of(key)
    chosen: dict[str, store.ScopedRuleRow] = {}
    for row in sorted(rows, key=lambda r: (_SCOPE_ORDER[r.scope], r.identity is not None)):
        fits = (
            row.scope == "all"
            or (row.scope == "domain" and domain == row.scope_value)
            or (row.scope == "recipient" and key == row.scope_value)
        )
        if fits:
            chosen[row.aspect] = row  # later (more specific) rows win
    return list(chosen.values())


def apply_scoped(agent_rules: list[str], scoped: list[store.ScopedRuleRow]) -> tuple[list[str], list[str]]:
    """(the rules to draft with, the scoped rules used): each scoped rule takes the place of the
    agent's rules on its aspect, or joins them when the agent said nothing on it."""
    wanted = {row.aspect: row.rule for row in scoped}
    out, placed = [], set()
    for rule in agent_rules:
        aspect = rule_aspect(rule)
        if aspect in wanted:
            if aspect not in placed:
                out.append(wanted[aspect])
                placed.add(aspect)
            continue
        out.append(rule)
    out += [rule for aspect, rule in wanted.items() if aspect not in placed]
    return out, list(wanted.values())


def with_learned_rules(
    agent_rules: list[str], identity: str | None, recipient: str | None, stored=None
) -> tuple[list[str], list[str]]:
    """(the rules to draft with, the learned ones among them): the agent's rules with the scoped
    rules ``identity`` learned for ``recipient`` in their place (``stored``: identity -> its scoped
    rules; default the database's). The compose operation and the Compose page both draft so."""
    return apply_scoped(agent_rules, rules_for((stored or stored_rules)(identity), recipient))


def stored_rules(identity: str | None) -> list[store.ScopedRuleRow]:
    """The scoped rules in the user's database for ``identity`` (and those learned for every identity)."""
    from app.store.db import open_database

    db = open_database()
    try:
        return store.scoped_rules(db, identity)
    finally:
        db.conn.close()
