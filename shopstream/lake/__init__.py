"""The lake in one place: the table catalogue (delta/*.yml), the Spark session, delta-rs
access and the layout every reader shares."""
