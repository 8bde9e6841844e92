"""Reading a GGUF file's header: metadata and tensor shapes, without loading the model.

gguf-py's ``GGUFReader`` decodes every field, which for a 262k-token vocabulary takes ~9 s; this
reads only the header (string and scalar values; arrays are skipped) in well under a second. Used
by the model registry (``tiller models``) and the adapter export.
"""

from __future__ import annotations

from pathlib import Path

from app.exceptions import TillerError


class GGUFError(TillerError, ValueError):
    """Not a GGUF file, or one this reader does not understand."""


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def read_gguf_header(path: Path) -> tuple[dict, dict[str, tuple[int, ...]]]:
    """Scalar metadata and tensor shapes (ggml order: [in, out]) of a GGUF file.

    gguf-py's ``GGUFReader`` decodes every field, which for a 262k-token vocabulary takes ~9 s;
    this reads only the header, skipping arrays, in well under a second."""
    import struct

    try:
        return _read_header(path)
    except (struct.error, RecursionError) as exc:  # a count or length that runs past the end of the file
        raise GGUFError(f"{path}: truncated or damaged GGUF header ({type(exc).__name__})") from None


def _read_header(path: Path) -> tuple[dict, dict[str, tuple[int, ...]]]:
    import mmap
    import struct

    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise GGUFError(f"{path}: not a GGUF file")
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    with buf:
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
        if version < 2:
            raise GGUFError(f"{path}: GGUF version {version} is too old")
        pos = 24

        def string() -> str:
            nonlocal pos
            (n,) = struct.unpack_from("<Q", buf, pos)
            pos += 8 + n
            return bytes(buf[pos - n : pos]).decode("utf-8", "replace")

        def value(kind: int):
            nonlocal pos
            if kind == 8:
                return string()
            if kind == 9:
                item, count = struct.unpack_from("<IQ", buf, pos)
                pos += 12
                if item == 8:
                    for _ in range(count):
                        (n,) = struct.unpack_from("<Q", buf, pos)
                        pos += 8 + n
                elif item in _SCALARS:
                    pos += struct.calcsize(_SCALARS[item]) * count
                else:
                    for _ in range(count):
                        value(item)
                return None  # arrays are skipped
            fmt = _SCALARS.get(kind)
            if fmt is None:
                raise GGUFError(f"{path}: unknown GGUF value type {kind}")
            (out,) = struct.unpack_from(fmt, buf, pos)
            pos += struct.calcsize(fmt)
            return out

        metadata = {}
        for _ in range(n_kv):
            key = string()
            (kind,) = struct.unpack_from("<I", buf, pos)
            pos += 4
            metadata[key] = value(kind)
        shapes = {}
        for _ in range(n_tensors):
            name = string()
            (n_dims,) = struct.unpack_from("<I", buf, pos)
            dims = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
            pos += 4 + 8 * n_dims + 4 + 8
            shapes[name] = tuple(int(d) for d in dims)
    return metadata, shapes
