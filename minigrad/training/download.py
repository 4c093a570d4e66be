"""Downloads that are kept only when complete and valid, and cached files checked before use.

`download(url, dest, what, hint, expect)` fetches `url` into a temp file in dest's folder and
renames it over `dest` only when the body is complete and plausible:

- an HTTP error, an HTML page (``Content-Type: text/html``, or a body that starts with
  ``<!DOCTYPE`` / ``<html``: what a captive portal or an error page sends with status 200) or a
  body shorter than its ``Content-Length`` is refused;
- `expect` (a `Pin`) gives the exact size and SHA-256 where they are known (the released
  files of Tiny Shakespeare and GPT-2's tokenizer), and a download that differs is refused.

After a download, ``<dest>.sha256`` records its size, SHA-256 and URL. A cached `dest` is used
only when it still matches (its pin, else that record: the size, which is cheap even for
TinyStories' 1.9 GB), and does not look like an HTML page; otherwise it is downloaded again.
A cached file with neither (written by an older version) is checked for HTML only.

Every failure is a `DownloadError` (a DataError) that ends with `hint` (how to use local files).
It never reads more than the body it was sent, and nothing partial is left behind.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

DOWNLOAD_TIMEOUT_S = 30
_CHUNK = 1 << 20
_HTML_STARTS = (b"<!doctype", b"<html")


class DownloadError(RuntimeError):
    """A download failed or gave something other than the file; minigrad/training/data.py re-raises it as
    its DataError."""


@dataclass(frozen=True)
class Pin:
    """What a released file is: its exact size in bytes and SHA-256 (hex). `header`: a first line
    that copies of the file often lack and that carries nothing (merges.txt's ``#version: 0.2``
    line, which other tools drop): a copy without it is the same file."""
    size: int
    sha256: str
    header: bytes = b""

    def matches(self, path: Path) -> bool:
        size = path.stat().st_size
        if size == self.size:
            return _sha256(path) == self.sha256
        if self.header and size + len(self.header) == self.size:
            return _sha256(path, prefix=self.header) == self.sha256
        return False


def _looks_like_html(head: bytes) -> bool:
    return head.lstrip()[:9].lower().startswith(_HTML_STARTS)


def _sha256(path: Path, prefix: bytes = b"") -> str:
    h = hashlib.sha256(prefix)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _record_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def cached_problem(dest: Path, expect: Optional[Pin]) -> Optional[str]:
    """Why the cached `dest` must not be used (None when it looks right)."""
    size = dest.stat().st_size
    with open(dest, "rb") as f:
        if _looks_like_html(f.read(512)):
            return "it is an HTML page, not the data"
    if expect is not None:
        if expect.matches(dest):
            return None
        if size not in (expect.size, expect.size - len(expect.header)):
            return f"it has {size:,} bytes, expected {expect.size:,}"
        return "its SHA-256 differs from the released file's"
    record = _record_path(dest)
    if record.is_file():
        parts = record.read_text(encoding="utf-8", errors="replace").split()
        if len(parts) >= 2 and parts[1].isdigit() and size != int(parts[1]):
            return f"it has {size:,} bytes, but {int(parts[1]):,} were downloaded"
    return None


def _fetch(url: str, tmp: Path, expect: Optional[Pin]) -> tuple[int, str]:
    """Stream `url` into `tmp`; (bytes written, SHA-256). Raises DownloadError on a bad body."""
    h = hashlib.sha256()
    n = 0
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as r, open(tmp, "wb") as f:
        ctype = (r.headers.get("Content-Type") or "").lower()
        if ctype.startswith("text/html"):
            raise DownloadError(f"the server sent an HTML page (Content-Type: {ctype}), not the file")
        length = r.headers.get("Content-Length")
        expected_len = int(length) if length and length.strip().isdigit() else None
        chunked = "chunked" in (r.headers.get("Transfer-Encoding") or "").lower()
        if expect is None and expected_len is None and not chunked:
            # the body then ends when the connection closes, cut off or not: nothing to check it by
            raise DownloadError("the server sent no Content-Length, so a cut-off download could not be "
                                "told from a complete one")
        while True:
            block = r.read(_CHUNK)
            if not block:
                break
            if n == 0 and _looks_like_html(block[:512]):
                raise DownloadError("the server sent an HTML page, not the file")
            f.write(block)
            h.update(block)
            n += len(block)
            if expect is not None and n > expect.size:
                raise DownloadError(f"the body is longer than the released file ({expect.size:,} bytes)")
        f.flush()
        os.fsync(f.fileno())
    if expected_len is not None and n != expected_len:
        raise DownloadError(f"cut off: got {n:,} of {expected_len:,} bytes (Content-Length)")
    digest = h.hexdigest()
    if expect is not None and (n, digest) != (expect.size, expect.sha256):
        raise DownloadError(f"got {n:,} bytes with SHA-256 {digest[:16]}..., expected the released "
                            f"file ({expect.size:,} bytes, SHA-256 {expect.sha256[:16]}...)")
    if n == 0:
        raise DownloadError("the server sent an empty body")
    return n, digest


def download(url: str, dest: "str | os.PathLike[str]", what: str, hint: str,
             expect: Optional[Pin] = None) -> Path:
    """`dest`, downloaded from `url` unless a valid copy is cached (see the module docstring)."""
    dest = Path(dest)
    if dest.is_file():
        problem = cached_problem(dest, expect)
        if problem is None:
            return dest
        print(f"note: the cached {what} at {dest} is damaged ({problem}); downloading it again")
    made = [p for p in reversed(dest.parents) if not p.exists()]     # removed again if it fails
    dest.parent.mkdir(parents=True, exist_ok=True)
    print(f"downloading {what} from {url} -> {dest}")
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        n, digest = _fetch(url, tmp, expect)
        os.replace(tmp, dest)
        made = []
    except DownloadError as err:
        raise DownloadError(f"could not download {what} from {url}: {err}. {hint}") from None
    except http.client.HTTPException as err:       # IncompleteRead: the connection closed early
        raise DownloadError(f"could not download {what} from {url}: cut off ({err!r}). {hint}") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise DownloadError(f"could not download {what} from {url} ({err}); are you offline? {hint}") from err
    finally:
        tmp.unlink(missing_ok=True)
        for folder in reversed(made):           # a failed download leaves no empty folders
            try:
                folder.rmdir()
            except OSError:
                break
    _record_path(dest).write_text(f"{digest}  {n}  {url}\n", encoding="utf-8")
    return dest
