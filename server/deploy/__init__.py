"""The bank's side of a Flower deployment: its SuperLink, the Control API client, the CA and
`yinqi bank up/register/train/status/down`.

Platforms run their own side (`clients.node`); `yinqi.harness.loopback` runs both on one machine.
"""
