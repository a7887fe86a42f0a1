"""The audit log page, for supervisors and admins."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("audit", __name__)
