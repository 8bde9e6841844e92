"""``tiller draft`` and ``tags``: the agent's rules, the draft, its rule check, and ranking drafts."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
from rich.table import Table

from app.cli.common import cancel_on_ctrl_c, cli, console, err_console
from app.console_text import cells, esc
from app.drafting import DRAFT_MAX_TOKENS

MAX_RULES_BYTES = 1 << 20  # a rules file is a few hundred bytes
MAX_REPLY_BYTES = 8 << 20  # the email being answered; the agent cuts it to its context anyway


def read_rules_file(path: Path) -> list[str]:
    from app.agent.template import parse_rules
    from app.files import ReadRefused, read_text_bounded

    try:
        text = read_text_bounded(path, MAX_RULES_BYTES, "rules file")
    except ReadRefused as exc:
        raise click.ClickException(str(exc)) from None
    rules = parse_rules("\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    if not rules:
        raise click.ClickException(f"{path}: no rules in it (one rule per line; lines starting with # are ignored)")
    return rules


@cli.command("draft")
@click.argument("intent")
@click.option("--to", "recipient", help="Recipient (name or address).")
@click.option("--subject")
@click.option(
    "--reply-to",
    "reply_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A file with the email you are answering.",
)
@click.option("--from", "sender", help="Which of your identities writes (picks its agent profile).")
@click.option("--backend", help="Large model that writes the draft (default: the default backend).")
@click.option("--show-rules", is_flag=True, help="Print the agent's rules before the draft.")
@click.option(
    "--rules-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Rules to use instead of the agent's; if the file does not exist, the agent's rules are written there to edit.",
)
@click.option("--no-agent", is_flag=True, help="Draft without rules (the zero-shot baseline).")
@click.option("--max-tokens", default=DRAFT_MAX_TOKENS, show_default=True)
@click.option(
    "--candidates",
    default=1,
    show_default=True,
    type=click.IntRange(1, 4),
    help="Write 2-4 drafts, each with other style/topic tags; rank them and Tiller learns which tags you like.",
)
@click.option(
    "--rank",
    "ranking",
    help='With --candidates: your ranking, best first ("2,1,3"), or one pick ("2"); asked when omitted.',
)
@click.option(
    "--no-check", is_flag=True, help="Show the model's draft as it is, without checking it against the rules."
)
@click.option(
    "--edit",
    "edit",
    is_flag=True,
    help="Open the draft (the picked one of several) in $EDITOR; what you save is kept and teaches the agent.",
)
@click.option(
    "--no-learned",
    is_flag=True,
    help="Draft with the agent's rules alone, without the rules learned from your edits (`tiller edits rules`).",
)
@click.option(
    "--voice/--no-voice",
    default=None,
    help="Say the large model's draft again in your words on this computer (the voice stage; default: on when "
    "trained and not switched off with `tiller voice off`). A rewrite that loses or adds a fact is not used.",
)
@click.option(
    "--reply-to-message",
    "reply_to_message",
    type=int,
    help="Answer this imported message (an id from `tiller inbox`): its sender, subject and text are the context.",
)
@click.option(
    "--save",
    "save_to",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[ACCOUNT]",
    help="Save the draft (the picked one) to the account's Drafts folder, threaded; never sent. The account must "
    "allow it (`tiller accounts set NAME --save-drafts on`); without a name, the one account that does.",
)
@click.option(
    "--language",
    default="auto",
    show_default=True,
    metavar="auto|off|NAME",
    help="The reply's language: auto reads it from the message answered, else from the intent, and says it as a "
    "rule (not for English with English); a name (German, fr) asks for one; off adds no language rule.",
)
def draft_command(
    intent,
    recipient,
    subject,
    reply_file,
    sender,
    backend,
    show_rules,
    rules_file,
    no_agent,
    max_tokens,
    candidates,
    ranking,
    no_check,
    edit,
    no_learned,
    voice,
    reply_to_message,
    save_to,
    language,
) -> None:
    """Draft an email: your intent -> the on-device agent's rules -> the large model, streamed.

    Only the intent, these details, the rules and any style tags are sent to the backend; your mail is not.
    """
    from app.backends.errors import BackendError, Cancelled

    previous = None
    if reply_file:
        from app.files import ReadRefused, read_text_bounded

        try:
            previous = read_text_bounded(reply_file, MAX_REPLY_BYTES, "email to answer", errors="replace")
        except ReadRefused as exc:
            raise click.ClickException(str(exc)) from None
    if not intent.strip():
        raise click.UsageError("the intent is empty: say what the email should tell the recipient")
    from app.ops.compose import ComposeOperation, ComposeRequest

    original = None
    if reply_to_message is not None:
        from app.cli.common import _open_db
        from app.store.messages import reply_original

        original = reply_original(_open_db(), reply_to_message)
        if original is None:
            raise click.UsageError(f"--reply-to-message {reply_to_message}: no such message (see `tiller inbox`)")
        if reply_file:
            raise click.UsageError("--reply-to and --reply-to-message exclude each other")
        from app.mail.imap_drafts import reply_defaults

        previous = original.text
        recipient, subject = reply_defaults(original.from_addr, original.subject, recipient, subject)
    save_account = _drafts_account(save_to) if save_to is not None else None

    given = None
    if rules_file and rules_file.exists():
        given = tuple(read_rules_file(rules_file))
        err_console.print(f"Rules from {esc(rules_file)} ({len(given)})")
    tag_sets: tuple[tuple[str, ...], ...] = ((),)
    selector = None
    if candidates > 1:
        from app.ranking.selector import load_selector

        with console.status("Choosing style tags…"):
            selector = load_selector(sender)
            tag_sets = tuple(tuple(t) for t in selector.propose(intent, m=candidates))
    request = ComposeRequest(
        intent,
        recipient=recipient,
        subject=subject,
        previous_email=previous,
        sender=sender,
        backend=backend,
        rules=given,
        use_agent=not no_agent,
        tag_sets=tag_sets,
        max_tokens=max_tokens,
        check=not no_check,
        learned=not no_learned,
        voice=voice,
        language=None if language.lower() == "off" else language,
    )
    with cancel_on_ctrl_c() as token:
        op = ComposeOperation(
            request,
            token,
            on_retry=lambda n: err_console.print(f"[yellow]{esc(n.error)}; retrying in {n.wait_s:.1f} s[/]"),
        )
        try:
            render_compose(op, show_rules=show_rules, rules_file=rules_file if given is None else None)
        except Cancelled:
            raise click.ClickException("cancelled") from None
        except (BackendError, FileNotFoundError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
    from app.cli.common import _open_db
    from app.learning.capture import record_action, record_compose

    db = _open_db()
    draft_ids = record_compose(db, request, op.result, op.rules_ready)
    picked = 0
    if selector is not None:
        picked = _rank_candidates(intent, selector, [d.tags for d in op.result.drafts], sender, ranking)
        if draft_ids and picked is not None:
            record_action(db, draft_ids[picked], "picked")
    if save_account is not None:
        _save_to_server(
            save_account, op.result.drafts[picked or 0].draft.text, intent, sender, recipient, subject, original
        )
    if edit:
        _edit_draft(db, op.result.drafts[picked or 0].draft.text, draft_ids[picked or 0] if draft_ids else None)
    elif draft_ids:
        err_console.print(
            f"[dim]Stored as draft {draft_ids[picked or 0]}: `tiller edits` shows it, and how it was changed.[/]"
        )


def _drafts_account(name: str):
    """The account a draft is saved to, checked before anything is drafted."""
    from app.cli.common import _open_db
    from app.mail.accounts import AccountError
    from app.mail.imap_drafts import DraftsOff, drafts_account

    try:
        return drafts_account(_open_db(), name or None)
    except DraftsOff as exc:
        raise (click.ClickException(str(exc)) if name else click.UsageError(f"--save: {exc}")) from None
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None


def _save_to_server(account, text: str, intent: str, sender, recipient, subject, original) -> None:
    from app.mail.accounts import AccountError
    from app.mail.imap import ImapError
    from app.mail.imap_drafts import save_reply

    try:
        with console.status(f"Saving the draft to {account.name}…"):
            saved = save_reply(
                account, text, intent=intent, sender=sender, recipient=recipient, subject=subject, original=original
            )
    except (ImapError, AccountError) as exc:
        raise click.ClickException(f"--save: {exc}") from None
    err_console.print(esc(saved.sentence(account.name, original is not None)))


MAX_EDIT_BYTES = 1 << 20  # an email edited by hand; a larger file is not read (and not lost: it stays)


def edit_in_editor(text: str) -> str | None:
    """The user's text after $EDITOR on ``text`` (compare it with ``text`` to see a change). The saved
    file is read as a bounded regular file (an editor or a link could leave a FIFO, /dev/zero or a
    huge file there) and decoded with a fallback, so non-UTF-8 bytes never cost the user the edit.
    When the file cannot be read, it is kept and the error says where."""
    import tempfile

    from app.files import ReadRefused, read_regular_file

    folder = Path(tempfile.mkdtemp(prefix="tiller-edit-"))
    path = folder / "draft.txt"
    path.write_text(text, encoding="utf-8")
    click.edit(filename=str(path), extension=".txt", require_save=False)
    try:
        data = read_regular_file(path, MAX_EDIT_BYTES)
    except ReadRefused as exc:
        raise click.ClickException(f"your edit was not read ({exc.detail}); it is kept at {path}") from None
    try:
        edited = data.decode("utf-8")
    except UnicodeDecodeError:
        # an editor that saved in the system's legacy encoding: the locale's, else Windows-1252
        # (a superset of Latin-1); detection guesses wrong on a few words
        import locale

        encoding = locale.getpreferredencoding(False)
        if encoding.lower().replace("-", "") in ("utf8", "ascii", "ansix3.41968"):
            encoding = "cp1252"
        edited = data.decode(encoding, errors="replace")
        err_console.print(
            f"Your edit was not UTF-8; read as {encoding}.", style="yellow", markup=False, highlight=False
        )
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    return edited.replace("\r\n", "\n")


def _edit_draft(db, text: str, draft_id: int | None) -> None:
    """$EDITOR on the draft; the saved text is printed and kept as what the user made of it."""
    from app.learning.capture import record_action
    from app.learning.loop import after_edit

    edited = edit_in_editor(text)
    if edited is None or edited.strip() == text.strip():
        err_console.print("Unchanged.")
        return
    console.rule("Your email")
    console.print(edited.rstrip(), markup=False, highlight=False)
    if draft_id is None:
        err_console.print("Not stored: recording drafts is off (`tiller edits on`).")
        return
    after = record_action(db, draft_id, "edited", edited)
    learned = after_edit(db, after.identity)
    err_console.print(
        f"Kept as draft {draft_id}'s final text (changed {after.edit_distance:.0%} of its words); "
        f"{learned.scoped_rules} scoped rule(s) learned from your edits so far (`tiller edits rules`)."
    )
    if learned.retraining:
        err_console.print(
            f"Enough edits have come in: the agent ({', '.join(learned.retraining)}) is retraining in the "
            "background; drafting goes on with the current one (`tiller edits` shows the outcome)."
        )


def render_compose(op, *, show_rules: bool = False, rules_file: Path | None = None) -> None:
    """Show a compose operation as it runs: rules, streamed drafts, each draft's rule check."""
    from app.ops.compose import DraftChecked, DraftText, Reasking, RulesReady, VoiceRewritten
    from app.rulecheck import BROKEN, KEPT, REPAIRED

    events = op.run()
    with console.status(
        "The agent is writing rules on this computer…"
        if op.request.use_agent and op.request.rules is None
        else "Preparing…"
    ):
        first = next(events)
    assert isinstance(first, RulesReady)
    if first.source == "measured":
        err_console.print(
            "[yellow]No trained agent for this sender yet: the rules are measured from your own sent mail "
            "(`tiller train` trains the agent to write them for each email).[/]"
        )
    elif first.source == "agent" and not first.trained:
        err_console.print(
            "[yellow]No trained agent for this sender: the base model alone writes the rules (run `tiller train`).[/]"
        )
    if rules_file is not None and first.source in ("agent", "measured"):
        from app.files import write_atomic

        write_atomic(
            rules_file,
            "# One rule per line; edit, then run the same command again.\n"
            + "\n".join(f"- {r}" for r in first.rules)
            + "\n",
        )
        err_console.print(f"The agent's rules are in {esc(rules_file)}: edit them and run again to draft with them.")
        show_rules = True
    if show_rules:
        console.rule(
            {
                "agent": "Preference rules (made on this computer)",
                "measured": "Preference rules (measured from your mail)",
            }.get(first.source, "Preference rules")
        )
        for r in first.rules:
            learned = " (learned from your edits)" if r in first.scoped else ""
            console.print(f"- {r}{learned}", markup=False, highlight=False)
    for c in first.corrected:
        instead = f"measured from your mail instead: {c.instead}" if c.instead else "left out"
        err_console.print(esc(f'The agent said "{c.said}", but {c.why}: {instead}'), style="yellow", highlight=False)
    several = len(op.request.tag_sets) > 1
    current = None
    for event in events:
        if isinstance(event, DraftText):
            if event.index != current:
                current = event.index
                tags = op.request.tag_sets[event.index]
                console.rule(f"Draft {event.index + 1} · tags: {esc(', '.join(tags))}" if several else "Draft")
            console.print(event.text, end="", markup=False, highlight=False)
        elif isinstance(event, VoiceRewritten):
            console.print()
            if event.kept:
                console.rule("In your words (the voice stage, on this computer; the draft above is the large model's)")
                console.print(event.text.rstrip(), markup=False, highlight=False)
            else:
                err_console.print(f"[yellow]Voice stage: {esc(event.reason)}.[/]")
                if event.rewrite.strip():  # what it wrote, to see why
                    err_console.print(esc(f"(it wrote: {' '.join(event.rewrite.split())[:300]})"), style="dim")
        elif isinstance(event, Reasking):
            console.print()
            err_console.print(
                f"[yellow]The draft broke {len(event.broken)} rule(s) that cannot be repaired safely; "
                "asking the model once more…[/]"
            )
        elif isinstance(event, DraftChecked):
            console.print()
            checked = event.draft
            if checked.checks:
                styles = {KEPT: "green", REPAIRED: "yellow", BROKEN: "red"}
                console.rule("Rule check" + (f" (draft {event.index + 1})" if several else ""))
                for c in checked.checks:
                    style = styles.get(c.status, "dim")
                    note = f" [dim]({esc(c.note)})[/]" if c.note else ""
                    console.print(f"[{style}]{c.status:>13}[/] {esc(c.rule)}{note}", highlight=False)
                for sentence in event.unsupported:
                    console.print(f"[magenta]{'check':>13}[/] not in your intent? {esc(sentence)}", highlight=False)
                kept = sum(c.status != BROKEN for c in checked.checkable)
                summary = f"{kept} of {len(checked.checkable)} checkable rules kept"
                summary += " after repair" if any(c.status == REPAIRED for c in checked.checks) else ""
                summary += "; re-asked once" if checked.reasked else ""
                err_console.print(esc(summary))
                if checked.text.strip() != checked.original.strip():
                    console.rule("Email (after the rule check; the draft above is the model's original)")
                    console.print(checked.text.rstrip(), markup=False, highlight=False)
            err_console.print(
                f"[dim]{esc(event.backend or '-')} ({esc(event.model or '-')}), {event.elapsed_s:.1f} s, "
                f"finish: {esc(event.finish_reason)}[/]"
            )


