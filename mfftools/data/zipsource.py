"""A zip archive opened lazily, once per process, so torch DataLoader workers never share a handle.

The path is kept; the archive is (re)opened on first use in each process. Pickling (spawned
workers) drops the open handle. With `in_memory=True` the whole file is read once and members are
served from those bytes, as the original code did.
"""

import io
import os
import zipfile
import zlib
from pathlib import Path

from mfftools.errors import MfftoolsError


class LazyZip:
    """Read-only access to the members of one zip file, safe to use from DataLoader workers."""

    def __init__(self, path, in_memory=False):
        self.path = Path(path)
        if not self.path.is_file():
            raise MfftoolsError(f"{self.path}: no such file")
        self._data = self.path.read_bytes() if in_memory else None
        self._handle = None
        self._handle_pid = None
        with self._open() as archive:
            self.names = archive.namelist()

    def _open(self):
        source = io.BytesIO(self._data) if self._data is not None else self.path
        try:
            return zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError) as error:
            raise MfftoolsError(f"{self.path}: not a readable zip file ({error})") from error

    def read(self, member):
        """The bytes of `member`; an error naming the file and member if missing or corrupt."""
        if self._handle is None or self._handle_pid != os.getpid():
            self._handle = self._open()
            self._handle_pid = os.getpid()
        try:
            return self._handle.read(member)
        except KeyError as error:
            raise MfftoolsError(f"{self.path}: member {member} is missing") from error
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as error:
            raise MfftoolsError(f"{self.path}: cannot read member {member} ({error})") from error

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handle"] = None
        state["_handle_pid"] = None
        return state
