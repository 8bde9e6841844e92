"""Loopback servers speaking the Anthropic Messages API and the Gemini generateContent API."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.wire.server import Captured, Reply, WireServer


def default_reply(last_user_text: str) -> str:
    return f"Hi there,\n\nHere is the draft you asked for: {last_user_text[:60].strip()}\n\nBest,\nKay"


def _words(text: str) -> list[str]:
    """Split into streaming pieces that join back exactly."""
    return re.findall(r"\S+\s*|\s+", text)


class AnthropicServer(WireServer):
    """POST /v1/messages, JSON or SSE (message_start … message_stop)."""

    def __init__(self, key: str, reply: Callable[[str], str] = default_reply):
        super().__init__()
        self.key = key
        self.reply = reply

    def error_body(self, status: int) -> dict:
        kind = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error", 401: "authentication_error"}.get(
            status, "api_error"
        )
        return {"type": "error", "error": {"type": kind, "message": f"injected HTTP {status}"}}

    def handle(self, c: Captured) -> Reply:
        if not c.path.startswith("/v1/messages"):
            return Reply(404, {"type": "error", "error": {"type": "not_found_error", "message": c.path}})
        # SDK 1.x sends x-api-key; 2.x sends the key as a bearer token
        sent = c.headers.get("x-api-key") or c.headers.get("authorization", "").removeprefix("Bearer ")
        if sent != self.key:
            return Reply(401, self.error_body(401))
        req = c.json()
        last = next((m["content"] for m in reversed(req["messages"]) if m["role"] == "user"), "")
        if isinstance(last, list):
            last = " ".join(part.get("text", "") for part in last)
        text = self.reply(last)
        stop_seqs = req.get("stop_sequences") or []
        stop_reason = "end_turn"
        for seq in stop_seqs:
            if seq in text:
                text, stop_reason = text.split(seq)[0], "stop_sequence"
        words = _words(text)
        if len(words) > req["max_tokens"]:
            words, stop_reason = words[: req["max_tokens"]], "max_tokens"
        text = "".join(words)
        message = {
            "id": "msg_loopback",
            "type": "message",
            "role": "assistant",
            "model": req["model"],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": len(c.body) // 4, "output_tokens": 0},
        }
        if not req.get("stream"):
            message.update(
                content=[{"type": "text", "text": text}],
                stop_reason=stop_reason,
                usage={"input_tokens": len(c.body) // 4, "output_tokens": len(words)},
            )
            return Reply(200, message)
        events = [("message_start", {"type": "message_start", "message": {**message, "content": []}})]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        events.append(("ping", {"type": "ping"}))
        for word in words:
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}},
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": len(words)},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return Reply(200, events=events)


class GeminiServer(WireServer):
    """POST /v1[beta]/models/{model}:generateContent and :streamGenerateContent?alt=sse."""

    def __init__(self, key: str, reply: Callable[[str], str] = default_reply):
        super().__init__()
        self.key = key
        self.reply = reply

    def error_body(self, status: int) -> dict:
        names = {
            429: "RESOURCE_EXHAUSTED",
            500: "INTERNAL",
            503: "UNAVAILABLE",
            400: "INVALID_ARGUMENT",
            403: "PERMISSION_DENIED",
        }
        return {"error": {"code": status, "message": f"injected HTTP {status}", "status": names.get(status, "UNKNOWN")}}

    def handle(self, c: Captured) -> Reply:
        m = re.match(r"^/v1(?:beta)?/models/([^:/?]+):(generateContent|streamGenerateContent)", c.path)
        if not m:
            return Reply(404, self.error_body(404))
        if c.headers.get("x-goog-api-key") != self.key:
            return Reply(403, {"error": {"code": 403, "message": "API key not valid.", "status": "PERMISSION_DENIED"}})
        model, method = m.groups()
        req = c.json()
        user_turns = [c_ for c_ in req.get("contents", []) if c_.get("role", "user") == "user"]
        last = " ".join(p.get("text", "") for p in user_turns[-1]["parts"]) if user_turns else ""
        text = self.reply(last)
        config = req.get("generationConfig", {})
        finish = "STOP"
        for seq in config.get("stopSequences") or []:
            if seq in text:
                text = text.split(seq)[0]
        words = _words(text)
        limit = config.get("maxOutputTokens")
        if limit and len(words) > limit:
            words, finish = words[:limit], "MAX_TOKENS"
        usage = {
            "promptTokenCount": len(c.body) // 4,
            "candidatesTokenCount": len(words),
            "totalTokenCount": len(c.body) // 4 + len(words),
        }

        def chunk(piece: str, final: bool) -> dict:
            cand = {"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}
            out = {"candidates": [cand], "modelVersion": model}
            if final:
                cand["finishReason"] = finish
                out["usageMetadata"] = usage
            return out

        if method == "generateContent":
            return Reply(200, chunk("".join(words), True))
        pieces = ["".join(words[i : i + 3]) for i in range(0, len(words), 3)] or [""]
        events = [(None, chunk(p, i == len(pieces) - 1)) for i, p in enumerate(pieces)]
        return Reply(200, events=events)
