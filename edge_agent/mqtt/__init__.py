"""MQTT at the gateway, with Home Assistant discovery (docs/mqtt.md).

Off unless `kapok agent run --mqtt mqtt://host:1883` names a broker.
`discovery.py`: topics, payloads and the table of Home Assistant entities;
`cursor.py`: the bridge's place in the durable store; `bridge.py`: the
connection, the publisher and the fail-safe command listener.
"""
