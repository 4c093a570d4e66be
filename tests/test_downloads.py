"""minigrad/training/download.py: a download is kept only when complete and valid; a bad cache is redone.

Every test serves its files from a local http.server on 127.0.0.1 (a thread), never the network.
"""
from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from minigrad.training import data as D
from minigrad.training.download import Pin


NO_LENGTH = -1           # a route that announces no Content-Length at all


class _Server:
    """routes: path -> (status, headers dict, body bytes, Content-Length to announce, None for the
    body's, or NO_LENGTH)."""

    def __init__(self):
        self.routes: dict[str, tuple] = {}
        self.hits: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):                                  # noqa: N802 (http.server's name)
                outer.hits.append(self.path)
                status, headers, body, length = outer.routes[self.path]
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if length != NO_LENGTH:
                    self.send_header("Content-Length", str(len(body) if length is None else length))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):                      # keep the test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


BODY = b"First Citizen:\nBefore we proceed any further, hear me speak.\n" * 20
PIN = Pin(len(BODY), hashlib.sha256(BODY).hexdigest())
TEXT = {"Content-Type": "text/plain; charset=utf-8"}


def _get(server, tmp_path, path="/f.txt", expect=PIN):
    return D.download(server.url(path), tmp_path / "f.txt", "the file", "use --data=PATH", expect)


def _no_debris(tmp_path):
    return not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_a_valid_download_is_kept_and_its_cache_used_without_the_server(server, tmp_path):
    server.routes["/f.txt"] = (200, TEXT, BODY, None)
    dest = _get(server, tmp_path)
    assert dest.read_bytes() == BODY and server.hits == ["/f.txt"]
    record = (tmp_path / "f.txt.sha256").read_text().split()
    assert record[:2] == [hashlib.sha256(BODY).hexdigest(), str(len(BODY))]
    assert _get(server, tmp_path) == dest and server.hits == ["/f.txt"]     # no second request
    assert _no_debris(tmp_path)


@pytest.mark.parametrize("headers, body, length, match", [
    ({"Content-Type": "text/html; charset=utf-8"}, b"<p>rate limited</p>", None, "HTML page"),
    (TEXT, b"  <!DOCTYPE html><html><body>Sign in to the Wi-Fi</body></html>", None, "HTML page"),
    (TEXT, b"<HTML><body>503</body></HTML>", None, "HTML page"),
    (TEXT, BODY[:100], len(BODY), "cut off"),                       # the connection closed early
    (TEXT, BODY[:-1] + b"?", None, "SHA-256"),                      # same size, other bytes
    (TEXT, BODY + b"more", None, "longer than the released file"),
    (TEXT, b"", None, "0 bytes"),
])
def test_bad_bodies_are_refused_and_nothing_is_kept(server, tmp_path, headers, body, length, match):
    server.routes["/f.txt"] = (200, headers, body, length)
    with pytest.raises(D.DataError, match=match) as e:
        _get(server, tmp_path)
    assert "use --data=PATH" in str(e.value)                  # the hint: how to use local files
    assert not (tmp_path / "f.txt").exists() and _no_debris(tmp_path)


def test_http_error_status_is_a_data_error(server, tmp_path):
    server.routes["/f.txt"] = (404, TEXT, b"not found", None)
    with pytest.raises(D.DataError, match="404"):
        _get(server, tmp_path)
    assert not (tmp_path / "f.txt").exists() and _no_debris(tmp_path)


def test_unpinned_download_checks_content_length(server, tmp_path):
    server.routes["/f.txt"] = (200, TEXT, BODY[:50], 80)
    with pytest.raises(D.DataError, match="cut off"):
        _get(server, tmp_path, expect=None)
    server.routes["/f.txt"] = (200, TEXT, BODY, None)
    assert _get(server, tmp_path, expect=None).read_bytes() == BODY


def test_an_unpinned_download_without_content_length_is_refused(server, tmp_path):
    # its end is the connection's close, cut off or not: nothing tells a truncated body apart
    server.routes["/f.txt"] = (200, TEXT, BODY[:50], NO_LENGTH)
    with pytest.raises(D.DataError, match="no Content-Length, so a cut-off download could not be told"):
        _get(server, tmp_path, expect=None)
    assert not (tmp_path / "f.txt").exists() and _no_debris(tmp_path)
    server.routes["/f.txt"] = (200, TEXT, BODY, NO_LENGTH)       # a pin checks it instead: kept
    assert _get(server, tmp_path).read_bytes() == BODY


