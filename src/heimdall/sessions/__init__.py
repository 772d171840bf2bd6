"""Session review: operators approve or reject finished acquisitions; training reads the decision."""
