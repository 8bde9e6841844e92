"""llama.cpp, loaded so that it runs on every CPU: the one door to ``llama_cpp.Llama``.

llama-cpp-python builds llama.cpp for the CPU it is installed on. On CPUs with Intel AMX
(Sapphire Rapids and later Xeons, ``amx_int8`` in /proc/cpuinfo) that build repacks Q4_K/Q6_K/Q8_0
weights into an AMX buffer, and the first decode then crashes the process with a segmentation
fault (llama.cpp issue #20824, open; seen here on 2026-12-05 for both embedded models: plain
inference of the Gemma 3 base died in ``llama_decode``). On such a CPU the weights stay in
llama.cpp's ordinary buffers (``use_extra_bufts`` off): the same results, the crash gone. Every
other CPU keeps the default.

``python -m app.llamacpp --model ...`` runs ``llama_cpp.server`` the same way.
"""

from __future__ import annotations

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


def llama_class():
    """``llama_cpp.Llama``, safe to construct on this CPU."""
    keep_weights_in_plain_buffers()
    from llama_cpp import Llama

    return Llama


def _serve() -> None:
    import runpy

    keep_weights_in_plain_buffers()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _serve()
