# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Local files at any size: read, hashed, sent, received and replaced in chunks, never whole in memory.

* :class:`MultipartFile` is a ``multipart/form-data`` body of a few text fields and one file,
  read from disk as it is sent, with its length known beforehand (OpenAI's Files API wants a
  ``Content-Length``) and the file's SHA-256 computed on the way.
* :class:`DigestSink` receives a download chunk by chunk into an open file, computing the
  checksums on the way.
* :class:`Replacement` writes a file beside its destination and moves it into place when complete;
  :func:`replace_by_download` streams a download into one, checked, unless the destination already holds it;
  :func:`read_manifest` and :func:`write_manifest` keep the JSON records that let a re-run write nothing.

Files the collection creates are ``0600`` and directories ``0700``, whatever the umask: outputs hold
whatever the documents held. A file it replaces keeps its mode; a module's ``mode`` option sets another.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import tempfile
import uuid
from contextlib import contextmanager

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, UnexpectedAnswerError

CHUNK_SIZE = 1024 * 1024
# hashlib's algorithms that every Python has, less the SHAKEs, whose digests have no fixed length.
CHECKSUM_ALGORITHMS = tuple(sorted(name for name in hashlib.algorithms_guaranteed if not name.startswith("shake_")))


@contextmanager
def private_umask():
    """Whatever is created inside is its owner's alone (files 0600, directories 0700); the umask is restored after."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def make_directory(path):
    """Create the directory ``path`` and its missing parents, each 0700."""
    with private_umask():
        os.makedirs(path)


def plain_name(name, what):
    """``name`` when it is a plain file name, else a :class:`ConfigurationError` naming ``what``: a name that
    comes from a server (a file or job ID) must not lead out of the directory it is joined to."""
    text = name if isinstance(name, str) else ""
    leads_out = text in ("", ".", "..") or "/" in text or "\\" in text
    unusable = len(text.encode("utf-8", "surrogateescape")) > 255 or any(ord(character) < 32 or ord(character) == 127 for character in text)
    if leads_out or unusable:
        raise ConfigurationError("%s %r is not a plain file name, so no local file is named after it." % (what, name))
    return text


def open_local(path):
    try:
        return open(path, "rb")
    except (IOError, OSError) as error:
        raise ConfigurationError("Cannot read %s: %s." % (path, error.strerror))


def count_lines(path):
    """The lines of the file at ``path``, read in chunks; a last line without its newline counts."""
    count = 0
    last = b"\n"
    with open_local(path) as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def file_digest(path, algorithm="sha256"):
    """The hex digest of the file at ``path``, read in chunks."""
    digest = hashlib.new(algorithm)
    with open_local(path) as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprinted_name(path, sha256):
    """The name an upload of ``path`` gets: its own, with the content's SHA-256 before the extension, so that a
    re-run finds the upload by its name."""
    stem, extension = os.path.splitext(os.path.basename(path))
    return "%s.sha256-%s%s" % (stem, sha256, extension)


def parse_checksum(checksum):
    """``algorithm:hexdigest`` (as ``ansible.builtin.get_url`` takes it) as a pair, algorithm lower-cased."""
    algorithm, separator, expected = (checksum or "").partition(":")
    algorithm = algorithm.strip().lower()
    if not separator or not expected.strip():
        raise ConfigurationError("checksum must look like sha256:<hex digest>; got %r." % checksum)
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise ConfigurationError("checksum names the algorithm %r; use one of %s." % (algorithm, ", ".join(CHECKSUM_ALGORITHMS)))
    return algorithm, expected.strip().lower()


def _quoted(value):
    """A form-data parameter value, quoted as browsers and requests do (HTML5: CR, LF and quote escaped)."""
    return '"%s"' % value.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")


class MultipartFile(object):
    """A ``multipart/form-data`` body: ``fields`` (text) and the file at ``path`` under ``file_field``.

    :meth:`open` returns a fresh reader each time (a request that is sent again reads the file
    again); the last reader's :attr:`sha256` is the digest of the file bytes it sent.
    """

    def __init__(self, fields, file_field, filename, path, content_type="application/octet-stream"):
        self.boundary = uuid.uuid4().hex
        self.path = path
        self.content_type = "multipart/form-data; boundary=%s" % self.boundary
        head = b"".join(
            self._part_header('form-data; name=%s' % _quoted(name)) + value.encode("utf-8") + b"\r\n"
            for name, value in sorted(fields.items())
        )
        disposition = "form-data; name=%s; filename=%s" % (_quoted(file_field), _quoted(filename))
        self.head = head + self._part_header(disposition, content_type)
        self.tail = ("\r\n--%s--\r\n" % self.boundary).encode("ascii")
        self.reader = None

    def _part_header(self, disposition, content_type=None):
        lines = ["--%s" % self.boundary, "Content-Disposition: %s" % disposition]
        if content_type:
            lines.append("Content-Type: %s" % content_type)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def open(self):
        if self.reader is not None:
            self.reader.close()
        self.reader = _MultipartReader(self)
        return self.reader

    @property
    def sha256(self):
        return self.reader.digest.hexdigest() if self.reader else None

    def close(self):
        if self.reader is not None:
            self.reader.close()


class _MultipartReader(object):
    """Reads head, file and tail in turn. requests takes its length from ``__len__`` and sends it
    by calling :meth:`read`, so the body goes out in chunks with a ``Content-Length``. (No
    ``tell`` and no ``__iter__``: with them, requests would send it chunked, without a length.)"""

    def __init__(self, body):
        self.digest = hashlib.sha256()
        self._handle = open_local(body.path)
        self._length = len(body.head) + os.fstat(self._handle.fileno()).st_size + len(body.tail)
        self._pending = [body.head, self._handle, body.tail]

    def __len__(self):
        return self._length

    def read(self, size=-1):
        # A whole chunk whatever is asked: urllib3 asks for 16 KiB, and a send per 16 KiB slows a large upload.
        size = CHUNK_SIZE if size is None or size < CHUNK_SIZE else size
        while self._pending:
            source = self._pending[0]
            if isinstance(source, bytes):
                chunk, self._pending[0] = source[:size], source[size:]
            else:
                chunk = source.read(size)
                self.digest.update(chunk)
            if chunk:
                return chunk
            self._pending.pop(0)
        return b""

    def close(self):
        self._handle.close()


class DigestSink(object):
    """Where a download goes: the open binary file ``handle``, with each ``algorithms``' digest kept. A download
    longer than ``limit`` bytes (the size the server announced) is stopped as soon as it exceeds it."""

    def __init__(self, handle, algorithms=("sha256",), limit=None):
        self.handle = handle
        self.algorithms = tuple(sorted(set(algorithms)))
        self.limit = limit
        self.restart()

    def restart(self):
        """Forget what was written (a download that is sent again starts from the first byte)."""
        self.handle.seek(0)
        self.handle.truncate()
        self.size = 0
        self.digests = dict((algorithm, hashlib.new(algorithm)) for algorithm in self.algorithms)

    def write(self, chunk):
        if self.limit is not None and self.size + len(chunk) > self.limit:
            raise UnexpectedAnswerError("The server sent more than the %d bytes it announced for the file; the download was stopped there." % self.limit)
        self.handle.write(chunk)
        self.size += len(chunk)
        for digest in self.digests.values():
            digest.update(chunk)

    def hexdigest(self, algorithm):
        return self.digests[algorithm].hexdigest()


class Replacement(object):
    """A binary file written beside ``dest`` and moved into place by :meth:`commit` with ``module.atomic_move``
    (which keeps the attributes of the file it replaces), so that ``dest`` is never seen half written.
    Leaving the ``with`` block without a commit, by an error or on purpose, removes it."""

    def __init__(self, module, dest):
        self.module = module
        # atomic_move needs an absolute path to create a file (it looks at the directory's attributes).
        self.dest = os.path.abspath(dest)
        # mkstemp's file is 0600.
        handle, self.path = tempfile.mkstemp(dir=os.path.dirname(self.dest), prefix=".%s." % os.path.basename(self.dest), suffix=".part")
        self.handle = os.fdopen(handle, "wb")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.discard()

    def write(self, data):
        self.handle.write(data)

    def close(self):
        """Stop writing; the file stays until :meth:`commit` or :meth:`discard`."""
        self.handle.close()

    def commit(self):
        self.handle.close()
        try:
            # atomic_move gives a file it creates the umask's mode: 0600 under this one.
            with private_umask():
                self.module.atomic_move(self.path, self.dest)
        except BaseException:
            self.discard()
            raise
        self.path = None

    def discard(self):
        self.handle.close()
        if self.path is not None and os.path.exists(self.path):
            os.remove(self.path)
        self.path = None


def download_path(dest, name):
    """``dest``, or ``name`` inside it when ``dest`` is a directory, as an absolute path; its directory must exist."""
    dest = os.path.abspath(dest)
    if os.path.isdir(dest):
        return os.path.join(dest, name)
    directory = os.path.dirname(dest)
    if not os.path.isdir(directory):
        raise ConfigurationError("Cannot download to %s: the directory %s does not exist." % (dest, directory))
    return dest


def holds(path, size, expected=None, force=False):
    """Whether ``path`` stands for a download of ``size`` bytes without reading it again: of that size, and of
    ``expected`` (algorithm, digest) when given; never with ``force``."""
    if force or not os.path.isfile(path) or os.path.getsize(path) != size:
        return False
    return expected is None or file_digest(path, expected[0]) == expected[1]


def replace_by_download(module, dest, fetch, what, size=None, expected=None):
    """Replace ``dest`` with what ``fetch(sink)`` streams into a :class:`DigestSink`, unless ``dest`` holds those
    bytes already: ``(changed, sha256)``. A download that is not of ``size`` bytes (when known) and of
    ``expected`` (algorithm, digest, when given) fails, and ``dest`` stays as it was."""
    existing = os.path.getsize(dest) if os.path.isfile(dest) else None
    with Replacement(module, dest) as replacement:
        sink = DigestSink(replacement.handle, ["sha256"] + ([expected[0]] if expected else []), limit=size)
        fetch(sink)
        replacement.close()
        if size is not None and sink.size != size:
            raise ConfigurationError("The download of %s ended after %d of its %d bytes; run again." % (what, sink.size, size))
        if expected and sink.hexdigest(expected[0]) != expected[1]:
            raise ConfigurationError("The checksum of %s did not match: %s:%s was expected, the file has %s:%s. %s was not changed."
                                     % (what, expected[0], expected[1], expected[0], sink.hexdigest(expected[0]), dest))
        sha256 = sink.hexdigest("sha256")
        if existing == sink.size and file_digest(dest) == sha256:
            return False, sha256
        replacement.commit()
    return True, sha256


def read_manifest(path, valid):
    """The JSON object at ``path`` if ``valid(manifest)`` holds; None when there is none, it is not
    JSON, or it is not one ``valid`` recognises (a manifest is only ever a shortcut)."""
    try:
        with open(path, "rb") as handle:
            manifest = json.load(handle)
        if valid(manifest):
            return manifest
    except (IOError, OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def write_manifest(module, path, manifest):
    with Replacement(module, path) as replacement:
        replacement.write(json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8"))
        replacement.commit()
