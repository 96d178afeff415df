"""The clients ``emotiond run`` starts beside the daemon when their settings section enables them."""

from __future__ import annotations

from emotiond.daemon.supervisor import ClientRole

CLIENT_ROLES: tuple[ClientRole, ...] = ()
