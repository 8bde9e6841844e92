"""The providers' batch services on 127.0.0.1, in their wire formats: Anthropic Message Batches,
Gemini batch mode (inline requests) and the OpenAI Batch API (a JSONL file, then /v1/batches).

A batch stays in progress for ``polls_before_done`` looks, then ends. What each request gets is
decided by ``outcome(custom_id, index)``: "succeeded" (the server's ``reply`` to the request's last
user message), "errored", or "expired" (its window ran out: the batch ends as expired, as each
provider reports it). ``fail_whole`` makes the provider fail the batch as a whole.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.wire.providers import AnthropicServer, GeminiServer, default_reply
from tests.wire.server import Captured, Reply, WireServer

ISO = "2026-12-05T12:00:00Z"


@dataclass
class Batch:
    id: str
    items: list[tuple[str, str, dict]]  # (custom_id, last user text, the request as sent)
    polls: int = 0
    cancelled: bool = False
    extra: dict = field(default_factory=dict)


class BatchBook:
    """What every batch server shares: the batches, how long they run, what each request gets."""

    def __init__(self, reply: Callable[[str], str]):
        self.reply = reply
        self.polls_before_done = 1
        self.outcome: Callable[[str, int], str] = lambda custom_id, index: "succeeded"
        self.fail_whole = False
        self.batches: dict[str, Batch] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, prefix: str, items) -> Batch:
        with self._lock:
            batch = Batch(f"{prefix}{next(self._ids)}", list(items))
            self.batches[batch.id] = batch
        return batch

    def look(self, batch_id: str) -> tuple[Batch, bool]:
        """The batch and whether it has ended (each look counts)."""
        batch = self.batches[batch_id]
        with self._lock:
            batch.polls += 1
            return batch, batch.cancelled or batch.polls > self.polls_before_done

    def outcomes(self, batch: Batch) -> list[tuple[str, str, str]]:
        """(custom_id, outcome, text) for every request, decided once per batch."""
        with self._lock:
            if "outcomes" not in batch.extra:
                out = []
                for index, (custom_id, last, _) in enumerate(batch.items):
                    kind = "expired" if batch.cancelled else self.outcome(custom_id, index)
                    out.append((custom_id, kind, self.reply(last) if kind == "succeeded" else ""))
                batch.extra["outcomes"] = out
            return batch.extra["outcomes"]


def _last_user_text(messages: list[dict], role_key="role", user="user") -> str:
    for message in reversed(messages):
        if message.get(role_key, user) == user:
            content = message.get("content") if "content" in message else message.get("parts")
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content)
            return content or ""
    return ""


def _jsonl(rows: list[dict]) -> Reply:
    return Reply(200, raw="\n".join(json.dumps(r) for r in rows).encode() + b"\n", content_type="application/binary")


class AnthropicBatchServer(AnthropicServer):
    """/v1/messages (as AnthropicServer) and /v1/messages/batches[/ID[/results|/cancel]]."""

    def __init__(self, key: str, reply: Callable[[str], str] = default_reply):
        super().__init__(key, reply)
        self.book = BatchBook(lambda text: self.reply(text))

    def handle(self, c: Captured) -> Reply:
        m = re.match(r"^/v1/messages/batches(?:/([^/?]+))?(?:/(results|cancel))?", c.path)
        if not m:
            return super().handle(c)
        sent = c.headers.get("x-api-key") or c.headers.get("authorization", "").removeprefix("Bearer ")
        if sent != self.key:
            return Reply(401, self.error_body(401))
        batch_id, action = m.groups()
        if batch_id is None and c.method == "POST":
            items = [(r["custom_id"], _last_user_text(r["params"]["messages"]), r) for r in c.json()["requests"]]
            return Reply(200, self._batch(self.book.add("msgbatch_", items), ended=False))
        if batch_id not in self.book.batches:
            return Reply(404, {"type": "error", "error": {"type": "not_found_error", "message": batch_id}})
        if action == "cancel":
            self.book.batches[batch_id].cancelled = True
            return Reply(200, self._batch(self.book.batches[batch_id], ended=False))
        if action == "results":
            return _jsonl(
                [self._result(cid, kind, text) for cid, kind, text in self.book.outcomes(self.book.batches[batch_id])]
            )
        batch, ended = self.book.look(batch_id)
        return Reply(200, self._batch(batch, ended))

    def _batch(self, batch: Batch, ended: bool) -> dict:
        counts = {"processing": len(batch.items), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if ended:
            counts["processing"] = 0
            for _, kind, _ in self.book.outcomes(batch):
                counts[kind] += 1
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "created_at": ISO,
            "expires_at": ISO,
            "ended_at": ISO if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }

    def _result(self, custom_id: str, kind: str, text: str) -> dict:
        if kind == "succeeded":
            message = {
                "id": f"msg_{custom_id}",
                "type": "message",
                "role": "assistant",
                "model": "claude-test",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": len(text.split())},
            }
            return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}
        if kind == "errored":
            error = {"type": "error", "error": {"type": "invalid_request_error", "message": "injected error"}}
            return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}
        return {"custom_id": custom_id, "result": {"type": kind}}


class GeminiBatchServer(GeminiServer):
    """models/{m}:generateContent (as GeminiServer), models/{m}:batchGenerateContent, batches/{id}."""

    def __init__(self, key: str, reply: Callable[[str], str] = default_reply):
        super().__init__(key, reply)
        self.book = BatchBook(lambda text: self.reply(text))

    def handle(self, c: Captured) -> Reply:
        create = re.match(r"^/v1(?:beta)?/models/([^:/?]+):batchGenerateContent", c.path)
        get = re.match(r"^/v1(?:beta)?/batches/([^:/?]+)(:cancel)?", c.path)
        if not create and not get:
            return super().handle(c)
        if c.headers.get("x-goog-api-key") != self.key:
            return Reply(403, {"error": {"code": 403, "message": "API key not valid.", "status": "PERMISSION_DENIED"}})
        if create:
            requests = c.json()["batch"]["inputConfig"]["requests"]["requests"]
            items = [(r["metadata"]["key"], _last_user_text(r["request"]["contents"]), r) for r in requests]
            batch = self.book.add("", items)
            batch.extra["model"] = create.group(1)
            return Reply(200, self._operation(batch, ended=False))
        batch_id, cancel = get.groups()
        if batch_id not in self.book.batches:
            return Reply(404, self.error_body(404))
        if cancel:
            self.book.batches[batch_id].cancelled = True
            return Reply(200, {})
        batch, ended = self.book.look(batch_id)
        return Reply(200, self._operation(batch, ended))

    def _operation(self, batch: Batch, ended: bool) -> dict:
        name = f"batches/{batch.id}"
        meta = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "name": name,
            "displayName": "tiller",
            "model": f"models/{batch.extra.get('model', 'x')}",
            "createTime": ISO,
            "state": "BATCH_STATE_PENDING",
        }
        op = {"name": name, "metadata": meta}
        if not ended:
            return op
        outcomes = self.book.outcomes(batch)
        responses = []
        for custom_id, kind, text in outcomes:
            if kind == "succeeded":
                cand = {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}
                responses.append(
                    {"response": {"candidates": [cand], "modelVersion": "gemini-test"}, "metadata": {"key": custom_id}}
                )
            elif kind == "errored":
                responses.append({"error": {"code": 400, "message": "injected error"}, "metadata": {"key": custom_id}})
            # expired: no response at all
        if self.book.fail_whole:
            meta["state"] = "BATCH_STATE_FAILED"
            op.update(done=True, error={"code": 13, "message": "injected whole-batch failure"})
            return op
        expired = batch.cancelled or any(kind == "expired" for _, kind, _ in outcomes)
        meta.update(state="BATCH_STATE_EXPIRED" if expired else "BATCH_STATE_SUCCEEDED", endTime=ISO)
        meta["output"] = {"inlinedResponses": {"inlinedResponses": responses}}
        op.update(
            done=True,
            response={
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
                **meta["output"],
            },
        )
        return op


class OpenAIBatchServer(WireServer):
    """The OpenAI Batch API: POST /v1/files (multipart, purpose=batch), POST /v1/batches,
    GET /v1/batches/{id}, GET /v1/files/{id}/content, POST /v1/batches/{id}/cancel."""

    def __init__(self, key: str | None = None, reply: Callable[[str], str] = default_reply):
        super().__init__()
        self.key = key
        self.reply = reply
        self.book = BatchBook(lambda text: self.reply(text))
        self.files: dict[str, bytes] = {}
        self._file_ids = itertools.count(1)

    def handle(self, c: Captured) -> Reply:
        if self.key and c.headers.get("authorization") != f"Bearer {self.key}":
            return Reply(
                401, {"error": {"message": "bad key", "type": "invalid_request_error", "code": "invalid_api_key"}}
            )
        if c.path == "/v1/files" and c.method == "POST":
            content = _multipart_file(c)
            file_id = f"file-{next(self._file_ids)}"
            self.files[file_id] = content
            return Reply(200, self._file(file_id, "batch", len(content)))
        m = re.match(r"^/v1/files/([^/]+)/content$", c.path)
        if m:
            return Reply(200, raw=self.files[m.group(1)], content_type="application/octet-stream")
        if c.path == "/v1/batches" and c.method == "POST":
            body = c.json()
            lines = self.files[body["input_file_id"]].decode().splitlines()
            rows = [json.loads(line) for line in lines if line.strip()]
            items = [(r["custom_id"], _last_user_text(r["body"]["messages"]), r) for r in rows]
            batch = self.book.add("batch_", items)
            batch.extra.update(input_file_id=body["input_file_id"], endpoint=body["endpoint"])
            return Reply(200, self._batch(batch, ended=False))
        m = re.match(r"^/v1/batches/([^/]+)(/cancel)?$", c.path)
        if m and m.group(1) in self.book.batches:
            if m.group(2):
                self.book.batches[m.group(1)].cancelled = True
                return Reply(200, self._batch(self.book.batches[m.group(1)], ended=False, status="cancelling"))
            batch, ended = self.book.look(m.group(1))
            return Reply(200, self._batch(batch, ended))
        return Reply(404, {"error": {"message": f"no route {c.path}", "type": "invalid_request_error"}})

    @staticmethod
    def _file(file_id: str, purpose: str, size: int) -> dict:
        return {
            "id": file_id,
            "object": "file",
            "bytes": size,
            "created_at": 0,
            "filename": "x.jsonl",
            "purpose": purpose,
        }

    def _batch(self, batch: Batch, ended: bool, status: str | None = None) -> dict:
        out = {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.extra["endpoint"],
            "errors": None,
            "input_file_id": batch.extra["input_file_id"],
            "completion_window": "24h",
            "status": status or "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": 0,
            "request_counts": {"total": len(batch.items), "completed": 0, "failed": 0},
            "metadata": None,
        }
        if not ended:
            return out
        if self.book.fail_whole:
            out.update(
                status="failed", errors={"object": "list", "data": [{"code": "invalid_file", "message": "injected"}]}
            )
            return out
        done, failed = [], []
        for custom_id, kind, text in self.book.outcomes(batch):
            if kind == "succeeded":
                body = {
                    "id": "chatcmpl-x",
                    "object": "chat.completion",
                    "model": "test-model",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split()), "total_tokens": 0},
                }
                done.append(
                    {
                        "id": f"r-{custom_id}",
                        "custom_id": custom_id,
                        "response": {"status_code": 200, "body": body},
                        "error": None,
                    }
                )
            elif kind == "errored":
                body = {"error": {"message": "injected error", "type": "invalid_request_error"}}
                failed.append(
                    {
                        "id": f"r-{custom_id}",
                        "custom_id": custom_id,
                        "response": {"status_code": 400, "body": body},
                        "error": None,
                    }
                )
            else:
                error = {"code": "batch_expired", "message": "not executed before the completion window expired"}
                failed.append({"id": f"r-{custom_id}", "custom_id": custom_id, "response": None, "error": error})
        expired = batch.cancelled or any(r["error"] and r["error"]["code"] == "batch_expired" for r in failed)
        for rows, key in ((done, "output_file_id"), (failed, "error_file_id")):
            if rows:
                file_id = f"file-{next(self._file_ids)}"
                self.files[file_id] = "\n".join(json.dumps(r) for r in rows).encode() + b"\n"
                out[key] = file_id
        out.update(
            status="expired" if expired else "completed",
            request_counts={"total": len(batch.items), "completed": len(done), "failed": len(failed)},
        )
        return out


def _multipart_file(c: Captured) -> bytes:
    """The bytes of the part named "file" of a multipart/form-data body."""
    boundary = re.search(r"boundary=([^;]+)", c.headers["content-type"]).group(1).strip('"').encode()
    for part in c.body.split(b"--" + boundary):
        head, _, content = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            return content.removesuffix(b"\r\n")
    raise ValueError("no file part in the upload")
