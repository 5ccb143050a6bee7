"""Live-stream platform clients: a site's chat feed in, `ViewerEvent`s out."""

from .base import Emit, PlatformClient, PlatformStatus, ViewerEvent, run_with_backoff
from .bilibili import BilibiliLiveClient

__all__ = ["BilibiliLiveClient", "Emit", "PlatformClient", "PlatformStatus", "ViewerEvent", "run_with_backoff"]
