"""Length-bucketed batches for pair scoring.

A forward pass pads every sequence of a batch to the batch's longest, so a batch that mixes a
60-token pair with a 512-token one spends most of its work on padding (attention grows with the
square of the padded length). Sorting the pairs by token length and cutting the sorted list into
batches keeps each batch's lengths close; the scores are put back in the candidates' order.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_BATCH_TOKENS = 4096


def length_buckets(
    lengths: Sequence[int], batch_size: int, batch_tokens: int | None = DEFAULT_BATCH_TOKENS
) -> list[list[int]]:
    """Positions of ``lengths`` grouped into batches, shortest first.

    A batch holds at most ``batch_size`` items and, when ``batch_tokens`` is set, at most that many
    padded tokens (items x the batch's longest length); an item longer than ``batch_tokens`` gets a
    batch of its own. Ties keep the input order, so the batching is deterministic.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[i]  # ascending order: the newcomer is the longest
        full = len(current) >= batch_size or (
            batch_tokens is not None and current and (len(current) + 1) * longest > batch_tokens
        )
        if full:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
