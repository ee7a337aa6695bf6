"""The contracts between the deployables: what an event or a row looks like on the wire."""
