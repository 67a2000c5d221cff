"""The IoT monitor's view of the leased devices, for the bank's dashboard (`--iot-db`).

`server` does not import the monitor's side (`iot`); this adapter, on the side that runs both
(the CLI, the demo), reads the monitor's store and rules and hands plain dicts to
`server.dashboard.data` through its `Fleet` protocol.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


class MonitorFleet:
    """Devices, usage and rent from an `iot.store.IotStore`, the geofence from the rules TOML."""

    def __init__(self, iot_db: str, rules: Path | None = None) -> None:
        from iot.pricing import load_schedule
        from iot.rules import load_rules
        from iot.store import IotStore

        self.store = IotStore(iot_db)
        self.rules = load_rules(rules)
        self.schedule = load_schedule()

    def devices(self, raised: set[str]) -> list[dict[str, Any]]:
        """Each device's last position, whether an alert is open, its latest month's use and rent."""
        from iot.pricing import statement

        out = []
        for device_id, d in sorted(self.store.devices().items()):
            months = self.store.usage_months(device_id)
            usage = self.store.monthly_usage(device_id, months[-1]) if months else None
            rent = statement(self.schedule, device_id, months[-1], usage[0], usage[1]) if usage else None
            out.append(
                {
                    "device_id": device_id,
                    "lat": d.lat,
                    "lon": d.lon,
                    "last_seen": d.last_ts.isoformat(),
                    "alert": "raised" if device_id in raised else "clear",
                    "month": months[-1] if months else None,
                    "hours": round(usage[0], 2) if usage else None,
                    "fuel_l": round(usage[1], 2) if usage else None,
                    "rent_fen": rent.total if rent else None,
                    "currency": rent.currency if rent else None,
                }
            )
        return out

    def geofence(self) -> dict[str, Any]:
        fence = self.rules.geofence
        return {
            "box": [fence.default.lat_min, fence.default.lat_max, fence.default.lon_min, fence.default.lon_max],
            "zones": [{"name": z.name, "polygon": [list(p) for p in z.polygon]} for z in fence.zones],
        }

    def stamp(self) -> str:
        """Changes when a device reports (its newest reading time)."""
        from sqlalchemy import func, select

        from federation.storage import session_scope
        from iot.store import DeviceRow

        with session_scope(self.store.engine) as s:
            newest = s.scalar(select(func.max(DeviceRow.last_ts)))
        return hashlib.sha256(str(newest).encode()).hexdigest()[:8]
