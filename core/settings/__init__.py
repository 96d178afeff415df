"""The one settings tree for every emotiond process.

Precedence, lowest first: field defaults, a TOML file (``--config``), environment variables
``EMOTIOND_...`` (nested with ``__``), then explicit overrides (CLI flags). Unknown keys are
rejected everywhere so a typo never silently falls back to a default.

One module per section (``[capture]`` lives in ``capture.py``, ``[web]`` in ``web.py``, ...); this package
re-exports every public name, so callers keep importing from ``emotiond.core.settings``.
"""

from __future__ import annotations

from emotiond.core.settings.base import (
    DEFAULT_MODEL_NAME,
    ENV_NAME_PATTERN,
    MASK_SECRETS,
    _Section,
    default_models_dir,
    default_runtime_dir,
    default_state_dir,
    shipped_config,
)
from emotiond.core.settings.bus import BusSettings
from emotiond.core.settings.capture import CaptureSettings
from emotiond.core.settings.classifier import ClassifierSettings
from emotiond.core.settings.detection import DetectionSettings
from emotiond.core.settings.history import HISTORY_FILE, HistoryCameraSettings, HistorySettings
from emotiond.core.settings.loading import (
    ENV_DELIMITER,
    ENV_PREFIX,
    ConfigError,
    load_settings,
    nest_dotted,
    to_toml,
)
from emotiond.core.settings.logs import LoggingSettings
from emotiond.core.settings.metrics import MetricsSettings
from emotiond.core.settings.models import ModelsSettings
from emotiond.core.settings.mqtt import MQTT_PASSWORD_ENV, MQTT_TOPIC_PATTERN, MqttSettings
from emotiond.core.settings.privacy import PrivacySettings
from emotiond.core.settings.root import Settings
from emotiond.core.settings.security import SecuritySettings
from emotiond.core.settings.sources import SourceSettings, parse_source_flag
from emotiond.core.settings.supervisor import SupervisorSettings
from emotiond.core.settings.tracking import TrackingSettings
from emotiond.core.settings.web import WebSettings
from emotiond.core.settings.workers import WorkerSettings

__all__ = [
    "DEFAULT_MODEL_NAME",
    "ENV_DELIMITER",
    "ENV_NAME_PATTERN",
    "ENV_PREFIX",
    "HISTORY_FILE",
    "MASK_SECRETS",
    "MQTT_PASSWORD_ENV",
    "MQTT_TOPIC_PATTERN",
    "BusSettings",
    "CaptureSettings",
    "ClassifierSettings",
    "ConfigError",
    "DetectionSettings",
    "HistoryCameraSettings",
    "HistorySettings",
    "LoggingSettings",
    "MetricsSettings",
    "ModelsSettings",
    "MqttSettings",
    "PrivacySettings",
    "SecuritySettings",
    "Settings",
    "SourceSettings",
    "SupervisorSettings",
    "TrackingSettings",
    "WebSettings",
    "WorkerSettings",
    "_Section",
    "default_models_dir",
    "default_runtime_dir",
    "default_state_dir",
    "load_settings",
    "nest_dotted",
    "parse_source_flag",
    "shipped_config",
    "to_toml",
]
