"""What a notifier says when a send fails: retry or not, why, and when."""

from __future__ import annotations


class SendFailed(Exception):
    """A send that did not go through.

    `retry`: whether trying again can help; `retry_after`: seconds the target asked us to wait;
    `disable`: the destination itself is unusable (blocked, gone) and should stop being tried;
    `new_chat_id`: a group became a supergroup with this id.
    """

    def __init__(
        self,
        reason: str,
        *,
        retry: bool,
        retry_after: float | None = None,
        disable: bool = False,
        new_chat_id: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.retry_after = retry_after
        self.disable = disable
        self.new_chat_id = new_chat_id
