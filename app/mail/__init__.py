"""Mailbox import: sources (Maildir, mbox, .eml folders; IMAP slots into the same interface),
MIME decoding, splitting the sender's own words from quoted context, identity and de-duplication."""

# mail split by an older splitter is split again when a database is opened (app/store/db.on_open)
from app.mail import resplit  # noqa: E402, F401
