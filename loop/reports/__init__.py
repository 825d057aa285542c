"""What people read: the HTML report, status tables, plots, label export and shift checks."""
