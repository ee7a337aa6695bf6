"""Alert delivery: transitions routed by rules to Slack, email and PagerDuty, deduplicated,
cooled down and retried, with every outcome in ``alerting.deliveries``; and a watchdog that
pages when the pipeline itself stops.

``run_forever`` is what ``shopstream alerts run`` runs in a thread; ``deliver_pending`` is one
pass; ``check_config`` validates the settings up front.
"""

from alerts.delivery.worker import DeliverySummary, check_config, deliver_pending, run_forever

__all__ = ["DeliverySummary", "check_config", "deliver_pending", "run_forever"]