def test_a_failed_download_leaves_no_empty_folders(server, tmp_path):
    server.routes["/f.txt"] = (404, TEXT, b"not found", None)
    (tmp_path / "cache").mkdir()
    with pytest.raises(D.DataError, match="404"):
        D.download(server.url("/f.txt"), tmp_path / "cache" / "gpt2" / "sub" / "f.txt", "the file", "hint")
    assert [p.name for p in tmp_path.rglob("*")] == ["cache"]     # gpt2/sub removed, cache kept


@pytest.mark.parametrize("damage", [
    lambda p: p.write_bytes(BODY[:-7]),                                   # truncated
    lambda p: p.write_bytes(BODY.replace(b"First", b"Third")),            # same size, other bytes
    lambda p: p.write_bytes(b"<!DOCTYPE html><title>404</title>"),        # an error page
])
def test_a_damaged_pinned_cache_is_downloaded_again(server, tmp_path, damage, capsys):
    server.routes["/f.txt"] = (200, TEXT, BODY, None)
    damage(tmp_path / "f.txt")
    assert _get(server, tmp_path).read_bytes() == BODY and server.hits == ["/f.txt"]
    assert "is damaged" in capsys.readouterr().out


def test_a_damaged_unpinned_cache_is_found_by_its_recorded_size(server, tmp_path):
    server.routes["/f.txt"] = (200, TEXT, BODY, None)
    dest = _get(server, tmp_path, expect=None)
    dest.write_bytes(BODY[: len(BODY) // 2])                  # e.g. a disk-full copy
    assert _get(server, tmp_path, expect=None).read_bytes() == BODY and len(server.hits) == 2
    # a legacy cache (no record, no pin) that is an HTML page is not trained on either
    (tmp_path / "f.txt.sha256").unlink()
    dest.write_bytes(b"\n<html><body>Bad gateway</body></html>")
    assert _get(server, tmp_path, expect=None).read_bytes() == BODY and len(server.hits) == 3


def test_damaged_cache_and_no_network_is_an_error_not_training_data(tmp_path):
    (tmp_path / "f.txt").write_bytes(BODY[:10])
    with pytest.raises(D.DataError, match="are you offline"):
        D.download("http://127.0.0.1:9/f.txt", tmp_path / "f.txt", "the file", "hint", PIN)


def test_pins_are_the_released_files(shared_data):
    """The pinned sizes and SHA-256s against the shared copies of the released files (vocab.bpe
    is GPT-2's merges.txt with its '#version: 0.2' first line, which the shared copy lacks)."""
    def pin_of(raw: bytes) -> tuple:
        return len(raw), hashlib.sha256(raw).hexdigest()

    def pinned(pin: Pin) -> tuple:
        return pin.size, pin.sha256
    assert pinned(D.TINY_SHAKESPEARE_PIN) == pin_of((shared_data / "tinyshakespeare.txt").read_bytes())
    assert pinned(D.GPT2_PINS["vocab.json"]) == pin_of((shared_data / "gpt2" / "vocab.json").read_bytes())
    merges = (shared_data / "gpt2" / "merges.txt").read_bytes()
    if not merges.startswith(b"#version"):
        merges = b"#version: 0.2\n" + merges
    assert pinned(D.GPT2_PINS["merges.txt"]) == pin_of(merges)


def test_a_cached_merges_txt_without_its_version_line_is_the_released_file(tmp_path, shared_data, monkeypatch):
    """Other tools drop merges.txt's '#version: 0.2' line; the merges are the same, so the cached copy
    is used as it is (no download: offline it would fail), and a really damaged one still is not."""
    body = (shared_data / "gpt2" / "merges.txt").read_bytes()
    body = body[len(b"#version: 0.2\n"):] if body.startswith(b"#version") else body
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "merges.txt").write_bytes(body)
    (gpt2 / "vocab.json").write_bytes((shared_data / "gpt2" / "vocab.json").read_bytes())
    monkeypatch.setattr(D, "GPT2_URLS", {k: "http://127.0.0.1:9/unreachable" for k in D.GPT2_URLS})
    vocab, merges = D.gpt2_files(None, tmp_path)
    assert merges.read_bytes() == body
    (gpt2 / "merges.txt").write_bytes(body.replace(b"h e", b"h f", 1))
    with pytest.raises(D.DataError, match="could not download GPT-2's merges.txt"):
        D.gpt2_files(None, tmp_path)
