"""llama.cpp, loaded so that it runs on every CPU: the one door to ``llama_cpp.Llama``.

llama-cpp-python builds llama.cpp for the CPU it is installed on. On CPUs with Intel AMX
(Sapphire Rapids and later Xeons, ``amx_int8`` in /proc/cpuinfo) that build repacks Q4_K/Q6_K/Q8_0
weights into an AMX buffer, and the first decode then crashes the process with a segmentation
fault (llama.cpp issue #20824, open; seen here on 2026-12-05 for both embedded models: plain
inference of the Gemma 3 base died in ``llama_decode``). On such a CPU the weights stay in
llama.cpp's ordinary buffers (``use_extra_bufts`` off): the same results, the crash gone. Every
other CPU keeps the default.

Decoding under a grammar (the distillation's JSON answers) checks the token the model picked
against the grammar, and applies the grammar to the whole vocabulary only when that token breaks
it, as llama.cpp's own sampler does (``common_sampler_sample``). llama-cpp-python instead runs the
grammar over every one of the vocabulary's tokens at every step (151,936 for Qwen2.5, 262,144 for
Gemma 3): JSON answers came out at 12.5 tokens/s instead of 20 on a 2-core CPU, the grammar taking
a third of the time (docs/benchmarks/grammar-decoding.md). The answer is still always the
grammar's: a token is kept only when the grammar accepts it. Greedy decoding gives the same tokens
as before; with a temperature, a token is drawn from the model's distribution and redrawn from the
grammar's share of it when the grammar refuses it.

``python -m app.llamacpp --model ...`` runs ``llama_cpp.server`` the same way.
"""

from __future__ import annotations

import functools
import threading

_PATCHED = threading.Lock()
_state = {"done": False}


def amx_cpu(cpuinfo_flags: set[str] | None = None) -> bool:
    """True on a CPU whose AMX path llama.cpp would take."""
    from app.hardware import cpu_flags

    return "amx_int8" in (cpu_flags() if cpuinfo_flags is None else cpuinfo_flags)


def keep_weights_in_plain_buffers() -> bool:
    """On an AMX CPU, make every model llama.cpp loads in this process skip the extra (AMX)
    buffer types; once per process. Returns whether it did."""
    with _PATCHED:
        if _state["done"]:
            return True
        if not amx_cpu():
            return False
        import llama_cpp.llama_cpp as lib

        default_params = lib.llama_model_default_params

        def params_without_extra_buffers():
            params = default_params()
            params.use_extra_bufts = False
            return params

        lib.llama_model_default_params = params_without_extra_buffers
        _state["done"] = True
        return True


class GrammarCheckedSampler:
    """The sampler ``Llama.generate`` calls for each token when a grammar is given: the sampling
    chain without the grammar picks a token; the grammar checks that one token, and only when it
    refuses it is the grammar applied to every candidate and the chain run again on what is left.
    Both the grammar and the chain then accept the token kept. ``kept``/``redrawn`` count tokens."""

    def __init__(self, chain, grammar_sampler, n_vocab: int) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self._lib = llama_cpp
        self.chain = chain  # llama-cpp-python's LlamaSampler, built without the grammar
        self.grammar = grammar_sampler  # a llama.cpp grammar sampler (a pointer this object frees)
        self.n_vocab = n_vocab
        self.candidates = _internals.LlamaTokenDataArray(n_vocab=n_vocab)
        self._one = (llama_cpp.llama_token_data * 1)()
        self._one_array = llama_cpp.llama_token_data_array(data=self._one, size=1, selected=-1, sorted=False)
        self.kept = 0
        self.redrawn = 0

    def _draw(self, ctx, idx: int, grammar_first: bool) -> int:
        import ctypes

        import numpy as np

        lib = self._lib
        logits = lib.llama_get_logits_ith(ctx.ctx, idx)
        self.candidates.copy_logits(np.ctypeslib.as_array(logits, shape=(self.n_vocab,)))
        self.candidates.candidates.selected = -1
        if grammar_first:
            lib.llama_sampler_apply(self.grammar, ctypes.byref(self.candidates.candidates))
        lib.llama_sampler_apply(self.chain.sampler, ctypes.byref(self.candidates.candidates))
        return int(self.candidates.candidates_data.id[self.candidates.candidates.selected])

    def grammar_allows(self, token: int) -> bool:
        import ctypes

        self._one[0].id, self._one[0].logit, self._one[0].p = token, 1.0, 0.0
        self._one_array.size, self._one_array.selected, self._one_array.sorted = 1, -1, False
        self._lib.llama_sampler_apply(self.grammar, ctypes.byref(self._one_array))
        return self._one[0].logit != float("-inf")

    def sample(self, ctx, idx: int = -1) -> int:
        token = self._draw(ctx, idx, grammar_first=False)
        if self.grammar_allows(token):
            self.kept += 1
        else:
            self.redrawn += 1
            token = self._draw(ctx, idx, grammar_first=True)
        self._lib.llama_sampler_accept(self.grammar, token)
        self._lib.llama_sampler_accept(self.chain.sampler, token)
        return token

    def close(self) -> None:
        if self.grammar is not None:
            self._lib.llama_sampler_free(self.grammar)
            self.grammar = None
        self.chain.close()

    def __del__(self) -> None:
        self.close()


def llama_class():
    """``llama_cpp.Llama``, safe to construct on this CPU, decoding under a grammar as
    :class:`GrammarCheckedSampler` does."""
    keep_weights_in_plain_buffers()
    return _grammar_checked_llama()


@functools.cache
def _grammar_checked_llama() -> type:
    from llama_cpp import Llama

    class GrammarCheckedLlama(Llama):
        """``Llama`` whose grammar is checked against the picked token first."""

        def _init_sampler(self, *args, grammar=None, **kwargs):
            chain = super()._init_sampler(*args, grammar=None, **kwargs)
            if grammar is None:
                return chain
            import llama_cpp

            grammar_sampler = llama_cpp.llama_sampler_init_grammar(
                self._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
            )
            if not grammar_sampler:
                chain.close()
                raise ValueError("llama.cpp could not parse the grammar")
            return GrammarCheckedSampler(chain, grammar_sampler, self._n_vocab)

    return GrammarCheckedLlama


def _serve() -> None:
    import runpy

    keep_weights_in_plain_buffers()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _serve()