def parse_ranking(text: str, m: int) -> tuple[list[int], bool]:
    """ "2,1,3" -> ([1, 0, 2], False); "2" -> ([1, 0, 2], True): zero-based, best first, and whether
    only the best was picked. Raises ValueError naming what is wrong."""
    parts = [p for p in re.split(r"[\s,>]+", text.strip()) if p]
    if not parts:
        raise ValueError("empty ranking")
    try:
        picked = [int(p) - 1 for p in parts]
    except ValueError:
        raise ValueError(f"{text!r}: give draft numbers, best first, like 2,1,3") from None
    if any(not 0 <= i < m for i in picked) or len(set(picked)) != len(picked):
        raise ValueError(f"{text!r}: each of the numbers 1-{m} at most once")
    best_only = len(picked) == 1
    rest = [i for i in range(m) if i not in picked]
    if not best_only and rest:
        raise ValueError(f"{text!r}: rank all {m} drafts, or pick just one")
    return picked + rest, best_only


def _rank_candidates(intent, selector, tag_sets, sender, ranking) -> int | None:
    """Ask for (or take) the user's ranking of the drafts shown, and teach the tag selector;
    returns the index of the draft ranked best (None when not ranked)."""
    from app.ranking.selector import learn_ranking

    m = len(tag_sets)
    console.rule()
    if ranking is not None:
        try:
            order, best_only = parse_ranking(ranking, m)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--rank") from None
    elif not sys.stdin.isatty():
        err_console.print("Not ranked (no --rank and no terminal to ask): nothing learned.")
        return None
    else:
        while True:
            answer = click.prompt(
                "Rank the drafts best first (e.g. 2,1,3) or pick one (e.g. 2); Enter to skip",
                default="",
                show_default=False,
            )
            if not answer.strip():
                err_console.print("Skipped: nothing learned.")
                return None
            try:
                order, best_only = parse_ranking(answer, m)
                break
            except ValueError as exc:
                err_console.print(f"[yellow]{esc(exc)}[/]")
    learned = learn_ranking(selector, sender, intent, [tag_sets[i] for i in order], best_only=best_only)
    err_console.print(esc(f"{learned.sentence()} (saved to {learned.path})"))
    return order[0]


