"""A visitor's own classes and their pictures: what "teach it your own classes" trains on.

A `PictureSet` keeps each class's pictures as the files they arrived as (uploads, webcam shots, canvas
drawings), so the set can be downloaded as a `.zip` with one folder per class and imported again
unchanged. Every picture goes through the Photo page's checks (`cnn_core.data.preprocess.load_image`: size,
pixel count, decompression bombs, EXIF orientation, non-images) when it is added; a zip is checked as a
whole before any member is decompressed (entry count, total size, compression ratio).
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import re
import zipfile
from dataclasses import dataclass, field

from cnn_core.base.errors import ImageError
from cnn_core.data.preprocess import MAX_UPLOAD_BYTES, SUPPORTED_TEXT, load_image

MIN_CLASSES, MAX_CLASSES = 2, 10
MIN_PICTURES = 3  # per class: k-fold estimates need a picture of every class in every fold
MAX_PICTURES = 200  # per class: a few hundred pictures train in seconds; more is a dataset, not a lesson
MAX_NAME = 40
# A zip is refused before decompressing anything when it lists more entries, more bytes in all, or any
# member packed tighter than this: photos barely compress (≈ 1:1), a decompression bomb packs 1:1000.
MAX_ZIP_ENTRIES = MAX_CLASSES * MAX_PICTURES + 100
MAX_ZIP_BYTES = 200 * 2**20
MAX_COMPRESSION_RATIO = 50
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class Picture:
    """One picture as it arrived: its file name and bytes (already checked to decode)."""

    name: str
    data: bytes


@dataclass
class PictureSet:
    """Class name → its pictures, in the order the classes were made."""

    classes: dict[str, list[Picture]] = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)

    def counts(self) -> dict[str, int]:
        return {name: len(pictures) for name, pictures in self.classes.items()}

    def add_class(self, name: str) -> str:
        name = check_class_name(name, self.class_names)
        if len(self.classes) >= MAX_CLASSES:
            raise ImageError(f"A lesson has at most {MAX_CLASSES} classes.")
        self.classes[name] = []
        return name

    def rename_class(self, old: str, new: str) -> str:
        new = check_class_name(new, [n for n in self.class_names if n != old])
        self.classes = {(new if n == old else n): p for n, p in self.classes.items()}
        return new

    def remove_class(self, name: str) -> None:
        self.classes.pop(name, None)

    def add(self, class_name: str, file_name: str, data: bytes) -> Picture:
        """Check one picture (it must decode within the upload limits) and add it to a class."""
        pictures = self.classes[class_name]
        if len(pictures) >= MAX_PICTURES:
            raise ImageError(f"'{class_name}' already has {MAX_PICTURES} pictures, the most a class can have.")
        try:
            load_image(data, filename=file_name)
        except ImageError as err:
            raise ImageError(f"{file_name}: {err}") from None
        picture = Picture(_unique_file_name(file_name, {p.name for p in pictures}), bytes(data))
        pictures.append(picture)
        return picture

    def remove(self, class_name: str, index: int) -> None:
        del self.classes[class_name][index]

    def check_trainable(self) -> None:
        """Refuse, in one sentence, a set that cannot be trained on."""
        if len(self.classes) < MIN_CLASSES:
            raise ImageError(f"Make at least {MIN_CLASSES} classes to train a classifier.")
        short = [f"'{name}' ({count})" for name, count in self.counts().items() if count < MIN_PICTURES]
        if short:
            raise ImageError(f"Every class needs at least {MIN_PICTURES} pictures; add more to {', '.join(short)}.")

    def fingerprint(self) -> str:
        """SHA-256 over the classes, their order and every picture's bytes: the card's record of the data."""
        digest = hashlib.sha256()
        for name, pictures in self.classes.items():
            digest.update(name.encode() + b"\0")
            for picture in pictures:
                digest.update(hashlib.sha256(picture.data).digest())
        return digest.hexdigest()

    def to_zip(self) -> bytes:
        """The set as a zip with one folder per class, which `read_zip` imports again."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # pictures are compressed already
            for name, pictures in self.classes.items():
                folder = _folder_name(name)
                archive.writestr(f"{folder}/", b"")  # an empty class keeps its folder
                for picture in pictures:
                    archive.writestr(f"{folder}/{picture.name}", picture.data)
        return buffer.getvalue()


def check_class_name(name: str, taken: list[str]) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise ImageError("A class needs a name.")
    if len(name) > MAX_NAME:
        raise ImageError(f"Class names have at most {MAX_NAME} characters.")
    if name.casefold() in {t.casefold() for t in taken}:
        raise ImageError(f"There is already a class named '{name}'; give each class its own name.")
    return name


def _folder_name(name: str) -> str:
    return re.sub(r"[\\/:*?\"<>|]", "_", name)


def _unique_file_name(file_name: str, taken: set[str]) -> str:
    """The file's own name (webcam shots all arrive as "image.jpg"), numbered where a class has it already."""
    base = posixpath.basename(str(file_name).replace("\\", "/")) or "picture.png"
    stem, dot, suffix = base.rpartition(".")
    stem, suffix = (stem, dot + suffix) if dot else (base, "")
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem} ({n}){suffix}"
    return candidate


