"""api-gateway (port 8000): the single public entry point."""

from heimdall.core.settings import get_settings
from heimdall.gateway.app import build_gateway

app = build_gateway(get_settings())
