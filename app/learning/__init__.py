"""Learning from what the user changes (issue 6/6), in data-flow order:

capture.py (every draft, and what the user did with it) -> matching.py (sent mail imported later
is matched to its draft) -> distance.py (edit distance, similarity) -> scoped.py (rules for one
recipient, a domain or all mail, verified against the user's real emails) -> retrain.py (when
enough pairs have come in, the agent retrains in the background; a new adapter replaces the old
only when it does no worse on the newest edits). loop.py ties them to imports and edits.
"""
