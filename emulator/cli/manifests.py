"""Reading manifests for ``-f FILE|DIR|-``: multi-document YAML or JSON, ``List``
kinds expanded, each document remembered with where it came from so an error can
say which file and which document."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

EXTENSIONS = (".yaml", ".yml", ".json")


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe YAML, but timestamps stay strings, as Kubernetes reads them."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}


class ManifestError(Exception):
    """A manifest could not be read; the message is one line naming where."""


@dataclass(frozen=True)
class Document:
    source: str  # file path or "STDIN"
    index: int  # 1-based document number in the source
    object: dict[str, Any]

    @property
    def where(self) -> str:
        meta = self.object.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        name = meta.get("name") or meta.get("generateName") or "?"
        return f'{self.source} (document {self.index}, {self.object.get("kind", "?")} "{name}")'


def load(paths: list[str], *, recursive: bool = False) -> list[Document]:
    documents: list[Document] = []
    for path in paths:
        if path == "-":
            documents += parse(sys.stdin.read(), "STDIN")
            continue
        p = Path(path)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(f for f in p.glob(pattern) if f.is_file() and f.suffix in EXTENSIONS)
            if not files:
                raise ManifestError(f'error reading "{path}": no .yaml, .yml or .json files in the directory')
            for f in files:
                documents += parse(_read(f), str(f))
        else:
            documents += parse(_read(p), path)
    if not documents:
        raise ManifestError("no objects passed to apply")
    return documents


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ManifestError(f'the path "{path}" does not exist') from None
    except UnicodeDecodeError:
        raise ManifestError(f'error reading "{path}": not a text file') from None
    except OSError as exc:
        raise ManifestError(f'error reading "{path}": {exc.strerror}') from None


def parse(text: str, source: str) -> list[Document]:
    documents: list[Document] = []
    try:
        loaded = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ManifestError(f"error parsing {source}{where}: {problem}") from None
    for index, obj in enumerate(loaded, start=1):
        if obj is None:
            continue
        if not isinstance(obj, dict):
            raise ManifestError(
                f"error parsing {source} (document {index}): expected a Kubernetes object, got a {type(obj).__name__}"
            )
        for field in ("apiVersion", "kind"):
            if not isinstance(obj.get(field), str) or not obj.get(field):
                raise ManifestError(f"error validating {source} (document {index}): {field} not set")
        if obj["kind"] == "List" or obj["kind"].endswith("List") and isinstance(obj.get("items"), list):
            for item in obj.get("items") or []:
                if not isinstance(item, dict):
                    raise ManifestError(f"error parsing {source} (document {index}): a List item is not an object")
                documents.append(Document(source, index, item))
            continue
        documents.append(Document(source, index, obj))
    return documents
