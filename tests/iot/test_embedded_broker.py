"""The demo's embedded broker (amqtt 0.11.4) really carries paho QoS 1 traffic to the monitor."""

from __future__ import annotations

from iot.mqtt_broker import EmbeddedBroker
from iot.monitor import Monitor
from iot.mqtt import MqttMonitor
from iot.rules import Rules
from tests.conftest import free_port
from tests.iot.conftest import FakeClock, Publisher, reading, wait_for


def test_amqtt_delivers_qos1_to_the_monitor(store) -> None:
    with EmbeddedBroker(port=free_port()) as broker:
        monitor = Monitor(store, Rules(), clock=FakeClock())
        client = MqttMonitor(monitor, broker.url, client_id="amqtt-monitor", sweep_interval=0.05).start()
        publisher = Publisher(broker.url)
        try:
            wait_for(client.subscribed.is_set, 10, "the subscription")
            for i in range(300):
                publisher.reading(reading(f"exc-{i % 3}", i, lon=125.0 if i == 150 else 115.0))
            wait_for(lambda: monitor.stats["processed"] == 300, 20, "300 messages through amqtt")
            wait_for(publisher.all_acked, 10, "amqtt to acknowledge every publish")
        finally:
            publisher.close()
            client.stop()
    assert [(a.rule, a.state) for a in store.alerts()] == [("geofence", "cleared")]
