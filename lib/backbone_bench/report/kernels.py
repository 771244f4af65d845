"""The kernel manager papermill uses for the book's pages: local IPC sockets instead of TCP ports."""
from jupyter_client.manager import AsyncKernelManager
from traitlets import default


class IPCKernelManager(AsyncKernelManager):
    @default("transport")
    def _default_transport(self):
        return "ipc"


# Kernels talk over local sockets (IPC), not TCP: no open port, and no "running over TCP without
# encryption" warning printed once per page.
IPC_KERNEL = f"{__name__}.IPCKernelManager"
