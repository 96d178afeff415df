"""The root of the settings tree: one field per section, and the checks that span sections."""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from emotiond.core.endpoints import is_exposed
from emotiond.core.settings.bus import BusSettings
from emotiond.core.settings.capture import CaptureSettings
from emotiond.core.settings.classifier import ClassifierSettings
from emotiond.core.settings.detection import DetectionSettings
from emotiond.core.settings.history import HistorySettings
from emotiond.core.settings.logs import LoggingSettings
from emotiond.core.settings.metrics import MetricsSettings
from emotiond.core.settings.models import ModelsSettings
from emotiond.core.settings.mqtt import MqttSettings
from emotiond.core.settings.privacy import PrivacySettings
from emotiond.core.settings.security import SecuritySettings
from emotiond.core.settings.sources import SourceSettings
from emotiond.core.settings.supervisor import SupervisorSettings
from emotiond.core.settings.tracking import TrackingSettings
from emotiond.core.settings.web import WebSettings
from emotiond.core.settings.workers import WorkerSettings


class Settings(BaseSettings):
    """Effective configuration of the daemon and its tools."""

    model_config = SettingsConfigDict(
        env_prefix="EMOTIOND_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    sources: Annotated[list[SourceSettings], Field(max_length=64, description="Frame sources.")] = Field(
        default_factory=list)
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    supervisor: SupervisorSettings = Field(default_factory=SupervisorSettings)
    models: ModelsSettings = Field(default_factory=ModelsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    web: WebSettings = Field(default_factory=WebSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)

    @field_validator("sources")
    @classmethod
    def _unique_camera_names(cls, sources: list[SourceSettings]) -> list[SourceSettings]:
        names = [s.name for s in sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"camera names must be unique, repeated: {', '.join(duplicates)}")
        return sources

    @model_validator(mode="after")
    def _backoff_is_ordered(self) -> Settings:
        if self.capture.reconnect_max_seconds < self.capture.reconnect_initial_seconds:
            raise ValueError("capture.reconnect_max_seconds must be >= capture.reconnect_initial_seconds")
        return self

    @model_validator(mode="after")
    def _exposed_endpoints_need_curve(self) -> Settings:
        if self.security.server_configured or self.security.client_configured:
            return self
        exposed = [e for e in (self.bus.frames_endpoint, self.bus.results_in_endpoint, self.bus.results_endpoint)
                   if is_exposed(e)]
        if exposed:
            raise ValueError(f"tcp beyond loopback ({', '.join(exposed)}) requires CURVE keys in [security] "
                             "(run `emotiond keys generate`)")
        return self

    def worker_count(self) -> int:
        """Explicit count, or one per core. With tracking a camera stays on one worker, so there is one worker
        per camera (spare cores go to OpenCV threads), up to two per core so the OS balances uneven cameras."""
        if self.workers.count:
            return self.workers.count
        cores = os.cpu_count() or 1
        if self.tracking.enabled and self.sources:
            return max(1, min(2 * cores, len(self.sources)))
        return cores

    def endpoint(self, role: Literal["frames", "results_in", "results"]) -> str:
        """The configured endpoint for a role, or the ipc default in the runtime folder."""
        configured = getattr(self.bus, f"{role}_endpoint")
        return configured or f"ipc://{self.bus.runtime_dir / role}.sock"
