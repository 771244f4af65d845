"""The kernel manager papermill uses for the book's pages: local IPC sockets instead of TCP ports."""
from jupyter_client.manager import AsyncKernelManager
from traitlets import default


class IPCKernelManager(AsyncKernelManager):
    @default("transport")
    def _default_transport(self):
        return "ipc"
