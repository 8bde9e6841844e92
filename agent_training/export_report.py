"""Writing the datasets a distillation made, and showing what they hold (shared by the distill
command and the batch chain that finishes it later)."""

from __future__ import annotations

from rich.table import Table

from app.cli.common import console
from app.console_text import cells, esc


def export_datasets(db, config, out_dir) -> None:
    """Write the datasets of what ``config`` distilled and show them."""
    from agent_training.dataset import export
    from agent_training.distill import MEASURED_SOURCE
    from agent_training.rules import MEASURED

    if config.backend:
        export_strategies = [(s, None) for s in config.strategies]
    else:
        export_strategies = [(MEASURED, MEASURED_SOURCE)]
    sender = config.sender
    for strategy, source in export_strategies:
        stats = export(db, strategy=strategy, sender=sender, out_dir=out_dir, rules_source=source)
        table = Table(title=f"Dataset ({strategy}): {esc(stats['directory'])}")
        for col in ("sender", "train", "test", "train dates", "test dates"):
            table.add_column(col)
        for s, v in stats["per_sender"].items():
            table.add_row(
                *cells(
                    s,
                    v["train"],
                    v["test"],
                    f"{(v['first_train'] or '')[:10]} … {(v['last_train'] or '')[:10]}",
                    f"{(v['first_test'] or '')[:10]} … {(v['last_test'] or '')[:10]}",
                )
            )
        console.print(table)
        console.print(
            f"{stats['examples']} examples; mean words: intent {stats['mean_intent_words']}, rules "
            f"{stats['mean_rules_words']}, email {stats['mean_email_words']}; undated left out: {stats['undated_excluded']}"
        )
        voice = stats.get("voice_pairs", {}).get("train")
        if voice and voice["pairs"]:
            console.print(voice_pairs_line(voice), markup=False, highlight=False)


def voice_pairs_line(voice: dict) -> str:
    """What the voice stage's training pairs amount to, and whether they are enough to train it (a
    bare "0 of 2 kept" after the demo read like a failure)."""
    from app.ops.training import MIN_VOICE_PAIRS

    line = (
        f"Voice stage pairs (train): {voice['kept']} of {voice['pairs']} kept by the content guard"
        f" ({voice.get('kept_not_distilled', 0)} from emails said plainly only)"
    )
    if voice["kept"] < MIN_VOICE_PAIRS:
        return line + (
            f"; the voice stage trains from {MIN_VOICE_PAIRS}, so not yet: `tiller distill --backend NAME "
            "--voice-only --limit N` says N more of your emails plainly"
        )
    return line + "; `tiller train` trains the voice stage after the agent"
