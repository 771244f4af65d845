"""The kernel manager papermill uses for the book's pages: local IPC sockets instead of TCP ports."""
import os
import tempfile
import uuid

from jupyter_client.manager import AsyncKernelManager
from traitlets import default


class IPCKernelManager(AsyncKernelManager):
    @default("transport")
    def _default_transport(self):
        return "ipc"

    @default("ip")
    def _default_ip(self):
        if self.transport != "ipc":
            return super()._ip_default()
        # jupyter_client's default, "kernel-ipc" in the working folder, is shared by every kernel
        # started there: two pages run side by side then pick the same socket files, and each
        # kernel rejects the other's messages ("Invalid Signature"). One name per kernel instead.
        return os.path.join(tempfile.gettempdir(), f"backbone-bench-{uuid.uuid4().hex[:12]}-ipc")


# Kernels talk over local sockets (IPC), not TCP: no open port, and no "running over TCP without
# encryption" warning printed once per page.
IPC_KERNEL = f"{__name__}.IPCKernelManager"
