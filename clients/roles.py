"""The clients ``emotiond run`` starts beside the daemon when their settings section enables them."""

from __future__ import annotations

from emotiond.clients.history import role as history_role
from emotiond.clients.mqtt import role as mqtt_role
from emotiond.clients.web import role as web_role
from emotiond.daemon.supervisor import ClientRole

CLIENT_ROLES: tuple[ClientRole, ...] = (
    ClientRole("mqtt", mqtt_role.enabled, mqtt_role.main),
    ClientRole("web", web_role.enabled, web_role.main, web_role.preflight),
    ClientRole("history", history_role.enabled, history_role.main, history_role.preflight),
)
