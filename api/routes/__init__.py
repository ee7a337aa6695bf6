"""One router per resource: alerts, inventory, the transition stream, deliveries, health."""
