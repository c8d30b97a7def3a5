"""Paths, resolved once and the same way everywhere: local files (``~``,
relative, symbolic links) and any path ``tf.io.gfile`` reads (``gs://...``)."""

from __future__ import annotations

from pathlib import Path

IGNORED_NAMES = {"thumbs.db", "desktop.ini"}


def is_remote(path) -> bool:
    """A path with a scheme (``gs://``, ``s3://``, ``ram://`` ...), read
    through ``tf.io.gfile``."""
    return "://" in str(path)


class GfilePath:
    """The few ``pathlib.Path`` operations the scan uses, on any path
    ``tf.io.gfile`` reads (cloud object storage where the installed TensorFlow
    supports it). Object stores have no links and no permissions per folder."""

    def __init__(self, path: str):
        self.path = str(path).rstrip("/")

    def __truediv__(self, name) -> "GfilePath":
        return GfilePath(f"{self.path}/{name}")

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"GfilePath({self.path!r})"

    def __eq__(self, other) -> bool:
        return str(self) == str(other)

    def __lt__(self, other) -> bool:
        return str(self) < str(other)

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix

    @property
    def parents(self) -> list["GfilePath"]:
        parts = self.path.split("/")
        return [GfilePath("/".join(parts[:i])) for i in range(len(parts) - 1, 2, -1)]

    def _gfile(self):
        import tensorflow as tf
        return tf.io.gfile

    def exists(self) -> bool:
        return self._gfile().exists(self.path)

    def is_dir(self) -> bool:
        return self._gfile().isdir(self.path)

    def is_file(self) -> bool:
        return self.exists() and not self.is_dir()

    def is_symlink(self) -> bool:
        return False

    def iterdir(self):
        return (self / name.rstrip("/") for name in self._gfile().listdir(self.path))

    def rglob(self, pattern: str = "*"):
        for folder, dirs, files in self._gfile().walk(self.path):
            for name in [*dirs, *files]:
                yield GfilePath(f"{str(folder).rstrip('/')}/{name.rstrip('/')}")

    def open(self, mode: str = "rb"):
        return self._gfile().GFile(self.path, mode)

    def read_bytes(self) -> bytes:
        with self.open("rb") as f:
            return f.read()

    def size(self) -> int:
        return self._gfile().stat(self.path).length


def resolve(path):
    """A path resolved once, the same way everywhere: ``~`` expanded, made
    absolute, symbolic links and ``..`` resolved, trailing slashes dropped. A
    path with a scheme (``gs://...``) is kept as given, as a :class:`GfilePath`."""
    if is_remote(path):
        return GfilePath(path)
    return Path(str(path)).expanduser().resolve()


def is_hidden_or_system(path: Path) -> bool:
    """Files the Kaggle zip carries beside the images (``.DS_Store``, ``Thumbs.db``...)."""
    name = path.name
    return name.startswith(".") or name.startswith("__") or name.lower() in IGNORED_NAMES
