"""The bank's side of a Flower deployment: its SuperLink (on loopback), the Fleet gate in front
of it, the Control API client and `yinqi bank up/register/train/status/down` (the CA is in
`server.security.ca`).

Platforms run their own side (`clients.node`); `yinqi.harness.loopback` runs both on one machine.
"""
