"""The serving secret's non-secret settings (batching, archive and input monitoring): every key serving reads besides the
credentials. `spira secrets seed` refuses a declared setting serving would not read."""

from __future__ import annotations

from serving import archive, batching, monitoring

SETTINGS: tuple[str, ...] = (*batching.SETTINGS, *archive.SETTINGS, *monitoring.SETTINGS)
