"""Fetching dataset files: urllib, a progress bar on stderr, MD5 verification, mirror fallback."""
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request

_CHUNK_BYTES = 1 << 20
_CONNECT_TIMEOUT_S = 30


def md5_of(path):
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_integrity(path, md5):
    return os.path.isfile(path) and (md5 is None or md5_of(path) == md5)


def _progress(filename, done, total, stream):
    if total:
        width = 30
        filled = int(width * done / total)
        stream.write(f"\r{filename}: [{'#' * filled}{'.' * (width - filled)}] {100 * done // total:3d}% "
                     f"of {total / 1e6:.1f} MB")
    else:
        stream.write(f"\r{filename}: {done / 1e6:.1f} MB")
    stream.flush()


def _fetch(url, destination):
    """Stream `url` into `destination` through a temporary file so a broken transfer leaves nothing."""
    filename = os.path.basename(destination)
    directory = os.path.dirname(destination)
    with urllib.request.urlopen(url, timeout=_CONNECT_TIMEOUT_S) as response:
        total = int(response.headers.get("Content-Length") or 0)
        fd, temp_path = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                done = 0
                for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
                    handle.write(chunk)
                    done += len(chunk)
                    _progress(filename, done, total, sys.stderr)
            sys.stderr.write("\n")
            os.replace(temp_path, destination)
        except BaseException:
            os.unlink(temp_path)
            raise


def download_file(filename, mirrors, directory, md5):
    """Download `filename` into `directory` from the first mirror that serves it with the right MD5."""
    os.makedirs(directory, exist_ok=True)
    destination = os.path.join(directory, filename)
    if check_integrity(destination, md5):
        return destination
    failures = []
    for mirror in mirrors:
        url = mirror + filename
        try:
            _fetch(url, destination)
        except (urllib.error.URLError, OSError, ValueError) as error:
            failures.append(f"{url}: {getattr(error, 'reason', error)}")
            continue
        if check_integrity(destination, md5):
            return destination
        failures.append(f"{url}: MD5 mismatch (expected {md5}, got {md5_of(destination)})")
        os.unlink(destination)
    raise RuntimeError(f"Could not download {filename} into {directory}; tried:\n  " + "\n  ".join(failures)
                       + "\nIf this machine is offline, copy the file there by hand (same name) and retry.")
