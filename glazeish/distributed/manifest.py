"""The exactly-once record of a Ray run: the append-only JSON-lines manifest of finished items, keyed by job key,
and the names of the manifest and of the staging folder in an output folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["MANIFEST_NAME", "STAGING_DIR", "Manifest"]

MANIFEST_NAME = ".glazeish-manifest.jsonl"
STAGING_DIR = ".glazeish-staging"


class Manifest:
    """Append-only JSON-lines record of finished items: one ``{"key": ..., ...}`` object per line.

    Appends are one ``write`` of one line, flushed and fsync'd, by the driver only, so a crash can at most
    tear the last line; a torn or unparsable line is ignored on reading (its item is simply redone).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.records: dict[str, dict] = {}
        self._torn_tail = False
        if self.path.is_file():
            text = self.path.read_text(encoding="utf-8", errors="replace")
            self._torn_tail = bool(text) and not text.endswith("\n")
            for line in text.splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("key"), str):
                    self.records[rec["key"]] = rec

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def append(self, record: dict) -> None:
        """Record one finished item (``record["key"]`` is its job key)."""
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        if self._torn_tail:  # start on a fresh line after a torn one, so this record is not glued to it
            line = "\n" + line
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self._torn_tail = False
        self.records[record["key"]] = record
