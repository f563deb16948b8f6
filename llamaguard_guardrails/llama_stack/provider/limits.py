"""What one request to the provider may cost: inputs, characters, checks at once, and the deadline of each.

Llama Stack 0.7 puts no limit on a request body, and the core classifies everything it is given (a long text in
windows, a long history in history windows), so without these a single ``run_shield`` or ``/v1/moderations``
request could hold the model for as long as its sender likes. The limits mirror the served guard's
(``ServeSettings``): they are checked before any model work and a request past one gets a 4xx saying which
limit and what to change.
"""

from __future__ import annotations

from typing import Any

from ...core.values import text_size


class Admission:
    """Counts the checks admitted and not yet finished; refuses a request that would take more than ``limit``.

    A check whose deadline passed still runs until the model step ends: the guard's ``abandoned_checks`` count
    against the limit too, so clients sending checks with short deadlines cannot pile work up behind it.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending = 0

    def busy(self, guard: Any) -> int:
        return self.pending + int(getattr(guard, "abandoned_checks", 0) or 0)

    def admits(self, count: int, guard: Any) -> bool:
        return self.busy(guard) + count <= self.limit


__all__ = ["Admission", "text_size"]
