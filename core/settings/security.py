"""[security]: CURVE keys for tcp endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from emotiond.core.settings.base import _Section


class SecuritySettings(_Section):
    """CURVE for tcp endpoints. Binding tcp beyond loopback is refused unless the server half is set."""

    server_secret_key: Annotated[Path | None, Field(description="Daemon: the server's .key_secret file; "
                                                    "makes bound tcp sockets CURVE servers.")] = None
    authorized_keys_dir: Annotated[Path | None, Field(description="Daemon: folder of client public .key "
                                                      "files allowed to connect (ZAP allow-list).")] = None
    server_public_key: Annotated[Path | None, Field(description="Clients and workers: the server's public "
                                                    ".key file, to authenticate the daemon.")] = None
    client_secret_key: Annotated[Path | None, Field(description="Clients and workers: this side's "
                                                    ".key_secret file; its public key must be allowed.")] = None

    @model_validator(mode="after")
    def _halves_are_whole(self) -> SecuritySettings:
        if (self.server_secret_key is None) != (self.authorized_keys_dir is None):
            raise ValueError("server_secret_key and authorized_keys_dir go together")
        if (self.server_public_key is None) != (self.client_secret_key is None):
            raise ValueError("server_public_key and client_secret_key go together")
        return self

    @property
    def server_configured(self) -> bool:
        """Binding sockets become CURVE servers with a ZAP allow-list."""
        return self.server_secret_key is not None and self.authorized_keys_dir is not None

    @property
    def client_configured(self) -> bool:
        """Connecting sockets present a CURVE identity and check the server's key."""
        return self.server_public_key is not None and self.client_secret_key is not None
