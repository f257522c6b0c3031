"""FastAPI's import path for the test client: from fasterapi.testclient import TestClient."""

from .testing import TestClient, TestResponse

__all__ = ["TestClient", "TestResponse"]
