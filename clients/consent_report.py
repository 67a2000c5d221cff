"""Telling the bank about consent: the platform sends its consent events over the bank's gRPC
`PlatformService`; the bank never reads the platform's database."""

from __future__ import annotations

from typing import Any

import grpc

from clients.consent import ConsentBook
from proto import platform_pb2, platform_pb2_grpc
from proto.channel import call, in_requests

REPORT_EVENTS = 20_000  # per request (the bank takes at most 100,000), within 2 MiB


def report_consent(book: ConsentBook, channel: grpc.Channel, platform: str = "") -> dict[str, int]:
    """Send every event of `book` (the bank keeps each once); returns the bank's counts.

    Sent in requests of at most `REPORT_EVENTS` events and 2 MiB (`proto.channel.in_requests`),
    oldest first, so a platform with many merchants is not refused for the size of one
    message; a request that fails stops the report, and sending again is safe (the bank keeps
    each event once).
    The bank takes the platform's identity from its client certificate; `platform`, when given,
    must name the same party (it names the platform only to a plaintext loopback bank).
    """
    events = [
        platform_pb2.ConsentEvent(
            event_id=event_id, merchant_id=r.merchant_id, granted=r.granted, at=r.at.isoformat(), note=r.note
        )
        for event_id, r in book.events()
    ]
    stub: Any = platform_pb2_grpc.PlatformServiceStub(channel)
    received = stored = 0
    for part in in_requests(events, REPORT_EVENTS):
        ack = call(stub.ReportConsent, platform_pb2.ConsentReport(platform=platform, events=part))
        received += int(ack.received)
        stored += int(ack.stored)
    return {"received": received, "stored": stored}
