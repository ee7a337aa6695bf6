"""Silver: clean, typed current state from CDC, SCD2 history, the parsed clickstream, quarantine."""
