"""What feeds the pipeline: the shop's workload, the clickstream, the CDC connectors."""
