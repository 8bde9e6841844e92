"""The user imports a mailbox: one operation for the CLI's ``tiller import``, the app's Import page
and the tests. The importer (app/mail) stores mail and nothing else; what an import means for
learning (sent mail that was one of Tiller's drafts: a match, scoped rules, the tag selector, maybe a
retrain) happens here, after it, so the mail layer never reaches into learning."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlite_utils import Database

from app.jobs import CancelToken
from app.learning.loop import after_import
from app.mail.importer import ImportProgress, ImportResult, MailImport
from app.mail.sources import MailSource


class ImportOperation:
    """``for progress in ImportOperation(db, source).run(): ...`` then read ``.result``: the
    import's progress (resumable, cancellable), then one more event once learning has run."""

    def __init__(
        self,
        db: Database,
        source: MailSource,
        *,
        my_addresses: Iterable[str] = (),
        cancel: CancelToken | None = None,
        **options,  # MailImport's own: batch_size, progress_every, workers
    ):
        self.db = db
        self.importer = MailImport(db, source, my_addresses=my_addresses, cancel=cancel, **options)
        self.result: ImportResult | None = None

    def run(self) -> Iterator[ImportProgress]:
        last = None
        for progress in self.importer.run():
            last = progress
            yield progress
        result = self.importer.result
        if result is not None and result.run_id:  # a run that waited and was cancelled stored nothing
            learned = after_import(self.db, result.run_id)  # a cancelled run's batches are stored: learn from them
            result.drafts_matched, result.edits_replaced = learned.matched, learned.replaced_edits
            if last is not None and learned.matched:
                last.message = f"{result.status}; {len(learned.matched)} sent email(s) matched to Tiller's drafts"
                yield last
        self.result = result
