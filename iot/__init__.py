"""IoT equipment leasing: MQTT telemetry monitor, rules, alert lifecycle, usage-based rent.

Data flow: `device/+/data` (QoS 1, persistent session) -> `formats.TelemetryReader` (yinqi's, the seed's
and mapped vendor formats) -> device state ->
`rules` (per message, plus a periodic sweep for idleness) -> `alerts.AlertBook` (raised once,
cleared on recovery) -> `outbox` (durable) -> the bank's gRPC `AlertService`. Usage -> `pricing`.
"""
