"""llama.cpp in-process, one model at a time behind a lock.

Loading costs hundreds of MB and a llama.cpp context is not thread-safe, so the process holds a
single :class:`LlamaRuntime`: a request for another model (or adapter) closes the current one
before loading. Keeping the same ``Llama`` object between requests lets llama.cpp reuse the
evaluated prompt prefix (its KV cache), so a second request with the same template starts fast.
Cancellation is checked by a stopping criterion after every token.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.jobs import Cancelled, CancelToken


@dataclass(frozen=True)
class ModelSpec:
    model_path: str
    lora_path: str | None = None
    n_ctx: int = 2048
    # (mtime_ns, size) of the adapter when the spec was made: the trainer replaces adapter.gguf
    # atomically, and a new file must be loaded even though its path is the same.
    lora_stamp: tuple[int, int] | None = None

    @classmethod
    def of(cls, model_path: Path | str, lora_path: Path | str | None = None, n_ctx: int = 2048) -> ModelSpec:
        stamp = None
        if lora_path and Path(lora_path).is_file():
            st = Path(lora_path).stat()
            stamp = (st.st_mtime_ns, st.st_size)
        return cls(str(model_path), str(lora_path) if lora_path else None, n_ctx, stamp)


def default_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class LlamaRuntime:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._grammars: dict[str, object] = {}
        self._llm = None
        self._spec: ModelSpec | None = None

    @property
    def loaded(self) -> ModelSpec | None:
        return self._spec

    def _ensure(self, spec: ModelSpec):
        if self._spec == spec and self._llm is not None:
            return self._llm
        self.close()
        for path in filter(None, (spec.model_path, spec.lora_path)):
            if not Path(path).is_file():
                raise FileNotFoundError(f"model file not found: {path}")
        from app.llamacpp import llama_class

        Llama = llama_class()  # noqa: N806 (the class)
        from llama_cpp._utils import suppress_stdout_stderr

        # verbose=False still lets llama.cpp print cache and adapter notes to stderr on load
        with suppress_stdout_stderr(disable=False):
            self._llm = Llama(
                model_path=spec.model_path,
                lora_path=spec.lora_path,
                n_ctx=spec.n_ctx,
                n_threads=default_threads(),
                verbose=False,
            )
        self._spec = spec
        return self._llm

    def close(self) -> None:
        with self._lock:
            if self._llm is not None:
                self._llm.close()
            self._llm = None
            self._spec = None

    def chat_prompt(self, spec: ModelSpec, messages: list[dict]) -> tuple[str, list[str]] | None:
        """``messages`` rendered with the model's own chat template (from its GGUF), and the stop
        strings that end an answer; None for a model without a template (a base model)."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        with self._lock:
            llm = self._ensure(spec)
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                return None
            eos_id, bos_id = llm.token_eos(), llm.token_bos()
            eos = llm._model.token_get_text(eos_id) if eos_id != -1 else ""
            bos = llm._model.token_get_text(bos_id) if bos_id != -1 else ""
        rendered = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)(messages=messages)
        prompt = rendered.prompt
        if bos and prompt.startswith(bos):
            prompt = prompt[len(bos) :]  # tokenize(add_bos=True) adds it once
        stops = [s for s in ([rendered.stop] if isinstance(rendered.stop, str) else rendered.stop or []) if s]
        # chat models end a turn with their end-of-turn marker (Qwen: <|im_end|>); stop there too
        for marker in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"):
            if marker in template and marker not in stops:
                stops.append(marker)
        return prompt, stops

    def count_tokens(self, spec: ModelSpec, text: str) -> int:
        with self._lock:
            return len(self._ensure(spec).tokenize(text.encode("utf-8"), add_bos=True))

    def _grammar(self, json_schema: dict):
        """The GBNF grammar for a JSON schema, built once per schema (building one takes ~ms, but a
        distillation asks thousands of times)."""
        import json

        from llama_cpp import LlamaGrammar

        key = json.dumps(json_schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    def stream(
        self,
        spec: ModelSpec,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: list[str] | None = None,
        seed: int | None = None,
        repeat_penalty: float = 1.0,
        json_schema: dict | None = None,
        cancel: CancelToken | None = None,
    ) -> Iterator[tuple[str, str | None]]:
        """Yield ``(text, finish_reason)`` pieces; finish_reason is set on the last one
        (``stop`` or ``length``). With ``json_schema`` the answer is decoded under llama.cpp's
        grammar for that schema, so it always parses (unless cut off by ``max_tokens``).
        Raises :class:`Cancelled` when cancelled."""
        from llama_cpp import StoppingCriteriaList

        cancel = cancel or CancelToken()
        with self._lock:
            llm = self._ensure(spec)
            prompt_tokens = len(llm.tokenize(prompt.encode("utf-8"), add_bos=True))
            room = spec.n_ctx - prompt_tokens
            if room <= 0:
                raise ValueError(f"the prompt is {prompt_tokens} tokens; the model context holds {spec.n_ctx}")
            pieces = llm.create_completion(
                prompt,
                max_tokens=min(max_tokens, room),
                temperature=temperature,
                top_p=top_p,
                stop=stop or [],
                seed=seed,
                repeat_penalty=repeat_penalty,
                grammar=self._grammar(json_schema) if json_schema else None,
                stream=True,
                stopping_criteria=StoppingCriteriaList([lambda ids, logits: cancel.cancelled]),
            )
            for piece in pieces:
                choice = piece["choices"][0]
                if cancel.cancelled:
                    raise Cancelled("cancelled")
                yield choice["text"], choice.get("finish_reason")
            if cancel.cancelled:
                raise Cancelled("cancelled")


RUNTIME = LlamaRuntime()
