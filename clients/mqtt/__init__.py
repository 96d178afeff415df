"""``emotiond mqtt``: the MQTT bridge and its Home Assistant discovery."""
