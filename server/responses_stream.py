"""The server-sent events of a streamed `/v1/responses` request, as the `openai` client parses them.

The sequence is OpenAI's for one text message: `response.created` and `response.in_progress` at
once, keep-alive comments while a search runs, then (with a reasoning parser, while the model
thinks) a reasoning item: `response.output_item.added`, `response.reasoning_text.delta` per piece
of thinking, `response.reasoning_text.done` and `response.output_item.done`; then the message:
`response.output_item.added`,
`response.content_part.added`, one `response.output_text.delta` per piece of text,
`response.output_text.done`, `response.content_part.done`, `response.output_item.done` and
`response.completed` (or `response.incomplete` when the answer hit `max_output_tokens`), whose
response carries usage and `tts`. Every event is numbered (`sequence_number`) and named in the SSE
`event:` field as well as in its `type`. An error mid-stream is an `error` event; no `[DONE]`
follows, as with OpenAI.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from .errors import APIError
from .planning import PreparedRequest
from .progress import TTSProgress
from .responses import Outcome
from .responses_adapter import (
    new_message_id,
    new_reasoning_id,
    reasoning_item,
    renamed,
    response_object,
    response_wire,
)
from .responses_protocol import (
    ResponseObject,
    ResponseOutputText,
    ResponseReasoningItem,
    ResponsesRequest,
)
from .streaming import KEEPALIVE, StreamItem

__all__ = ["ResponseEvents"]


class ResponseEvents:
    """The events of one streamed response, numbered in the order they are sent."""

    def __init__(self, prepared: PreparedRequest, request: ResponsesRequest) -> None:
        self.prepared = prepared
        self.request = request
        self.item_id = new_message_id()
        self.reasoning_id = new_reasoning_id()
        self._sequence = 0
        # The thinking streamed so far, and the message's place: after the reasoning item, if any.
        self._reasoning: list[str] = []
        self._message_index = 0

    def _event(self, kind: str, **fields: Any) -> str:
        payload = {"type": kind, **fields, "sequence_number": self._sequence}
        self._sequence += 1
        return f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"

    def _response(self, kind: str, response: ResponseObject) -> str:
        return self._event(kind, response=response_wire(response))

    def _where(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "output_index": self._message_index, "content_index": 0}

    def _opened(self) -> list[str]:
        item = {
            "id": self.item_id,
            "content": [],
            "role": "assistant",
            "status": "in_progress",
            "type": "message",
        }
        return [
            self._event("response.output_item.added", output_index=self._message_index, item=item),
            self._event(
                "response.content_part.added",
                **self._where(),
                part=ResponseOutputText(text="").model_dump(),
            ),
        ]

    def _thinking(self, text: str) -> list[str]:
        """The reasoning item's events for `text`, opening the item first if it is not yet."""
        events = []
        if not self._reasoning:
            item = ResponseReasoningItem(id=self.reasoning_id, content=[], status="in_progress")
            events.append(
                self._event("response.output_item.added", output_index=0, item=item.model_dump())
            )
            self._message_index = 1
        self._reasoning.append(text)
        where = {"item_id": self.reasoning_id, "output_index": 0, "content_index": 0}
        events.append(self._event("response.reasoning_text.delta", **where, delta=text))
        return events

    def _thought(self, item: ResponseReasoningItem | None = None) -> list[str]:
        """The events that close the reasoning item: `item` at the end, else what was streamed."""
        item = item or reasoning_item("".join(self._reasoning), "completed", self.reasoning_id)
        where = {"item_id": self.reasoning_id, "output_index": 0, "content_index": 0}
        return [
            self._event("response.reasoning_text.done", **where, text=item.content[0].text),
            self._event("response.output_item.done", output_index=0, item=item.model_dump()),
        ]

    async def events(
        self, deltas: AsyncIterator[StreamItem], outcomes: Sequence[Outcome]
    ) -> AsyncIterator[str]:
        """Every event of the response; `outcomes` is filled once `deltas` is exhausted.

        A search's progress reports have no Responses event of their own and are left out."""
        started = response_object(self.prepared, self.request, None)
        yield self._response("response.created", started)
        yield self._response("response.in_progress", started)
        opened = False
        async for delta in deltas:
            if delta is None:
                yield KEEPALIVE
                continue
            if isinstance(delta, TTSProgress) or delta.index != 0:
                continue
            if delta.reasoning and not opened:
                for event in self._thinking(delta.reasoning):
                    yield event
            if not delta.text:
                continue
            if not opened:
                for event in [*(self._thought() if self._reasoning else []), *self._opened()]:
                    yield event
                opened = True
            yield self._event(
                "response.output_text.delta", **self._where(), delta=delta.text, logprobs=[]
            )
        final = response_object(
            self.prepared,
            self.request,
            outcomes,
            message_id=self.item_id,
            reasoning_id=self.reasoning_id,
        )
        thinking = next((i for i in final.output if isinstance(i, ResponseReasoningItem)), None)
        if not opened:
            if thinking is not None and not self._reasoning:
                # A search streams nothing before its answer: its thinking comes whole now.
                for event in self._thinking(thinking.content[0].text):
                    yield event
            # An item opened is closed, with the final thinking or, lacking it, what was streamed.
            for event in [*(self._thought(thinking) if self._reasoning else []), *self._opened()]:
                yield event
        # The response lists the reasoning item exactly when the events announced one.
        if thinking is not None and not self._reasoning:
            final.output.remove(thinking)
        elif thinking is None and self._reasoning:
            streamed = "".join(self._reasoning)
            final.output.insert(0, reasoning_item(streamed, "completed", self.reasoning_id))
        message = final.output[-1]
        assert not isinstance(message, ResponseReasoningItem)
        part = message.content[0]
        yield self._event("response.output_text.done", **self._where(), text=part.text, logprobs=[])
        yield self._event("response.content_part.done", **self._where(), part=part.model_dump())
        yield self._event(
            "response.output_item.done", output_index=self._message_index, item=message.model_dump()
        )
        kind = "response.incomplete" if final.status == "incomplete" else "response.completed"
        yield self._response(kind, final)

    def error(self, error: APIError) -> str:
        """The `error` event of a failure mid-stream, naming the Responses field at fault."""
        e = renamed(error, self.request)
        return self._event("error", code=e.code, message=e.message, param=e.param)
