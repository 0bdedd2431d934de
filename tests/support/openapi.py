"""The admin API's answers checked against its OpenAPI file (PyPI openapi-core)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse


@cache
def spec() -> OpenAPI:
    path = resources.files("netboot.admin").joinpath("openapi.yaml")
    return OpenAPI.from_file_path(str(path))


def check_answer(method: str, url: str, status: int, body: bytes, *,
                 request_body: bytes | None = None, token: str | None = None) -> None:
    """Raise unless the request and the answer are as the OpenAPI file says."""
    parts = urlsplit(url)
    request = MockRequest(f"{parts.scheme}://{parts.netloc}", method.lower(), parts.path,
                          args={k: v[0] for k, v in parse_qs(parts.query).items()},
                          headers={"Authorization": f"Bearer {token or 'loopback'}"},
                          data=request_body)
    spec().validate_request(request)
    spec().validate_response(request, MockResponse(body, status_code=status))