def read_zip(data: bytes, max_bytes: int = MAX_ZIP_BYTES) -> PictureSet:
    """A zip with one folder per class (an enclosing folder, `__MACOSX` and hidden files are ignored) as a
    PictureSet. Refused as a whole, before anything is decompressed, when it is not a zip, lists too many
    entries or bytes, or packs any member like a decompression bomb; a member that is no picture is named."""
    archive = _open_zip(data)
    members = [m for m in archive.infolist() if not _ignored(m.filename)]
    _check_zip_sizes(members, max_bytes)
    files = [m for m in members if not m.is_dir()]
    parts = {m.filename: [p for p in m.filename.split("/") if p] for m in members}
    enclosed = len({p[0] for p in parts.values()}) == 1 and all(len(parts[m.filename]) >= 3 for m in files)
    depth = 1 if files and enclosed else 0  # "lesson/cat/1.png": the folder around the class folders
    pictures = PictureSet()
    for member in members:
        path = parts[member.filename][depth:]
        if len(path) == 1 and member.is_dir() and path[0] not in pictures.classes:
            pictures.add_class(path[0])
    for member in files:
        path = parts[member.filename][depth:]
        if len(path) != 2:
            raise ImageError(
                f"'{member.filename}' is not inside a class folder: the zip needs one folder per class "
                "with that class's pictures in it."
            )
        if path[0] not in pictures.classes:
            pictures.add_class(path[0])
        if not path[1].lower().endswith(IMAGE_SUFFIXES):
            raise ImageError(f"'{member.filename}' is not a picture: the zip may hold only {SUPPORTED_TEXT} images.")
        pictures.add(path[0], path[1], archive.read(member))
    if not files:
        raise ImageError("The zip holds no pictures.")
    return pictures


def _open_zip(data: bytes) -> zipfile.ZipFile:
    if len(data) > MAX_ZIP_BYTES:
        raise ImageError(f"The zip is larger than the {MAX_ZIP_BYTES // 2**20} MB limit.")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ImageError("This file is not a zip archive we can read.") from None


def _ignored(path: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in path.split("/") if part)


def _check_zip_sizes(members: list[zipfile.ZipInfo], max_bytes: int) -> None:
    if len(members) > MAX_ZIP_ENTRIES:
        raise ImageError(f"The zip lists {len(members):,} entries; the limit is {MAX_ZIP_ENTRIES:,}.")
    total = sum(m.file_size for m in members)
    if total > max_bytes:
        raise ImageError(f"The zip unpacks to {total / 2**20:,.0f} MB; the limit is {max_bytes // 2**20} MB.")
    for m in members:
        if m.file_size > MAX_UPLOAD_BYTES:
            raise ImageError(f"'{m.filename}' is larger than the {MAX_UPLOAD_BYTES // 2**20} MB limit for a picture.")
        if m.file_size > 2**20 and m.file_size > MAX_COMPRESSION_RATIO * max(m.compress_size, 1):
            raise ImageError(
                f"'{m.filename}' unpacks to {m.file_size / m.compress_size:,.0f} times its packed size, which no "
                "picture does: the zip is refused as a possible decompression bomb."
            )
        if m.flag_bits & 0x1:
            raise ImageError(f"'{m.filename}' is encrypted; zip the pictures without a password.")


def read_folder(folder) -> PictureSet:
    """A folder with one sub-folder per class (the layout `to_zip` writes) as a PictureSet, with the same
    checks as a zip: hidden files are skipped, a file that is no picture is named."""
    from pathlib import Path

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ImageError(f"'{root}' is not a folder: give a folder with one sub-folder per class, or a .zip of one.")
    pictures = PictureSet()
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not _ignored(p.name)):
        pictures.add_class(class_dir.name)
        for path in sorted(p for p in class_dir.iterdir() if p.is_file() and not _ignored(p.name)):
            if not path.name.lower().endswith(IMAGE_SUFFIXES):
                raise ImageError(f"'{path}' is not a picture: the folders may hold only {SUPPORTED_TEXT} images.")
            if path.stat().st_size > MAX_UPLOAD_BYTES:
                raise ImageError(f"'{path}' is larger than the {MAX_UPLOAD_BYTES // 2**20} MB limit for a picture.")
            pictures.add(class_dir.name, path.name, path.read_bytes())
    if not pictures.classes:
        raise ImageError(f"'{root}' has no class folders: put each class's pictures in a folder named after it.")
    return pictures


def read_pictures(path) -> PictureSet:
    """A picture set from a folder of class folders or a .zip of one (the CLI's `teach`)."""
    from pathlib import Path

    path = Path(path).expanduser()
    if path.is_file():
        if path.stat().st_size > MAX_ZIP_BYTES:
            raise ImageError(f"The zip is larger than the {MAX_ZIP_BYTES // 2**20} MB limit.")
        return read_zip(path.read_bytes())
    if not path.exists():
        raise ImageError(f"'{path}' does not exist: give a folder with one sub-folder per class, or a .zip of one.")
    return read_folder(path)
