"""The operator's web page, served by data-ingestion-web (and through the gateway)."""
