"""Makes a test's Python processes look like processes of a cluster node, as the test asks through the environment
(this folder on PYTHONPATH: Python imports ``sitecustomize`` at start-up, so every lowloss process of the test — its
coordinator, its workers — gets it):

- ``LOWLOSS_TEST_FLOCK=enosys``: ``fcntl.flock`` fails with ENOSYS, as on Lustre mounted without ``-o flock``;
- ``LOWLOSS_TEST_FLOCK=nodelocal``: ``fcntl.flock`` always succeeds, as a node-local ``flock`` (Lustre's
  ``localflock``, NFS's ``local_lock``) looks to a process that cannot see the other node's lock;
- ``LOWLOSS_TEST_HOST=NAME``: ``socket.gethostname()`` says NAME (two "nodes" on one machine).
"""

import errno
import fcntl
import os
import socket

_MODE = os.environ.get("LOWLOSS_TEST_FLOCK")
_HOST = os.environ.get("LOWLOSS_TEST_HOST")


def _enosys(fd, operation):
    raise OSError(errno.ENOSYS, "Function not implemented")


def _node_local(fd, operation):
    return None


if _MODE == "enosys":
    fcntl.flock = _enosys
elif _MODE == "nodelocal":
    fcntl.flock = _node_local
if _HOST:
    socket.gethostname = lambda: _HOST
