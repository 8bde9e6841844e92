"""Mailbox import: sources (Maildir, mbox, .eml folders; IMAP slots into the same interface),
MIME decoding, splitting the sender's own words from quoted context, identity and de-duplication."""
