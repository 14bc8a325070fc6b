"""FastAPI dependencies that hand routes the process-wide services."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pixtools_api.services import ApiServices
from pixtools_shared.settings import Settings


def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


def get_settings_dependency(request: Request) -> Settings:
    return get_services(request).settings


ServicesDep = Annotated[ApiServices, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings_dependency)]
