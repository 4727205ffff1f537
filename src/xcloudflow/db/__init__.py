"""Database layer: engines, sessions, portable types and every SQLite/PostgreSQL difference.

Domain code never tests the dialect; it calls the helpers here. Nothing connects at import time.
"""

from xcloudflow.db.base import Base
from xcloudflow.db.engine import Database

__all__ = ["Base", "Database"]
