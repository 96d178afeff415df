"""[models]: where model bundles are cached."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from emotiond.core.settings.base import _Section, default_models_dir


class ModelsSettings(_Section):
    dir: Annotated[Path, Field(description="Model bundle cache.")] = Field(default_factory=default_models_dir)