@cli.command("tags")
@click.option("--from", "sender", help="Which of your identities (each learns its own tags).")
@click.option("--reset", is_flag=True, help="Forget what your rankings taught (start over).")
def tags_command(sender, reset) -> None:
    """Show the style/topic tags your draft rankings taught Tiller, or reset them."""
    from app.ranking.selector import learned_preferences, load_selector, reset_selector, state_path

    if reset:
        removed = reset_selector(sender)
        console.print(
            "Forgotten: the next rankings start from scratch." if removed else "Nothing learned yet: nothing to reset."
        )
        return
    if not state_path(sender).is_file():
        console.print("Nothing learned yet: draft with --candidates 3 and rank the drafts.")
        return
    selector = load_selector(sender)
    table = Table(title=f"Learned tag preferences ({selector.updates} rankings)")
    table.add_column("tag")
    table.add_column("preference", justify="right")
    for tag, weight in learned_preferences(selector, n=len(selector.tags)):
        table.add_row(*cells(tag, f"{weight:+.2f}"))
    console.print(table)


@cli.command("mcp")
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the JSON an MCP client (Claude Desktop's claude_desktop_config.json) needs to start Tiller, and exit.",
)
def mcp_command(print_config) -> None:
    """Serve your voice to other assistants over the Model Context Protocol (stdio).

    Tools: style_rules (rules made on this computer), draft (the compose operation with your default backend),
    save_draft (to a Drafts folder you allowed), recent_messages (id, date, sender, subject). Only what a tool
    returns leaves Tiller, and each call is in `tiller ledger`.
    """
    if print_config:
        import json
        import shutil

        from app.mcp_server import client_config

        tiller = shutil.which("tiller")  # a path with spaces stays one word
        config = client_config(tiller) if tiller else client_config(sys.executable, ("-m", "app"))
        click.echo(json.dumps(config, indent=2))
        return
    from app.mcp_server import build_server

    build_server().run()
